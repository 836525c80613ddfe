"""Checkpoints read a piece at a time: each rank reads the part of each tensor its shard holds.

A safetensors file is a JSON header (every tensor's dtype, shape and byte range) and then the raw
bytes, row after row. So the rows ``a:b`` of a tensor are one byte range of the file, and any box of
a tensor (a range per dimension) can be read with a few reads into the memory that keeps it, with
no memory map (whose pages would count against the process) and no copy of the whole tensor.

:func:`open_pieces` opens what ``fluxion.distributed.load`` reads: a safetensors file, an index of
shards (``*.safetensors.index.json``), a folder of safetensors files, or the folder that
``fluxion.distributed.save`` writes (torch.distributed.checkpoint's Hugging Face layout, where
each file holds pieces of tensors and its header says where each piece sits), or a folder in
DCP's own format (``.metadata`` and ``.distcp`` files), which DCP itself reads box by box. Other checkpoints
(``.pt`` files, a dict of tensors) are read whole through ``fluxion.weights`` and cut.

>>> import pathlib, tempfile, torch
>>> from safetensors.torch import save_file
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
>>> save_file({"weight": torch.arange(12.0).reshape(4, 3)}, path)
>>> pieces = open_pieces(path)
>>> out = torch.empty(2, 2)
>>> pieces.read("weight", ((1, 3), (1, 3)), out)
>>> out.tolist()
[[4.0, 5.0], [7.0, 8.0]]
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import importlib
import json
import math
import os
import pickle
import struct
import sys
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any, NoReturn, Protocol, cast, runtime_checkable

import torch
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.filesystem import FileSystemReader
from torch.distributed.checkpoint.metadata import (
    ChunkStorageMetadata,
    Metadata,
    MetadataIndex,
    StorageMeta,
    TensorStorageMetadata,
)
from torch.distributed.checkpoint.planner import LoadPlan, ReadItem
from torch.distributed.checkpoint.planner_helpers import create_read_items_for_chunk_list
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load  # pyright: ignore[reportUnknownVariableType]

from fluxion.distributed.ranks import describe_checkpoint_failure
from fluxion.errors import WeightsError
from fluxion.files import special_kind
from fluxion.weights.checkpoint import (
    INDEX_SUFFIX,
    PICKLE_SUFFIXES,
    SAFETENSORS_DTYPES,
    Checkpoint,
    Entry,
    Source,
    open_checkpoint,
)
from fluxion.weights.plan import ALIASES_METADATA

Box = tuple[tuple[int, int], ...]
"""A block of a tensor: ``(start, stop)`` along each dimension."""

SHARDING_METADATA = "DCP_SHARDING_INFO"
"""The header metadata where torch.distributed.checkpoint's Hugging Face writer says where each
piece sits in its tensor (``{"key": {"saved_offsets": [...]}}``)."""

BLOCK_BYTES = 16 * 2**20
"""The most a read that must be rearranged (a transposed or converted piece) holds at once."""

HEADER_LIMIT = 100 * 2**20

DCP_METADATA = ".metadata"
"""The file that marks a folder written in torch.distributed.checkpoint's own format."""

SIDECAR = "fluxion.json"
"""What ``fluxion.distributed.save`` adds next to DCP's files: the keys it left out as copies of a
shared tensor (tied embeddings), each with the key it kept."""


@runtime_checkable
class Pieces(Protocol):
    """A checkpoint that can read any box of any tensor into a tensor given to it.

    >>> isinstance(open_pieces({"w": torch.zeros(1)}), Pieces)
    True
    """

    checkpoint: Checkpoint
    """Every tensor's key, shape and dtype (for planning the load) and the file metadata."""

    def read_all(self, requests: list[Request]) -> None:
        """Fill each request's ``out`` (shaped like its box, any dtype, layout or device) with that
        box of its tensor. Every rank calls it with the same keys, in the same order.

        >>> out = torch.empty(1)
        >>> open_pieces({"w": torch.ones(2)}).read_all([Request("w", ((0, 1),), out)])
        >>> out.item()
        1.0
        """
        ...

    def close(self) -> None:
        """Release the files.

        >>> open_pieces({"w": torch.zeros(1)}).close()
        """
        ...


@dataclass(frozen=True)
class Request:
    """One block to read: tensor ``key``'s ``box``, into ``out``.

    >>> Request("w", ((0, 1),), torch.empty(1)).key
    'w'
    """

    key: str
    box: Box
    out: torch.Tensor


