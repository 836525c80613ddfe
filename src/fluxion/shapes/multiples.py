"""Sizes known to be multiples, during inference: H divisible by 8 is written ``8*h`` with ``h`` an integer.

Once a constraint says that H is a multiple of k, every size from then on is written in a new
positive integer symbol standing for H/k, so that sympy resolves the roundings itself
(``floor(8*h/2)`` is ``4*h``) and later rules see plain sizes: strided layers in a row give
``H/2``, ``H/4``... rather than nested floors, without rereading each size. At the end, ``unwind``
turns those symbols back into ``H/k``.

>>> from fluxion import dims
>>> h = dims.dim("H")
>>> known = Multiples().with_equation(2 * dims.floordiv(h, 2), h)
>>> read = known.read(dims.conv_output(h, kernel=3, stride=2, padding=1))
>>> dims.show(unwind(read))
'H/2'
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, cast

from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue

_origins: dict[Any, tuple[Any, int]] = {}  # the symbol for H/k -> (H, k)


def divisibility(first: Dim, second: Dim) -> tuple[Dim, int] | None:
    """``(X, k)`` when ``first = second`` says that X is a multiple of k (``k*floor(X/k) = X``).

    >>> from fluxion import dims
    >>> w = dims.dim("W")
    >>> divisibility(w, 32 * dims.floordiv(w, 32)), divisibility(w + 1, 2 * w)
    ((W, 32), None)
    """
    if isinstance(first, int) or isinstance(second, int):
        return None
    return _divisibility(first, second)


@functools.lru_cache(maxsize=4096)
def _divisibility(first: Any, second: Any) -> tuple[Dim, int] | None:
    sp = dims.sympy_module()
    for left, right in ((first, second), (second, first)):
        for floor in left.atoms(sp.floor):
            divisor = right / floor.args[0]  # sympy cancels X / (X/k) to k by itself when X is a product
            if not divisor.is_Integer:  # a sum, (H + W) / (H/4 + W/4), needs cancel
                divisor = sp.cancel(divisor)
            if divisor.is_Integer and divisor > 1 and sp.expand(left - divisor * floor) == 0:
                return right, int(divisor)
    return None


def symbol_divisor(subject: Dim, divisor: int) -> tuple[Any, int] | None:
    """What "``subject`` is divisible by ``divisor``" says of a single symbol: ``(S, k)`` for S divisible
    by k, when ``subject`` is a rational multiple of S (``H/2`` divisible by 2 means H divisible by 4).

    >>> from fluxion import dims
    >>> h = dims.dim("H")
    >>> symbol_divisor(h / 2, 2), symbol_divisor(3 * h, 6), symbol_divisor(h + 1, 2)
    ((H, 4), (H, 2), None)
    """
    if isinstance(subject, int):
        return None
    coefficient, symbol = subject.as_coeff_Mul()
    if not symbol.is_Symbol or not coefficient.is_Rational or coefficient <= 0:
        return None
    rational = cast(Any, coefficient)
    numerator, denominator = int(rational.p), int(rational.q)
    # S * p / q is a multiple of k  <=>  S * p is a multiple of k * q  <=>  S is a multiple of k*q / gcd(p, k*q)
    needed = divisor * denominator
    return symbol, needed // math.gcd(numerator, needed)


@functools.cache
def multiple_symbol(symbol: Any, divisor: int) -> Any:
    """The positive integer symbol that stands for ``symbol / divisor`` (one per pair).

    >>> from fluxion import dims
    >>> h = dims.dim("H")
    >>> multiple_symbol(h, 4) is multiple_symbol(h, 4), unwind(4 * multiple_symbol(h, 4))
    (True, H)
    """
    standing = dims.sympy_module().Dummy(f"{symbol}/{divisor}", integer=True, positive=True)
    _origins[standing] = (symbol, divisor)
    return standing


def unwind(size: Dim) -> Dim:
    """``size`` with every symbol for H/k written as H/k again.

    >>> unwind(3)
    3
    """
    if isinstance(size, int):
        return size
    found = {symbol: _origins[symbol] for symbol in size.free_symbols if symbol in _origins}
    if not found:
        return size
    expression = cast(Any, size)  # sympy's xreplace is untyped
    return dims.normal(expression.xreplace({symbol: origin / k for symbol, (origin, k) in found.items()}))


def unwind_value(value: ShapeValue) -> ShapeValue:
    """A shape, a tuple of shapes or None, unwound.

    >>> from fluxion import dims
    >>> unwind_value((dims.Shape([2, 3]), None))
    ((2, 3), None)
    """
    return dims.map_shapes(value, lambda shape: Shape(unwind(size) for size in shape))


@dataclass(frozen=True)
class Multiples:
    """What the constraints so far say of input symbols: the multiple each must be.

    >>> from fluxion import dims
    >>> h = dims.dim("H")
    >>> Multiples().with_equation(h, 4 * dims.floordiv(h, 4)).divisors
    ((H, 4),)
    """

    divisors: tuple[tuple[Any, int], ...] = ()
    _readings: dict[Any, Dim] = field(default_factory=dict[Any, Dim], compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self.divisors)

    def with_equation(self, first: Dim, second: Dim) -> Multiples:
        """These facts and what ``first = second`` adds when it says a symbol is a multiple of a number.

        >>> from fluxion import dims
        >>> h = dims.dim("H")
        >>> twice = Multiples().with_equation(2 * dims.floordiv(h, 2), h)
        >>> twice.with_equation(2 * dims.floordiv(multiple_symbol(h, 2), 2), multiple_symbol(h, 2)).divisors
        ((H, 4),)
        """
        found = divisibility(first, second)
        fact = None if found is None else symbol_divisor(*found)
        if fact is None:
            return self
        symbol, divisor = fact
        if symbol in _origins:  # "H/j is a multiple of m": H is a multiple of j * m
            symbol, scale = _origins[symbol]
            divisor *= scale
        divisors = dict(self.divisors)
        combined = math.lcm(divisors.get(symbol, 1), divisor)
        if divisors.get(symbol) == combined:
            return self
        divisors[symbol] = combined
        return Multiples(tuple(divisors.items()))

    def read(self, size: Dim) -> Dim:
        """``size`` in the current symbols: H as ``k*(H/k)``, an older H/j as ``(k/j)*(H/k)``.

        >>> from fluxion import dims
        >>> h = dims.dim("H")
        >>> four = Multiples().with_equation(4 * dims.floordiv(h, 4), h)
        >>> dims.show(unwind(four.read(dims.floordiv(h, 2))))
        'H/2'
        """
        if isinstance(size, int) or not self.divisors:
            return size
        read = self._readings.get(size)
        if read is None:
            current = dict(self.divisors)
            replacements: dict[Any, Any] = {}
            for symbol in size.free_symbols:
                origin, scale = _origins.get(symbol, (symbol, 1))
                divisor = current.get(origin)
                if divisor is not None and divisor != scale:
                    replacements[symbol] = (divisor // scale) * multiple_symbol(origin, divisor)
            read = dims.normal(size.subs(replacements)) if replacements else size
            self._readings[size] = read
        return read

    def read_value(self, value: ShapeValue) -> ShapeValue:
        """A shape, a tuple of shapes or None, read.

        >>> Multiples().read_value(None) is None
        True
        """
        if value is None or not self.divisors:
            return value
        return dims.map_shapes(value, lambda shape: Shape(self.read(size) for size in shape))
