"""Saving a sharded tree through torch.distributed.checkpoint, and consolidating it into one file.

:func:`save` hands the model's ``state_dict`` (sharded tensors and all) to DCP with its Hugging
Face storage writer: each rank writes the pieces it holds into a safetensors file of its own,
whose header says where each piece sits. The folder is written under a temporary name and renamed
once every rank is done, so an interrupted save never leaves a half-written checkpoint under the
folder's name. :func:`consolidate` joins the pieces into one safetensors file that
``fluxion.weights.load`` and ``safetensors`` read, one tensor in memory at a time.

>>> import pathlib, tempfile, torch
>>> import fluxion.layers as fl
>>> from fluxion import weights
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "checkpoint"
>>> model = fl.Chain(fl.Linear(3, 2))
>>> save(model, folder)  # one process: one piece per tensor
>>> consolidate(folder, folder.parent / "model.safetensors")
>>> fresh = fl.Chain(fl.Linear(3, 2))
>>> _ = weights.load(fresh, folder.parent / "model.safetensors")
>>> torch.equal(fresh.Linear.weight, model.Linear.weight)
True
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import cast

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageWriter
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save  # pyright: ignore[reportUnknownVariableType]

from fluxion.distributed.adapter_keys import adapter_keys
from fluxion.distributed.loading import tree_of
from fluxion.distributed.pieces import Request
from fluxion.distributed.ranks import agreed, describe_checkpoint_failure, rank, running, same_everywhere
from fluxion.distributed.sharding import reshard
from fluxion.distributed.sources import SIDECAR, open_pieces, read_aliases
from fluxion.errors import DistributedError
from fluxion.files import write_atomically, write_text_atomically
from fluxion.progress import Progress
from fluxion.weights.checkpoint import SAFETENSORS_DTYPES
from fluxion.weights.plan import ALIASES_METADATA

_DTYPE_NAMES = {dtype: name for name, dtype in SAFETENSORS_DTYPES.items()}


def save(model: torch.nn.Module, folder: str | os.PathLike[str], *, adapters_only: bool = False) -> None:
    """Write the (sharded) model's tensors into ``folder``; each rank writes the pieces it holds.

    Every rank must call it, with the same folder, on a filesystem every rank sees. A tensor
    shared by several keys (tied embeddings) is written once; the other keys are recorded and
    :func:`fluxion.distributed.load` and :func:`consolidate` restore them. ``adapters_only=True``
    writes only the LoRA adapters' tensors. An existing ``folder`` is replaced once the new one is
    complete. Read the folder back with ``fluxion.distributed.load``, or :func:`consolidate` it.

    >>> import pathlib, tempfile
    >>> import fluxion.layers as fl
    >>> save(fl.Chain(fl.Linear(2, 2)), pathlib.Path(tempfile.mkdtemp()) / "missing" / "checkpoint")
    Traceback (most recent call last):
    ...
    fluxion.errors.DistributedError: cannot save into '.../missing/checkpoint': folder '.../missing' does not exist
    """
    tree = tree_of(model)

    def prepare() -> tuple[Path, dict[str, torch.Tensor], dict[str, str]]:
        if not isinstance(adapters_only, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise DistributedError(f"adapters_only must be True or False, got {adapters_only!r}")
        destination = _checked_destination(folder)
        return destination, *_tensors_to_save(tree, adapters_only)

    reshard(tree)
    destination, tensors, aliases = agreed(prepare)
    same_everywhere((os.path.abspath(destination), adapters_only), "folders (and adapters_only) to save with")
    temporary = _shared_name(destination)
    try:
        agreed(lambda: temporary.mkdir() if rank() == 0 else None)  # every rank waits for it
        agreed(lambda: _visible(temporary))
        agreed(lambda: _write(tensors, temporary))
        agreed(lambda: _finish(temporary, destination, tensors, aliases) if rank() == 0 else None)
    finally:
        if rank() == 0 and temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


def _checked_destination(folder: object) -> Path:
    if not isinstance(folder, str | os.PathLike):
        raise DistributedError(f"save writes into a folder (a path), got {type(folder).__name__}")
    given = Path(cast("str | os.PathLike[str]", folder))
    destination = given.absolute()
    if given.name in ("", ".", ".."):
        raise DistributedError(f"cannot save into {os.fspath(folder)!r}: name the checkpoint's folder itself")
    parent = destination.parent
    if not parent.is_dir():
        raise DistributedError(
            f"cannot save into {os.fspath(destination)!r}: folder {os.fspath(parent)!r} does not exist"
        )
    if destination.exists() and not destination.is_dir():
        raise DistributedError(f"cannot save into {os.fspath(destination)!r}: it is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise DistributedError(
            f"cannot save into {os.fspath(destination)!r}: folder {os.fspath(parent)!r} is not writable"
        )
    if destination.is_dir() and any(destination.iterdir()) and not (destination / SIDECAR).is_file():
        raise DistributedError(
            f"cannot save into {os.fspath(destination)!r}: it is a folder that is not a checkpoint save wrote (no "
            f"{SIDECAR}), and save replaces the whole folder; remove it or choose another"
        )
    return destination


def _tensors_to_save(tree: torch.nn.Module, adapters_only: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    state = cast("dict[str, torch.Tensor]", tree.state_dict(keep_vars=True))
    if adapters_only:
        wanted = adapter_keys(tree)
        if not wanted:
            raise DistributedError("adapters_only: the model has no LoRA adapters to save")
        state = {key: tensor for key, tensor in state.items() if key in wanted}
    tensors: dict[str, torch.Tensor] = {}
    kept: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for key, tensor in state.items():
        first = kept.setdefault(id(tensor), key)
        if first != key:
            aliases[key] = first
            continue
        if tensor.is_meta:
            raise DistributedError(f"{key} is on the meta device (it has no values yet); load or initialise it first")
        if tensor.dtype not in _DTYPE_NAMES:
            raise DistributedError(f"{key} holds {tensor.dtype}, which a safetensors file cannot store")
        tensors[key] = tensor.detach()
    return tensors, aliases


def _shared_name(destination: Path) -> Path:
    """A temporary folder next to ``destination``, the same on every rank (rank 0 picks it)."""
    names = [f".{destination.name}.{secrets.token_hex(4)}.partial"]
    if running():
        dist.broadcast_object_list(cast("list[object]", names), src=0)
    return destination.with_name(names[0])


def _visible(temporary: Path) -> None:
    if not temporary.is_dir():
        raise DistributedError(
            f"{temporary}, made by rank 0, is not there for this rank: save writes into a folder every rank "
            "sees (a shared filesystem)"
        )


def _write(tensors: dict[str, torch.Tensor], temporary: Path) -> None:
    writer = HuggingFaceStorageWriter(path=os.fspath(temporary), save_distributed=True)
    try:
        with warnings.catch_warnings():
            # Without a process group DCP saves in this one process, as meant; it warns that it assumes so.
            warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
            dcp_save(cast("dict[str, object]", tensors), storage_writer=writer)
    except CheckpointException as error:  # DCP's own error (a BaseException), naming each failing rank
        raise DistributedError(f"could not write {temporary}: {describe_checkpoint_failure(error)}") from None
    except Exception as error:
        raise DistributedError(f"could not write {temporary}: {type(error).__name__}: {error}") from error


def _finish(temporary: Path, destination: Path, tensors: dict[str, torch.Tensor], aliases: dict[str, str]) -> None:
    """Rank 0, once every rank has written: the record, then the folder in place."""
    try:
        _write_record(temporary, tensors, aliases)
        _replace(temporary, destination)
    except OSError as error:
        raise DistributedError(
            f"cannot put the checkpoint in place at {destination}: {error.strerror or error}"
        ) from None


def _write_record(temporary: Path, tensors: dict[str, torch.Tensor], aliases: dict[str, str]) -> None:
    """What a reader checks the folder against: its files, each tensor's whole shape, the tied keys."""
    record = {
        "fluxion_sharded": 1,
        "files": sorted(path.name for path in temporary.glob("*.safetensors")),
        "shapes": {key: list(tensor.shape) for key, tensor in tensors.items()},
        "aliases": aliases,
    }
    write_text_atomically(temporary / SIDECAR, json.dumps(record, indent=2) + "\n", error=DistributedError)


