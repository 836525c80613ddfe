"""Dimensions and shapes (``fluxion.dims.symbols``): what a dimension may be, how it prints, and that
symbolic arithmetic (floor division, convolution sizes, equality, signs, substitution) agrees with
the numbers it stands for."""

import pytest
import sympy  # pyright: ignore[reportMissingTypeStubs]
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxion import dims

H, W = dims.dim("H"), dims.dim("W")


# -- dim ---------------------------------------------------------------------------------------------


def test_dim_takes_ints_names_and_expressions() -> None:
    assert dims.dim(3) == 3
    assert dims.dim("H") is H  # one symbol per name: expressions built apart agree
    assert H.is_integer
    assert H.is_positive
    three = dims.dim(sympy.Integer(3))
    assert (three, type(three)) == (3, int)
    assert dims.dim(H + H) == 2 * H


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "a dimension is an int, a symbol name or an expression, got True"),
        (-1, "a dimension cannot be negative, got -1"),
        ("x y", "a symbolic dimension is named by an identifier, got 'x y'"),
        ("", "a symbolic dimension is named by an identifier, got ''"),
        (2.5, "a dimension is an int, a symbol name or an expression, got float"),
        (None, "a dimension is an int, a symbol name or an expression, got NoneType"),
    ],
)
def test_dim_refuses_anything_else_with_a_shape_error(value: object, message: str) -> None:
    with pytest.raises(dims.ShapeError) as caught:
        dims.dim(value)  # pyright: ignore[reportArgumentType]
    assert str(caught.value) == message


def test_known_tells_numbers_from_expressions() -> None:
    assert dims.known(0)
    assert not dims.known(H)
    assert dims.known(dims.normal(H - H + 4))


# -- Shape ---------------------------------------------------------------------------------------------


def test_a_shape_is_a_tuple_of_dims_printed_as_a_person_writes_it() -> None:
    shape = dims.Shape(["B", 3, H + 1])
    assert isinstance(shape, tuple)
    assert shape == (dims.dim("B"), 3, H + 1)
    assert repr(shape) == "(B, 3, H + 1)"
    assert repr(dims.Shape(["B"])) == "(B,)"
    assert repr(dims.Shape([])) == "()"
    with pytest.raises(dims.ShapeError, match="cannot be negative"):
        dims.Shape([2, -1])


def test_shape_at_counts_from_either_end_and_says_what_needed_a_missing_dimension() -> None:
    shape = dims.Shape(["B", 8])
    assert (shape.at(0, "x"), shape.at(-1, "x"), shape.at(-2, "x")) == (dims.dim("B"), 8, dims.dim("B"))
    for index in (2, -3):
        with pytest.raises(dims.ShapeError) as caught:
            shape.at(index, "Linear's input features")
        assert str(caught.value) == f"Linear's input features needs dimension {index}, but the input has shape (B, 8)"


# -- arithmetic ---------------------------------------------------------------------------------------------


def read_back(text: str, values: dict[str, int]) -> int:
    """The number a shown dimension stands for, read back from its text."""
    names = {name: sympy.Integer(number) for name, number in values.items()}
    return int(sympy.sympify(text.replace("ceil(", "ceiling("), locals=names))  # pyright: ignore[reportUnknownArgumentType]


def test_show_writes_numbers_and_sums_plainly() -> None:
    assert dims.show(7) == "7"
    assert dims.show(H + 1) == "H + 1"
    assert dims.show(dims.product([H, W, 2])) == "2*H*W"
    assert dims.show(dims.floordiv(H + W, 3)) == "floor((H + W)/3)"


@pytest.mark.parametrize(
    "value",
    [
        dims.floordiv(H - 1, 2),
        dims.floordiv(H - 1, 2) + 1,
        dims.conv_output(H, kernel=3, stride=2, padding=1),
        dims.conv_output(H, kernel=7, stride=4),
        dims.floordiv(dims.floordiv(H, 2) + 1, 2),
        2 * dims.floordiv(H, 2) + 3,
        dims.floordiv(H * W, 4) + W,
    ],
)
def test_show_writes_a_floor_over_one_fraction_that_reads_back_to_the_same_numbers(value: dims.Dim) -> None:
    text = dims.show(value)
    assert "1/2" not in text  # sympy's own form would be floor(H/2 - 1/2)
    for h in range(1, 20):
        for w in (1, 3):
            assert read_back(text, {"H": h, "W": w}) == dims.substitute(value, {"H": h, "W": w}), text


