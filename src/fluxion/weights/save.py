"""``save``: a tree's weights to a safetensors file, atomically.

The file is written next to its destination under a temporary name and renamed into place, so
an interrupted save never leaves a half-written file where the previous one was (see
``fluxion.files``: a symbolic link is written through, a FIFO or device is refused, an existing
file keeps its permissions and a new one follows the umask).

>>> import pathlib, tempfile, fluxion.layers as fl
>>> from safetensors import safe_open
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
>>> save(fl.Chain(fl.Linear(2, 3)), path, metadata={"step": "100"})
>>> with safe_open(path, framework="pt") as file:
...     sorted(file.keys()), file.metadata()["step"]
(['Linear.bias', 'Linear.weight'], '100')
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import cast

import torch
from safetensors import torch as safetensors_torch

import fluxion
from fluxion.errors import WeightsError
from fluxion.files import write_atomically
from fluxion.weights.checkpoint import SAFETENSORS_DTYPES, unusable_reason
from fluxion.weights.plan import ALIASES_METADATA, model_slots

SAVABLE_DTYPES = frozenset(SAFETENSORS_DTYPES.values())


def save(
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``model``'s parameters and persistent buffers (or a dict of tensors) to ``path`` as safetensors.

    Tied tensors are stored once; the keys left out are recorded in the metadata
    (``fluxion.aliases``) so that ``load`` restores them even into a model where they are not tied.
    ``metadata`` adds string entries to the header, next to ``format: pt`` (which Hugging Face
    libraries expect) and the fluxion version.

    >>> import pathlib, tempfile, torch, fluxion.layers as fl
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> save(fl.Chain(fl.Linear(2, 2, device="meta")), path)
    Traceback (most recent call last):
    ...
    fluxion.errors.WeightsError: cannot save 'Linear.weight': it is on the meta device (it has no data)
    """
    destination = _checked_path(path)
    extra = _checked_metadata(metadata)
    if isinstance(model, torch.nn.Module):
        named = [(key, slot.tensor) for key, slot in model_slots(model).items()]
    else:
        named = _checked_tensors(model)
    tensors, aliases = _tensors_to_save(named)
    header = {"format": "pt", "fluxion.version": fluxion.__version__}
    if aliases:
        header[ALIASES_METADATA] = json.dumps(aliases)
    header.update(extra)
    write_atomically(destination, lambda temporary: _write_file(tensors, header, temporary), error=WeightsError)


def _write_file(tensors: dict[str, torch.Tensor], header: dict[str, str], temporary: Path) -> None:
    save_file = cast("Callable[..., None]", safetensors_torch.save_file)  # pyright: ignore[reportUnknownMemberType]
    save_file(tensors, os.fspath(temporary), metadata=header)


def _checked_tensors(tensors: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    given = cast(Mapping[object, object], tensors)
    if not isinstance(given, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise WeightsError(f"save writes a module or a dict of tensors; got {type(given).__name__}")
    for key, value in given.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise WeightsError(f"a dict to save must map strings to tensors; {key!r}: {type(value).__name__} does not")
    return list(tensors.items())


def _tensors_to_save(named: Iterable[tuple[str, torch.Tensor]]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    kept_by_storage: dict[tuple[object, ...], str] = {}
    storages: set[int] = set()
    for key, tensor in named:
        tensor = tensor.detach()
        if tensor.is_meta:
            raise WeightsError(f"cannot save {key!r}: it is on the meta device (it has no data)")
        unusable = unusable_reason(tensor)
        if unusable is not None:
            raise WeightsError(f"cannot save {key!r}: it is {unusable}")
        if tensor.dtype not in SAVABLE_DTYPES:
            raise WeightsError(
                f"cannot save {key!r}: safetensors has no dtype for {tensor.dtype} "
                f"(it holds {', '.join(sorted({str(dtype).removeprefix('torch.') for dtype in SAVABLE_DTYPES}))})"
            )
        storage = tensor.untyped_storage().data_ptr()
        identity = (storage, tensor.storage_offset(), tensor.shape, tensor.stride())
        if tensor.numel() and identity in kept_by_storage:
            aliases[key] = kept_by_storage[identity]
            continue
        kept_by_storage[identity] = key
        # safetensors refuses two tensors in one memory: another view of a storage already kept
        # (a slice of a fused weight, say) is written as a copy of its own.
        shares = tensor.numel() and storage in storages
        storages.add(storage)
        on_cpu = tensor.to("cpu")
        tensors[key] = on_cpu.clone(memory_format=torch.contiguous_format) if shares else on_cpu.contiguous()
    return tensors, aliases


def _checked_path(path: object) -> str | os.PathLike[str]:
    if not isinstance(path, str | os.PathLike):
        raise WeightsError(f"save writes to a file path (a str or a Path), got {type(path).__name__}")
    return cast("str | os.PathLike[str]", path)


def _checked_metadata(metadata: object) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise WeightsError(f"metadata must be a dict of strings to strings, got a {type(metadata).__name__}")
    entries = cast("Mapping[object, object]", metadata)
    header: dict[str, str] = {}
    for key, value in entries.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise WeightsError(f"metadata must map strings to strings; {key!r}: {value!r} is not")
        if key == "format" or key.startswith("fluxion."):
            raise WeightsError(f"metadata key {key!r} is reserved (fluxion writes 'format' and 'fluxion.*')")
        header[key] = value
    return header
