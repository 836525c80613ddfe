"""Chain: naming, access, surgery, representation, failing forward calls and torch integration."""

import copy
import pickle
import re
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from tests.tree.tree_checks import check_tree, snapshot


def names(chain: fl.Chain) -> list[str]:
    return [name for name, _ in chain.named_children()]


def kinds(chain: fl.Chain) -> list[str]:
    return [type(child).__name__ for child in chain]


# -- naming ------------------------------------------------------------------------------------


def test_automatic_names_are_class_names_suffixed_when_repeated() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.ReLU(), fl.Linear(2, 2))
    assert names(model) == ["Linear_1", "ReLU", "Linear_2"]


def test_automatic_names_are_recomputed_after_surgery() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.ReLU())
    first = model.Linear
    model.insert(0, fl.Linear(2, 2))
    assert names(model) == ["Linear_1", "Linear_2", "ReLU"]
    assert model.Linear_2 is first
    model.pop(0)
    assert names(model) == ["Linear", "ReLU"]
    assert model.Linear is first


def test_explicit_names_never_change() -> None:
    model = fl.Chain(fl.Linear(2, 2), proj=fl.Linear(2, 2))
    proj = model.proj
    model.insert(0, fl.Linear(2, 2))
    model.append(fl.Linear(2, 2))
    model.pop(0)
    assert model.proj is proj
    assert names(model) == ["Linear_1", "proj", "Linear_2"]


def test_automatic_names_skip_names_taken_explicitly() -> None:
    model = fl.Chain(fl.ReLU(), Linear_1=fl.Tanh())
    model.append(fl.Linear(2, 2))
    model.append(fl.Linear(2, 2))
    assert names(model) == ["ReLU", "Linear_1", "Linear_2", "Linear_3"]
    model.append(fl.Sigmoid(), name="ReLU")
    assert names(model) == ["ReLU_1", "Linear_1", "Linear_2", "Linear_3", "ReLU"]
    assert isinstance(model.ReLU, fl.Sigmoid)


def test_state_dict_keys_are_addresses_plus_torch_names() -> None:
    model = fl.Chain(fl.Linear(2, 3), block=fl.Chain(fl.LayerNorm(3), torch.nn.Linear(3, 1)))
    assert list(model.state_dict()) == [
        "Linear.weight",
        "Linear.bias",
        "block.LayerNorm.weight",
        "block.LayerNorm.bias",
        "block.Linear.weight",
        "block.Linear.bias",
    ]
    assert fl.address_of(model.block.Linear) == "block.Linear"


# -- access ------------------------------------------------------------------------------------


def test_access_by_index_name_address_attribute_and_slice() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.ReLU(), block=fl.Chain(fl.Tanh(), fl.Linear(2, 2)))
    assert model[0] is model.Linear
    assert model[-1] is model.block
    assert model["ReLU"] is model[1]
    assert model["block.Linear"] is model.block.Linear
    part = model[1:]
    assert kinds(part) == ["ReLU", "Chain"]
    assert part.block is not model.block
    assert part.block.Linear.weight is model.block.Linear.weight


def test_wrong_index_says_what_is_valid() -> None:
    model = fl.Chain(fl.ReLU(), fl.Tanh())
    with pytest.raises(fl.ChildIndexError, match=r"index 2 is out of range for 2 children \(valid: -2..1\)"):
        model[2]
    with pytest.raises(IndexError):
        model[-3]


def test_wrong_name_or_address_lists_the_valid_names() -> None:
    model = fl.Chain(fl.ReLU(), block=fl.Chain(fl.Tanh(), fl.Linear(2, 2)))
    with pytest.raises(fl.ChildNotFoundError, match="has no child 'Relu'; its children are: ReLU, block"):
        model["Relu"]
    with pytest.raises(KeyError, match=r"Chain at 'block' has no child 'Lin'; its children are: Tanh, Linear"):
        model["block.Lin"]
    with pytest.raises(fl.ChildNotFoundError, match="is a leaf"):
        model["ReLU.weight"]


