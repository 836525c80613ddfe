"""fluxion.distributed.safetensors_pieces against damaged files: headers that lie about their
tensors, header garbage, unreadable sharding metadata, special files, and files damaged after
opening are refused with a WeightsError naming the file (and the key, where there is one).

Single process: the damaged files are written byte by byte.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fluxion.distributed import safetensors_pieces
from fluxion.distributed.pieces import Request
from fluxion.distributed.safetensors_pieces import SHARDING_METADATA, read_header
from fluxion.distributed.sources import open_pieces
from fluxion.errors import WeightsError


def write_raw(path: Path, header: object, data: bytes = b"", *, length: int | None = None) -> Path:
    """A safetensors-like file written byte by byte: the header length, the header, then ``data``."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


# -- sharding metadata and special files -----------------------------------------------------------


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
    monkeypatch.setattr(safetensors_pieces, "HEADER_LIMIT", 8)
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
