"""Every way of changing a tree keeps its invariants, or is refused with a TreeError and changes nothing.

A rule-based state machine keeps a model of the tree (each Chain's children, in order, and the
explicit names given) and drives random surgery through every door: the surgery methods, item and
attribute assignment and deletion, ``add_module`` and torch's ``register_*``, with classes whose
names collide with automatic names (``Block``, ``Block_1``, ``Block_2``...).
"""

import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import fluxion.layers as fl
from tests.tree.tree_checks import check_tree, leaf_class, snapshot, tree_nodes

# Leaf classes named like automatic names, and Chain classes sharing those names.
Block, Block_1, Block_2, Block_3 = (leaf_class(name) for name in ("Block", "Block_1", "Block_2", "Block_3"))
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


def names(chain: fl.Chain) -> list[str]:
    return [name for name, _ in chain.named_children()]


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
