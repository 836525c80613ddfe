"""Parameter roles (``fluxion.tree.parameter_roles``): a module names its architecture parameters in
``architecture_parameters``; they and the weights partition ``parameters()``, each tensor once, by
the addresses ``named_parameters`` gives, whatever the sharing."""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion.tree.parameter_roles import (
    ROLE_ATTRIBUTE,
    architecture_parameter_ids,
    named_architecture_parameters,
    named_weights,
)

WIDTH = 3


class Gate(fl.Module):
    """A leaf with one architecture parameter (``logits``) and one weight (``scale``)."""

    architecture_parameters = ("logits",)

    def __init__(self) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.randn(WIDTH))
        self.scale = torch.nn.Parameter(torch.randn(WIDTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits) * self.scale * x


class SubGate(Gate):
    """Inherits its parent class's roles."""


class Undeclared(fl.Module):
    """Names parameters that are not parameters: a buffer, a missing attribute, None."""

    architecture_parameters = ("running", "missing", "absent")

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("running", torch.zeros(WIDTH))
        self.absent = None
        self.weight = torch.nn.Parameter(torch.ones(WIDTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def check_partition(model: torch.nn.Module) -> None:
    """The two roles split ``named_parameters()`` exactly: same names, same tensors, nothing twice."""
    architecture = named_architecture_parameters(model)
    weights = named_weights(model)
    everything = list(model.named_parameters())
    ids_architecture = [id(tensor) for _, tensor in architecture]
    ids_weights = [id(tensor) for _, tensor in weights]
    assert not set(ids_architecture) & set(ids_weights)
    assert len(set(ids_architecture)) == len(ids_architecture)
    assert len(set(ids_weights)) == len(ids_weights)
    assert set(ids_architecture) | set(ids_weights) == {id(tensor) for tensor in model.parameters()}
    by_name = sorted((name, id(tensor)) for name, tensor in architecture + weights)
    assert by_name == sorted((name, id(tensor)) for name, tensor in everything)
    # each keeps the model's own order
    order = [name for name, _ in everything]
    for part in (architecture, weights):
        names = [name for name, _ in part]
        assert names == [name for name in order if name in set(names)]


def test_a_module_names_its_architecture_parameters_and_the_rest_are_weights() -> None:
    model = fl.Chain(fl.Linear(WIDTH, WIDTH), gate=Gate())
    assert ROLE_ATTRIBUTE == "architecture_parameters"
    assert [name for name, _ in named_architecture_parameters(model)] == ["gate.logits"]
    assert [name for name, _ in named_weights(model)] == ["Linear.weight", "Linear.bias", "gate.scale"]
    assert named_architecture_parameters(model)[0][1] is model.gate.logits
    assert architecture_parameter_ids(model) == {id(model.gate.logits)}
    check_partition(model)


def test_a_model_without_declarations_is_all_weights() -> None:
    model = fl.Chain(fl.Linear(WIDTH, WIDTH), fl.Chain(fl.LayerNorm(WIDTH)))
    assert named_architecture_parameters(model) == []
    assert architecture_parameter_ids(model) == set()
    assert [tensor for _, tensor in named_weights(model)] == list(model.parameters())


def test_a_subclass_keeps_the_roles_of_its_class() -> None:
    model = fl.Chain(gate=SubGate())
    assert [name for name, _ in named_architecture_parameters(model)] == ["gate.logits"]
    assert [name for name, _ in named_weights(model)] == ["gate.scale"]


def test_names_that_are_not_parameters_are_ignored() -> None:
    model = fl.Chain(odd=Undeclared())
    assert named_architecture_parameters(model) == []
    assert [name for name, _ in named_weights(model)] == ["odd.weight"]


def test_a_module_alone_is_its_own_root() -> None:
    gate = Gate()
    assert [name for name, _ in named_architecture_parameters(gate)] == ["logits"]
    assert [name for name, _ in named_weights(gate)] == ["scale"]


def test_a_shared_architecture_parameter_is_listed_once_under_its_first_address() -> None:
    first, second = Gate(), Gate()
    second.logits = first.logits
    model = fl.Chain(first=first, second=second)
    assert [name for name, _ in named_architecture_parameters(model)] == ["first.logits"]
    assert [name for name, _ in named_weights(model)] == ["first.scale", "second.scale"]
    check_partition(model)


def test_a_tensor_one_module_declares_is_an_architecture_parameter_wherever_else_it_is_held() -> None:
    gate = Gate()
    linear = fl.Linear(WIDTH, WIDTH)
    linear.bias = gate.logits  # the same tensor as a plain module's weight, listed first
    model = fl.Chain(linear=linear, gate=gate)
    assert [name for name, _ in named_architecture_parameters(model)] == ["linear.bias"]
    assert [name for name, _ in named_weights(model)] == ["linear.weight", "gate.scale"]
    check_partition(model)


def test_plain_torch_modules_may_declare_roles_too() -> None:
    class Temperature(torch.nn.Module):
        architecture_parameters = ("tau",)

        def __init__(self) -> None:
            super().__init__()
            self.tau = torch.nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / self.tau

    model = fl.Chain(torch.nn.Linear(WIDTH, WIDTH), temperature=Temperature())
    assert [name for name, _ in named_architecture_parameters(model)] == ["temperature.tau"]
    check_partition(model)


# -- random trees with random sharing ------------------------------------------------------------


@st.composite
def leaves(draw: st.DrawFn) -> torch.nn.Module:
    kind = draw(st.sampled_from(["linear", "gate", "subgate", "norm", "relu", "torch"]))
    if kind == "linear":
        return fl.Linear(WIDTH, WIDTH, bias=draw(st.booleans()))
    if kind == "gate":
        return Gate()
    if kind == "subgate":
        return SubGate()
    if kind == "norm":
        return fl.LayerNorm(WIDTH)
    if kind == "relu":
        return fl.ReLU()
    return torch.nn.Linear(WIDTH, WIDTH)


@st.composite
def subtrees(draw: st.DrawFn, depth: int = 3) -> torch.nn.Module:
    if depth == 0 or draw(st.booleans()):
        return draw(leaves())
    return fl.Chain(*[draw(subtrees(depth - 1)) for _ in range(draw(st.integers(0, 3)))])


@st.composite
def shared_trees(draw: st.DrawFn) -> torch.nn.Module:
    """A random tree in which some vectors of size WIDTH are one tensor held in several places,
    in any role (a gate's logits tied to a Linear's bias, to another gate's scale...)."""
    model = fl.Chain(*[draw(subtrees()) for _ in range(draw(st.integers(1, 4)))])
    slots = [
        (module, name)
        for module in model.modules()
        for name, tensor in module.named_parameters(recurse=False)
        if tensor.shape == (WIDTH,)
    ]
    if len(slots) >= 2:
        for _ in range(draw(st.integers(0, 4))):
            (target, target_name), (source, source_name) = draw(st.permutations(slots))[:2]
            setattr(target, target_name, getattr(source, source_name))
    return model


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=shared_trees())
def test_the_roles_partition_the_parameters_of_any_tree(model: torch.nn.Module) -> None:
    check_partition(model)
    declared = {
        id(getattr(module, name))
        for module in model.modules()
        if isinstance(module, Gate)
        for name in Gate.architecture_parameters
    }
    assert architecture_parameter_ids(model) == declared
    assert {id(tensor) for _, tensor in named_architecture_parameters(model)} == declared
