"""Property-based tests: adapters injected and ejected in any order leave a random model exactly as it was."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, cast

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion.adapters import Adapter, AdapterError, LinearLora, Lora, base_address, base_nodes, lora, select
from tests.tree.test_chain_properties import LEAVES, NAMES, trees
from tests.tree.tree_checks import check_tree, snapshot, tree_nodes

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SLOT = "target"


def make_input() -> torch.Tensor:
    return torch.randn(2, 3, generator=torch.Generator().manual_seed(0))


class TargetLast(Adapter):
    """An adapter that runs its own children before its target."""

    target_position: ClassVar[int] = 1


def random_init(down: torch.Tensor, up: torch.Tensor) -> None:
    """A LoRA init that makes the update non-zero: the LoRA changes outputs."""
    torch.nn.init.normal_(down)
    torch.nn.init.normal_(up)


# name -> (build an adapter on a target, whether it can change outputs)
ADAPTERS: dict[str, tuple[Callable[[torch.nn.Module], Adapter], bool]] = {
    "bare": (lambda target: Adapter(target), False),
    "identity": (lambda target: Adapter(target, fl.Identity()), False),
    "identity first": (lambda target: TargetLast(target, fl.Identity()), False),
    "named identity": (lambda target: Adapter(target, extra=fl.Identity()), False),
    "negate": (lambda target: Adapter(target, fl.Lambda(torch.neg)), True),
}


# -- looking at a tree --------------------------------------------------------------------------


def addresses(root: fl.Chain) -> dict[int, str]:
    """id(node) -> address, for every node of the tree."""
    return {id(node): address for address, node, _ in tree_nodes(root)}


def subtree_ids(node: torch.nn.Module) -> set[int]:
    return {id(inner) for _, inner, _ in tree_nodes(node)} if isinstance(node, fl.Chain) else {id(node)}


def under(address: str, prefix: str) -> bool:
    """Whether ``address`` is ``prefix`` or inside it (everything is inside the root, ``""``)."""
    return not prefix or address == prefix or address.startswith(f"{prefix}.")


def join(*parts: str) -> str:
    return ".".join(part for part in parts if part)


def rebase(address: str, old: str, new: str) -> str:
    """``address`` (inside ``old``) moved to the same place inside ``new``."""
    rest = address[len(old) :].lstrip(".") if old else address
    return join(new, rest)


def explicit_names(root: fl.Chain) -> dict[int, set[str]]:
    return {id(node): set(node.explicit_names) for _, node, _ in tree_nodes(root) if isinstance(node, fl.Chain)}


@dataclass
class Captured:
    """Everything about a model that adapters must give back exactly."""

    snapshot: list[tuple[str, int, int | None]]
    explicit: dict[int, set[str]]
    tensors: dict[str, torch.Tensor]  # state_dict(keep_vars=True): the tensor objects themselves
    values: dict[str, torch.Tensor]  # clones of their values
    output: torch.Tensor


def capture(root: fl.Chain) -> Captured:
    tensors = root.state_dict(keep_vars=True)
    with torch.no_grad():
        output = root(make_input())
    return Captured(
        snapshot=snapshot(root),
        explicit=explicit_names(root),
        tensors=dict(tensors),
        values={key: tensor.detach().clone() for key, tensor in tensors.items()},
        output=output,
    )


def assert_same(root: fl.Chain, captured: Captured) -> None:
    """``root`` has exactly the structure, names, tensors, values and outputs captured before."""
    assert snapshot(root) == captured.snapshot
    assert explicit_names(root) == captured.explicit
    tensors = root.state_dict(keep_vars=True)
    assert list(tensors) == list(captured.tensors)  # same keys, same order
    for key, tensor in tensors.items():
        assert tensor is captured.tensors[key]
        assert torch.equal(tensor, captured.values[key])
    assert list(root.state_dict()) == list(captured.tensors)
    with torch.no_grad():
        assert torch.equal(root(make_input()), captured.output)


def output_of(root: fl.Chain) -> torch.Tensor:
    with torch.no_grad():
        return root(make_input())


# -- checked operations -------------------------------------------------------------------------


def inject_checked(adapter: Adapter, root: fl.Chain, parent: fl.Chain | None) -> None:
    """Inject ``adapter`` into the tree holding ``root``; check the tree and every address."""
    before = addresses(root)
    target = adapter.target
    old = before.get(id(target))
    assert old is not None, "the tests only inject on nodes of the tree"
    assert fl.address_of(target) == old
    adapter.inject(parent=parent)
    tree = root
    check_tree(tree)
    after = addresses(tree)
    assert adapter.injected
    # The adapter stands where its target stood, under its name; the target is its child ``target``.
    assert fl.address_of(adapter) == old
    assert adapter.address == old
    assert fl.address_of(target) == join(old, SLOT)
    assert fl.parent_of(target) is adapter
    # Every other node keeps its address; the target's subtree moves one level down.
    slot = join(old, SLOT)
    expected = {
        node_id: rebase(address, old, slot) if under(address, old) else address for node_id, address in before.items()
    }
    assert {node_id: after.get(node_id) for node_id in before} == expected
    # The only new nodes are the adapter and its own layers.
    assert set(after) == set(before) | subtree_ids(adapter)


def eject_checked(adapter: Adapter, root: fl.Chain) -> None:
    """Eject ``adapter``; check the tree and every address."""
    before = addresses(root)
    target = adapter.target
    adapter.eject()
    tree = root
    check_tree(tree)
    after = addresses(tree)
    assert not adapter.injected
    assert adapter.target is target
    assert fl.parent_of(adapter) is None
    assert SLOT not in dict(adapter.named_children())
    old = before.get(id(adapter))
    if old is None:  # an adapter in a part of the model no longer in the tree (inside an ejected adapter)
        assert after == before
        return
    assert fl.address_of(target) == old
    slot = join(old, SLOT)
    expected: dict[int, str] = {}
    for node_id, address in before.items():
        if under(address, slot):
            expected[node_id] = rebase(address, slot, old)
        elif not under(address, old):
            expected[node_id] = address
        # else: the adapter and its own layers leave the tree
    assert after == expected


def lora_target(node: torch.nn.Module) -> bool:
    """Whether a LinearLora can wrap ``node``: a Linear, or a LoRA stacked (only) on a Linear."""
    return isinstance(node, torch.nn.Linear) or (isinstance(node, Lora) and isinstance(node.base, torch.nn.Linear))


@dataclass
class Session:
    """The adapters a test made, and which of them can change outputs."""

    root: fl.Chain
    made: list[Adapter]
    effectful: set[int]

    def injected(self) -> list[Adapter]:
        return [adapter for adapter in self.made if adapter.injected]

    def outputs_may_differ(self) -> bool:
        return any(id(adapter) in self.effectful for adapter in self.injected())


def random_step(session: Session, data: st.DataObject, effects: bool) -> None:
    """One random operation: inject a new adapter or LoRA, re-inject an ejected one, or eject one."""
    tree = session.root
    present = addresses(tree)
    injected = session.injected()
    reusable = [adapter for adapter in session.made if not adapter.injected and id(adapter.target) in present]
    operation = data.draw(st.sampled_from(["adapter", "lora", "eject", "reinject"]), label="operation")
    if operation == "eject" and injected:
        event("eject")
        eject_checked(data.draw(st.sampled_from(injected), label="eject"), session.root)
        return
    if operation == "reinject" and reusable:
        adapter = data.draw(st.sampled_from(reusable), label="reinject")
        event("re-inject an ejected adapter")
        inject_checked(adapter, session.root, parent=fl.parent_of(adapter.target))
        return
    # Leaves, Chains, the root, adapters and what is inside their layers; not an adapter's own layers.
    nodes = [node for _, node, _ in tree_nodes(tree) if targetable(node)]
    linears = [node for node in nodes if lora_target(node)]
    if operation == "lora" and linears:
        target = data.draw(st.sampled_from(linears), label="lora target")
        effect = effects and data.draw(st.booleans(), label="trained")
        rank = data.draw(st.integers(1, 3), label="rank")
        adapter: Adapter = LinearLora(target, rank, init=random_init if effect else "kaiming")
    else:
        # Any node; but often an adapter in the tree (stacking on adapters is otherwise rare).
        in_tree = [adapter for adapter in injected if id(adapter) in present]
        pool = in_tree if in_tree and data.draw(st.integers(0, 3), label="pool") == 0 else nodes
        target = data.draw(st.sampled_from(pool), label="target")
        kinds = [name for name, (_, changes) in ADAPTERS.items() if effects or not changes]
        build, effect = ADAPTERS[data.draw(st.sampled_from(kinds), label="kind")]
        adapter = build(target)
    session.made.append(adapter)
    if effect:
        session.effectful.add(id(adapter))
    event(f"inject {type(adapter).__name__} on {where(target)}")
    # ``parent`` is optional: when given, it must be the target's parent.
    parent = fl.parent_of(target) if data.draw(st.booleans(), label="give parent") else None
    inject_checked(adapter, session.root, parent)


def targetable(node: torch.nn.Module) -> bool:
    """Whether an adapter may wrap ``node``: it sits in a Chain and is not an adapter's own layer."""
    return fl.parent_of(node) is not None and not own_layer(node)


