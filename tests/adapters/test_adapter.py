"""Adapter: injection in the target's place and name, ejection, stacking, copies and bad use."""

import copy
import functools
import pickle
from collections.abc import Callable

import pytest
import torch

import fluxion.layers as fl
from fluxion.adapters import Adapter, AdapterError
from tests.tree.tree_checks import check_tree, snapshot


def model_and_input() -> tuple[fl.Chain, torch.Tensor]:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(4, 4), fl.ReLU(), fl.Linear(4, 4), block=fl.Chain(fl.Linear(4, 4), fl.Tanh()))
    return model, torch.randn(2, 4)


class Doubled(Adapter):
    def __init__(self, target: torch.nn.Module) -> None:
        super().__init__(target, fl.Lambda(functools.partial(torch.mul, other=2.0)))  # picklable


def test_inject_takes_the_automatic_name_and_keeps_every_sibling_name() -> None:
    model, _ = model_and_input()
    names = [name for name, _ in model.named_children()]
    linear = model.Linear_2
    adapter = Adapter(linear).inject()
    assert [name for name, _ in model.named_children()] == names
    assert model.Linear_2 is adapter
    assert linear.address == "Linear_2.target"
    assert adapter.parent is model
    assert linear.parent is adapter
    check_tree(model)


def test_inject_keeps_an_explicit_name() -> None:
    model, _ = model_and_input()
    adapter = Adapter(model.block).inject()
    assert model.block is adapter
    assert "block" in model.explicit_names
    adapter.eject()
    assert "block" in model.explicit_names
    check_tree(model)


def test_default_forward_runs_the_target_then_the_children() -> None:
    model, x = model_and_input()
    expected = model(x)
    Doubled(model.block.Tanh).inject()  # the last layer: the output doubles
    assert torch.allclose(model(x), 2 * expected)


def test_target_position_puts_the_target_after_other_children() -> None:
    class PreScale(Adapter):
        target_position = 1

        def __init__(self, target: torch.nn.Module) -> None:
            super().__init__(target, fl.Lambda(lambda x: 3 * x))

    model, x = model_and_input()
    expected = model.block(3 * model[:3](x))
    adapter = PreScale(model.block).inject()
    assert list(dict(adapter.named_children())) == ["Lambda", "target"]
    assert torch.allclose(model(x), expected)


def test_surgery_on_siblings_keeps_the_adapter_in_its_name_group() -> None:
    model, _ = model_and_input()
    adapter = Adapter(model.Linear_1).inject()
    model.append(fl.Linear(4, 4))
    assert [name for name, _ in model.named_children()] == ["Linear_1", "ReLU", "Linear_2", "block", "Linear_3"]
    assert model.Linear_1 is adapter
    model.pop(2)
    assert [name for name, _ in model.named_children()] == ["Linear_1", "ReLU", "block", "Linear_2"]
    check_tree(model)
    adapter.eject()
    check_tree(model)


def test_a_popped_adapter_leaves_its_name_group_consistent() -> None:
    model, _ = model_and_input()
    adapter = Adapter(model.Linear_2).inject()
    popped = model.pop(2)
    assert popped is adapter
    assert [name for name, _ in model.named_children()] == ["Linear", "ReLU", "block"]
    check_tree(model)
    adapter.eject()  # no parent now: the target is simply released
    assert adapter.target.parent is None


def test_stacking_on_the_same_target_ejects_in_any_order() -> None:
    model, x = model_and_input()
    expected = model(x)
    linear = model.Linear_1
    first = Adapter(linear).inject()
    second = Adapter(linear).inject()  # goes inside the first, around the target
    third = Adapter(first).inject()  # wraps the first adapter itself
    assert model.Linear_1 is third
    assert third.target is first
    assert first.target is second
    assert second.target is linear
    assert linear.address == "Linear_1.target.target.target"
    check_tree(model)
    first.eject()
    assert third.target is second
    third.eject()
    assert model.Linear_1 is second
    second.eject()
    assert model.Linear_1 is linear
    assert torch.equal(model(x), expected)
    check_tree(model)


