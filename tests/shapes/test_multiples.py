"""Sizes known to be multiples during inference: H divisible by k read as k times a new integer, and back."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.shapes.multiples import (
    Multiples,
    divisibility,
    multiple_symbol,
    symbol_divisor,
    unwind,
    unwind_value,
)

H, W = dims.dim("H"), dims.dim("W")


def divisible(size: dims.Dim, k: int) -> tuple[dims.Dim, dims.Dim]:
    """The equation a rule records for "``size`` is a multiple of ``k``": ``k*floor(size/k) = size``."""
    return k * dims.floordiv(size, k), size


def test_divisibility_needs_a_floor_times_its_divisor_and_nothing_more() -> None:
    assert divisibility(*divisible(H, 6)) == (H, 6)
    assert divisibility(2 * dims.floordiv(H, 2) + 1, H) is None  # odd, not even
    assert divisibility(3 * dims.floordiv(H, 2), H) is None  # 3/2 of an even H is no divisibility
    assert divisibility(4, H) is None
    assert divisibility(H, 4) is None


@pytest.mark.parametrize(
    ("size", "k"), [(H + W, 2), (H + W, 8), (H / 2 + W, 3), (H * W + H, 4), (2 * H - 1, 3), (2 * H - 1, 4)]
)
def test_divisibility_of_a_sum_is_found_too(size: dims.Dim, k: int) -> None:
    """Sums sympy keeps whole under the floor (it splits 3*H + W by 3 into H + floor(W/3), read as an equation)."""
    assert divisibility(*divisible(size, k)) == (size, k)
    assert divisibility(*reversed(divisible(size, k))) == (size, k)
    assert symbol_divisor(size, k) is None  # a sum says nothing of any one symbol
    assert Multiples().with_equation(*divisible(size, k)) == Multiples()


@pytest.mark.parametrize(
    ("subject", "divisor", "expected"),
    [
        (H, 4, (H, 4)),
        (H / 2, 2, (H, 4)),  # H/2 a multiple of 2: H a multiple of 4
        (3 * H, 6, (H, 2)),  # 3H a multiple of 6: H even
        (2 * H / 3, 4, (H, 6)),  # 2H/3 = 4n: H = 6n
        (H + 1, 2, None),
        (H * W, 2, None),  # a product of symbols says nothing of either
        (-H, 2, None),
        (4, 2, None),
    ],
)
def test_symbol_divisor_says_what_a_divisibility_asks_of_one_symbol(
    subject: dims.Dim, divisor: int, expected: tuple[dims.Dim, int] | None
) -> None:
    assert symbol_divisor(subject, divisor) == expected


def test_a_multiple_symbol_is_one_positive_integer_per_symbol_and_divisor() -> None:
    quarter = multiple_symbol(H, 4)
    assert multiple_symbol(H, 4) is quarter
    assert multiple_symbol(H, 2) is not quarter
    assert multiple_symbol(W, 4) is not quarter
    assert quarter.is_integer
    assert quarter.is_positive
    assert unwind(4 * quarter) == H
    assert unwind(quarter + 1) == H / 4 + 1
    assert dims.show(unwind(2 * multiple_symbol(H, 2) * multiple_symbol(W, 8))) == "H*W/8"


def test_unwind_leaves_numbers_and_plain_sizes_alone() -> None:
    assert unwind(7) == 7
    size = dims.floordiv(H, 2) + W
    assert unwind(size) is size
    assert unwind_value(None) is None
    assert unwind_value((dims.Shape([2, 4 * multiple_symbol(H, 4)]), None)) == (dims.Shape([2, H]), None)


def test_multiples_learn_only_from_divisibility_and_keep_the_least_common_multiple() -> None:
    none = Multiples()
    assert not none
    assert none.with_equation(H + 1, 2 * W) is none
    assert none.with_equation(3, H) is none  # a value, not a divisibility
    four = none.with_equation(*divisible(H, 4))
    assert four
    assert four.divisors == ((H, 4),)
    assert four.with_equation(*divisible(H, 2)) is four  # already known
    assert four.with_equation(*divisible(H, 6)).divisors == ((H, 12),)
    both = four.with_equation(*divisible(W, 3))
    assert both.divisors == ((H, 4), (W, 3))
    assert both == Multiples(((H, 4), (W, 3)))  # what was read so far does not count


def test_a_divisibility_of_a_multiple_symbol_is_one_of_its_origin() -> None:
    half = multiple_symbol(H, 2)
    two = Multiples().with_equation(*divisible(H, 2))
    assert two.with_equation(*divisible(half, 3)).divisors == ((H, 6),)
    assert two.with_equation(*divisible(half / 2, 2)).divisors == ((H, 8),)


def test_read_writes_sizes_in_the_newest_symbol() -> None:
    assert Multiples().read(dims.floordiv(H, 2)) == dims.floordiv(H, 2)
    four = Multiples().with_equation(*divisible(H, 4))
    assert four.read(5) == 5
    assert four.read(H) == 4 * multiple_symbol(H, 4)
    assert four.read(dims.floordiv(H, 2)) == 2 * multiple_symbol(H, 4)
    assert four.read(W + 1) == W + 1  # nothing known of W
    eight = four.with_equation(*divisible(H, 8))
    assert eight.read(four.read(H)) == 8 * multiple_symbol(H, 8)  # an older H/4 in the newer H/8
    assert four.read_value(None) is None
    assert four.read_value((dims.Shape([H]), dims.Shape([2]))) == (
        dims.Shape([4 * multiple_symbol(H, 4)]),
        dims.Shape([2]),
    )


@settings(max_examples=60, deadline=None)
@given(
    divisors=st.lists(st.integers(2, 6), min_size=1, max_size=3),
    strides=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    multiple=st.integers(1, 6),
)
def test_a_read_size_unwound_is_the_size_for_every_multiple(
    divisors: list[int], strides: list[int], multiple: int
) -> None:
    """Reading changes how a size is written, never its value at a size the facts allow."""
    known = Multiples()
    for divisor in divisors:
        known = known.with_equation(*divisible(H, divisor))
    size: dims.Dim = H
    for stride in strides:
        size = dims.conv_output(size, kernel=3, stride=stride, padding=1)
    value = math.lcm(*divisors) * multiple
    read = unwind(known.read(size))
    assert not any(symbol.name != "H" for symbol in getattr(read, "free_symbols", ()))
    assert dims.substitute(read, {"H": value}) == dims.substitute(size, {"H": value})


def test_rules_after_a_divisibility_see_exact_fractions_of_the_input() -> None:
    def downsampling() -> fl.Conv1d:
        return fl.Conv1d(1, 1, kernel_size=3, stride=2, padding=1)

    length = dims.dim("L")
    free = shapes.infer(fl.Chain(first=downsampling(), second=downsampling()), ("B", 1, "L"))
    assert free["second"].output == dims.Shape(["B", 1, dims.floordiv(dims.floordiv(length - 1, 2), 2) + 1])
    model = fl.Chain(
        split=fl.Unflatten(-1, (4, -1)),  # L must be a multiple of 4
        merge=fl.Flatten(-2),
        first=downsampling(),
        second=downsampling(),
    )
    report = shapes.infer(model, ("B", 1, "L"))
    assert report["first"].output == dims.Shape(["B", 1, length / 2])
    assert report["second"].output == dims.Shape(["B", 1, length / 4])
    assert [str(constraint).split(" (")[0] for constraint in report.constraints] == ["L must be divisible by 4"]
