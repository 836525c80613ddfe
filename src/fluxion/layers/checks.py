"""Checks of constructor arguments: a layer that no forward call could run is refused when it is built.

torch builds many layers whose arguments only fail at the first call (``GELU(approximate="x")``,
``Conv2d(..., dilation=0)``, ``Dropout(p=nan)``...). fluxion's layers check such arguments in their
constructors with these helpers and raise a ``LayerError`` naming the layer, the argument and the
value; a spec turns it into a ``SpecError`` at the node's JSON path.

>>> from fluxion.layers import checks
>>> checks.at_least("Conv2d", "dilation", (1, 0), 1)
Traceback (most recent call last):
...
fluxion.errors.LayerError: Conv2d: dilation must be at least 1, got (1, 0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar, cast

from fluxion.errors import LayerError

T = TypeVar("T")


def at_least(layer: str, name: str, value: int | Sequence[int] | None, minimum: int) -> None:
    """Check that ``value`` (an int, or each int of a tuple) is at least ``minimum``; None passes.

    >>> from fluxion.layers import checks
    >>> checks.at_least("Linear", "out_features", 4, 0)
    >>> checks.at_least("MaxPool2d", "kernel_size", 0, 1)
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: MaxPool2d: kernel_size must be at least 1, got 0
    """
    if value is None:
        return
    given: object = value
    items = cast("tuple[object, ...]", tuple(given)) if isinstance(given, list | tuple) else (given,)  # pyright: ignore[reportUnknownArgumentType]
    numbers = [item for item in items if _is_int(item)]
    if not items or len(numbers) != len(items):
        raise LayerError(f"{layer}: {name} must be an int or a tuple of ints, got {value!r}")
    if any(cast(int, item) < minimum for item in numbers):
        raise LayerError(f"{layer}: {name} must be at least {minimum}, got {value!r}")


def probability(layer: str, name: str, value: float) -> None:
    """Check that ``value`` is a probability, from 0 to 1 (nan is not).

    >>> from fluxion.layers import checks
    >>> checks.probability("Dropout", "p", 0.5)
    >>> checks.probability("Dropout", "p", float("nan"))
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: Dropout: p must be a probability from 0 to 1, got nan
    """
    if not _is_number(value) or not 0 <= value <= 1:
        raise LayerError(f"{layer}: {name} must be a probability from 0 to 1, got {value!r}")


def positive_number(layer: str, name: str, value: float) -> None:
    """Check that ``value`` is a finite number above 0.

    >>> from fluxion.layers import checks
    >>> checks.positive_number("Upsample", "scale_factor", 2.0)
    >>> checks.positive_number("Upsample", "scale_factor", float("inf"))
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: Upsample: scale_factor must be a finite number above 0, got inf
    """
    if not (_is_number(value) and math.isfinite(value) and value > 0):
        raise LayerError(f"{layer}: {name} must be a finite number above 0, got {value!r}")


def one_of(layer: str, name: str, value: object, options: Collection[object]) -> None:
    """Check that ``value`` is one of ``options``.

    >>> from fluxion.layers import checks
    >>> checks.one_of("GeLU", "approximate", "x", ("none", "tanh"))
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: GeLU: approximate must be one of 'none', 'tanh', got 'x'
    """
    if value not in options:
        listed = ", ".join(repr(option) for option in options)
        raise LayerError(f"{layer}: {name} must be one of {listed}, got {value!r}")


def torch_built(layer: str, build: Callable[[], T]) -> T:
    """``build()``, torch's own constructor; what it raises for bad arguments becomes a LayerError.

    torch's constructors check some arguments themselves, with a ``ValueError``, a ``TypeError`` (a
    size that is no number), a ``RuntimeError`` (a negative size), a ``ZeroDivisionError``
    (``GroupNorm(0, 4)``) or an ``AssertionError``.

    >>> import torch
    >>> from fluxion.layers import checks
    >>> checks.torch_built("GroupNorm", lambda: torch.nn.GroupNorm(3, 4))
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: GroupNorm refused its arguments: num_channels (4) must be ... by num_groups (3)
    """
    try:
        return build()
    except LayerError:
        raise
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError, AssertionError) as error:
        message = str(error).split("\n")[0] or type(error).__name__
        raise LayerError(f"{layer} refused its arguments: {message}") from error


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """A real number a float can hold: ints and floats (bool is not; nor is an int beyond float's range)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        float(value)
    except OverflowError:
        return False
    return True