def test_a_target_outside_any_chain_is_refused() -> None:
    model, _ = model_and_input()
    with pytest.raises(AdapterError, match="the target is in no Chain"):
        Doubled(model).inject()
    assert model.parent is None
    holder = fl.Chain(plain=torch.nn.Sequential(torch.nn.Linear(2, 2)))
    with pytest.raises(AdapterError, match="the target is in no Chain"):
        Adapter(holder.plain[0]).inject()
    assert fl.parent_of(holder.plain[0]) is None


def test_a_return_is_refused() -> None:
    model = fl.Chain(fl.Chain(fl.Return(), fl.Lambda(torch.neg)), fl.Lambda(lambda x: x + 10))
    with pytest.raises(AdapterError, match="a Return ends its Chain"):
        Adapter(model.Chain.Return).inject()
    assert model(torch.tensor(1.0)).item() == 11.0


def test_the_adapters_own_layers_take_the_targets_mode() -> None:
    model, _ = model_and_input()
    model.eval()
    adapter = Adapter(model.Linear_1, fl.Dropout(0.5)).inject()
    assert not adapter.training
    assert not adapter.Dropout.training
    model.train()
    adapter.eject()
    assert Adapter(model.Linear_1, fl.Dropout(0.5)).eval().inject().Dropout.training


def test_the_parent_argument_is_checked() -> None:
    model, _ = model_and_input()
    before = snapshot(model)
    with pytest.raises(AdapterError, match=r"not a child of the given parent; it is at 'block\.Linear'"):
        Adapter(model.block.Linear).inject(parent=model)
    assert snapshot(model) == before
    adapter = Adapter(model.block.Linear).inject(parent=model.block)
    assert model.block.Linear is adapter


def test_bad_use_raises_and_changes_nothing() -> None:
    model, _ = model_and_input()
    adapter = Adapter(model.ReLU).inject()
    before = snapshot(model)
    with pytest.raises(AdapterError, match="already injected"):
        adapter.inject()
    assert snapshot(model) == before
    adapter.eject()
    before = snapshot(model)
    with pytest.raises(AdapterError, match="not injected; there is nothing to eject"):
        adapter.eject()
    assert snapshot(model) == before


def test_an_adapter_cannot_wrap_a_node_inside_itself() -> None:
    inner = fl.Chain(fl.Linear(2, 2))
    adapter = Adapter(inner.Linear, inner)
    with pytest.raises(AdapterError, match="cannot wrap a node inside itself"):
        adapter.inject()
    assert not adapter.injected


def test_the_target_slot_cannot_be_filled_by_hand() -> None:
    adapter = Adapter(fl.ReLU())
    with pytest.raises(AdapterError, match="the child name 'target' is reserved; inject\\(\\) fills it"):
        adapter.append(fl.Tanh(), name="target")
    assert not adapter.injected


def test_an_adapter_placed_by_hand_cannot_be_injected() -> None:
    model, _ = model_and_input()
    adapter = Adapter(model.ReLU)
    holder = fl.Chain(adapter)
    with pytest.raises(AdapterError, match="already sits in a tree"):
        adapter.inject()
    assert holder[0] is adapter
    assert model.ReLU.parent is model


def test_construction_errors() -> None:
    with pytest.raises(AdapterError, match="must be a torch module"):
        Adapter("Linear")  # type: ignore[arg-type]
    with pytest.raises(AdapterError, match="reserved"):
        Adapter(fl.ReLU(), target=fl.ReLU())

    class Misplaced(Adapter):
        target_position = 3

    with pytest.raises(AdapterError, match=r"target_position 3 is outside 0\.\.0"):
        Misplaced(fl.ReLU())


def test_calling_an_adapter_that_is_not_injected_is_an_error() -> None:
    adapter = Adapter(fl.ReLU(), fl.Tanh())
    with pytest.raises(fl.ChainError) as caught:
        adapter(torch.zeros(1))
    assert isinstance(caught.value.__cause__, AdapterError)
    assert "not injected" in str(caught.value.__cause__)


