"""fluxion.shapes.torch_rules: torch's classes without a fluxion layer, each rule against torch's forward.

Each property draws sizes, infers with symbols, substitutes the drawn numbers and compares with
the shapes the real forward returns; with concrete sizes, whatever the forward refuses the rule
refuses too (a ShapeError), and whatever it runs the rule gives its shapes.
"""

import warnings
from collections.abc import Sequence
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxion import dims, shapes
from fluxion.dims import Shape, ShapeValue
from fluxion.shapes.torch_rules import ELEMENTWISE
from tests.shapes.helpers import evaluate

FAST = settings(max_examples=30, deadline=None)


def shapes_of(value: Any) -> Any:
    """The shapes of a forward's result as plain tuples (None stays None)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    return tuple(shapes_of(item) for item in value)


def forward_shapes(module: torch.nn.Module, *sizes: Sequence[int]) -> Any:
    """What the forward returns for zero inputs of ``sizes``, as shapes (warnings of odd ranks muted)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return shapes_of(module(*[torch.zeros(tuple(size)) for size in sizes]))


def agrees(module: torch.nn.Module, *sizes: Sequence[int]) -> None:
    """The rule with concrete sizes refuses exactly what the forward refuses, and gives its shapes."""
    try:
        expected = forward_shapes(module, *sizes)
    except Exception:
        with pytest.raises(shapes.ShapeError):
            shapes.infer(module, *sizes)
        return
    assert evaluate(shapes.infer(module, *sizes).output, {}) == expected


def symbolic(module: torch.nn.Module, named: Sequence[Sequence[int | str]], values: dict[str, int]) -> None:
    """Infer with symbols, substitute ``values``, compare with the forward at those numbers."""
    report = shapes.infer(module, *named)
    numbers = [evaluate(Shape(shape), values) for shape in named]
    assert evaluate(report.output, values) == forward_shapes(module, *numbers)


ranks = st.lists(st.integers(1, 4), min_size=0, max_size=5)


@FAST
@given(index=st.integers(0, len(ELEMENTWISE) - 1), sizes=ranks)
def test_elementwise_classes_keep_any_shape(index: int, sizes: list[int]) -> None:
    kind = ELEMENTWISE[index]
    module = kind(0.5, 0.0) if kind is torch.nn.Threshold else kind()
    agrees(module, sizes)
    if sizes:
        names = [f"D{position}" for position in range(len(sizes))]
        symbolic(module, [names], dict(zip(names, sizes, strict=True)))


@FAST
@given(
    kind=st.sampled_from([torch.nn.Softmax, torch.nn.Softmin, torch.nn.LogSoftmax]),
    dim=st.none() | st.integers(-4, 3),
    sizes=ranks,
)
def test_softmax_family_needs_its_dim(kind: type[torch.nn.Softmax], dim: int | None, sizes: list[int]) -> None:
    agrees(kind(dim=dim), sizes)


@FAST
@given(dim=st.integers(-3, 2), sizes=st.lists(st.integers(1, 5), min_size=0, max_size=3))
def test_glu_halves_an_even_dim(dim: int, sizes: list[int]) -> None:
    agrees(torch.nn.GLU(dim), sizes)


def test_glu_with_a_symbol_records_that_it_must_be_even() -> None:
    report = shapes.infer(torch.nn.GLU(), ("B", "F"))
    assert str(report.output) == "(B, F/2)"
    assert str(report.constraints[0]).startswith("F must be divisible by 2")


@FAST
@given(parameters=st.sampled_from([1, 3]), sizes=st.lists(st.integers(1, 4), min_size=0, max_size=4))
def test_prelu_takes_one_parameter_per_channel(parameters: int, sizes: list[int]) -> None:
    agrees(torch.nn.PReLU(parameters), sizes)


@FAST
@given(
    kind=st.sampled_from([torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d, torch.nn.FeatureAlphaDropout]),
    training=st.booleans(),
    sizes=st.lists(st.integers(1, 3), min_size=0, max_size=6),
)
def test_feature_dropouts_take_the_ranks_torch_takes(
    kind: type[torch.nn.Module], training: bool, sizes: list[int]
) -> None:
    agrees(kind().train(training), sizes)


@FAST
@given(sizes=st.lists(st.integers(1, 3), min_size=0, max_size=5))
def test_softmax2d_takes_three_or_four_dims(sizes: list[int]) -> None:
    agrees(torch.nn.Softmax2d(), sizes)


