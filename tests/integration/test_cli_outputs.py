"""What ``fluxion export`` and ``fluxion render`` write: through ``fluxion.files``, atomically, through
symbolic links, keeping modes, refusing folders, FIFOs and devices without blocking."""

import os
import stat
from pathlib import Path

import pytest

from tests.cli.helpers import MLP, fails, partial_files, run, write_spec
from tests.special_files import null_device


@pytest.fixture
def mlp(tmp_path: Path) -> Path:
    return write_spec(tmp_path / "mlp.json", MLP)


@pytest.mark.parametrize("command", ["export", "render"])
def test_output_in_a_missing_folder(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str
) -> None:
    output = tmp_path / "missing_dir" / ("x.json" if command == "export" else "x.dot")
    fails(run(capsys, command, str(mlp), "-o", str(output)), 1, "does not exist")


@pytest.mark.parametrize("command", ["export", "render"])
def test_output_onto_a_folder(capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str) -> None:
    folder = tmp_path / ("some_dir" if command == "export" else "some_dir.dot")
    folder.mkdir()
    fails(run(capsys, command, str(mlp), "-o", str(folder)), 1, "folder")
    assert partial_files(tmp_path) == []
    assert folder.is_dir()


@pytest.mark.parametrize("command", ["export", "render"])
def test_empty_output_is_a_usage_error(capsys: pytest.CaptureFixture[str], mlp: Path, command: str) -> None:
    fails(run(capsys, command, str(mlp), "-o", ""), 2, "-o")


@pytest.mark.parametrize("command", ["export", "render"])
def test_output_onto_a_fifo_or_device_is_refused_without_blocking(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str, deadline: None
) -> None:
    suffix = ".json" if command == "export" else ".dot"
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    fails(run(capsys, command, str(mlp), "-o", str(fifo)), 1, "FIFO")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    device = null_device(tmp_path)
    link = tmp_path / f"null{suffix}"
    link.symlink_to(device)
    fails(run(capsys, command, str(mlp), "-o", str(link)), 1, "character device")
    assert stat.S_ISCHR(os.stat(device).st_mode)


@pytest.mark.parametrize("command", ["export", "render"])
def test_output_through_a_symbolic_link_keeps_the_link_and_the_mode(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str
) -> None:
    suffix = ".json" if command == "export" else ".dot"
    target = tmp_path / f"real{suffix}"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / f"link{suffix}"
    link.symlink_to(target)
    assert run(capsys, command, str(mlp), "-o", str(link)).code == 0
    assert link.is_symlink()
    assert target.read_text() != "old"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("command", ["export", "render"])
def test_a_new_output_follows_the_umask(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str
) -> None:
    output = tmp_path / ("new.json" if command == "export" else "new.dot")
    previous = os.umask(0o022)
    try:
        assert run(capsys, command, str(mlp), "-o", str(output)).code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(output.stat().st_mode) == 0o644
