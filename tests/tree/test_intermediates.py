"""Intermediates: the outputs of named nodes, with gradients, in the forward that gives the output."""

import copy
import pickle

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes


def small_model() -> fl.Chain:
    torch.manual_seed(0)
    return fl.Chain(
        stem=fl.Linear(4, 8),
        blocks=fl.Chain(fl.Residual(fl.Linear(8, 8), fl.ReLU()), fl.Residual(fl.Linear(8, 8), fl.Tanh())),
        head=fl.Linear(8, 2),
    )


def test_named_outputs_equal_trace_and_carry_gradients() -> None:
    model = small_model()
    x = torch.randn(5, 4)
    traced = shapes.trace(model, x)
    with fl.Intermediates(model, ["stem", "blocks.Residual_*"]) as tapped:
        output, outputs = tapped(x)
    assert list(outputs) == ["stem", "blocks.Residual_1.Linear", "blocks.Residual_1.ReLU", "blocks.Residual_1",
                             "blocks.Residual_2.Linear", "blocks.Residual_2.Tanh", "blocks.Residual_2"]  # fmt: skip
    for address, value in outputs.items():
        assert torch.equal(value, traced[address])
    assert torch.equal(output, traced[""])
    # a loss on every named output reaches the parameters before it
    loss = sum(value.square().sum() for value in outputs.values())
    assert isinstance(loss, torch.Tensor)
    loss.backward()
    assert model.stem.weight.grad is not None
    assert model.blocks.Residual_2.Linear.weight.grad is not None
    assert model.head.weight.grad is None  # after every named node: no gradient from these losses


def test_each_output_gets_its_own_gradient() -> None:
    model = small_model()
    with fl.Intermediates(model, "blocks.Residual_1") as tapped:
        _, outputs = tapped(torch.randn(2, 4))
    outputs["blocks.Residual_1"].sum().backward()
    assert model.blocks.Residual_1.Linear.weight.grad is not None
    assert model.blocks.Residual_2.Linear.weight.grad is None


def test_the_model_alone_collects_nothing_and_removal_restores_it() -> None:
    model = small_model()
    tapped = fl.Intermediates(model, "stem")
    assert len(model.stem._forward_hooks) == 1
    model(torch.randn(1, 4))  # outside the wrapper: nothing kept, nothing held
    assert tapped._collecting == []
    tapped.remove()
    assert len(model.stem._forward_hooks) == 0
    with pytest.raises(fl.TreeError, match="hooks were removed"):
        tapped(torch.randn(1, 4))


def test_a_node_called_twice_keeps_its_last_output() -> None:
    shared = fl.Linear(3, 3)
    model = fl.Chain(first=shared, second=fl.Lambda(lambda x: shared(x) * 2))
    with fl.Intermediates(model, "first") as tapped:
        output, outputs = tapped(torch.ones(1, 3))
    assert torch.equal(outputs["first"] * 2, output)


def test_patterns_that_match_nothing_are_refused_with_close_addresses() -> None:
    model = small_model()
    with pytest.raises(
        fl.TreeError, match=r"no node of the Chain matches 'blocks.Residul_1'; close addresses: blocks.Residual_1"
    ):
        fl.Intermediates(model, "blocks.Residul_1")
    with pytest.raises(fl.TreeError, match="an address or glob, or a list of them; got 3"):
        fl.Intermediates(model, 3)  # type: ignore[arg-type]
    with pytest.raises(fl.TreeError, match="got \\[\\]"):
        fl.Intermediates(model, [])
    assert all(not module._forward_hooks for module in model.modules())  # a refusal registers nothing


@pytest.mark.usefixtures("fresh_dynamo")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiles_in_one_graph_with_the_same_values_and_gradients() -> None:
    model = small_model()
    x = torch.randn(3, 4)
    with fl.Intermediates(model, ["stem", "blocks.Residual_2"]) as tapped:
        output, outputs = tapped(x)
        compiled = torch.compile(tapped, fullgraph=True, backend="aot_eager")
        compiled_output, compiled_outputs = compiled(x)
        assert torch.allclose(compiled_output, output)
        assert list(compiled_outputs) == list(outputs)
        for address, value in outputs.items():
            assert torch.allclose(compiled_outputs[address], value)
        compiled_outputs["stem"].sum().backward()
    assert model.stem.weight.grad is not None


def test_a_later_in_place_layer_cannot_change_a_kept_output() -> None:
    torch.manual_seed(0)
    model = fl.Chain(lin=fl.Linear(4, 4), act=fl.ReLU(inplace=True))
    x = torch.randn(8, 4)
    with fl.Intermediates(model, "lin") as tapped:
        _, outputs = tapped(x)
    assert torch.equal(outputs["lin"], model.lin(x))
    assert (outputs["lin"] < 0).any()  # the ReLU ran in place on the layer's own output, not on the copy


def test_copies_and_pickles_keep_collecting_for_their_own_wrapper() -> None:
    model = small_model()
    tapped = fl.Intermediates(model, "stem")
    twin = copy.deepcopy(tapped)
    x = torch.randn(2, 4)
    with torch.no_grad():
        twin.model.stem.weight.add_(1.0)
    assert torch.equal(twin(x)[1]["stem"], twin.model.stem(x))
    assert torch.equal(tapped(x)[1]["stem"], model.stem(x))  # the original still collects its own
    restored = pickle.loads(pickle.dumps(tapped))
    assert list(restored(x)[1]) == ["stem"]
    twin.remove()
    assert len(twin.model.stem._forward_hooks) == 0
    assert len(model.stem._forward_hooks) == 1  # removing the copy's hooks leaves the original's


def test_outputs_follow_surgery_and_a_removed_node_is_an_error() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.ReLU())
    tapped = fl.Intermediates(model, "Linear")
    layer = model.Linear
    model.insert(0, fl.Linear(2, 2))  # the tapped layer is now Linear_2
    _, outputs = tapped(torch.ones(1, 2))
    assert list(outputs) == ["Linear_2"]
    assert tapped.addresses == ("Linear_2",)
    assert torch.equal(outputs["Linear_2"], layer(model.Linear_1(torch.ones(1, 2))))
    model.remove(layer)
    with pytest.raises(fl.TreeError, match="the node tapped as 'Linear_2' is no longer in the model"):
        tapped(torch.ones(1, 2))
