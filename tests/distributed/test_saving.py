"""fluxion.distributed.save and consolidate on two gloo ranks: a sharded model saved through DCP,
joined into one safetensors file that fluxion.weights.load and safetensors read back bit for bit
(tied tensors included); an existing checkpoint replaced whole; bad destinations refused alike on
both ranks.

The steps run on both ranks; consolidating and reading back happen here, in one process, as they
would on any machine that sees the folder.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
import torch.distributed.checkpoint as dcp
from safetensors import safe_open
from torch.distributed.checkpoint.hf_storage import HuggingFaceStorageWriter
from torch.distributed.tensor import DTensor

import fluxion.layers as fl
from fluxion import distributed, weights
from fluxion.distributed import saving
from fluxion.errors import DistributedError, WeightsError
from tests.distributed.helpers import Cluster

ALIASES = "fluxion.aliases"
SHARDED = ["block", "low"]
SAVED_FILES = [
    "fluxion.json",
    "shard-00001-model-00001-of-00001.safetensors",
    "shard-00002-model-00001-of-00001.safetensors",
]
"""What a save on two ranks leaves in its folder: each rank's file and fluxion's sidecar."""


def build(*, tied: bool = True, low: bool = True) -> fl.Chain:
    """11 rows split 6 + 5; the head shares the embedding's weight; one part in bfloat16; buffers."""
    model = fl.Chain(
        embed=fl.Embedding(11, 6),
        block=fl.Chain(fl.Linear(6, 6), fl.BatchNorm1d(6), fl.ReLU()),
        head=fl.Linear(6, 11, bias=False),
    )
    if low:  # a bfloat16 part (a model with it is only saved, never run)
        model.insert(2, fl.Chain(fl.Linear(6, 6, dtype=torch.bfloat16)), name="low")
    if tied:
        model.head.weight = model.embed.weight
    return model


def reference(seed: int = 0) -> fl.Chain:
    """The model the steps save, the same in every process for a seed."""
    torch.manual_seed(seed)
    model = build()
    norm = model["block.BatchNorm1d"]
    assert isinstance(norm, torch.nn.BatchNorm1d)
    with torch.no_grad():
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2.0)
        norm.num_batches_tracked.fill_(3 + seed)
    return model


def save_step(folder: str, seed: int) -> list[str]:
    """Rank step: the reference for ``seed``, sharded, saved into ``folder``; what the folder then holds."""
    model = reference(seed)
    distributed.shard(model, SHARDED)
    distributed.save(model, folder)
    return sorted(path.name for path in Path(folder).iterdir())


