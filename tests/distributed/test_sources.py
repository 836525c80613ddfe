"""fluxion.distributed.sources: which reader opens a checkpoint (a file, an index, a folder, a list
of files, a pickle or a dict), the saved folder's record (fluxion.json: aliases, files and shapes),
and sources of the wrong kind refused.

Single process, no process group: files are written here and read back box by box; every read must
equal slicing the tensor.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from safetensors.torch import save_file

from fluxion.distributed.sources import SIDECAR, WholePieces, open_pieces, read_aliases
from fluxion.errors import WeightsError
from fluxion.weights.plan import ALIASES_METADATA
from tests.distributed.pieces_helpers import expect_equal, read_box, write_piece

# -- folders, indexes, lists -----------------------------------------------------------------------


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


# -- what is read whole: pickles and dicts ---------------------------------------------------------


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


# -- special files ---------------------------------------------------------------------------------


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


# -- the sidecar: tied keys save left out ----------------------------------------------------------


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


# -- the saved folder's record: every file there, every tensor whole -------------------------------


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


# -- sources of the wrong kind ---------------------------------------------------------------------


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
