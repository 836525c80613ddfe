"""``load``: a checkpoint into a sharded tree, each rank reading only the blocks its shards hold.

The plan is fluxion.weights' own (every key, shape and dtype checked, key mappings applied,
shared tensors loaded once), made on every rank from the checkpoint's headers; then each rank
reads its blocks into new memory (``fluxion.distributed.sources``), and only when every rank has
all of its blocks does any rank change its model. A problem anywhere raises the same error on
every rank, and no model changes. A model built on ``meta`` gets the read blocks as its tensors
(no second copy); a model with memory gets the values copied in, so optimizers keep their tensors.

>>> import torch, fluxion.layers as fl
>>> model = fl.Chain(fl.Linear(2, 2))
>>> load(model, {"Linear.weight": torch.eye(2), "Linear.bias": torch.zeros(2)}).loaded
('Linear.weight', 'Linear.bias')
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from itertools import chain
from typing import cast

import torch
from torch.distributed.tensor import DTensor

from fluxion.distributed.adapter_keys import adapter_keys, through_adapters
from fluxion.distributed.boxes import in_source_order, local_box, source_box
from fluxion.distributed.dcp_pieces import DcpPieces
from fluxion.distributed.pieces import Pieces, Request
from fluxion.distributed.ranks import agreed, device_of_mesh, rank, same_everywhere
from fluxion.distributed.sharding import reshard
from fluxion.distributed.sources import open_pieces
from fluxion.errors import DistributedError, WeightsError, WeightsWarning
from fluxion.interrupts import interrupts_held
from fluxion.progress import Progress
from fluxion.weights import LoadResult, MappingLike, Source
from fluxion.weights._torch import buffers_of, parameters_of
from fluxion.weights.mapping import KeyMapping, Target
from fluxion.weights.plan import Assignment, Plan, Slot, checked_device, make_plan

PROGRESS_THRESHOLD = 256 * 2**20
"""Loads of at least this many bytes (on this rank) show a progress bar on rank 0's terminal."""


@dataclass(frozen=True)
class _Staged:
    """One assignment's new memory on this rank, and the read that fills it."""

    assignment: Assignment
    values: torch.Tensor
    request: Request


def load(
    model: torch.nn.Module,
    source: Source,
    *,
    mapping: MappingLike | None = None,
    strict: bool = True,
    prefix: str | None = None,
    adapters_only: bool = False,
    device: torch.device | str | None = None,
    progress: bool | None = None,
) -> LoadResult:
    """Load ``source`` into a (sharded) tree; each rank reads only the blocks it holds.

    ``source`` is a safetensors file, an index of shards (``*.safetensors.index.json``), a folder
    of safetensors files (``save_pretrained``'s, or the one :func:`fluxion.distributed.save`
    writes), a folder in torch.distributed.checkpoint's own format (read by DCP, box by box), a
    ``.pt`` state dict or a dict of tensors (these two are read whole on each rank).
    ``mapping``, ``strict`` and ``prefix`` work as in ``fluxion.weights.load``: renames,
    transposes and splits apply, and each rank still reads only its block of the checkpoint
    tensor. Adapters are looked through: a checkpoint of the model without adapters loads into
    the layers they wrap (``head.weight`` into ``head.target.weight``), and the adapters' own
    tensors, when they already hold values (``lora.load`` put them in), are loaded if the
    checkpoint has them and are not missing if it has not. ``adapters_only=True`` loads an
    adapter checkpoint: every adapter tensor of the model must be in it, and nothing else may be.

    The tensors of a ``meta`` model are made on ``device`` (default: the device of the sharded
    tensors' mesh, the current GPU for a CUDA mesh, else the CPU; pass ``"cpu"`` when FSDP
    offloads parameters to the CPU). Every rank must call it; every rank raises the same error,
    and no rank's model changes, when anything is wrong. Works without a process group too (one
    process holds everything).

    >>> import torch, fluxion.layers as fl
    >>> load(fl.Chain(fl.Linear(2, 2)), {"Linear.weight": torch.eye(3)}, strict=False)
    Traceback (most recent call last):
    ...
    fluxion.errors.WeightsError: state dict does not fit the model: 1 mismatched
      mismatched (1):
        Linear.weight: model has shape (2, 2), checkpoint 'Linear.weight' has (3, 3)
    """
    tree = tree_of(model)

    def prepare() -> tuple[Pieces, Plan]:
        _check_flags(strict=strict, adapters_only=adapters_only, progress=progress)
        key_mapping = _ThroughAdapters(KeyMapping.coerce(mapping), through_adapters(tree))
        with_values = {key for key in adapter_keys(tree) if not _tensor_at(tree, key).is_meta}
        pieces = open_pieces(source)
        try:
            plan = make_plan(
                tree,
                pieces.checkpoint,
                key_mapping,
                prefix=prefix,
                strict=strict and not adapters_only,
                optional=frozenset() if adapters_only else with_values,
            )
            if adapters_only:
                _check_adapter_plan(tree, plan, pieces.checkpoint.name)
        except BaseException:
            pieces.close()
            raise
        return pieces, plan

    reshard(tree)
    pieces, plan = agreed(prepare)
    try:
        # Ranks reading different checkpoints would plan different reads (and DCP would wait forever).
        same_everywhere(_signature(pieces), "checkpoints")
        staged = agreed(lambda: _allocate(plan, pieces, device))
        agreed(lambda: _read(staged, pieces, progress))
    finally:
        pieces.close()
    _commit_everywhere(staged, pieces.checkpoint.name)
    loaded = tuple(slot.key for assignment in plan.assignments for slot in assignment.slots)
    still_meta = tuple(key for key, tensor in chain(tree.named_parameters(), tree.named_buffers()) if tensor.is_meta)
    if still_meta:
        shown = ", ".join(still_meta[:5]) + (" ..." if len(still_meta) > 5 else "")
        warnings.warn(
            f"{len(still_meta)} tensors are still on the meta device after loading (no values until you "
            f"initialise them): {shown}",
            WeightsWarning,
            stacklevel=2,
        )
    missing = tuple(plan.missing)
    return LoadResult(loaded, missing, tuple(plan.unexpected), still_meta)


