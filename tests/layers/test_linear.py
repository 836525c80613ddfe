"""fluxion.layers.linear: ``Linear``, torch's layer as a tree leaf, with ``in_features`` that may be left out."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from tests.layers.helpers import build_pair, randn


def test_keys_and_outputs_are_torchs() -> None:
    ours, reference = build_pair(fl.Linear, nn.Linear, (5, 3), {})
    assert list(ours.state_dict()) == list(reference.state_dict()) == ["weight", "bias"]
    x = randn(2, 4, 5)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_the_rule_maps_the_last_dim_and_checks_it() -> None:
    assert dims.run(fl.Linear(8, 2), dims.Shape(["B", "T", 8])) == dims.Shape(["B", "T", 2])
    with pytest.raises(shapes.ShapeError, match="Linear expects last dim 8, got 7"):
        dims.run(fl.Linear(8, 2), dims.Shape(["B", 7]))
    with pytest.raises(shapes.ShapeError, match="Linear needs dimension -1"):
        dims.run(fl.Linear(out_features=2), dims.Shape([]))


def test_in_features_left_out_comes_from_the_input_and_the_spec_states_it() -> None:
    model = fl.Chain(fl.Linear(out_features=3, bias=False))
    assert model.Linear.inferred_arguments(dims.Shape(["B", 6])) == {"in_features": 6}
    shapes.materialize(model, ("B", 6))
    assert repr(model.Linear) == repr(nn.Linear(6, 3, bias=False))
    written = spec.dump(model)
    assert written["children"] == [{"type": "Linear", "in_features": 6, "out_features": 3, "bias": False}]
    assert repr(spec.loads(written)) == repr(model)


def test_bad_sizes_are_refused_when_built() -> None:
    with pytest.raises(fl.LayerError, match="Linear needs out_features"):
        fl.Linear(4)
    with pytest.raises(fl.LayerError, match="in_features must be at least 0"):
        fl.Linear(-1, 2)
