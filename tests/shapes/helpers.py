"""Reading a symbolic report at numbers: what the shape tests compare with real forward passes."""

from collections.abc import Mapping
from typing import Any

from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue


def number(size: Dim, values: Mapping[str, int]) -> int:
    """One dimension at the given values of its symbols; it must come out a plain integer."""
    result = dims.substitute(size, values)
    assert isinstance(result, int), f"{dims.show(size)} is not a number at {dict(values)}: {result}"
    return result


def evaluate(value: ShapeValue, values: Mapping[str, int]) -> Any:
    """A shape (or a tuple of them, or None) at the given values, as plain tuples of integers."""
    if value is None:
        return None
    if isinstance(value, Shape):
        return tuple(number(size, values) for size in value)
    return tuple(evaluate(item, values) for item in value)
