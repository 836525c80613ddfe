"""Sharding a tree with FSDP2 by address, and getting a plain tree back.

:func:`shard` wraps the nodes a selection picks (a layer type, address globs or a predicate: the
selectors of adapters) with ``torch.distributed.fsdp.fully_shard``, innermost first and the root
last, and reports the addresses it wrapped. The tree stays the tree: addresses, ``named_modules``
names and ``state_dict`` keys do not change, and automatic names, ``repr``, shape inference and
spec dumps see the classes the nodes were built as (``fluxion.tree.node_class``). Surgery on a
sharded tree is refused; :func:`unshard` gives a plain copy with whole tensors to change instead.

>>> import fluxion.layers as fl
>>> try:
...     shard(fl.Chain(fl.Linear(2, 2)), fl.Linear)
... except DistributedError as error:
...     print(str(error).split(";")[0])
no process group is running
"""

from __future__ import annotations

import copy
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, OffloadPolicy, fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from fluxion.adapters.targets import Targets, select
from fluxion.distributed.ranks import agreed, require_process_group
from fluxion.errors import AdapterError, DistributedError
from fluxion.tree import is_wrapped
from fluxion.weights._torch import buffers_of, named_modules, parameters_of

_plain_twins: weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module | str] = weakref.WeakKeyDictionary()
"""Each sharded root's twin on ``meta``, taken just before wrapping: the plain tree ``unshard``
fills (or why no twin could be taken)."""


@dataclass(frozen=True)
class Sharding:
    """What :func:`shard` did: the addresses it wrapped, innermost first, the root (``""``) last.

    >>> Sharding(wrapped=("blocks.0", "blocks.1", "")).describe()
    'wrapped 3 nodes with fully_shard: blocks.0, blocks.1, (root)'
    """

    wrapped: tuple[str, ...]

    def describe(self) -> str:
        """One line for logs: how many nodes were wrapped, and where.

        >>> Sharding(wrapped=("",)).describe()
        'wrapped 1 node with fully_shard: (root)'
        """
        count = len(self.wrapped)
        shown = ", ".join(address or "(root)" for address in self.wrapped)
        return f"wrapped {count} node{'s' if count != 1 else ''} with fully_shard: {shown}"


def shard(
    model: torch.nn.Module,
    targets: Targets | None = None,
    *,
    mesh: DeviceMesh | None = None,
    reshard_after_forward: bool | int | None = None,
    mp_policy: MixedPrecisionPolicy | None = None,
    offload_policy: OffloadPolicy | None = None,
) -> Sharding:
    """Wrap the nodes ``targets`` selects with FSDP2's ``fully_shard``, innermost first, then the root.

    ``targets`` is a layer type (or a tuple of types), an address glob (or a list of globs) or a
    predicate on modules, as for adapters; ``None`` wraps the root alone. ``mesh``,
    ``reshard_after_forward``, ``mp_policy`` (mixed precision) and ``offload_policy`` pass through
    to every ``fully_shard`` call. Build the model on ``meta`` to shard it before any weight exists
    (then :func:`fluxion.distributed.load` fills each rank's shard), or on a device to shard
    weights you already have. Everything is checked first, the same on every rank: a selection
    that matches nothing, a tree already sharded, a lazy layer, a 0-dimensional parameter, a tensor
    shared by two nodes that land in different groups. Selected nodes without parameters are left
    alone (there is nothing to shard in them). The returned :class:`Sharding` lists the addresses
    wrapped. Build optimizers after sharding: FSDP replaces the parameters with sharded ones.

    >>> import fluxion.layers as fl
    >>> shard(fl.Chain(fl.Linear(2, 2)), "head")
    Traceback (most recent call last):
    ...
    fluxion.errors.DistributedError: no process group is running; shard needs one: start the script \
with torchrun (or call torch.distributed.init_process_group) first
    """
    if mesh is None:
        require_process_group("shard")
    order = agreed(lambda: _wrap_order(model, targets))
    options: dict[str, Any] = {"reshard_after_forward": reshard_after_forward}
    if mesh is not None:
        options["mesh"] = mesh
    if mp_policy is not None:
        options["mp_policy"] = mp_policy
    if offload_policy is not None:
        options["offload_policy"] = offload_policy
    twin = _meta_twin(model)
    done: list[str] = []
    for address, node in order:
        try:
            fully_shard(node, **options)
        except Exception as error:
            shown = ", ".join(done) or "none"
            raise DistributedError(
                f"fully_shard failed on {address or 'the root'}: {type(error).__name__}: {error}; "
                f"already wrapped: {shown}. A wrapped node cannot be unwrapped: build the model again"
            ) from error
        done.append(address or "(root)")
    _plain_twins[model] = twin
    return Sharding(tuple(address for address, _ in order))


