"""fluxion.layers.lazy: layers built with their input-side size left out, and the one guard that
keeps every lazy layer from running until ``fluxion.shapes.materialize`` fills the size in."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.layers.lazy import Inferable, allow_calls, is_lazy, not_materialized, refuse_calls

# Every layer that may wait for its input: (layer, an input it takes, what it lacks).
LAZY: list[Any] = [
    pytest.param(lambda: fl.Linear(out_features=3), (2, 4), "in_features", id="Linear"),
    pytest.param(lambda: fl.Conv1d(out_channels=2, kernel_size=3), (1, 2, 8), "in_channels", id="Conv1d"),
    pytest.param(lambda: fl.Conv2d(out_channels=2, kernel_size=3), (1, 2, 8, 8), "in_channels", id="Conv2d"),
    pytest.param(lambda: fl.Conv3d(out_channels=2, kernel_size=1), (1, 2, 3, 3, 3), "in_channels", id="Conv3d"),
    pytest.param(
        lambda: fl.Conv2d(2, 4, kernel_size=3, output_size=4), (1, 2, 8, 8), "stride, padding", id="Conv2d-output"
    ),
    pytest.param(
        lambda: fl.ConvTranspose2d(out_channels=2, kernel_size=2), (1, 3, 4, 4), "in_channels", id="ConvTranspose2d"
    ),
    pytest.param(lambda: fl.LayerNorm(), (2, 4), "normalized_shape", id="LayerNorm"),
    pytest.param(lambda: fl.RMSNorm(), (2, 4), "normalized_shape", id="RMSNorm"),
    pytest.param(lambda: fl.GroupNorm(2), (2, 4, 3), "num_channels", id="GroupNorm"),
    pytest.param(lambda: fl.BatchNorm1d(), (2, 4), "num_features", id="BatchNorm1d"),
    pytest.param(lambda: fl.BatchNorm2d(), (2, 4, 3, 3), "num_features", id="BatchNorm2d"),
    pytest.param(lambda: fl.LSTM(hidden_size=3), (5, 2, 4), "input_size", id="LSTM"),
    pytest.param(lambda: fl.GRU(hidden_size=3), (5, 2, 4), "input_size", id="GRU"),
    pytest.param(lambda: fl.RNN(hidden_size=3), (5, 2, 4), "input_size", id="RNN"),
    pytest.param(lambda: fl.ClassToken(), (2, 3, 4), "dim", id="ClassToken"),
    pytest.param(lambda: fl.PositionEmbedding(), (2, 3, 4), "num_positions, dim", id="PositionEmbedding"),
    pytest.param(lambda: fl.MaxPool2d(2, output_size=4), (1, 2, 8, 8), "stride, padding", id="MaxPool2d"),
    pytest.param(lambda: fl.AvgPool2d(2, output_size=4), (1, 2, 8, 8), "stride, padding", id="AvgPool2d"),
]


def output(value: Any) -> tuple[Any, ...]:
    """The shape of a call's output, from a tensor or a shape (recurrent layers also return their states)."""
    if isinstance(value, tuple) and not isinstance(value, torch.Size | dims.Shape):
        value = value[0]
    return tuple(value.shape if isinstance(value, torch.Tensor) else value)


@pytest.mark.parametrize(("build", "shape", "missing"), LAZY)
def test_every_lazy_layer_refuses_to_run_until_materialized_and_then_runs_free(
    build: Any, shape: tuple[int, ...], missing: str
) -> None:
    layer = build()
    seen: list[str] = []
    layer.register_forward_pre_hook(lambda module, inputs: seen.append("user hook"))
    with pytest.raises(fl.LayerError) as caught:
        layer(torch.zeros(shape))
    several = ", " in missing
    assert str(caught.value).startswith(f"{type(layer).__name__}({layer.extra_repr()}) has no {missing} yet: ")
    assert f"call fluxion.shapes.materialize(model, *input_shapes) to infer {'them' if several else 'it'}" in str(
        caught.value
    )
    assert seen == []  # refused before any other hook runs
    model = fl.Chain(layer)
    with pytest.raises(fl.ChainError, match=f"has no {missing} yet") as in_chain:
        model(torch.zeros(shape))
    assert isinstance(in_chain.value.__cause__, fl.LayerError)
    shapes.materialize(model, shape)
    assert not layer.lazy
    assert output(model(torch.zeros(shape))) == output(dims.run(layer, dims.Shape(shape)))
    assert seen == ["user hook"]  # the user's hook stays; the guard is gone
    assert len(layer._forward_pre_hooks) == 1


