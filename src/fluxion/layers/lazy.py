"""Lazy layers: a weighted leaf built with its input-side size left out, filled in by shape inference.

``fl.Linear(out_features=10)``, ``fl.Conv2d(out_channels=64, kernel_size=3)``, ``fl.LayerNorm()``,
``fl.BatchNorm2d()``, ``fl.GroupNorm(8)``... are *lazy*: they have every other argument, a shape rule
(the missing size is taken from the input) and a repr that shows the gap, but no parameters or
buffers yet, and they refuse to run. ``fluxion.shapes.materialize(model, *input_shapes)`` infers the
missing sizes and creates the parameters, after which the layer is the one that giving the size
would have built. Layers get this by mixing in ``Inferable`` (listed first, before the torch layer).

Every lazy layer refuses to run through one guard, ``refuse_calls``: a forward pre-hook (torch's own
lazy modules wait for their sizes the same way) that ``allow_calls`` removes once the sizes are in,
so a complete layer pays nothing for it and a layer's ``forward`` need not check.

>>> import fluxion.layers as fl
>>> from fluxion import dims
>>> head = fl.Linear(out_features=10)
>>> head, head.weight
(Linear(in_features=?, out_features=10, bias=True), None)
>>> head.output_shape(dims.Shape(["B", 64]))
(B, 10)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol, Self, TypeGuard, TypeVar, cast, runtime_checkable

import torch

from fluxion.dims import Dim, ShapeValue
from fluxion.errors import LayerError
from fluxion.layers import checks
from fluxion.tree.module import clone_shell

T = TypeVar("T")

Argument = Dim | tuple[int, ...]
"""What inference finds for a missing argument: a size, or one number per spatial dim (a stride)."""


@dataclass(frozen=True)
class Deferred:
    """What a lazy layer waits for.

    ``missing`` names the constructor arguments still to be inferred; ``arguments`` holds the
    others as given (device and dtype apart); ``device`` and ``dtype`` are those its parameters
    will have (resolved at construction as torch would, and followed through ``.to()``);
    ``tensors`` names the parameters and buffers it will have; ``layout`` is torch's layer class,
    which lays them out once the sizes are known.

    >>> import fluxion.layers as fl
    >>> deferred = fl.Linear(out_features=3, bias=False).deferred
    >>> deferred.missing, dict(deferred.arguments), sorted(deferred.tensors), deferred.device, deferred.dtype
    (('in_features',), {'out_features': 3, 'bias': False}, ['weight'], device(type='cpu'), torch.float32)
    """

    missing: tuple[str, ...]
    arguments: Mapping[str, Any]
    tensors: frozenset[str]
    device: torch.device
    dtype: torch.dtype
    layout: type[torch.nn.Module]


@runtime_checkable
class Materializable(Protocol):
    """What ``fluxion.shapes.materialize`` needs of a node built with arguments left out.

    Every ``Inferable`` leaf has it, and so does a composite layer that builds its children once
    its sizes are known (``MultiHeadAttention(num_heads=8)``). ``materialized`` builds a complete
    twin without changing the node; ``adopt`` then makes the node that twin and cannot fail.

    >>> import fluxion.layers as fl
    >>> isinstance(fl.Linear(out_features=2), Materializable), isinstance(fl.ReLU(), Materializable)
    (True, False)
    """

    @property
    def lazy(self) -> bool:
        """Whether arguments are still missing.

        >>> import fluxion.layers as fl
        >>> fl.Linear(out_features=2).lazy
        True
        """
        ...

    @property
    def missing(self) -> tuple[str, ...]:
        """The names of the arguments still missing.

        >>> import fluxion.layers as fl
        >>> fl.LayerNorm().missing
        ('normalized_shape',)
        """
        ...

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Argument]:
        """The missing arguments' values for inputs of these shapes.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Linear(out_features=2).inferred_arguments(dims.Shape(["B", 5]))
        {'in_features': 5}
        """
        ...

    def materialized(self, **arguments: int | tuple[int, ...]) -> Any:
        """A complete, detached twin with ``arguments`` filled in; the node itself is unchanged.

        >>> import fluxion.layers as fl
        >>> fl.Linear(out_features=2).materialized(in_features=5)
        Linear(in_features=5, out_features=2, bias=True)
        """
        ...

    def adopt(self, twin: Any) -> None:
        """Become ``twin`` (from ``materialized``); this step cannot fail.

        >>> import fluxion.layers as fl
        >>> head = fl.Linear(out_features=2)
        >>> head.adopt(head.materialized(in_features=5))
        >>> head.lazy
        False
        """
        ...


def is_lazy(module: torch.nn.Module) -> TypeGuard[Materializable]:
    """Whether ``module`` is a :class:`Materializable` node with arguments still missing.

    Much cheaper than ``isinstance(module, Materializable)`` for the many nodes that are not (a
    runtime protocol check reads every attribute the protocol names).

    >>> import fluxion.layers as fl
    >>> is_lazy(fl.Linear(out_features=2)), is_lazy(fl.Linear(2, 2)), is_lazy(fl.ReLU())
    (True, False, False)
    """
    return getattr(module, "lazy", False) is True and isinstance(module, Materializable)


def lazy_addresses(model: torch.nn.Module) -> list[str]:
    """The addresses of the nodes of ``model`` with arguments still missing, in the model's order.

    >>> import fluxion.layers as fl
    >>> lazy_addresses(fl.Chain(fl.Linear(2, 2), fl.Chain(fl.Linear(out_features=2))))
    ['Chain.Linear']
    """
    named = cast("Iterator[tuple[str, torch.nn.Module]]", model.named_modules())
    return [address for address, node in named if is_lazy(node)]


class Inferable(torch.nn.Module):
    """Mixin for a torch layer whose input-side size may be left out (``None``) at construction.

    The layer's ``__init__`` calls ``construct`` instead of torch's constructor, which leaves a
    lazy layer refusing to be called (``refuse_calls``); its rule takes the missing size from the
    input, and ``inferred_arguments`` says what that size is. ``fluxion.shapes.materialize`` then
    builds a complete twin (``materialized``) of each lazy layer before changing anything, and the
    layer ``adopt``s it, which lets it run.

    >>> import fluxion.layers as fl
    >>> norm = fl.LayerNorm()
    >>> isinstance(norm, Inferable), norm.lazy, fl.LayerNorm(8).lazy
    (True, True, False)
    """

    deferred: Deferred | None = None
    """What the layer waits for, or None once it has all its arguments (the usual case)."""

    @property
    def lazy(self) -> bool:
        """Whether arguments are still missing: no parameters yet, and a forward call is refused.

        >>> import fluxion.layers as fl
        >>> fl.BatchNorm2d().lazy, fl.BatchNorm2d(3).lazy
        (True, False)
        """
        return self.deferred is not None

    @property
    def missing(self) -> tuple[str, ...]:
        """The arguments still to be inferred (none once materialized).

        >>> import fluxion.layers as fl
        >>> fl.Conv2d(out_channels=4, kernel_size=3).missing
        ('in_channels',)
        """
        return () if self.deferred is None else self.deferred.missing

    @property
    def device(self) -> torch.device:
        """The device of the first parameter, or for a lazy layer the one its parameters will have.

        >>> import fluxion.layers as fl
        >>> fl.Linear(out_features=2, device="meta").device
        device(type='meta')
        """
        if self.deferred is not None:
            return self.deferred.device
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the first parameter, or for a lazy layer the one its parameters will have.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> fl.Linear(out_features=2, dtype=torch.float16).dtype
        torch.float16
        """
        if self.deferred is not None:
            return self.deferred.dtype
        return next(self.parameters()).dtype

    def construct(
        self,
        layout: type[torch.nn.Module],
        arguments: Mapping[str, Any],
        stand_ins: Mapping[str, Any],
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        """Run torch's constructor ``layout.__init__`` with ``arguments`` (torch's keywords).

        ``stand_ins`` names the arguments that may be inferred and the value torch's constructor
        gets for each while it is missing (``None`` in ``arguments``). Then the layer is built on
        ``meta`` with the stand-ins, so that torch checks and stores every other argument; the
        missing arguments become ``None``, every parameter and buffer ``None``, and ``deferred``
        records the rest, and the layer refuses to be called until it adopts its twin. What torch's
        constructor raises for bad arguments becomes a LayerError.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> layer = fl.Linear.__new__(fl.Linear)
        >>> layer.construct(torch.nn.Linear, {"in_features": None, "out_features": 4}, {"in_features": 1}, None, None)
        >>> layer
        Linear(in_features=?, out_features=4, bias=True)
        """
        name = type(self).__name__
        missing = tuple(key for key in stand_ins if arguments[key] is None)
        if not missing:
            checks.torch_built(name, lambda: layout.__init__(self, **arguments, device=device, dtype=dtype))
            return
        filled = {key: stand_ins[key] if key in missing else value for key, value in arguments.items()}
        checks.torch_built(name, lambda: layout.__init__(self, **filled, device="meta", dtype=dtype))
        for key in missing:
            setattr(self, key, None)
        tensors: set[str] = set()
        for table in (self._parameters, self._buffers):
            tensors.update(key for key, value in table.items() if value is not None)
            for key in table:
                table[key] = None
        probe = torch.empty(0, device=device, dtype=dtype)  # where torch would have put them (device context too)
        given = {key: value for key, value in arguments.items() if key not in missing}
        self.deferred = Deferred(missing, given, frozenset(tensors), probe.device, probe.dtype, layout)
        refuse_calls(self)

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Dim]:
        """The values that the missing arguments take for inputs of these shapes (a layer's own rule).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Conv2d(out_channels=8, kernel_size=3).inferred_arguments(dims.Shape(["B", 3, "H", "W"]))
        {'in_channels': 3}
        """
        raise NotImplementedError(f"{type(self).__name__} does not say how to infer its arguments")

    def materialized(self, **arguments: int) -> Self:
        """A detached twin of this lazy layer with ``arguments`` filled in and its parameters created.

        The parameters and buffers are torch's (its constructor lays them out, the layer's
        ``reset_parameters`` initialises them), on the layer's device and dtype. The layer itself
        is unchanged: ``adopt`` makes it the twin.

        >>> import fluxion.layers as fl
        >>> twin = fl.Linear(out_features=3).materialized(in_features=5)
        >>> twin, tuple(twin.weight.shape)
        (Linear(in_features=5, out_features=3, bias=True), (3, 5))
        """
        deferred = self.deferred
        name = type(self).__name__
        if deferred is None:
            raise LayerError(f"{name} is not lazy: it has all its arguments")
        if set(arguments) != set(deferred.missing):
            got = ", ".join(arguments) or "none"
            raise LayerError(f"{name} expects exactly {', '.join(deferred.missing)}, got {got}")
        # torch's constructor lays the tensors out and, with torch's reset_parameters, initialises
        # them where they will live: the twin takes them as they are
        layout = deferred.layout(**deferred.arguments, **arguments, device=deferred.device, dtype=deferred.dtype)
        twin = clone_shell(self)
        for missing in deferred.missing:
            setattr(twin, missing, getattr(layout, missing))  # torch's form, e.g. a tuple for normalized_shape
        twin._parameters.update(layout._parameters)  # the clone's own tables
        twin._buffers.update(layout._buffers)
        twin._non_persistent_buffers_set.update(layout._non_persistent_buffers_set)
        del twin.__dict__["deferred"]
        allow_calls(twin)
        reset: Callable[[], None] | None = getattr(twin, "reset_parameters", None)
        if reset is not None and getattr(type(twin), "reset_parameters", None) is not getattr(
            deferred.layout, "reset_parameters", None
        ):
            reset()  # the layer initialises in its own way
        return twin

    def adopt(self, twin: Self) -> None:
        """Become ``twin``, a ``materialized`` copy of this layer: its arguments, parameters and buffers.

        Nothing can fail here, so a model whose twins were all built changes all at once.

        >>> import fluxion.layers as fl
        >>> head = fl.Linear(out_features=3)
        >>> head.adopt(head.materialized(in_features=5))
        >>> head, head.lazy, tuple(head.weight.shape)
        (Linear(in_features=5, out_features=3, bias=True), False, (3, 5))
        """
        deferred = self.deferred
        if deferred is None or twin.deferred is not None or type(twin) is not type(self):
            raise LayerError(f"{type(self).__name__}.adopt expects a materialized twin of a lazy layer")
        for name in deferred.missing:
            setattr(self, name, getattr(twin, name))
        self.__dict__["_fluxion_inferred"] = {name: getattr(twin, name) for name in deferred.missing}
        self._parameters.update(twin._parameters)
        self._buffers.update(twin._buffers)
        self._non_persistent_buffers_set.update(twin._non_persistent_buffers_set)
        del self.__dict__["deferred"]
        allow_calls(self)

    def extra_repr(self) -> str:
        deferred = self.deferred
        if deferred is None:
            return super().extra_repr()
        # torch's own format, on a stand-in whose missing sizes read "?" and whose tensors exist
        view = SimpleNamespace(**{**self.__dict__, **dict.fromkeys(deferred.missing, "?")})
        for table in (self._parameters, self._buffers):
            for key in table:
                setattr(view, key, "(to be created)" if key in deferred.tensors else None)
        return deferred.layout.extra_repr(cast(torch.nn.Module, view))

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Self:
        # .to(), .cuda(), .half(), .to_empty()...: a lazy layer follows them for the parameters it will create
        deferred = self.deferred
        if deferred is not None:
            moved = fn(torch.empty(0, device=deferred.device, dtype=deferred.dtype))
            self.deferred = dataclasses.replace(deferred, device=moved.device, dtype=moved.dtype)
        return super()._apply(fn, recurse)  # pyright: ignore[reportUnknownMemberType]  # torch leaves fn untyped


