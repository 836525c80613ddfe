"""fluxion.distributed.dcp_pieces: folders in torch.distributed.checkpoint's own format (``.metadata``
and ``.distcp`` files), read by DCP itself box by box, and their metadata read by an unpickler that
builds only what DCP's format is made of.

Single process (DCP without a process group), and one test on two ranks.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.distributed import checkpoint as dcp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Replicate, Shard, distribute_tensor

from fluxion.distributed.dcp_pieces import DcpPieces
from fluxion.distributed.pieces import Request
from fluxion.distributed.sources import open_pieces
from fluxion.errors import WeightsError
from tests.distributed.helpers import Cluster
from tests.distributed.pieces_helpers import (
    OUT_DTYPES,
    OUT_LAYOUTS,
    boxes,
    expect_equal,
    random_tensor,
    read_box,
    shapes,
)


def dcp_save(tensors: dict[str, torch.Tensor], folder: Path) -> Path:
    with warnings.catch_warnings():  # DCP notes that it runs without a process group
        warnings.simplefilter("ignore")
        dcp.save(tensors, checkpoint_id=folder)
    return folder


@pytest.fixture
def quiet_dcp() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# -- any box, several requests, read by DCP --------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=shapes,
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.int64]),
    seed=st.integers(0, 2**16),
    layout=st.sampled_from(OUT_LAYOUTS),
    out_dtype=st.none() | st.sampled_from(OUT_DTYPES),
    data=st.data(),
)
def test_any_box_of_a_dcp_folder_reads_as_slicing_the_tensor(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    seed: int,
    layout: str,
    out_dtype: torch.dtype | None,
    data: st.DataObject,
) -> None:
    tensor = random_tensor(shape, dtype, seed)
    box = data.draw(boxes(shape))
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pieces = open_pieces(dcp_save({"t": tensor, "other": torch.ones(2)}, Path(folder)))
        assert isinstance(pieces, DcpPieces)
        assert (pieces.checkpoint.entries["t"].shape, pieces.checkpoint.entries["t"].dtype) == (shape, dtype)
        out = read_box(pieces, "t", box, out_dtype or dtype, layout)
        pieces.close()
    expect_equal(out, tensor, box)


@pytest.mark.usefixtures("quiet_dcp")
def test_a_dcp_folder_reads_several_requests_at_once(tmp_path: Path) -> None:
    tensors = {"w": torch.arange(24.0).reshape(4, 6), "b": torch.arange(3, dtype=torch.bfloat16)}
    pieces = open_pieces(dcp_save(tensors, tmp_path))
    assert pieces.checkpoint.name == os.fspath(tmp_path)
    w, b = torch.empty(3, 2).T, torch.empty(2, dtype=torch.float64)
    pieces.read_all([Request("w", ((1, 3), (2, 5)), w), Request("b", ((1, 3),), b)])
    assert torch.equal(w, tensors["w"][1:3, 2:5])
    assert b.tolist() == [1.0, 2.0]


def test_a_dcp_folder_reads_several_boxes_of_one_tensor_in_one_call(tmp_path: Path) -> None:
    """A split mapping asks for several blocks of one stored tensor (a fused query|key|value)."""
    tensor = torch.arange(24.0).reshape(6, 4)
    with warnings.catch_warnings():  # DCP notes that it runs in one process
        warnings.simplefilter("ignore")
        dcp.save({"qkv": tensor}, checkpoint_id=tmp_path)
    parts = [torch.empty(2, 4), torch.empty(4, 2), torch.empty(2, 4)]
    requests = [
        Request("qkv", ((0, 2), (0, 4)), parts[0]),
        Request("qkv", ((2, 4), (0, 4)), parts[1].T),
        Request("qkv", ((4, 6), (0, 4)), parts[2]),
    ]
    open_pieces(tmp_path, collective=False).read_all(requests)
    assert torch.equal(parts[0], tensor[0:2])
    assert torch.equal(parts[1].T, tensor[2:4])
    assert torch.equal(parts[2], tensor[4:6])


DCP_DAMAGE = {
    "missing-key": lambda folder: ("nope", ((0, 1),)),
    "missing-data-file": lambda folder: ([file.unlink() for file in folder.glob("*.distcp")], ("w", ((0, 1), (0, 6))))[
        1
    ],
}


@pytest.mark.usefixtures("quiet_dcp")
@pytest.mark.parametrize("damage", list(DCP_DAMAGE))
def test_a_failed_dcp_read_is_a_weights_error_naming_the_folder(tmp_path: Path, damage: str) -> None:
    pieces = open_pieces(dcp_save({"w": torch.zeros(4, 6)}, tmp_path))
    key, box = DCP_DAMAGE[damage](tmp_path)
    with pytest.raises(BaseException) as raised:  # noqa: PT011 (what it raises now is not even an Exception)
        pieces.read_all([Request(key, box, torch.empty(tuple(stop - start for start, stop in box)))])
    assert isinstance(raised.value, WeightsError), f"{type(raised.value).__name__}: {raised.value}"
    assert str(tmp_path) in str(raised.value)


# -- DCP metadata: read with an unpickler that builds only what DCP's format is made of ------------


@pytest.mark.parametrize("content", [b"", b"garbage", pickle.dumps({"not": "metadata"})])
def test_an_unreadable_dcp_metadata_file_is_refused_naming_the_folder(tmp_path: Path, content: bytes) -> None:
    (tmp_path / ".metadata").write_bytes(content)
    with pytest.raises(WeightsError) as raised:
        open_pieces(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path / '.metadata'}: not")
    assert "DCP metadata" in str(raised.value)


class _MakesAFolder:
    """Unpickled, it makes a folder: what any code a .metadata file could run would be."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (os.fspath(self.marker),))


