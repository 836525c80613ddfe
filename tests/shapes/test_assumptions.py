"""Shapes read under the model's constraints: what a size is once the sizes the model works with are assumed."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.shapes.assumptions import Assumptions
from fluxion.shapes.multiples import divisibility
from tests.shapes.helpers import number


@st.composite
def strided_sizes(draw: st.DrawFn) -> dims.Dim:
    """H through a few random convolution and pooling windows."""
    size: dims.Dim = dims.dim("H")
    for _ in range(draw(st.integers(1, 4))):
        kernel = draw(st.integers(1, 4))
        stride = draw(st.integers(1, 3))
        padding = draw(st.integers(0, kernel // 2))
        size = dims.conv_output(size, kernel, stride=stride, padding=padding)
    return size


@given(size=strided_sizes(), divisor=st.integers(2, 16), multiple=st.integers(8, 40))
@settings(max_examples=150, deadline=None)
def test_a_size_read_under_divisibility_equals_the_size_for_every_multiple(
    size: dims.Dim, divisor: int, multiple: int
) -> None:
    h = dims.dim("H")
    facts = Assumptions.of([(divisor * dims.floordiv(h, divisor), h)])
    value = divisor * multiple
    read = facts.apply(size)
    assert dims.substitute(read, {"H": value}) == number(size, {"H": value})


def test_divisibility_is_found_on_either_side_and_only_for_that_form() -> None:
    h, w = dims.dim("H"), dims.dim("W")
    assert divisibility(h, 4 * dims.floordiv(h, 4)) == (h, 4)
    assert divisibility(4 * dims.floordiv(h * w, 4), h * w) == (h * w, 4)
    assert divisibility(2 * dims.floordiv(h, 8), dims.floordiv(h, 4)) is None
    assert divisibility(h, w) is None
    assert divisibility(h, 3) is None


def test_a_unet_reads_h_and_w_with_one_constraint_each() -> None:
    from tests.shapes.test_infer_models import IMAGE, unet

    report = shapes.infer(unet(), IMAGE)
    assert report.output == dims.Shape(["B", 2, "H", "W"])
    assert report["bottom"].output == dims.Shape(["B", 32, dims.dim("H") / 8, dims.dim("W") / 8])
    assert [str(c).split(" (")[0] for c in report.constraints] == [
        "H must be divisible by 8",
        "W must be divisible by 8",
    ]


def test_the_strongest_divisor_is_kept_and_implied_equations_dropped() -> None:
    h = dims.dim("H")
    equations = [
        (2 * dims.floordiv(h, 2), h),
        (h, 4 * dims.floordiv(h, 4)),
        (2 * dims.floordiv(h, 4), dims.floordiv(h, 2)),
    ]
    facts = Assumptions.of(equations)
    assert facts.divisors == ((h, 4),)
    assert facts.essential(equations) == [([1], *equations[1])]
    both = [(2 * dims.floordiv(h, 2), h), (3 * dims.floordiv(h, 3), h)]
    six = Assumptions.of(both).essential(both)  # neither says it alone: together, 6
    assert [(positions, dims.show(first), second) for positions, first, second in six] == [([0, 1], "6*floor(H/6)", h)]
    assert dims.show(Assumptions.of(both).apply(dims.floordiv(h, 3))) == "H/3"


def test_a_symbol_fixed_to_a_number_becomes_that_number() -> None:
    model = fl.Chain(fl.Linear(3, 5))
    report = shapes.infer(model, ("B", "C"))
    assert report["Linear"].inputs == (dims.Shape(["B", 3]),)
    assert [(c.first, c.second) for c in report.constraints] == [(3, dims.dim("C"))]


def test_contradicting_constraints_are_an_error() -> None:
    c = dims.dim("C")
    equations = [(c, 3), (2 * dims.floordiv(c, 2), c)]
    with pytest.raises(dims.ShapeError, match="no input sizes satisfy every constraint"):
        Assumptions.of(equations).essential(equations)


def test_strided_layers_in_a_row_read_as_fractions_with_one_constraint_per_symbol() -> None:
    model = fl.Chain(fl.Conv2d(3, 8, 7, downsample=2), fl.MaxPool2d(3, downsample=2), fl.Conv2d(8, 8, 3, downsample=2))
    report = shapes.infer(model, ("B", 3, "H", "W"))
    h, w = dims.dim("H"), dims.dim("W")
    assert report.output == dims.Shape(["B", 8, h / 8, w / 8])
    assert report["MaxPool2d"].inputs == (dims.Shape(["B", 8, h / 2, w / 2]),)  # rules see the read sizes
    assert [str(c).split(" (")[0] for c in report.constraints] == [
        "H must be divisible by 8",
        "W must be divisible by 8",
    ]
    assert report.constraints[0].reason.startswith("together: Conv2d downsamples by 2")


def test_a_value_constraint_is_kept_beside_a_divisibility_on_the_same_symbol() -> None:
    model = fl.Chain(fl.Parallel(fl.Chunk(2, dim=-1), fl.LayerNorm(8)))
    report = shapes.infer(model, ("B", "H"))
    assert [(c.first, c.second) for c in report.constraints] == [(8, dims.dim("H"))]
    assert report.output == ((dims.Shape(["B", 4]), dims.Shape(["B", 4])), dims.Shape(["B", 8]))


def test_sizes_a_model_fixes_are_checked_by_every_rule() -> None:
    model = fl.Chain(fl.Parallel(fl.Conv1d(1, 1, 5), fl.LayerNorm(3)))  # the LayerNorm fixes H to 3: too short
    with pytest.raises(dims.ShapeError, match="padded size of at least 5") as caught:
        shapes.infer(model, ("B", 1, "H"))
    assert caught.value.address == "Parallel.Conv1d"
    assert "with sizes the model fixes: 3 = H" in str(caught.value)


def test_a_size_that_must_be_one_after_a_stride_gives_the_input_size() -> None:
    model = fl.Chain(
        fl.SetContext("c", "s"), fl.Conv2d(2, 2, 3, downsample=2), fl.Sum(fl.Identity(), fl.UseContext("c", "s"))
    )
    report = shapes.infer(model, ("B", 2, "H", "W"))
    assert report.output == dims.Shape(["B", 2, 2, 2])  # H/2 broadcasts with H only when H/2 is 1
    assert model(torch.randn(1, 2, 2, 2)).shape == (1, 2, 2, 2)