def own_layer(node: torch.nn.Module) -> bool:
    """Whether ``node`` is one of an adapter's own children (not its target): adapters refuse those."""
    parent = fl.parent_of(node)
    return isinstance(parent, Adapter) and parent.name_of(node) != SLOT


def where(target: torch.nn.Module) -> str:
    """What kind of node a target is (for hypothesis's statistics)."""
    parent = fl.parent_of(target)
    if parent is None:
        return "the root"
    if isinstance(target, Adapter):
        return "an adapter"
    if isinstance(parent, Adapter):
        return "an adapter's target" if parent.name_of(target) == SLOT else "an adapter's own layer"
    if base_address(target) is None:
        return "a node inside an adapter's own layers"
    return "a Chain" if isinstance(target, fl.Chain) else "a leaf"


def inject_randomly(root: fl.Chain, data: st.DataObject, effects: bool, steps: int = 6) -> Session:
    session = Session(root, [], set())
    for _ in range(data.draw(st.integers(1, steps), label="steps")):
        random_step(session, data, effects)
    return session


def eject_all(session: Session, data: st.DataObject, reference: Captured | None = None) -> None:
    """Eject every injected adapter in a random order, checking the tree (and outputs) after each."""
    for adapter in data.draw(st.permutations(session.injected()), label="ejection order"):
        eject_checked(adapter, session.root)
        if reference is not None and not session.outputs_may_differ():
            assert torch.equal(output_of(session.root), reference.output)
    assert not session.injected()
    assert session.root is session.root


