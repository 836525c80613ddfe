"""The helpers a shape rule is written with (``fluxion.dims.rules``): what they return, the ShapeError
they raise when sizes can never fit, and the constraints they record inside ``dims.running`` when
fitting depends on the symbols."""

from collections.abc import Iterator

import pytest

from fluxion import dims

H, W = dims.dim("H"), dims.dim("W")
Shape = dims.Shape


@pytest.fixture
def recorded() -> Iterator[list[tuple[str, str, str]]]:
    """Constraints recorded while the test runs, as (first, second, reason) shown."""
    found: list[tuple[str, str, str]] = []
    with dims.running(
        recorder=lambda first, second, reason: found.append((dims.show(first), dims.show(second), reason))
    ):
        yield found


# -- require_equal ------------------------------------------------------------------------------------


def test_require_equal_passes_equal_sizes_and_records_nothing(recorded: list[tuple[str, str, str]]) -> None:
    dims.require_equal(8, 8, "LayerNorm expects last dim 8")
    dims.require_equal(2 * H, H + H, "same")
    assert recorded == []


def test_require_equal_refuses_sizes_that_never_fit(recorded: list[tuple[str, str, str]]) -> None:
    with pytest.raises(dims.ShapeError) as caught:
        dims.require_equal(200, 21632, "Linear expects last dim 200")
    assert str(caught.value) == "Linear expects last dim 200, got 21632"
    with pytest.raises(dims.ShapeError, match=r"expects H, got H \+ 1"):
        dims.require_equal(H, H + 1, "expects H")
    assert recorded == []


def test_require_equal_records_a_constraint_when_it_depends(recorded: list[tuple[str, str, str]]) -> None:
    dims.require_equal(8, H, "Linear expects last dim 8")
    dims.require_equal(H, 2 * dims.floordiv(H, 2), "even height")
    assert recorded == [("8", "H", "Linear expects last dim 8"), ("H", "2*floor(H/2)", "even height")]


def test_outside_an_inference_a_constraint_is_dropped() -> None:
    dims.require_equal(8, H, "Linear expects last dim 8")  # no recorder: nothing raised, nothing kept
    with pytest.raises(dims.ShapeError):
        dims.require_equal(8, 9, "Linear expects last dim 8")


# -- broadcast ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ([Shape(["B", 1, 8]), Shape([4, 1])], "(B, 4, 8)"),
        ([Shape([1]), Shape(["B", "T"])], "(B, T)"),
        ([Shape(["B", "T"]), Shape([])], "(B, T)"),
        ([Shape([H, 1]), Shape([H, W])], "(H, W)"),
        ([Shape([3])], "(3,)"),
        ([], "()"),
    ],
)
def test_broadcast_follows_torchs_rule(
    shapes: list[dims.Shape], expected: str, recorded: list[tuple[str, str, str]]
) -> None:
    assert repr(dims.broadcast(shapes, "Sum")) == expected
    assert recorded == []


def test_broadcast_refuses_sizes_that_never_broadcast() -> None:
    with pytest.raises(dims.ShapeError) as caught:
        dims.broadcast([Shape(["B", 3]), Shape([4])], "Sum")
    assert str(caught.value) == "Sum needs sizes that broadcast at dim -1 (have 3), got 4"
    with pytest.raises(dims.ShapeError, match=r"at dim -2 .*have 2.*got 5"):
        dims.broadcast([Shape([2, 1]), Shape([5, 7])], "Add")


def test_broadcast_records_what_sizes_that_may_differ_need(recorded: list[tuple[str, str, str]]) -> None:
    assert dims.broadcast([Shape([H]), Shape([W])], "Sum") == Shape([H])
    assert recorded == [("H", "W", "Sum needs sizes that broadcast at dim -1 (have H)")]
    recorded.clear()
    # H and H + 1 always differ: they broadcast only when H is 1, and the result is H + 1
    assert dims.broadcast([Shape([H]), Shape([H + 1])], "Sum") == Shape([H + 1])
    assert recorded == [("H", "1", "Sum needs sizes that broadcast at dim -1 (have H)")]
    recorded.clear()
    assert dims.broadcast([Shape([H + 1]), Shape([H])], "Sum") == Shape([H + 1])
    assert recorded == [("H", "1", "Sum needs sizes that broadcast at dim -1 (have H + 1)")]


# -- concatenate -----------------------------------------------------------------------------------------


def test_concatenate_adds_the_sizes_along_the_axis(recorded: list[tuple[str, str, str]]) -> None:
    first, second = Shape(["B", 2, "T"]), Shape(["B", 3, "T"])
    assert repr(dims.concatenate([first, second], 1, "Cat")) == "(B, 5, T)"
    assert repr(dims.concatenate([first, second, first], -2, "Cat")) == "(B, 7, T)"
    assert repr(dims.concatenate([Shape(["B", H]), Shape(["B", W])], -1, "Cat")) == "(B, H + W)"
    assert dims.concatenate([first], 0, "Cat") == first
    assert recorded == []


@pytest.mark.parametrize(
    ("shapes", "dim_index", "message"),
    [
        ([], 0, "Cat has nothing to concatenate"),
        ([Shape([2, 3])], 2, "Cat concatenates along dim 2, but its first input has shape (2, 3)"),
        ([Shape([2, 3])], -3, "Cat concatenates along dim -3, but its first input has shape (2, 3)"),
        ([Shape([2, 3]), Shape([2])], 0, "Cat needs inputs of the same rank, got (2, 3) and (2,)"),
        ([Shape([2, 3]), Shape([3, 3])], 1, "Cat needs equal sizes outside dim 1 (have 2), got 3"),
    ],
)
def test_concatenate_refuses_inputs_that_cannot_be_joined(
    shapes: list[dims.Shape], dim_index: int, message: str
) -> None:
    with pytest.raises(dims.ShapeError) as caught:
        dims.concatenate(shapes, dim_index, "Cat")
    assert str(caught.value) == message


def test_concatenate_records_sizes_outside_the_axis_that_must_agree(recorded: list[tuple[str, str, str]]) -> None:
    assert repr(dims.concatenate([Shape(["B", 2]), Shape(["C", 3])], 1, "Cat")) == "(B, 5)"
    assert recorded == [("B", "C", "Cat needs equal sizes outside dim 1 (have B)")]


# -- reading inputs -------------------------------------------------------------------------------------


def test_single_returns_the_one_tensor_shape() -> None:
    assert dims.single((Shape([2, 3]),), "ReLU") == Shape([2, 3])


@pytest.mark.parametrize(
    ("inputs", "got"),
    [
        ((), "nothing"),
        ((Shape([2]), Shape([3])), "(2,), (3,)"),
        ((None,), "None"),
        (((Shape([1]),),), "((1,),)"),
    ],
)
def test_single_refuses_anything_but_one_tensor(inputs: tuple[dims.ShapeValue, ...], got: str) -> None:
    with pytest.raises(dims.ShapeError) as caught:
        dims.single(inputs, "ReLU")
    assert str(caught.value) == f"ReLU takes one tensor, got {got}"


def test_several_tells_outputs_from_one_shape() -> None:
    assert not dims.several(Shape([2]))
    assert not dims.several(Shape([]))
    assert not dims.several(None)
    assert dims.several((Shape([2]), None))
    assert dims.several(())