@pytest.mark.parametrize(("build", "shape", "missing"), LAZY)
def test_a_twin_runs_while_the_lazy_layer_it_came_from_still_refuses(
    build: Any, shape: tuple[int, ...], missing: str
) -> None:
    layer = build()
    twin = layer.materialized(**layer.inferred_arguments(dims.Shape(shape)))
    assert output(twin(torch.zeros(shape))) == output(dims.run(twin, dims.Shape(shape)))
    with pytest.raises(fl.LayerError, match=f"has no {missing} yet"):
        layer(torch.zeros(shape))
    layer.adopt(twin)
    assert output(layer(torch.zeros(shape))) == output(twin(torch.zeros(shape)))


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda layer: pickle.loads(pickle.dumps(layer))])
def test_copies_of_a_lazy_layer_refuse_to_run_and_materialize_on_their_own(duplicate: Any) -> None:
    layer = fl.Linear(out_features=2)
    copied = duplicate(layer)
    with pytest.raises(fl.LayerError, match="has no in_features yet"):
        copied(torch.zeros(1, 3))
    shapes.materialize(copied, (1, 3))
    assert copied(torch.zeros(1, 3)).shape == (1, 2)
    with pytest.raises(fl.LayerError, match="has no in_features yet"):
        layer(torch.zeros(1, 3))


def test_a_complete_layer_carries_no_guard() -> None:
    for layer in (fl.Linear(3, 2), fl.Conv2d(1, 2, 3, downsample=2), fl.MaxPool2d(2), fl.LSTM(2, 3)):
        assert len(layer._forward_pre_hooks) == 0


def test_a_lazy_layer_of_ones_own_needs_no_check_in_forward() -> None:
    class _Scale(torch.nn.Module):
        def __init__(self, features: int, device: Any = None, dtype: Any = None) -> None:
            super().__init__()
            self.features = features
            self.scale = torch.nn.Parameter(torch.ones(features, device=device, dtype=dtype))

        def reset_parameters(self) -> None:
            torch.nn.init.ones_(self.scale)

    class Scale(Inferable, _Scale, fl.WeightedModule):
        def __init__(self, features: int | None = None) -> None:
            self.construct(_Scale, {"features": features}, {"features": 1}, None, None)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale  # None while lazy: the guard never lets it get here

        def output_shape(self, *inputs: dims.ShapeValue) -> dims.ShapeValue:
            return dims.single(inputs, "Scale")

        def inferred_arguments(self, *inputs: dims.ShapeValue) -> dict[str, dims.Dim]:
            return {"features": dims.single(inputs, "Scale").at(-1, "Scale")}

    scale = Scale()
    with pytest.raises(fl.LayerError, match=r"Scale\(\) has no features yet: .* and create the parameters"):
        scale(torch.ones(2, 3))
    shapes.materialize(scale, (2, 3))
    assert scale(torch.ones(2, 3)).tolist() == [[1.0, 1.0, 1.0]] * 2


def test_refuse_and_allow_calls_on_any_module() -> None:
    relu = fl.ReLU()
    allow_calls(relu)  # nothing to undo
    refuse_calls(relu)
    with pytest.raises(fl.LayerError, match=r"ReLU\(\) is not complete yet: .* to infer its arguments"):
        relu(torch.zeros(1))
    allow_calls(relu)
    assert relu(torch.ones(1)).tolist() == [1.0]
    assert str(not_materialized(fl.Linear(out_features=2))).startswith("Linear(in_features=?, out_features=2")