@pytest.mark.parametrize(
    "key",
    [slice(0, 2, 0), slice("a", "b"), slice(0.5, 1), slice(None, None, 1.0)],
    ids=["step 0", "str bounds", "float start", "float step"],
)
def test_a_bad_slice_is_a_child_index_error_saying_what_a_slice_takes(key: slice) -> None:
    model = fl.Chain(fl.ReLU(), fl.Tanh(), fl.SiLU())
    graph = fl.Graph({"a": fl.ReLU(), "b": fl.Tanh()}, edges=["input -> a -> b"])
    for chain in (model, graph):
        with pytest.raises(fl.ChildIndexError, match=r"takes int \(or None\) start, stop and step, the step not 0"):
            chain[key]
    assert kinds(model[::-1]) == ["SiLU", "Tanh", "ReLU"]  # a negative step is a slice like any other


@pytest.mark.parametrize(
    ("change", "instead"),
    [
        (lambda m: m.__setitem__(slice(0, 1), fl.GeLU()), r"cannot be assigned to .* use replace\(old, new\)"),
        (lambda m: m.__setitem__(slice(0, 1), [fl.GeLU()]), r"cannot be assigned to .* insert\(index, module\)"),
        (lambda m: m.__delitem__(slice(0, 2)), r"cannot be deleted .* use pop\(index\) or remove\(child\)"),
        (lambda m: m.__delitem__(slice(None)), r"cannot be deleted"),
    ],
    ids=["assign module", "assign list", "delete", "delete all"],
)
def test_slice_assignment_and_deletion_are_refused_naming_what_to_use(change: Any, instead: str) -> None:
    model = fl.Chain(fl.ReLU(), fl.Tanh(), fl.SiLU())
    before = snapshot(model)
    with pytest.raises(fl.TreeError, match=instead) as caught:
        change(model)
    assert "not in this tree" not in str(caught.value)
    assert snapshot(model) == before


@pytest.mark.parametrize("key", [1.0, (0,), None, [0]], ids=["float", "tuple", "None", "list"])
def test_set_and_del_with_a_key_of_another_kind_say_what_they_take(key: Any) -> None:
    model = fl.Chain(fl.ReLU(), fl.Tanh())
    before = snapshot(model)
    with pytest.raises(fl.ChildNotFoundError, match="replaced by an int index or a str name or address; got"):
        model[key] = fl.GeLU()
    with pytest.raises(fl.ChildNotFoundError, match="removed by an int index or a str name or address; got"):
        del model[key]
    assert snapshot(model) == before


def test_walk_layers_find_and_find_parent() -> None:
    inner = fl.Chain(fl.Linear(2, 2), fl.ReLU())
    model = fl.Chain(fl.Linear(2, 2), inner, fl.Residual(fl.Linear(2, 2)))
    assert [m.address for m in model.layers(fl.Linear)] == ["Linear", "Chain.Linear", "Residual.Linear"]
    assert [(m.address, p.address) for m, p in model.walk(fl.Chain)] == [("Chain", ""), ("Residual", "")]
    assert len(list(model.walk(fl.Chain, recurse=True))) == 2
    assert [m.address for m, _ in model.walk(lambda m: isinstance(m, fl.ReLU))] == ["Chain.ReLU"]
    assert model.find(fl.ReLU) is inner.ReLU
    assert model.find(fl.Conv2d) is None
    assert model.find_parent(inner.ReLU) is inner
    assert model.find_parent(fl.ReLU()) is None
    assert inner.find_parent(model.Linear) is None
    with pytest.raises(fl.ChildNotFoundError, match="no node of type Conv2d"):
        model.ensure_find(fl.Conv2d)


def test_walk_handles_trees_deeper_than_the_recursion_limit() -> None:
    model = fl.Chain(fl.ReLU())
    node = model
    for _ in range(1500):
        child = fl.Chain()
        node.append(child)
        node = child
    node.append(fl.Tanh())
    assert [m.address.count(".") for m in model.layers(fl.Tanh)] == [1500]


# -- surgery -----------------------------------------------------------------------------------


def test_insert_follows_list_insert_including_negative_indices() -> None:
    for index in range(-3, 4):
        model = fl.Chain(fl.ReLU(), fl.Tanh(), fl.Sigmoid())
        reference = ["ReLU", "Tanh", "Sigmoid"]
        model.insert(index, fl.SiLU())
        reference.insert(index, "SiLU")
        assert kinds(model) == reference, index


