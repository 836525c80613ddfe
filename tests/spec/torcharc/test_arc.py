"""TorchArc's format 1 (dict arcs): each construct against a plain-torch model built by hand with
TorchArc 1.2.1's layout, loaded with the same weights (strict: equal key sets), same outputs."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import fluxion.layers as fl
from fluxion import spec, training
from fluxion.errors import SpecError
from fluxion.spec import dialects
from fluxion.spec.torcharc import arc as arcs


def loaded(arc: dict[str, Any], reference: nn.Module) -> nn.Module:
    """The fluxion model of ``arc`` holding ``reference``'s weights; the arc is left as it was."""
    before = copy.deepcopy(arc)
    model = spec.loads(arc)
    assert arc == before
    for parameter in reference.parameters():
        nn.init.normal_(parameter.data)
    for name, buffer in reference.named_buffers():
        if "running" in name:
            buffer.uniform_(0.5, 1.5)
    assert list(model.state_dict()) == list(reference.state_dict())
    model.load_state_dict(reference.state_dict(), strict=True)
    return model.eval()


def same(got: Any, expected: Any) -> None:
    if isinstance(expected, dict):
        assert isinstance(got, dict)
        assert list(got) == list(expected)  # TorchArc's key order
        for key in expected:
            torch.testing.assert_close(got[key], expected[key])
    else:
        torch.testing.assert_close(got, expected)


def test_mlp_stack_is_a_flat_sequential_with_sub_layers_in_the_arcs_key_order() -> None:
    arc = {"type": "Linear", "in_features": 6, "layers": [24, 10], "dropout": 0.3, "activation": "Tanh"}
    arc["batch_norm"] = True
    reference = nn.Sequential(
        nn.Linear(6, 24), nn.Dropout(0.3), nn.Tanh(), nn.BatchNorm1d(24),
        nn.Linear(24, 10), nn.Dropout(0.3), nn.Tanh(), nn.BatchNorm1d(10),
    )  # fmt: skip
    model = loaded(arc, reference)
    x = torch.randn(5, 6)
    same(model(x), reference.eval()(x))
    assert isinstance(model[2], fl.Tanh)
    assert model[1].p == 0.3


def test_conv_stacks_take_rows_positionally_and_pick_dropout_by_dims() -> None:
    arc = {
        "type": "Conv2d",
        "in_shape": [3, 18, 18],
        "layers": [[8, 3, 2, 1], [12, 3, 1, 0, 2, 4]],
        "batch_norm": True,
        "activation": "LeakyReLU",
        "dropout": 0.1,
    }
    reference = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.LeakyReLU(), nn.Dropout2d(0.1),
        nn.Conv2d(8, 12, 3, 1, 0, 2, 4), nn.BatchNorm2d(12), nn.LeakyReLU(), nn.Dropout2d(0.1),
    )  # fmt: skip
    x = torch.randn(2, 3, 18, 18)
    same(loaded(arc, reference)(x), reference.eval()(x))
    one_d = {"type": "Conv1d", "in_shape": [4, 20], "layers": [[6, 3], [5, 4, 2]], "dropout": 0.2}
    reference = nn.Sequential(nn.Conv1d(4, 6, 3), nn.Dropout(0.2), nn.Conv1d(6, 5, 4, 2), nn.Dropout(0.2))
    x = torch.randn(2, 4, 20)
    same(loaded(one_d, reference)(x), reference.eval()(x))
    three_d = {"type": "Conv3d", "in_shape": [2, 6, 6, 6], "layers": [[3, 3]], "batch_norm": True, "dropout": 0.5}
    model = spec.loads(three_d)
    assert [type(child).__name__ for child in model] == ["Conv3d", "BatchNorm3d", "Dropout3d"]


def test_other_types_take_in_and_out_by_position() -> None:
    model = spec.loads({"type": "GRU", "in_shape": [5], "layers": [7]})
    assert list(model.state_dict()) == list(nn.Sequential(nn.GRU(5, 7)).state_dict())
    assert model[0].hidden_size == 7