def _wrap_order(model: torch.nn.Module, targets: Targets | None) -> list[tuple[str, torch.nn.Module]]:
    """Every check that can be made before wrapping, and the nodes to wrap: deepest first, root last."""
    if not isinstance(model, torch.nn.Module):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise DistributedError(f"shard wraps a torch module (a tree), got {type(model).__name__}")
    if isinstance(model, DistributedDataParallel):
        raise DistributedError(
            "the model is replicated (DistributedDataParallel); a model is sharded or replicated, not both"
        )
    already = next(((name, node) for name, node in named_modules(model) if is_wrapped(node)), None)
    if already is not None:
        where = already[0] or "the root"
        raise DistributedError(
            f"the model is sharded already ({where} is a {type(already[1]).__name__}); shard a model once"
        )
    lazy = [
        name for name, tensor in _tensors(model) if isinstance(tensor, UninitializedParameter | UninitializedBuffer)
    ]
    if lazy:
        raise DistributedError(
            f"{lazy[0]} is not initialised yet (a lazy layer): run one forward pass, or give its sizes, before sharding"
        )
    scalars = [name for name, parameter in model.named_parameters() if parameter.dim() == 0]
    if scalars:
        raise DistributedError(
            f"{scalars[0]} is a 0-dimensional parameter, which fully_shard cannot shard; make it a tensor of "
            "shape (1,) (or a buffer) before sharding"
        )
    chosen: list[tuple[str, torch.nn.Module]] = []
    if targets is not None:
        try:
            # Names relative to the model given (a subtree, or torch modules inside a plain container).
            chosen = select(model, targets, _any_node, what="sharding", through_adapters=False)
        except AdapterError as error:
            raise DistributedError(str(error)) from None
    # A node without parameters has nothing to shard: wrapping it would only add hooks.
    nodes = [(name, node) for name, node in chosen if node is not model and _holds_parameters(node)]
    if chosen and not nodes and all(node is not model for _, node in chosen):
        shown = ", ".join(name for name, _ in chosen[:5])
        raise DistributedError(f"the targets select {shown}, but none of them holds parameters to shard")
    nodes.sort(key=lambda item: -item[0].count("."))  # stable: tree order within a depth
    order = [*nodes, ("", model)]
    _check_shared_tensors(model, order)
    return order


def _any_node(_: torch.nn.Module) -> bool:
    return True


def _holds_parameters(node: torch.nn.Module) -> bool:
    return next(iter(node.parameters()), None) is not None


def _tensors(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    named: list[tuple[str, torch.Tensor]] = list(model.named_parameters(remove_duplicate=False))
    return named + list(model.named_buffers(remove_duplicate=False))


def _check_shared_tensors(model: torch.nn.Module, order: list[tuple[str, torch.nn.Module]]) -> None:
    """A tensor two nodes share must fall in one group: the first wrapped node holding any of them.

    ``fully_shard`` takes each parameter into the group of the first wrapped node that holds it;
    a second node outside that group would then compute with a tensor nobody gathers for it.
    """
    owners: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(parameter), []).append(name)
    shared = {key: names for key, names in owners.items() if len(names) > 1}
    if not shared:
        return
    group_of: dict[int, str] = {}
    for address, node in order:
        for parameter in node.parameters():
            group_of.setdefault(id(parameter), address)
    for key, names in shared.items():
        group = group_of[key]
        outside = [name for name in names if group and not name.startswith(group + ".")]
        if outside:
            raise DistributedError(
                f"{' and '.join(names)} are one shared tensor, but the wrapped node {group!r} holds only some "
                f"of them ({outside[0]} is outside it); wrap a node that holds every one of them, or leave them "
                "to the root"
            )


