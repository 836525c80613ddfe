"""A torch function by name as a leaf: ``TorchFunction("topk", k=2)`` runs ``torch.topk(x, k=2)``.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.TorchFunction("flatten", start_dim=1)(torch.zeros(2, 3, 4)).shape
torch.Size([2, 12])
"""

import difflib
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self, cast

import torch

from fluxion.dims import Shape, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.tree.module import Module

SMALL = 4096
"""Inputs of at most this many elements in all are evaluated on the CPU, larger ones on ``meta``."""


@functools.cache
def tensor_functions() -> frozenset[str]:
    """The names ``TorchFunction`` takes: torch's functions of tensors (those ``torch.overrides`` lists).

    Functions that are not tensor operations (``torch.load``, ``torch.save``, ``torch.manual_seed``,
    ``torch.set_default_dtype``...) are not among them, so a spec file cannot reach them.

    >>> "topk" in tensor_functions(), "load" in tensor_functions()
    (True, False)
    """
    overridable = cast(dict[Any, list[Callable[..., Any]]], torch.overrides.get_overridable_functions())
    return frozenset(
        function.__name__
        for function in overridable.get(torch, [])
        if getattr(torch, function.__name__, None) is function and not function.__name__.startswith("_")
    )


class TorchFunction(Module):
    """``torch.<name>(*inputs, **kwargs)``: any of torch's functions of tensors, by name.

    The keyword arguments are given as keywords (``TorchFunction("topk", k=2)``) or as one
    mapping, which is how a spec writes them: ``{"type": "TorchFunction", "name": "topk",
    "kwargs": {"k": 2}}``.

    ``name`` must be one of :func:`tensor_functions` (torch's functions of tensors: ``topk``,
    ``flatten``, ``transpose``, ``einsum``, ``cdist``...); anything else is refused when it is
    built, and keyword arguments the function does not take are refused by the shape rule (at
    load, for a spec with input shapes). The output is what the function returns: a tensor, or a
    tuple (``topk`` gives values and indices).

    Its shape rule evaluates the function on ``meta`` tensors (on small CPU tensors when the
    inputs have few elements, as some meta kernels skip torch's checks), so it needs numbers for every
    size: there is no exact symbolic rule for an arbitrary function, and with symbolic sizes the
    rule says so. Use a dedicated layer (``Flatten``, ``Transpose``, ``Reduce``...) where one exists.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> values, indices = fl.TorchFunction("topk", k=2, dim=-1)(torch.tensor([[3.0, 1.0, 2.0]]))
    >>> values.tolist(), indices.tolist()
    ([[3.0, 2.0]], [[0, 2]])
    """

    def __new__(cls, name: str, kwargs: Mapping[str, Any] | None = None, **keywords: Any) -> Self:
        # recorded as one ``kwargs`` mapping, so that a spec writes (and reads) the call as declared fields
        given = cast(object, kwargs)
        if given is not None and not isinstance(given, Mapping):
            return super().__new__(cls, name, kwargs, **keywords)  # refused by __init__
        merged = {**(kwargs or {}), **keywords}
        return super().__new__(cls, name, kwargs=merged) if merged else super().__new__(cls, name)

    def __init__(self, name: str, kwargs: Mapping[str, Any] | None = None, **keywords: Any) -> None:
        super().__init__()
        given = cast(object, kwargs)
        if given is not None and not isinstance(given, Mapping):
            raise LayerError(f"TorchFunction: kwargs must be a mapping of keyword arguments, got {kwargs!r}")
        kwargs = {**(kwargs or {}), **keywords}
        if name not in tensor_functions():
            close = difflib.get_close_matches(str(name), sorted(tensor_functions()), n=3)
            hint = f" (closest: {', '.join(close)})" if close else ""
            raise LayerError(f"TorchFunction: name must be one of torch's functions of tensors, got {name!r}{hint}")
        self.name = name
        self.kwargs = dict(kwargs)
        self.function: Callable[..., Any] = getattr(torch, name)

    def forward(self, *inputs: Any) -> Any:
        return self.function(*inputs, **self.kwargs)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """What the function gives for float32 tensors of these shapes (``meta`` ones unless small).

        With symbolic sizes that are single symbols (``B``, ``T``), the function is evaluated at two
        sets of sizes: an output size that stays the same is a number, one that follows a symbol is
        that symbol; any other output size, or a size that is an expression, is a ShapeError.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.TorchFunction("topk", k=2).output_shape(dims.Shape([4, 5]))
        ((4, 2), (4, 2))
        >>> fl.TorchFunction("topk", k=3).output_shape(dims.Shape(["B", 10]))
        ((B, 3), (B, 3))
        >>> fl.TorchFunction("flatten").output_shape(dims.Shape(["B", "T"]))
        Traceback (most recent call last):
        ...
        fluxion.errors.ShapeError: TorchFunction('flatten') gives a size that follows no one symbol (B*T?): \
infer with numbers for every size, got (B, T)
        """
        what = f"TorchFunction({self.name!r})"
        symbols = _symbols(inputs)
        if symbols is None:
            symbolic = next(value for value in inputs if not _concrete(value))
            raise ShapeError(
                f"{what} has no symbolic shape rule for sizes that are expressions (it evaluates torch.{self.name} "
                f"on meta tensors): infer with numbers for every size, got {symbolic!r}"
            )
        if not symbols:
            return self._evaluated(what, inputs)
        trials = [{symbol: base + 2 * index for index, symbol in enumerate(symbols)} for base in (37, 53)]
        first, second = (self._evaluated(what, tuple(_sized(value, trial) for value in inputs)) for trial in trials)
        try:
            return _read_back(first, second, trials)
        except ValueError:
            symbolic = next(value for value in inputs if not _concrete(value))
            raise ShapeError(
                f"{what} gives a size that follows no one symbol ({'*'.join(map(str, symbols))}?): infer with "
                f"numbers for every size, got {symbolic!r}"
            ) from None

    def _evaluated(self, what: str, inputs: tuple[ShapeValue, ...]) -> ShapeValue:
        # few elements: on the CPU, where torch checks arguments that some meta kernels do not
        device = "cpu" if sum(_elements(value) for value in inputs) <= SMALL else "meta"
        try:
            with torch.no_grad():
                output = self.function(*(_empty(value, device) for value in inputs), **self.kwargs)
        except Exception as error:  # whatever torch refuses: its message, in a ShapeError
            message = str(error).strip().split("\n")[0] or type(error).__name__
            raise ShapeError(f"{what} fails for these shapes: {message}") from error
        return _shape_of(output)

    def extra_repr(self) -> str:
        return ", ".join([repr(self.name), *(f"{key}={value!r}" for key, value in self.kwargs.items())])


