"""Context: values that skip across the tree during one forward call (U-Net skips, masks, ...).

Context belongs to the root of the tree; every Chain in it sees the same values, and they are
cleared when the root's forward call returns. ``SetContext`` stores its input and passes it on;
``UseContext`` ignores its input and returns the stored value.

>>> import torch
>>> import fluxion.layers as fl
>>> model = fl.Chain(
...     fl.SetContext("unet", "skip"),
...     fl.Lambda(lambda x: 10 * x),
...     fl.Sum(fl.Identity(), fl.UseContext("unet", "skip")),
... )
>>> model(torch.ones(1)).tolist()
[11.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import ContextError, ShapeError, TreeError
from fluxion.tree.chain import Chain
from fluxion.tree.module import Module, parent_of


class SetContext(Module):
    """Stores its input under ``context``/``key`` and returns the input unchanged.

    With ``callback``, stores ``callback(current_value_or_None, input)`` instead, e.g. to collect
    several values in a list.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> collect = fl.SetContext("net", "seen", callback=lambda seen, x: [*(seen or []), x])
    >>> model = fl.Chain(collect, fl.Lambda(lambda x: x + 1), collect.structural_copy(), fl.UseContext("net", "seen"))
    >>> [t.item() for t in model(torch.zeros(1))]
    [0.0, 1.0]
    """

    def __init__(self, context: str, key: str, callback: Callable[[Any, Any], Any] | None = None) -> None:
        super().__init__()
        self.context = context
        self.key = key
        self.callback = callback

    def forward(self, *args: Any) -> Any:
        value = args[0] if len(args) == 1 else args
        values = _store(self).setdefault(self.context, {})
        values[self.key] = value if self.callback is None else self.callback(values.get(self.key), value)
        return value

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """Its input's shape, stored for the ``UseContext`` layers that read it.

        With a ``callback``, what it stores depends on code the rule cannot see: a ShapeError.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> model = fl.Chain(fl.SetContext("net", "skip"), fl.Linear(4, 2), fl.UseContext("net", "skip"))
        >>> shapes.infer(model, ("B", 4)).output
        (B, 4)
        """
        if self.callback is not None:
            raise ShapeError("SetContext with a callback has no shape rule: what it stores depends on its function")
        value = inputs[0] if len(inputs) == 1 else inputs
        dims.context_values().setdefault(self.context, {})[self.key] = value
        return value

    def extra_repr(self) -> str:
        return f"context={self.context!r}, key={self.key!r}"


class UseContext(Module):
    """Returns the value stored under ``context``/``key`` (through ``func`` when given).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.UseContext("net", "t", func=lambda t: 2 * t))
    >>> model.set_context("net", {"t": torch.tensor(1.0)})
    >>> model()
    tensor(2.)
    """

    def __init__(self, context: str, key: str, func: Callable[[Any], Any] | None = None) -> None:
        super().__init__()
        self.context = context
        self.key = key
        self.func = func

    def forward(self, *args: Any) -> Any:
        values = _store(self).get(self.context)
        if values is None or self.key not in values:
            known = ", ".join(sorted(values)) if values else "nothing"
            raise ContextError(
                f"UseContext at {self.address!r}: context {self.context!r} has no value {self.key!r} "
                f"(it holds {known}); a SetContext earlier in the tree, or chain.set_context(), must set it"
            )
        value = values[self.key]
        return value if self.func is None else self.func(value)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The shape a ``SetContext`` stored earlier in the same inference.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> model = fl.Chain(fl.SetContext("unet", "skip"), fl.Linear(4, 8), fl.UseContext("unet", "skip"))
        >>> shapes.infer(model, ("B", 4))["UseContext"].output
        (B, 4)
        """
        if self.func is not None:
            raise ShapeError("UseContext with a func has no shape rule: what it returns depends on its function")
        values = dims.context_values().get(self.context, {})
        if self.key not in values:
            known = ", ".join(sorted(values)) or "nothing"
            raise ShapeError(
                f"context {self.context!r} has no value {self.key!r} at this point (it holds {known}); "
                "a SetContext must come earlier in the tree"
            )
        return cast(ShapeValue, values[self.key])

    def extra_repr(self) -> str:
        return f"context={self.context!r}, key={self.key!r}"


def context_of(node: torch.nn.Module) -> dict[str, dict[str, Any]]:
    """The context values of the tree ``node`` is in (held by its root), by context name then key.

    The dict is the tree's own: what is written into it is what the next forward call sees, and
    what a forward call stores is found in it until the root's call returns. A module in no Chain
    gets a new empty dict.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Chain(fl.UseContext("run", "step")))
    >>> model.set_context("run", {"step": 3})
    >>> context_of(model.Chain.UseContext)
    {'run': {'step': 3}}
    """
    chain = node if isinstance(node, Chain) else parent_of(node)
    return {} if chain is None else chain._context_store()  # pyright: ignore[reportPrivateUsage]


def _store(layer: Module) -> dict[str, dict[str, Any]]:
    parent = layer.parent
    if parent is None:
        raise TreeError(f"{type(layer).__name__}: context layers work inside a Chain, and this one has no parent")
    return context_of(parent)
