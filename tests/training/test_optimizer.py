"""Optimizers from specs (``fluxion.training.optimizer``): torch's class with the options given,
parameter groups by address glob with their own options, one error per mistake, specs unchanged."""

import copy
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import nas
from fluxion.training import TrainingError, build_optimizer
from fluxion.training.optimizer import parameter_groups


def model() -> fl.Chain:
    return fl.Chain(encoder=fl.Chain(fl.Linear(4, 8), fl.LayerNorm(8)), head=fl.Linear(8, 2))


def options_by_address(net: torch.nn.Module, optimizer: torch.optim.Optimizer, option: str) -> dict[str, Any]:
    group_of = {id(tensor): group for group in optimizer.param_groups for tensor in group["params"]}
    return {address: group_of[id(tensor)][option] for address, tensor in net.named_parameters()}


def test_a_type_and_options_give_torchs_optimizer_over_every_parameter() -> None:
    net = model()
    optimizer = build_optimizer({"type": "Adam", "lr": 0.001}, net)
    assert type(optimizer) is torch.optim.Adam
    assert len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["lr"] == 0.001
    assert [id(tensor) for tensor in optimizer.param_groups[0]["params"]] == [id(p) for p in net.parameters()]


def test_groups_give_each_parameter_the_options_of_the_first_group_that_matches_it() -> None:
    net = model()
    spec = {
        "type": "AdamW",
        "lr": 1e-3,
        "weight_decay": 0.05,
        "groups": [
            {"params": ["*.bias", "encoder.LayerNorm.*"], "weight_decay": 0.0},
            {"params": "encoder.*", "lr": 1e-4},
        ],
    }
    optimizer = build_optimizer(spec, net)
    assert options_by_address(net, optimizer, "lr") == {
        "encoder.Linear.weight": 1e-4,
        "encoder.Linear.bias": 1e-3,
        "encoder.LayerNorm.weight": 1e-3,
        "encoder.LayerNorm.bias": 1e-3,
        "head.weight": 1e-3,
        "head.bias": 1e-3,
    }
    assert options_by_address(net, optimizer, "weight_decay") == {
        "encoder.Linear.weight": 0.05,
        "encoder.Linear.bias": 0.0,
        "encoder.LayerNorm.weight": 0.0,
        "encoder.LayerNorm.bias": 0.0,
        "head.weight": 0.05,
        "head.bias": 0.0,
    }
    assert len(optimizer.param_groups) == 3  # the two groups, then the rest


def test_a_step_equals_torchs_optimizer_built_by_hand() -> None:
    torch.manual_seed(0)
    ours, theirs = model(), model()
    theirs.load_state_dict(ours.state_dict())
    spec = {"type": "AdamW", "lr": 0.01, "groups": [{"params": "*.bias", "weight_decay": 0.0}]}
    built = build_optimizer(spec, ours)
    biases = [tensor for address, tensor in theirs.named_parameters() if address.endswith(".bias")]
    others = [tensor for address, tensor in theirs.named_parameters() if not address.endswith(".bias")]
    by_hand = torch.optim.AdamW([{"params": biases, "weight_decay": 0.0}, {"params": others}], lr=0.01)
    batch = torch.randn(5, 4)
    for net, optimizer in [(ours, built), (theirs, by_hand)]:
        for _ in range(3):
            optimizer.zero_grad()
            net(batch).square().sum().backward()
            optimizer.step()
    for (key, value), expected in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        assert torch.equal(value, expected), key


def test_no_rest_group_when_the_groups_take_everything_and_tied_parameters_count_once() -> None:
    first, second = fl.Linear(4, 4, bias=False), fl.Linear(4, 4, bias=False)
    second.weight = first.weight
    net = fl.Chain(first, second)
    groups = parameter_groups(net, [{"params": "*", "lr": 0.5}])
    assert [len(group["params"]) for group in groups] == [1]
    build_optimizer({"type": "SGD", "lr": 0.1, "groups": [{"params": "*", "lr": 0.5}]}, net)  # torch refuses duplicates


def test_a_class_may_be_given_from_python() -> None:
    class Plain(torch.optim.SGD):
        pass

    assert type(build_optimizer({"type": Plain, "lr": 0.1}, model())) is Plain


