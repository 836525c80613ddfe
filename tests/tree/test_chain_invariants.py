"""Every way of changing a tree keeps its invariants, or is refused with a TreeError and changes nothing.

A rule-based state machine keeps a model of the tree (each Chain's children, in order, and the
explicit names given) and drives random surgery through every door: the surgery methods, item and
attribute assignment and deletion, ``add_module`` and torch's ``register_*``, with classes whose
names collide with automatic names (``Block``, ``Block_1``, ``Block_2``...).
"""

import copy
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from torch.nn.utils import parametrize

import fluxion.layers as fl
from fluxion import shapes, spec, weights
from fluxion.errors import SpecError
from tests.tree.tree_checks import check_tree, snapshot, tree_nodes


def _leaf_class(name: str) -> type[fl.Module]:
    def forward(self: fl.Module, x: torch.Tensor) -> torch.Tensor:
        return x

    return type(name, (fl.Module,), {"forward": forward})


# Leaf classes named like automatic names, and Chain classes sharing those names.
Block, Block_1, Block_2, Block_3 = (_leaf_class(name) for name in ("Block", "Block_1", "Block_2", "Block_3"))
BlockChain = type("Block", (fl.Chain,), {})
Block2Chain = type("Block_2", (fl.Chain,), {})

MAKERS: list[Callable[[], torch.nn.Module]] = [Block, Block_1, Block_2, Block_3, BlockChain, Block2Chain, fl.Chain]
NAMES = ["Block", "Block_1", "Block_2", "Block_3", "Block_2_1", "x", "y", "a.b", "", "insert", "parent"]
VALUES: list[Any] = [None, 3, "text", torch.zeros(1), torch.nn.Parameter(torch.zeros(1))]


