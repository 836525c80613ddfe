"""Dimensions and shapes: an ``int`` or a sympy expression in named positive integer symbols.

sympy is imported on first use, so ``import fluxion.layers`` stays fast.

>>> from fluxion import dims
>>> height = dims.dim("H")
>>> dims.show(dims.conv_output(height, kernel=3, stride=2, padding=1))
'ceil(H/2)'
>>> dims.show(dims.conv_output(64, kernel=3, stride=2, padding=1))
'32'
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, Union, cast

from fluxion.errors import ShapeError

if TYPE_CHECKING:
    import sympy  # pyright: ignore[reportMissingTypeStubs]

Dim: TypeAlias = Union[int, "sympy.Expr"]
"""One dimension: a non-negative ``int``, or a sympy expression in positive integer symbols."""

DimLike: TypeAlias = Union[int, str, "sympy.Expr"]
"""What ``dim`` accepts: an ``int``, a symbol's name (``"H"``), or a sympy expression."""


class Shape(tuple[Dim, ...]):
    """The shape of one tensor: a tuple of dimensions, printed the way a person writes it.

    >>> from fluxion import dims
    >>> shape = dims.Shape(["B", 3, "H", "W"])
    >>> shape, shape[1]
    ((B, 3, H, W), 3)
    """

    def __new__(cls, dimensions: Iterable[DimLike]) -> Shape:
        return super().__new__(cls, (dim(value) for value in dimensions))

    def __repr__(self) -> str:
        inner = ", ".join(show(value) for value in self)
        return f"({inner},)" if len(self) == 1 else f"({inner})"

    def at(self, index: int, what: str) -> Dim:
        """Dimension ``index`` (negative counts from the end), or a ShapeError saying what needed it.

        >>> from fluxion import dims
        >>> dims.Shape(["B", 8]).at(-1, "Linear's input features")
        8
        """
        if not -len(self) <= index < len(self):
            raise ShapeError(f"{what} needs dimension {index}, but the input has shape {self!r}")
        return self[index]