def test_a_lazy_layer_follows_dtype_and_device_changes() -> None:
    model = fl.Chain(fl.BatchNorm1d(dtype=torch.float16), fl.Linear(out_features=2)).to(torch.float64)
    assert (model.BatchNorm1d.dtype, model.Linear.dtype, model.Linear.device.type) == (
        torch.float64,
        torch.float64,
        "cpu",
    )
    shapes.materialize(model, (4, 3))
    dtypes = {name: value.dtype for name, value in model.state_dict().items()}
    assert dtypes["BatchNorm1d.running_mean"] == torch.float64
    assert dtypes["BatchNorm1d.num_batches_tracked"] == torch.int64
    assert dtypes["Linear.weight"] == torch.float64
    assert model(torch.zeros(4, 3, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    ("layer", "text"),
    [
        (fl.Linear(out_features=10), "Linear(in_features=?, out_features=10, bias=True)"),
        (fl.Linear(out_features=10, bias=False), "Linear(in_features=?, out_features=10, bias=False)"),
        (fl.Conv1d(out_channels=4, kernel_size=3, groups=2), "Conv1d(?, 4, kernel_size=(3,), stride=(1,), groups=2)"),
        (
            fl.Conv2d(out_channels=64, kernel_size=3, bias=False),
            "Conv2d(?, 64, kernel_size=(3, 3), stride=(1, 1), bias=False)",
        ),
        (fl.Conv3d(out_channels=2, kernel_size=1), "Conv3d(?, 2, kernel_size=(1, 1, 1), stride=(1, 1, 1))"),
        (fl.ConvTranspose2d(out_channels=2, kernel_size=2), "ConvTranspose2d(?, 2, kernel_size=(2, 2), stride=(1, 1))"),
        (fl.LayerNorm(), "LayerNorm(?, eps=1e-05, elementwise_affine=True, bias=True)"),
        (fl.RMSNorm(eps=1e-6), "RMSNorm(?, eps=1e-06, elementwise_affine=True)"),
        (fl.GroupNorm(8), "GroupNorm(8, ?, eps=1e-05, affine=True, bias=True)"),
        (
            fl.BatchNorm1d(affine=False),
            "BatchNorm1d(?, eps=1e-05, momentum=0.1, affine=False, bias=False, track_running_stats=True)",
        ),
        (fl.BatchNorm2d(), "BatchNorm2d(?, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, torch.nn.Module) else "",
)
def test_a_lazy_layer_shows_the_missing_size_and_has_no_tensors(layer: Inferable, text: str) -> None:
    assert repr(layer) == text
    assert layer.lazy
    assert list(layer.parameters()) == []
    assert list(layer.buffers()) == []
    assert layer.state_dict() == {}
    assert layer.device.type == "cpu"
    assert layer.dtype == torch.float32


def test_a_lazy_layer_refuses_to_run() -> None:
    with pytest.raises(fl.LayerError, match=r"has no in_features yet: call fluxion\.shapes\.materialize\(model"):
        fl.Linear(out_features=3)(torch.zeros(2, 4))
    with pytest.raises(fl.LayerError, match="has no normalized_shape yet"):
        fl.LayerNorm()(torch.zeros(2, 4))  # torch would normalise without weights
    with pytest.raises(fl.LayerError, match="has no num_features yet"):
        fl.BatchNorm2d().eval()(torch.zeros(2, 4, 3, 3))
    model = fl.Chain(fl.Linear(4, 8), head=fl.Linear(out_features=2))
    with pytest.raises(fl.ChainError, match=r"Linear at 'head' failed: LayerError: .*shapes\.materialize") as caught:
        model(torch.zeros(1, 4))
    assert isinstance(caught.value.__cause__, fl.LayerError)


def test_a_lazy_layer_checks_its_other_arguments_at_construction() -> None:
    with pytest.raises(fl.LayerError, match=r"Linear needs out_features .* Linear\(out_features=10\)"):
        fl.Linear(10)
    with pytest.raises(fl.LayerError, match="Conv2d needs kernel_size"):
        fl.Conv2d(out_channels=4)
    with pytest.raises(fl.LayerError, match="GroupNorm needs num_groups"):
        fl.GroupNorm()
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):  # torch's own check
        fl.Conv2d(out_channels=5, kernel_size=3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        fl.Conv1d(out_channels=4, kernel_size=3, stride=2, padding="same")


def test_is_lazy_tells_the_nodes_materialize_works_on() -> None:
    assert is_lazy(fl.Linear(out_features=2))
    assert is_lazy(fl.MultiHeadAttention(num_heads=2))
    assert not is_lazy(fl.Linear(2, 2))
    assert not is_lazy(fl.Chain(fl.Linear(out_features=2)))  # a Chain holding one is not itself lazy
    assert not is_lazy(torch.nn.LazyLinear(2))  # torch's own lazy modules are not fluxion's protocol
