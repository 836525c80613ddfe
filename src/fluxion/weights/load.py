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

import os
from dataclasses import dataclass
from typing import cast

import torch

from fluxion.progress import Progress
from fluxion.weights._torch import buffers_of, parameters_of
from fluxion.weights.checkpoint import Checkpoint, Source, open_checkpoint
from fluxion.weights.mapping import KeyMapping, MappingLike
from fluxion.weights.plan import Assignment, Slot, make_plan

PROGRESS_THRESHOLD = 256 * 2**20
"""Checkpoints at least this large show a progress bar on a terminal."""


@dataclass(frozen=True)
class LoadResult:
    """What a load did: tree keys loaded, and (with ``strict=False``) the keys left out on each side.

    >>> LoadResult(loaded=("w",), missing=(), unexpected=()).missing
    ()
    """

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]


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
        plan = make_plan(model, checkpoint, key_mapping, prefix=prefix, strict=strict, dtype=dtype, device=device)
        large = checkpoint.nbytes >= PROGRESS_THRESHOLD
        show: bool | None = (None if large else False) if progress is None else progress
        _apply(plan.assignments, checkpoint, show_progress=show, label=f"loading {_short(checkpoint.name)}")
    loaded = tuple(slot.key for assignment in plan.assignments for slot in assignment.slots)
    return LoadResult(loaded, tuple(plan.missing), tuple(plan.unexpected))


def _apply(assignments: list[Assignment], checkpoint: Checkpoint, *, show_progress: bool | None, label: str) -> None:
    """Stage every converted tensor, then commit: nothing in the model changes until all are ready."""
    total = sum(checkpoint.entries[assignment.source].nbytes for assignment in assignments)
    in_place: list[tuple[torch.Tensor, torch.Tensor]] = []
    replacements: list[tuple[tuple[Slot, ...], torch.Tensor]] = []
    with Progress(total, label, enabled=show_progress) as bar:
        for assignment in assignments:
            tensor = assignment.target.apply(checkpoint.tensor(assignment.source))
            current = assignment.slots[0].tensor
            if not current.is_meta and current.dtype == assignment.dtype and current.device == assignment.device:
                in_place.append((current, tensor))
                continue
            converted = tensor.to(device=assignment.device, dtype=assignment.dtype).contiguous()
            replacements.append((assignment.slots, converted))
            bar.advance(_nbytes(tensor))
        with torch.no_grad():
            for current, tensor in in_place:
                current.copy_(tensor)
                bar.advance(_nbytes(tensor))
        for slots, tensor in replacements:
            _replace(slots, tensor)


def _replace(slots: tuple[Slot, ...], tensor: torch.Tensor) -> None:
    """Put ``tensor`` in every slot of a tied group (one new Parameter shared by all of them)."""
    first = slots[0].tensor
    value: torch.Tensor = tensor
    if slots[0].is_parameter:
        value = torch.nn.Parameter(tensor, requires_grad=first.requires_grad)
    for slot in slots:
        if slot.is_parameter:
            parameters_of(slot.module)[slot.name] = cast(torch.nn.Parameter, value)
        else:
            buffers_of(slot.module)[slot.name] = value


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def _short(name: str) -> str:
    return os.path.basename(name) or name