# -- properties ---------------------------------------------------------------------------------


@SETTINGS
@given(tree=trees(), data=st.data())
def test_random_injections_and_ejections_restore_the_model(tree: fl.Chain, data: st.DataObject) -> None:
    check_tree(tree)
    original = capture(tree)
    twin = tree.structural_copy()
    effects = data.draw(st.booleans(), label="effectful adapters allowed")
    session = Session(tree, [], set())
    for _ in range(data.draw(st.integers(1, 10), label="steps")):
        random_step(session, data, effects)
        # No-op adapters (bare, identity, fresh LoRA: its up projection is zero) keep outputs bit-exact.
        if not session.outputs_may_differ():
            assert torch.equal(output_of(tree), original.output)
    eject_all(session, data, original)
    assert_same(tree, original)
    # The naming bookkeeping is restored too: the same surgery names nodes as in an untouched copy.
    chains = [address for address, node, _ in tree_nodes(tree) if isinstance(node, fl.Chain)]
    address = data.draw(st.sampled_from(chains), label="surgery chain")
    make = data.draw(st.sampled_from(LEAVES), label="leaf")
    index = data.draw(st.integers(0, len(cast(fl.Chain, tree[address]) if address else tree)), label="index")
    for model in (tree, twin):
        chain = cast(fl.Chain, model[address]) if address else model
        chain.insert(index, make())
    assert [(a, type(n)) for a, n, _ in tree_nodes(tree)] == [(a, type(n)) for a, n, _ in tree_nodes(twin)]
    check_tree(tree)


