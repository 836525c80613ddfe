"""Get, Narrow and IndexSelect: torch's values, exact shape rules (symbols too), refusals, the index buffer."""

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.errors import LayerError, ShapeError
from tests.layers.helpers import randn
from tests.shapes.helpers import evaluate


def rule_or_refusal(layer: torch.nn.Module, shape: tuple[int, ...]) -> Any:
    try:
        return evaluate(shapes.infer(layer, shape).output, {})
    except ShapeError:
        return ShapeError


def forward_or_refusal(layer: torch.nn.Module, shape: tuple[int, ...]) -> Any:
    try:
        return tuple(layer(torch.zeros(shape)).shape)
    except (RuntimeError, IndexError):
        return ShapeError


SHAPES = st.lists(st.integers(0, 4), max_size=4).map(tuple)


@settings(max_examples=150, deadline=None)
@given(shape=SHAPES, dim=st.integers(-5, 4), start=st.integers(-6, 6), length=st.integers(0, 5))
def test_narrow_rule_gives_the_forwards_shape_or_refuses_what_it_refuses(
    shape: tuple[int, ...], dim: int, start: int, length: int
) -> None:
    try:
        layer = fl.Narrow(dim, start, length)
    except LayerError:
        with pytest.raises((RuntimeError, IndexError)):
            torch.zeros(shape or (6,) * 3).narrow(dim % 3, start, length)  # refused for any size
        return
    assert rule_or_refusal(layer, shape) == forward_or_refusal(layer, shape)


@settings(max_examples=150, deadline=None)
@given(shape=SHAPES, dim=st.integers(-5, 4), index=st.lists(st.integers(0, 4), max_size=4))
def test_index_select_rule_gives_the_forwards_shape_or_refuses_what_it_refuses(
    shape: tuple[int, ...], dim: int, index: list[int]
) -> None:
    layer = fl.IndexSelect(dim, index)
    assert rule_or_refusal(layer, shape) == forward_or_refusal(layer, shape)


@settings(max_examples=150, deadline=None)
@given(shape=SHAPES, key=st.integers(-5, 4))
def test_get_of_a_tensor_is_its_item_along_dim_0(shape: tuple[int, ...], key: int) -> None:
    layer = fl.Get(key)
    assert rule_or_refusal(layer, shape) == forward_or_refusal(layer, shape)


def test_values_match_torch() -> None:
    x = randn(3, 5, 2)
    assert torch.equal(fl.Narrow(1, -2, 2)(x), torch.narrow(x, 1, -2, 2))
    assert torch.equal(fl.Narrow(-1, 0, 1)(x), x[..., :1])
    index = [4, 0, 0, 2]
    assert torch.equal(fl.IndexSelect(1, index)(x), torch.index_select(x, 1, torch.tensor(index)))
    assert torch.equal(fl.Get(1)(x), x[1])
    assert torch.equal(fl.Get(-1)(x), x[-1])


def test_get_takes_items_of_several_outputs_lists_and_dicts() -> None:
    a, b = randn(2, 3), randn(4)
    assert fl.Get(1)(a, b) is b
    assert fl.Get(0)([a, b]) is a
    assert fl.Get("b")({"a": a, "b": b}) is b
    out, (_h, _c) = torch.nn.LSTM(3, 4)(randn(5, 3))
    model = fl.Chain(fl.LSTM(3, 4), fl.Get(0))
    assert model(randn(5, 3)).shape == out.shape
    assert shapes.infer(model, ("T", 3)).output == dims.Shape(["T", 4])
    state = shapes.infer(fl.Chain(fl.LSTM(3, 4), fl.Get(1)), ("T", 3)).output
    assert state == (dims.Shape([1, 4]), dims.Shape([1, 4]))
    assert fl.Get("b").output_shape({"a": dims.Shape([2]), "b": dims.Shape(["B"])}) == dims.Shape(["B"])


def test_get_rule_refusals_name_the_key() -> None:
    pair = (dims.Shape([2]), dims.Shape([3]))
    with pytest.raises(ShapeError, match=r"Get\(2\) expects at least 3 values, got 2"):
        fl.Get(2).output_shape(*pair)
    with pytest.raises(ShapeError, match=r"Get\('x'\) expects a dict with key 'x', got keys \['a'\]"):
        fl.Get("x").output_shape({"a": dims.Shape([2])})
    with pytest.raises(ShapeError, match=r"Get\('x'\) takes a string key only from a dict"):
        fl.Get("x").output_shape(dims.Shape([2]))
    with pytest.raises(ShapeError, match="cannot index a scalar"):
        fl.Get(0).output_shape(dims.Shape([]))
    with pytest.raises(ShapeError, match="expects a value to index, got None"):
        fl.Get(0).output_shape(None)
    with pytest.raises(ShapeError, match=r"cannot tell whether dim 0 \(T\) holds at least 2 items"):
        fl.Get(1).output_shape(dims.Shape(["T", 3]))


