"""Activations and the other element-wise leaves: torch's results, in place where torch works in place."""

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional

import fluxion.layers as fl
from tests.layers.helpers import randn


def test_softmax_default_dim_is_last() -> None:
    assert fl.Softmax().dim == -1
    x = randn(3, 4, 5)
    torch.testing.assert_close(fl.Softmax()(x), nn.Softmax(dim=-1)(x))


@pytest.mark.parametrize(
    ("make_layer", "reference"),
    [
        (lambda: fl.ReLU(inplace=True), lambda x: functional.relu(x, inplace=True)),
        (lambda: fl.SiLU(inplace=True), lambda x: functional.silu(x, inplace=True)),
        (lambda: fl.LeakyReLU(0.1, inplace=True), lambda x: functional.leaky_relu(x, 0.1, inplace=True)),
        (lambda: fl.Dropout(0.5, inplace=True).eval(), lambda x: x),
    ],
    ids=["ReLU", "SiLU", "LeakyReLU", "Dropout-eval"],
)
def test_inplace_activations_match_torch(
    make_layer: Callable[[], nn.Module], reference: Callable[[Tensor], Tensor]
) -> None:
    x, y = randn(3, 5), randn(3, 5)
    out = make_layer()(x)
    expected = reference(y)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(x, y, rtol=0, atol=0)  # the input was changed in place as torch does


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_dropout_in_training_matches_torch_with_the_same_seed(p: float) -> None:
    x = randn(4, 50)
    layer = fl.Dropout(p)
    assert layer.training
    torch.manual_seed(123)
    out = layer(x)
    torch.manual_seed(123)
    torch.testing.assert_close(out, functional.dropout(x, p, training=True), rtol=0, atol=0)