@SETTINGS
@given(tree=trees(), data=st.data())
def test_noop_adapters_keep_outputs_exact(tree: fl.Chain, data: st.DataObject) -> None:
    original = capture(tree)
    session = Session(tree, [], set())
    for _ in range(data.draw(st.integers(1, 8), label="steps")):
        random_step(session, data, effects=False)
        assert torch.equal(output_of(tree), original.output)
    # Each adapter the model runs gives its target's output for the input it gets, bit for bit.
    calls: list[tuple[Adapter, tuple[torch.Tensor, ...], torch.Tensor]] = []
    hooks = [
        adapter.register_forward_hook(lambda module, args, output: calls.append((module, args, output)))
        for adapter in session.injected()
    ]
    try:
        output_of(tree)
    finally:
        for hook in hooks:
            hook.remove()
    for adapter, args, output in calls:
        with torch.no_grad():
            assert torch.equal(output, adapter.target(*args))
    eject_all(session, data, original)
    assert_same(tree, original)


@SETTINGS
@given(tree=trees(), data=st.data())
def test_refused_operations_change_nothing(tree: fl.Chain, data: st.DataObject) -> None:
    original = capture(tree)
    session = inject_randomly(tree, data, effects=True)
    nodes = [node for _, node, _ in tree_nodes(tree) if targetable(node)]
    injected = session.injected()
    ejected = [adapter for adapter in session.made if not adapter.injected]
    fresh = Adapter(data.draw(st.sampled_from(nodes), label="fresh target"))
    own_layers = [node for _, node, _ in tree_nodes(tree) if own_layer(node)]
    chains = [node for node in nodes if isinstance(node, fl.Chain)]
    wrong_parents = [chain for chain in chains if chain is not fl.parent_of(fresh.target)]
    refusals: list[tuple[str, Callable[[], None]]] = [("eject a fresh adapter", fresh.eject)]
    if injected:
        twice = data.draw(st.sampled_from(injected), label="inject twice")
        refusals.append(("inject twice", lambda: twice.inject(parent=fl.parent_of(twice))))
        refusals.append(("inject twice, no parent", lambda: twice.inject()))
    if ejected:
        refusals.append(("eject twice", data.draw(st.sampled_from(ejected), label="eject twice").eject))
    if wrong_parents:
        wrong = data.draw(st.sampled_from(wrong_parents), label="wrong parent")
        refusals.append(("wrong parent", lambda: fresh.inject(parent=wrong)))
    if own_layers:
        inside = Adapter(data.draw(st.sampled_from(own_layers), label="own layer"))
        refusals.append(("an adapter's own layer", inside.inject))
    refusals.append(("the root", Adapter(tree).inject))
    before = capture(tree)
    states = [(adapter, adapter.injected, adapter.target, fl.parent_of(adapter)) for adapter in [*session.made, fresh]]
    for what, refused in data.draw(st.permutations(refusals), label="refusals"):
        with pytest.raises(AdapterError):
            refused()
        check_tree(tree)
        assert_same(tree, before)
        for adapter, was_injected, target, parent in states:
            assert (adapter.injected, adapter.target, fl.parent_of(adapter)) == (was_injected, target, parent), what
    # The refusals left the adapters usable: the fresh one injects, and everything ejects cleanly.
    inject_checked(fresh, tree, parent=None)
    session.made.append(fresh)
    eject_all(session, data)
    assert_same(tree, original)


