"""A spec's training sections (``fluxion.spec.training``): ``init`` applied at load, ``optimizer`` and
``loss`` built from the same file, errors naming the file and the JSON path in the section, the
caller's dicts unchanged, the schema accepting the sections."""

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes, spec, training, weights
from fluxion.spec.source import read
from fluxion.spec.training import Sections, apply, split


def architecture() -> dict[str, Any]:
    return {
        "type": "Chain",
        "inputs": {"x": ["B", 4]},
        "children": [
            {"type": "Chain", "id": "encoder", "children": [{"type": "Linear", "out_features": 8}, {"type": "ReLU"}]},
            {"type": "Linear", "id": "head", "out_features": 2},
        ],
    }


SECTIONS = {
    "init": {"encoder.*.weight": {"type": "kaiming_uniform_", "activation": "ReLU"}, "*.bias": "zeros_"},
    "optimizer": {"type": "AdamW", "lr": 1e-3, "groups": [{"params": "*.bias", "weight_decay": 0.0}]},
    "loss": {"type": "BCEWithLogitsLoss", "pos_weight": 10.0},
}


def test_load_applies_init_as_fluxion_training_would_on_the_same_seed(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({**architecture(), **SECTIONS}))
    torch.manual_seed(0)
    loaded = spec.load(path)
    torch.manual_seed(0)
    by_hand = spec.loads(architecture())
    training.initialize(by_hand, SECTIONS["init"])
    for key, value in by_hand.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.count_nonzero(loaded.head.bias) == 0
    torch.manual_seed(0)
    assert not torch.equal(spec.loads(architecture()).head.bias, loaded.head.bias)  # init did something


def test_the_optimizer_and_the_loss_come_from_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "model.jsonnet"
    path.write_text(
        "local lr = std.extVar('lr');\n" + json.dumps({**architecture(), **SECTIONS}).replace('"lr": 0.001', '"lr": lr')
    )
    model = spec.load(path, ext_vars={"lr": 0.01})
    optimizer = spec.optimizer(path, model, ext_vars={"lr": 0.01})
    assert type(optimizer) is torch.optim.AdamW
    assert [(len(group["params"]), group["lr"], group["weight_decay"]) for group in optimizer.param_groups] == [
        (2, 0.01, 0.0),
        (2, 0.01, 0.01),
    ]
    criterion = spec.loss(path, ext_vars={"lr": 0.01})
    assert isinstance(criterion, torch.nn.BCEWithLogitsLoss)
    assert criterion.pos_weight is not None
    assert torch.equal(criterion.pos_weight, torch.tensor(10.0))


def test_the_callers_dict_is_never_changed() -> None:
    given = {**architecture(), **SECTIONS}
    kept = copy.deepcopy(given)
    model = spec.loads(given)
    spec.optimizer(given, model)
    spec.loss(given)
    assert given == kept


def test_weights_given_to_load_win_over_init(tmp_path: Path) -> None:
    source = spec.loads(architecture())
    weights.save(source, tmp_path / "w.safetensors")
    loaded = spec.loads({**architecture(), "init": "zeros_"}, weights=tmp_path / "w.safetensors")
    assert torch.equal(loaded.head.weight, source.head.weight)


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"init": {"Encoder.*": "zeros_"}},
            """model.json: init["Encoder.*"]: 'Encoder.*' matches no parameter (close:""",
        ),
        (
            {"init": {"type": "normal_", "sdt": 1}},
            "model.json: init.sdt: normal_ takes no argument 'sdt' (did you mean 'std'?)",
        ),
        (
            {"optimizer": {"type": "Adamw"}},
            "model.json: optimizer.type: unknown optimizer 'Adamw' (did you mean 'AdamW'?)",
        ),
        (
            {"optimizer": {"type": "SGD", "lr": 0.1, "groups": [{"params": "*.bais"}]}},
            "model.json: optimizer.groups[0].params: '*.bais' matches no parameter",
        ),
        ({"loss": {"type": "MSELoss", "reductoin": "sum"}}, "model.json: loss.reductoin: MSELoss takes no argument"),
    ],
)
def test_a_bad_section_is_found_at_load_naming_the_file_and_the_path(
    tmp_path: Path, sections: dict[str, Any], message: str
) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({**architecture(), **sections}))
    with pytest.raises(spec.SpecError) as caught:
        spec.load(path)
    assert str(caught.value).startswith(str(tmp_path / message))


def test_a_missing_section_is_named() -> None:
    with pytest.raises(spec.SpecError, match='the spec has no "optimizer" section'):
        spec.optimizer(architecture(), fl.Linear(2, 2))
    with pytest.raises(spec.SpecError, match='the spec has no "loss" section'):
        spec.loss(architecture())


def test_split_takes_the_sections_off_a_new_root_and_keeps_torcharcs_activation_beside_init() -> None:
    arc = {"type": "Linear", "layers": [8], "activation": "ReLU", "init": "xavier_uniform_", "loss": {"type": "L1Loss"}}
    document, sections = split(read(arc))
    assert document.data == {"type": "Linear", "layers": [8], "activation": "ReLU"}
    assert (sections.init, sections.activation, sections.loss) == ("xavier_uniform_", "ReLU", {"type": "L1Loss"})
    assert "init" in arc
    assert split(read({"type": "ReLU", "activation": "ReLU"}))[1].activation is None  # no init: nothing to give


def test_a_model_whose_sizes_wait_for_its_first_call_is_initialized_after_that_call() -> None:
    model = fl.Chain(fl.Linear(out_features=3))

    def fill_sizes(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        shapes.materialize(model, tuple(args[0].shape))
        handle.remove()

    handle = model.register_forward_pre_hook(fill_sizes)  # what load sets up for such a model
    apply(model, Sections(init={"*.bias": "ones_"}, optimizer={"type": "SGD", "lr": 0.1}))
    model(torch.zeros(2, 5))
    assert model.Linear.bias.tolist() == [1.0, 1.0, 1.0]


def test_the_schema_accepts_the_sections_and_refuses_a_section_without_a_type() -> None:
    validator = jsonschema.Draft202012Validator(spec.schema())
    assert list(validator.iter_errors({**architecture(), **SECTIONS})) == []
    assert list(validator.iter_errors({**architecture(), "init": "orthogonal_"})) == []
    assert list(validator.iter_errors({**architecture(), "optimizer": {"lr": 0.1}}))
    assert list(validator.iter_errors({**architecture(), "loss": "MSELoss"}))
