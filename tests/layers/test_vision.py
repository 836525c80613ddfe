"""fluxion.layers.vision: a class token, learned positions for a fixed grid, an image's pixels as
tokens, and the sinusoidal embedding of a timestep."""

from __future__ import annotations

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from fluxion.errors import ChainError, ShapeError


def test_class_token_and_positions_take_their_sizes_from_the_input() -> None:
    model = fl.Chain(fl.ClassToken(), fl.PositionEmbedding())
    report = shapes.materialize(model, ("B", 16, 8))
    assert report.output == dims.Shape(["B", 17, 8])
    assert [(name, tuple(value.shape)) for name, value in model.state_dict().items()] == [
        ("ClassToken.weight", (1, 1, 8)),
        ("PositionEmbedding.weight", (1, 17, 8)),
    ]
    assert model(torch.zeros(2, 16, 8)).shape == (2, 17, 8)
    assert repr(spec.loads(spec.dump(model))) == repr(model)


def test_positions_refuse_another_length_in_the_rule_and_the_forward() -> None:
    positions = fl.PositionEmbedding(4, 2)
    with pytest.raises(shapes.ShapeError, match="PositionEmbedding expects 4 positions at dim -2, got 5"):
        dims.run(positions, dims.Shape(["B", 5, 2]))
    with pytest.raises(fl.LayerError, match="expects 4 positions at dim -2, got 5"):
        positions(torch.zeros(1, 5, 2))


def test_tokens2d_runs_its_children_on_pixels_and_folds_back() -> None:
    linear = fl.Linear(3, 5)
    tokens = fl.Tokens2d(linear)
    image = torch.randn(2, 3, 4, 6)
    expected = linear(image.flatten(-2).transpose(-1, -2)).transpose(-1, -2).unflatten(-1, (4, 6))
    assert torch.equal(tokens(image), expected)
    assert shapes.infer(fl.Chain(tokens), ("B", 3, "H", "W")).output == dims.Shape(["B", 5, "H", "W"])


def test_sinusoidal_embedding_of_an_odd_dim_ends_with_a_zero() -> None:
    embedding = fl.SinusoidalEmbedding(5)
    out = embedding(torch.tensor([0.0, 3.0]))
    assert out.shape == (2, 5)
    assert out[:, -1].tolist() == [0.0, 0.0]
    assert dims.run(embedding, dims.Shape(["B"])) == dims.Shape(["B", 5])


def test_tokens2d_refuses_children_that_move_the_batch_dim() -> None:
    # a Conv2d reads (B, H*W, C) tokens as one unbatched image: its output can't be folded back
    model = fl.Tokens2d(fl.Conv2d(2, 3, kernel_size=1))
    with pytest.raises(
        ChainError,
        match=r"ShapeError: Tokens2d .* keep \(2, 4\) before the channels, got \(3, 4, 2\)",
    ):
        model(torch.randn(2, 2, 2, 2))
    with pytest.raises(ShapeError, match="keep dim 0"):
        shapes.infer(fl.Chain(fl.Tokens2d(fl.Conv2d(2, 3, kernel_size=1))), (2, 2, 2, 2))
