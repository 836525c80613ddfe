"""TorchArc's module specs: Sequential and compact as Chains with torch.nn.Sequential's keys
(the layout TorchArc's own model has), compared with plain-torch models built by hand."""

from typing import Any

import pytest
import torch

from fluxion import spec
from fluxion.spec import SpecError
from fluxion.spec.torcharc.modules import module_node


def one_module(module: dict[str, Any], **inputs: list[int | str]) -> torch.nn.Module:
    """A TorchArc spec with the one module ``m`` called on ``x``, loaded."""
    document = {"modules": {"m": module}, "graph": {"input": "x", "modules": {"m": ["x"]}, "output": "m"}}
    return spec.loads(document, inputs=inputs or None)


def test_a_sequential_is_a_chain_with_torchs_keys_and_outputs() -> None:
    model = one_module(
        {
            "Sequential": [
                {"Linear": {"in_features": 6, "out_features": 8}},
                {"ReLU": None},
                {"LazyLinear": {"out_features": 3}},
            ]
        },
        x=["B", 6],
    )
    torch_model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    assert list(model.state_dict()) == [f"m.{key}" for key in torch_model.state_dict()]
    model.m.load_state_dict(torch_model.state_dict())
    x = torch.randn(4, 6)
    assert torch.equal(model(x), torch_model(x))


def test_an_empty_sequential_is_the_identity() -> None:
    model = one_module({"Sequential": None})
    x = torch.randn(2, 3)
    assert torch.equal(model(x), x)


CONV_COMPACT = {
    "compact": {
        "prelayer": [{"LazyBatchNorm2d": None}],
        "layer": {"type": "LazyConv2d", "keys": ["out_channels", "kernel_size"], "args": [[4, 3], [6, 3], [8, 1]]},
        "postlayer": [{"ReLU": None}, {"Dropout": {"p": 0.0}}],
    }
}


def test_compact_repeats_pre_and_post_layers_around_every_layer_indexed_flat_as_torcharc() -> None:
    model = one_module(CONV_COMPACT, x=["B", 3, 16, 16])
    keys = list(model.state_dict())
    # TorchArc's layout for this spec: BN at 0, 4, 8; conv at 1, 5, 9
    assert [key for key in keys if key.endswith(".weight")] == [f"m.{i}.weight" for i in (0, 1, 4, 5, 8, 9)]
    assert "m.0.num_batches_tracked" in keys
    assert len(model.m) == 12
    layers: list[torch.nn.Module] = []
    for out, kernel, before in ((4, 3, 3), (6, 3, 4), (8, 1, 6)):
        layers += [
            torch.nn.BatchNorm2d(before),
            torch.nn.Conv2d(before, out, kernel),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.0),
        ]
    torch_model = torch.nn.Sequential(*layers)
    model.m.load_state_dict(torch_model.state_dict())
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(model.eval()(x), torch_model.eval()(x))


def test_compact_takes_a_single_value_for_one_key() -> None:
    node, _ = module_node(
        {
            "compact": {
                "layer": {"type": "LazyLinear", "keys": ["out_features"], "args": [64, 32]},
                "postlayer": [{"ReLU": None}],
            }
        },
        "mlp",
    )
    assert [child["type"] for child in node["children"]] == ["Linear", "ReLU", "Linear", "ReLU"]
    assert [child.get("out_features") for child in node["children"]] == [64, None, 32, None]
    assert [child["id"] for child in node["children"]] == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("module", "path", "message"),
    [
        ({"Linear": {"in_features": 2}, "ReLU": None}, "modules.m", "a module spec has one key"),
        ({}, "modules.m", "got 0: none"),
        ([{"Linear": {}}], "modules.m", "a module spec is a mapping with one key"),
        ({"Sequential": {"Linear": {}}}, "modules.m.Sequential", "Sequential takes a list of module specs"),
        ({"Sequential": [{"ReLU": None}, {"Sequential": []}]}, "modules.m.Sequential[1].Sequential", "does not nest"),
        ({"Sequential": [{"Linaer": {}}]}, "modules.m.Sequential[0].Linaer", "(closest: Linear"),
        (
            {"compact": {"layer": {"type": "LazyLinear", "keys": ["out_features", "bias"], "args": [[8, True], [4]]}}},
            "modules.m.compact.layer.args[1]",
            "this row gives 1 value for 2 keys (out_features, bias)",
        ),
        (
            {"compact": {"midlayer": [], "layer": {"type": "ReLU", "keys": [], "args": []}}},
            "modules.m.compact.midlayer",
            "'midlayer' is not a key of compact",
        ),
        (
            {"compact": {"layer": {"type": "LazyLinear", "key": ["out_features"], "args": [8]}}},
            "modules.m.compact.layer.key",
            "(closest: keys)",
        ),
        (
            {"compact": {"layer": {"type": "LazyLinaer", "keys": ["out_features"], "args": [8]}}},
            "modules.m.compact.layer.type",
            "(closest: LazyLinear",
        ),
        ({"compact": {"prelayer": [{"ReLU": None}]}}, "modules.m.compact", "compact needs a layer"),
    ],
)
def test_a_bad_module_spec_is_one_error_at_its_place(module: Any, path: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        module_node(module, "m")
    assert caught.value.path == path
    assert message in caught.value.reason


def test_a_bad_argument_is_refused_at_load_naming_the_argument_where_it_is_written() -> None:
    with pytest.raises(SpecError) as caught:
        one_module({"Sequential": [{"ReLU": None}, {"Linear": {"in_feature": 2, "out_features": 3}}]})
    assert caught.value.path == "modules.m.Sequential[1].Linear.in_feature"
    assert "in_feature" in caught.value.reason
