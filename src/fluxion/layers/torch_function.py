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
        """What the function gives for float32 tensors of these shapes (``meta`` ones unless small); numbers only.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.TorchFunction("topk", k=2).output_shape(dims.Shape([4, 5]))
        ((4, 2), (4, 2))
        >>> fl.TorchFunction("flatten").output_shape(dims.Shape(["B", 3]))
        Traceback (most recent call last):
        ...
        fluxion.errors.ShapeError: TorchFunction('flatten') has no symbolic shape rule (it evaluates torch.flatten \
on meta tensors): infer with numbers for every size, got (B, 3)
        """
        what = f"TorchFunction({self.name!r})"
        symbolic = [value for value in inputs if not _concrete(value)]
        if symbolic:
            raise ShapeError(
                f"{what} has no symbolic shape rule (it evaluates torch.{self.name} on meta tensors): "
                f"infer with numbers for every size, got {symbolic[0]!r}"
            )
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