class TreeSurgery(RuleBasedStateMachine):
    """The tree, and a model of it: children in order per Chain, and each node's explicit name."""

    def __init__(self) -> None:
        super().__init__()
        self.root = fl.Chain()
        self.children: dict[int, list[torch.nn.Module]] = {id(self.root): []}  # id(chain) -> its children
        self.chains: dict[int, fl.Chain] = {id(self.root): self.root}  # every Chain ever made
        self.explicit: dict[int, str] = {}  # id(node) -> its explicit name, while it sits in a Chain
        self.detached: dict[int, torch.nn.Module] = {}  # nodes taken out of their Chain

    # -- drawing -------------------------------------------------------------------------------

    def attached_chains(self) -> list[fl.Chain]:
        return [node for _, node, _ in tree_nodes(self.root) if isinstance(node, fl.Chain)]

    def new_module(self, data: st.DataObject) -> torch.nn.Module:
        """A fresh node, or one taken out earlier (which must be free to go anywhere)."""
        if self.detached and data.draw(st.booleans(), label="reuse a detached node"):
            return data.draw(st.sampled_from(list(self.detached.values())), label="detached node")
        module = data.draw(st.sampled_from(MAKERS), label="class")()
        if isinstance(module, fl.Chain):
            self.chains[id(module)] = module
            self.children[id(module)] = []
        return module

    # -- the model -----------------------------------------------------------------------------

    def placed(self, chain: fl.Chain, index: int, module: torch.nn.Module, name: str | None) -> None:
        self.children[id(chain)].insert(index, module)
        self.detached.pop(id(module), None)
        if name is None:
            self.explicit.pop(id(module), None)
        else:
            self.explicit[id(module)] = name

    def taken_out(self, chain: fl.Chain, module: torch.nn.Module) -> int:
        index = next(i for i, child in enumerate(self.children[id(chain)]) if child is module)
        del self.children[id(chain)][index]
        self.explicit.pop(id(module), None)
        self.detached[id(module)] = module
        return index

    def attempt(self, action: Callable[[], object], on_success: Callable[[], None]) -> None:
        """Run ``action``: it works and the model follows, or it raises a TreeError and changes nothing."""
        before = snapshot(self.root)
        try:
            action()
        except fl.TreeError:
            assert snapshot(self.root) == before
            return
        on_success()

    # -- rules ---------------------------------------------------------------------------------

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        for _ in range(data.draw(st.integers(0, 4), label="first children")):
            module = self.new_module(data)
            self.root.append(module)
            self.placed(self.root, len(self.children[id(self.root)]), module, None)

    @rule(data=st.data())
    def insert(self, data: st.DataObject) -> None:
        chain = data.draw(st.sampled_from(self.attached_chains()), label="chain")
        size = len(self.children[id(chain)])
        index = data.draw(st.integers(-size - 1, size + 1), label="index")
        module = self.new_module(data)
        name = data.draw(st.none() | st.sampled_from(NAMES), label="name")
        position = index + size if index < 0 else index
        self.attempt(lambda: chain.insert(index, module, name=name), lambda: self.placed(chain, position, module, name))

    @rule(data=st.data())
    def append(self, data: st.DataObject) -> None:
        chain = data.draw(st.sampled_from(self.attached_chains()), label="chain")
        module = self.new_module(data)
        name = data.draw(st.none() | st.sampled_from(NAMES), label="name")
        end = len(self.children[id(chain)])
        self.attempt(lambda: chain.append(module, name=name), lambda: self.placed(chain, end, module, name))

    @rule(data=st.data())
    def pop(self, data: st.DataObject) -> None:
        chain = data.draw(st.sampled_from(self.attached_chains()), label="chain")
        children = self.children[id(chain)]
        if not children:
            with pytest.raises(fl.ChildIndexError):
                chain.pop()
            return
        index = data.draw(st.integers(-len(children), len(children) - 1), label="index")
        popped = chain.pop(index)
        assert popped is children[index]
        self.taken_out(chain, popped)

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        nodes = [(node, parent) for _, node, parent in tree_nodes(self.root) if parent is not None]
        if not nodes:
            return
        node, parent = data.draw(st.sampled_from(nodes), label="node")
        how = data.draw(st.sampled_from(["module", "address", "del attribute", "del item"]), label="how")
        if how == "module":
            self.root.remove(node)
        elif how == "address":
            self.root.remove(fl.address_of(node))
        elif how == "del attribute":
            delattr(parent, parent.name_of(node))
        else:
            del parent[parent.name_of(node)]
        self.taken_out(parent, node)

    @rule(data=st.data())
    def replace(self, data: st.DataObject) -> None:
        nodes = [(node, parent) for _, node, parent in tree_nodes(self.root) if parent is not None]
        if not nodes:
            return
        old, parent = data.draw(st.sampled_from(nodes), label="old")
        new = self.new_module(data)
        name = data.draw(st.none() | st.sampled_from(NAMES), label="name")
        if name is None:
            name = self.explicit.get(id(old))  # the new node keeps an explicit name

        def follow() -> None:
            index = self.taken_out(parent, old)
            self.placed(parent, index, new, name)

        if new is old:
            return
        self.attempt(lambda: self.root.replace(old, new, name=name), follow)

    @rule(data=st.data())
    def assign_a_module(self, data: st.DataObject) -> None:
        """``chain.name = module`` (or ``add_module``): replaces the child of that name, or appends."""
        chain = data.draw(st.sampled_from(self.attached_chains()), label="chain")
        current = dict(chain.named_children())
        name = data.draw(st.sampled_from([*NAMES, *current]), label="name")
        module = self.new_module(data)
        use_add_module = data.draw(st.booleans(), label="add_module")

        def follow() -> None:
            old = current.get(name)
            if old is None:
                self.placed(chain, len(self.children[id(chain)]), module, name)
            elif old is not module:
                index = self.taken_out(chain, old)
                self.placed(chain, index, module, name)

        def act() -> None:
            if use_add_module:
                chain.add_module(name, module)
            else:
                setattr(chain, name, module)

        self.attempt(act, follow)

    @rule(data=st.data())
    def assign_something_else_over_a_child(self, data: st.DataObject) -> None:
        """None, a number, a tensor or a parameter under a child's name: always refused."""
        chain = data.draw(st.sampled_from(self.attached_chains()), label="chain")
        current = list(dict(chain.named_children()))
        if not current:
            return
        name = data.draw(st.sampled_from(current), label="child name")
        value = data.draw(st.sampled_from(VALUES), label="value")
        how = data.draw(
            st.sampled_from(["setattr", "add_module", "register_buffer", "register_parameter"]), label="how"
        )
        before = snapshot(self.root)

        def act() -> None:
            if how == "setattr":
                setattr(chain, name, value)
            elif how == "add_module":
                chain.add_module(name, value)
            elif how == "register_buffer" and not isinstance(value, torch.nn.Parameter):
                chain.register_buffer(name, value)
            else:
                chain.register_parameter(name, value if isinstance(value, torch.nn.Parameter) else None)

        with pytest.raises(fl.TreeError):
            act()
        assert snapshot(self.root) == before

    @precondition(lambda self: any(isinstance(node, fl.Chain) for node in self.detached.values()))
    @rule(data=st.data())
    def surgery_on_a_detached_subtree(self, data: st.DataObject) -> None:
        """A Chain taken out of the tree is a tree of its own: append to it, then pop from it."""
        detached = [node for node in self.detached.values() if isinstance(node, fl.Chain)]
        chain = data.draw(st.sampled_from(detached), label="detached chain")
        module = self.new_module(data)
        if fl.parent_of(module) is not None or module is chain:
            return
        try:
            chain.append(module)
        except fl.TreeError:  # ``module`` is an ancestor of ``chain`` (a detached subtree holding it)
            return
        self.placed(chain, len(self.children[id(chain)]), module, None)
        self.taken_out(chain, chain.pop())

    @rule(data=st.data())
    def move_a_node_that_has_a_parent(self, data: st.DataObject) -> None:
        """A node has one parent at most: putting it somewhere else while it has one is refused."""
        nodes = [node for _, node, parent in tree_nodes(self.root) if parent is not None]
        if not nodes:
            return
        node = data.draw(st.sampled_from(nodes), label="node")
        chain = data.draw(st.sampled_from(self.attached_chains()), label="chain")
        before = snapshot(self.root)
        with pytest.raises(fl.TreeError):
            chain.append(node)
        assert snapshot(self.root) == before

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def no_child_is_lost_and_parents_agree(self) -> None:
        for chain_id, expected in self.children.items():
            chain = self.chains[chain_id]
            actual = chain.children_list()
            assert [id(child) for child in actual] == [id(child) for child in expected]
            for child in actual:
                assert fl.parent_of(child) is chain
        for node in self.detached.values():
            assert fl.parent_of(node) is None

    @invariant()
    def names_are_unique_dotless_and_explicit_names_stay(self) -> None:
        check_tree(self.root)  # also: names follow the naming rule, and are unique and dotless
        for chain_id in self.children:
            chain = self.chains[chain_id]
            names = [name for name, _ in chain.named_children()]
            assert len(set(names)) == len(names)
            for name, child in chain.named_children():
                assert self.explicit.get(id(child), name) == name

    @invariant()
    def every_node_appears_once(self) -> None:
        counts = Counter(id(node) for _, node, _ in tree_nodes(self.root))
        assert max(counts.values()) == 1

    @invariant()
    def the_tree_copies(self) -> None:
        twin = self.root.structural_copy()
        check_tree(twin)
        assert [address for address, _, _ in tree_nodes(twin)] == [address for address, _, _ in tree_nodes(self.root)]


