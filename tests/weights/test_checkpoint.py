"""Reading checkpoints: shards, indexes, folders, safe pickles, and clear errors for bad files."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import fluxion.layers as fl
from fluxion.weights import PickleCheckpointWarning, WeightsError, load, open_checkpoint, save
from tests.weights.helpers import same_state, small_model, state_snapshot


def write_shards(model: torch.nn.Module, folder: Path) -> list[Path]:
    state = model.state_dict()
    keys = list(state)
    halves = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    paths = []
    for number, part in enumerate(halves, start=1):
        path = folder / f"model-{number:05d}-of-00002.safetensors"
        save_file({key: state[key].contiguous() for key in part}, path)
        paths.append(path)
    index = {
        "metadata": {"total_size": 0},
        "weight_map": {key: p.name for p, part in zip(paths, halves, strict=True) for key in part},
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return paths


@pytest.fixture
def sharded(tmp_path: Path) -> tuple[fl.Chain, list[Path]]:
    torch.manual_seed(1)
    model = small_model()
    return model, write_shards(model, tmp_path)


def test_shard_files_load_as_one(sharded: tuple[fl.Chain, list[Path]]) -> None:
    model, paths = sharded
    fresh = small_model()
    load(fresh, paths)
    assert same_state(fresh, state_snapshot(model))


def test_an_index_and_a_folder_load_as_one(sharded: tuple[fl.Chain, list[Path]]) -> None:
    model, paths = sharded
    for source in (paths[0].parent / "model.safetensors.index.json", paths[0].parent):
        fresh = small_model()
        load(fresh, source)
        assert same_state(fresh, state_snapshot(model))


def test_a_shard_missing_a_key_its_index_promises(sharded: tuple[fl.Chain, list[Path]]) -> None:
    _, paths = sharded
    index_path = paths[0].parent / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["ghost.weight"] = paths[0].name
    index_path.write_text(json.dumps(index))
    with pytest.raises(WeightsError, match=r"lists 'ghost\.weight' but the shard lacks them"):
        open_checkpoint(index_path)


def test_an_index_cannot_point_outside_its_folder(sharded: tuple[fl.Chain, list[Path]]) -> None:
    _, paths = sharded
    index_path = paths[0].parent / "model.safetensors.index.json"
    index_path.write_text(json.dumps({"weight_map": {"head.weight": "../elsewhere.safetensors"}}))
    with pytest.raises(WeightsError, match="must be a file name next to the index"):
        open_checkpoint(index_path)


def test_a_key_in_two_shards_is_an_error(tmp_path: Path) -> None:
    save_file({"w": torch.zeros(1)}, tmp_path / "a.safetensors")
    save_file({"w": torch.ones(1)}, tmp_path / "b.safetensors")
    with pytest.raises(WeightsError, match="tensor 'w' is in two files"):
        open_checkpoint([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])


@pytest.mark.parametrize(
    ("name", "damage", "expected"),
    [
        ("truncated", lambda data: data[: len(data) - 7], "not a valid safetensors file"),
        ("header only", lambda data: data[:20], "not a valid safetensors file"),
        ("text", lambda data: b"this is not a checkpoint at all", "not a valid safetensors file"),
        ("empty", lambda data: b"", "not a valid safetensors file"),
        ("corrupt header", lambda data: data[:8] + b"{" * 16 + data[24:], "not a valid safetensors file"),
    ],
)
def test_damaged_files_raise_a_clear_error_and_change_nothing(
    tmp_path: Path, name: str, damage: object, expected: str
) -> None:
    path = tmp_path / "model.safetensors"
    save(small_model(), path)
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    model = small_model()
    before = state_snapshot(model)
    with pytest.raises(WeightsError, match=expected) as caught:
        load(model, path)
    assert str(path) in str(caught.value), name
    assert caught.value.__cause__ is None
    assert same_state(model, before)


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        load(small_model(), tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError, match=r"has no \.safetensors files"):
        load(small_model(), tmp_path)


def test_pickled_state_dicts_load_safely_with_a_warning(tmp_path: Path) -> None:
    model = small_model()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, tmp_path / "wrapped.bin")
    for name in ("model.pt", "wrapped.bin"):
        fresh = small_model()
        with pytest.warns(PickleCheckpointWarning, match="Prefer safetensors"):
            load(fresh, tmp_path / name)
        assert same_state(fresh, state_snapshot(model))


class Payload:
    """Anything that is not plain tensors: weights_only=True refuses to rebuild it."""

    def __init__(self) -> None:
        self.value = 1


def test_pickles_with_arbitrary_objects_are_refused(tmp_path: Path) -> None:
    torch.save({"weight": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(
        WeightsError, match="fluxion never unpickles arbitrary objects; save the weights as safetensors"
    ):
        load(small_model(), tmp_path / "evil.pt")


def test_a_pickle_that_is_not_a_state_dict(tmp_path: Path) -> None:
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="expected a state dict"):
        load(small_model(), tmp_path / "list.pt")


def test_headers_are_known_before_any_data_is_read(tmp_path: Path) -> None:
    save_file({"a": torch.zeros(3, 4, dtype=torch.bfloat16), "b": torch.zeros(2, dtype=torch.int8)}, tmp_path / "x.st")
    with open_checkpoint(tmp_path / "x.st") as checkpoint:
        assert {key: (e.shape, e.dtype) for key, e in checkpoint.entries.items()} == {
            "a": ((3, 4), torch.bfloat16),
            "b": ((2,), torch.int8),
        }
        assert checkpoint.nbytes == 3 * 4 * 2 + 2