@SETTINGS
@given(tree=trees(), data=st.data())
def test_surgery_next_to_injected_adapters(tree: fl.Chain, data: st.DataObject) -> None:
    original = capture(tree)
    twin = tree.structural_copy()  # the same surgery on a model without adapters gives the reference names
    session = inject_randomly(tree, data, effects=True)
    chains = [(a, n) for a, n in base_nodes(tree) if isinstance(n, fl.Chain)]
    holders = [(a, n) for a, n in chains if any(isinstance(child, Adapter) for child in n.children_list())]
    if holders and data.draw(st.booleans(), label="next to an adapter"):
        chains = holders
    address, chain = data.draw(st.sampled_from(chains), label="chain")
    twin_chain = cast(fl.Chain, twin[address]) if address else twin
    assert len(twin_chain) == len(chain)
    index = data.draw(st.integers(0, len(chain)), label="index")
    name = data.draw(st.none() | st.sampled_from(NAMES), label="name")
    make = data.draw(st.sampled_from(LEAVES), label="leaf")
    leaf, twin_leaf = make(), make()
    before = addresses(tree)
    with_adapters = capture(tree)
    try:
        chain.insert(index, leaf, name=name)
    except fl.TreeError:
        # An explicit name already taken: refused here exactly when refused without adapters.
        with pytest.raises(fl.TreeError):
            twin_chain.insert(index, twin_leaf, name=name)
        assert_same(tree, with_adapters)
    else:
        twin_chain.insert(index, twin_leaf, name=name)
        check_tree(tree)
        # Seen through the adapters, every node is named as in the model without them.
        assert [(a, type(n)) for a, n in base_nodes(tree)] == [(a, type(n)) for a, n in base_nodes(twin)]
        assert base_address(leaf) == fl.address_of(twin_leaf)
        # Nodes outside the Chain keep their addresses; the adapters still stand where their targets do.
        after = addresses(tree)
        chain_address = fl.address_of(chain)
        for node_id, old in before.items():
            if not under(old, chain_address) or old == chain_address:
                assert after[node_id] == old
        for adapter in session.injected():
            if id(adapter) in after:
                assert fl.address_of(adapter.target) == join(fl.address_of(adapter), SLOT)
        popped = chain.pop(next(i for i, child in enumerate(chain.children_list()) if child is leaf))
        assert popped is leaf
        check_tree(tree)
        assert_same(tree, with_adapters)
    eject_all(session, data)
    assert_same(tree, original)


@SETTINGS
@given(tree=trees(), data=st.data())
def test_base_nodes_look_through_adapters(tree: fl.Chain, data: st.DataObject) -> None:
    # Asserted: the same (address, node) pairs in the same order (pre-order, as named_modules lists them).
    expected = [(address, id(node)) for address, node in tree.named_modules(remove_duplicate=False)]
    assert sorted(expected) == sorted((address, id(node)) for address, node, _ in tree_nodes(tree))
    selected_before = select_or_error(tree, leaves_only)
    session = inject_randomly(tree, data, effects=True, steps=8)
    assert [(address, id(node)) for address, node in base_nodes(tree)] == expected
    base = {id(node): address for address, node in base_nodes(tree)}
    for _, node, _ in tree_nodes(tree):
        looked_through = node
        while isinstance(looked_through, Adapter) and looked_through.injected:
            looked_through = looked_through.target
        # Base nodes and the adapters around them have the base address; an adapter's own layers have none.
        assert base_address(node) == base.get(id(looked_through))
    assert select_or_error(tree, leaves_only) == selected_before
    eject_all(session, data)


def leaves_only(node: torch.nn.Module) -> bool:
    return not isinstance(node, fl.Chain)


