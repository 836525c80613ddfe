"""fluxion.distributed.safetensors_pieces: any box of a checkpoint tensor read from its safetensors
files, whole in one file or in pieces across several, equals slicing the tensor.

Single process, no process group: files are written here (with safetensors) and read back box by
box, into outs of any dtype and layout, with blocks of any size.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_file

from fluxion.distributed import safetensors_pieces
from fluxion.distributed.safetensors_pieces import SafetensorsPieces
from fluxion.distributed.sources import open_pieces
from fluxion.errors import WeightsError
from tests.distributed.pieces_helpers import (
    FAST,
    OUT_DTYPES,
    OUT_LAYOUTS,
    boxes,
    expect_equal,
    random_tensor,
    read_box,
    shapes,
    sharding_metadata,
    slices,
    write_piece,
)

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
BLOCK_SIZES = [None, 1, 5, 64]
"""``safetensors_pieces.BLOCK_BYTES`` for a read: as shipped, or so small that rows come in several blocks."""


# -- one file: any box equals slicing --------------------------------------------------------------


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
            with mock.patch.object(safetensors_pieces, "BLOCK_BYTES", block_bytes or safetensors_pieces.BLOCK_BYTES):
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
    monkeypatch.setattr(safetensors_pieces, "BLOCK_BYTES", 3 * 7 * 4)  # three rows of float32
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


# -- tensors in several pieces (torch.distributed.checkpoint's Hugging Face layout) ----------------


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
            with mock.patch.object(safetensors_pieces, "BLOCK_BYTES", block_bytes or safetensors_pieces.BLOCK_BYTES):
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
