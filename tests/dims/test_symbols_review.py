"""floordiv and show on products and powers that sympy takes for multiples of a number when they are
not (sympy 1.14: ``(2*S + 2)**2/6``, ``H*(2*W + 2)/6``): the floor is kept, computed and printed."""

import pytest
import sympy  # pyright: ignore[reportMissingTypeStubs]

from fluxion import dims

H, W, S = dims.dim("H"), dims.dim("W"), dims.dim("S")


def _floored(numerator: dims.Dim, divisor: int) -> list[tuple[dict[str, int], dims.Dim, int]]:
    """For small values of the symbols: floordiv substituted, and the integer floor division."""
    results: list[tuple[dict[str, int], dims.Dim, int]] = []
    floored = dims.floordiv(numerator, divisor)
    for h in range(1, 5):
        for w in range(1, 5):
            values = {"H": h, "W": w, "S": h}
            number = dims.substitute(numerator, values)
            assert isinstance(number, int)
            results.append((values, dims.substitute(floored, values), number // divisor))
    return results


def test_floordiv_of_a_power_keeps_its_floor() -> None:
    # a single-channel map of side 2*S + 2, flattened: (2*S + 2)**2 elements, 16 at S = 1
    for values, got, expected in _floored((2 * S + 2) ** 2, 6):
        assert got == expected, (values, got)


@pytest.mark.parametrize(
    "numerator",
    [
        H * W + H * (2 * W + 2),  # two flattened maps concatenated: 5 at H = W = 1
        S * (2 * S + 2) + 6,  # a flattened map and 6 more features: 10 at S = 1
        (2 * S + 2) ** 2 + 6,
    ],
    ids=["sum of products", "product plus a number", "power plus a number"],
)
def test_floordiv_of_a_sum_holding_a_product_keeps_its_floor(numerator: dims.Dim) -> None:
    for values, got, expected in _floored(numerator, 6):
        assert got == expected, (values, got)


def test_show_keeps_a_floor_that_the_expression_has() -> None:
    size = dims.floordiv(H * (H + 1) + W * (W + 1), 6)
    assert dims.substitute(size, {"H": 1, "W": 1}) == 0  # the expression is right: floor(4/6)
    text = dims.show(size)  # printed '(H*(H + 1) + W*(W + 1))/6': 2/3 at H = W = 1
    names = {"H": H, "W": W, "floor": sympy.floor, "ceil": sympy.ceiling}
    read = sympy.sympify(text, locals=names)  # pyright: ignore[reportUnknownMemberType]
    for h in range(1, 5):
        for w in range(1, 5):
            assert read.subs({H: h, W: w}) == dims.substitute(size, {"H": h, "W": w}), (text, h, w)
