"""``load``: a checkpoint into a tree, all or nothing.

Every key, shape and dtype, and every tensor on both sides (a checkpoint tensor without data, a
model tensor that cannot be written), is checked first (see ``plan``); then the tensors are
staged, and only then committed, with what the commit overwrites kept until it is done, so a
failure at any point leaves the model as it was. Into a model built on the ``meta`` device,
tensors are assigned rather than copied: they stay memory-mapped from the safetensors file, so
the weights exist once in memory.

>>> import pathlib, tempfile, torch, fluxion.layers as fl
>>> from fluxion.weights import load, save
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
>>> trained = fl.Chain(fl.Linear(2, 3), fl.ReLU())
>>> save(trained, path)
>>> with torch.device("meta"):
...     fresh = fl.Chain(fl.Linear(2, 3), fl.ReLU())
>>> result = load(fresh, path)
>>> torch.equal(fresh.Linear.weight, trained.Linear.weight), result.loaded
(True, ('Linear.weight', 'Linear.bias'))
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from itertools import chain
from typing import cast

import torch

from fluxion.errors import PickleCheckpointWarning, WeightsError, WeightsWarning, first_line
from fluxion.interrupts import interrupts_held
from fluxion.progress import Progress
from fluxion.tree import is_wrapped, place_of
from fluxion.weights._torch import buffers_of, parameters_of
from fluxion.weights.checkpoint import Checkpoint, Source, open_checkpoint
from fluxion.weights.mapping import KeyMapping, MappingLike
from fluxion.weights.plan import Assignment, Slot, make_plan

PROGRESS_THRESHOLD = 256 * 2**20
"""Checkpoints at least this large show a progress bar on a terminal."""


@dataclass(frozen=True)
class LoadResult:
    """What a load did: tree keys loaded, and the keys left out on each side (with ``strict=False``).

    ``still_meta`` lists the model's tensors still on the ``meta`` device afterwards (missing
    keys, non-persistent buffers): they have no values until you initialise them.

    >>> LoadResult(loaded=("w",), missing=(), unexpected=()).still_meta
    ()
    """

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    still_meta: tuple[str, ...] = ()


def load(
    model: torch.nn.Module,
    source: Source,
    *,
    strict: bool = True,
    mapping: MappingLike | None = None,
    prefix: str | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
) -> LoadResult:
    """Load a checkpoint into ``model``; on any problem raise ``WeightsError`` and change nothing.

    ``source`` is a safetensors file, a list of shards, a ``*.safetensors.index.json``, a folder
    written by ``save_pretrained``, a ``.pt``/``.bin`` state dict (read with
    ``torch.load(weights_only=True)``) or a dict of tensors. ``mapping`` turns the checkpoint's keys
    into tree keys (see ``KeyMapping``). ``prefix`` names one subtree by address: the model is cut
    down to it when it has that address, the checkpoint when its keys live under it, so a
    checkpoint of an encoder loads into ``model.encoder`` and the encoder part of a whole-model
    checkpoint loads into an encoder. ``dtype`` converts floating-point tensors; ``device`` moves
    them. Tensors of a ``meta`` model are replaced by the checkpoint's, memory-mapped when no
    conversion is needed; other tensors are copied in place, so optimizers keep their references
    (unless ``dtype`` or ``device`` changes them). Everything that can be checked is checked before
    the first write; Ctrl-C during the writes waits until they are done. No backup of the model is
    kept (it would double the memory), so a failure nobody foresaw while copying in place names the
    tensors already written. ``progress=None`` shows a bar on a terminal (stderr)
    for checkpoints of 256 MiB or more; ``True``/``False`` force it on or off.

    >>> import torch, fluxion.layers as fl
    >>> model = fl.Chain(encoder=fl.Chain(fl.Linear(2, 2)), head=fl.Linear(2, 1))
    >>> load(model, {"Linear.weight": torch.eye(2), "Linear.bias": torch.zeros(2)}, prefix="encoder").loaded
    ('encoder.Linear.weight', 'encoder.Linear.bias')
    >>> load(model, {"encoder.Linear.weight": torch.eye(3)}, strict=False)
    Traceback (most recent call last):
    ...
    fluxion.errors.WeightsError: state dict does not fit the model: 1 mismatched
      mismatched (1):
        encoder.Linear.weight: model has shape (2, 2), checkpoint 'encoder.Linear.weight' has (3, 3)
    """
    _check_arguments(model, strict=strict, progress=progress)
    key_mapping = KeyMapping.coerce(mapping)
    with open_checkpoint(source) as checkpoint:
        for origin in checkpoint.pickled:
            warnings.warn(
                f"{origin} is a pickled checkpoint; it was read with torch.load(weights_only=True). "
                "Prefer safetensors: fluxion.weights.save(model, 'model.safetensors') converts it once.",
                PickleCheckpointWarning,
                stacklevel=2,
            )
        plan = make_plan(model, checkpoint, key_mapping, prefix=prefix, strict=strict, dtype=dtype, device=device)
        large = checkpoint.nbytes >= PROGRESS_THRESHOLD
        show: bool | None = (None if large else False) if progress is None else progress
        _apply(plan.assignments, checkpoint, show_progress=show, label=f"loading {_short(checkpoint.name)}")
    loaded = tuple(slot.key for assignment in plan.assignments for slot in assignment.slots)
    still_meta = _still_meta(model)
    if still_meta:
        warnings.warn(
            f"{len(still_meta)} tensors are still on the meta device after loading (no values until you "
            f"initialise them): {', '.join(still_meta[:5])}{' ...' if len(still_meta) > 5 else ''}",
            WeightsWarning,
            stacklevel=2,
        )
    return LoadResult(loaded, tuple(plan.missing), tuple(plan.unexpected), still_meta)


def _check_arguments(model: object, *, strict: object, progress: object) -> None:
    if not isinstance(model, torch.nn.Module):
        raise WeightsError(f"load fills a torch module; got {type(model).__name__}")
    sharded = next((node for node in model.modules() if is_wrapped(node)), None)
    if sharded is not None:
        raise WeightsError(
            f"the model is sharded ({place_of(sharded)} is wrapped by {type(sharded).__name__}); load into a "
            "sharded model with fluxion.distributed.load, which reads each rank's part"
        )
    if not isinstance(strict, bool):
        raise WeightsError(f"strict must be True or False, got {strict!r}")
    if progress is not None and not isinstance(progress, bool):
        raise WeightsError(f"progress must be True, False or None (automatic), got {progress!r}")


def _apply(assignments: list[Assignment], checkpoint: Checkpoint, *, show_progress: bool | None, label: str) -> None:
    """Stage every tensor, then commit; a failure in either leaves the model as it was."""
    total = sum(
        math.prod(assignment.slots[0].tensor.shape) * checkpoint.entries[assignment.source].dtype.itemsize
        for assignment in assignments
    )
    with Progress(total, label, enabled=show_progress) as bar:
        copies, replacements = _stage(assignments, checkpoint, bar)
        _commit(copies, replacements, checkpoint.name, bar)


_Copy = tuple[str, torch.Tensor, torch.Tensor]
"""A model key, the model's tensor, and the values to copy into it."""