def refuse_calls(layer: torch.nn.Module) -> None:
    """Make ``layer`` refuse to be called, with ``not_materialized``, until ``allow_calls``.

    The guard of every lazy layer: a forward pre-hook, run before any other, so the layer's
    ``forward`` need not check and costs nothing more once the layer is complete.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> pool = fl.MaxPool2d(2)
    >>> refuse_calls(pool)
    >>> pool(torch.zeros(1, 1, 2, 2))
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False) \
is not complete yet: call fluxion.shapes.materialize(model, *input_shapes) to infer its arguments from the input shapes
    >>> allow_calls(pool)
    >>> pool(torch.zeros(1, 1, 2, 2)).shape
    torch.Size([1, 1, 1, 1])
    """
    layer.register_forward_pre_hook(_refuse, prepend=True)


def allow_calls(layer: torch.nn.Module) -> None:
    """Undo ``refuse_calls``: ``layer`` runs again (nothing happens for a layer that was not refused).

    >>> import fluxion.layers as fl
    >>> head = fl.Linear(out_features=2)
    >>> allow_calls(head)
    >>> len(head._forward_pre_hooks)
    0
    """
    hooks = cast(dict[int, object], layer._forward_pre_hooks)  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType]
    for key in [key for key, hook in hooks.items() if hook is _refuse]:
        del hooks[key]