TreeSurgery.TestCase.settings = settings(
    max_examples=60, stateful_step_count=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_tree_surgery_keeps_the_invariants = TreeSurgery.TestCase


# -- automatic names never equal another child's name -------------------------------------------


def names(chain: fl.Chain) -> list[str]:
    return [name for name, _ in chain.named_children()]


def test_a_class_named_like_a_suffix_keeps_its_name_and_the_repeated_class_skips_it() -> None:
    shared = Block()
    model = fl.Chain(Block(), shared, Block_2())
    assert names(model) == ["Block_1", "Block_3", "Block_2"]
    assert len(model) == 3
    assert shared.parent is model
    assert model.Block_3 is shared
    check_tree(model)


def test_appending_a_repeat_keeps_a_class_named_like_its_suffix() -> None:
    model = fl.Chain(Block(), Block_2())
    model.append(Block())
    assert names(model) == ["Block_1", "Block_2", "Block_3"]
    assert [type(child).__name__ for child in model] == ["Block", "Block_2", "Block"]
    model.pop(0)
    assert names(model) == ["Block_2", "Block"]  # Block has one member again: its plain name
    check_tree(model)


def test_a_suffix_is_freed_when_the_class_holding_it_repeats() -> None:
    model = fl.Chain(Block(), Block(), Block_2())
    model.append(Block_2())  # Block_2 now repeats: Block_2_1, Block_2_2, and Block_2 is free again
    assert names(model) == ["Block_1", "Block_2", "Block_2_1", "Block_2_2"]
    check_tree(model)


def test_explicit_names_never_change_and_automatic_names_skip_them() -> None:
    model = fl.Chain(Block(), Block(), Block_3=Block_1())
    assert names(model) == ["Block_1", "Block_2", "Block_3"]
    model.insert(0, Block())
    assert names(model) == ["Block_1", "Block_2", "Block_4", "Block_3"]
    check_tree(model)


def test_models_without_colliding_classes_keep_their_usual_names() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.ReLU(), fl.Linear(2, 2), out=fl.Linear(2, 2))
    assert names(model) == ["Linear_1", "ReLU", "Linear_2", "out"]


