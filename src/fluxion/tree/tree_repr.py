"""Drawing a tree as text: one line per node, identical neighbouring subtrees counted once.

>>> import fluxion.layers as fl
>>> print(draw_tree(fl.Chain(fl.Linear(2, 2), fl.ReLU(), fl.ReLU(), out=fl.Linear(2, 1))))
(CHAIN) Chain()
    ├── Linear(in_features=2, out_features=2, bias=True)
    ├── ReLU() ×2
    └── out: Linear(in_features=2, out_features=1, bias=True)
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any

import torch

from fluxion.tree.naming import class_name
from fluxion.tree.wrapping import node_class

FAILED_MARK = "  ◀── failed here"


def draw_tree(
    module: torch.nn.Module,
    *,
    mark: torch.nn.Module | None = None,
    max_depth: int | None = None,
    annotate: Callable[[torch.nn.Module], str | None] | None = None,
) -> str:
    """The tree under ``module`` as text; ``mark`` flags one node, ``max_depth`` folds deeper Chains,
    ``annotate`` adds text at the end of a node's line (a shape report gives each node's output).

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Chain(fl.ReLU(), fl.Tanh()))
    >>> print(draw_tree(model, max_depth=1, annotate=lambda node: type(node).__name__.lower()))
    (CHAIN) Chain()  chain
        └── (CHAIN) Chain() … 2 children  chain
    """
    return "\n".join(_render(module, mark, max_depth, annotate))


def node_label(module: torch.nn.Module) -> str:
    """One node's own line: ``(TAG) Class(arguments)`` for Chains, ``Class(arguments)`` for leaves.

    >>> import fluxion.layers as fl
    >>> node_label(fl.Concatenate(fl.ReLU(), dim=1))
    '(CAT) Concatenate(dim=1)'
    """
    arguments = module.extra_repr().replace("\n", ", ")
    cls = node_class(module)
    text = f"{cls.__name__}({arguments})"
    tag: Any = getattr(cls, "repr_tag", None)
    return f"({tag}) {text}" if isinstance(tag, str) and _is_chain(module) else text


class _Node:
    """A node being drawn: its own line, its children still to draw, the lines of those drawn."""

    def __init__(self, head: str, children: list[tuple[str, torch.nn.Module, str | None]], depth: int | None) -> None:
        self.head = head
        self.children = children  # (name shown or "", child, note on where its inputs come from)
        self.depth = depth
        self.drawn: list[list[str]] = []


def _render(
    root: torch.nn.Module,
    mark: torch.nn.Module | None,
    max_depth: int | None,
    annotate: Callable[[torch.nn.Module], str | None] | None,
) -> list[str]:
    """The lines of ``root``'s tree, drawn without recursion (a tree of any depth)."""
    stack = [_start(root, "", None, mark, max_depth, annotate)]
    while True:
        node = stack[-1]
        if len(node.drawn) < len(node.children):
            name, child, flow = node.children[len(node.drawn)]
            depth = None if node.depth is None else node.depth - 1
            stack.append(_start(child, name, flow, mark, depth, annotate))
            continue
        lines = _assemble(node.head, node.drawn)
        stack.pop()
        if not stack:
            return lines
        stack[-1].drawn.append(lines)


def _start(
    module: torch.nn.Module,
    name: str,
    flow: str | None,
    mark: torch.nn.Module | None,
    depth: int | None,
    annotate: Callable[[torch.nn.Module], str | None] | None,
) -> _Node:
    head = f"{name}: {node_label(module)}" if name else node_label(module)
    children = list(module.named_children()) if _is_chain(module) else []
    if depth == 0 and children:
        head += f" … {len(children)} {'child' if len(children) == 1 else 'children'}"
    if flow:
        head += f"  {flow}"
    note = annotate(module) if annotate is not None else None
    if note:
        head += f"  {note}"
    if module is mark:
        head += FAILED_MARK
    if not children or depth == 0:
        return _Node(head, [], depth)
    chain: Any = module  # a Chain (tree_repr cannot import the class: Chain uses this module)
    explicit: AbstractSet[str] = chain.explicit_names
    child_note: Callable[[str], str | None] = chain.child_note
    shown: list[tuple[str, torch.nn.Module, str | None]] = []
    for child_name, child in children:
        # Automatic names follow from the class and are left out, except for a stand-in's.
        named = child_name in explicit or class_name(child) != node_class(child).__name__
        shown.append((child_name if named else "", child, child_note(child_name)))
    return _Node(head, shown, depth)


def _assemble(head: str, drawn: list[list[str]]) -> list[str]:
    """A node's line, then its children's lines on rails; identical neighbouring subtrees counted once."""
    groups: list[tuple[list[str], int]] = []
    for lines in drawn:
        if groups and groups[-1][0] == lines:
            groups[-1] = (lines, groups[-1][1] + 1)
        else:
            groups.append((lines, 1))
    out = [head]
    for position, (lines, count) in enumerate(groups):
        last = position == len(groups) - 1
        first = lines[0] + (f" ×{count}" if count > 1 else "")
        out.append(("    └── " if last else "    ├── ") + first)
        # Child lines start with the 4-space indent every level adds; draw the rail in its place.
        rail = "        " if last else "    │   "
        out.extend(rail + line[4:] for line in lines[1:])
    return out


def _is_chain(module: torch.nn.Module) -> bool:
    return "_explicit" in module.__dict__
