"""Property-based tests: random trees and random sequences of surgery keep the tree's invariants."""

from collections.abc import Callable
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from tests.tree.tree_checks import check_tree, snapshot, tree_nodes

NAMES = ["a", "b", "proj", "Linear", "Linear_1", "Linear_2", "ReLU", "ReLU_3", "Chain", "block"]

LEAVES: list[Callable[[], torch.nn.Module]] = [
    lambda: fl.Linear(3, 3),
    fl.ReLU,
    fl.Tanh,
    lambda: fl.LayerNorm(3),
    torch.nn.Identity,  # plain torch leaves are nodes too
    lambda: torch.nn.Linear(3, 3),
]
INNER: list[Callable[[], fl.Chain]] = [fl.Chain, fl.Residual, fl.Passthrough]


@st.composite
def subtrees(draw: st.DrawFn, depth: int = 3) -> torch.nn.Module:
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(LEAVES))()
    chain = draw(st.sampled_from(INNER))()
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.none() | st.sampled_from(NAMES))
        child = draw(subtrees(depth - 1))
        if name is not None and name in chain.explicit_names:
            name = None
        chain.append(child, name=name)
    return chain


@st.composite
def trees(draw: st.DrawFn) -> fl.Chain:
    root = fl.Chain()
    for _ in range(draw(st.integers(1, 5))):
        root.append(draw(subtrees()))
    return root


def explicit_names(root: fl.Chain) -> dict[int, str]:
    """id(node) -> explicit name, for every node holding one."""
    return {
        id(node): fl.address_of(node).rpartition(".")[2]
        for _, node, parent in tree_nodes(root)
        if parent is not None and parent.name_of(node) in parent.explicit_names
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees())
def test_random_trees_hold_the_invariants(tree: fl.Chain) -> None:
    check_tree(tree)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), data=st.data())
def test_random_surgery_keeps_the_invariants(tree: fl.Chain, data: st.DataObject) -> None:
    check_tree(tree)
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        chains = [node for _, node, _ in tree_nodes(tree) if isinstance(node, fl.Chain)]
        target: fl.Chain = data.draw(st.sampled_from(chains), label="target")
        names_before = explicit_names(tree)
        before = snapshot(tree)
        operation = data.draw(
            st.sampled_from(["insert", "append", "pop", "remove", "replace", "before_type", "move"]), label="op"
        )
        name = data.draw(st.none() | st.sampled_from(NAMES), label="name")
        try:
            apply(operation, tree, target, name, data)
        except fl.TreeError:
            # A refused operation leaves the tree exactly as it was.
            assert snapshot(tree) == before
            assert explicit_names(tree) == names_before
        check_tree(tree)
        # Explicit names never change while their node stays in the tree.
        after = explicit_names(tree)
        present = {id(node) for _, node, _ in tree_nodes(tree)}
        for node_id, explicit in names_before.items():
            if node_id in present and node_id in after:
                assert after[node_id] == explicit


def apply(operation: str, tree: fl.Chain, target: fl.Chain, name: str | None, data: st.DataObject) -> None:
    size = len(target)
    if operation == "insert":
        index = data.draw(st.integers(-size - 1, size + 1), label="index")
        target.insert(index, data.draw(subtrees(1)), name=name)
    elif operation == "append":
        target.append(data.draw(subtrees(1)), name=name)
    elif operation == "pop" and size:
        popped = target.pop(data.draw(st.integers(-size, size - 1), label="index"))
        assert fl.parent_of(popped) is None
    elif operation == "remove" and size:
        child = data.draw(st.sampled_from(target.children_list()), label="child")
        tree.remove(child.address if isinstance(child, fl.Module) and child.address else child)
        assert fl.parent_of(child) is None
    elif operation == "replace" and size:
        child = data.draw(st.sampled_from(target.children_list()), label="child")
        tree.replace(child, data.draw(subtrees(1)), name=name)
        assert fl.parent_of(child) is None
    elif operation == "before_type" and size:
        kind: type[Any] = type(data.draw(st.sampled_from(target.children_list()), label="kind"))
        target.insert_before_type(kind, data.draw(subtrees(1)))
    elif operation == "move":
        # Moving a node that still has a parent must be refused; moving a popped one must work.
        nodes = [node for _, node, parent in tree_nodes(tree) if parent is not None]
        if nodes:
            node = data.draw(st.sampled_from(nodes), label="node")
            try:
                target.append(node)
            except fl.TreeError:
                pass
            else:
                raise AssertionError("a node with a parent was inserted elsewhere")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees())
def test_structural_copy_shares_leaf_weights_and_not_inner_nodes(tree: fl.Chain) -> None:
    twin = tree.structural_copy()
    check_tree(twin)
    original, copied = tree_nodes(tree), tree_nodes(twin)
    assert [address for address, _, _ in original] == [address for address, _, _ in copied]
    for (_, node, _), (_, copy, _) in zip(original, copied, strict=True):
        assert node is not copy
        assert type(node) is type(copy)
        if not isinstance(node, fl.Chain):
            for (key, weight), (copy_key, copy_weight) in zip(
                node.state_dict(keep_vars=True).items(), copy.state_dict(keep_vars=True).items(), strict=True
            ):
                assert key == copy_key
                assert weight is copy_weight
    assert tree.state_dict().keys() == twin.state_dict().keys()
    x = torch.randn(2, 3)
    torch.testing.assert_close(twin(x), tree(x))
    # Changing the copy's structure leaves the original alone.
    before = snapshot(tree)
    twin.append(fl.ReLU())
    if len(twin) > 1:
        twin.pop(0)
    assert snapshot(tree) == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), data=st.data())
def test_slices_are_structural_copies(tree: fl.Chain, data: st.DataObject) -> None:
    start = data.draw(st.integers(-len(tree) - 2, len(tree) + 2))
    stop = data.draw(st.none() | st.integers(-len(tree) - 2, len(tree) + 2))
    step = data.draw(st.none() | st.integers(1, 3))
    part = tree[start:stop:step]
    expected = tree.children_list()[start:stop:step]
    assert type(part) is type(tree)
    assert [type(child) for child in part] == [type(child) for child in expected]
    assert all(copy is not child for copy, child in zip(part, expected, strict=True))
    check_tree(part)