_Replacement = tuple[tuple[Slot, ...], torch.Tensor]
"""The slots of one tied group and the new tensor they all get."""


def _stage(
    assignments: list[Assignment], checkpoint: Checkpoint, bar: Progress
) -> tuple[list[_Copy], list[_Replacement]]:
    """Read and convert every tensor the load needs; nothing in the model changes here."""
    model_memory = {_storage(assignment.slots[0].tensor) for assignment in assignments if assignment.in_place}
    copies: list[_Copy] = []
    replacements: list[_Replacement] = []
    handed_out: set[tuple[str, tuple[object, ...]]] = set()
    for assignment in assignments:
        key, current = assignment.slots[0].key, assignment.slots[0].tensor
        try:
            tensor = assignment.target.apply(checkpoint.tensor(assignment.source))
            if assignment.in_place:
                if _same_view(tensor, current):
                    bar.advance(current.nbytes)
                    continue  # the model's own tensor: it already holds these values
                if _storage(tensor) in model_memory:
                    # The model's memory: another copy of this load could overwrite it before it is read.
                    tensor = tensor.clone()
                copies.append((key, current, tensor))
                continue
            converted = _settled(tensor.to(device=assignment.device, dtype=assignment.dtype))
            # Share the checkpoint's memory only when nobody else can see it: not the caller's own
            # tensors, and not a tensor already given to another (untied) slot.
            use = (assignment.source, assignment.target.steps)
            if _same_memory(converted, tensor) and (checkpoint.borrowed or use in handed_out):
                converted = converted.clone()
            handed_out.add(use)
            if assignment.slots[0].is_parameter:
                converted = torch.nn.Parameter(converted, requires_grad=current.requires_grad)
        except WeightsError:
            raise
        except Exception as error:
            raise WeightsError(
                f"{checkpoint.name}: cannot prepare {assignment.source!r} for {key}: {first_line(error)}; "
                "nothing was loaded"
            ) from error
        replacements.append((assignment.slots, converted))
        bar.advance(converted.nbytes)
    return copies, replacements


