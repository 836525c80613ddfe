"""Counting a tree's parameters and buffers: elements and bytes, by dtype, tied tensors once;
and its layers by type. What ``fluxion show`` and ``fluxion summary`` print.

Works on ``meta`` models too: only shapes and dtypes are read.

>>> import fluxion.layers as fl
>>> model = fl.Chain(fl.Linear(4, 2), fl.ReLU())
>>> totals = tensor_totals(model.parameters())
>>> totals.elements, totals.bytes, totals.by_dtype
(10, 40, {'float32': (10, 40)})
>>> layer_counts(model)
[LayerCount(type='Linear', count=1, parameters=10), LayerCount(type='ReLU', count=1, parameters=0)]
>>> human_count(11_689_512), human_bytes(46_758_048)
('11.7M', '44.6 MiB')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

import fluxion.layers as fl
from fluxion.tree import node_class


@dataclass(frozen=True)
class Totals:
    """How many tensors, elements and bytes, and ``(elements, bytes)`` by dtype name.

    >>> Totals(1, 4, 16, {"float32": (4, 16)}).elements
    4
    """

    tensors: int
    elements: int
    bytes: int
    by_dtype: dict[str, tuple[int, int]]


def tensor_totals(tensors: Iterable[torch.Tensor]) -> Totals:
    """The totals of ``tensors``, each counted once even when it is given several times.

    >>> import torch
    >>> weight = torch.zeros(2, 3, dtype=torch.float16)
    >>> tensor_totals([weight, weight, torch.zeros(4)]).by_dtype
    {'float16': (6, 12), 'float32': (4, 16)}
    """
    seen: set[int] = set()
    count = elements = size = 0
    by_dtype: dict[str, tuple[int, int]] = {}
    for tensor in tensors:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        numel, nbytes = tensor.numel(), tensor.numel() * tensor.element_size()
        count, elements, size = count + 1, elements + numel, size + nbytes
        name = str(tensor.dtype).removeprefix("torch.")
        before = by_dtype.get(name, (0, 0))
        by_dtype[name] = (before[0] + numel, before[1] + nbytes)
    return Totals(count, elements, size, dict(sorted(by_dtype.items())))


def parameter_count(module: torch.nn.Module) -> int:
    """The number of parameter elements under ``module`` (tied parameters once).

    >>> import fluxion.layers as fl
    >>> parameter_count(fl.Chain(fl.Linear(4, 2), fl.ReLU()))
    10
    """
    return sum(parameter.numel() for parameter in module.parameters())


@dataclass(frozen=True)
class LayerCount:
    """How many layers of one type a tree holds, and their parameters (shared layers once).

    >>> LayerCount("Linear", 2, 354).parameters
    354
    """

    type: str
    count: int
    parameters: int


def layer_counts(model: torch.nn.Module) -> list[LayerCount]:
    """The layers (the leaves of the tree: modules that are not Chains) by class name, most
    parameters first. A parameter tied between layers counts once, with the first layer that
    holds it, so the parameters add up to ``parameter_count(model)``; a model that is not a Chain
    is one layer.

    >>> import fluxion.layers as fl
    >>> layer_counts(fl.Chain(fl.Linear(2, 2), fl.Chain(fl.ReLU(), fl.Linear(2, 1))))
    [LayerCount(type='Linear', count=2, parameters=9), LayerCount(type='ReLU', count=1, parameters=0)]
    >>> layer_counts(fl.Linear(2, 2))
    [LayerCount(type='Linear', count=1, parameters=6)]
    """
    counted: set[int] = set()
    counts: dict[str, tuple[int, int]] = {}
    for layer in _layers(model) if isinstance(model, fl.Chain) else (model,):
        new = [parameter for parameter in layer.parameters() if id(parameter) not in counted]
        counted.update(id(parameter) for parameter in new)
        count, parameters = counts.get(node_class(layer).__name__, (0, 0))
        counts[node_class(layer).__name__] = (count + 1, parameters + sum(parameter.numel() for parameter in new))
    found = [LayerCount(name, count, parameters) for name, (count, parameters) in counts.items()]
    return sorted(found, key=lambda layer: (-layer.parameters, -layer.count, layer.type))


def _layers(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    for child in module.children():
        if isinstance(child, fl.Chain):
            yield from _layers(child)
        else:
            yield child


def human_count(count: int) -> str:
    """A count the way people say it: ``950``, ``12.3K``, ``11.7M``, ``1.2B``.

    >>> human_count(950), human_count(12_345), human_count(1_200_000_000)
    ('950', '12.3K', '1.2B')
    """
    for factor, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if count >= factor:
            return f"{count / factor:.1f}{suffix}"
    return str(count)


def human_bytes(size: int) -> str:
    """A size in bytes with a binary unit: ``512 B``, ``1.5 KiB``, ``44.6 MiB``.

    >>> human_bytes(512), human_bytes(1536), human_bytes(3 * 2**30)
    ('512 B', '1.5 KiB', '3.0 GiB')
    """
    for power, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if size >= 2**power:
            return f"{size / 2**power:.1f} {unit}"
    return f"{size} B"