class ShapeMap(Mapping[str, "ShapeValue"]):
    """Values by name, in order: the shapes of a dict (a Graph's named outputs), printed as one.

    It is one value (a node given it receives one argument, as a dict in ``forward``), equal to
    any mapping with the same items.

    >>> from fluxion import dims
    >>> heads = dims.ShapeMap({"mean": dims.Shape(["B", 4]), "std": dims.Shape(["B", 4])})
    >>> heads, heads["std"], heads == {"mean": dims.Shape(["B", 4]), "std": dims.Shape(["B", 4])}
    ({mean: (B, 4), std: (B, 4)}, (B, 4), True)
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, ShapeValue] | Iterable[tuple[str, ShapeValue]]) -> None:
        self._items: dict[str, ShapeValue] = dict(items)

    def __getitem__(self, key: str) -> ShapeValue:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{key}: {value!r}" for key, value in self._items.items()) + "}"


ShapeValue: TypeAlias = Shape | tuple["ShapeValue", ...] | ShapeMap | None
"""What flows between nodes: a tensor's ``Shape``, a tuple of them (several outputs), values by
name (a ``ShapeMap``: a dict of tensors), or None."""


def sympy_module() -> Any:
    """sympy, imported on first use.

    >>> sympy_module().__name__
    'sympy'
    """
    import sympy  # pyright: ignore[reportMissingTypeStubs]

    return sympy


def dim(value: DimLike) -> Dim:
    """A dimension from an int, a symbol's name or a sympy expression (integers become ``int``).

    >>> from fluxion import dims
    >>> dims.dim("H") * 2, dims.dim(3)
    (2*H, 3)
    """
    if isinstance(value, bool):
        raise ShapeError(f"a dimension is an int, a symbol name or an expression, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ShapeError(f"a dimension cannot be negative, got {value}")
        return value
    sp = sympy_module()
    if isinstance(value, str):
        if not value.isidentifier():
            raise ShapeError(f"a symbolic dimension is named by an identifier, got {value!r}")
        return cast(Dim, sp.Symbol(value, integer=True, positive=True))
    if isinstance(value, sp.Basic):
        return normal(value)
    raise ShapeError(f"a dimension is an int, a symbol name or an expression, got {type(value).__name__}")


def known(value: Dim) -> bool:
    """Whether a dimension is a plain number.

    >>> from fluxion import dims
    >>> dims.known(3), dims.known(dims.dim("H"))
    (True, False)
    """
    return isinstance(value, int)


def show(value: Dim) -> str:
    """A dimension as a person writes it, in the shortest of its equal forms: ``ceil(H/2)`` rather
    than ``floor((H - 1)/2) + 1``, ``floor((H - 1)/2)`` rather than sympy's ``floor(H/2 - 1/2)``.

    The forms are equal for every integer value of the symbols (``floor(N/k) + c`` is
    ``ceil((N - k + 1 + c*k)/k)``), for each floor of a product or a sum too (a flatten after
    strides prints ``3*ceil(H/4)*ceil(W/4)``); only the text changes, the expression stays as it is.

    >>> from fluxion import dims
    >>> dims.show(dims.dim("T") + 1), dims.show(4)
    ('T + 1', '4')
    >>> h = dims.dim("H")
    >>> dims.show(dims.conv_output(h, kernel=3, stride=2, padding=1)), dims.show(dims.floordiv(h, 2))
    ('ceil(H/2)', 'floor(H/2)')
    """
    if isinstance(value, int):
        return str(value)
    return _shown(value)


@functools.lru_cache(maxsize=4096)
def _shown(value: Any) -> str:
    sp = sympy_module()
    if isinstance(value, sp.Min | sp.Max):  # each bound on its own (a pooling window in ceil_mode)
        return f"{type(value).__name__}({', '.join(_shown(argument) for argument in value.args)})"
    # not evaluated again: sympy would drop the floor of some products over a number (see floordiv)
    tidy = value.replace(sp.floor, lambda argument: sp.floor(sp.together(argument), evaluate=False))  # pyright: ignore[reportUnknownLambdaType]
    return min((str(tidy), *_rounded_forms(value)), key=len)  # the first of the shortest: floor on a tie


def _rounded_forms(value: Any) -> list[str]:
    """``value`` with every ``floor(N/k)`` written again, all as floors or all as ceilings, with the
    constant of ``N`` brought near zero and the rest moved out: ``floor((T - 3)/2)`` is
    ``floor((T - 1)/2) - 1``, and ``floor(N/k)`` is ``ceil((N - k + 1)/k)``. sympy then gathers the
    constants (``3*(ceil(H/4) - 1) + 3`` is ``3*ceil(H/4)``). Equal for integers: each N has
    integer coefficients (a floor whose N has not, or holds another floor, stays as it is)."""
    sp = sympy_module()
    shown = {"floor": sp.Function("floor"), "ceil": sp.Function("ceil")}  # printed as is, never evaluated
    splits: list[tuple[Any, Any, int, int]] = []
    for floor in value.atoms(sp.floor):
        numerator, denominator = sp.fraction(sp.together(floor.args[0]))
        shift, variable = sp.expand(numerator).as_coeff_Add()
        integral = all(part.as_coeff_Mul()[0].is_Integer for part in sp.Add.make_args(variable))
        if denominator.is_Integer and shift.is_Integer and integral and not variable.has(sp.floor):
            splits.append((floor, variable, int(shift), int(denominator)))
    if not splits:
        return []
    forms: list[str] = []
    for kind in ("floor", "ceil"):
        for nearest in (True, False):
            replaced: dict[Any, Any] = {}
            for floor, variable, shift, divisor in splits:
                start = shift if kind == "floor" else shift - divisor + 1
                low, high = start % divisor - divisor, start % divisor  # the constant left inside
                kept = (high if high <= -low else low) if nearest else (low if high <= -low else high)
                inside = shown[kind](sp.together((variable + kept) / divisor))
                replaced[floor] = inside + (start - kept) // divisor
            forms.append(str(value.xreplace(replaced)))
    return forms


def normal(value: Any) -> Dim:
    """A computed dimension in normal form: an ``int`` when it is a number.

    >>> from fluxion import dims
    >>> type(dims.normal(dims.dim("H") - dims.dim("H") + 2)).__name__
    'int'
    """
    if isinstance(value, int):
        return value
    expression = cast("sympy.Expr", value)
    return int(expression) if expression.is_Integer else expression


def floordiv(numerator: Dim, denominator: int) -> Dim:
    """``numerator // denominator``, exact for ints and a ``floor`` for expressions.

    >>> from fluxion import dims
    >>> dims.floordiv(7, 2), dims.show(dims.floordiv(dims.dim("H"), 2))
    (3, 'floor(H/2)')
    >>> dims.show(dims.floordiv(dims.floordiv(dims.dim("H"), 2) + 1, 2))
    'ceil((H - 1)/4)'
    >>> dims.show(dims.floordiv(dims.dim("H") * (2 * dims.dim("H") + 2), 6))  # not always whole: H = 1 gives 4/6
    'floor(H*(H + 1)/3)'
    """
    if isinstance(numerator, int):
        return numerator // denominator
    sp = sympy_module()
    shift, rest = numerator.as_coeff_Add()
    if isinstance(rest, sp.floor) and shift.is_Integer:
        # floor((floor(y) + k) / d) = floor((y + k) / d): strided layers in a row give one floor, not a nest
        numerator = rest.args[0] + shift
    floored = sp.floor(numerator / denominator)
    # sympy takes some products and powers over a number for whole ones when they are not
    # (H*(2*H + 2)/6 is 4/6 at H = 1) and leaves them out of the floor: where a term it left out is
    # not whole on the expanded form, the floor is taken of the expanded numerator, which it reads right
    if all(whole(term) for term in sp.Add.make_args(floored) if not term.has(sp.floor)):
        return normal(floored)
    return normal(sp.floor(sp.expand(numerator) / denominator))


def whole(value: Dim) -> bool | None:
    """True when ``value`` is a whole number for every value of its symbols (positive integers), False
    when it is a number that is not whole, None when that is not decided (``H/2``).

    Decided on the expanded form: sympy takes some products over a number for whole ones when they
    are not, ``H*(2*H + 2)/6`` among them (4/6 at H = 1).

    >>> from fluxion import dims
    >>> h = dims.dim("H")
    >>> dims.whole(6 * h / 3), dims.whole(h / 2), dims.whole(h * (2 * h + 2) / 6)
    (True, None, None)
    """
    if isinstance(value, int):
        return True
    expression: Any = value
    if expression.is_number:
        return bool(expression.is_integer)
    return True if sympy_module().expand(expression).is_integer else None


def conv_output(size: Dim, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> Dim:
    """The output size of a convolution or pooling window along one dimension (torch's formula).

    >>> from fluxion import dims
    >>> dims.conv_output(224, kernel=7, stride=2, padding=3)
    112
    """
    return normal(floordiv(size + 2 * padding - dilation * (kernel - 1) - 1, stride) + 1)


def product(values: Iterable[Dim]) -> Dim:
    """The product of dimensions (1 for none).

    >>> from fluxion import dims
    >>> dims.show(dims.product([dims.dim("H"), dims.dim("W"), 3]))
    '3*H*W'
    """
    result: Any = 1
    for value in values:
        result = result * value
    return normal(result)


def equal(first: Dim, second: Dim) -> bool | None:
    """True when two dimensions are equal for every value of the symbols, False when they never
    can be, None when it depends on the values (a constraint).

    >>> from fluxion import dims
    >>> h = dims.dim("H")
    >>> dims.equal(2 * h, h + h), dims.equal(h + 1, h), dims.equal(1, h + 1), dims.equal(2 * dims.floordiv(h, 2), h)
    (True, False, False, None)
    """
    if isinstance(first, int) and isinstance(second, int):
        return first == second
    sp = sympy_module()
    difference = sp.expand(first - second)
    if difference == 0:
        return True
    if difference.is_number or difference.is_zero is False:  # sympy knows the symbols are positive
        return False
    return None


def nonnegative(value: Dim) -> bool | None:
    """True when ``value >= 0`` for all values of the symbols, False when never, None when it depends.

    Symbols are positive integers: besides sympy's own reasoning, each is written as ``1 + n`` with
    ``n >= 0``, which decides polynomials such as ``H + W - 2``.

    >>> from fluxion import dims
    >>> h, w = dims.dim("H"), dims.dim("W")
    >>> dims.nonnegative(h + w - 2), dims.nonnegative(-h), dims.nonnegative(h - 2), dims.nonnegative(-1)
    (True, False, None, False)
    """
    if isinstance(value, int):
        return value >= 0
    sp = sympy_module()
    expression: Any = value
    shift = {
        symbol: sp.Dummy(integer=True, nonnegative=True) + 1
        for symbol in expression.free_symbols
        if symbol.is_integer and symbol.is_positive
    }
    for candidate in (expression, sp.expand(expression.xreplace(shift))):
        if candidate.is_nonnegative:
            return True
        if candidate.is_negative:
            return False
    return None


def substitute(size: Dim, values: Mapping[str, int]) -> Dim:
    """``size`` with its symbols replaced by the numbers in ``values`` (an ``int`` once all are given).

    >>> from fluxion import dims
    >>> h = dims.dim("H")
    >>> dims.substitute(dims.floordiv(h, 2) + 1, {"H": 9}), dims.substitute(h * dims.dim("W"), {"H": 2})
    (5, 2*W)
    """
    if isinstance(size, int):
        return size
    return _substituted(size, tuple(sorted(values.items())))


@functools.lru_cache(maxsize=4096)
def _substituted(size: Any, values: tuple[tuple[str, int], ...]) -> Dim:
    # the nodes of a model share their expressions: each is substituted once per set of values
    return normal(size.subs({dim(name): number for name, number in values}))


def map_shapes(value: ShapeValue, change: Callable[[Shape], Shape]) -> ShapeValue:
    """``value`` with each of its shapes passed through ``change``, its tuples and maps kept.

    >>> from fluxion import dims
    >>> dims.map_shapes(dims.ShapeMap({"a": (dims.Shape([2]), None)}), lambda shape: dims.Shape([*shape, 1]))
    {a: ((2, 1), None)}
    """
    if value is None:
        return None
    if isinstance(value, Shape):
        return change(value)
    if isinstance(value, ShapeMap):
        return ShapeMap((key, map_shapes(item, change)) for key, item in value.items())
    return tuple(map_shapes(item, change) for item in value)


def parts(value: ShapeValue) -> tuple[ShapeValue, ...]:
    """The values a tuple or ``ShapeMap`` holds (its values, in order); none for a shape or None.

    >>> from fluxion import dims
    >>> dims.parts(dims.ShapeMap({"a": dims.Shape([2]), "b": None})), dims.parts(dims.Shape([2]))
    (((2,), None), ())
    """
    if isinstance(value, ShapeMap):
        return tuple(value.values())
    if value is None or isinstance(value, Shape):
        return ()
    return value


def substitute_shape(value: ShapeValue, values: Mapping[str, int]) -> ShapeValue:
    """A shape, a tuple or ``ShapeMap`` of them, or None, with every size passed through ``substitute``.

    >>> from fluxion import dims
    >>> dims.substitute_shape((dims.Shape(["B", "T"]), None), {"B": 2, "T": 7})
    ((2, 7), None)
    """
    return map_shapes(value, lambda shape: Shape(substitute(size, values) for size in shape))