def _commit(copies: list[_Copy], replacements: list[_Replacement], name: str, bar: Progress) -> None:
    """Put every staged tensor in the model, with Ctrl-C held until the end.

    Replacing tensors is plain assignment, undone on failure. The in-place copies come last: each
    writes values of the same shape (converted by ``copy_``, one tensor at a time) into a tensor
    checked writable, which nothing foreseeable makes fail. Backing each one up would hold the
    model twice in memory, so a failure nobody foresaw there is reported with the tensors it had
    already written."""
    replaced: list[tuple[Slot, torch.Tensor]] = []
    written: list[str] = []
    key = ""
    with interrupts_held():
        try:
            for slots, value in replacements:
                for slot in slots:
                    key = slot.key
                    replaced.append((slot, slot.tensor))
                    _put(slot, value)
            with torch.no_grad():
                for key, current, values in copies:
                    current.copy_(values)
                    written.append(key)
                    bar.advance(current.nbytes)
        except BaseException as error:
            for slot, old in reversed(replaced):
                _put(slot, old)
            if not isinstance(error, Exception):
                raise
            if not written:
                raise WeightsError(
                    f"{name}: loading {key} failed: {first_line(error)}; the model was left as it was"
                ) from error
            shown = ", ".join(written[:5]) + (" ..." if len(written) > 5 else "")
            raise WeightsError(
                f"{name}: loading {key} failed: {first_line(error)}; {len(written)} tensors copied in place "
                f"before it hold the checkpoint's values ({shown}), every other tensor is as it was"
            ) from error


def _put(slot: Slot, value: torch.Tensor) -> None:
    if slot.is_parameter:
        parameters_of(slot.module)[slot.name] = cast(torch.nn.Parameter, value)
    else:
        buffers_of(slot.module)[slot.name] = value


def _storage(tensor: torch.Tensor) -> tuple[torch.device, int]:
    return tensor.device, tensor.untyped_storage().data_ptr()


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` are the same elements of the same memory."""
    return (
        _storage(a) == _storage(b)
        and a.storage_offset() == b.storage_offset()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
    )


def _settled(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` as a model should keep it: a matrix whose rows or columns are unit-strided (a
    transpose or a slice of the checkpoint's tensor, as from a fused projection) stays a view,
    since matrix products read such layouts directly and copying would hold the weights twice;
    any other non-contiguous layout (a permuted kernel) is copied once here rather than at every
    forward."""
    unit_strided = any(stride == 1 and size > 1 for stride, size in zip(tensor.stride(), tensor.shape, strict=True))
    if tensor.is_contiguous() or (tensor.dim() == 2 and unit_strided):
        return tensor
    return tensor.contiguous()


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return _storage(a) == _storage(b)


def _still_meta(model: torch.nn.Module) -> tuple[str, ...]:
    tensors = chain(model.named_parameters(), model.named_buffers())
    return tuple(key for key, tensor in tensors if tensor.is_meta)


def _short(name: str) -> str:
    return os.path.basename(name) or name