class _ThroughAdapters(KeyMapping):
    """The user's mapping, then: a key of a layer an adapter now wraps goes to where the layer is."""

    def __init__(self, inner: KeyMapping, moved: dict[str, str]) -> None:
        super().__init__()
        self._inner = inner
        self._moved = moved

    def targets(self, key: str) -> tuple[Target, ...]:
        found = self._inner.targets(key)
        if not self._moved:
            return found
        return tuple(Target(self._moved.get(target.key, target.key), target.steps) for target in found)


def _tensor_at(model: torch.nn.Module, key: str) -> torch.Tensor:
    owner, _, name = key.rpartition(".")
    module = model.get_submodule(owner)
    tensor = parameters_of(module).get(name)
    return tensor if tensor is not None else cast(torch.Tensor, buffers_of(module)[name])


def tree_of(model: torch.nn.Module) -> torch.nn.Module:
    """The tree itself: ``model``, or the module a ``DistributedDataParallel`` wrapper holds.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain()
    >>> tree_of(model) is model
    True
    """
    if not isinstance(model, torch.nn.Module):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise DistributedError(f"expected a torch module (a tree), got {type(model).__name__}")
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        inner = cast(object, model.module)  # pyright: ignore[reportUnknownMemberType]
        if isinstance(inner, torch.nn.Module):
            return inner
    return model


def _signature(pieces: Pieces) -> str:
    """What must be the same on every rank: the kind of checkpoint and every key, shape and dtype
    (not its path: each rank may read its own copy)."""
    entries = sorted((entry.key, entry.shape, str(entry.dtype)) for entry in pieces.checkpoint.entries.values())
    digest = hashlib.sha256(repr(entries).encode()).hexdigest()[:12]
    kind = "a folder in DCP's format" if isinstance(pieces, DcpPieces) else "safetensors or a state dict"
    return f"{kind}, {len(entries)} tensors (digest {digest})"


def _check_flags(*, strict: object, adapters_only: object, progress: object) -> None:
    if not isinstance(strict, bool) or not isinstance(adapters_only, bool):
        raise DistributedError(f"strict and adapters_only must be True or False, got {strict!r} and {adapters_only!r}")
    if progress is not None and not isinstance(progress, bool):
        raise DistributedError(f"progress must be True, False or None (automatic), got {progress!r}")


def _check_adapter_plan(model: torch.nn.Module, plan: Plan, name: str) -> None:
    """An adapter checkpoint must hold every adapter tensor of the model, and nothing else."""
    wanted = adapter_keys(model)
    if not wanted:
        raise DistributedError(f"adapters_only: the model has no LoRA adapters to load {name} into; inject them first")
    missing = sorted(wanted & set(plan.missing))
    others = sorted(slot.key for assignment in plan.assignments for slot in assignment.slots if slot.key not in wanted)
    problems = [f"missing adapter tensors: {', '.join(missing[:5])}"] if missing else []
    if others:
        problems.append(f"tensors that are not adapter tensors: {', '.join(others[:5])}")
    if plan.unexpected:
        problems.append(f"keys the model does not have: {', '.join(plan.unexpected[:5])}")
    if problems:
        raise WeightsError(
            f"{name} is not an adapter checkpoint of this model: {'; '.join(problems)}",
            missing=tuple(missing),
            unexpected=tuple(plan.unexpected),
        )


def _allocate(plan: Plan, pieces: Pieces, given: torch.device | str | None) -> list[_Staged]:
    """New memory for this rank's block of every assigned tensor, and what to read into it.

    A step of its own, agreed before any reading: reading a DCP folder is a collective call, which
    a rank that failed here (out of memory, say) would never join.
    """
    checkpoint = pieces.checkpoint
    device = checked_device(given, error=DistributedError) or _compute_device(plan)
    staged: list[_Staged] = []
    for assignment in plan.assignments:
        current = assignment.slots[0].tensor
        box = local_box(current)
        target_device = current.device if not current.is_meta else device
        values = torch.empty([stop - start for start, stop in box], dtype=assignment.dtype, device=target_device)
        steps = assignment.target.steps
        source = source_box(box, steps, checkpoint.entries[assignment.source].shape)
        request = Request(assignment.source, source, in_source_order(values, steps))
        staged.append(_Staged(assignment, values, request))
    return staged


