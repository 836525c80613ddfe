"""Typed views of torch's module tables: the live dicts torch reads and writes, not copies."""

import torch

import fluxion.layers as fl
from fluxion.weights._torch import buffers_of, named_modules, parameters_of, persistent_buffers


def test_named_modules_lists_each_module_once_by_address() -> None:
    shared = torch.nn.Linear(2, 2)  # a module in two places: torch's containers allow it, a Chain does not
    model = torch.nn.ModuleDict({"a": shared, "b": torch.nn.ModuleDict({"c": shared, "d": torch.nn.ReLU()})})
    found = named_modules(model)
    assert [address for address, _ in found] == ["", "a", "b", "b.d"]
    assert found[0][1] is model
    assert found[1][1] is shared


def test_parameters_of_is_the_modules_own_table_with_empty_entries() -> None:
    linear = fl.Linear(2, 3, bias=False)
    table = parameters_of(linear)
    assert table == {"weight": linear.weight, "bias": None}
    assert parameters_of(fl.Chain(linear)) == {}  # a container's own table: its children's are not in it


def test_parameters_of_is_live() -> None:
    linear = fl.Linear(2, 3)
    replacement = torch.nn.Parameter(torch.ones(3, 2))
    parameters_of(linear)["weight"] = replacement
    assert linear.weight is replacement
    linear.bias = None
    assert parameters_of(linear)["bias"] is None


def test_buffers_of_and_persistent_buffers() -> None:
    module = fl.BatchNorm1d(2)
    module.register_buffer("scratch", torch.zeros(1), persistent=False)
    module.register_buffer("nothing", None)
    assert list(buffers_of(module)) == ["running_mean", "running_var", "num_batches_tracked", "scratch", "nothing"]
    persistent = persistent_buffers(module)
    assert list(persistent) == ["running_mean", "running_var", "num_batches_tracked"]
    assert persistent["running_mean"] is module.running_mean
    assert list(persistent) == [key for key in module.state_dict() if key in buffers_of(module)]


def test_buffers_of_is_live() -> None:
    module = fl.BatchNorm1d(2)
    fresh = torch.ones(2)
    buffers_of(module)["running_mean"] = fresh
    assert module.running_mean is fresh
    assert persistent_buffers(module)["running_mean"] is fresh


def test_a_plain_module_has_empty_tables() -> None:
    module = torch.nn.ReLU()
    assert (parameters_of(module), buffers_of(module), persistent_buffers(module)) == ({}, {}, {})
    assert named_modules(module) == [("", module)]