def test_insert_out_of_range_raises_instead_of_clamping() -> None:
    model = fl.Chain(fl.ReLU())
    with pytest.raises(fl.ChildIndexError, match=r"cannot insert at index 2 into 1 child \(valid: -1..1\)"):
        model.insert(2, fl.Tanh())
    with pytest.raises(IndexError):
        model.insert(-2, fl.Tanh())
    assert kinds(model) == ["ReLU"]


def test_insert_by_type_pop_remove_replace() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.ReLU(), act=fl.Tanh())
    model.insert_after_type(fl.Linear, fl.Dropout(0.1))
    model.insert_before_type(fl.Linear, fl.LayerNorm(2))
    assert kinds(model) == ["LayerNorm", "Linear", "Dropout", "ReLU", "Tanh"]
    popped = model.pop(1)
    assert isinstance(popped, fl.Linear)
    assert popped.parent is None
    model.remove(model.Dropout)
    model.replace("act", fl.SiLU())
    assert names(model) == ["LayerNorm", "ReLU", "act"]
    assert isinstance(model.act, fl.SiLU)
    model.replace(model.ReLU, fl.GeLU(), name="gelu")
    assert names(model) == ["LayerNorm", "gelu", "act"]
    with pytest.raises(fl.ChildNotFoundError, match="no child of type Conv2d"):
        model.insert_before_type(fl.Conv2d, fl.ReLU())
    check_tree(model)


def test_surgery_reaches_into_subtrees_by_address() -> None:
    model = fl.Chain(encoder=fl.Chain(fl.Linear(2, 2), fl.ReLU()))
    model.replace("encoder.ReLU", fl.GeLU())
    model.remove("encoder.Linear")
    assert kinds(model.encoder) == ["GeLU"]
    with pytest.raises(fl.ChildNotFoundError, match="not in this tree"):
        model.remove(fl.ReLU())


def test_item_assignment_and_deletion() -> None:
    model = fl.Chain(fl.ReLU(), fl.Tanh())
    model[0] = fl.SiLU()
    del model[-1]
    assert kinds(model) == ["SiLU"]


def test_attribute_assignment_adds_or_replaces_named_children() -> None:
    class Block(fl.Chain):
        def __init__(self) -> None:
            super().__init__()
            self.proj = fl.Linear(2, 2)
            self.act = fl.ReLU()
            self.width = 2

    block = Block()
    assert names(block) == ["proj", "act"]
    assert block.proj.parent is block
    block.act = fl.Tanh()
    assert isinstance(block.act, fl.Tanh)
    del block.proj
    assert names(block) == ["act"]
    block.add_module("out", torch.nn.Linear(2, 2))
    assert names(block) == ["act", "out"]
    with pytest.raises(fl.TreeError, match="cannot hold None"):
        block.add_module("nothing", None)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda m, other: m.append(other.ReLU), "already has a parent .*Chain.*'ReLU'"),
        (lambda m, other: m.append(fl.ReLU(), name="a.b"), "must not contain a dot"),
        (lambda m, other: m.append(fl.ReLU(), name="act"), "duplicate child name 'act'"),
        (lambda m, other: m.append(fl.ReLU(), name=""), "non-empty strings"),
        (lambda m, other: m.append(fl.ReLU(), name="insert"), "would hide the Chain attribute"),
        (lambda m, other: m.block.append(m), "into itself or its own subtree"),
        (lambda m, other: m.append(m.block.ReLU), "already has a parent"),
        (lambda m, other: m.append("ReLU"), "children must be torch modules, got str"),
        (lambda m, other: m.insert(0, fl.ReLU(), name="act"), "duplicate child name"),
        (lambda m, other: fl.Chain(fl.ReLU(), 3), "expected modules, got int"),
    ],
)
def test_bad_surgery_is_refused_and_changes_nothing(action: Any, message: str) -> None:
    model = fl.Chain(fl.Linear(2, 2), act=fl.ReLU(), block=fl.Chain(fl.ReLU()))
    other = fl.Chain(fl.ReLU())
    before, other_before = snapshot(model), snapshot(other)
    with pytest.raises(fl.TreeError, match=message):
        action(model, other)
    assert snapshot(model) == before
    assert snapshot(other) == other_before
    check_tree(model)


