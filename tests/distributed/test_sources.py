"""fluxion.distributed.sources: any box of a checkpoint tensor read from its files, and every bad file refused.

Single process, no process group: files are written here (with safetensors, or byte by byte for
the damaged ones) and read back box by box; every read must equal slicing the tensor.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import pickle
import re
import struct
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from unittest import mock

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from torch.distributed import checkpoint as dcp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Replicate, Shard, distribute_tensor

from fluxion.distributed import sources
from fluxion.distributed.sources import (
    SHARDING_METADATA,
    SIDECAR,
    Box,
    DcpPieces,
    Piece,
    Pieces,
    Request,
    SafetensorsPieces,
    WholePieces,
    open_pieces,
    read_aliases,
    read_header,
)
from fluxion.errors import WeightsError
from fluxion.weights.plan import ALIASES_METADATA
from tests.distributed.helpers import Cluster

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SOURCE_DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int8,
    torch.uint8,
    torch.bool,
]
# Conversions into these are exact or well defined from every source dtype above (no float -> unsigned).
OUT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64]
OUT_LAYOUTS = ["contiguous", "transposed", "strided"]
BLOCK_SIZES = [None, 1, 5, 64]
"""``sources.BLOCK_BYTES`` for a read: as shipped, or so small that rows come in several blocks."""


# -- data and files ------------------------------------------------------------------------------


def random_tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=generator).to(dtype)
    if not dtype.is_floating_point:
        return torch.randint(-100, 100, shape, generator=generator).to(dtype)
    return torch.randn(shape, generator=generator).to(dtype)


def slices(box: Box) -> tuple[slice, ...]:
    return tuple(slice(start, stop) for start, stop in box)


def new_out(shape: tuple[int, ...], dtype: torch.dtype, layout: str) -> torch.Tensor:
    """An uninitialised tensor of ``shape``: contiguous, a transposed view, or a strided (non-contiguous) view."""
    if layout == "transposed" and len(shape) >= 2:
        order = tuple(reversed(range(len(shape))))
        return torch.empty(tuple(reversed(shape)), dtype=dtype).permute(order)
    if layout == "strided" and shape:
        return torch.empty(tuple(2 * size for size in shape), dtype=dtype)[tuple(slice(None, None, 2) for _ in shape)]
    return torch.empty(shape, dtype=dtype)


def read_box(pieces: Pieces, key: str, box: Box, dtype: torch.dtype, layout: str) -> torch.Tensor:
    out = new_out(tuple(stop - start for start, stop in box), dtype, layout)
    # A value no read leaves in place, so an element left unwritten shows.
    out.fill_(True if dtype == torch.bool else 77)
    pieces.read_all([Request(key, box, out)])
    return out


def expect_equal(out: torch.Tensor, tensor: torch.Tensor, box: Box) -> None:
    expected = tensor[slices(box)].to(out.dtype)
    assert out.shape == expected.shape
    assert torch.equal(out, expected), f"box {box}: read {out}, expected {expected}"


def write_raw(path: Path, header: object, data: bytes = b"", *, length: int | None = None) -> Path:
    """A safetensors-like file written byte by byte: the header length, the header, then ``data``."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def sharding_metadata(offsets: dict[str, list[int]]) -> dict[str, str]:
    """A header's metadata as torch.distributed.checkpoint's Hugging Face writer records each piece's place."""
    return {SHARDING_METADATA: json.dumps({key: {"saved_offsets": offset} for key, offset in offsets.items()})}


def write_piece(path: Path, key: str, piece: torch.Tensor, offsets: tuple[int, ...], **more: torch.Tensor) -> Path:
    save_file({key: piece.contiguous(), **more}, path, metadata=sharding_metadata({key: list(offsets)}))
    return path


# -- strategies ------------------------------------------------------------------------------------


@st.composite
def boxes(draw: st.DrawFn, shape: tuple[int, ...]) -> Box:
    """Any box of ``shape``: empty ranges (start == stop) included."""
    box: list[tuple[int, int]] = []
    for size in shape:
        start = draw(st.integers(0, size))
        box.append((start, draw(st.integers(start, size))))
    return tuple(box)


shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)


# -- one file: any box equals slicing ---------------------------------------------------------------


@FAST
@given(
    shape=shapes,
    dtype=st.sampled_from(SOURCE_DTYPES),
    seed=st.integers(0, 2**16),
    layout=st.sampled_from(OUT_LAYOUTS),
    out_dtype=st.none() | st.sampled_from(OUT_DTYPES),
    block_bytes=st.sampled_from(BLOCK_SIZES),
    data=st.data(),
)
def test_any_box_of_a_file_reads_as_slicing_the_tensor(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    seed: int,
    layout: str,
    out_dtype: torch.dtype | None,
    block_bytes: int | None,
    data: st.DataObject,
) -> None:
    if not shape:
        out_dtype = None  # a scalar read into another dtype: see test_a_scalar_reads_into_another_dtype
    tensor = random_tensor(shape, dtype, seed)
    box = data.draw(boxes(shape))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        save_file({"t": tensor, "other": torch.ones(2)}, path)
        pieces = open_pieces(path)
        try:
            with mock.patch.object(sources, "BLOCK_BYTES", block_bytes or sources.BLOCK_BYTES):
                out = read_box(pieces, "t", box, out_dtype or dtype, layout)
        finally:
            pieces.close()
    expect_equal(out, tensor, box)


