"""Invariants every fluxion tree must satisfy, checked from the outside with plain torch APIs."""

from collections import Counter

import torch

import fluxion.layers as fl
from fluxion.tree.naming import base_of, class_name


def leaf_class(name: str) -> type[fl.Module]:
    """A new leaf class called ``name`` (``Block_2``: a class named like an automatic name) that returns its input."""

    def forward(self: fl.Module, x: torch.Tensor) -> torch.Tensor:
        return x

    return type(name, (fl.Module,), {"forward": forward})


def tree_nodes(root: fl.Chain) -> list[tuple[str, torch.nn.Module, fl.Chain | None]]:
    """(address, node, parent) for the root and every node reachable through Chains."""
    found: list[tuple[str, torch.nn.Module, fl.Chain | None]] = [("", root, None)]
    pending: list[tuple[str, fl.Chain]] = [("", root)]
    while pending:
        prefix, chain = pending.pop()
        for name, child in chain.named_children():
            address = f"{prefix}.{name}" if prefix else name
            found.append((address, child, chain))
            if isinstance(child, fl.Chain):
                pending.append((address, child))
    return found


def own_tensor_keys(chain: fl.Chain) -> set[str]:
    """The state_dict keys of the tensors a Chain holds itself, not through its children."""
    persistent = {
        name
        for name, _ in chain.named_buffers(recurse=False)
        if name not in chain._non_persistent_buffers_set  # pyright: ignore[reportPrivateUsage]
    }
    return {name for name, _ in chain.named_parameters(recurse=False)} | persistent


def expected_names(chain: fl.Chain) -> list[str]:
    """Child names recomputed from scratch, by the rule of ``fluxion.tree.naming``: explicit names
    stay; a class with one member takes its class name unless an explicit name holds it; a class
    with several is numbered, skipping explicit names and names single members of other classes hold.
    """
    explicit = set(chain.explicit_names)
    current = list(dict(chain.named_children()))
    children = chain.children_list()
    groups: dict[str, list[int]] = {}
    for position, (name, child) in enumerate(zip(current, children, strict=True)):
        if name not in explicit:
            groups.setdefault(class_name(child), []).append(position)
    held = {base for base, positions in groups.items() if len(positions) == 1 and base not in explicit}
    names = list(current)
    for base, positions in groups.items():
        if base in held:
            names[positions[0]] = base
            continue
        blocked = {name for name in explicit | held if name == base or base_of(name) == base}
        suffix = 1
        for position in positions:
            while f"{base}_{suffix}" in blocked:
                suffix += 1
            names[position] = f"{base}_{suffix}"
            suffix += 1
    return names


def check_tree(root: fl.Chain) -> None:
    """Assert the tree invariants (docs/architecture.md, "One idea: the address") on ``root``."""
    nodes = tree_nodes(root)
    # Every node appears once: at most one parent, always.
    counts = Counter(id(node) for _, node, _ in nodes)
    assert max(counts.values()) == 1
    for address, node, parent in nodes:
        # Parent pointers agree with containment.
        assert fl.parent_of(node) is parent
        # The address is the path of names.
        assert fl.address_of(node) == address
        if isinstance(node, fl.Module):
            assert node.address == address
    # Addresses are named_modules() names.
    named = dict(root.named_modules(remove_duplicate=False))
    for address, node, _ in nodes:
        assert named[address] is node
    # state_dict keys are addresses plus torch parameter names.
    expected_keys: set[str] = set()
    for address, node, _ in nodes:
        # A Chain's own tensors (a LoRA's scale buffer) count; its children's come with the children.
        keys = own_tensor_keys(node) if isinstance(node, fl.Chain) else set(node.state_dict())
        expected_keys.update(f"{address}.{key}" if address else key for key in keys)
    assert set(root.state_dict()) == expected_keys
    # Names follow the naming rule, with no dots and no duplicates.
    for _, node, _ in nodes:
        if isinstance(node, fl.Chain):
            names = list(dict(node.named_children()))
            assert names == expected_names(node)
            assert all("." not in name for name in names)
            assert len(set(names)) == len(names)


def snapshot(root: fl.Chain) -> list[tuple[str, int, int | None]]:
    """The structure of a tree: addresses, node identities and parent identities."""
    return [(address, id(node), None if parent is None else id(parent)) for address, node, parent in tree_nodes(root)]