def test_a_popped_node_can_be_inserted_elsewhere() -> None:
    source, target = fl.Chain(fl.ReLU()), fl.Chain()
    target.append(source.pop())
    assert target.ReLU.parent is target
    assert len(source) == 0


def test_replace_with_itself_is_a_no_op() -> None:
    model = fl.Chain(fl.ReLU(), act=fl.Tanh())
    act = model.act
    model.replace(act, act)
    assert model.act is act
    check_tree(model)


# -- copies ------------------------------------------------------------------------------------


def test_deepcopy_and_pickle_rebuild_parent_links() -> None:
    model = fl.Chain(fl.Linear(2, 2), block=fl.Chain(torch.nn.Tanh(), fl.ReLU()))
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        check_tree(twin)
        assert twin.block.ReLU.parent is twin.block
        assert fl.parent_of(twin.block.Tanh) is twin.block
        assert twin.Linear.weight is not model.Linear.weight
        torch.testing.assert_close(twin(torch.ones(1, 2)), model(torch.ones(1, 2)))
    assert model.block.ReLU.parent is model.block


def test_deepcopy_of_a_subtree_is_detached() -> None:
    model = fl.Chain(block=fl.Chain(fl.ReLU()))
    twin = copy.deepcopy(model.block)
    assert twin.parent is None
    assert twin.ReLU.parent is twin
    assert model.block.parent is model


def test_structural_copy_gives_the_copy_its_own_hook_tables() -> None:
    model = fl.Chain(fl.Linear(2, 2))
    twin = model.structural_copy()
    calls: list[str] = []
    twin.Linear.register_forward_hook(lambda *_: calls.append("copy"))
    model(torch.ones(1, 2))
    assert calls == []
    twin(torch.ones(1, 2))
    assert calls == ["copy"]


# -- running -----------------------------------------------------------------------------------


def test_tuples_flow_as_separate_arguments() -> None:
    model = fl.Chain(fl.Parallel(fl.Identity(), fl.Lambda(torch.neg)), fl.Lambda(lambda a, b: a - b))
    assert model(torch.ones(1)).tolist() == [2.0]
    assert fl.Chain(fl.Lambda(lambda a, b: a * b))(torch.tensor(2.0), torch.tensor(3.0)).item() == 6.0


def test_forward_hooks_fire_on_every_node() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.Residual(fl.ReLU(), torch.nn.Tanh()), block=fl.Chain(fl.SiLU()))
    fired: list[str] = []
    for name, module in model.named_modules():
        module.register_forward_hook(lambda *_, name=name: fired.append(name))
    model(torch.ones(1, 2))
    assert sorted(fired) == sorted(name for name, _ in model.named_modules())


def test_return_ends_its_own_chain_only() -> None:
    model = fl.Chain(
        fl.Lambda(lambda x: x + 1),
        fl.Chain(fl.Lambda(lambda x: x * 10), fl.Return(), fl.Lambda(lambda x: x * 1000)),
        fl.Lambda(lambda x: x + 2),
        fl.Return(),
        fl.Lambda(lambda x: x * 0),
    )
    assert model(torch.tensor(1.0)).item() == 22.0
    assert fl.Residual(fl.Lambda(lambda x: 3 * x), fl.Return(), fl.Lambda(torch.neg))(torch.tensor(1.0)).item() == 4.0


# -- failing forward ---------------------------------------------------------------------------


def test_failing_forward_names_the_node_and_its_inputs() -> None:
    model = fl.Chain(fl.Linear(4, 4), encoder=fl.Chain(fl.ReLU(), fl.Linear(3, 3), fl.Tanh()))
    with pytest.raises(fl.ChainError) as caught:
        model(torch.zeros(2, 4))
    error = caught.value
    assert error.address == "encoder.Linear"
    assert error.node is model.encoder.Linear
    assert isinstance(error.__cause__, RuntimeError)
    text = str(error)
    assert text.startswith("Linear at 'encoder.Linear' failed: RuntimeError: mat1 and mat2 shapes")
    assert "inputs: Tensor(shape=(2, 4), dtype=float32, device=cpu)" in text
    assert re.search(r"Linear\(in_features=3, out_features=3, bias=True\)  ◀── failed here", text)
    assert "ReLU()" in text
    assert "Tanh()" in text