def test_show_prefers_the_shortest_equal_form() -> None:
    stride_2 = dims.conv_output(H, kernel=3, stride=2, padding=1)
    assert dims.show(stride_2) == "ceil(H/2)"
    assert dims.show(dims.conv_output(dims.conv_output(stride_2, 3, 2, 1), 3, 2, 1)) == "ceil(H/8)"
    assert dims.show(dims.conv_output(H, kernel=3, stride=2)) == "ceil(H/2) - 1"
    assert dims.show(3 * stride_2) == "3*ceil(H/2)"
    assert dims.show(dims.floordiv(H, 2)) == "floor(H/2)"  # a tie keeps the floor
    assert dims.show(dims.floordiv(H, 3) + 1) == "floor(H/3) + 1"
    # several floors at once: a flatten after strides, a concatenation of two scales
    quarter_h = dims.conv_output(stride_2, 3, 2, 1)
    quarter_w = dims.conv_output(dims.conv_output(W, 3, 2, 1), 3, 2, 1)
    assert dims.show(3 * quarter_h * quarter_w) == "3*ceil(H/4)*ceil(W/4)"
    assert dims.show(stride_2 + quarter_h) == "ceil(H/4) + ceil(H/2)"


@st.composite
def layer_sizes(draw: st.DrawFn) -> dims.Dim:
    """A size as layers in a row make it: convolutions and pools (kernel, stride, padding, dilation),
    floor divisions, shifts and scales, starting from H or H + W."""
    size: dims.Dim = H if draw(st.booleans()) else H + W
    for _ in range(draw(st.integers(1, 4))):
        step = draw(st.sampled_from(["conv", "floordiv", "shift", "scale"]))
        if step == "conv":
            kernel, stride = draw(st.integers(1, 7)), draw(st.integers(1, 4))
            size = dims.conv_output(size, kernel, stride, draw(st.integers(0, kernel // 2)), draw(st.integers(1, 2)))
        elif step == "floordiv":
            size = dims.floordiv(size, draw(st.integers(2, 8)))
        elif step == "shift":
            size = dims.normal(size + draw(st.integers(-3, 3)))
        else:
            size = dims.normal(size * draw(st.integers(2, 3)))
    return size


@st.composite
def combined_sizes(draw: st.DrawFn) -> dims.Dim:
    """One size as layers make it, or two combined as a flatten (a product) or a concatenation (a sum) does."""
    first = draw(layer_sizes())
    join = draw(st.sampled_from(["one", "product", "sum"]))
    if join == "one":
        return first
    second = draw(layer_sizes())
    scale = draw(st.integers(1, 4))
    return dims.normal(scale * first * second if join == "product" else first + scale * second)


@settings(max_examples=80, deadline=None)
@given(combined_sizes())
def test_printed_sizes_equal_the_exact_expression_for_every_size_from_1_to_64(size: dims.Dim) -> None:
    text = dims.show(size)
    for h in range(1, 65):
        values = {"H": h, "W": 3}
        assert read_back(text, values) == dims.substitute(size, values), (text, size, h)


def test_floordiv_and_product_of_numbers_stay_ints() -> None:
    assert dims.floordiv(7, 2) == 3
    assert dims.product([]) == 1
    assert dims.product([2, 3]) == 6
    assert type(dims.product([H, 0])) is int


def test_strided_layers_in_a_row_give_one_floor() -> None:
    twice = dims.floordiv(dims.floordiv(H, 2) + 1, 2)
    assert dims.equal(twice, dims.floordiv(H + 2, 4)) is True
    assert str(twice).count("floor") == 1


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(1, 300),
    kernel=st.integers(1, 7),
    stride=st.integers(1, 4),
    padding=st.integers(0, 3),
    dilation=st.integers(1, 3),
)
def test_conv_output_of_a_symbol_agrees_with_torchs_formula_once_substituted(
    size: int, kernel: int, stride: int, padding: int, dilation: int
) -> None:
    expected = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    assert dims.conv_output(size, kernel, stride, padding, dilation) == expected
    symbolic = dims.conv_output(H, kernel, stride, padding, dilation)
    assert dims.substitute(symbolic, {"H": size}) == expected


@settings(max_examples=150, deadline=None)
@given(size=st.integers(1, 500), divisors=st.lists(st.integers(1, 5), min_size=1, max_size=4), shift=st.integers(0, 3))
def test_chained_floor_divisions_agree_with_integer_division(size: int, divisors: list[int], shift: int) -> None:
    symbolic: dims.Dim = H
    number = size
    for divisor in divisors:
        symbolic = dims.floordiv(symbolic + shift, divisor)
        number = (number + shift) // divisor
    assert dims.substitute(symbolic, {"H": size}) == number


# -- equal and nonnegative: three answers, and never a wrong one ------------------------------------------

EXPRESSIONS = [H, W, H + 1, 2 * H, H + W, H - W, H * W, dims.floordiv(H, 2), 2 * dims.floordiv(H, 2), H - 2, 3, 0, -1]


def test_equal_answers_true_false_or_it_depends() -> None:
    assert dims.equal(2 * H, H + H) is True
    assert dims.equal(3, 3) is True
    assert dims.equal(3, 4) is False
    assert dims.equal(H + 1, H) is False
    assert dims.equal(H + W, 0) is False  # symbols are positive
    assert dims.equal(H, W) is None
    assert dims.equal(2 * dims.floordiv(H, 2), H) is None  # only for even H


def test_nonnegative_answers_true_false_or_it_depends() -> None:
    assert dims.nonnegative(0) is True
    assert dims.nonnegative(-1) is False
    assert dims.nonnegative(H + W - 2) is True
    assert dims.nonnegative(-H) is False
    assert dims.nonnegative(H - 2) is None
    assert dims.nonnegative(H - W) is None


@settings(max_examples=200, deadline=None)
@given(
    first=st.sampled_from(EXPRESSIONS),
    second=st.sampled_from(EXPRESSIONS),
    h=st.integers(1, 50),
    w=st.integers(1, 50),
)
def test_a_definite_answer_holds_for_every_value_of_the_symbols(
    first: dims.Dim, second: dims.Dim, h: int, w: int
) -> None:
    values = {"H": h, "W": w}
    a, b = dims.substitute(first, values), dims.substitute(second, values)
    same = dims.equal(first, second)
    if same is True:
        assert a == b
    elif same is False:
        assert a != b
    sign = dims.nonnegative(dims.normal(first - second))
    if sign is True:
        assert a - b >= 0
    elif sign is False:
        assert a - b < 0


# -- substitute --------------------------------------------------------------------------------------------


def test_substitute_gives_an_int_once_every_symbol_is_given() -> None:
    assert dims.substitute(dims.floordiv(H, 2) + 1, {"H": 9}) == 5
    assert type(dims.substitute(H * W, {"H": 2, "W": 3})) is int
    assert dims.substitute(H * W, {"H": 2}) == 2 * W
    assert dims.substitute(H, {"W": 3, "Other": 1}) is H  # other names change nothing
    assert dims.substitute(4, {"H": 1}) == 4


def test_substitute_shape_goes_through_tuples_and_keeps_none() -> None:
    value = (dims.Shape(["B", "T"]), (dims.Shape([H + 1]), None), None)
    result = dims.substitute_shape(value, {"B": 2, "T": 7, "H": 3})
    assert result == ((2, 7), ((4,), None), None)
    assert isinstance(result, tuple)
    assert isinstance(result[0], dims.Shape)
    assert dims.substitute_shape(None, {}) is None


PRODUCTS = st.tuples(st.integers(1, 4), st.integers(0, 4), st.integers(1, 4), st.integers(0, 4), st.integers(1, 4))
"""``k * (a*H + b) * (c*H + d)``: products that sympy alone sometimes takes for multiples of a number."""


@settings(max_examples=200, deadline=None)
@given(PRODUCTS, st.integers(2, 24))
def test_floordiv_and_whole_of_products_agree_with_the_numbers(coefficients: tuple[int, ...], divisor: int) -> None:
    a, b, c, d, k = coefficients
    h = dims.dim("H")
    size = dims.normal(k * (a * h + b) * (c * h + d))
    quotient = dims.normal(size / divisor)
    floored = dims.floordiv(size, divisor)
    for value in range(1, 2 * divisor + 1):
        number = k * (a * value + b) * (c * value + d)
        assert dims.substitute(floored, {"H": value}) == number // divisor
        if dims.whole(quotient):
            assert number % divisor == 0, (size, divisor, value)


def test_a_product_sympy_takes_for_a_multiple_is_not_one() -> None:
    h = dims.dim("H")
    size = dims.normal(2 * h * (2 * h + 2))  # 8 at H = 1: not a multiple of 12
    assert dims.whole(dims.normal(size / 12)) is None
    assert dims.substitute(dims.floordiv(size, 12), {"H": 1}) == 0