def test_the_callers_spec_is_never_changed_and_torch_optim_gets_nothing() -> None:
    spec = {"type": "RAdam", "lr": 0.01, "groups": [{"params": ["*.bias"], "lr": 0.1}]}
    kept = copy.deepcopy(spec)
    names = dict(vars(torch.optim))
    optimizer = build_optimizer(spec, model())
    assert spec == kept
    assert type(optimizer) is torch.optim.RAdam  # torch's own: TorchArc 1 replaced it with its own
    assert dict(vars(torch.optim)) == names


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"type": "Adamm", "lr": 0.1}, ("type",), "unknown optimizer 'Adamm' (did you mean 'Adam'?)"),
        ({"type": "Lookahead"}, ("type",), "'Lookahead' is TorchArc's own optimizer"),
        (
            {"type": "Adam", "lr": 0.1, "betas1": 0.9},
            ("betas1",),
            "Adam takes no argument 'betas1' (did you mean 'betas'?)",
        ),
        ({"type": "Adam", "lr": "1e-3"}, ("lr",), "write 1.0e-3"),
        ({"lr": 0.1}, (), 'names its class in "type"'),
        (
            {"type": "SGD", "lr": 0.1, "groups": [{"params": "*.bias"}, {"params": "Head.*"}]},
            ("groups", 1, "params"),
            "'Head.*' matches no parameter (close: 'head.weight'",
        ),
        (
            {"type": "SGD", "lr": 0.1, "groups": [{"params": ["*.bias", "nope.*"]}]},
            ("groups", 0, "params", 1),
            "'nope.*' matches no parameter",
        ),
        (
            {"type": "SGD", "lr": 0.1, "groups": [{"params": "*"}, {"params": "head.*", "lr": 1.0}]},
            ("groups", 1, "params"),
            "every parameter this group matches is in an earlier group (groups[0])",
        ),
        (
            {"type": "SGD", "lr": 0.1, "groups": [{"params": "*", "lr_": 1.0}]},
            ("groups", 0, "lr_"),
            "did you mean 'lr'?",
        ),
        ({"type": "SGD", "lr": 0.1, "groups": [{"lr": 1.0}]}, ("groups", 0), 'a group is {"params": glob'),
        ({"type": "SGD", "lr": 0.1, "groups": "*.bias"}, ("groups",), '"groups" is a list'),
        ({"type": "SGD", "lr": 0.1, "groups": [{"params": 3}]}, ("groups", 0, "params"), "params is an address glob"),
        ({"type": "SGD", "lr": -1.0}, (), "SGD: Invalid learning rate: -1.0"),
        ({"type": "LBFGS", "groups": [{"params": "*.bias", "lr": 0.1}]}, (), "LBFGS:"),
    ],
)
def test_a_bad_spec_is_one_error_naming_where(spec: Any, path: tuple[Any, ...], message: str) -> None:
    with pytest.raises(TrainingError) as caught:
        build_optimizer(spec, model())
    assert message in str(caught.value)
    assert caught.value.path == path


def test_a_layer_without_sizes_yet_is_refused() -> None:
    with pytest.raises(TrainingError, match="has no size yet"):
        build_optimizer({"type": "SGD", "lr": 0.1}, fl.Chain(torch.nn.LazyLinear(2)))


# -- supernets: the architecture parameters are not the weights' to step -------------------------------


def supernet() -> fl.Chain:
    first = nas.Choice(fc=fl.Linear(4, 4), act=fl.Tanh(), skip=fl.Identity())
    second = nas.Choice(fc=fl.Linear(4, 4), act=fl.Tanh(), skip=fl.Identity())
    second.alphas = first.alphas  # shared, as cells of one type share theirs
    return fl.Chain(
        stem=fl.Linear(4, 4),
        cells=fl.Chain(edge_0=first, edge_1=second, join=nas.InputChoice(keep=1, count=1, learn=True)),
        head=fl.Linear(4, 2),
    )


def test_the_optimizer_of_a_supernet_holds_its_weights_and_no_architecture_parameter() -> None:
    net = supernet()
    optimizer = build_optimizer({"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}, net)
    held = [tensor for group in optimizer.param_groups for tensor in group["params"]]
    assert [id(tensor) for tensor in held] == [id(tensor) for tensor in nas.weights(net)]
    assert not {id(tensor) for tensor in held} & {id(tensor) for tensor in nas.arch_parameters(net)}
    assert len(nas.arch_parameters(net)) == 2  # the shared alphas once, the join's own


def test_groups_of_a_supernet_split_its_weights_only() -> None:
    net = supernet()
    spec = {"type": "AdamW", "lr": 1e-3, "groups": [{"params": "*.bias", "weight_decay": 0.0}]}
    optimizer = build_optimizer(spec, net)
    biases, rest = (group["params"] for group in optimizer.param_groups)
    assert [id(tensor) for tensor in biases] == [id(t) for name, t in nas.named_weights(net) if name.endswith(".bias")]
    assert {id(tensor) for tensor in rest} == {
        id(tensor) for name, tensor in nas.named_weights(net) if not name.endswith(".bias")
    }
    with pytest.raises(TrainingError, match=r"matches only architecture parameters \(cells\.edge_0\.alphas"):
        build_optimizer({"type": "SGD", "lr": 0.1, "groups": [{"params": "*.alphas", "lr": 1.0}]}, net)


def test_steps_of_the_built_optimizer_leave_the_alphas_bit_identical() -> None:
    torch.manual_seed(0)
    net = supernet()
    alphas_before = [tensor.detach().clone() for tensor in nas.arch_parameters(net)]
    weights_before = [tensor.detach().clone() for tensor in nas.weights(net)]
    optimizer = build_optimizer({"type": "SGD", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}, net)
    for _ in range(3):
        optimizer.zero_grad()
        net(torch.randn(5, 4)).square().sum().backward()
        optimizer.step()
    assert all(tensor.grad is not None for tensor in nas.arch_parameters(net))  # the loss reads them
    for tensor, before in zip(nas.arch_parameters(net), alphas_before, strict=True):
        assert torch.equal(tensor.detach(), before)
    for tensor, before in zip(nas.weights(net), weights_before, strict=True):
        assert not torch.equal(tensor.detach(), before)
