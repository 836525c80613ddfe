"""Folders in torch.distributed.checkpoint's own format (``.metadata`` and ``.distcp`` files), read
box by box by DCP itself.

:class:`DcpPieces` asks DCP's load for one box of a tensor per request (a load planner of its own),
every rank its own boxes, in one collective call. DCP keeps its metadata as a pickle; fluxion
unpickles it with only DCP's own record classes, dtypes, sizes and paths allowed, so a crafted
``.metadata`` cannot run code, and refuses data files that are outside the folder or special (a FIFO
would block DCP's read for ever).

>>> import pathlib, tempfile
>>> import torch.distributed.checkpoint as dcp
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with warnings.catch_warnings():  # DCP notes that it runs in one process
...     warnings.simplefilter("ignore")
...     _ = dcp.save({"w": torch.arange(4.0)}, checkpoint_id=folder)
>>> out = torch.empty(2)
>>> DcpPieces(folder, collective=False).read_all([Request("w", ((2, 4),), out)])
>>> out.tolist()
[2.0, 3.0]
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import os
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any, cast

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

from fluxion.distributed.pieces import Request
from fluxion.distributed.ranks import describe_checkpoint_failure
from fluxion.errors import WeightsError, first_line
from fluxion.files import special_kind
from fluxion.weights.checkpoint import Checkpoint, Entry

DCP_METADATA = ".metadata"
"""The file that marks a folder written in torch.distributed.checkpoint's own format."""


class DcpPieces:
    """A folder ``torch.distributed.checkpoint.save`` wrote in its own format (``.metadata`` and
    ``.distcp`` files): DCP itself reads each box, every rank its own, in one collective call.

    >>> import pathlib, tempfile
    >>> import torch.distributed.checkpoint as dcp
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with warnings.catch_warnings():  # DCP notes that it runs in one process
    ...     warnings.simplefilter("ignore")
    ...     _ = dcp.save({"w": torch.arange(6.0).reshape(3, 2)}, checkpoint_id=folder)
    >>> pieces = DcpPieces(folder)
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
        >>> DcpPieces(folder).read_all([Request("b", ((1, 2),), out)])
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
            raise WeightsError(f"{self._folder}: DCP could not read it: {first_line(error)}") from None

    def close(self) -> None:
        """Nothing to release: DCP opens and closes its files on each read.

        >>> import pathlib, tempfile
        >>> import torch.distributed.checkpoint as dcp
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     _ = dcp.save({"b": torch.ones(2)}, checkpoint_id=folder)
        >>> DcpPieces(folder).close()
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
