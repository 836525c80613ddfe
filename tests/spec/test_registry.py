"""The registry: the classes a spec may name, registering a user's class, and looking names up."""

from __future__ import annotations

import pytest
import torch

import fluxion.layers as fl
from fluxion import spec
from fluxion.errors import SpecError
from fluxion.spec.registry import lookup, name_of, register, registered

NOT_IN_SPECS = ("Module", "WeightedModule", "Lambda", "Intermediates")
"""Classes of fluxion.layers that no spec builds: bases, a layer holding a Python function, a wrapper of a model."""


def test_every_layer_and_container_of_the_library_is_registered_under_its_class_name() -> None:
    names = registered()
    assert names == sorted(names)
    for name in fl.__all__:
        value = getattr(fl, name)
        if isinstance(value, type) and issubclass(value, torch.nn.Module) and name not in NOT_IN_SPECS:
            assert name in names, name
            assert lookup(name) is value
    assert {"Chain", "Graph", "Linear", "Conv2d", "MultiHeadAttention"} <= set(names)


def test_bases_python_functions_and_wrappers_of_a_model_are_not_registered() -> None:
    for name in NOT_IN_SPECS:
        assert name not in registered()
        with pytest.raises(SpecError, match=f"unknown type '{name}'"):
            lookup(name)
    assert name_of(fl.Lambda) is None


def test_register_returns_the_class_and_makes_it_loadable_and_dumpable() -> None:
    class RegistryScale(fl.Module):
        def __init__(self, factor: float = 2.0) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.factor

    assert register(RegistryScale) is RegistryScale
    assert "RegistryScale" in registered()
    assert name_of(RegistryScale) == "RegistryScale"
    model = spec.loads({"type": "Chain", "children": [{"type": "RegistryScale", "factor": 3}]})
    assert model(torch.ones(2)).tolist() == [3.0, 3.0]
    assert spec.dump(model)["children"] == [{"type": "RegistryScale", "factor": 3.0}]


def test_a_class_registered_under_another_name_is_written_with_that_name() -> None:
    @register(name="RegistryGate")
    class Gate(fl.Sigmoid): ...

    assert lookup("RegistryGate") is Gate
    assert name_of(Gate) == "RegistryGate"
    with pytest.raises(SpecError, match="unknown type 'Gate'"):
        lookup("Gate")
    assert spec.dump(fl.Chain(Gate()))["children"] == [{"type": "RegistryGate"}]


def test_registering_the_same_class_again_is_allowed() -> None:
    class RegistryTwice(fl.ReLU): ...

    register(RegistryTwice)
    assert register(RegistryTwice) is RegistryTwice
    assert register(RegistryTwice, name="RegistryTwice") is RegistryTwice
    assert lookup("RegistryTwice") is RegistryTwice


def test_a_taken_name_is_refused_and_keeps_its_class() -> None:
    class Linear(fl.Module): ...

    with pytest.raises(SpecError, match="cannot register Linear as 'Linear': that name is Linear already"):
        register(Linear)
    with pytest.raises(SpecError, match="cannot register Linear as 'ReLU': that name is ReLU already"):
        register(Linear, name="ReLU")
    assert lookup("Linear") is fl.Linear
    assert lookup("ReLU") is fl.ReLU


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (fl.ReLU(), r"register expects a torch.nn.Module class, got ReLU\(\)"),
        (dict, "register expects a torch.nn.Module class, got <class 'dict'>"),
        ("Linear", "register expects a torch.nn.Module class, got 'Linear'"),
    ],
)
def test_only_module_classes_are_registered(value: object, message: str) -> None:
    before = registered()
    with pytest.raises(SpecError, match=message):
        register(value)  # pyright: ignore[reportCallIssue, reportArgumentType]
    assert registered() == before


@pytest.mark.parametrize("name", ["my.layer", "", "2d", "a-b", "with space"])
def test_a_registered_name_is_an_identifier(name: str) -> None:
    class RegistryOddName(fl.ReLU): ...

    with pytest.raises(SpecError, match=f"a registered name is an identifier, got {name!r}"):
        register(RegistryOddName, name=name)
    assert name_of(RegistryOddName) is None


def test_lookup_suggests_the_closest_registered_names() -> None:
    with pytest.raises(SpecError, match=r"unknown type 'Conv2D' \(closest registered: Conv2d, Conv3d, Conv1d\)"):
        lookup("Conv2D")
    with pytest.raises(SpecError, match=r"unknown type 'Xyzzy' \(see fluxion.spec.registered\(\)\)"):
        lookup("Xyzzy")


@pytest.mark.parametrize(("name", "first"), [("CONV2D", "Conv2d"), ("MULTIHEADATTENTION", "MultiHeadAttention")])
def test_suggestions_found_by_ignoring_case_are_names_as_registered(name: str, first: str) -> None:
    with pytest.raises(SpecError) as caught:
        lookup(name)
    suggestions = str(caught.value).split("closest registered: ")[1].rstrip(")").split(", ")
    assert suggestions[0] == first
    for suggestion in suggestions:
        assert lookup(suggestion).__name__ == suggestion


@pytest.mark.parametrize("name", [5, None, ["Linear"], {"type": "Linear"}])
def test_a_type_that_is_not_a_string_is_refused(name: object) -> None:
    with pytest.raises(SpecError, match=r"a node's type is a registered class name \(a string\), got "):
        lookup(name)


def test_name_of_an_unregistered_class_is_none() -> None:
    class RegistryNever(fl.Linear): ...

    assert name_of(RegistryNever) is None
    assert name_of(torch.nn.Linear) is None
    with pytest.raises(SpecError, match="is a RegistryNever, which is not registered"):
        spec.dump(fl.Chain(RegistryNever(2, 2)))