def test_symbolic_rules_are_exact_where_the_symbols_decide() -> None:
    t = dims.dim("T")
    assert fl.Get(-1).output_shape(dims.Shape(["T", "B"])) == dims.Shape(["B"])
    assert fl.Narrow(1, -1, 1).output_shape(dims.Shape(["B", "T"])) == dims.Shape(["B", 1])
    assert fl.Narrow(1, 2, 3).output_shape(dims.Shape(["B", t + 5])) == dims.Shape(["B", 3])
    assert fl.IndexSelect(0, [0, 0, 0]).output_shape(dims.Shape(["T", 2])) == dims.Shape([3, 2])
    with pytest.raises(ShapeError, match=r"cannot tell whether dim 1 \(T\) holds at least 3 items"):
        fl.Narrow(1, 1, 2).output_shape(dims.Shape(["B", "T"]))
    with pytest.raises(ShapeError, match=r"cannot tell whether dim 0 \(index 2\) \(T\) holds at least 3"):
        fl.IndexSelect(0, [2]).output_shape(dims.Shape(["T"]))
    values = {"B": 3, "T": 6}
    for layer, shape in [
        (fl.Narrow(1, -1, 1), ("B", "T")),
        (fl.Narrow(1, -2, 2), ("B", 4, "T")),
        (fl.Narrow(0, 0, 1), ("B", "T")),
        (fl.IndexSelect(-1, [0]), ("B", "T")),
        (fl.Get(0), ("T", "B", 2)),
    ]:
        inferred = evaluate(shapes.infer(layer, shape).output, values)
        concrete = tuple(values.get(size, size) if isinstance(size, str) else size for size in shape)
        assert inferred == tuple(layer(torch.zeros(concrete)).shape)


def test_index_select_keeps_its_indices_as_a_persistent_int64_buffer() -> None:
    model = fl.Chain(head=fl.Linear(4, 6), get_idx=fl.IndexSelect(-1, [5, 1]))
    assert list(model.state_dict()) == ["head.weight", "head.bias", "get_idx.index"]
    index = model.state_dict()["get_idx.index"]
    assert index.dtype == torch.int64
    assert index.tolist() == [5, 1]
    other = fl.Chain(head=fl.Linear(4, 6), get_idx=fl.IndexSelect(-1, [0, 0]))
    other.load_state_dict(model.state_dict())
    x = randn(2, 4)
    torch.testing.assert_close(other(x), model(x))
    assert repr(other.get_idx) == "IndexSelect(dim=-1, index=[5, 1])"
    loaded = fl.IndexSelect(0, [0, 0, 0])
    loaded.load_state_dict({"index": torch.tensor([3, 2, 1])})
    with pytest.raises(ShapeError, match=r"needs dim 0 \(index 3\) of at least 4 items, got 3"):
        loaded.output_shape(dims.Shape([3]))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: fl.Get(1.5), "Get: key must be an int or a string, got 1.5"),
        (lambda: fl.Get(True), "Get: key must be an int or a string, got True"),
        (lambda: fl.Narrow(0, 0, -1), "Narrow: length must be at least 0, got -1"),
        (lambda: fl.Narrow(0, -1, 2), "Narrow: from start -1 .* at most 1 items remain, got length 2"),
        (lambda: fl.Narrow(0.5, 0, 1), "Narrow: dim must be an int, got 0.5"),
        (lambda: fl.IndexSelect(0, [1, -1]), r"IndexSelect: index must be a list of ints of at least 0, got \[1, -1\]"),
        (lambda: fl.IndexSelect(0, "01"), "IndexSelect: index must be a list of ints, got '01'"),
        (lambda: fl.IndexSelect(0, 3), "IndexSelect: index must be a list of ints, got 3"),
        (lambda: fl.IndexSelect(None, [0]), "IndexSelect: dim must be an int, got None"),
    ],
)
def test_bad_arguments_are_refused_when_built(build: Any, message: str) -> None:
    with pytest.raises(LayerError, match=message):
        build()


def test_reprs() -> None:
    assert repr(fl.Get()) == "Get(key=0)"
    assert repr(fl.Get("logits")) == "Get(key='logits')"
    assert repr(fl.Narrow(1, -1, 1)) == "Narrow(dim=1, start=-1, length=1)"