def test_flatten_unflatten_embedding_linear_norms_and_sequential_follow_torch() -> None:
    symbolic(torch.nn.Flatten(), [("B", 3, "H", "W")], {"B": 2, "H": 4, "W": 5})
    symbolic(torch.nn.Unflatten(1, (3, -1)), [("B", "F")], {"B": 2, "F": 12})
    embedding = torch.nn.Embedding(10, 4)
    assert shapes.infer(embedding, ("B", "T")).output == Shape(["B", "T", 4])
    assert embedding(torch.zeros(2, 3, dtype=torch.long)).shape == (2, 3, 4)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.LayerNorm(8), torch.nn.RMSNorm(8))
    symbolic(model, [("B", "T", 4)], {"B": 2, "T": 3})
    with pytest.raises(shapes.ShapeError, match="Linear at '0' got \\(B, 5\\): Linear expects last dim 4, got 5"):
        shapes.infer(model, ("B", 5))
    with pytest.raises(shapes.ShapeError, match="LayerNorm"):
        shapes.infer(torch.nn.LayerNorm(8), ("B", 7))


@FAST
@given(
    kind=st.sampled_from([torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU]),
    batch_first=st.booleans(),
    bidirectional=st.booleans(),
    layers=st.integers(1, 2),
    batched=st.booleans(),
    steps=st.integers(1, 3),
    batch=st.integers(1, 3),
    features=st.sampled_from([3, 4]),
)
def test_recurrent_layers_give_output_and_state(
    kind: Any,
    batch_first: bool,
    bidirectional: bool,
    layers: int,
    batched: bool,
    steps: int,
    batch: int,
    features: int,
) -> None:
    module = kind(3, 5, num_layers=layers, batch_first=batch_first, bidirectional=bidirectional)
    if not batched:
        agrees(module, (steps, features))
        symbolic(module, [("T", 3)], {"T": steps})
        return
    sizes = (batch, steps, features) if batch_first else (steps, batch, features)
    agrees(module, sizes)
    named = ("B", "T", 3) if batch_first else ("T", "B", 3)
    symbolic(module, [named], {"B": batch, "T": steps})