def _replace(temporary: Path, destination: Path) -> None:
    """Put the new folder in place of the old one, and the old one back if that fails."""
    old = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.old")
    if destination.exists():
        os.replace(destination, old)
    try:
        os.replace(temporary, destination)
    except BaseException:
        if old.exists():
            os.replace(old, destination)
        raise
    shutil.rmtree(old, ignore_errors=True)


def consolidate(folder: str | os.PathLike[str], file: str | os.PathLike[str], *, progress: bool | None = None) -> None:
    """Join the pieces :func:`save` wrote into ``folder`` (or a folder in DCP's own format) into one
    safetensors ``file``.

    Run it in one process (a rank, or later on any machine that sees the folder). Each tensor is
    put together and written in turn, so memory holds one tensor at a time; the file is written
    atomically. Shared keys left out by ``save`` are recorded in the file's metadata, as
    ``fluxion.weights.save`` records them, so ``fluxion.weights.load`` restores them.

    >>> import pathlib, tempfile
    >>> consolidate(pathlib.Path(tempfile.mkdtemp()), "model.safetensors")
    Traceback (most recent call last):
    ...
    fluxion.errors.WeightsError: folder '...' has no .safetensors files
    """
    paths: tuple[object, object] = (folder, file)
    if not all(isinstance(path, str | os.PathLike) for path in paths):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise DistributedError(
            f"consolidate takes a folder and a file (paths), got {type(folder).__name__} and {type(file).__name__}"
        )
    if progress is not None and not isinstance(progress, bool):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise DistributedError(f"progress must be True, False or None (automatic), got {progress!r}")
    source = Path(folder)
    pieces = open_pieces(source, collective=False)
    aliases = read_aliases(source) if source.is_dir() else {}
    unstorable = [entry for entry in pieces.checkpoint.entries.values() if entry.dtype not in _DTYPE_NAMES]
    if unstorable:
        pieces.close()
        raise DistributedError(
            f"{os.fspath(source)}: tensor {unstorable[0].key!r} holds {unstorable[0].dtype}, which a safetensors "
            "file cannot store"
        )
    entries = sorted(pieces.checkpoint.entries.values(), key=lambda entry: entry.key)
    header: dict[str, object] = {}
    offset = 0
    for entry in entries:
        header[entry.key] = {
            "dtype": _DTYPE_NAMES[entry.dtype],
            "shape": list(entry.shape),
            "data_offsets": [offset, offset + entry.nbytes],
        }
        offset += entry.nbytes
    metadata = {key: value for key, value in pieces.checkpoint.metadata.items() if key != ALIASES_METADATA}
    metadata["format"] = "pt"
    if aliases:
        metadata[ALIASES_METADATA] = json.dumps(aliases, sort_keys=True)
    header = {"__metadata__": metadata, **header}
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as handle, Progress(offset, f"consolidating {source.name}", enabled=progress) as bar:
            handle.write(struct.pack("<Q", len(encoded)))
            handle.write(encoded)
            for entry in entries:
                whole = torch.empty(entry.shape, dtype=entry.dtype)
                pieces.read_all([Request(entry.key, tuple((0, size) for size in entry.shape), whole)])
                _write_bytes(handle.write, whole)
                bar.advance(entry.nbytes)

    try:
        write_atomically(file, write, error=DistributedError)
    finally:
        pieces.close()


def _write_bytes(write: Callable[[memoryview], object], tensor: torch.Tensor) -> None:
    if tensor.nbytes:
        write(memoryview((ctypes.c_char * tensor.nbytes).from_address(tensor.data_ptr())).cast("B"))