def test_repr_shows_adapters_with_their_tag_and_name() -> None:
    model, _ = model_and_input()
    Adapter(model.Linear_2).inject()
    lines = repr(model).splitlines()
    assert "    ├── Linear_2: (ADAPTER) Adapter()" in lines
    assert "    │   └── target: Linear(in_features=4, out_features=4, bias=True)" in lines
    assert repr(Adapter(fl.ReLU())) == "(ADAPTER) Adapter(target=ReLU, not injected)"


def test_walk_finds_adapters() -> None:
    model, _ = model_and_input()
    first = Adapter(model.Linear_1).inject()
    second = Adapter(model.block.Linear).inject()
    assert [module for module, _ in model.walk(Adapter)] == [first, second]
    assert list(model.layers(fl.Linear)) == [first.target, model.Linear_2, second.target]


def test_structural_copy_deepcopy_and_pickle_keep_adapters_working() -> None:
    model, x = model_and_input()
    adapter = Doubled(model.block).inject()
    expected = model(x)
    for twin in (model.structural_copy(), copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        check_tree(twin)
        twin_adapter = twin.block
        assert isinstance(twin_adapter, Doubled)
        assert twin_adapter is not adapter
        assert torch.allclose(twin(x), expected)
        twin_adapter.eject()
        assert isinstance(twin.block, fl.Chain)
        assert not isinstance(twin.block, Adapter)
        assert list(dict(twin.named_children())) == ["Linear_1", "ReLU", "Linear_2", "block"]
        check_tree(twin)
    assert model.block is adapter  # the original is untouched


def test_state_dict_while_injected_prefixes_the_target() -> None:
    model, _ = model_and_input()
    keys = list(model.state_dict())
    Adapter(model.block).inject()
    assert [key.replace("block.target.", "block.") for key in model.state_dict()] == keys


def test_an_adapters_own_layers_cannot_be_wrapped() -> None:
    model, _ = model_and_input()
    outer = Doubled(model.Linear_1).inject()
    before = snapshot(model)
    with pytest.raises(AdapterError, match="the target is Doubled's own layer 'Lambda'"):
        Adapter(outer.Lambda).inject()
    assert snapshot(model) == before
    Adapter(outer).inject()  # the adapter itself and its target can be wrapped
    Adapter(outer.target).inject()
    check_tree(model)


# -- surgery on an adapter ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        lambda adapter: adapter.remove("target"),
        lambda adapter: adapter.pop(0),
        lambda adapter: delattr(adapter, "target"),
        lambda adapter: adapter.__delitem__("target"),
        lambda adapter: adapter.replace("target", fl.Linear(4, 4), name="other"),
        lambda adapter: adapter.root.remove("Linear_1.target"),
    ],
)
def test_an_adapters_target_cannot_be_taken_out(action: Callable[[Adapter], object]) -> None:
    model, x = model_and_input()
    expected = model(x)
    adapter = Doubled(model.Linear_1).inject()
    before = snapshot(model)
    with pytest.raises(fl.TreeError, match="its target cannot be removed or renamed; eject the adapter") as raised:
        action(adapter)
    assert isinstance(raised.value, AdapterError)
    assert snapshot(model) == before
    adapter.eject()
    torch.testing.assert_close(model(x), expected)
    check_tree(model)


def test_setting_an_adapters_target_to_none_is_refused() -> None:
    model, _ = model_and_input()
    adapter = Adapter(model.ReLU).inject()
    with pytest.raises(fl.TreeError, match="cannot set child 'target'"):
        adapter.target = None  # type: ignore[assignment]
    assert adapter.target is model.ReLU.target


def test_an_adapters_target_may_be_replaced_under_its_name() -> None:
    model, _ = model_and_input()
    adapter = Doubled(model.Linear_1).inject()
    new = fl.Linear(4, 4)
    adapter.target = new
    assert adapter.target is new
    assert new.address == "Linear_1.target"
    adapter.eject()
    assert model.Linear_1 is new
    check_tree(model)


def test_an_adapters_own_children_take_surgery() -> None:
    model, _ = model_and_input()
    adapter = Doubled(model.Linear_1).inject()
    adapter.append(fl.ReLU())
    adapter.pop(1)  # its Lambda
    assert [name for name, _ in adapter.named_children()] == ["target", "ReLU"]
    adapter.eject()
    check_tree(model)