def _read(staged: list[_Staged], pieces: Pieces, progress: bool | None) -> None:
    """Read every block into its new memory; the model does not change."""
    checkpoint = pieces.checkpoint
    requests = [item.request for item in staged]
    # DCP reads everything in one collective call; safetensors tensor by tensor, with progress.
    batches = [requests] if isinstance(pieces, DcpPieces) else [[request] for request in requests]
    total = sum(request.out.nbytes for request in requests)
    enabled: bool | None = progress if progress is not None else (None if total >= PROGRESS_THRESHOLD else False)
    label = f"loading {os.path.basename(checkpoint.name) or checkpoint.name}"
    with Progress(total, label, enabled=enabled if rank() == 0 else False) as bar:
        for batch in batches:
            try:
                pieces.read_all(batch)
            except WeightsError:
                raise
            except Exception as error:
                raise WeightsError(
                    f"{checkpoint.name}: cannot read {batch[0].key!r}: {type(error).__name__}: {error}"
                ) from error
            bar.advance(sum(request.out.nbytes for request in batch))


def _compute_device(plan: Plan) -> torch.device:
    """Where new tensors of a ``meta`` model go: its mesh's device, or the CPU for an unsharded model."""
    for assignment in plan.assignments:
        tensor = assignment.slots[0].tensor
        if isinstance(tensor, DTensor):
            return device_of_mesh(tensor.device_mesh.device_type)
    return torch.device("cpu")


def _commit_everywhere(staged: list[_Staged], name: str) -> None:
    """Commit on every rank; if any rank's commit failed, every rank undoes what it put in.

    Nothing foreseeable fails here (every block is read and checked). Blocks copied in place into a
    model with values cannot be undone (a backup would hold the model twice); the error says so.
    """
    replaced: list[tuple[Slot, torch.Tensor]] = []
    copied: list[str] = []
    with interrupts_held():
        local: BaseException | None = None
        try:
            _commit(staged, replaced, copied)
        except BaseException as error:  # reported through agreed below, on every rank
            local = error
        try:
            agreed(lambda: _raise_commit_failure(local, name, copied))
        except BaseException:
            for slot, old in reversed(replaced):
                _put(slot, old)
            raise


def _commit(staged: list[_Staged], replaced: list[tuple[Slot, torch.Tensor]], copied: list[str]) -> None:
    """Put every staged block in the model, recording what it replaced (and copied in place).

    Replacements go first: they can be undone. The in-place copies come last, each writing values
    of the same shape into a tensor checked writable, which nothing foreseeable makes fail.
    """
    replacing = [item for item in staged if not item.assignment.in_place][::-1]
    copying = [item for item in staged if item.assignment.in_place]
    staged.clear()  # each block goes once it is in (FSDP may copy it into padded memory of its own)
    while replacing:
        item = replacing.pop()
        current = item.assignment.slots[0].tensor
        new = _as_model_tensor(current, item.values, item.assignment.slots[0].is_parameter)
        for slot in item.assignment.slots:
            replaced.append((slot, slot.tensor))
            _put(slot, new)
    with torch.no_grad():
        for item in copying:
            current = item.assignment.slots[0].tensor
            (current.to_local() if isinstance(current, DTensor) else current).copy_(item.values)
            copied.append(item.assignment.slots[0].key)


def _raise_commit_failure(error: BaseException | None, name: str, copied: list[str]) -> None:
    if error is None:
        return
    if not isinstance(error, Exception):
        raise error
    written = (
        f"; {len(copied)} tensors copied in place before it keep the checkpoint's values ({', '.join(copied[:5])})"
        if copied
        else "; the model was left as it was"
    )
    raise DistributedError(f"{name}: putting the loaded tensors in failed: {type(error).__name__}: {error}{written}")


def _as_model_tensor(current: torch.Tensor, values: torch.Tensor, is_parameter: bool) -> torch.Tensor:
    new: torch.Tensor = values
    if isinstance(current, DTensor):
        new = DTensor.from_local(
            values,
            current.device_mesh,
            current.placements,
            run_check=False,
            shape=current.shape,
            stride=current.stride(),
        )
    if is_parameter:
        new = torch.nn.Parameter(new, requires_grad=current.requires_grad)
    return new


def _put(slot: Slot, value: torch.Tensor) -> None:
    """Set the slot's tensor the way ``load_state_dict(assign=True)`` does, so FSDP takes it in."""
    module = slot.module
    table = parameters_of(module) if slot.is_parameter else buffers_of(module)
    if not isinstance(table.get(slot.name), DTensor):
        table[slot.name] = value  # pyright: ignore[reportArgumentType]
        return
    # FSDP2 re-registers a sharded parameter after load_state_dict (a hook on the owning module);
    # going through it keeps FSDP's record of the parameter in step with the module.
    module.load_state_dict({slot.name: value}, strict=False, assign=True)
