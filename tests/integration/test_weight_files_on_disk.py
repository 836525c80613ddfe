"""Weights, LoRA weights and key mappings on disk: saves never replace special files or change
permissions and are atomic; loads refuse FIFOs and devices instead of blocking on them."""

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import fluxion.layers as fl
from fluxion import FluxionError
from fluxion.adapters import AdapterError, lora
from fluxion.weights import KeyMapping, WeightsError, load, open_checkpoint, save
from tests.special_files import null_device
from tests.weights.helpers import outcome_within, small_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, modes and symbolic links are POSIX")

ROOT = Path(__file__).resolve().parents[2]


def adapted() -> fl.Chain:
    model = fl.Chain(fl.Linear(4, 4))
    lora.inject(model, rank=2)
    return model


def write_weights(path: Path) -> None:
    save(small_model(), path)


def write_lora(path: Path) -> None:
    lora.save(adapted(), path)


def write_mapping(path: Path) -> None:
    KeyMapping(rename={"fc.weight": "head.weight"}).write(path)


def read_weights(path: Path) -> object:
    return load(small_model(), path)


def read_lora(path: Path) -> object:
    return lora.load(fl.Chain(fl.Linear(4, 4)), path)


def read_mapping(path: Path) -> object:
    return KeyMapping.read(path)


WRITERS: dict[str, tuple[Callable[[Path], None], Callable[[Path], object], type[FluxionError]]] = {
    "weights.save": (write_weights, read_weights, WeightsError),
    "lora.save": (write_lora, read_lora, AdapterError),
    "KeyMapping.write": (write_mapping, read_mapping, WeightsError),
}


@pytest.fixture(params=list(WRITERS))
def writer(request: pytest.FixtureRequest) -> tuple[Callable[[Path], None], Callable[[Path], object], type]:
    return WRITERS[request.param]


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    previous = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask) and None
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_symbolic_link_is_written_through(tmp_path: Path, writer: tuple[Callable[[Path], None], ...]) -> None:
    write, read, _ = writer
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "file"
    target.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(target)
    write(link)
    assert link.is_symlink()
    assert link.resolve() == target
    assert target.read_bytes() != b"old"
    read(link)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    assert [p.name for p in (tmp_path / "real").iterdir()] == ["file"]


def test_a_fifo_is_refused_without_blocking_and_stays_a_fifo(
    tmp_path: Path, writer: tuple[Callable[[Path], None], Callable[[Path], object], type]
) -> None:
    write, _, error_type = writer
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    error = outcome_within(10, lambda: write(fifo), fifos=[fifo])
    assert isinstance(error, error_type)
    assert "a FIFO (named pipe), not a regular file" in str(error)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_device_is_refused(
    tmp_path: Path, writer: tuple[Callable[[Path], None], Callable[[Path], object], type]
) -> None:
    write, _, error_type = writer
    device = null_device(tmp_path)
    with pytest.raises(error_type, match="a character device"):
        write(device)
    assert stat.S_ISCHR(os.stat(device).st_mode)


@pytest.mark.parametrize("permissions", [0o644, 0o600, 0o664])
def test_an_existing_file_keeps_its_permissions(
    tmp_path: Path,
    writer: tuple[Callable[[Path], None], ...],
    umask: Callable[[int], None],
    permissions: int,
) -> None:
    write = writer[0]
    path = tmp_path / "file"
    path.write_bytes(b"old")
    path.chmod(permissions)
    umask(0o077)  # the umask would give 0600: keeping the file's own bits is what is checked
    write(path)
    assert mode(path) == permissions
    assert path.read_bytes() != b"old"


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_a_new_file_follows_the_umask(
    tmp_path: Path, writer: tuple[Callable[[Path], None], ...], umask: Callable[[int], None], mask: int, expected: int
) -> None:
    write = writer[0]
    umask(mask)
    write(tmp_path / "file")
    assert mode(tmp_path / "file") == expected


