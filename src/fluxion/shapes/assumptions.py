"""Reading shapes under the model's constraints: ``8*floor(H/8)`` is ``H`` once H must be divisible by 8.

Constraints say what the input sizes must be for the model to work at all, so every shape may be
read under them. Two kinds are used: a symbol that must be divisible by ``k`` (it becomes ``k``
times a new integer, which lets the floors resolve), and a symbol that must equal a number. Other
constraints are kept as they are; those the facts imply are dropped.

>>> from fluxion import dims
>>> h = dims.dim("H")
>>> facts = Assumptions.of([(8 * dims.floordiv(h, 8), h)])
>>> dims.show(facts.apply(8 * dims.floordiv(h, 8))), dims.show(facts.apply(dims.floordiv(h, 4)))
('H', 'H/4')
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue
from fluxion.errors import ShapeError
from fluxion.shapes.multiples import Multiples, divisibility, symbol_divisor, unwind


@dataclass(frozen=True)
class Assumptions:
    """What the constraints say of single symbols: their divisors and their fixed values.

    >>> from fluxion import dims
    >>> c = dims.dim("C")
    >>> Assumptions.of([(3, c)]).apply(2 * c)
    6
    """

    divisors: tuple[tuple[Any, int], ...] = ()
    values: tuple[tuple[Any, int], ...] = ()

    @staticmethod
    def of(equations: Iterable[tuple[Dim, Dim]]) -> Assumptions:
        """The facts found in these equations (pairs of sides).

        >>> from fluxion import dims
        >>> h = dims.dim("H")
        >>> Assumptions.of([(2 * dims.floordiv(h, 2), h), (4 * dims.floordiv(h, 4), h)]).divisors
        ((H, 4),)
        """
        facts = Assumptions()
        for first, second in equations:
            facts = facts.with_equation(first, second)
        return facts

    def with_equation(self, first: Dim, second: Dim, *, values: bool = True) -> Assumptions:
        """These facts and what ``first = second`` adds (the same object when it adds nothing);
        ``values=False`` ignores a symbol fixed to a number.

        >>> from fluxion import dims
        >>> h = dims.dim("H")
        >>> Assumptions().with_equation(h, 4 * dims.floordiv(h, 4)).with_equation(3, h, values=False)
        Assumptions(divisors=((H, 4),), values=())
        """
        found = divisibility(first, second)
        if found is not None:
            fact = symbol_divisor(*found)
            if fact is None:
                return self
            divisors = dict(self.divisors)
            combined = math.lcm(divisors.get(fact[0], 1), fact[1])
            if divisors.get(fact[0]) == combined:
                return self
            divisors[fact[0]] = combined
            return Assumptions(tuple(divisors.items()), self.values)
        symbol = _fixed_symbol(first, second)
        if not values or symbol is None or symbol in dict(self.values):
            return self
        number = first if isinstance(first, int) else cast(int, second)
        return Assumptions(self.divisors, (*self.values, (symbol, number)))

    def __bool__(self) -> bool:
        return bool(self.divisors or self.values)

    @functools.cached_property
    def _multiples(self) -> Multiples:
        values = dict(self.values)
        return Multiples(tuple((symbol, k) for symbol, k in self.divisors if symbol not in values))

    def apply(self, size: Dim) -> Dim:
        """``size`` read under the facts: multiples resolve its roundings, fixed values are put in.

        >>> from fluxion import dims
        >>> h = dims.dim("H")
        >>> facts = Assumptions.of([(2 * dims.floordiv(h, 2), h)])
        >>> dims.show(facts.apply(dims.conv_output(h, kernel=3, stride=2, padding=1)))
        'H/2'
        """
        if isinstance(size, int) or not self:
            return size
        read = unwind(self._multiples.read(size))
        values = dict(self.values)
        if not isinstance(read, int) and read.free_symbols & values.keys():
            read = dims.normal(dims.sympy_module().expand(read.subs(values)))
        return read

    def apply_to(self, value: ShapeValue) -> ShapeValue:
        """A shape, a tuple of shapes or None, read under the facts.

        >>> from fluxion import dims
        >>> h = dims.dim("H")
        >>> Assumptions.of([(h, 3)]).apply_to((dims.Shape([h, 2]), None))
        ((3, 2), None)
        """
        if value is None or not self:
            return value
        return dims.map_shapes(value, lambda shape: Shape(self.apply(size) for size in shape))

    def implies(self, first: Dim, second: Dim) -> bool | None:
        """Whether ``first = second`` holds whenever the facts do (None when it still depends on the sizes).

        >>> from fluxion import dims
        >>> h = dims.dim("H")
        >>> facts = Assumptions.of([(8 * dims.floordiv(h, 8), h)])
        >>> facts.implies(2 * dims.floordiv(h, 8), dims.floordiv(h, 4)), facts.implies(h, 3)
        (True, None)
        """
        return dims.equal(self.apply(first), self.apply(second))

    def essential(self, equations: Sequence[tuple[Dim, Dim]]) -> list[tuple[list[int], Dim, Dim]]:
        """The equations worth reporting, as ``(positions they come from, first, second)``: one
        divisibility per symbol at its strongest (combined from several equations when none says it
        alone), each fixed value once, and the equations the facts do not imply. A ``ShapeError``
        when the facts contradict an equation.

        >>> from fluxion import dims
        >>> h = dims.dim("H")
        >>> equations = [(2 * dims.floordiv(h, 2), h), (2 * dims.floordiv(h / 2, 2), h / 2), (h, h + 0)]
        >>> [(positions, dims.show(first), dims.show(second)) for positions, first, second in
        ...  Assumptions.of(equations).essential(equations)]
        [([0, 1], '4*floor(H/4)', 'H')]
        """
        divisors = dict(self.divisors)
        values = dict(self.values)
        sources: dict[Any, list[int]] = {}
        stated: dict[Any, int] = {}  # a symbol -> the equation that says its whole divisor, if one does
        for position, (first, second) in enumerate(equations):
            found = divisibility(first, second)
            fact = None if found is None else symbol_divisor(*found)
            if fact is not None:
                sources.setdefault(fact[0], []).append(position)
                if found is not None and found[0] == fact[0] and fact[1] == divisors[fact[0]]:
                    stated.setdefault(fact[0], position)
        kept: list[tuple[list[int], Dim, Dim]] = []
        reported: set[Any] = set()  # symbols whose divisor is reported
        fixed_reported: set[Any] = set()  # symbols whose value is reported
        for position, (first, second) in enumerate(equations):
            if self.implies(first, second) is False:
                raise ShapeError(
                    f"no input sizes satisfy every constraint: {dims.show(first)} = {dims.show(second)} "
                    "contradicts the others"
                )
            found = divisibility(first, second)
            fact = None if found is None else symbol_divisor(*found)
            if fact is not None:
                symbol = fact[0]
                if symbol not in reported:
                    reported.add(symbol)
                    whole = stated.get(symbol)
                    if whole is not None:
                        kept.append(([whole], *equations[whole]))
                    else:
                        divisor = divisors[symbol]
                        kept.append((sources[symbol], divisor * dims.floordiv(symbol, divisor), symbol))
                continue
            fixed = _fixed_symbol(first, second)
            if fixed is not None and fixed in values and fixed not in fixed_reported:
                fixed_reported.add(fixed)
                kept.append(([position], first, second))
                continue
            if self.implies(first, second) is None:
                kept.append(([position], first, second))
        return kept


def _fixed_symbol(first: Dim, second: Dim) -> Any:
    """The symbol an equation ``symbol = number`` fixes, or None."""
    for symbol, number in ((first, second), (second, first)):
        if isinstance(number, int) and not isinstance(symbol, int) and symbol.is_Symbol:
            return symbol
    return None