def test_a_child_whose_class_changes_after_naming_stays_in_its_group() -> None:
    class Double(torch.nn.Module):
        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            return 2 * weight

    model = fl.Chain(fl.Linear(2, 2), fl.ReLU(), fl.Linear(2, 2))
    parametrize.register_parametrization(model.Linear_1, "weight", Double())  # swaps in a subclass
    model.pop(0)
    assert names(model) == ["ReLU", "Linear"]
    model.append(fl.Linear(2, 2))
    assert names(model) == ["ReLU", "Linear_1", "Linear_2"]


# -- plain attribute use ----------------------------------------------------------------------------


def test_setting_a_child_to_none_is_refused_and_the_child_stays_usable() -> None:
    model = fl.Chain(fl.Linear(2, 2), act=fl.ReLU())
    act = model.act
    with pytest.raises(fl.TreeError, match=r"cannot set child 'act' \(ReLU\) to None.*del chain.act"):
        model.act = None
    assert model.act is act
    assert act.parent is model
    model.structural_copy()
    del model.act
    assert act.parent is None
    fl.Chain(act)  # free to go elsewhere


@pytest.mark.parametrize("value", [3, "text", torch.zeros(1), torch.nn.Parameter(torch.zeros(1))])
def test_assigning_a_non_module_over_a_child_is_refused(value: object) -> None:
    model = fl.Chain(fl.Linear(2, 2), act=fl.ReLU())
    before = snapshot(model)
    with pytest.raises(fl.TreeError, match="'act': that name is a child of this Chain"):
        model.act = value
    assert snapshot(model) == before
    check_tree(model)


def test_tensors_and_children_never_share_a_name() -> None:
    model = fl.Chain(act=fl.ReLU())
    with pytest.raises(fl.TreeError, match="child of this Chain"):
        model.register_buffer("act", torch.zeros(1))
    with pytest.raises(fl.TreeError, match="child of this Chain"):
        model.register_parameter("act", torch.nn.Parameter(torch.zeros(1)))
    model.register_buffer("stat", torch.zeros(1))
    with pytest.raises(fl.TreeError, match="name of a tensor this Chain holds"):
        model.stat = fl.ReLU()
    check_tree(model)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.add_module(3, fl.ReLU()), "child names are strings, got int 3"),
        (lambda m: m.add_module("x", 3), "add_module takes a torch module, got int 3"),
        (lambda m: m.register_module("x", None), "cannot hold None"),
    ],
)
def test_add_module_with_bad_arguments_is_a_tree_error(call: Callable[[fl.Chain], object], message: str) -> None:
    model = fl.Chain(fl.ReLU())
    with pytest.raises(fl.TreeError, match=message):
        call(model)
    assert names(model) == ["ReLU"]


def test_set_submodule_goes_through_surgery() -> None:
    model = fl.Chain(block=fl.Chain(fl.ReLU()))
    old = model.block.ReLU
    model.set_submodule("block.ReLU", fl.Tanh())
    assert isinstance(model.block.ReLU, fl.Tanh)
    assert old.parent is None
    check_tree(model)


def test_a_shallow_copy_is_a_structural_copy() -> None:
    model = fl.Chain(block=fl.Chain(fl.Linear(2, 2)))
    twin = copy.copy(model)
    assert twin.block is not model.block
    assert model.block.parent is model
    assert twin.block.parent is twin
    assert twin.block.Linear.weight is model.block.Linear.weight
    check_tree(model)
    check_tree(twin)