def test_a_missing_folder_is_a_clear_error(
    tmp_path: Path, writer: tuple[Callable[[Path], None], Callable[[Path], object], type]
) -> None:
    write, _, error_type = writer
    with pytest.raises(error_type, match=r"folder '.*/missing' does not exist"):
        write(tmp_path / "missing" / "file")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path,
    writer: tuple[Callable[[Path], None], Callable[[Path], object], type],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write, read, error_type = writer
    path = tmp_path / "file"
    write(path)
    before = path.read_bytes()

    def disk_full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(error_type, match="No space left on device"):
        write(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
    monkeypatch.undo()
    read(path)


MAPPING_WRITER = """
import os, sys, time
from fluxion.weights import KeyMapping

real_fsync = os.fsync


def fsync_then_hang(descriptor):
    real_fsync(descriptor)
    print("written", flush=True)
    time.sleep(3600)


os.fsync = fsync_then_hang
print("ready", flush=True)
KeyMapping(rename={f"key.{i}": f"new.{i}" for i in range(1000)}).write(sys.argv[1])
"""


def test_a_mapping_write_killed_midway_leaves_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "mapping.json"
    write_mapping(path)
    before = path.read_bytes()
    process = subprocess.Popen(
        [sys.executable, "-c", MAPPING_WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        assert process.stdout.readline().strip() == "written"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert path.read_bytes() == before
    assert KeyMapping.read(path)("fc.weight") == "head.weight"


# -- reading: never block on a FIFO -----------------------------------------------------------------


def fifo_in(folder: Path, name: str) -> Path:
    fifo = folder / name
    os.mkfifo(fifo)
    return fifo


def refused_quickly(call: Callable[[], object], fifo: Path, error_type: type = WeightsError) -> str:
    error = outcome_within(10, call, fifos=[fifo])
    assert isinstance(error, error_type), error
    assert "a FIFO (named pipe), not a regular file" in str(error)
    return str(error)


def test_weights_load_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = fifo_in(tmp_path, "model.safetensors")
    model = small_model()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    refused_quickly(lambda: load(model, fifo), fifo)
    refused_quickly(lambda: load(model, [fifo]), fifo)
    refused_quickly(lambda: open_checkpoint(fifo), fifo)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_a_pickle_named_fifo_is_refused(tmp_path: Path) -> None:
    fifo = fifo_in(tmp_path, "model.pt")
    refused_quickly(lambda: load(small_model(), fifo), fifo)


def test_a_fifo_among_the_files_of_a_folder_is_refused(tmp_path: Path) -> None:
    save_file({"head.weight": torch.zeros(3, 8)}, tmp_path / "a.safetensors")
    fifo = fifo_in(tmp_path, "b.safetensors")
    message = refused_quickly(lambda: load(small_model(), tmp_path, strict=False), fifo)
    assert "b.safetensors" in message


def test_a_shard_named_by_an_index_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    save_file({"head.weight": torch.zeros(3, 8)}, tmp_path / "shard-1.safetensors")
    fifo = fifo_in(tmp_path, "shard-2.safetensors")
    index = tmp_path / "model.safetensors.index.json"
    index.write_text('{"weight_map": {"head.weight": "shard-1.safetensors", "head.bias": "shard-2.safetensors"}}')
    message = refused_quickly(lambda: load(small_model(), index, strict=False), fifo)
    assert "shard-2.safetensors" in message


def test_an_index_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = fifo_in(tmp_path, "model.safetensors.index.json")
    refused_quickly(lambda: load(small_model(), fifo), fifo)


def test_a_mapping_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    fifo = fifo_in(tmp_path, "mapping.json")
    refused_quickly(lambda: KeyMapping.read(fifo), fifo)
    refused_quickly(lambda: load(small_model(), {"head.bias": torch.zeros(3)}, mapping=fifo, strict=False), fifo)


def test_lora_load_refuses_a_fifo(tmp_path: Path) -> None:
    fifo = fifo_in(tmp_path, "adapter.safetensors")
    model = fl.Chain(fl.Linear(4, 4))
    refused_quickly(lambda: lora.load(model, fifo), fifo, AdapterError)
    refused_quickly(
        lambda: lora.load(model, {"Linear.down.weight": torch.zeros(1, 4)}, mapping=fifo), fifo, AdapterError
    )
    assert not lora.adapters(model)


def test_a_device_is_refused_as_a_checkpoint() -> None:
    with pytest.raises(WeightsError, match="'/dev/null' is a character device"):
        load(small_model(), "/dev/null")
