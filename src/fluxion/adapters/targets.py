"""Choosing where adapters go: by layer type, by address glob, or by predicate.

Addresses here are *base* addresses: the address a node has with every adapter ejected. An
injected adapter is looked through (its target keeps the adapter's address) and the adapter's own
layers are never targets, so selecting again after an injection finds the same nodes.

>>> import fluxion.layers as fl
>>> model = fl.Chain(attn=fl.Chain(q=fl.Linear(4, 4), k=fl.Linear(4, 4)), out=fl.Linear(4, 2))
>>> [address for address, _ in select(model, "attn.*", lambda node: isinstance(node, fl.Linear))]
['attn.q', 'attn.k']
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator, Sequence
from typing import TypeAlias, cast

import torch

from fluxion.adapters.adapter import SLOT, Adapter
from fluxion.errors import AdapterError
from fluxion.layers import Chain, parent_of

Targets: TypeAlias = (
    type[torch.nn.Module] | tuple[type[torch.nn.Module], ...] | str | Sequence[str] | Callable[[torch.nn.Module], bool]
)
"""A layer type (or tuple of types), an address glob (or several), or a predicate on modules."""


def base_nodes(model: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Module]]:
    """``(base address, node)`` for every node of the tree with adapters looked through, root first.

    >>> import fluxion.layers as fl
    >>> from fluxion.adapters import Adapter
    >>> model = fl.Chain(fl.Linear(2, 2))
    >>> _ = Adapter(model.Linear).inject()
    >>> [(address, type(node).__name__) for address, node in base_nodes(model)]
    [('', 'Chain'), ('Linear', 'Linear')]
    """
    pending: list[tuple[str, torch.nn.Module]] = [("", model)]
    while pending:
        address, node = pending.pop()
        while isinstance(node, Adapter) and node.injected:
            node = node.target
        yield address, node
        if isinstance(node, Chain):
            children = [(f"{address}.{name}" if address else name, child) for name, child in node.named_children()]
            pending.extend(reversed(children))


def base_address(module: torch.nn.Module) -> str | None:
    """The address ``module`` has once every adapter is ejected; None for an adapter's own layers.

    >>> import fluxion.layers as fl
    >>> from fluxion.adapters import Adapter
    >>> model = fl.Chain(block=fl.Chain(fl.Linear(2, 2)))
    >>> adapter = Adapter(model.block.Linear, fl.ReLU()).inject()
    >>> adapter.target.address, base_address(adapter.target), base_address(adapter.ReLU)
    ('block.Linear.target', 'block.Linear', None)
    """
    names: list[str] = []
    node = module
    parent = parent_of(node)
    while parent is not None:
        name = parent.name_of(node)
        if isinstance(parent, Adapter):
            if name != SLOT:
                return None
        else:
            names.append(name)
        node = parent
        parent = parent_of(node)
    return ".".join(reversed(names))


def select(
    model: torch.nn.Module,
    targets: Targets,
    adaptable: Callable[[torch.nn.Module], bool],
    *,
    what: str = "adapter",
    through_adapters: bool = True,
) -> list[tuple[str, torch.nn.Module]]:
    """The adaptable nodes ``targets`` picks, as ``(base address, node)`` in tree order.

    A selected node that ``adaptable`` accepts is picked; a selected Chain contributes every
    adaptable node inside it. A type, glob or predicate that selects nothing, or a selection with
    nothing adaptable in it, is an ``AdapterError`` that shows what the tree does hold. With
    ``through_adapters=False`` the nodes are the tree's own, adapters and their layers included,
    at their addresses (what sharding wraps).

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(block=fl.Chain(fl.Linear(2, 2), fl.ReLU()))
    >>> [address for address, _ in select(model, fl.Chain, lambda m: isinstance(m, fl.Linear))]
    ['block.Linear']
    >>> select(model, "blok.*", lambda m: True)
    Traceback (most recent call last):
    ...
    fluxion.errors.AdapterError: no node matches 'blok.*'; nearby addresses: block, block.ReLU, block.Linear
    """
    nodes = list(base_nodes(model)) if through_adapters else _own_nodes(model)
    chosen: dict[int, tuple[str, torch.nn.Module]] = {}
    selected: list[tuple[str, torch.nn.Module]] = []
    for test, label in _tests(targets):
        matches = [(address, node) for address, node in nodes if test(address, node)]
        if not matches:
            raise AdapterError(_nothing_matches(label, targets, nodes))
        selected.extend(matches)
    for address, node in selected:
        if adaptable(node):
            chosen.setdefault(id(node), (address, node))
        elif isinstance(node, Chain):
            for inner_address, inner in base_nodes(node):
                if adaptable(inner):
                    full = f"{address}.{inner_address}" if address and inner_address else address or inner_address
                    chosen.setdefault(id(inner), (full, inner))
    if not chosen:
        shown = ", ".join(f"{address or '(root)'} ({type(node).__name__})" for address, node in selected[:8])
        more = f" and {len(selected) - 8} more" if len(selected) > 8 else ""
        raise AdapterError(f"the targets select {shown}{more}, but none of them is a layer a {what} can adapt")
    order = {id(node): position for position, (_, node) in enumerate(nodes)}
    return sorted(chosen.values(), key=lambda item: order[id(item[1])])


def _own_nodes(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    named = cast("Iterator[tuple[str, torch.nn.Module]]", model.named_modules())
    return list(named)


def _tests(targets: Targets) -> list[tuple[Callable[[str, torch.nn.Module], bool], str]]:
    """One test per glob (each must match something), or one test for a type or predicate."""
    given = cast(object, targets)
    if isinstance(given, str):
        return [_glob_test(given)]
    several = isinstance(given, list | tuple)
    items = list(cast(Sequence[object], given)) if several else [given]
    if items and all(isinstance(item, type) for item in items):
        kinds = tuple(cast(list[type], items))
        return [(lambda _, node: isinstance(node, kinds), "type")]
    if several and items and all(isinstance(item, str) for item in items):
        return [_glob_test(glob) for glob in cast(list[str], items)]
    if isinstance(given, torch.nn.Module):
        raise AdapterError(
            f"targets is a {type(given).__name__} module, not a selection: pass its type, its address or a predicate"
        )
    if not several and callable(given):
        predicate = cast(Callable[[torch.nn.Module], object], given)

        def test(address: str, node: torch.nn.Module) -> bool:
            try:
                return bool(predicate(node))
            except Exception as error:
                where = f"at {address!r}" if address else "(the root)"
                raise AdapterError(
                    f"the targets predicate failed on {type(node).__name__} {where}: "
                    f"{type(error).__name__}: {error} (it is called on every node, Chains included)"
                ) from error

        return [(test, "predicate")]
    raise AdapterError(
        "targets must be a layer type, a tuple of types, an address glob, a list of globs or a predicate; "
        f"got {given!r}"
    )


def _glob_test(glob: str) -> tuple[Callable[[str, torch.nn.Module], bool], str]:
    return (lambda address, _: fnmatch.fnmatchcase(address, glob)), glob


def _nothing_matches(label: str, targets: Targets, nodes: list[tuple[str, torch.nn.Module]]) -> str:
    if label == "type":
        kinds = cast(tuple[type, ...], targets if isinstance(targets, tuple) else (targets,))
        names = " or ".join(kind.__name__ for kind in kinds)
        present = ", ".join(sorted({type(node).__name__ for _, node in nodes}))
        return f"no node of type {names} in the model; types present: {present}"
    if label == "predicate":
        return f"the predicate {getattr(targets, '__qualname__', targets)!r} matches no node of the model"
    near = nearby(label.replace("*", "").replace("?", ""), [address for address, _ in nodes if address])
    return f"no node matches {label!r}; nearby addresses: {', '.join(near) or 'none (the model is empty)'}"


def nearby(text: str, addresses: Sequence[str], count: int = 5) -> list[str]:
    """The ``count`` addresses most similar to ``text``, most similar first (for error messages).

    >>> nearby("blocks.0.atn", ["blocks.0.attn", "blocks.0.mlp", "head"], count=2)
    ['blocks.0.attn', 'blocks.0.mlp']
    """
    return sorted(addresses, key=lambda address: -difflib.SequenceMatcher(None, text, address).ratio())[:count]