# -- bad arguments are TreeErrors -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda m: m.insert("0", fl.ReLU()), fl.ChildIndexError, "insert takes an int index, got str '0'"),
        (lambda m: m.pop(1.0), fl.ChildIndexError, "pop takes an int index, got float 1.0"),
        (lambda m: m[1.0], fl.ChildNotFoundError, "an int index, a str name or address, or a slice; got float 1.0"),
        (lambda m: m.remove(5), fl.ChildNotFoundError, "a module of this tree, or its name or address; got int 5"),
        (lambda m: m.replace(5, fl.ReLU()), fl.ChildNotFoundError, "got int 5"),
        (lambda m: m.replace("ReLU", 5), fl.TreeError, "replace puts a torch module in place of a node, got int 5"),
        (lambda m: m.find_parent(5), fl.TreeError, "find_parent takes a module, got int 5"),
        (lambda m: m.walk(5), fl.TreeError, "walk takes a type, a tuple of types, a function of the module or None"),
        (lambda m: m.walk((fl.ReLU, 5)), fl.TreeError, r"walk takes .* got tuple"),
        (lambda m: m.layers("ReLU"), fl.TreeError, "layers takes a layer type .* got str 'ReLU'"),
        (lambda m: m.find(5), fl.TreeError, "find takes a layer type"),
        (lambda m: m.ensure_find(5), fl.TreeError, "ensure_find takes a layer type"),
        (lambda m: m.insert_before_type(5, fl.ReLU()), fl.TreeError, "insert_before_type takes a layer type"),
        (lambda m: m.insert_after_type("x", fl.ReLU()), fl.TreeError, "insert_after_type takes a layer type"),
        (lambda m: m.__setitem__(1.0, fl.ReLU()), fl.ChildNotFoundError, "got float 1.0"),
        (lambda m: m.__delitem__(None), fl.ChildNotFoundError, "got NoneType None"),
    ],
)
def test_bad_arguments_are_tree_errors_saying_what_was_given(
    call: Callable[[fl.Chain], object], error: type[fl.TreeError], message: str
) -> None:
    model = fl.Chain(fl.ReLU(), fl.Linear(2, 2))
    before = snapshot(model)
    with pytest.raises(error, match=message) as raised:
        call(model)
    assert raised.value.__cause__ is None  # one clear error, not a bare one from inside
    assert snapshot(model) == before


def test_indexes_with_index_still_work() -> None:
    model = fl.Chain(fl.ReLU(), fl.Tanh())
    assert isinstance(model[torch.tensor(1)], fl.Tanh)  # anything with __index__
    model.insert(torch.tensor(0), fl.SiLU())
    assert names(model) == ["SiLU", "ReLU", "Tanh"]


# -- deep trees -------------------------------------------------------------------------------------

DEEP = 1200  # deeper than Python's default recursion limit (1000): only walks without recursion pass


def deep_tree(depth: int) -> fl.Chain:
    node: torch.nn.Module = fl.Linear(2, 2)
    for _ in range(depth):
        node = fl.Chain(node)
    assert isinstance(node, fl.Chain)
    return node


@pytest.fixture(scope="module")
def deep() -> fl.Chain:
    return deep_tree(DEEP)


def deepest_address(depth: int) -> str:
    return ".".join(["Chain"] * (depth - 1) + ["Linear"])


def test_default_recursion_limit() -> None:
    assert sys.getrecursionlimit() <= DEEP  # what the tests below rely on


def test_repr_of_a_deep_tree(deep: fl.Chain) -> None:
    lines = repr(deep).splitlines()
    assert len(lines) == DEEP + 1
    assert lines[-1].endswith("└── Linear(in_features=2, out_features=2, bias=True)")


def test_named_modules_parameters_and_state_dict_of_a_deep_tree(deep: fl.Chain) -> None:
    assert len(list(deep.named_modules())) == DEEP + 1
    assert len(list(deep.parameters())) == 2
    assert list(deep.state_dict()) == [f"{deepest_address(DEEP)}.weight", f"{deepest_address(DEEP)}.bias"]


def test_structural_copy_train_and_to_on_a_deep_tree(deep: fl.Chain) -> None:
    twin = deep.structural_copy()
    assert list(twin.state_dict()) == list(deep.state_dict())
    key = f"{deepest_address(DEEP)}.weight"
    assert twin.state_dict(keep_vars=True)[key] is deep.state_dict(keep_vars=True)[key]
    tree = deep_tree(DEEP)  # not the copy: it shares the parameters, which ``to`` would convert
    tree.eval()
    assert not any(module.training for module in tree.modules())
    tree.to(torch.float64)
    assert all(parameter.dtype == torch.float64 for parameter in tree.parameters())


