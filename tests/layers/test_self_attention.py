"""SelfAttention and PaddingMask: attention of a padded batch to itself, as a Graph node takes it."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes, spec


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


def test_padding_mask_accepts_booleans_and_passes_none_on() -> None:
    booleans = torch.tensor([[True, False]])
    assert torch.equal(fl.PaddingMask()(booleans), booleans[:, None, None, :])
    assert fl.PaddingMask()(torch.tensor([[2, 0]])).dtype == torch.bool
    assert fl.PaddingMask()(None) is None


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