def test_lstm_with_a_projection_and_an_initial_state() -> None:
    lstm = torch.nn.LSTM(3, 6, proj_size=2)
    rule = shapes.rule_for(lstm)
    assert rule is not None
    output = rule(Shape(["T", "B", 3]), (Shape([1, "B", 2]), Shape([1, "B", 6])))
    assert evaluate(output, {"T": 4, "B": 2}) == ((4, 2, 2), ((1, 2, 2), (1, 2, 6)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # oneDNN's note on projections
        output, (hidden, cell) = lstm(torch.zeros(4, 2, 3), (torch.zeros(1, 2, 2), torch.zeros(1, 2, 6)))
    assert (output.shape, hidden.shape, cell.shape) == ((4, 2, 2), (1, 2, 2), (1, 2, 6))
    with pytest.raises(shapes.ShapeError, match="LSTM expects an initial state"):
        rule(Shape(["T", "B", 3]), (Shape([1, "B", 6]), Shape([1, "B", 6])))


@FAST
@given(
    batch_first=st.booleans(),
    batched=st.booleans(),
    kdim=st.sampled_from([None, 4]),
    bias_kv=st.booleans(),
    zero_attn=st.booleans(),
    steps=st.integers(1, 3),
    source=st.integers(1, 3),
    batch=st.integers(1, 3),
)
def test_multihead_attention_returns_output_and_averaged_weights(
    batch_first: bool,
    batched: bool,
    kdim: int | None,
    bias_kv: bool,
    zero_attn: bool,
    steps: int,
    source: int,
    batch: int,
) -> None:
    attention = torch.nn.MultiheadAttention(
        8, 2, kdim=kdim, vdim=kdim, batch_first=batch_first, add_bias_kv=bias_kv, add_zero_attn=zero_attn
    )
    k = kdim or 8

    def layout(length: Any, features: Any, batch_size: Any) -> tuple[Any, ...]:
        if not batched:
            return (length, features)
        return (batch_size, length, features) if batch_first else (length, batch_size, features)

    numbers = [layout(steps, 8, batch), layout(source, k, batch), layout(source, k, batch)]
    agrees(attention, *numbers)
    names = [layout("T", 8, "B"), layout("S", k, "B"), layout("S", k, "B")]
    symbolic(attention, names, {"T": steps, "S": source, "B": batch})


@FAST
@given(
    query=st.lists(st.sampled_from([1, 2, 8]), min_size=1, max_size=4),
    key=st.lists(st.sampled_from([1, 2, 8]), min_size=1, max_size=4),
    value=st.lists(st.sampled_from([1, 2, 8]), min_size=1, max_size=4),
    padding=st.none() | st.lists(st.sampled_from([1, 2]), min_size=1, max_size=3),
    mask=st.none() | st.lists(st.sampled_from([1, 2, 4]), min_size=1, max_size=4),
)
def test_multihead_attention_refuses_what_torch_refuses(
    query: list[int], key: list[int], value: list[int], padding: list[int] | None, mask: list[int] | None
) -> None:
    attention = torch.nn.MultiheadAttention(8, 2)
    inputs = [torch.zeros(tuple(query)), torch.zeros(tuple(key)), torch.zeros(tuple(value))]
    extra: dict[str, Any] = {}
    if padding is not None:
        extra["key_padding_mask"] = torch.zeros(tuple(padding), dtype=torch.bool)
    if mask is not None:
        extra["attn_mask"] = torch.zeros(tuple(mask), dtype=torch.bool)
    try:
        with torch.no_grad():
            output, weights = attention(*inputs, **extra)
    except Exception:
        with pytest.raises(shapes.ShapeError):
            _attention_rule(attention, query, key, value, padding, mask)
        return
    assert evaluate(_attention_rule(attention, query, key, value, padding, mask), {}) == (
        tuple(output.shape),
        tuple(weights.shape),
    )


def _attention_rule(
    attention: torch.nn.MultiheadAttention,
    query: list[int],
    key: list[int],
    value: list[int],
    padding: list[int] | None,
    mask: list[int] | None,
) -> ShapeValue:
    rule = shapes.rule_for(attention)
    assert rule is not None
    optional = [None if size is None else Shape(size) for size in (padding, None, mask)]
    with dims.running(inputs=()):
        return rule(Shape(query), Shape(key), Shape(value), *optional)


def test_multihead_attention_flags_are_not_tensors() -> None:
    rule = shapes.rule_for(torch.nn.MultiheadAttention(8, 2))
    assert rule is not None
    with pytest.raises(shapes.ShapeError, match="need_weights, average_attn_weights and is_causal are flags"):
        rule(Shape([2, 8]), Shape([2, 8]), Shape([2, 8]), None, Shape([1]))


@FAST
@given(batch_first=st.booleans(), steps=st.integers(1, 3), source=st.integers(1, 3), batch=st.integers(1, 2))
def test_transformer_encoder_decoder_and_layers_keep_the_sequence_shape(
    batch_first: bool, steps: int, source: int, batch: int
) -> None:
    def layout(length: Any, batch_size: Any) -> tuple[Any, ...]:
        return (batch_size, length, 8) if batch_first else (length, batch_size, 8)

    values = {"S": source, "T": steps, "B": batch}
    common: dict[str, Any] = {"dim_feedforward": 16, "dropout": 0.0, "batch_first": batch_first}
    encoder_layer = torch.nn.TransformerEncoderLayer(8, 2, **common)
    decoder_layer = torch.nn.TransformerDecoderLayer(8, 2, **common)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the nested-tensor note of an encoder without batch_first
        encoder = torch.nn.TransformerEncoder(encoder_layer, 2)
        transformer = torch.nn.Transformer(8, 2, 1, 1, **common)
    decoder = torch.nn.TransformerDecoder(decoder_layer, 2)
    symbolic(encoder_layer, [layout("S", "B")], values)
    symbolic(encoder, [layout("S", "B")], values)
    symbolic(decoder_layer, [layout("T", "B"), layout("S", "B")], values)
    symbolic(decoder, [layout("T", "B"), layout("S", "B")], values)
    symbolic(transformer, [layout("S", "B"), layout("T", "B")], values)
    agrees(transformer, layout(source, batch), layout(steps, batch + 1))
    agrees(transformer, layout(source, batch), (*layout(steps, batch)[:2], 4))


def test_transformer_report_has_its_encoder_and_decoder_layers() -> None:
    model = torch.nn.Transformer(8, 2, 2, 1, dim_feedforward=16, batch_first=True)
    report = shapes.infer(model, ("B", "S", 8), ("B", "T", 8))
    assert report["encoder.layers.1"].output == Shape(["B", "S", 8])
    assert report["decoder.layers.0"].inputs == (Shape(["B", "T", 8]), Shape(["B", "S", 8]))
    assert report["decoder.norm"].output == report.output == Shape(["B", "T", 8])


def test_transformer_masks_are_checked() -> None:
    layer = torch.nn.TransformerEncoderLayer(8, 2, batch_first=True)
    assert shapes.infer(layer, ("B", "S", 8), ("S", "S"), ("B", "S")).output == Shape(["B", "S", 8])
    with pytest.raises(shapes.ShapeError, match="expects a 2D attn_mask of shape \\(4, 4\\), got 3"):
        shapes.infer(layer, ("B", 4, 8), (4, 3))
    with pytest.raises(shapes.ShapeError, match="expects a key_padding_mask of shape \\(B, S\\), got \\(S,\\)"):
        shapes.infer(layer, ("B", "S", 8), ("S", "S"), ("S",))
    assert shapes.infer(layer, ("B", "S", 8), ("S", 5)).output == Shape(["B", 5, 8])  # the mask fixes S