def _symbols(inputs: tuple[ShapeValue, ...]) -> list[Any] | None:
    """The symbols the input sizes are, in order of appearance; None when a size is an expression."""
    found: dict[Any, None] = {}
    pending: list[object] = list(inputs)
    while pending:
        value = pending.pop(0)
        if isinstance(value, Shape):
            for size in value:
                if not isinstance(size, int):
                    if not getattr(size, "is_Symbol", False):
                        return None
                    found[size] = None
        elif isinstance(value, Mapping):
            pending.extend(cast(Mapping[str, object], value).values())
        elif isinstance(value, tuple):
            pending.extend(cast(tuple[object, ...], value))
    return list(found)


def _sized(value: ShapeValue, sizes: Mapping[Any, int]) -> ShapeValue:
    """``value`` with each symbol replaced by its size in ``sizes``."""
    if value is None:
        return None
    if isinstance(value, Shape):
        return Shape(sizes.get(size, size) if not isinstance(size, int) else size for size in value)
    if isinstance(value, Mapping):
        return cast(
            ShapeValue, {key: _sized(item, sizes) for key, item in cast(Mapping[str, ShapeValue], value).items()}
        )
    return tuple(_sized(item, sizes) for item in value)


def _read_back(first: ShapeValue, second: ShapeValue, trials: list[dict[Any, int]]) -> ShapeValue:
    """The symbolic output from two evaluations: sizes equal in both are numbers, sizes that are a
    symbol's value in both are that symbol (a ValueError otherwise)."""
    if first is None or second is None:
        if first is not second:
            raise ValueError("outputs of different kinds")
        return None
    if isinstance(first, Shape) and isinstance(second, Shape):
        if len(first) != len(second):
            raise ValueError("ranks differ")
        sizes: list[Any] = []
        for one, other in zip(first, second, strict=True):
            if one == other:
                sizes.append(one)
                continue
            matches = [symbol for symbol in trials[0] if trials[0][symbol] == one and trials[1][symbol] == other]
            if len(matches) != 1:
                raise ValueError("a size that follows no one symbol")
            sizes.append(matches[0])
        return Shape(sizes)
    if isinstance(first, tuple) and isinstance(second, tuple) and len(first) == len(second):
        pairs = zip(cast(tuple[ShapeValue, ...], first), cast(tuple[ShapeValue, ...], second), strict=True)
        return tuple(_read_back(one, other, trials) for one, other in pairs)
    raise ValueError("outputs of different kinds")


def _concrete(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, Shape):
        return all(isinstance(size, int) for size in value)
    if isinstance(value, Mapping):
        return all(_concrete(item) for item in cast(Mapping[str, object], value).values())
    return all(_concrete(item) for item in cast(tuple[object, ...], value))


def _empty(value: object, device: str) -> Any:
    """Zero tensors of the shapes in ``value`` (a shape, a tuple, a dict of them, or None) on ``device``."""
    if value is None:
        return None
    if isinstance(value, Shape):
        return torch.zeros(tuple(cast(int, size) for size in value), device=device)
    if isinstance(value, Mapping):
        return {key: _empty(item, device) for key, item in cast(Mapping[str, object], value).items()}
    return tuple(_empty(item, device) for item in cast(tuple[object, ...], value))


def _elements(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, Shape):
        return math.prod(cast(int, size) for size in value)
    items = cast(Mapping[str, object], value).values() if isinstance(value, Mapping) else cast(tuple[object], value)
    return sum(_elements(item) for item in items)


def _shape_of(output: object) -> ShapeValue:
    if isinstance(output, torch.Tensor):
        return Shape(output.shape)
    if isinstance(output, tuple | list):
        return tuple(_shape_of(item) for item in cast(Sequence[object], output))
    return None
