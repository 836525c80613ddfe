"""FiLM: TorchArc's MergeFiLM computation and keys, its shape rule against forward, sizes left out."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.errors import LayerError, ShapeError
from tests.layers.helpers import randn, randomize
from tests.shapes.helpers import evaluate


def reference(film: fl.FiLM, feature: torch.Tensor, conditioner: torch.Tensor) -> torch.Tensor:
    """TorchArc's rule, written out: gamma(c) and beta(c) get trailing 1s when the ranks differ."""
    gamma = torch.nn.functional.linear(conditioner, film.gamma.weight, film.gamma.bias)
    beta = torch.nn.functional.linear(conditioner, film.beta.weight, film.beta.bias)
    if feature.dim() != conditioner.dim():
        ones = (1,) * (feature.dim() - conditioner.dim())
        gamma, beta = gamma.view(*gamma.shape, *ones), beta.view(*beta.shape, *ones)
    return gamma * feature + beta


def test_keys_are_torcharcs_and_values_follow_its_rule() -> None:
    film = fl.FiLM(feature_dim=6, conditioner_dim=3)
    randomize(film)
    assert list(film.state_dict()) == ["gamma.weight", "gamma.bias", "beta.weight", "beta.bias"]
    assert film.gamma.weight.shape == (6, 3)
    for feature in (randn(2, 6, 4, 4), randn(2, 6)):
        conditioner = randn(2, 3, seed=1)
        torch.testing.assert_close(film(feature, conditioner), reference(film, feature, conditioner))
    model = fl.Chain(film_0=fl.FiLM(6, 3))
    assert list(model.state_dict())[:2] == ["film_0.gamma.weight", "film_0.gamma.bias"]


@settings(max_examples=60, deadline=None)
@given(
    feature=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    conditioner=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    features=st.integers(1, 3),
)
def test_rule_gives_the_forwards_shape_or_refuses_what_it_refuses(
    feature: list[int], conditioner: list[int], features: int
) -> None:
    film = fl.FiLM(features, conditioner[-1])
    try:
        inferred = evaluate(shapes.infer(film, tuple(feature), tuple(conditioner)).output, {})
    except ShapeError:
        inferred = ShapeError
    try:
        output = tuple(film(torch.zeros(feature), torch.zeros(conditioner)).shape)
    except RuntimeError:
        output = ShapeError
    assert inferred == output


def test_symbolic_rule_and_sizes_left_out() -> None:
    assert shapes.infer(fl.FiLM(8, 3), ("B", 8, "H", "W"), ("B", 3)).output == dims.Shape(["B", 8, "H", "W"])
    with pytest.raises(shapes.ShapeError, match="FiLM"):  # TorchArc's rule: (B, F, 1) meets (B, T, F)
        shapes.infer(fl.FiLM(8, 3), ("B", 5, 8), ("B", 3))
    lazy = fl.FiLM()
    assert lazy.lazy
    assert lazy.missing == ("feature_dim", "conditioner_dim")
    with pytest.raises(fl.ChainError, match=r"FiLM\(feature_dim=\?, conditioner_dim=\?\) has no .* infer them"):
        lazy(randn(2, 8), randn(2, 3))
    report = shapes.materialize(lazy, ("B", 8, "H", "W"), ("B", 3))
    assert report.output == dims.Shape(["B", 8, "H", "W"])
    assert not lazy.lazy
    assert (lazy.feature_dim, lazy.conditioner_dim) == (8, 3)
    assert list(lazy.state_dict()) == ["gamma.weight", "gamma.bias", "beta.weight", "beta.bias"]
    assert lazy(randn(2, 8, 4, 4), randn(2, 3)).shape == (2, 8, 4, 4)
    half = fl.FiLM(feature_dim=5)
    shapes.materialize(half, ("B", 5), ("B", 7))
    assert half.gamma.weight.shape == (5, 7)
    with pytest.raises(shapes.ShapeError, match="FiLM expects conditioner features 4"):
        shapes.infer(fl.FiLM(conditioner_dim=4), ("B", 5), ("B", 7))


def test_named_inputs_and_refusals() -> None:
    film = fl.FiLM(4, 2)
    assert film.output_shape(feature=dims.Shape(["B", 4]), conditioner=dims.Shape(["B", 2])) == dims.Shape(["B", 4])
    with pytest.raises(ShapeError, match="FiLM takes two tensors, a feature and a conditioner"):
        film.output_shape(dims.Shape(["B", 4]))
    with pytest.raises(ShapeError, match="conditioner of rank at least 1"):
        film.output_shape(dims.Shape(["B", 4]), dims.Shape([]))
    with pytest.raises(LayerError, match="FiLM: feature_dim must be at least 0, got -1"):
        fl.FiLM(-1, 2)
    with pytest.raises(LayerError, match="FiLM expects exactly conditioner_dim, got feature_dim"):
        fl.FiLM(feature_dim=2).materialized(feature_dim=3)
    assert repr(fl.FiLM(feature_dim=2)).startswith("(CHAIN) FiLM(feature_dim=2, conditioner_dim=?)")


def test_child_names_given_as_torcharc_1_names_them() -> None:
    names = ("conditioner_scale", "conditioner_shift")
    film = fl.FiLM(5, 2, names=names)
    randomize(film)
    assert list(film.state_dict()) == [f"{name}.{part}" for name in names for part in ("weight", "bias")]
    feature, conditioner = randn(3, 5, 4), randn(3, 2)
    scale = film.conditioner_scale(conditioner)[..., None]
    shift = film.conditioner_shift(conditioner)[..., None]
    torch.testing.assert_close(film(feature, conditioner), scale * feature + shift)
    assert "names=('conditioner_scale', 'conditioner_shift')" in repr(film)
    lazy = fl.FiLM(names=names)
    shapes.materialize(lazy, ("B", 7), ("B", 3))
    assert [name for name, _ in lazy.named_children()] == list(names)
    assert lazy.conditioner_scale.weight.shape == (7, 3)
    for bad in (("a",), ("a", "a"), "ab", ("a", "b.c")):
        with pytest.raises(LayerError, match="names"):
            fl.FiLM(2, 2, names=bad)
