"""narchi's ``_id_share``: a label that every block sharing one set of weights carries.

The blocks with the same label share the parameters of the first of them in file order, even when
no block has that label as its ``_id`` (narchi's multi-scale ResNet shares one backbone across three
image sizes that way: the tie is of parameters, not of shapes). A label that is the ``_id`` of a
block beside the sharing one, or around it, names that block: it owns the weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import spec, weights
from fluxion.spec import SpecError
from fluxion.spec.narchi.architecture import translation

MULTISCALE = Path(__file__).parent / "shared" / "multiscale.jsonnet"
VARIABLES = {"width": 8, "classes": 5}
BACKBONES = ("full", "halved", "quartered")


def architecture(blocks: list[dict[str, Any]], graph: list[str], shape: list[Any]) -> dict[str, Any]:
    return {
        "blocks": blocks,
        "graph": graph,
        "inputs": [{"_id": "x", "_shape": shape}],
        "outputs": [{"_id": "y", "_shape": ["<<auto>>"]}],
    }


def backbone_parameters(width: int, classes: int) -> int:
    conv = 3 * width * 3 * 3 + width
    norm = 2 * width
    return conv + norm + width * classes + classes


def assert_tied(model: torch.nn.Module, addresses: tuple[str, ...]) -> None:
    """Every parameter of the nodes at ``addresses`` is the same tensor as the first node's."""
    owner = dict(model.get_submodule(addresses[0]).named_parameters())
    assert owner
    for address in addresses[1:]:
        theirs = dict(model.get_submodule(address).named_parameters())
        assert list(theirs) == list(owner)
        for name, parameter in theirs.items():
            assert parameter is owner[name], f"{address}.{name}"
            assert parameter.data_ptr() == owner[name].data_ptr()


@pytest.fixture
def multiscale() -> fl.Chain:
    return spec.load(MULTISCALE, ext_vars=VARIABLES)


def test_a_group_label_shares_one_set_of_weights_across_three_modules(multiscale: fl.Chain) -> None:
    assert_tied(multiscale, BACKBONES)
    assert sum(parameter.numel() for parameter in multiscale.parameters()) == backbone_parameters(8, 5)
    # buffers are each block's own: a BatchNorm's running statistics follow the scale it sees
    assert multiscale.full.norm.running_mean is not multiscale.halved.norm.running_mean


def test_the_shared_modules_see_inputs_of_different_sizes(multiscale: fl.Chain) -> None:
    seen: dict[str, tuple[int, ...]] = {}
    for name in BACKBONES:
        multiscale.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: seen.__setitem__(name, tuple(inputs[0].shape))
        )
    output = multiscale.eval()(torch.randn(2, 3, 16, 12))
    assert output.shape == (2, 5)
    assert seen == {"full": (2, 3, 16, 12), "halved": (2, 3, 8, 6), "quartered": (2, 3, 4, 3)}


def test_training_the_shared_weights_moves_them_for_every_module(multiscale: fl.Chain) -> None:
    optimizer = torch.optim.SGD(multiscale.parameters(), lr=0.1)
    before = multiscale.quartered.fc.weight.detach().clone()
    multiscale(torch.randn(2, 3, 16, 16)).sum().backward()
    optimizer.step()
    assert not torch.equal(multiscale.quartered.fc.weight, before)
    assert_tied(multiscale, BACKBONES)


def test_the_tie_survives_a_spec_round_trip(multiscale: fl.Chain, tmp_path: Path) -> None:
    path = tmp_path / "multiscale.json"
    spec.save(multiscale, path, inputs={"image": ["B", 3, "H", "W"]})
    again = spec.load(path)
    assert_tied(again, BACKBONES)
    assert sum(parameter.numel() for parameter in again.parameters()) == backbone_parameters(8, 5)
    json.loads(path.read_text())  # plain JSON, fluxion's own format


def test_the_tie_survives_a_weights_round_trip(multiscale: fl.Chain, tmp_path: Path) -> None:
    with torch.no_grad():
        multiscale.full.conv.weight.normal_()
    path = tmp_path / "multiscale.safetensors"
    weights.save(multiscale, path)
    fresh = spec.load(MULTISCALE, ext_vars=VARIABLES)
    weights.load(fresh, path)
    assert_tied(fresh, BACKBONES)
    assert torch.equal(fresh.quartered.conv.weight, multiscale.full.conv.weight)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(fresh.eval()(x), multiscale.eval()(x))