def test_weights_save_and_load_of_a_deep_tree(deep: fl.Chain, tmp_path: Any) -> None:
    path = tmp_path / "deep.safetensors"
    weights.save(deep, path)
    twin = deep_tree(DEEP)
    weights.load(twin, path)
    torch.testing.assert_close(twin.state_dict(), deep.state_dict())


def test_spec_dump_of_a_tree_as_deep_as_a_spec_may_nest_loads_back() -> None:
    tree = deep_tree(90)  # two levels of JSON (a node, its children) a level of the tree
    document = spec.dump(tree)
    for _ in range(90):
        (document,) = document["children"]
    assert document == {"type": "Linear", "in_features": 2, "out_features": 2}
    assert list(spec.loads(spec.dump(tree)).state_dict()) == list(tree.state_dict())


def test_spec_dump_and_save_of_a_deeper_tree_are_one_spec_error(deep: fl.Chain, tmp_path: Any) -> None:
    for write in (lambda: spec.dump(deep), lambda: spec.save(deep, tmp_path / "deep.json")):
        with pytest.raises(SpecError, match="cannot dump this tree: its spec would nest more than 200 levels"):
            write()
    assert not list(tmp_path.iterdir())


def test_a_forward_call_too_deep_for_the_recursion_limit_is_one_tree_error(deep: fl.Chain) -> None:
    with pytest.raises(fl.TreeError, match=rf"forward call ran out of .* tree {DEEP} levels deep") as raised:
        deep(torch.zeros(1, 2))
    assert "sys.setrecursionlimit(" in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_shape_inference_too_deep_for_the_recursion_limit_is_one_tree_error(deep: fl.Chain) -> None:
    with pytest.raises(fl.TreeError, match=rf"shape inference ran out of .* tree {DEEP} levels deep"):
        shapes.infer(deep, ("B", 2))


def test_the_suggested_recursion_limit_is_enough() -> None:
    tree = deep_tree(400)
    with pytest.raises(fl.TreeError) as raised:
        tree(torch.zeros(1, 2))
    suggested = int(str(raised.value).split("sys.setrecursionlimit(")[1].split(")")[0])
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(suggested)
    try:
        assert tree(torch.zeros(1, 2)).shape == (1, 2)
        assert shapes.infer(tree, ("B", 2)).output == shapes.infer(fl.Linear(2, 2), ("B", 2)).output
    finally:
        sys.setrecursionlimit(limit)


def test_a_recursion_error_of_a_shallow_tree_is_described_as_a_failure() -> None:
    def forever(x: torch.Tensor) -> torch.Tensor:
        return forever(x)

    model = fl.Chain(fl.Chain(fl.Lambda(forever)))
    with pytest.raises(fl.ChainError, match=r"Lambda at 'Chain\.Lambda' failed: RecursionError"):
        model(torch.zeros(1))


# -- state_dict walks without recursion, and does what torch's does --------------------------------


def mirror(chain: fl.Chain) -> torch.nn.Module:
    """A plain torch tree with the same names and the same leaves (torch's own, recursive state_dict)."""
    plain = torch.nn.Module()
    for name, child in chain.named_children():
        plain.add_module(name, mirror(child) if isinstance(child, fl.Chain) else child)
    return plain


def test_state_dict_matches_torchs_keys_metadata_and_hooks() -> None:
    model = fl.Chain(fl.Linear(2, 2), block=fl.Chain(fl.LayerNorm(2), fl.Chain(fl.Linear(2, 1))))
    model.block.register_buffer("count", torch.ones(1))
    plain = mirror(model)
    plain.block.register_buffer("count", model.block.count)
    calls: list[str] = []

    def hooks_on(root: torch.nn.Module, tag: str) -> None:
        for name, module in root.named_modules():
            if not isinstance(module, fl.Chain) and type(module) is not torch.nn.Module:
                continue  # the leaves are shared: hook the inner nodes, one tree's and the other's
            module.register_state_dict_pre_hook(lambda *_, name=name: calls.append(f"{tag} pre {name}"))
            module.register_state_dict_post_hook(lambda *_, name=name: calls.append(f"{tag} post {name}"))

    hooks_on(model, "fluxion")
    hooks_on(plain, "torch")
    ours, theirs = model.state_dict(prefix="top.", keep_vars=True), plain.state_dict(prefix="top.", keep_vars=True)
    assert list(ours) == list(theirs)
    assert all(ours[key] is theirs[key] for key in ours)
    assert ours._metadata == theirs._metadata  # pyright: ignore[reportAttributeAccessIssue]
    assert [call.removeprefix("fluxion ") for call in calls if call.startswith("fluxion")] == [
        call.removeprefix("torch ") for call in calls if call.startswith("torch")
    ]


