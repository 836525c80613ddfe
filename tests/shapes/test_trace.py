"""fluxion.shapes.trace: every node's real output by address, agreeing with infer's shapes."""

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims, shapes


def model() -> fl.Chain:
    torch.manual_seed(0)
    return fl.Chain(
        fl.Conv2d(3, 8, 3, padding=1),
        fl.ReLU(),
        fl.Residual(fl.Conv2d(8, 8, 3, padding=1)),
        fl.Parallel(fl.AdaptiveAvgPool2d(1), fl.MaxPool2d(2)),
        fl.Distribute(fl.Flatten(), fl.Flatten()),
    ).eval()


def test_trace_keeps_every_nodes_real_output() -> None:
    net = model()
    x = torch.randn(2, 3, 8, 8)
    outputs = shapes.trace(net, x)
    assert set(outputs) == {address for address, _ in net.named_modules()}
    assert next(reversed(outputs)) == ""
    assert torch.equal(outputs["Conv2d"], net.Conv2d(x))
    assert torch.equal(outputs["ReLU"], net.Conv2d(x).relu())
    assert all(not value.requires_grad for value in outputs.values() if isinstance(value, torch.Tensor))
    assert isinstance(outputs["Parallel"], tuple)


def test_traced_shapes_equal_the_inferred_ones() -> None:
    net = model()
    outputs = shapes.trace(net, torch.randn(2, 3, 8, 8))
    report = shapes.infer(net, (2, 3, 8, 8))

    def shape_of(value: object) -> object:
        if isinstance(value, torch.Tensor):
            return dims.Shape(value.shape)
        assert isinstance(value, tuple)
        return tuple(shape_of(item) for item in value)  # pyright: ignore[reportUnknownVariableType]

    assert {address: shape_of(value) for address, value in outputs.items()} == {
        address: node.output for address, node in report.items()
    }


def test_hooks_are_removed_even_when_the_forward_fails() -> None:
    net = fl.Chain(fl.Linear(4, 4), fl.Linear(8, 2))
    with pytest.raises(fl.ChainError):
        shapes.trace(net, torch.randn(1, 4))
    assert all(not module._forward_hooks for module in net.modules())  # pyright: ignore[reportPrivateUsage]


def test_trace_in_train_mode_leaves_batch_norm_statistics_as_they_were() -> None:
    model = fl.Chain(fl.Linear(3, 4), fl.BatchNorm1d(4)).train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    shapes.trace(model, torch.randn(8, 3))
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_an_output_changed_in_place_later_is_kept_as_it_was() -> None:
    torch.manual_seed(0)
    model = fl.Chain(lin=fl.Linear(4, 4), act=fl.ReLU(inplace=True))
    x = torch.randn(8, 4)
    outputs = shapes.trace(model, x)
    assert torch.equal(outputs["lin"], model.lin(x).detach())
    assert (outputs["lin"] < 0).any()
