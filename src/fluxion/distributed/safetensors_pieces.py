"""Safetensors files read a piece at a time: any box of a tensor read by byte ranges.

A safetensors file is a JSON header (every tensor's dtype, shape and byte range) and then the raw
bytes, row after row. So the rows ``a:b`` of a tensor are one byte range of the file, and any box of
a tensor (a range per dimension) can be read with a few reads into the memory that keeps it, with
no memory map (whose pages would count against the process) and no copy of the whole tensor.

A tensor may be stored in several pieces, in several files: the folder ``fluxion.distributed.save``
writes (torch.distributed.checkpoint's Hugging Face layout) holds each rank's pieces, and each
file's header metadata says where its pieces sit (:data:`SHARDING_METADATA`). :func:`read_headers`
joins the pieces of every file and checks that they cover each tensor exactly once, so a truncated
or missing file is found before anything is read.

>>> import pathlib, tempfile
>>> from safetensors.torch import save_file
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
>>> save_file({"weight": torch.arange(12.0).reshape(4, 3)}, path)
>>> pieces = SafetensorsPieces(os.fspath(path), *read_headers([path]))
>>> out = torch.empty(2, 2)
>>> pieces.read("weight", ((1, 3), (1, 3)), out)
>>> out.tolist()
[[4.0, 5.0], [7.0, 8.0]]
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import struct
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any, NoReturn, cast

import torch

from fluxion.distributed.pieces import Box, OneAtATime
from fluxion.errors import WeightsError
from fluxion.files import special_kind
from fluxion.weights.checkpoint import SAFETENSORS_DTYPES, Checkpoint, Entry

SHARDING_METADATA = "DCP_SHARDING_INFO"
"""The header metadata where torch.distributed.checkpoint's Hugging Face writer says where each
piece sits in its tensor (``{"key": {"saved_offsets": [...]}}``)."""

BLOCK_BYTES = 16 * 2**20
"""The most a read that must be rearranged (a transposed or converted piece) holds at once."""

HEADER_LIMIT = 100 * 2**20
"""The longest header read; a file that claims a longer one is refused as damaged."""


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


class SafetensorsPieces(OneAtATime):
    """Safetensors files read by byte range (see the module docstring); made by ``open_pieces``.

    >>> import pathlib, tempfile
    >>> from safetensors.torch import save_file
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> save_file({"bias": torch.ones(3)}, path)
    >>> SafetensorsPieces(os.fspath(path), *read_headers([path])).checkpoint.entries["bias"].shape
    (3,)
    """

    def __init__(self, name: str, pieces: dict[str, list[Piece]], metadata: dict[str, str]) -> None:
        self.pieces = pieces
        entries = {key: whole_entry(key, found) for key, found in pieces.items()}
        self.checkpoint = Checkpoint(name, entries, {}, metadata)
        self._files: dict[str, BufferedReader] = {}

    def read(self, key: str, box: Box, out: torch.Tensor) -> None:
        """Fill ``out`` with the ``box`` of tensor ``key``, reading only the rows the box needs.

        >>> import pathlib, tempfile
        >>> from safetensors.torch import save_file
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> save_file({"w": torch.arange(6.0).reshape(2, 3)}, path)
        >>> out = torch.empty(1, 2)
        >>> SafetensorsPieces(os.fspath(path), *read_headers([path])).read("w", ((0, 2), (2, 3)), out.T)
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


def read_headers(files: list[Path]) -> tuple[dict[str, list[Piece]], dict[str, str]]:
    """The pieces of each tensor the files hold, by key, and their metadata joined (without DCP's
    record of where the pieces sit); the pieces of each tensor must agree and cover it exactly once.

    >>> import pathlib, tempfile
    >>> from safetensors.torch import save_file
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for rank, offset in enumerate([0, 2]):
    ...     info = json.dumps({"w": {"saved_offsets": [offset, 0]}})
    ...     save_file({"w": torch.zeros(2, 3)}, folder / f"{rank}.safetensors", metadata={SHARDING_METADATA: info})
    >>> pieces, metadata = read_headers(sorted(folder.glob("*.safetensors")))
    >>> [piece.offsets for piece in pieces["w"]], metadata
    ([(0, 0), (2, 0)], {})
    """
    pieces: dict[str, list[Piece]] = {}
    metadata: dict[str, str] = {}
    for file in files:
        file_pieces, file_metadata = read_header(file)
        for key, piece in file_pieces.items():
            pieces.setdefault(key, []).append(piece)
        metadata.update({key: value for key, value in file_metadata.items() if key != SHARDING_METADATA})
    for key, found in pieces.items():
        _check_cover(key, found)
    return pieces, metadata


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


def whole_entry(key: str, pieces: list[Piece]) -> Entry:
    """The whole tensor the pieces make up: each dimension reaches as far as the furthest piece.

    >>> top = Piece("a.safetensors", 0, (0, 0), (2, 3), torch.float32)
    >>> bottom = Piece("b.safetensors", 0, (2, 0), (1, 3), torch.float32)
    >>> whole_entry("w", [top, bottom]).shape
    (3, 3)
    """
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
    whole = whole_entry(key, pieces).shape
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
