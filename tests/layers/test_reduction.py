"""Reduce: torch's values for every name, exact shape rules (symbols too), refusals."""

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.errors import LayerError, ShapeError
from fluxion.layers.reduction import MANY_DIMS, ONE_DIM, WITH_INDICES
from tests.layers.helpers import randn
from tests.shapes.helpers import evaluate


def rule_or_refusal(layer: torch.nn.Module, shape: tuple[int, ...]) -> Any:
    try:
        return evaluate(shapes.infer(layer, shape).output, {})
    except ShapeError:
        return ShapeError


def forward_or_refusal(layer: torch.nn.Module, shape: tuple[int, ...]) -> Any:
    try:
        output = layer(torch.rand(shape) > 0.5 if layer.name in ("all", "any") else torch.zeros(shape))
    except (RuntimeError, IndexError, TypeError):
        return ShapeError
    return tuple(tuple(item.shape) for item in output) if isinstance(output, tuple) else tuple(output.shape)


@st.composite
def reductions(draw: st.DrawFn) -> tuple[str, Any, bool]:
    name = draw(st.sampled_from(MANY_DIMS + ONE_DIM))
    one = st.integers(-4, 3)
    if name in ONE_DIM:
        dim: Any = draw(one)
    elif name == "logsumexp":
        dim = draw(st.one_of(one, st.lists(one, min_size=1, max_size=3)))
    else:
        dim = draw(st.one_of(st.none(), one, st.lists(one, min_size=1, max_size=3)))
    return name, dim, draw(st.booleans())


@pytest.mark.filterwarnings("ignore:.*degrees of freedom")
@settings(max_examples=300, deadline=None)
@given(shape=st.lists(st.integers(0, 3), max_size=3).map(tuple), reduction=reductions())
def test_rule_gives_the_forwards_shape_or_refuses_what_it_refuses(
    shape: tuple[int, ...], reduction: tuple[str, Any, bool]
) -> None:
    name, dim, keepdim = reduction
    layer = fl.Reduce(name, dim, keepdim=keepdim)
    assert rule_or_refusal(layer, shape) == forward_or_refusal(layer, shape)


@pytest.mark.parametrize("name", MANY_DIMS + ONE_DIM)
@pytest.mark.parametrize("keepdim", [False, True])
def test_values_match_torch(name: str, keepdim: bool) -> None:
    x = randn(3, 4, 5) if name not in ("all", "any") else randn(3, 4, 5) > 0
    dim: Any = 1 if name in ONE_DIM else [0, 2]
    expected = getattr(torch, name)(x, dim=dim, keepdim=keepdim)
    output = fl.Reduce(name, dim, keepdim=keepdim)(x)
    if name in WITH_INDICES:
        assert isinstance(output, tuple)
        assert len(output) == 2
        torch.testing.assert_close(output[0], expected.values)
        torch.testing.assert_close(output[1], expected.indices)
    else:
        torch.testing.assert_close(output, expected)


def test_max_gives_values_and_indices_and_get_keeps_the_values() -> None:
    x = randn(2, 6)
    model = fl.Chain(fl.Reduce("max", dim=1), fl.Get(0))
    torch.testing.assert_close(model(x), x.amax(dim=1))
    assert shapes.infer(model, ("B", 6)).output == dims.Shape(["B"])


def test_symbolic_rules() -> None:
    assert fl.Reduce("mean", [1, 2]).output_shape(dims.Shape(["B", "H", "W", 3])) == dims.Shape(["B", 3])
    assert fl.Reduce("sum", None, keepdim=True).output_shape(dims.Shape(["B", "T"])) == dims.Shape([1, 1])
    assert fl.Reduce("amax", -1).output_shape(dims.Shape(["B", "T"])) == dims.Shape(["B"])
    with pytest.raises(ShapeError, match="cannot reduce dims without items"):
        fl.Reduce("argmax", 1).output_shape(dims.Shape(["B", 0]))
    with pytest.raises(ShapeError, match=r"expects each dim once, got \[1, -2\]"):
        fl.Reduce("sum", [1, -2]).output_shape(dims.Shape(["B", "H", "W"]))
    with pytest.raises(ShapeError, match="expects an input with a dim 3, got rank 2"):
        fl.Reduce("sum", 3).output_shape(dims.Shape(["B", "T"]))
    values = {"B": 2, "T": 5}
    for layer in [fl.Reduce("prod", 1), fl.Reduce("median", -1, keepdim=True), fl.Reduce("std", [0, 1])]:
        inferred = evaluate(shapes.infer(layer, ("B", "T")).output, values)
        assert inferred == forward_or_refusal(layer, (2, 5))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("cumsum", 1), "Reduce: name must be one of sum, mean"),
        (("max", [0, 1]), r"Reduce: max reduces one dim \(an int\), got \[0, 1\]"),
        (("prod", None), r"Reduce: prod needs a dim \(an int\), got None"),
        (("logsumexp", None), "Reduce: logsumexp needs a dim"),
        (("sum", []), r"Reduce: dim must be an int, a non-empty list of ints or None, got \[\]"),
        (("sum", [0, 1.5]), "Reduce: dim must be an int, a non-empty list of ints or None"),
        (("sum", "1"), "Reduce: dim must be an int, a list of ints or None, got '1'"),
        (("sum", True), "Reduce: dim must be an int, a list of ints or None, got True"),
    ],
)
def test_bad_arguments_are_refused_when_built(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(LayerError, match=message):
        fl.Reduce(*arguments)
    with pytest.raises(LayerError, match="keepdim must be a bool"):
        fl.Reduce("sum", 1, keepdim="yes")  # type: ignore[arg-type]


def test_repr() -> None:
    assert repr(fl.Reduce("sum", [1, 2])) == "Reduce('sum', dim=[1, 2])"
    assert repr(fl.Reduce("max", 1, keepdim=True)) == "Reduce('max', dim=1, keepdim=True)"