def _meta_twin(model: torch.nn.Module) -> torch.nn.Module | str:
    """A copy of the tree with every tensor on ``meta`` (nothing allocated), shared tensors shared;
    or, for a tree that cannot be deep-copied (a module holding a lock), why not."""
    memo: dict[int, Any] = {}
    for _, tensor in _tensors(model):
        if id(tensor) in memo:
            continue
        empty = torch.empty_like(tensor, device="meta")
        if isinstance(tensor, torch.nn.Parameter):
            empty = torch.nn.Parameter(empty, requires_grad=tensor.requires_grad)
        memo[id(tensor)] = empty
    try:
        return copy.deepcopy(model, memo)
    except Exception as error:
        return f"copy.deepcopy could not copy the tree when it was sharded ({type(error).__name__}: {error})"


def unshard(model: torch.nn.Module) -> torch.nn.Module:
    """A plain copy of a tree that :func:`shard` wrapped, with whole tensors on the CPU, on every rank.

    Every rank takes part (the shards are gathered). The copy has the tree's structure, classes,
    names, modes and values, without FSDP: change it with surgery (eject adapters, merge them),
    save it, or run it in one process. The sharded model is left as it is.

    >>> import fluxion.layers as fl
    >>> unshard(fl.Chain(fl.Linear(2, 2)))
    Traceback (most recent call last):
    ...
    fluxion.errors.DistributedError: unshard takes a model that fluxion.distributed.shard wrapped; this one \
was not sharded with it
    """
    twin = _plain_twins.get(model) if isinstance(model, torch.nn.Module) else None  # pyright: ignore[reportUnnecessaryIsInstance]
    if twin is None:
        raise DistributedError(
            "unshard takes a model that fluxion.distributed.shard wrapped; this one was not sharded with it"
        )
    if isinstance(twin, str):
        raise DistributedError(f"unshard needs a plain copy of the tree, and {twin}")
    reshard(model)
    on_meta = [name for name, tensor in _tensors(model) if tensor.is_meta]
    if on_meta:
        shown = ", ".join(on_meta[:5]) + (" ..." if len(on_meta) > 5 else "")
        raise DistributedError(
            f"{len(on_meta)} tensors are still on the meta device (no values to gather): {shown}; "
            "load the model (fluxion.distributed.load) or initialise them first"
        )
    plain = copy.deepcopy(twin)
    whole: dict[int, torch.Tensor] = {}
    sharded = dict(_tensors(model))
    for name, tensor in _tensors(plain):
        source = sharded[name]
        if id(source) not in whole:
            value = source.full_tensor() if isinstance(source, DTensor) else source.detach()
            value = value.detach().to("cpu", copy=True)
            if isinstance(tensor, torch.nn.Parameter):  # frozen or trainable as the model is now
                value = torch.nn.Parameter(value, requires_grad=source.requires_grad)
            whole[id(source)] = value
        _set_tensor(plain, name, whole[id(source)])
    plain.train(model.training)
    for plain_node, node in zip(plain.modules(), model.modules(), strict=True):
        plain_node.training = node.training
    return plain


def _set_tensor(model: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    """Put ``value`` in the parameter or buffer slot ``name`` (a ``state_dict``-style key)."""
    owner_name, _, leaf = name.rpartition(".")
    owner = model.get_submodule(owner_name)
    if isinstance(value, torch.nn.Parameter):
        parameters_of(owner)[leaf] = value
    else:
        buffers_of(owner)[leaf] = value


def reshard(model: torch.nn.Module) -> None:
    """Make every FSDP node of the tree hold its sharded parameters again.

    After a forward, the root (and any node sharded with ``reshard_after_forward=False``) keeps
    its parameters whole, as plain tensors; ``load``, ``save`` and ``unshard`` call this first, and
    you may too before reading ``named_parameters()`` as DTensors. No communication is involved.

    >>> import fluxion.layers as fl
    >>> reshard(fl.Chain(fl.Linear(2, 2)))  # nothing sharded: nothing to do
    """
    if not isinstance(model, torch.nn.Module):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise DistributedError(f"reshard takes a torch module (a tree), got {type(model).__name__}")
    for node in model.modules():
        if isinstance(node, FSDPModule):
            node.reshard()