def test_the_first_block_in_file_order_owns_the_weights() -> None:
    blocks = [
        {
            "_class": "Sequential",
            "_id": "stack",
            "blocks": [{"_class": "Linear", "_id": "inner", "output_feats": 4, "_id_share": "tied"}],
        },
        {"_class": "Linear", "_id": "middle", "output_feats": 4, "_id_share": "tied"},
        {"_class": "Linear", "_id": "last", "output_feats": 4, "_id_share": "tied"},
    ]
    model = spec.load(architecture(blocks, ["x -> stack -> middle -> last -> y"], [4]))
    assert_tied(model, ("stack.inner", "middle", "last"))
    assert sum(parameter.numel() for parameter in model.parameters()) == 4 * 4 + 4


def test_a_label_naming_a_visible_block_id_shares_that_blocks_weights() -> None:
    # "first" carries no _id_share: as a group label "first" would hold one block and tie nothing,
    # so a label that is the _id of a block beside or around the sharing one names that block
    blocks = [
        {"_class": "Linear", "_id": "first", "output_feats": 4},
        {"_class": "ReLU", "_id": "act"},
        {
            "_class": "Sequential",
            "_id": "more",
            "blocks": [
                {"_class": "Linear", "output_feats": 4, "_id_share": "first"},
                {"_class": "Linear", "output_feats": 4, "_id_share": "first"},
            ],
        },
    ]
    model = spec.load(architecture(blocks, ["x -> first -> act -> more -> y"], [4]))
    assert_tied(model, ("first", "more.0", "more.1"))


def test_a_label_that_is_an_id_out_of_sight_is_a_group_label() -> None:
    # "head" is the _id of a block inside another Sequential: not beside or around the sharing
    # blocks, so the label only groups them (the first of the two owns the weights)
    blocks = [
        {"_class": "Sequential", "_id": "a", "blocks": [{"_class": "Linear", "_id": "head", "output_feats": 3}]},
        {"_class": "Linear", "_id": "b", "output_feats": 3, "_id_share": "head"},
        {"_class": "Linear", "_id": "c", "output_feats": 3, "_id_share": "head"},
    ]
    model = spec.load(architecture(blocks, ["x -> a -> b -> c -> y"], [3]))
    assert_tied(model, ("b", "c"))
    assert model.a.head.weight is not model.b.weight


def test_a_group_of_one_ties_nothing() -> None:
    blocks = [{"_class": "Linear", "_id": "only", "output_feats": 3, "_id_share": "alone"}]
    model = spec.load(architecture(blocks, ["x -> only -> y"], [3]))
    assert sum(parameter.numel() for parameter in model.parameters()) == 12


def test_a_group_whose_weights_do_not_fit_names_the_block(tmp_path: Path) -> None:
    blocks = [
        {"_class": "Linear", "_id": "a", "output_feats": 4, "_id_share": "tied"},
        {"_class": "Linear", "_id": "b", "output_feats": 5, "_id_share": "tied"},
    ]
    path = tmp_path / "mismatch.json"
    path.write_text(json.dumps(architecture(blocks, ["x -> a -> b -> y"], [4])))
    with pytest.raises(SpecError) as caught:
        spec.load(path)
    assert caught.value.path == "blocks[1]._id_share"
    assert caught.value.file == str(path)
    assert "shape (5, 4), its source (4, 4)" in caught.value.reason


@pytest.mark.parametrize("label", [3, "", None, ["tied"]])
def test_a_label_is_a_name(label: Any) -> None:
    blocks = [{"_class": "ReLU", "_id": "act", "_id_share": label}]
    with pytest.raises(SpecError, match="_id_share is a label") as caught:
        spec.load(architecture(blocks, ["x -> act -> y"], [3]))
    assert caught.value.path == "blocks[0]._id_share"


def test_a_block_comes_before_the_blocks_inside_it_in_file_order() -> None:
    # a container is translated after its children, but it is written before them
    found = translation(
        {
            "_class": "Sequential",
            "_id": "outer",
            "_id_share": "tied",
            "blocks": [{"_class": "Sequential", "_id": "inner", "_id_share": "tied", "blocks": [{"_class": "ReLU"}]}],
        }
    )
    assert "share" not in found.spec
    assert found.spec["children"][0]["share"] == ""  # the root's address: the outer block owns