def whole(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def read_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(path, "pt") as file:
        return {key: file.get_tensor(key) for key in file.keys()}, file.metadata()  # noqa: SIM118 (safe_open is not iterable)


# ---- save sharded, consolidate, read back in one process


def test_save_consolidate_and_load_round_trip_bit_for_bit_with_the_tie(cluster: Cluster, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    listings = cluster.run(save_step, str(folder), 0)
    assert listings == [SAVED_FILES] * 2
    assert json.loads((folder / "fluxion.json").read_text())["aliases"] == {"head.weight": "embed.weight"}

    distributed.consolidate(folder, tmp_path / "model.safetensors", progress=False)

    expected = reference(0).state_dict()
    tensors, metadata = read_file(tmp_path / "model.safetensors")
    assert set(tensors) == set(expected) - {"head.weight"}  # the tied copy is stored once
    assert json.loads(metadata[ALIASES]) == {"head.weight": "embed.weight"}
    assert metadata["format"] == "pt"
    for key, tensor in tensors.items():
        assert tensor.dtype == expected[key].dtype, key
        assert torch.equal(tensor, expected[key]), key
    assert tensors["low.Linear.weight"].dtype == torch.bfloat16

    tied = build()
    weights.load(tied, tmp_path / "model.safetensors")
    assert tied.head.weight is tied.embed.weight
    untied = build(tied=False)
    weights.load(untied, tmp_path / "model.safetensors")  # the alias restores the head
    for model in (tied, untied):
        for key, tensor in model.state_dict().items():
            assert torch.equal(tensor, expected[key]), key


def load_saved(folder: str) -> dict[str, Any]:
    """Rank step: the saved folder back into a meta-built model sharded the same way."""
    expected = reference(0).state_dict()
    with torch.device("meta"):
        model = build()
    distributed.shard(model, SHARDED)
    distributed.load(model, folder)
    tensors = model.state_dict()
    return {
        "tied": model.head.weight is model.embed.weight,
        "equal": {key: torch.equal(whole(tensor), expected[key]) for key, tensor in tensors.items()},
    }


def test_the_saved_folder_loads_back_into_a_sharded_model_with_the_tie(cluster: Cluster, tmp_path: Path) -> None:
    cluster.run(save_step, str(tmp_path / "checkpoint"), 0)

    results = cluster.run(load_saved, str(tmp_path / "checkpoint"))

    for found in results:
        assert found["tied"]
        assert all(found["equal"].values()), found["equal"]
        assert set(found["equal"]) == set(reference(0).state_dict())


def train_save_and_consolidate(folder: str) -> dict[str, Any] | None:
    """Rank step: one training step and one more forward (FSDP then leaves the root unsharded), a save,
    and on rank 0 alone a consolidation compared with the model's current whole tensors."""
    torch.manual_seed(0)
    model = build(low=False)
    initial = {key: tensor.clone() for key, tensor in model.state_dict().items()}
    distributed.shard(model, "block")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    ids = torch.arange(8) % 11
    model(ids).square().mean().backward()
    optimizer.step()
    model(ids)
    distributed.save(model, Path(folder) / "checkpoint")
    current = {key: whole(tensor) for key, tensor in model.state_dict().items()}  # every rank gathers
    if distributed.rank() != 0:
        return None
    distributed.consolidate(Path(folder) / "checkpoint", Path(folder) / "model.safetensors", progress=False)
    tensors, metadata = read_file(Path(folder) / "model.safetensors")
    return {
        "keys": sorted(tensors),
        "aliases": json.loads(metadata[ALIASES]),
        "equal": {key: torch.equal(tensor, current[key]) for key, tensor in tensors.items()},
        "trained": sorted(key for key, tensor in current.items() if not torch.equal(tensor, initial[key])),
    }


def test_a_trained_model_is_saved_as_it_is_now_and_consolidates_on_rank_0(cluster: Cluster, tmp_path: Path) -> None:
    found, nothing = cluster.run(train_save_and_consolidate, str(tmp_path))

    assert nothing is None
    assert found["keys"] == sorted(set(build(low=False).state_dict()) - {"head.weight"})
    assert found["aliases"] == {"head.weight": "embed.weight"}
    assert all(found["equal"].values()), found["equal"]
    assert "block.Linear.weight" in found["trained"]  # the step changed weights
    assert "block.BatchNorm1d.running_mean" in found["trained"]  # and the forward, running stats


# ---- replacing a checkpoint


def test_save_replaces_an_existing_checkpoint_whole_and_leaves_no_temporary_folder(
    cluster: Cluster, tmp_path: Path
) -> None:
    folder = tmp_path / "checkpoint"
    cluster.run(save_step, str(folder), 0)
    (folder / "notes.txt").write_text("from the old checkpoint")
    (folder / "shard-00003-model-00001-of-00001.safetensors").write_bytes(b"an old third rank's file")

    listings = cluster.run(save_step, str(folder), 1)

    assert listings == [SAVED_FILES] * 2
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint"]  # no .partial or .old folder left
    distributed.consolidate(folder, tmp_path / "model.safetensors", progress=False)
    tensors, _ = read_file(tmp_path / "model.safetensors")
    expected = reference(1).state_dict()
    assert all(torch.equal(tensor, expected[key]) for key, tensor in tensors.items())
    assert tensors["block.BatchNorm1d.num_batches_tracked"].item() == 4


class FailingWriter(HuggingFaceStorageWriter):
    """DCP's writer, failing on rank 1 as a full disk would."""

    def write_data(self, plan: Any, planner: Any) -> Any:
        if distributed.rank() == 1:
            raise OSError(28, "No space left on device")
        return super().write_data(plan, planner)


def save_failing(folder: str) -> tuple[str, str]:
    """Rank step: a save whose writing fails on rank 1; the error each rank sees."""
    model = reference(1)
    distributed.shard(model, SHARDED)
    with mock.patch.object(saving, "HuggingFaceStorageWriter", FailingWriter):
        try:
            distributed.save(model, folder)
        except BaseException as error:  # recorded, checked by the test (torch's CheckpointException is one)
            return type(error).__name__, str(error)
    return "no error", ""


def test_a_save_that_fails_on_one_rank_keeps_the_old_checkpoint(cluster: Cluster, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    cluster.run(save_step, str(folder), 0)

    results = cluster.run(save_failing, str(folder))

    assert results[0] == results[1]  # both ranks stop
    assert results[0][0] != "no error"
    assert "No space left on device" in results[0][1]
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint"]  # no temporary folder left
    assert sorted(path.name for path in folder.iterdir()) == SAVED_FILES
    distributed.consolidate(folder, tmp_path / "model.safetensors", progress=False)
    tensors, _ = read_file(tmp_path / "model.safetensors")
    expected = reference(0).state_dict()
    assert all(torch.equal(tensor, expected[key]) for key, tensor in tensors.items())  # the old values


def test_a_save_that_fails_on_one_rank_raises_a_distributed_error_on_both(cluster: Cluster, tmp_path: Path) -> None:
    results = cluster.run(save_failing, str(tmp_path / "checkpoint"))

    assert results[0] == results[1]
    error, message = results[0]
    assert error == "DistributedError"
    assert "No space left on device" in message
    assert list(tmp_path.iterdir()) == []


# ---- bad destinations and models: the same DistributedError on both ranks


def save_refused(folder: str, meta: bool) -> tuple[str, str]:
    if meta:
        with torch.device("meta"):
            model = build()
    else:
        model = reference(0)
    distributed.shard(model, SHARDED)
    try:
        distributed.save(model, folder)
    except BaseException as error:  # recorded, checked by the test
        return type(error).__name__, str(error)
    return "no error", ""


def test_save_into_a_missing_folder_raises_on_both_ranks(cluster: Cluster, tmp_path: Path) -> None:
    folder = tmp_path / "missing" / "checkpoint"

    results = cluster.run(save_refused, str(folder), False)

    message = f"cannot save into {str(folder)!r}: folder {str(tmp_path / 'missing')!r} does not exist"
    assert results == [("DistributedError", message)] * 2
    assert list(tmp_path.iterdir()) == []


def test_save_onto_a_file_raises_on_both_ranks(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "checkpoint").write_text("a file")

    results = cluster.run(save_refused, str(tmp_path / "checkpoint"), False)

    message = f"cannot save into {str(tmp_path / 'checkpoint')!r}: it is a file, not a folder"
    assert results == [("DistributedError", message)] * 2
    assert (tmp_path / "checkpoint").read_text() == "a file"


def test_saving_a_model_still_on_meta_raises_on_both_ranks(cluster: Cluster, tmp_path: Path) -> None:
    results = cluster.run(save_refused, str(tmp_path / "checkpoint"), True)

    assert results[0] == results[1]
    error, message = results[0]
    assert error == "DistributedError"
    assert message.startswith("embed.weight is on the meta device")
    assert list(tmp_path.iterdir()) == []


def save_per_rank(folders: list[str]) -> tuple[str, str]:
    """Rank step: each rank saves into its own ``folders[rank]`` (as a mistaken script would)."""
    model = reference(0)
    distributed.shard(model, SHARDED)
    try:
        distributed.save(model, folders[distributed.rank()])
    except BaseException as error:  # recorded, checked by the test
        return type(error).__name__, str(error)
    return "no error", ""


@pytest.mark.parametrize("second", ["b", "x/d"])
def test_ranks_saving_into_different_folders_are_stopped(cluster: Cluster, tmp_path: Path, second: str) -> None:
    (tmp_path / "x").mkdir()

    results = cluster.run(save_per_rank, [str(tmp_path / "a"), str(tmp_path / second)])

    assert sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*")) == ["x"]
    assert results[0] == results[1]
    error, message = results[0]
    assert error == "DistributedError"
    assert str(tmp_path / second) in message  # the folder that differs is named


# ---- shards of nothing


class Scale(torch.nn.Module):
    """A leaf with a one-element parameter: on two ranks, rank 1's shard of it is empty."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def build_narrow() -> fl.Chain:
    torch.manual_seed(0)
    return fl.Chain(narrow=fl.Chain(fl.Linear(4, 1), Scale()), head=fl.Linear(1, 3))


def save_narrow(folder: str) -> None:
    model = build_narrow()
    distributed.shard(model, "narrow")
    distributed.save(model, folder)


def test_a_rank_whose_shards_are_empty_saves_and_consolidates(cluster: Cluster, tmp_path: Path) -> None:
    cluster.run(save_narrow, str(tmp_path / "checkpoint"))

    distributed.consolidate(tmp_path / "checkpoint", tmp_path / "model.safetensors", progress=False)

    tensors, _ = read_file(tmp_path / "model.safetensors")
    expected = build_narrow().state_dict()
    assert set(tensors) == set(expected)
    assert all(torch.equal(tensor, expected[key]) for key, tensor in tensors.items())


# ---- consolidate's refusals (one process)


def test_consolidate_refuses_a_folder_with_a_piece_missing(cluster: Cluster, tmp_path: Path) -> None:
    cluster.run(save_step, str(tmp_path / "checkpoint"), 0)
    (tmp_path / "checkpoint" / "shard-00001-model-00001-of-00001.safetensors").unlink()

    with pytest.raises(WeightsError, match="a piece is missing"):
        distributed.consolidate(tmp_path / "checkpoint", tmp_path / "model.safetensors", progress=False)
    assert not (tmp_path / "model.safetensors").exists()


def test_consolidate_into_a_missing_folder_is_a_distributed_error(cluster: Cluster, tmp_path: Path) -> None:
    cluster.run(save_step, str(tmp_path / "checkpoint"), 0)

    with pytest.raises(DistributedError):
        distributed.consolidate(tmp_path / "checkpoint", tmp_path / "missing" / "model.safetensors", progress=False)


def test_consolidate_joins_a_folder_in_dcps_own_format(tmp_path: Path) -> None:
    tensors = {"w": torch.arange(6.0).reshape(3, 2), "b": torch.ones(2, dtype=torch.bfloat16)}
    with warnings.catch_warnings():  # DCP notes that it runs in one process
        warnings.simplefilter("ignore")
        dcp.save(dict(tensors), checkpoint_id=tmp_path / "checkpoint")

    distributed.consolidate(tmp_path / "checkpoint", tmp_path / "model.safetensors", progress=False)

    with safe_open(tmp_path / "model.safetensors", "pt") as file:
        assert sorted(file.keys()) == ["b", "w"]
        for key, tensor in tensors.items():
            assert torch.equal(file.get_tensor(key), tensor)


def test_save_refuses_to_replace_a_folder_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("keep me")
    model = fl.Chain(fl.Linear(2, 2))
    with pytest.raises(DistributedError, match=r"not a checkpoint save wrote \(no fluxion\.json\)"):
        distributed.save(model, project)
    assert (project / "notes.txt").read_text() == "keep me"
    distributed.save(model, tmp_path / "empty-is-fine")
    distributed.save(model, tmp_path / "empty-is-fine")  # and a checkpoint save wrote is replaced
    assert (tmp_path / "empty-is-fine" / "fluxion.json").is_file()