def not_materialized(layer: torch.nn.Module) -> LayerError:
    """The error a lazy layer raises when it is called: what it lacks, and how to get it.

    >>> import fluxion.layers as fl
    >>> print(not_materialized(fl.MaxPool2d(3, output_size=7)))
    MaxPool2d(kernel_size=3, stride=?, padding=?, dilation=1, ceil_mode=False, output_size=(7, 7)) has no \
stride, padding yet: call fluxion.shapes.materialize(model, *input_shapes) to infer them from the input shapes
    """
    missing: tuple[str, ...] = layer.missing if isinstance(layer, Materializable) else ()
    creates = isinstance(layer, Inferable) and layer.deferred is not None and layer.deferred.tensors
    lacks = f"has no {', '.join(missing)} yet" if missing else "is not complete yet"
    what = "its arguments" if not missing else "them" if len(missing) > 1 else "it"
    return LayerError(
        f"{type(layer).__name__}({layer.extra_repr()}) {lacks}: call fluxion.shapes.materialize(model, *input_shapes) "
        f"to infer {what} from the input shapes{' and create the parameters' if creates else ''}"
    )


def _refuse(layer: torch.nn.Module, inputs: tuple[Any, ...]) -> None:
    raise not_materialized(layer)


def required(value: T | None, layer: str, name: str, example: str) -> T:
    """``value``, or a LayerError saying that ``layer`` needs argument ``name`` (``example`` shows a lazy call).

    >>> required(4, "Linear", "out_features", "Linear(out_features=10)")
    4
    >>> required(None, "Linear", "out_features", "Linear(out_features=10)")
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: Linear needs out_features (only the input-side size may be left out, \
to be inferred by fluxion.shapes.materialize; name the others, as in Linear(out_features=10))
    """
    if value is None:
        raise LayerError(
            f"{layer} needs {name} (only the input-side size may be left out, to be inferred by "
            f"fluxion.shapes.materialize; name the others, as in {example})"
        )
    return value