def test_a_scalar_reads_into_another_dtype(tmp_path: Path) -> None:
    save_file({"scale": torch.tensor(1.5, dtype=torch.float16)}, tmp_path / "model.safetensors")
    out = torch.zeros((), dtype=torch.float64)
    open_pieces(tmp_path / "model.safetensors").read("scale", (), out)
    assert out.item() == 1.5


def test_a_scalar_reads_into_its_own_dtype(tmp_path: Path) -> None:
    save_file({"scale": torch.tensor(-2.25, dtype=torch.bfloat16)}, tmp_path / "model.safetensors")
    out = torch.zeros((), dtype=torch.bfloat16)
    open_pieces(tmp_path / "model.safetensors").read("scale", (), out)
    assert out.item() == -2.25


def test_whole_rows_are_read_straight_into_a_contiguous_out(tmp_path: Path) -> None:
    """The fast path (no block in between) reads into the very memory given, here a view into a bigger tensor."""
    tensor = torch.arange(24.0).reshape(6, 4)
    save_file({"w": tensor}, tmp_path / "model.safetensors")
    big = torch.full((8, 4), -1.0)
    with mock.patch.object(torch, "empty", side_effect=AssertionError("no block expected")):
        open_pieces(tmp_path / "model.safetensors").read("w", ((1, 5), (0, 4)), big[2:6])
    assert torch.equal(big[2:6], tensor[1:5])
    assert (big[:2] == -1).all()
    assert (big[6:] == -1).all()


