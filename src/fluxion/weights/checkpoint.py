"""Reading checkpoints: safetensors files, sharded checkpoints, folders, and (safely) pickled state dicts.

A :class:`Checkpoint` knows every tensor's key, shape and dtype from the file headers alone, so a
load can check everything before reading any data. Tensors of safetensors files are memory-mapped:
``tensor(key)`` costs nothing until the bytes are used.

>>> import pathlib, tempfile, torch
>>> from safetensors.torch import save_file
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
>>> save_file({"weight": torch.ones(2, 3)}, path)
>>> with open_checkpoint(path) as checkpoint:
...     checkpoint.entries["weight"].shape, checkpoint.tensor("weight").sum().item()
((2, 3), 6.0)
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, cast

import torch
from safetensors import SafetensorError, safe_open

from fluxion.errors import WeightsError
from fluxion.files import special_kind

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
INDEX_SUFFIX = ".index.json"

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U64": torch.uint64,
    "U32": torch.uint32,
    "U16": torch.uint16,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "C64": torch.complex64,
}
if hasattr(torch, "float8_e8m0fnu"):  # torch >= 2.7
    SAFETENSORS_DTYPES["F8_E8M0"] = torch.float8_e8m0fnu

Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Entry:
    """What a checkpoint says about one tensor, known before any data is read.

    >>> Entry("weight", (2, 3), torch.float32, "model.safetensors").nbytes
    24
    """

    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    origin: str
    unusable: str | None = None
    """Why the tensor cannot be loaded (a meta, sparse, quantized or nested tensor), or None."""

    @property
    def nbytes(self) -> int:
        """The tensor's size in bytes.

        >>> Entry("bias", (4,), torch.float16, "x").nbytes
        8
        """
        return math.prod(self.shape) * self.dtype.itemsize


class _Reader(Protocol):
    def get_tensor(self, key: str) -> torch.Tensor: ...


class _SafetensorsSlice(Protocol):
    def get_dtype(self) -> str: ...
    def get_shape(self) -> list[int]: ...


class _SafetensorsFile(_Reader, Protocol):
    def keys(self) -> list[str]: ...
    def get_slice(self, key: str) -> _SafetensorsSlice: ...
    def metadata(self) -> dict[str, str] | None: ...


class _DictReader:
    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self._tensors = tensors

    def get_tensor(self, key: str) -> torch.Tensor:
        # Detached: the caller's autograd graph never reaches the model (a view: nothing is copied).
        return self._tensors[key].detach()


class Checkpoint:
    """An open checkpoint (one file or several shards read as one): entries, metadata, lazy tensors.

    Use it as a context manager, or call ``close``; ``open_checkpoint`` makes one. ``pickled``
    lists the files that were pickles (read with ``weights_only=True``); ``borrowed`` is True when
    the tensors belong to the caller (a dict of tensors), so a load must copy rather than share them.

    >>> checkpoint = open_checkpoint({"bias": torch.zeros(3)})
    >>> list(checkpoint.entries), checkpoint.nbytes
    (['bias'], 12)
    """

    def __init__(
        self,
        name: str,
        entries: dict[str, Entry],
        readers: dict[str, _Reader],
        metadata: dict[str, str],
        *,
        pickled: tuple[str, ...] = (),
        borrowed: bool = False,
    ) -> None:
        self.name = name
        self.entries = entries
        self.metadata = metadata
        self.pickled = pickled
        self.borrowed = borrowed
        self._readers = readers

    @property
    def nbytes(self) -> int:
        """The total size of every tensor in the checkpoint.

        >>> open_checkpoint({"a": torch.zeros(2), "b": torch.zeros(2, dtype=torch.int64)}).nbytes
        24
        """
        return sum(entry.nbytes for entry in self.entries.values())

    def tensor(self, key: str) -> torch.Tensor:
        """The tensor stored under ``key`` (memory-mapped for safetensors files: read lazily).

        >>> open_checkpoint({"a": torch.arange(3)}).tensor("a").tolist()
        [0, 1, 2]
        """
        entry = self.entries.get(key)
        if entry is None:
            raise WeightsError(f"{self.name}: no tensor {key!r}")
        try:
            return self._readers[entry.origin].get_tensor(key)
        except (SafetensorError, OSError, RuntimeError) as error:
            raise WeightsError(f"{entry.origin}: cannot read tensor {key!r}: {error}") from None

    def close(self) -> None:
        """Drop the readers, so the files close once no tensor read from them is alive.

        >>> open_checkpoint({"a": torch.zeros(1)}).close()
        """
        self._readers = {}

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_checkpoint(source: Source) -> Checkpoint:
    """Open a checkpoint: a safetensors file, a ``*.safetensors.index.json`` of shards, a list of
    shard files, a folder written by ``save_pretrained``, a ``.pt``/``.bin`` state dict (read with
    ``torch.load(weights_only=True)``; ``.pt``, ``.pth``, ``.bin`` or ``.ckpt``, the state dict itself
    or under a ``state_dict``/``model`` key), or a dict of tensors already in memory.

    >>> open_checkpoint({"w": torch.zeros(2, 2)}).entries["w"].shape
    (2, 2)
    >>> open_checkpoint("no/such/model.safetensors")
    Traceback (most recent call last):
    ...
    fluxion.errors.WeightsError: checkpoint 'no/such/model.safetensors' does not exist
    """
    if isinstance(source, Mapping):
        checkpoint = _from_tensors("state dict", cast("Mapping[object, Any]", source))
        checkpoint.borrowed = True
        return checkpoint
    if isinstance(source, str | os.PathLike):
        return _from_files(_resolve(Path(source)), name=os.fspath(source))
    if not isinstance(source, list | tuple) or not all(isinstance(p, str | os.PathLike) for p in source):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise WeightsError(f"a checkpoint is a path, a list of paths or a dict of tensors; got {type(source).__name__}")
    paths = [Path(path) for path in source]
    if not paths:
        raise WeightsError("no checkpoint files given")
    return _from_files([shard for path in paths for shard in _resolve(path)], name=", ".join(map(str, paths)))


def _resolve(path: Path) -> list[Path]:
    """The files (and the index, if any) that make up the checkpoint at ``path``."""
    try:
        return _files_at(path)
    except OSError as error:
        raise WeightsError(f"cannot read checkpoint {os.fspath(path)!r}: {error}") from None


def _files_at(path: Path) -> list[Path]:
    if not path.exists():
        raise WeightsError(f"checkpoint {os.fspath(path)!r} does not exist")
    if not path.is_dir():
        return [path]
    indexes = sorted(path.glob(f"*.safetensors{INDEX_SUFFIX}"))
    if len(indexes) == 1:
        return indexes
    if len(indexes) > 1:
        raise WeightsError(f"folder {os.fspath(path)!r} has several indexes ({', '.join(p.name for p in indexes)})")
    files = sorted(path.glob("*.safetensors"))
    if files:
        return files
    pickled = sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if len(pickled) == 1:
        return pickled
    raise WeightsError(f"folder {os.fspath(path)!r} has no .safetensors files")


def _from_files(paths: list[Path], name: str) -> Checkpoint:
    entries: dict[str, Entry] = {}
    readers: dict[str, _Reader] = {}
    metadata: dict[str, str] = {}
    pickled = tuple(os.fspath(path) for path in paths if path.suffix in PICKLE_SUFFIXES)
    for path in paths:
        _refuse_special(path)
    for path in paths:
        if path.name.endswith(INDEX_SUFFIX):
            shards, index_metadata = _read_index(path)
            for shard, keys in shards.items():
                file_entries, reader, _ = _read_file(shard)
                missing = keys - file_entries.keys()
                if missing:
                    raise WeightsError(f"{shard}: the index {path.name} lists {_few(missing)} but the shard lacks them")
                _merge(entries, file_entries)
                readers[os.fspath(shard)] = reader
            metadata.update(index_metadata)
            continue
        file_entries, reader, file_metadata = _read_file(path)
        _merge(entries, file_entries)
        readers[os.fspath(path)] = reader
        metadata.update(file_metadata)
    return Checkpoint(name, entries, readers, metadata, pickled=pickled)


def _refuse_special(path: Path) -> None:
    """A FIFO, device or socket is refused before it is opened: opening a FIFO would block forever."""
    kind = special_kind(path)
    if kind is not None:
        raise WeightsError(
            f"checkpoint {os.fspath(path)!r} is {kind}, not a regular file; fluxion reads checkpoints only from files"
        )


def _read_index(path: Path) -> tuple[dict[Path, set[str]], dict[str, str]]:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}: not a readable index ({error})") from None
    index_fields = cast("dict[str, object]", index) if isinstance(index, dict) else {}
    weight_map = index_fields.get("weight_map")
    if not isinstance(weight_map, dict):
        raise WeightsError(f"{path}: an index needs a 'weight_map' object mapping tensor keys to shard files")
    shards: dict[Path, set[str]] = {}
    for key, shard in cast("dict[str, object]", weight_map).items():
        if not isinstance(shard, str) or Path(shard).is_absolute() or ".." in Path(shard).parts:
            raise WeightsError(f"{path}: weight_map[{key!r}] must be a file name next to the index, got {shard!r}")
        shards.setdefault(path.parent / shard, set()).add(key)
    for shard in shards:
        if not shard.exists():
            raise WeightsError(f"{path}: shard {shard.name!r} does not exist")
        _refuse_special(shard)
    raw_metadata = index_fields.get("metadata")
    entries = cast("dict[object, object]", raw_metadata).items() if isinstance(raw_metadata, dict) else ()
    metadata = {str(key): str(value) for key, value in entries}
    return shards, metadata


def _read_file(path: Path) -> tuple[dict[str, Entry], _Reader, dict[str, str]]:
    if path.suffix in PICKLE_SUFFIXES:
        return _read_pickle(path)
    origin = os.fspath(path)
    try:
        reader = cast(_SafetensorsFile, safe_open(origin, framework="pt", device="cpu"))
        entries: dict[str, Entry] = {}
        for key in reader.keys():  # noqa: SIM118 (a safetensors file is not iterable)
            view = reader.get_slice(key)
            dtype_name = view.get_dtype()
            dtype = SAFETENSORS_DTYPES.get(dtype_name)
            if dtype is None:
                raise WeightsError(f"{origin}: tensor {key!r} has dtype {dtype_name}, which torch cannot hold")
            entries[key] = Entry(key, tuple(view.get_shape()), dtype, origin)
        metadata = dict(reader.metadata() or {})
    except SafetensorError as error:
        hint = " (a pickled state dict? name it .pt or .bin)" if path.suffix != ".safetensors" else ""
        raise WeightsError(f"{origin}: not a valid safetensors file{hint}: {error}") from None
    except OSError as error:
        raise WeightsError(f"{origin}: cannot read: {error}") from None
    return entries, reader, metadata


def _read_pickle(path: Path) -> tuple[dict[str, Entry], _Reader, dict[str, str]]:
    origin = os.fspath(path)
    try:
        loaded: object = torch.load(origin, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        loaded = _torch_load_without_mmap(origin)  # older (non-zip) files cannot be memory-mapped
    except Exception as error:
        raise WeightsError(_pickle_refusal(origin, error)) from None
    tensors = _state_dict_in(loaded)
    if tensors is None:
        raise WeightsError(f"{origin}: expected a state dict (a dict of tensors), got {type(loaded).__name__}")
    return _entries(origin, cast("Mapping[object, Any]", tensors)), _DictReader(tensors), {}


def _torch_load_without_mmap(origin: str) -> object:
    try:
        return torch.load(origin, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(_pickle_refusal(origin, error)) from None


def _pickle_refusal(origin: str, error: Exception) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"{origin}: cannot be read as a state dict with torch.load(weights_only=True): {first_line}. "
        "fluxion never unpickles arbitrary objects; save the weights as safetensors instead."
    )


def _state_dict_in(loaded: object) -> dict[str, torch.Tensor] | None:
    """The tensors of a loaded pickle: a state dict itself, or one under 'state_dict'/'model'."""
    if not isinstance(loaded, dict):
        return None
    contents = cast("dict[object, object]", loaded)
    if contents and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in contents.items()):
        return cast("dict[str, torch.Tensor]", contents)
    for wrapper in ("state_dict", "model"):
        inner = _state_dict_in(contents.get(wrapper))
        if inner is not None:
            return inner
    return None


def _from_tensors(name: str, tensors: Mapping[object, Any]) -> Checkpoint:
    entries = _entries(name, tensors)
    return Checkpoint(name, entries, {name: _DictReader(cast("Mapping[str, torch.Tensor]", tensors))}, {})


def _entries(name: str, tensors: Mapping[object, Any]) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    for key, tensor in tensors.items():
        if not isinstance(key, str):
            raise WeightsError(f"{name}: keys must be strings, got {key!r}")
        if not isinstance(tensor, torch.Tensor):
            raise WeightsError(f"{name}: value of {key!r} is a {type(tensor).__name__}, not a tensor")
        unusable = unusable_reason(tensor)
        shape = () if tensor.is_nested else tuple(tensor.shape)  # a nested tensor has no single shape
        entries[key] = Entry(key, shape, tensor.dtype, name, unusable)
    return entries


def unusable_reason(tensor: torch.Tensor) -> str | None:
    """Why ``tensor`` cannot be loaded or saved, or None: only dense tensors with data can.

    >>> unusable_reason(torch.zeros(2)) is None
    True
    >>> unusable_reason(torch.zeros(2, device="meta"))
    'on the meta device (it has no data)'
    """
    if is_sharded(tensor):
        return (
            "sharded across processes (a DTensor); save a sharded model with fluxion.distributed.save, "
            "or take a plain copy first (fluxion.distributed.unshard)"
        )
    if tensor.is_nested:
        return "a nested tensor (it has no single shape)"
    if tensor.layout != torch.strided:
        return f"a sparse tensor ({tensor.layout}); convert it with .to_dense() first"
    if tensor.is_quantized:
        return "a quantized tensor; convert it with .dequantize() first"
    if tensor.is_meta:
        return "on the meta device (it has no data)"
    return None


def is_sharded(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is a ``DTensor`` (a part of a tensor spread over processes, as FSDP2 makes).

    >>> is_sharded(torch.zeros(2))
    False
    """
    # No DTensor exists until torch.distributed.tensor is imported: the check costs nothing before.
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(tensor, cast(type, module.DTensor))


def _merge(entries: dict[str, Entry], more: dict[str, Entry]) -> None:
    for key, entry in more.items():
        if key in entries:
            raise WeightsError(f"tensor {key!r} is in two files: {entries[key].origin} and {entry.origin}")
        entries[key] = entry


def _few(keys: set[str]) -> str:
    shown = sorted(keys)[:3]
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return ", ".join(repr(key) for key in shown) + more