@dataclass(frozen=True)
class Piece:
    """Where one piece of a tensor is stored: the file, the byte offset, and its place in the tensor.

    >>> Piece("model.safetensors", 80, (0, 0), (4, 3), torch.float32).row_bytes
    12
    """

    path: str
    start: int
    offsets: tuple[int, ...]
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def row_bytes(self) -> int:
        """The bytes of one row (one index along the first dimension; all of a scalar).

        >>> Piece("f", 0, (), (), torch.float16).row_bytes
        2
        """
        return math.prod(self.shape[1:]) * self.dtype.itemsize


class OneAtATime:
    """Pieces whose requests are read one after the other (what ``read_all`` does by default).

    >>> issubclass(SafetensorsPieces, OneAtATime)
    True
    """

    def read(self, key: str, box: Box, out: torch.Tensor) -> None:
        """Fill ``out`` with the ``box`` of tensor ``key``.

        >>> OneAtATime().read("w", ((0, 1),), torch.empty(1))
        Traceback (most recent call last):
        ...
        NotImplementedError
        """
        raise NotImplementedError

    def read_all(self, requests: list[Request]) -> None:
        """Read every request in turn (see :meth:`read`).

        >>> open_pieces({"w": torch.zeros(1)}).read_all([])
        """
        for request in requests:
            self.read(request.key, request.box, request.out)


