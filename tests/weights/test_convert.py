"""fluxion.weights.convert: pairing by execution order and shapes, checked outputs, replayable mappings."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import fluxion.layers as fl
from fluxion.weights import ConversionError, KeyMapping, convert, load
from tests.weights.helpers import same_state, state_snapshot


class TorchBlock(torch.nn.Module):
    """A residual block written the usual torch way: shortcut computed before the main path."""

    def __init__(self) -> None:
        super().__init__()
        self.shortcut = torch.nn.Conv2d(3, 6, 1, stride=2)
        self.conv1 = torch.nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(6)
        self.conv2 = torch.nn.Conv2d(6, 6, 3, padding=1)
        self.unused = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x)
        return torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))) + skip)


def fluxion_block() -> fl.Chain:
    return fl.Chain(
        fl.Sum(
            fl.Chain(
                fl.Conv2d(3, 6, 3, stride=2, padding=1), fl.BatchNorm2d(6), fl.ReLU(), fl.Conv2d(6, 6, 3, padding=1)
            ),
            fl.Conv2d(3, 6, 1, stride=2),
        ),
        fl.ReLU(),
    )


def trained_torch_block() -> TorchBlock:
    torch.manual_seed(0)
    block = TorchBlock()
    block.train()(torch.randn(8, 3, 8, 8))  # BatchNorm statistics that must travel too
    return block


def test_convert_pairs_leaves_across_a_different_execution_order() -> None:
    source = trained_torch_block()
    target = fluxion_block()
    x = torch.randn(2, 3, 8, 8)
    mapping = convert(source, target, x)
    assert mapping("shortcut.weight") == "Sum.Conv2d.weight"
    assert mapping("conv1.weight") == "Sum.Chain.Conv2d_1.weight"
    assert mapping("bn.running_var") == "Sum.Chain.BatchNorm2d.running_var"
    assert mapping("unused.weight") is None  # never ran: dropped
    assert source.training
    assert target.training
    source.eval(), target.eval()
    assert torch.allclose(source(x), target(x), atol=1e-6)


def test_the_mapping_replays_on_a_checkpoint_file(tmp_path: Path) -> None:
    source = trained_torch_block()
    mapping = convert(source, fluxion_block(), torch.randn(1, 3, 8, 8))
    mapping.write(tmp_path / "mapping.json")
    save_file(source.state_dict(), tmp_path / "foreign.safetensors")
    replayed = fluxion_block()
    load(replayed, tmp_path / "foreign.safetensors", mapping=tmp_path / "mapping.json")
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(source.eval()(x), replayed.eval()(x), atol=1e-6)


class GammaBetaNorm(torch.nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.gamma = torch.nn.Parameter(torch.rand(size) + 0.5)
        self.beta = torch.nn.Parameter(torch.randn(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, x.shape[-1:], self.gamma, self.beta)


def test_tensors_with_other_names_pair_by_shape() -> None:
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(4, 5), GammaBetaNorm(5))
    target = fl.Chain(fl.Linear(4, 5), fl.LayerNorm(5))
    mapping = convert(source, target, torch.randn(3, 4))
    assert mapping("1.gamma") == "LayerNorm.weight"
    assert mapping("1.beta") == "LayerNorm.bias"


def test_outputs_that_differ_name_the_first_disagreeing_leaf_and_change_nothing() -> None:
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.Linear(8, 2))
    target = fl.Chain(fl.Linear(4, 8), fl.Tanh(), fl.Linear(8, 8), fl.Linear(8, 2))
    before = state_snapshot(target)
    with pytest.raises(ConversionError) as caught:
        convert(source, target, torch.randn(3, 4))
    message = str(caught.value)
    assert "the converted model's output differs from the source's (max abs difference" in message
    assert "paired leaves disagree, in execution order" in message
    assert message.index("source 2 -> target Linear_2") < message.index("source 3 -> target Linear_3")
    assert "source 0 -> target Linear_1" not in message
    assert same_state(target, before)


def test_a_target_that_cannot_run_on_the_inputs_is_reported() -> None:
    torch.manual_seed(0)

    class Swapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wide = torch.nn.Linear(4, 6)
            self.a = torch.nn.Linear(6, 6)
            self.b = torch.nn.Linear(6, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hidden = self.wide(x)
            return self.a(hidden) * self.b(hidden)

    target = fl.Chain(fl.Linear(6, 6), fl.Linear(4, 6), fl.Linear(6, 6))  # runs a 6->6 first: never the same
    with pytest.raises(ConversionError) as caught:
        convert(Swapped(), target, torch.randn(2, 4))
    assert "fails on the example inputs" in str(caught.value)


def test_a_leaf_without_a_counterpart_is_named() -> None:
    source = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    target = fl.Chain(fl.Linear(4, 4), fl.Linear(4, 4))
    with pytest.raises(
        ConversionError, match=r"target Linear_2 \(Linear: weight \(4, 4\), bias \(4,\)\) has no unpaired"
    ):
        convert(source, target, torch.randn(1, 4))


def test_out_of_order_pairs_between_equal_shapes_are_listed() -> None:
    torch.manual_seed(0)

    class TwoBranches(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.left = torch.nn.Linear(4, 4)
            self.norm = torch.nn.LayerNorm(4)
            self.right = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(self.left(x)) + self.right(x)

    target = fl.Chain(
        fl.Sum(fl.Linear(4, 4), fl.Chain(fl.Linear(4, 4), fl.LayerNorm(4)))
    )  # right branch first: the two 4x4 Linears pair in the wrong order
    with pytest.raises(ConversionError) as caught:
        convert(TwoBranches(), target, torch.randn(3, 4))
    message = str(caught.value)
    assert (
        "pairs chosen by shape alone (check these first):\n  target Sum.Linear <- source left (same shapes as right)"
        in message
    )


def test_convert_returns_a_plain_key_mapping() -> None:
    source = torch.nn.Sequential(torch.nn.Linear(2, 2))
    mapping = convert(source, fl.Chain(fl.Linear(2, 2)), torch.randn(1, 2))
    assert isinstance(mapping, KeyMapping)
    assert mapping.to_json()["rename"] == {"0.weight": "Linear.weight", "0.bias": "Linear.bias"}


def test_outputs_of_different_dtypes_are_compared_in_float64() -> None:
    torch.manual_seed(0)
    source = torch.nn.Sequential(torch.nn.Linear(4, 4))
    target = fl.Chain(fl.Linear(4, 4), fl.Lambda(lambda x: x.double()))  # float64 out, float32 in the source
    mapping = convert(source, target, torch.randn(2, 4))
    assert mapping("0.weight") == "Linear.weight"


def test_a_target_leaf_that_never_runs_is_named() -> None:
    class WithSpare(fl.Chain):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # pyright: ignore[reportIncompatibleMethodOverride]
            return self["used"](x)

    source = torch.nn.Sequential(torch.nn.Linear(4, 4))
    target = WithSpare(used=fl.Linear(4, 4), spare=fl.Linear(4, 4))
    with pytest.raises(ConversionError, match=r"never ran on the example inputs, so nothing pairs them:\n  spare"):
        convert(source, target, torch.randn(1, 4))


def test_a_module_called_twice_pairs_with_tied_target_leaves() -> None:
    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shared(torch.relu(self.shared(x)))

    torch.manual_seed(0)
    target = fl.Chain(fl.Linear(4, 4), fl.ReLU(), fl.Linear(4, 4))
    target.Linear_2.weight, target.Linear_2.bias = target.Linear_1.weight, target.Linear_1.bias
    mapping = convert(Twice(), target, torch.randn(2, 4))
    assert mapping("shared.weight") == "Linear_1.weight"