def test_failure_inside_combinators_and_plain_torch_leaves() -> None:
    bad = torch.nn.Linear(5, 5)
    model = fl.Chain(fl.Sum(fl.Identity(), fl.Chain(fl.Identity(), bad)))
    with pytest.raises(fl.ChainError) as caught:
        model(torch.zeros(1, 2))
    assert caught.value.address == "Sum.Chain.Linear"
    assert caught.value.node is bad

    parallel = fl.Chain(fl.Parallel(fl.Identity(), fl.Lambda(lambda x: x @ torch.zeros(3, 3))))
    with pytest.raises(fl.ChainError, match=r"Lambda at 'Parallel\.Lambda' failed"):
        parallel(torch.zeros(1, 2))


def test_failure_in_a_chains_own_forward_names_that_chain() -> None:
    model = fl.Chain(fl.Distribute(fl.Identity(), fl.Identity()))
    with pytest.raises(fl.ChainError, match=r"Distribute at 'Distribute' failed: TreeError: .*got 1 inputs for 2"):
        model(torch.zeros(1))


def test_failure_of_a_custom_forward_is_reported() -> None:
    class Gate(fl.Chain):
        def __init__(self) -> None:
            super().__init__(fl.Linear(2, 2), fl.Linear(3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.Linear_1(x) * self.Linear_2(x)

    with pytest.raises(fl.ChainError) as caught:
        fl.Chain(gate=Gate())(torch.zeros(1, 2))
    assert caught.value.address == "gate.Linear_2"


def test_failure_report_of_a_wide_chain_shows_a_window() -> None:
    model = fl.Chain(*[fl.Identity() for _ in range(50)], fl.Linear(3, 3), *[fl.Identity() for _ in range(50)])
    with pytest.raises(fl.ChainError) as caught:
        model(torch.zeros(1, 2))
    text = str(caught.value)
    assert "◀── failed here" in text
    assert len(text.splitlines()) < 25


# -- representation ----------------------------------------------------------------------------


def test_repr_draws_the_tree() -> None:
    model = fl.Chain(
        fl.Linear(2, 4),
        fl.Residual(fl.ReLU(), fl.Linear(4, 4)),
        fl.Residual(fl.ReLU(), fl.Linear(4, 4)),
        torch.nn.GELU(),
        head=fl.Chain(fl.Linear(4, 1)),
    )
    assert repr(model) == "\n".join(
        [
            "(CHAIN) Chain()",
            "    ├── Linear(in_features=2, out_features=4, bias=True)",
            "    ├── (RES) Residual() ×2",
            "    │   ├── ReLU()",
            "    │   └── Linear(in_features=4, out_features=4, bias=True)",
            "    ├── GELU(approximate='none')",
            "    └── head: (CHAIN) Chain()",
            "        └── Linear(in_features=4, out_features=1, bias=True)",
        ]
    )


def test_repr_of_a_plain_torch_leaf_with_children_is_one_line() -> None:
    model = fl.Chain(torch.nn.Sequential(torch.nn.Linear(1, 1)))
    assert repr(model) == "(CHAIN) Chain()\n    └── Sequential()"


# -- context -----------------------------------------------------------------------------------


def test_context_is_shared_with_nested_chains_and_lives_for_one_call() -> None:
    model = fl.Chain(
        fl.SetContext("net", "skip"),
        fl.Chain(fl.Lambda(lambda x: 10 * x), fl.Chain(fl.Sum(fl.Identity(), fl.UseContext("net", "skip")))),
    )
    assert model(torch.ones(1)).item() == 11.0
    assert model.use_context("net") == {}
    reader = fl.Chain(fl.UseContext("net", "skip"))
    with pytest.raises(fl.ChainError) as caught:
        reader(torch.ones(1))
    assert isinstance(caught.value.__cause__, fl.ContextError)
    assert "context 'net' has no value 'skip'" in str(caught.value)


def test_context_layers_need_a_chain() -> None:
    with pytest.raises(fl.TreeError, match="inside a Chain"):
        fl.SetContext("net", "x")(torch.ones(1))


# -- public hooks for extensions: standing in, explicit names, repr ----------------------------


def wrapper_model() -> fl.Chain:
    return fl.Chain(fl.Linear(2, 2), fl.ReLU(), fl.Linear(2, 2), out=fl.Linear(2, 2))


def test_a_stand_in_takes_the_targets_name_and_gives_it_back() -> None:
    model = wrapper_model()
    before, explicit = snapshot(model), model.explicit_names
    target = model.Linear_2
    wrapper = fl.Chain(fl.Tanh())
    wrapper.stand_in_for(target, name="inner", position=1)
    assert names(model) == ["Linear_1", "ReLU", "Linear_2", "out"]
    assert model.Linear_2 is wrapper
    assert wrapper.standing_in_for is target
    assert names(wrapper) == ["Tanh", "inner"]
    assert target.address == "Linear_2.inner"
    assert wrapper.explicit_names == {"inner"}
    check_tree(model)
    assert wrapper.step_aside() is target
    assert snapshot(model) == before
    assert model.explicit_names == explicit
    assert wrapper.parent is None
    assert wrapper.standing_in_for is None
    assert names(wrapper) == ["Tanh"]
    check_tree(model)


def test_a_stand_in_under_an_explicit_name_keeps_it() -> None:
    model = wrapper_model()
    wrapper = fl.Chain()
    wrapper.stand_in_for(model.out, name="inner")
    assert model.out is wrapper
    assert "out" in model.explicit_names
    wrapper.step_aside()
    assert type(model.out).__name__ == "Linear"
    assert "out" in model.explicit_names
    check_tree(model)


def test_siblings_count_a_stand_in_in_its_targets_name_group() -> None:
    model = wrapper_model()
    wrapper = fl.Chain()
    wrapper.stand_in_for(model.Linear_1, name="inner")
    model.insert(0, fl.Linear(2, 2))
    assert names(model) == ["Linear_1", "Linear_2", "ReLU", "Linear_3", "out"]
    assert model.Linear_2 is wrapper
    twin = model.structural_copy()  # the copy's stand-in stays in the group too
    twin.pop(0)
    assert names(twin) == ["Linear_1", "ReLU", "Linear_2", "out"]
    assert twin.Linear_1.standing_in_for is not None
    check_tree(twin)
    wrapper.step_aside()
    assert names(model) == ["Linear_1", "Linear_2", "ReLU", "Linear_3", "out"]
    check_tree(model)


def test_stepping_aside_gives_the_place_to_the_node_held_now() -> None:
    model = wrapper_model()
    wrapper = fl.Chain()
    wrapper.stand_in_for(model.Linear_1, name="inner")
    wrapper.inner = fl.SiLU()  # replaced under its name: another class
    silu = wrapper.step_aside()
    assert type(silu).__name__ == "SiLU"
    assert model.SiLU is silu
    assert names(model) == ["SiLU", "ReLU", "Linear", "out"]  # SiLU named as a SiLU: the Linears renamed
    check_tree(model)


def test_a_stand_in_taken_out_of_its_tree_lets_the_node_go() -> None:
    model = wrapper_model()
    target = model.ReLU
    wrapper = fl.Chain()
    wrapper.stand_in_for(target, name="inner")
    model.remove(wrapper)
    assert wrapper.step_aside() is target
    assert target.parent is None
    assert len(wrapper) == 0
    check_tree(model)


class Refusing(fl.Chain):
    """A Chain that refuses every change of its children, and records what it was asked."""

    def check_surgery(self, removed: Any, added: Any) -> None:
        self.__dict__.setdefault("asked", []).append((removed, added))
        raise fl.TreeError("no change here")


@pytest.mark.parametrize(
    "case",
    [
        "target has no parent",
        "wrapper has a parent",
        "wrapper stands in already",
        "name with a dot",
        "name of an attribute",
        "position out of range",
        "wrapper above the target",
        "parent refuses",
    ],
)
def test_a_refused_stand_in_changes_nothing(case: str) -> None:
    holder = Refusing(fl.Linear(2, 2)) if case == "parent refuses" else fl.Chain(fl.Linear(2, 2))
    model = fl.Chain(holder, fl.ReLU())
    wrapper, target, name, position = fl.Chain(fl.Tanh()), holder.Linear, "inner", 0
    if case == "target has no parent":
        target = fl.Linear(2, 2)
    elif case == "wrapper has a parent":
        fl.Chain(wrapper)
    elif case == "wrapper stands in already":
        wrapper.stand_in_for(model.ReLU, name="inner")
    elif case == "name with a dot":
        name = "in.ner"
    elif case == "name of an attribute":
        name = "walk"
    elif case == "position out of range":
        position = 2
    elif case == "wrapper above the target":
        wrapper = model
    before, inside = snapshot(model), snapshot(wrapper)
    with pytest.raises(fl.TreeError):
        wrapper.stand_in_for(target, name=name, position=position)
    assert snapshot(model) == before
    assert snapshot(wrapper) == inside
    check_tree(model)
    if case == "parent refuses":
        (removed, added) = holder.__dict__["asked"][0]
        assert removed == [("Linear", target)]
        assert added == [(None, wrapper)]
        assert wrapper.standing_in_for is None
        assert wrapper.parent is None


def test_a_refused_step_aside_changes_nothing() -> None:
    holder = fl.Chain(fl.Linear(2, 2))
    model = fl.Chain(holder)
    wrapper = fl.Chain()
    wrapper.stand_in_for(holder.Linear, name="inner")
    holder.__class__ = Refusing  # the parent refuses from now on
    before = snapshot(model)
    with pytest.raises(fl.TreeError, match="no change here"):
        wrapper.step_aside()
    assert snapshot(model) == before
    assert wrapper.standing_in_for is not None
    with pytest.raises(fl.TreeError, match="stands in for no node"):
        fl.Chain().step_aside()


def test_a_stand_in_is_not_asked_about_taking_the_target() -> None:
    model = wrapper_model()
    wrapper = Refusing()
    wrapper.stand_in_for(model.ReLU, name="inner")
    assert "asked" not in wrapper.__dict__
    assert wrapper.step_aside() is model.ReLU


def test_child_properties_may_name_children() -> None:
    class Holder(fl.Chain):
        child_properties = frozenset({"inner"})

        @property
        def inner(self) -> torch.nn.Module:
            return self["inner"]

    holder = Holder()
    holder.append(fl.ReLU(), name="inner")
    assert type(holder.inner).__name__ == "ReLU"
    with pytest.raises(fl.TreeError, match="would hide the Chain attribute"):
        holder.append(fl.ReLU(), name="walk")
    with pytest.raises(fl.TreeError, match="would hide the Chain attribute"):
        fl.Chain().append(fl.ReLU(), name="standing_in_for")


def test_explicit_names_follow_surgery() -> None:
    model = wrapper_model()
    assert model.explicit_names == {"out"}
    model.append(fl.ReLU(), name="act")
    model.pop(0)
    assert model.explicit_names == {"out", "act"}
    del model.out
    assert model.explicit_names == {"act"}
    assert model.structural_copy().explicit_names == {"act"}


def test_repr_shows_a_subclass_tag_and_child_notes() -> None:
    class Tagged(fl.Chain):
        repr_tag = "MINE"

        def child_note(self, name: str) -> str | None:
            return f"<- {name}" if name == "ReLU" else None

    assert str(Tagged(fl.ReLU(), fl.Tanh())).splitlines() == [
        "(MINE) Tagged()",
        "    ├── ReLU()  <- ReLU",
        "    └── Tanh()",
    ]


def test_context_of_is_the_trees_own_store() -> None:
    from fluxion.tree import context_of

    model = fl.Chain(fl.Chain(fl.UseContext("run", "value")))
    context_of(model.Chain.UseContext)["run"] = {"value": torch.tensor(2.0)}
    assert model().item() == 2.0
    assert context_of(model) == {}  # cleared when the root's call returns
    assert context_of(fl.ReLU()) == {}


@pytest.mark.parametrize(
    "change",
    [
        lambda wrapper: wrapper.replace("inner", fl.SiLU(), name="renamed"),
        lambda wrapper: wrapper.remove("inner"),
        lambda wrapper: wrapper.pop(1),
        lambda wrapper: delattr(wrapper, "inner"),
    ],
)
def test_the_node_a_stand_in_holds_is_replaced_under_its_name_only(change: Any) -> None:
    model = fl.Chain(fl.ReLU(), fl.Tanh())
    relu = model.ReLU
    wrapper = fl.Chain(fl.Sigmoid())
    wrapper.stand_in_for(relu, name="inner", position=1)
    with pytest.raises(fl.TreeError, match="'inner' is the node it stands in for; it can be replaced under that name"):
        change(wrapper)
    assert wrapper.standing_in_for is relu
    wrapper.replace("inner", fl.GeLU())  # under its name: allowed, and given back in its place
    assert isinstance(wrapper.step_aside(), fl.GeLU)
    assert [type(child).__name__ for child in model] == ["GeLU", "Tanh"]


@pytest.mark.parametrize("call", [lambda chain: chain.insert(True, fl.ReLU()), lambda chain: chain.pop(False)])
def test_a_bool_is_no_position(call: Any) -> None:
    chain = fl.Chain(fl.ReLU(), fl.Tanh())
    with pytest.raises(fl.ChildIndexError, match="takes an int index, got bool"):
        call(chain)
    assert len(chain) == 2


def test_walk_takes_refiners_two_argument_predicates() -> None:
    inner = fl.Chain(fl.Linear(2, 2), fl.ReLU())
    model = fl.Chain(fl.Linear(2, 2), inner)
    found = [(module.address, parent is inner) for module, parent in model.walk(lambda m, p: p is inner)]
    assert found == [("Chain.Linear", True), ("Chain.ReLU", True)]
    # a function that can take the parent gets it; one of the module alone, and builtins, get the module
    assert [m.address for m, _ in model.walk(lambda m, parent=None: parent is inner)] == ["Chain.Linear", "Chain.ReLU"]
    assert [m.address for m, _ in model.walk(lambda *given: given[1] is inner)] == ["Chain.Linear", "Chain.ReLU"]
    assert len(list(model.walk(callable, recurse=True))) == 4
    with pytest.raises(fl.TreeError, match=r"called with \(module\) or \(module, parent\); .* needs 3 arguments"):
        list(model.walk(lambda m, p, q: True))
    with pytest.raises(fl.TreeError, match=r"called with \(module\) or \(module, parent\); .* takes no argument"):
        list(model.walk(lambda: True))
    with pytest.raises(fl.TreeError, match=r"walk takes a type, not a module: got a ReLU"):
        list(model.walk(fl.ReLU()))


def test_a_mistyped_attribute_path_names_the_chain_and_its_children() -> None:
    model = fl.Chain(layer2=fl.Chain(fl.Chain(fl.Linear(2, 2)), fl.Chain(fl.ReLU())))
    with pytest.raises(fl.ChildAttributeError) as caught:
        model.layer2.Chain_1.Chain  # noqa: B018 (the access is the test)
    assert str(caught.value) == "Chain at 'layer2.Chain_1' has no child or attribute 'Chain'; its children are: Linear"
    assert isinstance(caught.value, AttributeError)
    assert isinstance(caught.value, fl.ChildNotFoundError)
    with pytest.raises(AttributeError, match=r"did you mean 'layer2'\?"):
        model.layer3  # noqa: B018
    # torch's own probes and defaults behave as on any module
    assert not hasattr(model, "_not_there")
    assert getattr(model, "missing", None) is None
    assert model.layer2.Chain_2.ReLU is model["layer2.Chain_2.ReLU"]


def test_attributes_read_before_the_chain_is_set_up_are_attribute_errors() -> None:
    class Early(fl.Chain):
        def __init__(self) -> None:
            self.probed = hasattr(self, "anything")  # before Chain.__init__: no children table yet
            super().__init__(fl.ReLU())

    assert Early().probed is False
