"""Initializers from specs (``fluxion.training.init``): each equals the torch call it stands for on
the same seed, the gain follows the activation, globs pick tensors, and nothing changes on an error."""

import copy
import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import nas
from fluxion.training import TrainingError, initialize
from fluxion.training.init import INITIALIZERS, is_weight_matrix, parse_initializer, plan_init


def mlp() -> fl.Chain:
    return fl.Chain(
        encoder=fl.Chain(fl.Linear(4, 8), fl.BatchNorm1d(8), fl.ReLU(), fl.Linear(8, 8)),
        head=fl.Linear(8, 2),
    )


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def replay(shapes: list[tuple[int, ...]], function: Any, **arguments: Any) -> list[torch.Tensor]:
    """What ``function`` gives for each shape in turn after seeding 0: the hand-written reference."""
    torch.manual_seed(0)
    return [function(torch.empty(shape), **arguments) for shape in shapes]


WEIGHTS = ["encoder.Linear_1.weight", "encoder.Linear_2.weight", "head.weight"]


@pytest.mark.parametrize("name", ["kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "orthogonal_", "normal_"])
def test_a_name_fills_every_weight_matrix_in_order_as_torch_would(name: str) -> None:
    model = mlp()
    before = snapshot(model)
    torch.manual_seed(0)
    initialize(model, name)
    expected = replay([before[key].shape for key in WEIGHTS], INITIALIZERS[name])
    after = model.state_dict()
    for key, value in zip(WEIGHTS, expected, strict=True):
        assert torch.equal(after[key], value), key
    untouched = set(before) - set(WEIGHTS)  # biases, BatchNorm's weight and running statistics
    assert all(torch.equal(after[key], before[key]) for key in untouched)
    assert "encoder.BatchNorm1d.weight" in untouched


def test_a_typed_spec_passes_its_arguments_and_the_name_may_drop_the_underscore() -> None:
    model = mlp()
    torch.manual_seed(0)
    initialize(model, {"type": "normal", "mean": 1.0, "std": 0.02})
    expected = replay([(8, 4), (8, 8), (2, 8)], torch.nn.init.normal_, mean=1.0, std=0.02)
    assert torch.equal(model.head.weight, expected[2])


GAINS = [
    ("ReLU", math.sqrt(2.0)),
    ("relu", math.sqrt(2.0)),
    ("Tanh", 5.0 / 3),
    ("Sigmoid", 1.0),
    ("LeakyReLU", math.sqrt(2.0 / (1 + 0.01**2))),
    ("leaky_relu", math.sqrt(2.0 / (1 + 0.01**2))),
    ("SELU", 3.0 / 4),
    ("Identity", 1.0),
    ("GELU", 1.0),  # torch has no gain for it: xavier's default
]


@pytest.mark.parametrize(("activation", "gain"), GAINS)
@pytest.mark.parametrize("name", ["xavier_uniform_", "xavier_normal_", "orthogonal_"])
def test_the_gain_follows_the_activation(name: str, activation: str, gain: float) -> None:
    model = fl.Chain(fl.Linear(6, 5))
    torch.manual_seed(0)
    initialize(model, name, activation=activation)
    (expected,) = replay([(5, 6)], INITIALIZERS[name], gain=gain)
    torch.testing.assert_close(model.Linear.weight.detach(), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    ("activation", "arguments"),
    [
        ("ReLU", {"nonlinearity": "relu"}),
        ("Tanh", {"nonlinearity": "tanh"}),
        ("LeakyReLU", {"nonlinearity": "leaky_relu", "a": 0.01}),
        ("Identity", {"nonlinearity": "linear"}),
        ("SiLU", {}),  # torch's default stands (leaky_relu with a=0: relu's gain)
    ],
)
@pytest.mark.parametrize("name", ["kaiming_uniform_", "kaiming_normal_"])
def test_kaimings_nonlinearity_follows_the_activation(name: str, activation: str, arguments: dict[str, Any]) -> None:
    model = fl.Chain(fl.Conv2d(3, 4, 3))
    torch.manual_seed(0)
    initialize(model, {"type": name, "activation": activation})
    (expected,) = replay([(4, 3, 3, 3)], INITIALIZERS[name], **arguments)
    assert torch.equal(model.Conv2d.weight, expected)


def test_a_gain_the_spec_gives_is_kept_and_the_specs_activation_wins() -> None:
    assert parse_initializer({"type": "xavier_uniform_", "gain": 2.0}, activation="ReLU").arguments == {"gain": 2.0}
    assert parse_initializer(
        {"type": "kaiming_uniform_", "nonlinearity": "relu", "a": 0.2}, activation="LeakyReLU"
    ).arguments == {
        "nonlinearity": "relu",
        "a": 0.2,
    }
    assert parse_initializer({"type": "xavier_uniform_", "activation": "Tanh"}, activation="ReLU").arguments == {
        "gain": 5.0 / 3
    }
    assert parse_initializer("normal_", activation="ReLU").arguments == {}  # no gain to give


def test_the_default_targets_are_the_weight_matrices_of_every_kind() -> None:
    model = fl.Chain(rnn=torch.nn.LSTM(4, 6), attention=torch.nn.MultiheadAttention(8, 2), norm=fl.LayerNorm(8))
    chosen = [address for address, _ in plan_init(model, "orthogonal_")]
    assert chosen == [
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "attention.in_proj_weight",
        "attention.out_proj.weight",
    ]
    assert not is_weight_matrix("norm.weight", torch.zeros(8))
    assert not is_weight_matrix("pos.embedding", torch.zeros(1, 4, 8))


def test_globs_pick_tensors_and_each_is_filled_by_the_first_glob_that_matches() -> None:
    model = mlp()
    before = snapshot(model)
    spec = {
        "head.weight": "zeros_",
        "encoder.*.weight": {"type": "normal_", "std": 0.02},
        "*.bias": {"type": "constant_", "val": 0.5},
    }
    torch.manual_seed(0)
    initialize(model, spec)
    after = model.state_dict()
    # in the model's order: encoder weights (BatchNorm's too: the glob names it), then the biases
    torch.manual_seed(0)
    for key in ["encoder.Linear_1.weight", "encoder.BatchNorm1d.weight", "encoder.Linear_2.weight"]:
        expected = torch.nn.init.normal_(torch.empty(before[key].shape), std=0.02)
        assert torch.equal(after[key], expected), key
    assert torch.count_nonzero(after["head.weight"]) == 0
    assert all(bool((after[key] == 0.5).all()) for key in after if key.endswith(".bias"))
    assert torch.equal(after["encoder.BatchNorm1d.running_mean"], before["encoder.BatchNorm1d.running_mean"])


def test_shared_parameters_are_filled_once() -> None:
    first, second = fl.Linear(4, 4), fl.Linear(4, 4)
    second.weight = first.weight
    model = fl.Chain(first, second)
    torch.manual_seed(0)
    initialize(model, "xavier_uniform_")
    (expected,) = replay([(4, 4)], torch.nn.init.xavier_uniform_)
    assert torch.equal(model.Linear_1.weight, expected)
    assert [address for address, _ in plan_init(model, "xavier_uniform_")] == ["Linear_1.weight"]


def test_the_callers_specs_are_never_changed() -> None:
    spec = {"encoder.Linear*.weight": {"type": "kaiming_uniform_", "activation": "ReLU"}, "*.bias": {"type": "zeros_"}}
    kept = copy.deepcopy(spec)
    initialize(mlp(), spec)
    initialize(mlp(), spec["encoder.Linear*.weight"], activation="Tanh")
    assert spec == kept


@given(seed=st.integers(0, 2**31), name=st.sampled_from(["xavier_normal_", "kaiming_uniform_", "trunc_normal_"]))
@settings(max_examples=15, deadline=None)
def test_the_same_seed_gives_the_same_weights(seed: int, name: str) -> None:
    first, second = mlp(), mlp()
    torch.manual_seed(seed)
    initialize(first, name)
    torch.manual_seed(seed)
    initialize(second, name)
    assert all(torch.equal(first.state_dict()[key], second.state_dict()[key]) for key in WEIGHTS)


# -- errors: one, naming where, before anything changes -------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ("kaiming_unifrom_", (), "unknown initializer 'kaiming_unifrom_' (did you mean 'kaiming_uniform_'?)"),
        ({"type": "normal_", "sdt": 0.1}, ("sdt",), "normal_ takes no argument 'sdt' (did you mean 'std'?)"),
        ({"type": "normal_", "std": "1e-2"}, ("std",), "write 1.0e-2"),
        ({"type": "xavier_uniform_", "activation": "Rleu"}, ("activation",), "unknown activation 'Rleu'"),
        (
            {"Encoder.*.weight": "zeros_"},
            ("Encoder.*.weight",),
            "matches no parameter (close: 'encoder.Linear_1.weight'",
        ),
        (
            {"*.weight": "zeros_", "head.weight": "ones_"},
            ("head.weight",),
            "initialized by an earlier glob ('*.weight')",
        ),
        ({"*": "xavier_uniform_"}, ("*",), "xavier_uniform_ cannot initialize 'encoder.Linear_1.bias' of shape (8,)"),
        ({"head.*": {"type": "uniform_", "a": 0.0, "lower": 1}}, ("head.*", "lower"), "takes no argument 'lower'"),
        ({"head.weight": {"std": 0.1}}, ("head.weight",), 'names its class in "type"'),
        ({}, (), "an init spec is an initializer"),
    ],
)
def test_a_bad_spec_is_one_error_naming_where_and_the_model_is_unchanged(
    spec: Any, path: tuple[str, ...], message: str
) -> None:
    model = mlp()
    before = snapshot(model)
    with pytest.raises(TrainingError) as caught:
        initialize(model, spec)
    assert message in str(caught.value)
    assert caught.value.path == path
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())


