"""A whole TorchArc spec: detection, the Graph it becomes, its keys, sizes inferred at load or at
the first call, unused modules, and mistakes at the top level."""

import warnings
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import spec
from fluxion.spec import SpecError
from fluxion.spec.torcharc import UnusedModuleWarning, is_torcharc, translate

MLP: dict[str, Any] = {
    "modules": {
        "body": {
            "Sequential": [{"LazyLinear": {"out_features": 16}}, {"ReLU": None}, {"LazyLinear": {"out_features": 8}}]
        },
        "head": {"LazyLinear": {"out_features": 3}},
    },
    "graph": {"input": "x", "modules": {"body": ["x"], "head": ["body"]}, "output": "head"},
}


def by_hand() -> torch.nn.Module:
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    return Model()


def test_a_torcharc_spec_is_recognised_and_becomes_a_graph_of_its_modules() -> None:
    assert is_torcharc(MLP)
    assert not is_torcharc({"type": "Graph", "nodes": [], "edges": []})
    translated = translate(MLP)
    assert translated["type"] == "Graph"
    assert [node["id"] for node in translated["nodes"]] == ["body", "head"]


def test_with_input_shapes_every_size_is_inferred_at_load_and_a_torch_checkpoint_loads_as_it_is() -> None:
    model = spec.loads(MLP, inputs={"x": ["B", 5]})
    assert isinstance(model, fl.Graph)
    assert model.head.in_features == 8
    reference = by_hand()
    model.load_state_dict(reference.state_dict())  # strict: the same keys, no mapping
    assert list(model.state_dict()) == list(reference.state_dict())
    x = torch.randn(4, 5)
    assert torch.equal(model(x), reference(x))


def test_without_input_shapes_the_first_call_infers_the_sizes() -> None:
    model = spec.loads(MLP)
    assert model.head.lazy
    x = torch.randn(2, 5)
    assert model(x).shape == (2, 3)
    assert model.body[0].in_features == 5
    assert not model.head.lazy
    assert model(torch.randn(7, 5)).shape == (7, 3)  # later calls run as usual


def test_a_shape_mismatch_is_found_at_load_naming_the_module_and_both_shapes() -> None:
    document = {
        "modules": {
            "body": {"Linear": {"in_features": 5, "out_features": 7}},
            "head": {"Linear": {"in_features": 8, "out_features": 2}},
        },
        "graph": MLP["graph"],
    }
    with pytest.raises(SpecError) as caught:
        spec.loads(document, inputs={"x": ["B", 5]})
    assert caught.value.path == "modules.head"
    assert "8" in caught.value.reason
    assert "7" in caught.value.reason


def test_an_unused_module_is_a_warning_naming_it_and_is_left_out() -> None:
    document = {**MLP, "modules": {**MLP["modules"], "spare": {"Linear": {"in_features": 2, "out_features": 2}}}}
    with pytest.warns(UnusedModuleWarning, match="'spare'"):
        model = spec.loads(document, inputs={"x": ["B", 5]})
    assert not any(key.startswith("spare.") for key in model.state_dict())


def test_a_used_module_warns_of_nothing() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec.loads(MLP, inputs={"x": ["B", 5]})


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ({**MLP, "graf": {}}, "graf", "'graf' is not a key of a TorchArc spec (closest: graph)"),
        ({"modules": MLP["modules"]}, None, "graph is missing"),
        ({**MLP, "modules": {"a.b": {"ReLU": None}}}, 'modules["a.b"]', "without dots"),
        ({**MLP, "modules": []}, "modules", "modules maps names to module specs"),
        (
            {**MLP, "modules": {**MLP["modules"], "head": {"Linaer": {"out_features": 3}}}},
            "modules.head.Linaer",
            "(closest: Linear",
        ),
    ],
)
def test_a_top_level_mistake_is_one_error_at_its_place(
    document: dict[str, Any], path: str | None, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        spec.loads(document)
    assert caught.value.path == path
    assert message in caught.value.reason


def test_the_callers_dict_is_left_as_it_was() -> None:
    import copy

    document = copy.deepcopy(MLP)
    spec.loads(document)
    assert document == MLP