class SafetensorsPieces(OneAtATime):
    """Safetensors files read by byte range (see the module docstring); made by :func:`open_pieces`.

    >>> import pathlib, tempfile
    >>> from safetensors.torch import save_file
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> save_file({"bias": torch.ones(3)}, path)
    >>> open_pieces(path).checkpoint.entries["bias"].shape
    (3,)
    """

    def __init__(self, name: str, pieces: dict[str, list[Piece]], metadata: dict[str, str]) -> None:
        self.pieces = pieces
        entries = {key: _entry(key, found) for key, found in pieces.items()}
        self.checkpoint = Checkpoint(name, entries, {}, metadata)
        self._files: dict[str, BufferedReader] = {}

    def read(self, key: str, box: Box, out: torch.Tensor) -> None:
        """Fill ``out`` with the ``box`` of tensor ``key``, reading only the rows the box needs.

        >>> import pathlib, tempfile
        >>> from safetensors.torch import save_file
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> save_file({"w": torch.arange(6.0).reshape(2, 3)}, path)
        >>> out = torch.empty(1, 2)
        >>> open_pieces(path).read("w", ((0, 2), (2, 3)), out.T)
        >>> out.flatten().tolist()
        [2.0, 5.0]
        """
        pieces = self.pieces.get(key)
        entry = self.checkpoint.entries.get(key)
        if pieces is None or entry is None:
            raise WeightsError(f"{self.checkpoint.name}: no tensor {key!r}")
        if len(box) != len(entry.shape) or any(
            not 0 <= start <= stop <= size for (start, stop), size in zip(box, entry.shape, strict=True)
        ):
            raise WeightsError(f"{self.checkpoint.name}: the block {list(box)} is not inside {key!r} {entry.shape}")
        for piece in pieces:
            inside = _intersection(box, piece.offsets, piece.shape)
            if inside is None:
                continue
            target = out[
                tuple(slice(start - low, stop - low) for (start, stop), (low, _) in zip(inside, box, strict=True))
            ]
            local = tuple(
                (start - offset, stop - offset) for (start, stop), offset in zip(inside, piece.offsets, strict=True)
            )
            try:
                self._read_piece(piece, local, target)
            except WeightsError as error:
                raise WeightsError(f"{error} (reading {key!r})") from None
            except OSError as error:
                raise WeightsError(f"{piece.path}: cannot read {key!r}: {error.strerror or error}") from None

    def _read_piece(self, piece: Piece, box: Box, out: torch.Tensor) -> None:
        handle = self._file(piece.path)
        direct = out.device.type == "cpu" and out.dtype == piece.dtype and out.is_contiguous()
        if not piece.shape:
            value = out if direct else torch.empty((), dtype=piece.dtype)
            self._read_rows(handle, piece, 0, 1, value)
            if not direct:
                out.copy_(value)
            return
        (first, last), inner = box[0], box[1:]
        whole_rows = all(
            start == 0 and stop == size for (start, stop), size in zip(inner, piece.shape[1:], strict=True)
        )
        if whole_rows and direct:
            self._read_rows(handle, piece, first, last, out)
            return
        rows_per_block = max(1, BLOCK_BYTES // max(1, piece.row_bytes))
        block = torch.empty((min(rows_per_block, last - first), *piece.shape[1:]), dtype=piece.dtype)
        inner_slices = tuple(slice(start, stop) for start, stop in inner)
        for row in range(first, last, rows_per_block):
            count = min(rows_per_block, last - row)
            rows = block[:count]
            self._read_rows(handle, piece, row, row + count, rows)
            out[row - first : row - first + count].copy_(rows[(slice(None), *inner_slices)])

    def _read_rows(self, handle: BufferedReader, piece: Piece, first: int, last: int, out: torch.Tensor) -> None:
        """Read rows ``first:last`` of the piece straight into ``out`` (contiguous, on the CPU, same dtype)."""
        size = (last - first) * piece.row_bytes if piece.shape else piece.dtype.itemsize
        if size == 0:
            return
        view = memoryview((ctypes.c_char * size).from_address(out.data_ptr())).cast("B")
        handle.seek(piece.start + first * piece.row_bytes)
        done = 0
        while done < size:
            count = handle.readinto(view[done:])
            if not count:
                raise WeightsError(f"{piece.path}: the file ends inside its tensor data (truncated?)")
            done += count

    def _file(self, path: str) -> BufferedReader:
        handle = self._files.get(path)
        if handle is None:
            try:
                handle = self._files[path] = open(path, "rb")  # noqa: SIM115 (kept open until close)
            except OSError as error:
                raise WeightsError(f"{path}: cannot read: {error.strerror or error}") from None
        return handle

    def close(self) -> None:
        """Close every file opened.

        >>> SafetensorsPieces("none", {}, {}).close()
        """
        for handle in self._files.values():
            handle.close()
        self._files = {}


class WholePieces(OneAtATime):
    """A checkpoint fluxion.weights reads whole (``.pt``, a dict of tensors), cut into boxes.

    >>> pieces = open_pieces({"w": torch.arange(4.0)})
    >>> out = torch.empty(2)
    >>> pieces.read("w", ((1, 3),), out)
    >>> out.tolist()
    [1.0, 2.0]
    """

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint

    def read(self, key: str, box: Box, out: torch.Tensor) -> None:
        """Fill ``out`` with the ``box`` of tensor ``key``.

        >>> out = torch.empty(1)
        >>> open_pieces({"b": torch.tensor([5.0, 6.0])}).read("b", ((1, 2),), out)
        >>> out.item()
        6.0
        """
        tensor = self.checkpoint.tensor(key)
        out.copy_(tensor[tuple(slice(start, stop) for start, stop in box)])

    def close(self) -> None:
        """Close the checkpoint.

        >>> open_pieces({"b": torch.zeros(1)}).close()
        """
        self.checkpoint.close()


class DcpPieces:
    """A folder ``torch.distributed.checkpoint.save`` wrote in its own format (``.metadata`` and
    ``.distcp`` files): DCP itself reads each box, every rank its own, in one collective call.

    >>> import pathlib, tempfile
    >>> import torch.distributed.checkpoint as dcp
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with warnings.catch_warnings():  # DCP notes that it runs in one process
    ...     warnings.simplefilter("ignore")
    ...     _ = dcp.save({"w": torch.arange(6.0).reshape(3, 2)}, checkpoint_id=folder)
    >>> pieces = open_pieces(folder)
    >>> out = torch.empty(2)
    >>> pieces.read_all([Request("w", ((1, 3), (1, 2)), out.view(2, 1))])
    >>> out.tolist()
    [3.0, 5.0]
    """

    def __init__(self, folder: Path, *, collective: bool = True) -> None:
        self.collective = collective  # every rank reads together (a load), or this process alone
        self._folder = folder
        self._reader = _DcpReader(folder)
        try:
            described = self._reader.read_metadata().state_dict_metadata
        except WeightsError:
            raise
        except Exception as error:
            raise WeightsError(f"{folder}: cannot read its DCP metadata: {type(error).__name__}: {error}") from None
        entries: dict[str, Entry] = {}
        for key, found in described.items():
            if isinstance(found, TensorStorageMetadata):
                entries[key] = Entry(key, tuple(found.size), found.properties.dtype, os.fspath(folder))
        self.checkpoint = Checkpoint(os.fspath(folder), entries, {}, {})

    def read_all(self, requests: list[Request]) -> None:
        """Read every request through one ``torch.distributed.checkpoint.load`` (a collective).

        >>> import pathlib, tempfile
        >>> import torch.distributed.checkpoint as dcp
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     _ = dcp.save({"b": torch.ones(2)}, checkpoint_id=folder)
        >>> out = torch.empty(1)
        >>> open_pieces(folder).read_all([Request("b", ((1, 2),), out)])
        >>> out.item()
        1.0
        """
        unknown = [request.key for request in requests if request.key not in self.checkpoint.entries]
        if unknown:
            raise WeightsError(f"{self._folder}: no tensor {unknown[0]!r}")
        # One entry per request, not per key: a split reads several boxes of one tensor.
        state = {str(number): request.out for number, request in enumerate(requests)}
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
                dcp_load(
                    cast("dict[str, Any]", state),
                    storage_reader=self._reader,
                    planner=_BoxPlanner(requests),
                    no_dist=not self.collective,
                )
        except CheckpointException as error:  # DCP's own error, a BaseException
            raise WeightsError(f"{self._folder}: DCP could not read it: {describe_checkpoint_failure(error)}") from None
        except Exception as error:
            raise WeightsError(f"{self._folder}: DCP could not read it: {_first_line(error)}") from None

    def close(self) -> None:
        """Nothing to release: DCP opens and closes its files on each read.

        >>> import pathlib, tempfile
        >>> import torch.distributed.checkpoint as dcp
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     _ = dcp.save({"b": torch.ones(2)}, checkpoint_id=folder)
        >>> open_pieces(folder).close()
        """


class _DcpReader(FileSystemReader):
    """DCP's file reader, with its metadata unpickled safely: only DCP's own record classes,
    ``torch.Size``, dtypes and paths may be built, so a crafted ``.metadata`` cannot run code."""

    def __init__(self, folder: Path) -> None:
        super().__init__(os.fspath(folder))  # pyright: ignore[reportUnknownMemberType]
        self.folder = folder

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        path = self.folder / DCP_METADATA
        kind = special_kind(path)
        if kind is not None:
            raise WeightsError(f"{path} is {kind}, not a regular file")
        try:
            with open(path, "rb") as handle:
                metadata = _MetadataUnpickler(handle).load()
        except WeightsError as error:  # a name the unpickler refused
            raise WeightsError(f"{path}: {error}") from None
        except Exception as error:
            raise WeightsError(f"{path}: not readable DCP metadata: {type(error).__name__}: {error}") from None
        if not isinstance(metadata, Metadata):
            raise WeightsError(f"{path}: not DCP metadata (it holds a {type(metadata).__name__})")
        _check_data_files(self.folder, metadata)
        if metadata.storage_meta is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def _check_data_files(folder: Path, metadata: Metadata) -> None:
    """The files DCP will open for ``metadata`` are in ``folder`` and none is special: DCP opens each by
    path, and a FIFO would block it for ever."""
    stored: object = metadata.storage_data
    records = cast("dict[object, object]", stored).values() if isinstance(stored, dict) else ()
    names = {getattr(record, "relative_path", None) for record in records}
    for name in sorted(names, key=repr):
        if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
            raise WeightsError(f"{folder / DCP_METADATA}: names a data file {name!r} that is not in its folder")
        kind = special_kind(folder / name)
        if kind is not None:
            raise WeightsError(f"{folder / name} is {kind}, not a regular file")


_DCP_RECORDS = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem")
_ALLOWED_GLOBALS = {
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("collections", "OrderedDict"),
    # Paths (a checkpoint id); Python 3.13 moved the classes to pathlib._local.
    *(
        (module, name)
        for module in ("pathlib", "pathlib._local")
        for name in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")
    ),
}


class _MetadataUnpickler(pickle.Unpickler):
    """Builds only what DCP's metadata is made of: its record classes (dataclasses and enums defined
    in DCP's metadata and filesystem modules), torch dtypes, ``torch.Size``, the layout helper,
    ``OrderedDict`` and paths. A dotted name, which protocol 4 resolves attribute by attribute (and so
    reaches whatever a module imports), is refused before anything is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed_global(module, name) if "." not in name else None
        if found is None:
            raise WeightsError(
                f"DCP metadata asks for {module}.{name}, which is not part of DCP's format; "
                "fluxion does not unpickle arbitrary objects"
            )
        return found


def _allowed_global(module: str, name: str) -> object | None:
    """What ``module.name`` is if the metadata may build it, else ``None``; nothing is imported or
    looked up through a module's ``__getattr__`` (only names a loaded module defines count)."""
    if (module, name) in _ALLOWED_GLOBALS:
        return _defined(module, name)
    if module in _DCP_RECORDS:
        found = _defined(module, name)
        if (
            isinstance(found, type)
            and found.__module__ == module
            and (dataclasses.is_dataclass(found) or issubclass(found, enum.Enum))
        ):
            return found
    if module == "torch":
        found = _defined(module, name)
        if isinstance(found, torch.dtype):
            return found
    return None


def _defined(module: str, name: str) -> object | None:
    loaded = sys.modules.get(module)
    if loaded is None:
        try:  # only the fixed modules named above get here
            loaded = importlib.import_module(module)
        except ImportError:
            return None
    return vars(loaded).get(name)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


class _BoxPlanner(DefaultLoadPlanner):
    """DCP's load planner, asked for one box of a tensor per request instead of the tensor a rank
    holds; the state dict DCP is given holds each request's ``out`` under the request's number."""

    def __init__(self, requests: list[Request]) -> None:
        super().__init__(flatten_state_dict=False, flatten_sharded_tensors=False)
        self._requests = requests

    def create_local_plan(self) -> LoadPlan:
        metadata = self.metadata
        assert metadata is not None  # set by DCP before it asks for the plan
        items: list[ReadItem] = []
        for number, request in enumerate(self._requests):
            if any(stop <= start for start, stop in request.box):
                continue
            described = metadata.state_dict_metadata[request.key]
            assert isinstance(described, TensorStorageMetadata)  # checked by the load's plan
            chunk = ChunkStorageMetadata(
                offsets=torch.Size(start for start, _ in request.box),
                sizes=torch.Size(stop - start for start, stop in request.box),
            )
            for item in create_read_items_for_chunk_list(request.key, described, [chunk]):
                destination = MetadataIndex(str(number), item.dest_index.offset, item.dest_index.index)
                items.append(dataclasses.replace(item, dest_index=destination))
        return LoadPlan(items)

    def lookup_tensor(self, index: MetadataIndex) -> torch.Tensor:
        # The tensor given for a request is the box itself; the read items' offsets are within it.
        return cast(torch.Tensor, self.state_dict[index.fqn])  # pyright: ignore[reportUnknownMemberType]


def open_pieces(source: Source, *, collective: bool = True) -> Pieces:
    """Open ``source`` for reading boxes of its tensors; headers are read and checked, data is not.

    Every header is checked against its file's size, and the pieces of each tensor must cover it
    exactly, so a truncated or missing file is found here, before anything is read. A folder in
    DCP's own format is read by DCP: together by every rank (``collective``, a load), or by this
    process alone.

    >>> open_pieces("no/such/folder")
    Traceback (most recent call last):
    ...
    fluxion.errors.WeightsError: checkpoint 'no/such/folder' does not exist
    """
    if isinstance(source, Mapping):
        return WholePieces(open_checkpoint(source))
    if isinstance(source, str | os.PathLike) and (Path(source) / DCP_METADATA).is_file():
        return DcpPieces(Path(source), collective=collective)
    paths = [Path(source)] if isinstance(source, str | os.PathLike) else _paths_in(source)
    files = [file for path in paths for file in _files_at(path)]
    if any(file.suffix in PICKLE_SUFFIXES for file in files):
        return WholePieces(open_checkpoint(source))
    name = ", ".join(os.fspath(path) for path in paths)
    pieces: dict[str, list[Piece]] = {}
    metadata: dict[str, str] = {}
    for file in files:
        file_pieces, file_metadata = read_header(file)
        for key, piece in file_pieces.items():
            pieces.setdefault(key, []).append(piece)
        metadata.update({key: value for key, value in file_metadata.items() if key != SHARDING_METADATA})
    for key, found in pieces.items():
        _check_cover(key, found)
    for path in paths:
        if path.is_dir():
            check_record(path, pieces)
    aliases = {key: value for path in paths if path.is_dir() for key, value in read_aliases(path).items()}
    if aliases:
        metadata[ALIASES_METADATA] = json.dumps(aliases)
    return SafetensorsPieces(name, pieces, metadata)


def _paths_in(source: object) -> list[Path]:
    """The files of a checkpoint given as a list of paths; anything else given is refused."""
    kind = type(source).__name__
    given: list[object] = list(cast("Iterable[object]", source)) if isinstance(source, list | tuple) else [source]
    if not isinstance(source, list | tuple) or not all(isinstance(path, str | os.PathLike) for path in given):
        raise WeightsError(f"a checkpoint is a path, a list of paths or a dict of tensors; got {kind}")
    if not given:
        raise WeightsError("no checkpoint files given")
    return [Path(cast("str | os.PathLike[str]", path)) for path in given]


def read_aliases(folder: Path) -> dict[str, str]:
    """The shared-tensor keys ``save`` left out of ``folder`` (each to the key it kept), or ``{}``.

    >>> import pathlib, tempfile
    >>> read_aliases(pathlib.Path(tempfile.mkdtemp()))
    {}
    """
    found = _sidecar(folder)
    if found is None:
        return {}
    aliases = found.get("aliases")
    if not isinstance(aliases, dict) or not all(
        isinstance(value, str) for value in cast("dict[str, object]", aliases).values()
    ):
        raise WeightsError(f"{folder / SIDECAR}: 'aliases' must map keys to keys")
    return cast("dict[str, str]", aliases)


def check_record(folder: Path, pieces: dict[str, list[Piece]]) -> None:
    """Compare ``folder``'s files with what ``save`` recorded: every file there, every tensor whole.

    Each file holds pieces whose offsets say where they sit, not how large the whole tensor is:
    without the last rank's file, a tensor would just look smaller. ``save`` records the files and
    the whole shapes, so a missing file is named as such.

    >>> import pathlib, tempfile
    >>> check_record(pathlib.Path(tempfile.mkdtemp()), {})  # no record: nothing to compare
    """
    found = _sidecar(folder)
    if found is None:
        return
    sidecar = folder / SIDECAR
    files, shapes = found.get("files", []), found.get("shapes", {})
    if not isinstance(files, list) or not isinstance(shapes, dict):
        raise WeightsError(f"{sidecar}: 'files' must be a list of names and 'shapes' a dict of shapes")
    names = cast("list[object]", files)
    gone = [name for name in names if not isinstance(name, str) or not (folder / name).is_file()]
    if gone:
        raise WeightsError(
            f"{folder}: a piece is missing: {gone[0]!r} is gone ({len(gone)} of the {len(names)} files save wrote); "
            "a checkpoint needs every rank's file"
        )
    for key, shape in cast("dict[str, object]", shapes).items():
        held = pieces.get(key)
        whole = _entry(key, held).shape if held else None
        if whole is None or list(whole) != shape:
            raise WeightsError(
                f"{folder}: tensor {key!r} was saved with shape {shape}, but its files hold "
                f"{'none of it' if whole is None else list(whole)}: a file is missing or was replaced"
            )


def _sidecar(folder: Path) -> dict[str, object] | None:
    sidecar = folder / SIDECAR
    kind = special_kind(sidecar) if sidecar.exists() else None
    if kind is not None:
        raise WeightsError(f"{sidecar} is {kind}, not a regular file")
    if not sidecar.is_file():
        return None
    try:
        found = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{sidecar}: not readable ({error})") from None
    if not isinstance(found, dict):
        raise WeightsError(
            f"{sidecar}: not a record of a saved folder (a JSON object with 'files', 'shapes' and 'aliases'); "
            f"it holds a JSON {_json_kind(found)}"
        )
    return cast("dict[str, object]", found)


def _json_kind(value: object) -> str:
    kinds = ((list, "array"), (str, "string"), (bool, "boolean"), (int | float, "number"))
    return next((kind for python, kind in kinds if isinstance(value, python)), "null")


def _files_at(path: Path) -> list[Path]:
    if not path.exists():
        raise WeightsError(f"checkpoint {os.fspath(path)!r} does not exist")
    kind = special_kind(path)
    if kind is not None:
        raise WeightsError(f"checkpoint {os.fspath(path)!r} is {kind}, not a regular file")
    if path.is_dir():
        indexes = sorted(path.glob(f"*.safetensors{INDEX_SUFFIX}"))
        if len(indexes) > 1:
            raise WeightsError(f"folder {os.fspath(path)!r} has several indexes ({', '.join(p.name for p in indexes)})")
        if indexes:
            return _files_at(indexes[0])
        files = sorted(path.glob("*.safetensors"))
        if not files:
            pickled = sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
            if len(pickled) == 1:
                return pickled
            raise WeightsError(f"folder {os.fspath(path)!r} has no .safetensors files")
        return files
    if path.name.endswith(INDEX_SUFFIX):
        return _index_files(path)
    return [path]


def _index_files(path: Path) -> list[Path]:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{path}: not a readable index ({error})") from None
    weight_map = cast("dict[str, object]", index).get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise WeightsError(f"{path}: an index needs a 'weight_map' object mapping tensor keys to shard files")
    names: dict[str, None] = {}
    for key, shard in cast("dict[str, object]", weight_map).items():
        if not isinstance(shard, str) or Path(shard).is_absolute() or ".." in Path(shard).parts:
            raise WeightsError(f"{path}: weight_map[{key!r}] must be a file name next to the index, got {shard!r}")
        names[shard] = None
    files = [path.parent / name for name in names]
    for file in files:
        if not file.exists():
            raise WeightsError(f"{path}: shard {file.name!r} does not exist")
    return files


def read_header(path: Path) -> tuple[dict[str, Piece], dict[str, str]]:
    """The pieces one safetensors file holds, by key, and its metadata; checked against the file size.

    >>> import pathlib, tempfile
    >>> from safetensors.torch import save_file
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> save_file({"w": torch.zeros(2, 3)}, path, metadata={"note": "hi"})
    >>> pieces, metadata = read_header(path)
    >>> pieces["w"].shape, pieces["w"].offsets, metadata
    ((2, 3), (0, 0), {'note': 'hi'})
    """
    origin = os.fspath(path)
    kind = special_kind(path)
    if kind is not None:
        raise WeightsError(f"checkpoint {origin!r} is {kind}, not a regular file")
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise WeightsError(f"{origin}: not a valid safetensors file (too short for a header)")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(HEADER_LIMIT, size - 8):
                raise WeightsError(f"{origin}: not a valid safetensors file (header length {length} is impossible)")
            raw = handle.read(length)
    except OSError as error:
        raise WeightsError(f"{origin}: cannot read: {error.strerror or error}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsError(f"{origin}: not a valid safetensors file (its header is not JSON: {error})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{origin}: not a valid safetensors file (its header is not a JSON object)")
    fields = cast("dict[str, Any]", header)
    metadata = _metadata(origin, fields.pop("__metadata__", None))
    placed = _sharding_offsets(origin, metadata)
    data_start, data_size = 8 + length, size - 8 - length
    pieces: dict[str, Piece] = {}
    for key, described in fields.items():
        dtype, shape, (begin, end) = _described(origin, key, described)
        if not 0 <= begin <= end <= data_size or end - begin != math.prod(shape) * dtype.itemsize:
            raise WeightsError(
                f"{origin}: tensor {key!r} ({dtype}, shape {shape}) claims bytes {begin}..{end} of "
                f"{data_size} (the file is truncated or damaged)"
            )
        offsets = placed.get(key, (0,) * len(shape))
        if len(offsets) != len(shape) or any(offset < 0 for offset in offsets):
            raise WeightsError(f"{origin}: tensor {key!r} has offsets {list(offsets)} for a shape {shape}")
        pieces[key] = Piece(origin, data_start + begin, offsets, shape, dtype)
    return pieces, metadata


def _metadata(origin: str, raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(value, str) for value in cast("dict[str, object]", raw).values()
    ):
        raise WeightsError(f"{origin}: not a valid safetensors file (__metadata__ must map strings to strings)")
    return cast("dict[str, str]", raw)


def _sharding_offsets(origin: str, metadata: dict[str, str]) -> dict[str, tuple[int, ...]]:
    raw = metadata.get(SHARDING_METADATA)
    if raw is None:
        return {}
    try:
        described = json.loads(raw)
        return {
            key: tuple(int(offset) for offset in value["saved_offsets"])
            for key, value in cast("dict[str, dict[str, list[int]]]", described).items()
        }
    except (json.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError):
        raise WeightsError(f"{origin}: its {SHARDING_METADATA} metadata is not readable") from None


def _described(origin: str, key: str, described: object) -> tuple[torch.dtype, tuple[int, ...], tuple[int, int]]:
    fields = cast("dict[str, Any]", described) if isinstance(described, dict) else {}
    dtype = SAFETENSORS_DTYPES.get(str(fields.get("dtype")))
    shape, offsets = fields.get("shape"), fields.get("data_offsets")
    if (
        dtype is None
        or not isinstance(shape, list)
        or not all(isinstance(size, int) and size >= 0 for size in cast("list[object]", shape))
        or not isinstance(offsets, list)
        or len(cast("list[object]", offsets)) != 2
        or not all(isinstance(offset, int) for offset in cast("list[object]", offsets))
    ):
        raise WeightsError(f"{origin}: tensor {key!r} is not described properly in the header: {described!r}")
    begin, end = cast("list[int]", offsets)
    return dtype, tuple(cast("list[int]", shape)), (begin, end)


def _entry(key: str, pieces: list[Piece]) -> Entry:
    """The whole tensor the pieces make up: each dimension reaches as far as the furthest piece."""
    rank = len(pieces[0].shape)
    shape = tuple(max(piece.offsets[dim] + piece.shape[dim] for piece in pieces) for dim in range(rank))
    return Entry(key, shape, pieces[0].dtype, pieces[0].path)


def _check_cover(key: str, pieces: list[Piece]) -> None:
    """The pieces of one tensor agree on its dtype and rank and cover it exactly once."""
    first = pieces[0]
    for piece in pieces[1:]:
        if piece.dtype != first.dtype or len(piece.shape) != len(first.shape):
            raise WeightsError(f"tensor {key!r}: its pieces in {first.path} and {piece.path} disagree on dtype or rank")
    if len(pieces) == 1 and not any(first.offsets):
        return
    whole = _entry(key, pieces).shape
    held = [piece for piece in pieces if math.prod(piece.shape)]
    if whole and all(piece.offsets[1:] == (0,) * (len(whole) - 1) and piece.shape[1:] == whole[1:] for piece in held):
        _check_rows(key, held)  # the usual layout (FSDP2 splits rows across ranks), in n log n
    else:
        _check_disjoint(key, pieces)
    # Disjoint pieces inside the tensor cover it exactly when they hold as many elements as it has.
    covered = sum(math.prod(piece.shape) for piece in pieces)
    if covered != math.prod(whole):
        where = ", ".join(sorted({os.path.basename(piece.path) for piece in pieces}))
        raise WeightsError(
            f"tensor {key!r} of shape {whole} is stored in {len(pieces)} pieces ({where} in "
            f"{os.path.dirname(first.path)}) that cover {covered} of its {math.prod(whole)} elements: a piece is "
            "missing (are all the checkpoint's files there?)"
        )


def _check_rows(key: str, pieces: list[Piece]) -> None:
    """No two pieces overlap, for pieces (none empty) that each hold whole rows: sorted by their first
    row, each must start where the one before it ends or later."""
    reached, last = 0, None
    for piece in sorted(pieces, key=lambda piece: piece.offsets[0]):
        if last is not None and piece.offsets[0] < reached:
            _overlap(key, last, piece)
        reached, last = piece.offsets[0] + piece.shape[0], piece


def _check_disjoint(key: str, pieces: list[Piece]) -> None:
    """No two pieces overlap, compared pair by pair (for layouts split along other dimensions)."""
    for index, piece in enumerate(pieces):
        for other in pieces[index + 1 :]:
            if _intersection(_box_of(piece), other.offsets, other.shape) is not None:
                _overlap(key, piece, other)


def _overlap(key: str, piece: Piece, other: Piece) -> NoReturn:
    raise WeightsError(
        f"tensor {key!r}: the pieces in {piece.path} and {other.path} overlap (offsets "
        f"{list(piece.offsets)} and {list(other.offsets)}); a checkpoint holds each element once"
    )


def _box_of(piece: Piece) -> Box:
    return tuple((offset, offset + size) for offset, size in zip(piece.offsets, piece.shape, strict=True))


def _intersection(box: Box, offsets: tuple[int, ...], shape: tuple[int, ...]) -> Box | None:
    inside: list[tuple[int, int]] = []
    for (start, stop), offset, size in zip(box, offsets, shape, strict=True):
        low, high = max(start, offset), min(stop, offset + size)
        if low >= high:
            return None
        inside.append((low, high))
    return tuple(inside)
