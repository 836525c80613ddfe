"""fluxion.weights.save: metadata, refusals, and atomic replacement (a save killed midway loses nothing)."""

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import fluxion
import fluxion.layers as fl
from fluxion.weights import WeightsError, load, save
from tests.weights.helpers import same_state, small_model, state_snapshot

ROOT = Path(__file__).resolve().parents[2]


def test_metadata_is_recorded(tmp_path: Path) -> None:
    save(small_model(), tmp_path / "m.safetensors", metadata={"epoch": "7"})
    with safe_open(tmp_path / "m.safetensors", "pt") as file:
        metadata = file.metadata()
    assert metadata["epoch"] == "7"
    assert metadata["format"] == "pt"
    assert metadata["fluxion.version"] == fluxion.__version__


def test_bad_metadata_and_bad_destinations(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="metadata must map strings to strings"):
        save(small_model(), tmp_path / "m.safetensors", metadata={"epoch": 7})  # type: ignore[dict-item]
    with pytest.raises(WeightsError, match="does not exist"):
        save(small_model(), tmp_path / "missing" / "m.safetensors")
    with pytest.raises(WeightsError, match="it is a folder"):
        save(small_model(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_non_contiguous_and_shared_views_are_saved_faithfully(tmp_path: Path) -> None:
    model = fl.Chain(fl.Linear(4, 6), fl.Linear(6, 4))
    with torch.no_grad():
        model.Linear_2.weight = torch.nn.Parameter(model.Linear_1.weight.t())  # a transposed view
    save(model, tmp_path / "views.safetensors")
    fresh = fl.Chain(fl.Linear(4, 6), fl.Linear(6, 4))
    load(fresh, tmp_path / "views.safetensors")
    assert same_state(fresh, state_snapshot(model))


SAVER = """
import os, sys, time, torch, fluxion.layers as fl
from fluxion.weights import save

real_fsync = os.fsync


def fsync_then_hang(descriptor):
    # The temporary file is written; the rename into place has not happened yet. Hang here, so the
    # test kills the save at that point every time instead of racing it.
    real_fsync(descriptor)
    print("written", flush=True)
    time.sleep(3600)


os.fsync = fsync_then_hang
model = fl.Chain(*[fl.Linear(256, 256) for _ in range(8)])
print("ready", flush=True)
save(model, sys.argv[1])
print("finished", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")
def test_a_save_killed_midway_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    original = small_model()
    save(original, path)
    before = path.read_bytes()
    process = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=os.environ.copy()
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        assert process.stdout.readline().strip() == "written"
        assert any(p.name.endswith(".partial") and p.stat().st_size > 0 for p in tmp_path.iterdir())
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    fresh = small_model()
    load(fresh, path)
    assert same_state(fresh, state_snapshot(original))


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.safetensors"
    save(small_model(), path)
    before = path.read_bytes()

    def failing_fsync(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(WeightsError, match="No space left on device"):
        save(small_model(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_a_dict_of_tensors_saves_with_its_ties_recorded(tmp_path: Path) -> None:
    shared = torch.arange(6.0).view(2, 3)
    save({"a.weight": shared, "b.weight": shared, "scale": torch.tensor(0.5)}, tmp_path / "d.safetensors")
    with safe_open(tmp_path / "d.safetensors", framework="pt") as file:
        assert sorted(file.keys()) == ["a.weight", "scale"]
        assert file.metadata()["fluxion.aliases"] == '{"b.weight": "a.weight"}'
    model = fl.Chain(a=fl.Linear(3, 2, bias=False), b=fl.Linear(3, 2, bias=False))
    load(model, tmp_path / "d.safetensors", strict=False)
    assert torch.equal(model.b.weight, shared)


@pytest.mark.parametrize("bad", [{"w": [1.0]}, {3: torch.zeros(1)}, [torch.zeros(1)]])
def test_a_dict_that_is_not_of_named_tensors_is_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(WeightsError, match=r"save writes a module or a dict of tensors|must map strings to tensors"):
        save(bad, tmp_path / "bad.safetensors")  # type: ignore[arg-type]
    assert not (tmp_path / "bad.safetensors").exists()


def test_views_of_one_memory_are_saved_as_tensors_of_their_own(tmp_path: Path) -> None:
    fused = torch.arange(12.0).reshape(4, 3)
    path = tmp_path / "views.safetensors"
    save({"first": fused[:3], "last": fused[1:], "all": fused}, path)  # overlapping, and the whole
    loaded = load_file(path)
    assert torch.equal(loaded["first"], fused[:3])
    assert torch.equal(loaded["last"], fused[1:])
    assert torch.equal(loaded["all"], fused)


def test_a_read_only_file_is_replaced_and_stays_read_only(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save({"a": torch.zeros(2)}, path)
    path.chmod(0o444)
    save({"a": torch.ones(2)}, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert torch.equal(load_file(path)["a"], torch.ones(2))