def test_opening_a_dcp_folder_runs_no_code_from_its_metadata(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / ".metadata").write_bytes(pickle.dumps(_MakesAFolder(marker)))
    with pytest.raises(WeightsError):
        open_pieces(folder)
    assert not marker.exists()


@pytest.mark.usefixtures("quiet_dcp")
def test_real_dcp_metadata_of_every_kind_of_entry_is_read(tmp_path: Path) -> None:
    tensors = {
        "bf16": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3),
        "int": torch.arange(5),
        "scalar": torch.tensor(3.5),
        "flags": torch.tensor([True, False]),
        "empty": torch.zeros(0, 4, dtype=torch.float16),
    }
    others = {"blob": b"\x00bytes", "step": 7, "settings": {"lr": 0.5, "names": ["a", "b"]}}
    dcp.save({**tensors, **others}, checkpoint_id=tmp_path)
    pieces = open_pieces(tmp_path, collective=False)
    entries = pieces.checkpoint.entries
    assert {key: (entry.shape, entry.dtype) for key, entry in entries.items()} == {
        key: (tuple(tensor.shape), tensor.dtype) for key, tensor in tensors.items()
    }
    outs = {key: torch.empty_like(tensor) for key, tensor in tensors.items()}
    pieces.read_all([Request(key, tuple((0, size) for size in out.shape), out) for key, out in outs.items()])
    for key, tensor in tensors.items():
        assert torch.equal(outs[key], tensor), key


def _global(module: str, name: str) -> bytes:
    """A pickle (protocol 4) that only asks for ``module.name``."""
    strings = b"".join(pickle.SHORT_BINUNICODE + bytes([len(text)]) + text for text in (module.encode(), name.encode()))
    return pickle.PROTO + b"\x04" + strings + pickle.STACK_GLOBAL + pickle.STOP


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("torch.distributed.checkpoint.metadata", "torch.Size"),  # a dotted name, even to an allowed class
        ("torch.distributed.checkpoint.filesystem", "os.PathLike"),
        ("torch.distributed.checkpoint.filesystem", "Path"),  # imported there, defined elsewhere
        ("torch.distributed.checkpoint.filesystem", "FileSystemWriter"),  # defined there, but not a record
        ("torch", "Tensor"),
        ("torch", "load"),
        ("torch", "float32.__class__"),
        ("os", "system"),
        ("builtins", "eval"),
        ("pathlib._local", "PosixPath.__init__"),
    ],
)
def test_dcp_metadata_asking_for_anything_else_is_refused(tmp_path: Path, module: str, name: str) -> None:
    (tmp_path / ".metadata").write_bytes(_global(module, name))
    with pytest.raises(WeightsError, match="fluxion does not unpickle arbitrary objects") as raised:
        open_pieces(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path / '.metadata'}: DCP metadata asks for {module}.{name},")


