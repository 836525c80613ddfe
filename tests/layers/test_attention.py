"""Attention layers: ScaledDotProductAttention and MultiHeadAttention against the computation written out
and torch's own ``nn.MultiheadAttention``; SelfAttention, the attention of a padded batch to itself as a
Graph node takes it."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn import functional

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from tests.layers.helpers import randn, randomize


def twins() -> tuple[fl.SelfAttention, fl.MultiHeadAttention]:
    torch.manual_seed(0)
    attention = fl.SelfAttention(embed_dim=8, num_heads=2).eval()
    general = fl.MultiHeadAttention(embed_dim=8, num_heads=2).eval()
    general.load_state_dict(attention.state_dict())
    return attention, general


def test_it_is_multi_head_attention_of_the_input_to_itself_with_the_same_keys() -> None:
    attention, general = twins()
    x = torch.randn(3, 5, 8)
    mask = fl.PaddingMask()(torch.tensor([[1, 1, 1, 0, 0], [1] * 5, [1, 0, 0, 0, 0]]))

    assert attention.state_dict().keys() == general.state_dict().keys()
    torch.testing.assert_close(attention(x), general(x))
    torch.testing.assert_close(attention(x, mask), general(x, x, x, mask))
    assert not torch.allclose(attention(x, mask), attention(x))


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_padding_changes_nothing_for_the_tokens(lengths: list[int], seed: int) -> None:
    """Each sequence's tokens, padded to the longest with garbage and masked, get what they get alone."""
    attention, _ = twins()
    longest = max(lengths)
    x = torch.randn(len(lengths), longest, 8, generator=torch.Generator().manual_seed(seed))
    padding = torch.tensor([[1] * length + [0] * (longest - length) for length in lengths])
    with torch.no_grad():
        batch = attention(x, fl.PaddingMask()(padding))
        for row, length in enumerate(lengths):
            alone = attention(x[row : row + 1, :length])
            torch.testing.assert_close(batch[row : row + 1, :length], alone, atol=1e-5, rtol=1e-5)


def test_shapes_with_and_without_a_mask_are_those_of_the_forward() -> None:
    model = fl.Graph(
        {"extend": fl.PaddingMask(), "self": fl.SelfAttention(embed_dim=8, num_heads=2)},
        edges=["x -> self", "padding -> extend -> self"],
        inputs=("x", "padding"),
    )
    report = shapes.infer(model, ("B", "T", 8), ("B", "T"))
    assert report.output == dims.Shape(["B", "T", 8])
    assert report["extend"].output == dims.Shape(["B", 1, 1, "T"])
    real = model(torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.long))
    assert real.shape == (2, 3, 8)
    assert shapes.infer(fl.SelfAttention(8, num_heads=2), ("B", "T", 8)).output == dims.Shape(["B", "T", 8])


def test_a_mask_of_other_keys_is_a_shape_error_naming_the_layer() -> None:
    with pytest.raises(
        dims.ShapeError, match=r"at .attention. .*expects a mask that broadcasts to the scores \(B, 2, 5, 5\)"
    ):
        shapes.infer(fl.SelfAttention(8, num_heads=2), ("B", 5, 8), ("B", 1, 1, 4))
    with pytest.raises(dims.ShapeError, match="PaddingMask expects a mask of rank 1 or more"):
        shapes.infer(fl.PaddingMask(), ())


def test_lazy_self_attention_materializes_and_dumps_the_inferred_width() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(4, 8), fl.SelfAttention(num_heads=2))
    assert model.SelfAttention.missing == ("embed_dim",)

    report = shapes.materialize(model, ("B", "T", 4))

    attention = model.SelfAttention
    assert report.output == dims.Shape(["B", "T", 8])
    assert (attention.embed_dim, attention.key_dim, attention.value_dim) == (8, 8, 8)
    assert attention["projections.key"].in_features == 8
    assert model(torch.randn(2, 3, 4)).shape == (2, 3, 8)
    dumped = spec.dump(model)
    rebuilt = spec.loads(dumped)
    assert isinstance(rebuilt["SelfAttention"], fl.SelfAttention)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()


def test_a_complete_layer_refuses_to_materialize() -> None:
    with pytest.raises(fl.LayerError, match="SelfAttention expects exactly nothing"):
        fl.SelfAttention(8, num_heads=2).materialized(embed_dim=8)


# -- ScaledDotProductAttention and MultiHeadAttention against the computation written out and torch ---