def test_a_stack_without_its_input_size_infers_it_at_the_first_call() -> None:
    model = spec.loads({"type": "Linear", "layers": [4, 2], "activation": "ReLU"})
    assert model(torch.randn(3, 9)).shape == (3, 2)
    assert model[0].in_features == 9


def hydra_arc() -> dict[str, Any]:
    return {
        "dag_in_shape": {"pixels": [3, 12, 12], "state": [5]},
        "pixels": {
            "type": "Conv2d",
            "in_names": ["pixels"],
            "layers": [[6, 3, 2, 1], [6, 3, 1, 1]],
            "batch_norm": True,
            "activation": "ReLU",
        },
        "film": {
            "type": "FiLMMerge",
            "in_names": ["pixels", "state"],
            "names": {"feature": "pixels", "conditioner": "state"},
        },
        "flat": {"type": "Flatten"},
        "trunk": {"type": "Linear", "layers": [20, 10], "batch_norm": True, "activation": "ReLU", "dropout": 0.1},
        "head": {"type": "Linear", "out_features": 6},
        "split": {"type": "SplitFork", "shapes": {"loc": [2], "scale": [4]}},
    }


class FiLMMerge(nn.Module):
    """TorchArc 1's FiLMMerge, written out."""

    def __init__(self, conditioner: int, feature: int) -> None:
        super().__init__()
        self.conditioner_scale = nn.Linear(conditioner, feature)
        self.conditioner_shift = nn.Linear(conditioner, feature)

    def forward(self, feature: torch.Tensor, conditioner: torch.Tensor) -> torch.Tensor:
        view = [*conditioner.shape[:-1], -1] + [1] * (feature.dim() - conditioner.dim())
        return self.conditioner_scale(conditioner).view(view) * feature + self.conditioner_shift(conditioner).view(view)


class Dag(nn.Module):
    """TorchArc 1's DAGNet layout: the modules in ``module_dict``, a forward written by hand."""

    def __init__(self, modules: dict[str, nn.Module], run: Callable[[nn.ModuleDict, Any], Any]) -> None:
        super().__init__()
        self.module_dict = nn.ModuleDict(modules)
        self.run = run

    def forward(self, xs: Any) -> Any:
        return self.run(self.module_dict, xs)


