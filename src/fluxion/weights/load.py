"""``load``: a checkpoint into a tree, all or nothing.

Every key, shape and dtype is checked first (see ``plan``); only then are tensors copied. Into a
model built on the ``meta`` device, tensors are assigned rather than copied: they stay
memory-mapped from the safetensors file, so the weights exist once in memory.

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

from fluxion.progress import Progress
from fluxion.weights._torch import buffers_of, parameters_of
from fluxion.weights.checkpoint import Checkpoint, Source, open_checkpoint
from fluxion.weights.errors import PickleCheckpointWarning, WeightsWarning
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
    (unless ``dtype`` or ``device`` changes them). ``progress=None`` shows a bar on a terminal (stderr)
    for checkpoints of 256 MiB or more; ``True``/``False`` force it on or off.

    >>> import torch, fluxion.layers as fl
    >>> model = fl.Chain(encoder=fl.Chain(fl.Linear(2, 2)), head=fl.Linear(2, 1))
    >>> load(model, {"Linear.weight": torch.eye(2), "Linear.bias": torch.zeros(2)}, prefix="encoder").loaded
    ('encoder.Linear.weight', 'encoder.Linear.bias')
    >>> load(model, {"encoder.Linear.weight": torch.eye(3)}, strict=False)
    Traceback (most recent call last):
    ...
    fluxion.weights.errors.WeightsError: state dict does not fit the model: 1 mismatched
      mismatched (1):
        encoder.Linear.weight: model has shape (2, 2), checkpoint 'encoder.Linear.weight' has (3, 3)
    """
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


def _apply(assignments: list[Assignment], checkpoint: Checkpoint, *, show_progress: bool | None, label: str) -> None:
    """Stage every converted tensor, then commit: nothing in the model changes until all are ready,
    and the commit itself is plain assignments and same-shape copies, which cannot fail."""
    total = sum(
        math.prod(assignment.slots[0].tensor.shape) * checkpoint.entries[assignment.source].dtype.itemsize
        for assignment in assignments
    )
    in_place: list[tuple[torch.Tensor, torch.Tensor]] = []
    replacements: list[tuple[tuple[Slot, ...], torch.Tensor]] = []
    handed_out: set[tuple[str, tuple[object, ...]]] = set()
    with Progress(total, label, enabled=show_progress) as bar:
        for assignment in assignments:
            tensor = assignment.target.apply(checkpoint.tensor(assignment.source))
            current = assignment.slots[0].tensor
            if not current.is_meta and current.dtype == assignment.dtype and current.device == assignment.device:
                in_place.append((current, tensor))
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
            replacements.append((assignment.slots, converted))
            bar.advance(converted.nbytes)
        with torch.no_grad():
            for current, tensor in in_place:
                current.copy_(tensor)
                bar.advance(current.nbytes)
        for slots, value in replacements:
            for slot in slots:
                if slot.is_parameter:
                    parameters_of(slot.module)[slot.name] = cast(torch.nn.Parameter, value)
                else:
                    buffers_of(slot.module)[slot.name] = value


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
    return a.device == b.device and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _still_meta(model: torch.nn.Module) -> tuple[str, ...]:
    tensors = chain(model.named_parameters(), model.named_buffers())
    return tuple(key for key, tensor in tensors if tensor.is_meta)


def _short(name: str) -> str:
    return os.path.basename(name) or name