@pytest.mark.parametrize(
    ("module", "name"),
    [("torch", "bfloat16"), ("torch", "Size"), ("collections", "OrderedDict"), ("pathlib", "PurePosixPath")],
)
def test_dcp_metadata_may_name_dtypes_sizes_and_paths(tmp_path: Path, module: str, name: str) -> None:
    """Each is let through (and the file is then refused only for not being DCP metadata)."""
    (tmp_path / ".metadata").write_bytes(_global(module, name))
    with pytest.raises(WeightsError, match="not DCP metadata"):
        open_pieces(tmp_path)


@pytest.mark.usefixtures("quiet_dcp", "deadline")
def test_a_dcp_data_file_that_is_a_fifo_is_refused_when_opening(tmp_path: Path) -> None:
    (data,) = dcp_save({"w": torch.zeros(3)}, tmp_path).glob("*.distcp")
    data.unlink()
    os.mkfifo(data)
    with pytest.raises(WeightsError, match=re.escape(f"{data} is a FIFO (named pipe), not a regular file")):
        open_pieces(tmp_path)


@pytest.mark.usefixtures("quiet_dcp")
@pytest.mark.parametrize("elsewhere", ["../outside.distcp", "/etc/hostname", ""])
def test_dcp_metadata_naming_a_data_file_outside_its_folder_is_refused(tmp_path: Path, elsewhere: str) -> None:
    folder = dcp_save({"w": torch.zeros(3)}, tmp_path / "checkpoint")
    metadata = pickle.loads((folder / ".metadata").read_bytes())  # our own file: trusted here
    metadata.storage_data = {
        index: dataclasses.replace(stored, relative_path=elsewhere) for index, stored in metadata.storage_data.items()
    }
    (folder / ".metadata").write_bytes(pickle.dumps(metadata))
    with pytest.raises(WeightsError, match=re.escape(f"names a data file {elsewhere!r} that is not in its folder")):
        open_pieces(folder)


# -- on two ranks ----------------------------------------------------------------------------------


def save_sharded_with_dcp_and_read_it(folder: str) -> dict[str, list[Any]]:
    """Rank step: tensors sharded along rows, along columns and replicated, saved by DCP's own ``save``
    (its format, with DCP's records of where each shard sits), then read whole by every rank."""
    mesh = init_device_mesh("cpu", (2,))
    whole = torch.arange(10.0).reshape(5, 2)
    state = {
        "rows": distribute_tensor(whole, mesh, [Shard(0)]),
        "columns": distribute_tensor(whole.to(torch.bfloat16), mesh, [Shard(1)]),
        "same": distribute_tensor(torch.arange(3), mesh, [Replicate()]),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=folder)
    pieces = open_pieces(Path(folder))
    outs = {key: torch.empty(entry.shape, dtype=entry.dtype) for key, entry in pieces.checkpoint.entries.items()}
    pieces.read_all([Request(key, tuple((0, size) for size in out.shape), out) for key, out in outs.items()])
    return {key: out.tolist() for key, out in outs.items()}


def test_a_sharded_dcp_save_reads_whole_on_every_rank(cluster: Cluster, tmp_path: Path) -> None:
    whole = torch.arange(10.0).reshape(5, 2).tolist()
    expected = {"rows": whole, "columns": whole, "same": [0, 1, 2]}
    assert cluster.run(save_sharded_with_dcp_and_read_it, os.fspath(tmp_path)) == [expected, expected]