def test_rows_come_in_blocks_of_block_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rearranged read holds at most BLOCK_BYTES of rows at once (one row when a row is larger)."""
    tensor = torch.arange(70.0).reshape(10, 7)
    save_file({"w": tensor}, tmp_path / "model.safetensors")
    pieces = open_pieces(tmp_path / "model.safetensors")
    assert isinstance(pieces, SafetensorsPieces)
    monkeypatch.setattr(sources, "BLOCK_BYTES", 3 * 7 * 4)  # three rows of float32
    reads: list[tuple[int, int]] = []
    original = SafetensorsPieces._read_rows

    def counting(self: SafetensorsPieces, handle: object, piece: object, first: int, last: int, out: object) -> None:
        reads.append((first, last))
        original(self, handle, piece, first, last, out)

    monkeypatch.setattr(SafetensorsPieces, "_read_rows", counting)
    out = torch.empty(3, 8).T  # rows 1..9, columns 2..5, into a transposed view
    pieces.read("w", ((1, 9), (2, 5)), out)
    assert torch.equal(out, tensor[1:9, 2:5])
    assert reads == [(1, 4), (4, 7), (7, 9)]


def test_the_header_gives_every_key_its_shape_dtype_and_the_metadata(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file(
        {"a": torch.zeros(2, 3, dtype=torch.bfloat16), "b": torch.zeros((), dtype=torch.int64)},
        path,
        metadata={"format": "pt", "note": "x"},
    )
    pieces = open_pieces(path)
    entries = pieces.checkpoint.entries
    assert (entries["a"].shape, entries["a"].dtype) == ((2, 3), torch.bfloat16)
    assert (entries["b"].shape, entries["b"].dtype) == ((), torch.int64)
    assert pieces.checkpoint.metadata == {"format": "pt", "note": "x"}
    assert pieces.checkpoint.name == os.fspath(path)


def test_close_lets_the_files_go_and_a_read_opens_them_again(tmp_path: Path) -> None:
    save_file({"w": torch.arange(4.0)}, tmp_path / "model.safetensors")
    pieces = open_pieces(tmp_path / "model.safetensors")
    out = torch.empty(2)
    pieces.read("w", ((0, 2),), out)
    pieces.close()
    pieces.read("w", ((2, 4),), out)
    pieces.close()
    assert out.tolist() == [2.0, 3.0]


def test_reading_a_key_the_checkpoint_lacks_is_a_weights_error(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(WeightsError, match=r"model\.safetensors.*'missing'"):
        open_pieces(path).read("missing", ((0, 2),), torch.empty(2))


# -- tensors in several pieces (torch.distributed.checkpoint's Hugging Face layout) ------------------


@st.composite
def cuts(draw: st.DrawFn, size: int) -> list[tuple[int, int]]:
    """``0..size`` cut into consecutive ranges (one range when nothing is cut)."""
    points = sorted(draw(st.sets(st.integers(1, max(1, size - 1)), max_size=2)) - {size}) if size > 1 else []
    bounds = [0, *points, size]
    return list(itertools.pairwise(bounds))


@FAST
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.int64]),
    seed=st.integers(0, 2**16),
    layout=st.sampled_from(OUT_LAYOUTS),
    out_dtype=st.none() | st.sampled_from(OUT_DTYPES),
    block_bytes=st.sampled_from(BLOCK_SIZES),
    empty_piece=st.booleans(),
    data=st.data(),
)
def test_any_box_of_a_tensor_in_pieces_reads_as_slicing_the_whole(
    shape: tuple[int, ...],
    dtype: torch.dtype,
    seed: int,
    layout: str,
    out_dtype: torch.dtype | None,
    block_bytes: int | None,
    empty_piece: bool,
    data: st.DataObject,
) -> None:
    tensor = random_tensor(shape, dtype, seed)
    grid = [data.draw(cuts(size)) for size in shape]
    box = data.draw(boxes(shape))
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for number, ranges in enumerate(itertools.product(*grid), start=1):
            offsets = tuple(start for start, _ in ranges)
            # The first file also holds a tensor of its own, whole, as DCP's files do.
            more = {"whole": torch.ones(2)} if number == 1 else {}
            write_piece(
                folder / f"shard-{number:05d}-model-00001-of-00001.safetensors",
                "t",
                tensor[slices(ranges)],
                offsets,
                **more,
            )
        if empty_piece:  # as a rank whose chunk is empty writes it: nothing, at the end of dimension 0
            empty_shape = (0, *shape[1:])
            write_piece(
                folder / "shard-99999.safetensors",
                "t",
                torch.zeros(empty_shape, dtype=dtype),
                (shape[0],) + (0,) * (len(shape) - 1),
            )
        pieces = open_pieces(folder)
        try:
            assert pieces.checkpoint.entries["t"].shape == shape
            assert pieces.checkpoint.entries["t"].dtype == dtype
            with mock.patch.object(sources, "BLOCK_BYTES", block_bytes or sources.BLOCK_BYTES):
                out = read_box(pieces, "t", box, out_dtype or dtype, layout)
        finally:
            pieces.close()
    expect_equal(out, tensor, box)


def test_pieces_across_files_join_and_the_sharding_metadata_stays_out(tmp_path: Path) -> None:
    tensor = torch.arange(20.0).reshape(4, 5)
    save_file(
        {"w": tensor[:2].contiguous(), "b": torch.ones(3)},
        tmp_path / "shard-00001-model-00001-of-00001.safetensors",
        metadata={**sharding_metadata({"w": [0, 0], "b": [0]}), "format": "pt"},
    )
    write_piece(tmp_path / "shard-00002-model-00001-of-00001.safetensors", "w", tensor[2:], (2, 0))
    pieces = open_pieces(tmp_path)
    assert isinstance(pieces, SafetensorsPieces)
    assert pieces.checkpoint.entries["w"].shape == (4, 5)
    assert pieces.checkpoint.metadata == {"format": "pt"}
    assert sorted(piece.offsets for piece in pieces.pieces["w"]) == [(0, 0), (2, 0)]
    out = torch.empty(3, 2)
    pieces.read("w", ((1, 4), (3, 5)), out)
    assert torch.equal(out, tensor[1:4, 3:5])


def test_a_missing_piece_is_found_when_opening(tmp_path: Path) -> None:
    tensor = torch.arange(12.0).reshape(6, 2)
    write_piece(tmp_path / "shard-00001.safetensors", "w", tensor[:2], (0, 0))
    write_piece(tmp_path / "shard-00003.safetensors", "w", tensor[4:], (4, 0))
    with pytest.raises(
        WeightsError, match=r"tensor 'w' of shape \(6, 2\) is stored in 2 pieces \(.*\) that cover 8 of its 12"
    ):
        open_pieces(tmp_path)


def test_a_doubled_piece_is_found_when_opening(tmp_path: Path) -> None:
    tensor = torch.arange(4.0)
    write_piece(tmp_path / "shard-00001.safetensors", "w", tensor[:2], (0,))
    write_piece(tmp_path / "shard-00002.safetensors", "w", tensor[:2], (0,))
    write_piece(tmp_path / "shard-00003.safetensors", "w", tensor[2:], (2,))
    with pytest.raises(WeightsError, match=r"tensor 'w': the pieces in .*shard-00001.* and .*shard-00002.* overlap"):
        open_pieces(tmp_path)


def test_a_lone_piece_that_is_not_the_whole_tensor_is_found(tmp_path: Path) -> None:
    write_piece(tmp_path / "shard-00002.safetensors", "w", torch.zeros(2, 3), (2, 0))
    with pytest.raises(
        WeightsError, match=r"tensor 'w' of shape \(4, 3\) is stored in 1 pieces \(.*\) that cover 6 of its 12"
    ):
        open_pieces(tmp_path)


def test_a_doubled_piece_beside_a_missing_one_is_found(tmp_path: Path) -> None:
    tensor = torch.arange(3.0)
    write_piece(tmp_path / "shard-00001.safetensors", "w", tensor[0:1], (0,))
    write_piece(tmp_path / "shard-00002.safetensors", "w", tensor[0:1], (0,))
    write_piece(tmp_path / "shard-00003.safetensors", "w", tensor[2:3], (2,))  # [1] is in no file
    with pytest.raises(WeightsError, match="'w'"):
        open_pieces(tmp_path)


def test_pieces_that_do_not_cover_name_where_they_are(tmp_path: Path) -> None:
    write_piece(tmp_path / "shard-00001.safetensors", "w", torch.zeros(2), (0,))
    write_piece(tmp_path / "shard-00003.safetensors", "w", torch.zeros(2), (4,))
    with pytest.raises(WeightsError) as raised:
        open_pieces(tmp_path)
    assert "'w'" in str(raised.value)
    assert str(tmp_path) in str(raised.value)


@pytest.mark.parametrize(
    ("second", "offsets"),
    [
        (torch.zeros(2, 3, dtype=torch.float16), (2, 0)),  # another dtype
        (torch.zeros(2, 3, 1), (2, 0, 0)),  # another rank
    ],
    ids=["dtype", "rank"],
)
def test_pieces_that_disagree_are_refused_naming_both_files(
    tmp_path: Path, second: torch.Tensor, offsets: tuple[int, ...]
) -> None:
    first_file = write_piece(tmp_path / "shard-00001.safetensors", "w", torch.zeros(2, 3), (0, 0))
    second_file = write_piece(tmp_path / "shard-00002.safetensors", "w", second, offsets)
    with pytest.raises(WeightsError, match="disagree on dtype or rank") as raised:
        open_pieces(tmp_path)
    message = str(raised.value)
    assert "'w'" in message
    assert str(first_file) in message
    assert str(second_file) in message


@pytest.mark.parametrize(
    ("info", "problem"),
    [
        ("not json", "metadata is not readable"),
        (json.dumps({"w": {"offsets": [0]}}), "metadata is not readable"),
        (json.dumps({"w": {"saved_offsets": ["a"]}}), "metadata is not readable"),
        (json.dumps({"w": [0]}), "metadata is not readable"),
        (json.dumps({"w": {"saved_offsets": [0, 0]}}), r"tensor 'w' has offsets \[0, 0\] for a shape \(2,\)"),
        (json.dumps({"w": {"saved_offsets": [-1]}}), r"tensor 'w' has offsets \[-1\] for a shape \(2,\)"),
    ],
    ids=["not-json", "no-saved-offsets", "offset-not-a-number", "not-an-object", "wrong-rank", "negative"],
)
def test_unreadable_sharding_metadata_is_refused_naming_the_file(tmp_path: Path, info: str, problem: str) -> None:
    path = tmp_path / "shard-00001.safetensors"
    save_file({"w": torch.zeros(2)}, path, metadata={SHARDING_METADATA: info})
    with pytest.raises(WeightsError, match=problem) as raised:
        open_pieces(tmp_path)
    assert str(path) in str(raised.value)


# -- folders, indexes, lists -------------------------------------------------------------------------


def write_index_folder(folder: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """An HF-style checkpoint: the keys split over two shards and an index mapping each key to its shard."""
    keys = list(tensors)
    halves = {"model-00001-of-00002.safetensors": keys[:1], "model-00002-of-00002.safetensors": keys[1:]}
    for file, part in halves.items():
        save_file({key: tensors[key] for key in part}, folder / file)
    index = {"metadata": {"total_size": 0}, "weight_map": {key: file for file, part in halves.items() for key in part}}
    index_path = folder / "model.safetensors.index.json"
    index_path.write_text(json.dumps(index))
    return index_path


TENSORS = {"embed.weight": torch.arange(12.0).reshape(4, 3), "head.bias": torch.arange(3, dtype=torch.int64)}


@pytest.mark.parametrize("given", ["folder", "index", "list"])
def test_an_index_folder_its_index_and_a_list_of_shards_read_the_same(tmp_path: Path, given: str) -> None:
    index = write_index_folder(tmp_path, TENSORS)
    source = {
        "folder": tmp_path,
        "index": index,
        "list": [tmp_path / "model-00001-of-00002.safetensors", tmp_path / "model-00002-of-00002.safetensors"],
    }[given]
    pieces = open_pieces(source)
    assert sorted(pieces.checkpoint.entries) == sorted(TENSORS)
    for key, tensor in TENSORS.items():
        box = tuple((1, size) for size in tensor.shape)
        expect_equal(read_box(pieces, key, box, tensor.dtype, "contiguous"), tensor, box)


def test_a_folder_of_plain_safetensors_files_reads_as_one(tmp_path: Path) -> None:
    save_file({"a": torch.ones(2)}, tmp_path / "one.safetensors")
    save_file({"b": torch.zeros(3)}, tmp_path / "two.safetensors")
    (tmp_path / "README.md").write_text("not a checkpoint")
    assert sorted(open_pieces(tmp_path).checkpoint.entries) == ["a", "b"]


def test_an_index_pointing_to_a_missing_shard_is_refused(tmp_path: Path) -> None:
    index = write_index_folder(tmp_path, TENSORS)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(WeightsError, match=r"shard 'model-00002-of-00002\.safetensors' does not exist") as raised:
        open_pieces(tmp_path)
    assert str(index) in str(raised.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not a readable index"),
        (json.dumps(["a"]), "needs a 'weight_map'"),
        (json.dumps({"weight_map": ["a"]}), "needs a 'weight_map'"),
        (json.dumps({"weight_map": {"w": 3}}), r"weight_map\['w'\] must be a file name next to the index"),
        (json.dumps({"weight_map": {"w": "../model.safetensors"}}), r"weight_map\['w'\] must be a file name"),
        (json.dumps({"weight_map": {"w": "/etc/model.safetensors"}}), r"weight_map\['w'\] must be a file name"),
    ],
    ids=["not-json", "not-an-object", "map-not-an-object", "not-a-name", "outside", "absolute"],
)
def test_a_bad_index_is_refused_naming_it(tmp_path: Path, content: str, problem: str) -> None:
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(content)
    with pytest.raises(WeightsError, match=problem) as raised:
        open_pieces(index)
    assert str(index) in str(raised.value)


def test_a_folder_with_two_indexes_is_refused(tmp_path: Path) -> None:
    write_index_folder(tmp_path, TENSORS)
    (tmp_path / "other.safetensors.index.json").write_text(json.dumps({"weight_map": {}}))
    with pytest.raises(WeightsError, match="has several indexes"):
        open_pieces(tmp_path)


def test_a_folder_without_weights_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match=r"has no \.safetensors files") as raised:
        open_pieces(tmp_path)
    assert str(tmp_path) in str(raised.value)


@pytest.mark.parametrize("missing", ["model.safetensors", "folder"])
def test_a_missing_file_or_folder_is_refused(tmp_path: Path, missing: str) -> None:
    with pytest.raises(WeightsError, match=re.escape(f"checkpoint '{tmp_path / missing}' does not exist")):
        open_pieces(tmp_path / missing)


# -- what is read whole: pickles and dicts -----------------------------------------------------------


@pytest.mark.parametrize("where", ["file", "folder", "dict"])
def test_pickles_and_dicts_are_read_whole_and_cut(tmp_path: Path, where: str) -> None:
    tensor = torch.arange(24.0).reshape(2, 3, 4)
    if where == "dict":
        source: object = {"w": tensor}
    else:
        torch.save({"w": tensor}, tmp_path / "model.pt")
        source = tmp_path / "model.pt" if where == "file" else tmp_path
    pieces = open_pieces(source)
    assert isinstance(pieces, WholePieces)
    assert pieces.checkpoint.entries["w"].shape == (2, 3, 4)
    box = ((1, 2), (0, 3), (1, 3))
    for layout, dtype in [("contiguous", torch.float32), ("transposed", torch.float64), ("strided", torch.bfloat16)]:
        expect_equal(read_box(pieces, "w", box, dtype, layout), tensor, box)
    pieces.close()


def test_a_dict_key_that_is_missing_is_a_weights_error() -> None:
    with pytest.raises(WeightsError, match="'missing'"):
        open_pieces({"w": torch.zeros(2)}).read("missing", ((0, 2),), torch.empty(2))


def test_a_pickle_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    torch.save([torch.zeros(2)], tmp_path / "model.pt")
    with pytest.raises(WeightsError, match="expected a state dict"):
        open_pieces(tmp_path / "model.pt")


# -- special files -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("deadline")
@pytest.mark.parametrize("where", ["file", "in-folder", "index-shard", "pickle"])
def test_a_fifo_is_refused_instead_of_blocking(tmp_path: Path, where: str) -> None:
    name = "model.pt" if where == "pickle" else "model-00001-of-00001.safetensors"
    fifo = tmp_path / name
    os.mkfifo(fifo)
    source: Path = fifo
    if where == "in-folder":
        source = tmp_path
    if where == "index-shard":
        source = tmp_path / "model.safetensors.index.json"
        source.write_text(json.dumps({"weight_map": {"w": name}}))
    with pytest.raises(WeightsError, match=r"is a FIFO \(named pipe\), not a regular file") as raised:
        open_pieces(source)
    assert str(fifo) in str(raised.value)


def test_read_header_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(WeightsError, match="FIFO"):
        read_header(fifo)


# -- damaged files ---------------------------------------------------------------------------------


GOOD_ENTRY = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}


@pytest.mark.parametrize(
    ("header", "data", "problem", "names_key"),
    [
        ({"w": GOOD_ENTRY}, bytes(10), r"tensor 'w' \(torch.float32, shape \(2, 2\)\) claims bytes 0..16 of 10", True),
        ({"w": {**GOOD_ENTRY, "data_offsets": [0, 12]}}, bytes(16), "claims bytes 0..12 of 16", True),
        ({"w": {**GOOD_ENTRY, "data_offsets": [8, 4]}}, bytes(16), "claims bytes 8..4", True),
        ({"w": {**GOOD_ENTRY, "dtype": "F128"}}, bytes(16), "'w' is not described properly", True),
        ({"w": {**GOOD_ENTRY, "shape": [2, -2]}}, bytes(16), "'w' is not described properly", True),
        ({"w": {**GOOD_ENTRY, "shape": "2x2"}}, bytes(16), "'w' is not described properly", True),
        ({"w": {**GOOD_ENTRY, "data_offsets": [0]}}, bytes(16), "'w' is not described properly", True),
        ({"w": {**GOOD_ENTRY, "data_offsets": [0, "16"]}}, bytes(16), "'w' is not described properly", True),
        ({"w": "F32"}, bytes(16), "'w' is not described properly", True),
        (["w"], b"", "header is not a JSON object", False),
        ({"__metadata__": {"a": 1}, "w": GOOD_ENTRY}, bytes(16), "__metadata__ must map strings to strings", False),
        ({"__metadata__": ["a"], "w": GOOD_ENTRY}, bytes(16), "__metadata__ must map strings to strings", False),
    ],
    ids=[
        "truncated",
        "too-few-bytes-claimed",
        "reversed-range",
        "bad-dtype",
        "negative-size",
        "shape-not-a-list",
        "one-offset",
        "offset-not-a-number",
        "entry-not-an-object",
        "header-a-list",
        "metadata-not-strings",
        "metadata-a-list",
    ],
)
def test_a_damaged_header_is_refused_naming_the_file_and_key(
    tmp_path: Path, header: object, data: bytes, problem: str, names_key: bool
) -> None:
    path = write_raw(tmp_path / "model.safetensors", header, data)
    with pytest.raises(WeightsError, match=problem) as raised:
        open_pieces(path)
    message = str(raised.value)
    assert message.startswith(str(path))
    assert ("'w'" in message) == names_key


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"", r"too short for a header"),
        (b"\x05\x00", r"too short for a header"),
        (struct.pack("<Q", 1000) + b"{}", r"header length 1000 is impossible"),
        (struct.pack("<Q", 2**63) + b"{}", r"header length \d+ is impossible"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", r"its header is not JSON"),
        (struct.pack("<Q", 5) + b"{oops", r"its header is not JSON"),
    ],
    ids=["empty", "short", "length-past-the-end", "huge-length", "not-utf8", "not-json"],
)
def test_header_garbage_is_refused_naming_the_file(tmp_path: Path, raw: bytes, problem: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(raw)
    with pytest.raises(WeightsError, match=f"not a valid safetensors file.*{problem}") as raised:
        open_pieces(path)
    assert str(raised.value).startswith(str(path))


def test_a_header_over_the_limit_is_refused_without_reading_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_raw(tmp_path / "model.safetensors", {"w": GOOD_ENTRY}, bytes(16))
    monkeypatch.setattr(sources, "HEADER_LIMIT", 8)
    with pytest.raises(WeightsError, match=r"header length \d+ is impossible"):
        open_pieces(path)


def truncate_after_opening(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - 4)


DAMAGE_AFTER_OPENING = {"truncated": truncate_after_opening, "removed": Path.unlink}


@pytest.mark.parametrize("damage", list(DAMAGE_AFTER_OPENING))
def test_a_file_damaged_after_opening_fails_the_read_naming_it(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.arange(8.0)}, path)
    pieces = open_pieces(path)
    DAMAGE_AFTER_OPENING[damage](path)
    with pytest.raises(WeightsError) as raised:
        pieces.read("w", ((0, 8),), torch.empty(8))
    assert str(raised.value).startswith(str(path))


@pytest.mark.parametrize("damage", list(DAMAGE_AFTER_OPENING))
def test_a_file_damaged_after_opening_fails_the_read_naming_the_key(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.arange(8.0)}, path)
    pieces = open_pieces(path)
    DAMAGE_AFTER_OPENING[damage](path)
    with pytest.raises(WeightsError, match="'w'"):
        pieces.read("w", ((0, 8),), torch.empty(8))


def test_an_empty_tensor_may_sit_at_the_end_of_the_data(tmp_path: Path) -> None:
    header = {"w": GOOD_ENTRY, "e": {"dtype": "I64", "shape": [0, 3], "data_offsets": [16, 16]}}
    path = write_raw(tmp_path / "model.safetensors", header, struct.pack("<4f", 1, 2, 3, 4))
    pieces = open_pieces(path)
    assert pieces.checkpoint.entries["e"].shape == (0, 3)
    out = torch.empty(2, 2)
    pieces.read("w", ((0, 2), (0, 2)), out)
    assert out.flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    empty = torch.empty(0, 3, dtype=torch.int64)
    pieces.read_all([Request("e", ((0, 0), (0, 3)), empty)])


# -- the sidecar: tied keys save left out --------------------------------------------------------------


def test_the_sidecar_aliases_go_into_the_metadata(tmp_path: Path) -> None:
    save_file({"embed.weight": torch.zeros(4, 2)}, tmp_path / "shard-00001-model-00001-of-00001.safetensors")
    aliases = {"head.weight": "embed.weight"}
    (tmp_path / SIDECAR).write_text(json.dumps({"aliases": aliases}))
    pieces = open_pieces(tmp_path)
    assert json.loads(pieces.checkpoint.metadata[ALIASES_METADATA]) == aliases
    assert read_aliases(tmp_path) == aliases


def test_without_a_sidecar_there_are_no_aliases(tmp_path: Path) -> None:
    save_file({"w": torch.zeros(1)}, tmp_path / "model.safetensors")
    assert ALIASES_METADATA not in open_pieces(tmp_path).checkpoint.metadata
    assert read_aliases(tmp_path) == {}


def test_a_sidecar_next_to_a_file_given_by_path_is_not_read(tmp_path: Path) -> None:
    """Aliases belong to a saved folder; a file named on its own is read as it is."""
    save_file({"w": torch.zeros(1)}, tmp_path / "model.safetensors")
    (tmp_path / SIDECAR).write_text("{broken")
    assert ALIASES_METADATA not in open_pieces(tmp_path / "model.safetensors").checkpoint.metadata


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{broken", "not readable"),
        (b"\xff\xfe".decode("latin-1"), "not readable"),
        (json.dumps(["head.weight"]), "not a record of a saved folder .* it holds a JSON array"),
        ("null", "not a record of a saved folder .* it holds a JSON null"),
        ('"aliases"', "not a record of a saved folder .* it holds a JSON string"),
        (json.dumps({"other": {}}), "'aliases' must map keys to keys"),
        (json.dumps({"aliases": ["head.weight"]}), "'aliases' must map keys to keys"),
        (json.dumps({"aliases": {"head.weight": 3}}), "'aliases' must map keys to keys"),
    ],
    ids=["not-json", "not-utf8", "a-list", "null", "a-string", "no-aliases", "aliases-a-list", "alias-not-a-key"],
)
def test_a_malformed_sidecar_is_refused_naming_it(tmp_path: Path, content: str, problem: str) -> None:
    save_file({"w": torch.zeros(1)}, tmp_path / "model.safetensors")
    sidecar = tmp_path / SIDECAR
    sidecar.write_bytes(content.encode("latin-1"))
    with pytest.raises(WeightsError, match=problem) as raised:
        open_pieces(tmp_path)
    assert str(raised.value).startswith(str(sidecar))


# -- folders in DCP's own format (.metadata and .distcp files), read by DCP itself ---------------------


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


def test_a_saved_folder_missing_a_file_is_named_by_its_record(tmp_path: Path) -> None:
    tensor = torch.arange(8.0).reshape(4, 2)
    write_piece(tmp_path / "shard-00001-model-00001-of-00001.safetensors", "w", tensor[:2], (0, 0))
    second = write_piece(tmp_path / "shard-00002-model-00001-of-00001.safetensors", "w", tensor[2:], (2, 0))
    record = {"files": sorted(path.name for path in tmp_path.glob("*.safetensors")), "shapes": {"w": [4, 2]}}
    (tmp_path / SIDECAR).write_text(json.dumps({**record, "aliases": {}}))
    assert open_pieces(tmp_path).checkpoint.entries["w"].shape == (4, 2)
    second.unlink()
    with pytest.raises(
        WeightsError, match=r"a piece is missing: 'shard-00002-model-00001-of-00001\.safetensors' is gone"
    ):
        open_pieces(tmp_path)


def test_a_saved_folder_whose_tensor_is_smaller_than_recorded_is_refused(tmp_path: Path) -> None:
    write_piece(tmp_path / "shard-00001-model-00001-of-00001.safetensors", "w", torch.zeros(2, 2), (0, 0))
    (tmp_path / SIDECAR).write_text(json.dumps({"shapes": {"w": [4, 2]}, "aliases": {}}))
    with pytest.raises(WeightsError, match=r"tensor 'w' was saved with shape \[4, 2\], but its files hold \[2, 2\]"):
        open_pieces(tmp_path)


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


# -- DCP metadata: read with an unpickler that builds only what DCP's format is made of ---------------


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


# -- the pieces of a tensor cover it exactly once ---------------------------------------------------


def piece(number: int, offsets: tuple[int, ...], shape: tuple[int, ...]) -> Piece:
    return Piece(f"folder/shard-{number:05d}.safetensors", 0, offsets, shape, torch.float32)


@st.composite
def layouts(draw: st.DrawFn) -> list[Piece]:
    """Pieces of a 2-D tensor: whole rows cut at random points (the usual layout), then perhaps
    damaged (a piece dropped, doubled, moved, or an empty one added), or blocks placed anywhere."""
    width = draw(st.integers(1, 3))
    if draw(st.booleans()):
        rows = draw(st.integers(1, 9))
        points = sorted(draw(st.sets(st.integers(1, rows), max_size=5)) - {rows})
        ranges = list(itertools.pairwise([0, *points, rows]))
        found = [piece(number, (start, 0), (stop - start, width)) for number, (start, stop) in enumerate(ranges)]
        found = draw(st.permutations(found))
        damage = draw(st.sampled_from(["none", "drop", "double", "move", "empty", "narrow"]))
        chosen = draw(st.integers(0, len(found) - 1))
        target = found[chosen]
        if damage == "drop" and len(found) > 1:
            del found[chosen]
        elif damage == "double":
            found.append(dataclasses.replace(target, path="folder/again.safetensors"))
        elif damage == "move":
            found[chosen] = dataclasses.replace(target, offsets=(draw(st.integers(0, rows)), 0))
        elif damage == "empty":
            found.insert(chosen, piece(99, (draw(st.integers(0, rows + 2)), 0), (0, draw(st.integers(0, width)))))
        elif damage == "narrow" and width > 1:
            found[chosen] = dataclasses.replace(target, shape=(target.shape[0], width - 1))
        return found
    blocks = draw(
        st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=1)
    )
    return [piece(number, (row, column), (rows, columns)) for number, (row, column, rows, columns) in enumerate(blocks)]


@FAST
@given(found=layouts())
def test_pieces_are_accepted_exactly_when_they_cover_the_tensor_once(found: list[Piece]) -> None:
    shape = tuple(max(one.offsets[dim] + one.shape[dim] for one in found) for dim in range(2))
    counts = torch.zeros(shape, dtype=torch.int64)
    for one in found:
        counts[one.offsets[0] : one.offsets[0] + one.shape[0], one.offsets[1] : one.offsets[1] + one.shape[1]] += 1
    if bool((counts > 1).any()):
        with pytest.raises(WeightsError, match="overlap"):
            sources._check_cover("w", found)
    elif bool((counts == 0).any()):
        with pytest.raises(WeightsError, match="a piece is missing"):
            sources._check_cover("w", found)
    else:
        sources._check_cover("w", found)


def test_pieces_of_whole_rows_are_checked_without_comparing_every_pair() -> None:
    """One piece per rank: with hundreds of ranks, comparing pairs would cost their square."""
    found = [piece(number, (4 * number, 0), (4, 8)) for number in reversed(range(1000))]
    with mock.patch.object(sources, "_check_disjoint", side_effect=AssertionError("compared pair by pair")):
        sources._check_cover("w", [*found, piece(1000, (17, 0), (0, 8))])
        doubled = dataclasses.replace(found[500], path="folder/again.safetensors")
        with pytest.raises(WeightsError, match=r"the pieces in folder/shard-00499\.\S+ and folder/again\.\S+ overlap"):
            sources._check_cover("w", [*found, doubled])
        with pytest.raises(WeightsError, match=r"is stored in 999 pieces .* cover 31968 of its 32000 elements"):
            sources._check_cover("w", [*found[:500], *found[501:]])


def test_pieces_split_along_other_dimensions_are_compared_pair_by_pair() -> None:
    found = [piece(0, (0, 0), (2, 2)), piece(1, (0, 2), (2, 2)), piece(2, (2, 0), (2, 4))]
    with mock.patch.object(sources, "_check_disjoint", wraps=sources._check_disjoint) as compared:
        sources._check_cover("w", found)
    compared.assert_called_once()


# -- sources of the wrong kind --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (5, "a checkpoint is a path, a list of paths or a dict of tensors; got int"),
        (None, "a checkpoint is a path, a list of paths or a dict of tensors; got NoneType"),
        ([5], "a checkpoint is a path, a list of paths or a dict of tensors; got list"),
        ({"w", "b"}, "a checkpoint is a path, a list of paths or a dict of tensors; got set"),
        ([], "no checkpoint files given"),
    ],
    ids=["int", "none", "list-of-int", "set", "empty-list"],
)
def test_a_source_of_the_wrong_kind_is_refused_saying_what_a_checkpoint_is(source: object, problem: str) -> None:
    with pytest.raises(WeightsError, match=re.escape(problem)):
        open_pieces(cast("Any", source))