def select_or_error(root: fl.Chain, adaptable: Callable[[torch.nn.Module], bool]) -> list[tuple[str, int]] | str:
    """What ``select`` picks (every node matches; ``adaptable`` filters), or "refused"."""
    try:
        return [(address, id(node)) for address, node in select(root, torch.nn.Module, adaptable)]
    except AdapterError:
        return "refused"


@SETTINGS
@given(tree=trees(), data=st.data())
def test_whole_model_lora_inject_and_eject(tree: fl.Chain, data: st.DataObject) -> None:
    original = capture(tree)
    # Random adapters first: bare ones, and LoRAs named "pre" (lora.inject's own are named "lora").
    session = Session(tree, [], set())
    for _ in range(data.draw(st.integers(0, 4), label="pre steps")):
        nodes = [node for _, node, _ in tree_nodes(tree) if targetable(node)]
        target = data.draw(st.sampled_from(nodes), label="pre target")
        use_lora = lora_target(target) and data.draw(st.booleans(), label="pre lora")
        adapter = LinearLora(target, 1, name="pre") if use_lora else Adapter(target)
        session.made.append(adapter)
        inject_checked(adapter, tree, parent=None)
    before = capture(tree)
    linears = sorted((address, id(node)) for address, node in base_nodes(tree) if isinstance(node, torch.nn.Linear))
    rank = data.draw(st.integers(1, 3), label="rank")
    try:
        injected = lora.inject(tree, rank=rank, targets=torch.nn.Linear)
    except AdapterError:
        assert not linears  # refused only when there is nothing to adapt
        assert_same(tree, before)
    else:
        check_tree(tree)
        assert sorted((base_address(a) or "", id(a.base)) for a in injected) == linears
        assert all(a.rank == rank and a.name == "lora" for a in injected)
        assert torch.equal(output_of(tree), before.output)  # fresh LoRAs change nothing, bit for bit
        # A LoRA of the same name on the same layers is refused, and changes nothing.
        during = capture(tree)
        with pytest.raises(AdapterError):
            lora.inject(tree, rank=rank, targets=torch.nn.Linear)
        assert_same(tree, during)
        ejected = lora.eject(tree, name="lora")
        assert len(ejected) == len(injected)
        assert {id(a) for a in ejected} == {id(a) for a in injected}
        check_tree(tree)
        assert_same(tree, before)
    eject_all(session, data)
    assert_same(tree, original)


@SETTINGS
@given(tree=trees(), data=st.data())
def test_copies_of_an_adapted_model_eject_to_the_original(tree: fl.Chain, data: st.DataObject) -> None:
    original = capture(tree)
    plain = [(address, type(node)) for address, node, _ in tree_nodes(tree)]
    session = inject_randomly(tree, data, effects=True)
    with_adapters = capture(tree)
    copy = tree.structural_copy()
    check_tree(copy)
    assert [a for a, _, _ in tree_nodes(copy)] == [a for a, _, _ in tree_nodes(tree)]
    assert torch.equal(output_of(copy), with_adapters.output)
    copied = [node for _, node, _ in tree_nodes(copy) if isinstance(node, Adapter)]
    assert all(adapter.injected for adapter in copied)
    base: torch.nn.Module = copy  # the copy of the original root: it stays in the copied tree
    while isinstance(base, Adapter):
        base = base.target
    copy_root = cast(fl.Chain, base)
    for adapter in data.draw(st.permutations(copied), label="copy ejection order"):
        eject_checked(adapter, copy_root)
    # The copy is the original model again, sharing its tensors; the original still has its adapters.
    assert [(a, type(n)) for a, n, _ in tree_nodes(copy_root)] == plain
    tensors = copy_root.state_dict(keep_vars=True)
    assert list(tensors) == list(original.tensors)
    assert all(tensors[key] is original.tensors[key] for key in tensors)
    assert torch.equal(output_of(copy_root), original.output)
    assert_same(tree, with_adapters)
    eject_all(session, data)
    assert_same(tree, original)
