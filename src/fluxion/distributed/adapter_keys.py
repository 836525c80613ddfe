"""Adapters and checkpoint keys: which keys are an adapter's own tensors, and where a wrapped
layer's tensors went.

An injected adapter takes its target's address and holds the target as its child ``target``, so
the target's tensors move under ``.target`` (``head.weight`` becomes ``head.target.weight``) while
a checkpoint of the plain model still names them the old way. :func:`through_adapters` maps those
old keys to the new ones, and :func:`adapter_keys` lists the adapters' own tensors.

>>> import fluxion.layers as fl
>>> from fluxion.adapters import lora
>>> model = fl.Chain(head=fl.Linear(4, 2))
>>> _ = lora.inject(model, rank=1)
>>> sorted(adapter_keys(model))
['head.down.weight', 'head.scale', 'head.up.weight']
>>> through_adapters(model)
{'head.weight': 'head.target.weight', 'head.bias': 'head.target.bias'}
"""

from __future__ import annotations

import torch

from fluxion.adapters import Adapter, Lora
from fluxion.adapters.adapter import SLOT
from fluxion.adapters.targets import base_address
from fluxion.weights._torch import named_modules, parameters_of, persistent_buffers


def adapter_keys(model: torch.nn.Module) -> set[str]:
    """The keys of every LoRA's own tensors (its target's excluded), as ``model.state_dict()`` names them
    (``model`` may be a subtree, or a plain module holding a tree).

    >>> import fluxion.layers as fl
    >>> adapter_keys(fl.Chain(fl.Linear(2, 2)))
    set()
    """
    keys: set[str] = set()
    for address, node in named_modules(model):
        if isinstance(node, Lora):
            prefix = f"{address}." if address else ""
            for name in node.state_dict(keep_vars=True):
                if not name.startswith(SLOT + "."):
                    keys.add(prefix + name)
    return keys


def through_adapters(model: torch.nn.Module) -> dict[str, str]:
    """For each tensor of a layer an adapter wraps: its key in the model without adapters, and its
    key now (``model`` being the root of its tree).

    >>> import fluxion.layers as fl
    >>> through_adapters(fl.Chain(fl.Linear(2, 2)))
    {}
    """
    moved: dict[str, str] = {}
    if not any(isinstance(node, Adapter) for node in model.modules()):
        return moved
    for address, node in named_modules(model):
        base = base_address(node)
        if base is None or base == address or isinstance(node, Adapter):
            continue  # an adapter's own layer, a node no adapter moved, or an adapter itself
        own = [name for name, tensor in parameters_of(node).items() if tensor is not None]
        own += list(persistent_buffers(node))
        for name in own:
            moved[f"{base}.{name}" if base else name] = f"{address}.{name}"
    return moved