def attention_reference(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    num_heads: int,
    mask: Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """Multi-head attention written out: split heads, softmax(q k^T * scale + mask) v, merge."""

    def split(t: Tensor) -> Tensor:
        return t.reshape(*t.shape[:-1], num_heads, t.shape[-1] // num_heads).transpose(-3, -2)

    q, k, v = split(query), split(key), split(value)
    scores = q @ k.transpose(-1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if is_causal:
        allowed = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        scores = scores.masked_fill(~allowed, float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    out = scores.softmax(dim=-1) @ v
    return out.transpose(-3, -2).flatten(-2)


@pytest.mark.parametrize("num_heads", [1, 2, 4])
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_scaled_dot_product_attention_matches_reference(num_heads: int, is_causal: bool, scale: float | None) -> None:
    d = torch.float64
    q, k, v = randn(2, 5, 8, dtype=d, seed=1), randn(2, 5, 8, dtype=d, seed=2), randn(2, 5, 12, dtype=d, seed=3)
    layer = fl.ScaledDotProductAttention(num_heads=num_heads, is_causal=is_causal, scale=scale)
    expected = attention_reference(q, k, v, num_heads, is_causal=is_causal, scale=scale)
    torch.testing.assert_close(layer(q, k, v), expected)
    # the per-head computation is torch's own scaled_dot_product_attention
    heads = [
        functional.scaled_dot_product_attention(
            *(t.unflatten(-1, (num_heads, -1))[..., h, :] for t in (q, k, v)), is_causal=is_causal, scale=scale
        )
        for h in range(num_heads)
    ]
    torch.testing.assert_close(layer(q, k, v), torch.cat(heads, dim=-1))


@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("mask_shape", [(4, 6), (2, 1, 4, 6), (2, 2, 4, 6)])
def test_scaled_dot_product_attention_masks_match_reference(kind: str, mask_shape: tuple[int, ...]) -> None:
    d = torch.float64
    q, k, v = randn(2, 4, 8, dtype=d, seed=1), randn(2, 6, 8, dtype=d, seed=2), randn(2, 6, 8, dtype=d, seed=3)
    if kind == "bool":
        mask = torch.rand(mask_shape, generator=torch.Generator().manual_seed(4)) > 0.4
        mask[..., 0] = True  # no fully masked row
    else:
        mask = randn(*mask_shape, seed=4, dtype=d)
    layer = fl.ScaledDotProductAttention(num_heads=2)
    torch.testing.assert_close(layer(q, k, v, mask), attention_reference(q, k, v, 2, mask=mask))
    torch.testing.assert_close(layer(q, k, v, mask=mask), attention_reference(q, k, v, 2, mask=mask))


def test_scaled_dot_product_attention_without_batch_dimension() -> None:
    q = randn(5, 6, dtype=torch.float64)
    layer = fl.ScaledDotProductAttention(num_heads=3)
    torch.testing.assert_close(layer(q, q, q), attention_reference(q, q, q, 3))


def test_scaled_dot_product_attention_dropout_only_in_training() -> None:
    q = randn(2, 5, 8)
    layer = fl.ScaledDotProductAttention(num_heads=2, dropout=0.9).eval()
    torch.testing.assert_close(layer(q, q, q), attention_reference(q, q, q, 2))
    layer.train()
    torch.manual_seed(0)
    out = layer(q, q, q)
    torch.manual_seed(0)
    expected = functional.scaled_dot_product_attention(
        *(t.unflatten(-1, (2, -1)).transpose(-3, -2) for t in (q, q, q)), dropout_p=0.9
    )
    torch.testing.assert_close(out, expected.transpose(-3, -2).flatten(-2))


def load_torch_mha(ours: fl.MultiHeadAttention, reference: nn.MultiheadAttention) -> None:
    """Copy torch's packed (or separate) input projections and out_proj into fluxion's Linears."""
    if reference.in_proj_weight is not None:
        query_w, key_w, value_w = reference.in_proj_weight.chunk(3)
    else:
        query_w, key_w, value_w = reference.q_proj_weight, reference.k_proj_weight, reference.v_proj_weight
    state = {
        "projections.query.weight": query_w,
        "projections.key.weight": key_w,
        "projections.value.weight": value_w,
        "output.weight": reference.out_proj.weight,
    }
    if reference.in_proj_bias is not None:
        query_b, key_b, value_b = reference.in_proj_bias.chunk(3)
        state |= {
            "projections.query.bias": query_b,
            "projections.key.bias": key_b,
            "projections.value.bias": value_b,
            "output.bias": reference.out_proj.bias,
        }
    ours.load_state_dict(state, strict=True)


def mha_pair(
    embed_dim: int, num_heads: int, kdim: int | None = None, vdim: int | None = None, bias: bool = True
) -> tuple[fl.MultiHeadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(
        embed_dim, num_heads, bias=bias, kdim=kdim, vdim=vdim, batch_first=True, dtype=torch.float64
    ).eval()
    randomize(reference)
    ours = fl.MultiHeadAttention(
        embed_dim, num_heads, key_dim=kdim, value_dim=vdim, bias=bias, dtype=torch.float64
    ).eval()
    load_torch_mha(ours, reference)
    return ours, reference


def test_multi_head_attention_state_dict_layout() -> None:
    ours = fl.MultiHeadAttention(8, 2, key_dim=6, value_dim=5)
    assert {key: tuple(value.shape) for key, value in ours.state_dict().items()} == {
        "projections.query.weight": (8, 8),
        "projections.query.bias": (8,),
        "projections.key.weight": (8, 6),
        "projections.key.bias": (8,),
        "projections.value.weight": (8, 5),
        "projections.value.bias": (8,),
        "output.weight": (8, 8),
        "output.bias": (8,),
    }
    assert isinstance(ours.projections, fl.Distribute)
    assert isinstance(ours.attention, fl.ScaledDotProductAttention)
    assert ours["projections.query"].address == "projections.query"
    assert sorted(fl.MultiHeadAttention(8, 2, bias=False).state_dict()) == [
        "output.weight",
        "projections.key.weight",
        "projections.query.weight",
        "projections.value.weight",
    ]


@pytest.mark.parametrize("num_heads", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_multi_head_self_attention_matches_torch(num_heads: int, bias: bool) -> None:
    ours, reference = mha_pair(8, num_heads, bias=bias)
    x = randn(3, 5, 8, dtype=torch.float64)
    expected, _ = reference(x, x, x, need_weights=False)
    torch.testing.assert_close(ours(x), expected)
    torch.testing.assert_close(ours(x, x, x), expected)


def test_multi_head_cross_attention_matches_torch() -> None:
    ours, reference = mha_pair(8, 2, kdim=6, vdim=5)
    q, k, v = (
        randn(2, 4, 8, dtype=torch.float64, seed=1),
        randn(2, 7, 6, dtype=torch.float64, seed=2),
        randn(2, 7, 5, dtype=torch.float64, seed=3),
    )
    expected, _ = reference(q, k, v, need_weights=False)
    torch.testing.assert_close(ours(q, k, v), expected)


def test_multi_head_attention_key_defaults_value() -> None:
    # value_dim defaults to key_dim (value defaults to key), where torch's vdim defaults to embed_dim
    assert fl.MultiHeadAttention(8, 2, key_dim=6)["projections.value"].in_features == 6
    ours, reference = mha_pair(8, 2, kdim=6, vdim=6)
    q, k = randn(2, 4, 8, dtype=torch.float64, seed=1), randn(2, 7, 6, dtype=torch.float64, seed=2)
    expected, _ = reference(q, k, k, need_weights=False)
    torch.testing.assert_close(ours(q, k), expected)


@pytest.mark.parametrize("mask_rank", [2, 3])
def test_multi_head_attention_with_boolean_mask_matches_torch(mask_rank: int) -> None:
    ours, reference = mha_pair(8, 2)
    q, kv = randn(2, 4, 8, dtype=torch.float64, seed=1), randn(2, 6, 8, dtype=torch.float64, seed=2)
    generator = torch.Generator().manual_seed(5)
    if mask_rank == 2:
        allowed = torch.rand(4, 6, generator=generator) > 0.5
        allowed[:, 0] = True
        torch_mask = ~allowed  # torch's MultiheadAttention: True means "may not attend"
    else:
        allowed = torch.rand(2, 1, 4, 6, generator=generator) > 0.5
        allowed[..., 0] = True
        torch_mask = ~allowed.expand(2, 2, 4, 6).reshape(4, 4, 6)  # (batch * heads, L, S)
    expected, _ = reference(q, kv, kv, attn_mask=torch_mask, need_weights=False)
    torch.testing.assert_close(ours(q, kv, kv, allowed), expected)
    torch.testing.assert_close(ours(q, kv, kv, mask=allowed), expected)
    # and the mask really matters
    assert not torch.allclose(ours(q, kv, kv), expected)


def test_multi_head_attention_with_float_mask_matches_torch() -> None:
    ours, reference = mha_pair(8, 2)
    x = randn(2, 5, 8, dtype=torch.float64)
    additive = randn(5, 5, seed=9, dtype=torch.float64)
    expected, _ = reference(x, x, x, attn_mask=additive, need_weights=False)
    torch.testing.assert_close(ours(x, mask=additive), expected)


@pytest.mark.parametrize("num_heads", [1, 4])
def test_causal_multi_head_attention_matches_torch(num_heads: int) -> None:
    ours, reference = mha_pair(8, num_heads)
    causal = fl.MultiHeadAttention(8, num_heads, is_causal=True, dtype=torch.float64).eval()
    causal.load_state_dict(ours.state_dict(), strict=True)
    x = randn(2, 6, 8, dtype=torch.float64)
    torch_mask = nn.Transformer.generate_square_subsequent_mask(6, dtype=torch.float64)
    expected, _ = reference(x, x, x, attn_mask=torch_mask, is_causal=True, need_weights=False)
    torch.testing.assert_close(causal(x), expected)
    # the same as an explicit lower-triangular boolean mask on the non-causal layer
    torch.testing.assert_close(ours(x, mask=torch.ones(6, 6, dtype=torch.bool).tril()), expected)
    # the first position sees only itself, so later positions cannot change it
    changed = x.clone()
    changed[:, 1:] += 1
    torch.testing.assert_close(causal(changed)[:, 0], causal(x)[:, 0])


def test_multi_head_attention_rejects_indivisible_heads() -> None:
    with pytest.raises(fl.LayerError, match="divisible"):
        fl.MultiHeadAttention(embed_dim=10, num_heads=3)
    with pytest.raises(fl.LayerError, match="num_heads"):
        fl.ScaledDotProductAttention(num_heads=0)