def test_hydra_dag_film_and_split_fork() -> None:
    def run(m: nn.ModuleDict, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image = m["pixels"](xs["pixels"])
        vector = m["trunk"](m["flat"](m["film"](image, xs["state"])))
        loc, scale = m["head"](vector).split([2, 4], dim=1)
        return {"loc": loc, "scale": scale}

    modules = {
        "pixels": nn.Sequential(
            nn.Conv2d(3, 6, 3, 2, 1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.Conv2d(6, 6, 3, 1, 1),
            nn.BatchNorm2d(6),
            nn.ReLU(),
        ),
        "film": FiLMMerge(5, 6),
        "flat": nn.Flatten(),
        "trunk": nn.Sequential(
            nn.Linear(216, 20),
            nn.BatchNorm1d(20),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(20, 10),
            nn.BatchNorm1d(10),
            nn.ReLU(),
            nn.Dropout(0.1),
        ),
        "head": nn.Linear(10, 6),
    }
    reference = Dag(modules, run)
    model = loaded(hydra_arc(), reference)
    xs = {"pixels": torch.randn(3, 3, 12, 12), "state": torch.randn(3, 5)}
    same(model(xs), reference.eval()(xs))
    assert "module_dict.film.conditioner_scale.weight" in model.state_dict()


def test_sizes_come_from_dag_in_shape_without_a_forward() -> None:
    model = spec.loads(hydra_arc())
    trunk = model.module_dict.trunk
    assert trunk[0].in_features == 6 * 6 * 6
    assert all(int(buffer) == 0 for name, buffer in model.named_buffers() if name.endswith("num_batches_tracked"))
    assert all(
        torch.equal(buffer, torch.zeros_like(buffer)) for name, buffer in model.named_buffers() if "mean" in name
    )


def test_reuse_fork_and_concat_merge() -> None:
    arc = {
        "dag_in_shape": [7],
        "twin": {"type": "ReuseFork", "names": ["a", "b"]},
        "fb": {"type": "Linear", "in_names": ["b"], "out_features": 3},
        "cat": {"type": "ConcatMerge", "in_names": ["a", "b"]},
        "out": {"type": "Linear", "out_features": 2},
    }

    def run(m: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
        return m["out"](torch.cat([x, m["fb"](x)], dim=1))

    reference = Dag({"fb": nn.Linear(7, 3), "out": nn.Linear(10, 2)}, run)
    x = torch.randn(4, 7)
    same(loaded(arc, reference)(x), reference(x))


def test_reuse_fork_outputs_in_torcharcs_key_order() -> None:
    arc = {
        "dag_in_shape": [7],
        "fork": {"type": "ReuseFork", "names": ["left", "right"]},
        "go_right": {"type": "Linear", "in_names": ["right"], "out_features": 3},
    }

    def run(m: nn.ModuleDict, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"right": m["go_right"](x), "left": x}

    reference = Dag({"go_right": nn.Linear(7, 3)}, run)
    x = torch.randn(4, 7)
    same(loaded(arc, reference)(x), reference(x))


def test_carry_forward_puts_outputs_first_then_the_unread_keys() -> None:
    arc = {
        "dag_in_shape": {"p": [4], "q": [6], "r": [2]},
        "first": {"type": "Linear", "layers": [5]},
        "second": {"type": "Linear", "in_names": ["q"], "out_features": 3},
        "join": {"type": "ConcatMerge", "in_names": ["r", "p"]},
    }

    def run(m: nn.ModuleDict, xs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        p = m["first"](xs["p"])  # {p, q, r}
        q = m["second"](xs["q"])  # {q, p, r}
        return {"r": torch.cat([xs["r"], p], dim=1), "q": q}  # the join's output under r, then q

    reference = Dag({"first": nn.Sequential(nn.Linear(4, 5)), "second": nn.Linear(6, 3)}, run)
    xs = {"p": torch.randn(2, 4), "q": torch.randn(2, 6), "r": torch.randn(2, 2)}
    same(loaded(arc, reference)(xs), reference(xs))


def test_split_fork_pieces_merge_in_in_names_order() -> None:
    arc = {
        "dag_in_shape": [8],
        "parts": {"type": "SplitFork", "shapes": {"u": [3], "v": [5]}},
        "lv": {"type": "Linear", "in_names": ["v"], "out_features": 4},
        "cat": {"type": "ConcatMerge", "in_names": ["v", "u"]},
    }

    def run(m: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
        u, v = x.split([3, 5], dim=1)
        return torch.cat([m["lv"](v), u], dim=1)

    reference = Dag({"lv": nn.Linear(5, 4)}, run)
    x = torch.randn(3, 8)
    same(loaded(arc, reference)(x), reference(x))


def test_a_typed_dag_is_named_after_its_type() -> None:
    arc = {"dag_in_shape": [5], "type": "Linear", "layers": [4, 3], "activation": "ReLU"}
    sequential = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU())
    reference = Dag({"Linear": sequential}, lambda m, x: m["Linear"](x))
    x = torch.randn(2, 5)
    same(loaded(arc, reference)(x), reference(x))


def test_sub_arc_names_may_be_input_names() -> None:
    model = spec.loads({"dag_in_shape": {"x": [3], "y": [2]}, "x": {"type": "Linear", "out_features": 4}})
    out = model({"x": torch.randn(2, 3), "y": torch.randn(2, 2)})
    assert {key: tuple(value.shape) for key, value in out.items()} == {"x": (2, 4), "y": (2, 2)}


def test_root_init_uses_the_gain_of_the_activation() -> None:
    arc = {"type": "Linear", "in_features": 8, "layers": [6, 4], "activation": "Tanh", "init": "orthogonal_"}
    model = spec.loads(arc)
    gain = 5.0 / 3.0  # torch's calculate_gain("tanh"); TorchArc 1.2.1 ends up with 1
    weight = model[0].weight
    torch.testing.assert_close(weight @ weight.T, gain**2 * torch.eye(6), atol=1e-4, rtol=1e-4)
    assert "init" in arc


def test_sub_arc_init_fills_its_weight_matrices_only() -> None:
    arc = hydra_arc()
    arc["trunk"]["init"] = {"type": "constant_", "val": 0.25}
    arc["pixels"]["init"] = "orthogonal_"
    arc["film"]["init"] = "zeros_"
    model = spec.loads(arc)
    trunk = model.module_dict.trunk
    assert torch.all(trunk[0].weight == 0.25)
    assert torch.all(trunk[4].weight == 0.25)
    assert torch.all(trunk[1].weight == 1.0)  # BatchNorm's scale stays (TorchArc overwrites it)
    assert not torch.all(trunk[0].bias == 0.25)
    assert torch.all(model.module_dict.film.conditioner_scale.weight == 0)
    conv = model.module_dict.pixels[0].weight.flatten(1)  # (6, 27): orthogonal rows, ReLU's gain
    torch.testing.assert_close(conv @ conv.T, 2.0 * torch.eye(6), atol=1e-4, rtol=1e-4)


def test_optimizer_and_loss_in_torcharcs_spellings() -> None:
    model = spec.loads({"type": "Linear", "in_features": 3, "layers": [2]})
    optimizer_spec: dict[str, Any] = {"type": "Adam", "lr": 0.001}
    loss_spec: dict[str, Any] = {"type": "BCEWithLogitsLoss", "pos_weight": 10.0}
    optimizer = training.build_optimizer(optimizer_spec, model)
    loss = training.build_loss(loss_spec)
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]["lr"] == 0.001
    assert isinstance(loss, nn.BCEWithLogitsLoss)
    assert loss.pos_weight is not None
    assert float(loss.pos_weight) == 10.0
    assert optimizer_spec == {"type": "Adam", "lr": 0.001}
    assert loss_spec["pos_weight"] == 10.0
    arc = {"type": "Linear", "in_features": 3, "layers": [2], "optimizer": optimizer_spec, "loss": loss_spec}
    assert isinstance(spec.optimizer(arc, spec.loads(arc)), torch.optim.Adam)
    assert isinstance(spec.loss(arc), nn.BCEWithLogitsLoss)


def test_detected_through_the_dialect_hook_and_read_from_a_file(tmp_path: Path) -> None:
    plain = {"type": "Linear", "in_features": 4, "out_features": 2}
    assert dialects.dialect_of(plain) is None  # fluxion's own format, the same module
    assert dialects.dialect_of({"type": "Linear", "in_features": 4, "layers": [2]}).name == "TorchArc 1"  # type: ignore[union-attr]
    assert dialects.dialect_of(hydra_arc()).name == "TorchArc 1"  # type: ignore[union-attr]
    path = tmp_path / "hydra.json"
    path.write_text(json.dumps(hydra_arc()))
    model = spec.load(path)
    assert list(model.state_dict()) == list(spec.loads(hydra_arc()).state_dict())


@pytest.mark.parametrize(
    ("arc", "path", "words"),
    [
        ({"type": "Linear", "in_features": 4, "layers": [8], "activaton": "ReLU"}, "activaton", "closest: activation"),
        ({"type": "Linaer", "in_features": 4, "layers": [8]}, "type", "closest: Linear"),
        ({"type": "Linear", "in_shape": [4], "layers": [8]}, "in_shape", "in_features"),
        ({"type": "Linear", "in_features": 4, "layers": []}, "layers", "non-empty"),
        ({"type": "Linear", "in_features": 4, "layers": [8], "activation": "Relu"}, "activation", "ReLU"),
        (
            {"type": "Conv2d", "in_shape": [3, 8, 8], "layers": [[4, 3, 1, 0, 1, 1, True, "zeros", None, None, 1]]},
            "layers[0]",
            "at most",
        ),
        ({"type": "GRU", "layers": [4]}, "", "in_shape"),
        ({"dag_in_shape": "x", "l": {"type": "Linear", "out_features": 2}}, "dag_in_shape", "shape"),
        (
            {"dag_in_shape": {"a": [4]}, "l": {"type": "Linear", "in_names": ["b"], "out_features": 2}},
            "l.in_names[0]",
            "a",
        ),
        (
            {"dag_in_shape": {"a": [4], "b": [3]}, "l": {"type": "Linear", "in_names": ["a", "b"], "out_features": 2}},
            "l.in_names",
            "one value",
        ),
        ({"dag_in_shape": {"a": [4], "b": [3]}, "c": {"type": "ConcatMerge"}}, "c", "two or more"),
        (
            {
                "dag_in_shape": {"a": [4], "b": [3]},
                "f": {"type": "FiLMMerge", "in_names": ["a", "b"], "names": {"feature": "a", "conditioner": "c"}},
            },
            "f.in_names",
            "conditioner 'c'",
        ),
        ({"dag_in_shape": [4], "f": {"type": "ReuseFork", "name": ["a"]}}, "f.name", "closest: names"),
        ({"dag_in_shape": [4], "s": {"type": "SplitFork", "shapes": {"a": [1, 2]}}}, "s.shapes", "size"),
        ({"dag_in_shape": [4], "l": {"type": "Linear", "out_features": 2, "init": "xavier"}}, "l.init.type", "xavier_"),
        ({"dag_in_shape": [4], "n": {"type": "ReLU", "init": "zeros_"}}, "n.init", "no weight matrix"),
        ({"dag_in_shape": [4], "a.b": {"type": "ReLU"}}, '["a.b"]', "without dots"),
        ({"dag_in_shape": [4], "l": {"type": "Linear", "out_features": 2, "bias": "yes"}}, "l.bias", "boolean"),
        ({"dag_in_shape": [4, 5], "l": {"type": "Conv2d", "layers": [[2, 3]]}}, "l.layers[0]", "shapes do not fit"),
    ],
)
def test_each_mistake_is_one_error_at_its_place(arc: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec.loads(arc)
    assert caught.value.path == path, str(caught.value)
    assert words in str(caught.value)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mlp.json"
    path.write_text(json.dumps({"type": "Linear", "in_features": 4, "layers": [8], "dropuot": 0.1}))
    with pytest.raises(SpecError, match=r"mlp.json: dropuot: .*closest: dropout"):
        spec.load(path)


def test_translate_gives_fluxions_own_spec() -> None:
    found = arcs.translate({"dag_in_shape": [4], "head": {"type": "Linear", "out_features": 2}})
    assert found["type"] == "Graph"
    assert found["nodes"][0]["id"] == "module_dict"
    rebuilt = spec.loads(found)
    assert list(rebuilt.state_dict()) == ["module_dict.head.weight", "module_dict.head.bias"]
    assert math.isclose(rebuilt(torch.ones(1, 4)).shape[1], 2)


def test_a_yaml_arc_loads_with_its_init(tmp_path: Path) -> None:
    path = tmp_path / "mlp.yaml"
    path.write_text(
        "type: Linear\nin_features: 5\nlayers: [4, 3]\nactivation: ReLU\ninit:\n  type: constant_\n  val: 0.5\n"
    )
    model = spec.load(path)
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert torch.all(model[0].weight == 0.5)
    assert torch.all(model[2].weight == 0.5)


def test_a_dag_of_one_named_input_takes_the_tensor_or_a_dict_of_it() -> None:
    model = spec.loads({"dag_in_shape": {"x": [3]}, "out": {"type": "Linear", "out_features": 2}})
    x = torch.randn(4, 3)
    assert torch.equal(model({"x": x}), model(x))  # TorchArc's DAGNet takes both
    assert list(model.state_dict()) == ["module_dict.out.weight", "module_dict.out.bias"]
