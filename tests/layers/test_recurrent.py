"""fl.LSTM, fl.GRU and fl.RNN: torch's layers (arguments, keys, outputs), an exact shape rule, lazy input_size."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from fluxion.errors import ShapeError
from fluxion.layers import LayerError
from tests.shapes.helpers import evaluate

KINDS: list[tuple[type[Any], type[nn.RNNBase]]] = [(fl.LSTM, nn.LSTM), (fl.GRU, nn.GRU), (fl.RNN, nn.RNN)]


def shapes_of(value: Any) -> Any:
    """The shapes in what a recurrent layer returns (a tensor, or tuples of them)."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return tuple(shapes_of(item) for item in value)


@st.composite
def configurations(draw: st.DrawFn) -> tuple[type[Any], type[nn.RNNBase], dict[str, Any], tuple[int, ...]]:
    fluxion_class, torch_class = draw(st.sampled_from(KINDS))
    hidden = draw(st.integers(1, 5))
    options: dict[str, Any] = {
        "input_size": draw(st.integers(1, 4)),
        "hidden_size": hidden,
        "num_layers": draw(st.integers(1, 3)),
        "bias": draw(st.booleans()),
        "batch_first": draw(st.booleans()),
        "bidirectional": draw(st.booleans()),
    }
    if fluxion_class is fl.LSTM and hidden > 1 and draw(st.booleans()):
        options["proj_size"] = draw(st.integers(1, hidden - 1))
    if fluxion_class is fl.RNN:
        options["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    length = draw(st.integers(1, 4))
    batch = draw(st.lists(st.integers(0, 3), max_size=1))  # no batch dim: an unbatched input
    if not batch:
        shape = (length, options["input_size"])
    elif options["batch_first"]:
        shape = (batch[0], length, options["input_size"])
    else:
        shape = (length, batch[0], options["input_size"])
    return fluxion_class, torch_class, options, shape


@settings(max_examples=120, deadline=None)
@given(configurations(), st.booleans())
def test_rule_matches_forward_and_torch(
    configuration: tuple[type[Any], type[nn.RNNBase], dict[str, Any], tuple[int, ...]], return_state: bool
) -> None:
    fluxion_class, torch_class, options, shape = configuration
    reference = torch_class(**options)
    layer = fluxion_class(**options, return_state=return_state)
    layer.load_state_dict(reference.state_dict(), strict=True)  # torch's keys, exactly
    x = torch.randn(shape)
    expected = reference(x)
    got = layer(x)
    torch.testing.assert_close(got, expected if return_state else expected[0])
    if len(shape) == 2:
        symbols: list[int | str] = ["T", shape[-1]]
    else:
        symbols = ["N", "T", shape[-1]] if options["batch_first"] else ["T", "N", shape[-1]]
    values = {name: size for name, size in zip(symbols, shape, strict=True) if isinstance(name, str)}
    rule = layer.output_shape(dims.Shape(symbols))
    assert evaluate(rule, values) == shapes_of(got)


@pytest.mark.parametrize(("fluxion_class", "torch_class"), KINDS)
def test_initial_state_is_checked_and_used(fluxion_class: type[Any], torch_class: type[nn.RNNBase]) -> None:
    layer = fluxion_class(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    _, state = layer(x)
    output, again = layer(x, state)
    assert shapes_of(again) == shapes_of(state)
    state_shape = layer.output_shape(dims.Shape([5, 2, 3]))[1]
    assert layer.output_shape(dims.Shape([5, 2, 3]), state_shape)[0] == dims.Shape([5, 2, 4])
    wrong = dims.Shape([1, 2, 4])
    bad_state = (wrong, wrong) if fluxion_class is fl.LSTM else wrong
    with pytest.raises(ShapeError, match="initial state"):
        layer.output_shape(dims.Shape([5, 2, 3]), bad_state)
    with pytest.raises(RuntimeError):  # torch agrees: that state does not fit
        layer(x, tuple(torch.zeros(1, 2, 4) for _ in range(2)) if fluxion_class is fl.LSTM else torch.zeros(1, 2, 4))
    assert output.shape == (5, 2, 4)


@pytest.mark.parametrize(("fluxion_class", "torch_class"), KINDS)
def test_input_size_is_inferred(fluxion_class: type[Any], torch_class: type[nn.RNNBase]) -> None:
    model = fl.Chain(fluxion_class(hidden_size=6, batch_first=True, bidirectional=True, return_state=False))
    layer = model[0]
    assert layer.lazy
    assert layer.missing == ("input_size",)
    with pytest.raises(LayerError, match="input_size"):
        layer(torch.zeros(2, 3, 5))
    report = shapes.infer(model, ("B", "T", 5))
    assert report.output == dims.Shape(["B", "T", 12])
    shapes.materialize(model, ("B", "T", 5))
    reference = torch_class(5, 6, batch_first=True, bidirectional=True)
    assert not layer.lazy
    assert layer.input_size == 5
    assert [(k, v.shape) for k, v in layer.state_dict().items()] == [
        (k, v.shape) for k, v in reference.state_dict().items()
    ]
    layer.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(model(x), reference(x)[0])


def test_lazy_layer_follows_dtype_and_device_moves() -> None:
    layer = fl.LSTM(hidden_size=3).to(torch.float64)
    shapes.materialize(fl.Chain(layer), (4, 2))
    assert layer.weight_ih_l0.dtype == torch.float64
    assert layer(torch.zeros(4, 2, dtype=torch.float64))[0].dtype == torch.float64
    meta = fl.GRU(hidden_size=3, device="meta")
    shapes.materialize(fl.Chain(meta), (4, 1, 2))
    assert meta.weight_hh_l0.is_meta


def test_rule_refuses_what_torch_refuses() -> None:
    layer = fl.GRU(3, 4)
    with pytest.raises(ShapeError, match="input_size 3"):
        layer.output_shape(dims.Shape([5, 2, 7]))
    with pytest.raises(RuntimeError):
        layer(torch.zeros(5, 2, 7))
    with pytest.raises(ShapeError, match=r"2D \(unbatched\) or 3D"):
        layer.output_shape(dims.Shape([5, 2, 1, 3]))
    with pytest.raises(ValueError, match="2D or 3D"):  # torch refuses 4D inputs too
        layer(torch.zeros(5, 2, 1, 3))
    with pytest.raises(ShapeError, match="one step or more"):
        layer.output_shape(dims.Shape([0, 2, 3]))
    with pytest.raises(RuntimeError, match="larger than 0"):
        layer(torch.zeros(0, 2, 3))
    assert layer.output_shape(dims.Shape([5, 0, 3]))[0] == dims.Shape([5, 0, 4])  # an empty batch is fine
    with pytest.raises(LayerError, match="hidden_size"):
        fl.LSTM(4)


def test_return_state_in_repr_and_chains() -> None:
    model = fl.Chain(fl.LSTM(4, 8, return_state=False), fl.Linear(8, 2))
    assert "return_state=False" in repr(model)
    assert model(torch.zeros(5, 3, 4)).shape == (5, 3, 2)
    assert shapes.infer(model, ("T", "B", 4)).output == dims.Shape(["T", "B", 2])
    assert "return_state" not in repr(fl.GRU(4, 8))


def test_packed_sequences_pass_through() -> None:
    layer = fl.LSTM(3, 4, return_state=False)
    packed = nn.utils.rnn.pack_sequence([torch.randn(5, 3), torch.randn(2, 3)])
    output = layer(packed)
    assert isinstance(output, nn.utils.rnn.PackedSequence)


@pytest.mark.parametrize(
    ("fluxion_class", "torch_class", "arguments"),
    [
        pytest.param(fl.LSTM, nn.LSTM, (4, 8, 2, False, True, 0.5, True, 3), id="LSTM"),
        pytest.param(fl.GRU, nn.GRU, (4, 8, 2, False, True, 0.5, True), id="GRU"),
        pytest.param(fl.RNN, nn.RNN, (4, 8, 2, "relu", False, True, 0.5, True), id="RNN"),
    ],
)
def test_each_constructor_takes_torchs_arguments_in_torchs_order(
    fluxion_class: type[Any], torch_class: type[nn.RNNBase], arguments: tuple[Any, ...]
) -> None:
    ours, theirs = fluxion_class(*arguments), torch_class(*arguments)
    assert repr(ours) == repr(theirs)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items()
    ]
    parameters = inspect.signature(fluxion_class).parameters
    assert parameters["return_state"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(parameters)[-3:] == ["device", "dtype", "return_state"]


@pytest.mark.parametrize(("fluxion_class", "torch_class"), KINDS)
def test_a_lazy_layer_loads_back_from_its_spec(fluxion_class: type[Any], torch_class: type[nn.RNNBase]) -> None:
    model = fl.Chain(fluxion_class(hidden_size=6, num_layers=2, batch_first=True, return_state=False))
    shapes.materialize(model, ("B", "T", 5))
    written = spec.dump(model)
    assert written["children"][0]["input_size"] == 5
    loaded = spec.loads(written)
    assert repr(loaded) == repr(model)
    loaded.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(loaded(x), model(x))
