"""Review of ``largest_activations`` counting a tensor once (issue 21): a tensor that is made must
still be listed. Checked against what torch does (storage shared or not)."""

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes
from fluxion.inspect.activations import largest_activations


def test_films_output_is_an_activation() -> None:
    model = fl.Chain(fl.FiLM(64, 4))
    report = shapes.infer(model, ("B", 64, 32, 32), ("B", 4))
    assert "FiLM" in [activation.address for activation in largest_activations(report, {"B": 1})]


@pytest.mark.xfail(
    strict=True,
    reason="Reshape (and Flatten) are listed as views, but after a Permute the input is not contiguous "
    "and torch copies: a new tensor that largest_activations does not list",
)
def test_a_reshape_that_copies_is_an_activation() -> None:
    model = fl.Chain(fl.Linear(8, 8), fl.Permute(0, 2, 1), fl.Reshape(-1))
    permuted = model[1](model[0](torch.randn(2, 16, 8)))
    reshaped = model[2](permuted)
    assert reshaped.untyped_storage().data_ptr() != permuted.untyped_storage().data_ptr()  # torch copied
    report = shapes.infer(model, ("B", 16, 8))
    assert "Reshape" in [activation.address for activation in largest_activations(report, {"B": 1})]
