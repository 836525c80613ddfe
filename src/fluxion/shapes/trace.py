"""``trace``: run a model once and keep every node's actual output, by address.

The real-tensor companion of ``infer``: where ``infer`` says what the shapes will be, ``trace``
shows what every intermediate value was, for debugging a model that runs but computes the wrong
thing.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion import shapes
>>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU(), head=fl.Linear(8, 2))
>>> outputs = shapes.trace(model, torch.randn(3, 4))
>>> list(outputs), outputs["ReLU"].min().item() >= 0
(['Linear', 'ReLU', 'head', ''], True)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import torch
from torch.utils.hooks import RemovableHandle

from fluxion.tree.intermediates import output_copy


def trace(model: torch.nn.Module, *inputs: Any, **keyword_inputs: Any) -> dict[str, Any]:
    """Run ``model(*inputs, **keyword_inputs)`` once (without gradients) and return every node's
    output, keyed by address, in the order the nodes finished (the root, ``""``, last).

    Tensors are detached copies (a later in-place layer cannot change them); tuples of them stay
    tuples. A node called more than once keeps its last output. The model is left as it was: the
    hooks are removed even when the forward fails, and buffers a forward updates in train mode
    (batch-norm statistics) get their values back.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> model = fl.Chain(fl.Chunk(2, dim=-1), fl.Distribute(fl.ReLU(), fl.Tanh()))
    >>> [tuple(value.shape) for value in shapes.trace(model, torch.randn(1, 4))["Chunk"]]
    [(1, 2), (1, 2)]
    """
    outputs: dict[str, Any] = {}
    handles: list[RemovableHandle] = []
    named = cast("Iterator[tuple[str, torch.nn.Module]]", model.named_modules())
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}  # running statistics in train mode
    try:
        for address, module in named:
            handles.append(module.register_forward_hook(_recorder(outputs, address)))
        with torch.no_grad():
            model(*inputs, **keyword_inputs)
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in buffers:
                    buffer.copy_(buffers[name])
    return outputs


def _recorder(outputs: dict[str, Any], address: str) -> Any:
    def record(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        outputs.pop(address, None)  # the latest call goes last, in finishing order
        outputs[address] = output_copy(output, detach=True)

    return record
