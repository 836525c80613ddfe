"""fluxion.distributed.save and consolidate under failures and bad arguments: a rename or the record
failing after every rank wrote its pieces, paths of the wrong type or with no name.

The multi-process test runs on the session's two gloo ranks; the others run in this one process
(``save`` works without a process group). Each bug found here is a strict xfail that says what it is.
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
import torch.distributed.checkpoint as dcp

import fluxion.layers as fl
from fluxion import distributed
from fluxion.distributed import saving
from fluxion.errors import DistributedError, FluxionError
from tests.distributed import helpers
from tests.distributed.helpers import Cluster

HANG_TIMEOUT = 10.0
"""How long a test waits for a rank that is expected to hang before it counts the step as hung."""


def build(seed: int) -> fl.Chain:
    torch.manual_seed(seed)
    return fl.Chain(fl.Linear(3, 5), head=fl.Linear(5, 2))


def values(folder: Path) -> dict[str, torch.Tensor]:
    """What a checkpoint folder holds, read back in this process."""
    model = build(99)
    distributed.load(model, folder)
    return {key: tensor.detach().clone() for key, tensor in model.state_dict().items()}


def failure_of(action: Any) -> BaseException | None:
    try:
        action()
    except BaseException as error:  # recorded, checked by the test
        return error
    return None


# ---- arguments of the wrong type or with no name: a DistributedError, like every other bad input


@pytest.mark.parametrize("folder", [5, None, ".", ""], ids=["int", "none", "dot", "empty"])
def test_save_refuses_a_folder_argument_it_cannot_use_with_a_distributed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: object
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DistributedError):
        distributed.save(build(0), folder)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize("which", ["folder", "file"])
def test_consolidate_refuses_paths_of_the_wrong_type_with_a_fluxion_error(tmp_path: Path, which: str) -> None:
    distributed.save(build(0), tmp_path / "checkpoint")
    arguments: list[object] = [tmp_path / "checkpoint", tmp_path / "model.safetensors"]
    arguments[0 if which == "folder" else 1] = 5
    with pytest.raises(FluxionError):
        distributed.consolidate(*arguments, progress=False)  # pyright: ignore[reportArgumentType]


# ---- failures after the pieces are written: the old checkpoint stays, and the error is fluxion's


def test_a_failed_save_leaves_the_old_checkpoint_when_the_pieces_fail(tmp_path: Path) -> None:
    """The case that works: the write itself failing (before any rename)."""
    folder = tmp_path / "checkpoint"
    distributed.save(build(0), folder)
    before = values(folder)
    with (
        mock.patch.object(saving, "_write", side_effect=DistributedError("disk full")),
        pytest.raises(DistributedError, match="disk full"),
    ):
        distributed.save(build(1), folder)
    after = values(folder)
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint"]


def test_a_failed_final_rename_keeps_the_old_checkpoint_under_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    distributed.save(build(0), folder)
    before = values(folder)
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        renames.append((os.fspath(source), os.fspath(target)))
        if len(renames) == 2:  # the new folder into place
            raise OSError(16, "Device or resource busy")
        real_replace(source, target)

    with mock.patch.object(saving.os, "replace", replace):
        error = failure_of(lambda: distributed.save(build(1), folder))
    assert isinstance(error, DistributedError), repr(error)
    assert folder.is_dir(), f"no checkpoint under its name; the folder holds {sorted(os.listdir(tmp_path))}"
    after = values(folder)
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_a_record_that_cannot_be_written_is_a_distributed_error(tmp_path: Path) -> None:
    with mock.patch.object(saving, "_write_record", side_effect=OSError(28, "No space left on device")):
        error = failure_of(lambda: distributed.save(build(0), tmp_path / "checkpoint"))
    assert isinstance(error, DistributedError), repr(error)
    assert list(tmp_path.iterdir()) == []


def save_with_rank0_rename_failing(folder: str) -> tuple[str, str]:
    """Rank step: a save whose last step (rank 0 renaming the folder into place) fails, as a busy disk would."""
    model = build(0)
    distributed.shard(model, ["head"])
    busy = OSError(16, "Device or resource busy")
    failing = mock.patch.object(saving, "_replace", side_effect=busy) if distributed.rank() == 0 else nullcontext()
    with failing:
        error = failure_of(lambda: distributed.save(model, folder))
    return ("no error", "") if error is None else (type(error).__name__, str(error))


def test_a_save_whose_rename_fails_on_rank_0_stops_every_rank(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helpers, "TIMEOUT", HANG_TIMEOUT)
    results = cluster.run(save_with_rank0_rename_failing, str(tmp_path / "checkpoint"))
    assert results[0] == results[1]
    assert results[0][0] == "DistributedError"
    assert "Device or resource busy" in results[0][1]


def test_consolidating_a_dcp_folder_with_a_dtype_safetensors_lacks_is_a_fluxion_error(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DCP notes that it runs in one process
        dcp.save({"w": torch.zeros(2, dtype=torch.complex128)}, checkpoint_id=tmp_path / "dcp")
    with pytest.raises(FluxionError, match="complex128"):
        distributed.consolidate(tmp_path / "dcp", tmp_path / "model.safetensors", progress=False)
    assert not (tmp_path / "model.safetensors").exists()
