"""Architecture parameters apart from weights (``fluxion.nas.parameters``): on random supernets with
shared alphas and tied weights the two sets partition ``parameters()``, a weight optimizer never
moves an alpha, and ``set_mode`` reaches every choice."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import nas
from fluxion.errors import NasError
from fluxion.training import build_optimizer

WIDTH = 3


@st.composite
def candidates(draw: st.DrawFn, depth: int) -> torch.nn.Module:
    kind = draw(st.sampled_from(["linear", "tanh", "skip", "block"] + (["choice"] if depth > 0 else [])))
    if kind == "linear":
        return fl.Linear(WIDTH, WIDTH, bias=draw(st.booleans()))
    if kind == "tanh":
        return fl.Tanh()
    if kind == "skip":
        return fl.Identity()
    if kind == "block":
        return fl.Chain(fl.Linear(WIDTH, WIDTH), fl.ReLU())
    return draw(choices(depth - 1))


@st.composite
def choices(draw: st.DrawFn, depth: int = 1) -> nas.Choice:
    count = draw(st.integers(1, 4))
    return nas.Choice(**{f"op_{index}": draw(candidates(depth)) for index in range(count)})


@st.composite
def subtrees(draw: st.DrawFn, depth: int = 2) -> torch.nn.Module:
    kind = draw(st.sampled_from(["linear", "choice", "join", "chain"] if depth > 0 else ["linear", "choice"]))
    if kind == "linear":
        return fl.Linear(WIDTH, WIDTH)
    if kind == "choice":
        return draw(choices())
    if kind == "join":
        return nas.InputChoice(keep=1, count=1, learn=draw(st.booleans()))
    return fl.Chain(*[draw(subtrees(depth - 1)) for _ in range(draw(st.integers(1, 3)))])


@st.composite
def supernets(draw: st.DrawFn) -> fl.Chain:
    """A random supernet in which some choices share one alphas tensor (as DARTS's cells of a type do)
    and some Linear layers share their weight."""
    model = fl.Chain(fl.Linear(WIDTH, WIDTH), *[draw(subtrees()) for _ in range(draw(st.integers(1, 4)))])
    found = [module for module in model.modules() if isinstance(module, nas.Choice)]
    for _ in range(draw(st.integers(0, 3))):
        if len(found) < 2:
            break
        first, second = draw(st.permutations(found))[:2]
        if len(first.candidates) == len(second.candidates):
            second.alphas = first.alphas
    linears = [module for module in model.modules() if isinstance(module, fl.Linear)]
    for _ in range(draw(st.integers(0, 3))):
        if len(linears) < 2:
            break
        first, second = draw(st.permutations(linears))[:2]
        second.weight = first.weight
    return model


def declared_alphas(model: torch.nn.Module) -> set[int]:
    return {
        id(module.alphas)
        for module in model.modules()
        if isinstance(module, nas.Choice | nas.InputChoice) and module.alphas is not None
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=supernets())
def test_weights_and_architecture_parameters_partition_the_parameters(model: fl.Chain) -> None:
    architecture, weights = nas.arch_parameters(model), nas.weights(model)
    architecture_ids, weight_ids = [id(p) for p in architecture], [id(p) for p in weights]
    assert len(set(architecture_ids)) == len(architecture_ids)  # each tensor once
    assert len(set(weight_ids)) == len(weight_ids)
    assert not set(architecture_ids) & set(weight_ids)
    assert set(architecture_ids) | set(weight_ids) == {id(p) for p in model.parameters()}
    assert set(architecture_ids) == declared_alphas(model)
    # the addresses are named_parameters' own (the first address of a shared tensor)
    named = dict(model.named_parameters())
    named_architecture, named_weights = nas.named_arch_parameters(model), nas.named_weights(model)
    assert sorted(name for name, _ in [*named_architecture, *named_weights]) == sorted(named)
    for name, tensor in [*named_architecture, *named_weights]:
        assert named[name] is tensor
    assert all(name.endswith("alphas") for name, _ in named_architecture)
    assert [p for _, p in named_architecture] == architecture


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=supernets(), seed=st.integers(0, 2**16))
def test_a_weight_optimizer_step_leaves_every_alpha_bit_identical(model: fl.Chain, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for alphas in nas.arch_parameters(model):
            alphas.copy_(torch.randn_like(alphas))
    alphas_before = [alphas.detach().clone() for alphas in nas.arch_parameters(model)]
    weights_before = [weight.detach().clone() for weight in nas.weights(model)]
    optimizer = torch.optim.SGD(nas.weights(model), lr=0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        loss = model(torch.randn(4, WIDTH)).square().sum()
        loss.backward()
        optimizer.step()
    for alphas, before in zip(nas.arch_parameters(model), alphas_before, strict=True):
        assert torch.equal(alphas.detach(), before)
    for weight, before in zip(nas.weights(model), weights_before, strict=True):
        assert not torch.equal(weight.detach(), before)  # weight decay moves every weight
    # the loss did depend on the alphas of the choices with more than one candidate: a step over
    # all parameters would have moved them
    for module in model.modules():
        if isinstance(module, nas.Choice) and len(module.candidates) > 1:
            assert module.alphas.grad is not None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=supernets())
def test_trainings_optimizer_holds_the_weights_and_no_architecture_parameter(model: fl.Chain) -> None:
    optimizer = build_optimizer({"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 3e-4}, model)
    held = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert sorted(held) == sorted(id(p) for p in nas.weights(model))
    assert not set(held) & {id(p) for p in nas.arch_parameters(model)}


def test_an_architecture_optimizer_moves_the_alphas_only() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(WIDTH, WIDTH), edge=nas.Choice(fc=fl.Linear(WIDTH, WIDTH), act=fl.Tanh()))
    weights_before = [weight.detach().clone() for weight in nas.weights(model)]
    alphas_before = model.edge.alphas.detach().clone()
    optimizer = torch.optim.Adam(nas.arch_parameters(model), lr=0.1)
    model(torch.randn(4, WIDTH)).sum().backward()
    optimizer.step()
    assert not torch.equal(model.edge.alphas.detach(), alphas_before)
    for weight, before in zip(nas.weights(model), weights_before, strict=True):
        assert torch.equal(weight.detach(), before)


# -- finding choices and setting their modes ---------------------------------------------------------


def nested() -> fl.Chain:
    return fl.Chain(
        fl.Linear(WIDTH, WIDTH),
        cells=fl.Chain(
            edge_0=nas.Choice(a=fl.Tanh(), b=fl.Identity()),
            edge_1=nas.Choice(a=fl.Tanh(), inner=nas.Choice(c=fl.ReLU(), d=fl.Identity())),
            join=nas.InputChoice(keep=1),
        ),
        head=nas.Choice(fc=fl.Linear(WIDTH, WIDTH), mode="fixed", chosen="fc"),
    )


def test_choices_lists_every_choice_and_join_with_its_address_in_tree_order() -> None:
    model = nested()
    found = list(nas.choices(model))
    assert [address for address, _ in found] == [
        "cells.edge_0",
        "cells.edge_1",
        "cells.edge_1.inner",
        "cells.join",
        "head",
    ]
    assert all(model.get_submodule(address) is node for address, node in found)


@pytest.mark.parametrize("mode", ["gumbel", "gumbel_soft", "sample", "softmax"])
def test_set_mode_sets_every_choice_and_the_joins_that_have_the_mode(mode: nas.Mode) -> None:
    model = nested()
    assert nas.set_mode(model, mode, tau=0.5) == 4
    for address, node in nas.choices(model):
        if isinstance(node, nas.Choice):
            assert (node.mode, node.chosen, node.tau) == (mode, None, 0.5), address
    expected_join_mode = mode if mode in ("softmax", "sample") else "softmax"
    assert model.cells.join.mode == expected_join_mode
    assert model(torch.randn(2, WIDTH)).shape == (2, WIDTH)


def test_set_mode_keeps_tau_unless_given() -> None:
    model = nested()
    nas.set_mode(model, "gumbel", tau=0.2)
    nas.set_mode(model, "gumbel_soft")
    assert {node.tau for _, node in nas.choices(model) if isinstance(node, nas.Choice)} == {0.2}


def test_set_mode_refuses_fixed_and_unknown_modes_and_changes_nothing() -> None:
    model = nested()
    with pytest.raises(NasError, match="'fixed' is chosen per choice"):
        nas.set_mode(model, "fixed")
    with pytest.raises(NasError, match="unknown mode 'greedy'"):
        nas.set_mode(model, "greedy")  # pyright: ignore[reportArgumentType]
    assert model.cells.edge_0.mode == "softmax"
    assert (model.head.mode, model.head.chosen) == ("fixed", "fc")
