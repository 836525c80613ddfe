"""Running a node on meta tensors without touching it: torch computes every shape, stride and view,
and nothing is allocated nor written.

``infer`` does this for a node without a shape rule; ``fluxion.inspect.activations`` runs a whole
model this way to see which outputs torch makes as tensors of their own.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion import dims
>>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU())
>>> output = run_on_meta(model, (dims.Shape([2, 4]),))
>>> output.shape, output.device, model[0].weight.device
(torch.Size([2, 8]), device(type='meta'), device(type='cpu'))
"""

from __future__ import annotations

import copy
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch.nn.utils import parametrize

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.tree.context import context_of


def run_on_meta(
    node: torch.nn.Module,
    inputs: tuple[ShapeValue, ...],
    named: Mapping[str, ShapeValue] | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> Any:
    """Call ``node`` without gradients on meta tensors of the (concrete) shapes ``inputs`` and
    ``named``, of ``dtype`` (default: the default dtype), and return what it returns.

    The node's parameters and buffers are replaced by meta stand-ins for the call (``meta_stand_ins``)
    and a context a ``SetContext`` inside writes to is restored after it, so that the node is
    left exactly as it was, even when the call fails.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> from fluxion import dims
    >>> run_on_meta(fl.Embedding(10, 3), (dims.Shape([2, 5]),), dtype=torch.int64).shape
    torch.Size([2, 5, 3])
    """
    store = context_of(node)
    saved = {key: (values, dict(values)) for key, values in store.items()}  # each dict kept: a caller may hold it
    with meta_stand_ins(node), torch.no_grad():
        try:
            return node(
                *(meta_tensors(value, dtype) for value in inputs),
                **{key: meta_tensors(value, dtype) for key, value in (named or {}).items()},
            )
        finally:  # a SetContext inside writes to the tree's store, which only the root's own call clears
            store.clear()
            for key, (values, contents) in saved.items():
                values.clear()
                values.update(contents)
                store[key] = values


def meta_tensors(value: ShapeValue, dtype: torch.dtype | None = None) -> Any:
    """Empty meta tensors of the concrete shapes in ``value``: a tensor for a shape, a tuple for
    several, a dict for shapes by name, None for None.

    >>> from fluxion import dims
    >>> meta_tensors((dims.Shape([2, 3]), None))
    (tensor(..., device='meta', size=(2, 3)), None)
    """
    if value is None:
        return None
    if isinstance(value, dims.Shape):
        return torch.empty(tuple(cast(int, size) for size in value), device="meta", dtype=dtype)
    if isinstance(value, dims.ShapeMap):
        return {key: meta_tensors(item, dtype) for key, item in value.items()}
    return tuple(meta_tensors(item, dtype) for item in value)


@contextmanager
def meta_stand_ins(node: torch.nn.Module) -> Generator[None]:
    """Give ``node`` (and every module under it) meta stand-ins for its parameters and buffers while
    the block runs, so that nothing real is touched. Afterwards each module's attributes are back as
    they were, and so are the contents of the dicts and lists it holds (its submodules, a cache a
    forward fills) and torch's cache of parametrized tensors (``parametrize.cached()``): what the
    block set, the weight torch's ``weight_norm`` computes in a hook among them, is gone.

    >>> import torch
    >>> linear = torch.nn.Linear(2, 2)
    >>> with meta_stand_ins(linear):
    ...     print(linear.weight.device)
    meta
    >>> linear.weight.device
    device(type='cpu')
    """
    modules = list(node.modules())
    saved = [dict(module.__dict__) for module in modules]  # before anything is replaced
    held = _contents([value for attributes in saved for value in attributes.values()])
    cache: dict[Any, Any] = parametrize._cache  # pyright: ignore[reportPrivateUsage]
    cached = dict(cache)
    try:
        for module in modules:
            parameters, buffers = module._parameters, module._buffers  # pyright: ignore[reportPrivateUsage]
            module.__dict__["_parameters"] = {
                name: None if value is None else torch.nn.Parameter(value.to("meta"), value.requires_grad)
                for name, value in parameters.items()
            }
            module.__dict__["_buffers"] = {
                name: None if value is None else value.to("meta") for name, value in buffers.items()
            }
        yield
    finally:  # also when a stand-in could not be made
        for value, contents in held:
            value.clear()
            if isinstance(value, list):
                cast(list[Any], value).extend(contents)
            else:  # a dict or a set
                value.update(contents)
        for module, attributes in zip(modules, saved, strict=True):
            module.__dict__.clear()
            module.__dict__.update(attributes)
        cache.clear()
        cache.update(cached)


_HELD = (dict, list, set)
"""The containers of a module's attributes whose contents ``meta_stand_ins`` puts back (its
``_modules``, its hooks, its set of non-persistent buffers, a cache, a context's values), their
subclasses (``OrderedDict``, ``defaultdict``) included."""


def _contents(values: list[Any]) -> list[tuple[Any, Any]]:
    """Each container among ``values``, and those inside them, with a copy of its contents."""
    found: list[tuple[Any, Any]] = []
    seen: set[int] = set()
    pending: list[Any] = [value for value in values if isinstance(value, _HELD)]
    while pending:
        value: Any = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        found.append((value, copy.copy(value)))
        items = _items(value)
        pending += [cast(Any, item) for item in items if isinstance(item, _HELD)]
    return found


def _items(container: Any) -> list[Any]:
    """What a dict holds (its values), or a list or set."""
    if isinstance(container, dict):
        return list(cast("dict[Any, Any]", container).values())
    return list(cast("list[Any]", container))
