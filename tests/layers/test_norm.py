"""fluxion.layers.norm: BatchNorm1d and BatchNorm2d on one base (one constructor, one rule), LayerNorm
and RMSNorm on one rule over the last dims, and GroupNorm.

Each keeps torch's signature and state_dict keys, takes exactly the inputs torch's layer takes (the
rule and the forward agree), infers its size from the input, and loads back from its spec.
"""

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

BATCH_NORMS: list[Any] = [
    pytest.param(fl.BatchNorm1d, nn.BatchNorm1d, (2, 3), id="BatchNorm1d"),
    pytest.param(fl.BatchNorm2d, nn.BatchNorm2d, (4,), id="BatchNorm2d"),
]


@pytest.mark.parametrize(("layer", "reference", "ranks"), BATCH_NORMS)
def test_a_batch_norm_keeps_torchs_signature_and_keys(
    layer: type[torch.nn.Module], reference: type[torch.nn.Module], ranks: tuple[int, ...]
) -> None:
    parameters = inspect.signature(layer).parameters
    assert list(parameters) == list(inspect.signature(reference).parameters)  # bias is torch's too (keyword only)
    assert parameters["bias"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(layer(3).state_dict()) == list(reference(3).state_dict())
    assert repr(layer(3, momentum=0.2, bias=False)) == repr(reference(3, momentum=0.2, bias=False))


@pytest.mark.parametrize(("layer", "reference", "ranks"), BATCH_NORMS)
@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("training", [True, False])
def test_a_batch_norm_takes_the_ranks_torchs_takes(
    layer: type[torch.nn.Module], reference: type[torch.nn.Module], ranks: tuple[int, ...], rank: int, training: bool
) -> None:
    norm = layer(3).train(training)
    shape = (2, 3, 4, 5, 6)[:rank] if rank > 1 else (3,)
    try:
        expected = tuple(reference(3).train(training)(torch.zeros(shape)).shape)
    except ValueError:
        with pytest.raises(shapes.ShapeError, match=f"{layer.__name__} expects a"):
            dims.run(norm, dims.Shape(shape))
        with pytest.raises(ValueError, match=r"expected .*D input"):
            norm(torch.zeros(shape))
        assert rank not in ranks
        return
    assert rank in ranks
    assert tuple(dims.run(norm, dims.Shape(shape))) == expected == tuple(norm(torch.zeros(shape)).shape)


@pytest.mark.parametrize(("layer", "reference", "ranks"), BATCH_NORMS)
def test_a_lazy_batch_norm_takes_its_features_from_dim_1_and_loads_back_from_its_spec(
    layer: type[torch.nn.Module], reference: type[torch.nn.Module], ranks: tuple[int, ...]
) -> None:
    shape = (2, 5, 3, 3)[: max(ranks)]
    model = fl.Chain(layer(momentum=0.3))
    with pytest.raises(shapes.ShapeError, match=f"{layer.__name__} expects an input of at least {min(ranks)} dims"):
        model[0].inferred_arguments(dims.Shape([2]))
    shapes.materialize(model, shape)
    assert repr(model[0]) == repr(layer(5, momentum=0.3))
    loaded = spec.loads(spec.dump(model))
    assert repr(loaded) == repr(model)
    assert list(loaded.state_dict()) == list(model.state_dict())


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(
    kind=st.sampled_from(["LayerNorm", "RMSNorm"]),
    normalized=st.lists(st.integers(1, 3), min_size=1, max_size=2),
    shape=st.lists(st.integers(1, 3), min_size=1, max_size=3),
)
def test_layer_norm_and_rms_norm_take_what_torch_takes(kind: str, normalized: list[int], shape: list[int]) -> None:
    norm, reference = getattr(fl, kind)(tuple(normalized)), getattr(nn, kind)(tuple(normalized))
    try:
        expected = tuple(reference(torch.zeros(shape)).shape)
    except (RuntimeError, ValueError):
        with pytest.raises(shapes.ShapeError, match=kind):
            dims.run(norm, dims.Shape(shape))
        return
    assert tuple(dims.run(norm, dims.Shape(shape))) == expected
    lazy = getattr(fl, kind)()
    assert lazy.inferred_arguments(dims.Shape(shape)) == {"normalized_shape": shape[-1]}


def test_group_norm_takes_its_channels_from_dim_1() -> None:
    norm = fl.GroupNorm(2)
    shapes.materialize(norm, (1, 4, 3))
    assert repr(norm) == repr(nn.GroupNorm(2, 4))
    with pytest.raises(shapes.ShapeError, match="GroupNorm expects 4 channels at dim 1, got 6"):
        dims.run(norm, dims.Shape([1, 6, 3]))