def test_a_private_state_dict_hook_may_return_a_new_dict_at_the_root() -> None:
    model = fl.Chain(block=fl.Chain(fl.Linear(2, 2)))
    model._register_state_dict_hook(lambda module, state, prefix, meta: {"only": torch.zeros(1)})  # pyright: ignore[reportPrivateUsage]
    model.block._register_state_dict_hook(lambda module, state, prefix, meta: {"ignored": torch.zeros(1)})  # pyright: ignore[reportPrivateUsage]
    assert list(model.state_dict()) == ["only"]


def test_named_modules_matches_torch_with_shared_modules_and_plain_containers() -> None:
    shared = torch.nn.Linear(2, 2)
    model = fl.Chain(fl.Chain(fl.ReLU()), torch.nn.Sequential(shared, fl.Chain(fl.ReLU()), shared), other=fl.Tanh())
    plain = mirror(model)
    for remove_duplicate in (True, False):
        ours = [
            (name, id(module)) for name, module in model.named_modules(prefix="p", remove_duplicate=remove_duplicate)
        ]
        theirs = [
            (name, id(module)) for name, module in plain.named_modules(prefix="p", remove_duplicate=remove_duplicate)
        ]
        assert [name for name, _ in ours] == [name for name, _ in theirs]


def test_a_state_dict_loads_back_with_torch_load_weights_only(tmp_path: Any) -> None:
    model = fl.Chain(block=fl.Chain(fl.Linear(2, 2)))
    torch.save(model.state_dict(), tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=True)
    assert list(loaded) == ["block.Linear.weight", "block.Linear.bias"]
    assert loaded._metadata == model.state_dict()._metadata  # pyright: ignore[reportAttributeAccessIssue]


class Overriding(fl.Chain):
    """A Chain subclass that overrides torch's walks and calls the Chain's own (as layers do)."""

    calls: list[str]

    def named_modules(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("named_modules")
        return super().named_modules(*args, **kwargs)

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("state_dict")
        return super().state_dict(*args, **kwargs)

    def train(self, mode: bool = True) -> "Overriding":
        self.calls.append("train")
        return super().train(mode)

    def _apply(self, fn: Any, recurse: bool = True) -> "Overriding":
        self.calls.append("_apply")
        return super()._apply(fn, recurse)


def test_subclasses_overriding_the_walks_are_called_once_each_and_may_call_the_chains() -> None:
    inner = Overriding(fl.Linear(2, 2), fl.Dropout(0.5))
    inner.__dict__["calls"] = []
    model = fl.Chain(fl.Chain(inner), fl.ReLU())
    expected = ["", "Chain", "Chain.Overriding", "Chain.Overriding.Linear", "Chain.Overriding.Dropout", "ReLU"]
    assert [name for name, _ in model.named_modules()] == expected
    assert list(model.state_dict()) == ["Chain.Overriding.Linear.weight", "Chain.Overriding.Linear.bias"]
    model.eval()
    assert not inner.Dropout.training
    model.to(torch.float64)
    assert inner.Linear.weight.dtype == torch.float64
    assert inner.calls == ["named_modules", "state_dict", "train", "_apply"]


def test_a_graphs_nodes_take_the_same_checks() -> None:
    graph = fl.Graph(
        {"fc": fl.Linear(2, 2), "act": fl.ReLU(), "add": fl.Add()}, edges=["input -> fc -> act -> add", "input -> add"]
    )
    before = snapshot(graph)
    for value in (None, 3, torch.zeros(1)):
        with pytest.raises(fl.TreeError, match="'act'"):
            graph.act = value
    with pytest.raises(fl.GraphError, match="node 'add' takes 2 inputs"):
        del graph.add
    assert snapshot(graph) == before
    graph.act = fl.Tanh()
    assert graph(torch.zeros(1, 2)).shape == (1, 2)
    check_tree(graph)