def test_a_layer_without_sizes_yet_is_refused() -> None:
    with pytest.raises(TrainingError, match=r"'LazyLinear\.weight' has no size yet"):
        initialize(fl.Chain(torch.nn.LazyLinear(3)), "xavier_uniform_")


def test_nothing_is_added_to_torch() -> None:
    names = set(dir(torch.nn.init)), set(dir(torch.nn))
    initialize(mlp(), {"type": "kaiming_normal_", "activation": "ReLU"})
    assert (set(dir(torch.nn.init)), set(dir(torch.nn))) == names


def test_the_architecture_parameters_of_a_supernet_are_never_initialized() -> None:
    first = nas.Choice(fc=fl.Linear(4, 4), act=fl.Tanh())
    second = nas.Choice(fc=fl.Linear(4, 4), act=fl.Tanh())
    second.alphas = first.alphas
    model = fl.Chain(fl.Linear(4, 4), cells=fl.Chain(edge_0=first, edge_1=second), join=nas.InputChoice(1, 1, True))
    alphas_before = [tensor.detach().clone() for tensor in nas.arch_parameters(model)]
    planned = [address for address, _ in plan_init(model, {"*": "zeros_"})]
    assert planned == [address for address, _ in nas.named_weights(model)]
    initialize(model, {"*": "ones_"})
    for tensor, before in zip(nas.arch_parameters(model), alphas_before, strict=True):
        assert torch.equal(tensor.detach(), before)
    assert all(bool((tensor == 1).all()) for tensor in nas.weights(model))
    with pytest.raises(TrainingError, match=r"'\*\.alphas' matches no parameter"):
        initialize(model, {"*.alphas": "zeros_"})
