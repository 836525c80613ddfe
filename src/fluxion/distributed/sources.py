"""Checkpoints read a piece at a time: each rank reads the part of each tensor its shard holds.

:func:`open_pieces` opens what ``fluxion.distributed.load`` reads and picks the reader for it
(each a ``fluxion.distributed.pieces.Pieces``): a safetensors file, an index of shards
(``*.safetensors.index.json``), a folder of safetensors files, or the folder that
``fluxion.distributed.save`` writes (torch.distributed.checkpoint's Hugging Face layout, where each
file holds pieces of tensors and its header says where each piece sits) are read by byte range
(``fluxion.distributed.safetensors_pieces``); a folder in DCP's own format (``.metadata`` and
``.distcp`` files) is read by DCP itself, box by box (``fluxion.distributed.dcp_pieces``). Other
checkpoints (``.pt`` files, a dict of tensors) are read whole through ``fluxion.weights`` and cut
(:class:`WholePieces`).

A folder ``save`` wrote also holds its record, :data:`SIDECAR`: the files and whole shapes it wrote
(:func:`check_record`, so that a missing file is named as such) and the tied keys it left out
(:func:`read_aliases`).

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

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import cast

import torch

from fluxion.distributed.dcp_pieces import DCP_METADATA, DcpPieces
from fluxion.distributed.pieces import Box, OneAtATime, Pieces
from fluxion.distributed.safetensors_pieces import Piece, SafetensorsPieces, read_headers, whole_entry
from fluxion.errors import WeightsError
from fluxion.files import special_kind
from fluxion.weights.checkpoint import INDEX_SUFFIX, PICKLE_SUFFIXES, Checkpoint, Source, open_checkpoint
from fluxion.weights.plan import ALIASES_METADATA

SIDECAR = "fluxion.json"
"""What ``fluxion.distributed.save`` adds next to DCP's files: the keys it left out as copies of a
shared tensor (tied embeddings), each with the key it kept."""


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
    pieces, metadata = read_headers(files)
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
        whole = whole_entry(key, held).shape if held else None
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
