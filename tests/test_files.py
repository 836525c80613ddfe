"""Files (``fluxion.files``): atomic writes through symbolic links, special files refused (never opened
or replaced), permission bits kept, every failure one error of the caller's family with the path."""

import os
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxion.files import special_kind, write_atomically, write_text_atomically
from tests.special_files import null_device

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, modes and symbolic links are POSIX")


class WriteError(Exception):
    """The caller's own error (a part's family in the library)."""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write(path: Path | str, text: str = "new") -> None:
    write_text_atomically(path, text, error=WriteError)


def entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.fixture
def umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


# -- special_kind --------------------------------------------------------------------------------------


def test_special_kind_of_regular_files_folders_and_missing_paths_is_none(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert special_kind(tmp_path / "file") is None
    assert special_kind(tmp_path) is None
    assert special_kind(tmp_path / "missing") is None
    assert special_kind("bad\0name") is None


def test_special_kind_names_fifos_devices_and_sockets_following_links(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    assert special_kind(tmp_path / "pipe") == "a FIFO (named pipe)"
    (tmp_path / "link").symlink_to(tmp_path / "pipe")
    assert special_kind(str(tmp_path / "link")) == "a FIFO (named pipe)"
    assert special_kind(null_device(tmp_path)) == "a character device"
    with tempfile.TemporaryDirectory(dir="/tmp") as short:  # a socket's path must be short
        path = os.path.join(short, "s")
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(path)
            assert special_kind(path) == "a socket"


# -- writing -------------------------------------------------------------------------------------------


def test_a_write_replaces_the_content_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    write(path, "first ✓\n")
    assert path.read_text(encoding="utf-8") == "first ✓\n"
    write(str(path), "second")
    assert path.read_text() == "second"
    assert entries(tmp_path) == ["spec.json"]


def test_the_writer_gets_a_temporary_path_next_to_the_destination(tmp_path: Path) -> None:
    given: list[Path] = []

    def writer(temporary: Path) -> None:
        given.append(temporary)
        assert not (tmp_path / "out.bin").exists()  # nothing at the destination until the rename
        temporary.write_bytes(b"\x00\x01")

    write_atomically(tmp_path / "out.bin", writer, error=WriteError)
    (temporary,) = given
    assert temporary.parent == tmp_path
    assert temporary.name.startswith(".out.bin.")
    assert temporary.name.endswith(".partial")
    assert (tmp_path / "out.bin").read_bytes() == b"\x00\x01"
    assert entries(tmp_path) == ["out.bin"]


def test_a_symbolic_link_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "file"
    target.write_text("old")
    link = tmp_path / "link"
    link.symlink_to(target)
    write(link)
    assert link.is_symlink()
    assert target.read_text() == "new"
    assert entries(tmp_path / "real") == ["file"]


def test_a_dangling_link_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "target")
    write(link)
    assert link.is_symlink()
    assert (tmp_path / "target").read_text() == "new"


# -- refused ---------------------------------------------------------------------------------------------


def test_a_fifo_is_refused_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(WriteError) as caught:
        write(fifo)
    assert str(caught.value) == (
        f"cannot write {str(fifo)!r}: it is a FIFO (named pipe), not a regular file; fluxion writes only regular files"
    )
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert entries(tmp_path) == ["pipe"]


def test_a_link_to_a_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link").symlink_to(tmp_path / "pipe")
    with pytest.raises(WriteError, match=r"cannot write '.*link': it is a FIFO"):
        write(tmp_path / "link")
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)


def test_a_device_is_refused(tmp_path: Path) -> None:
    device = null_device(tmp_path)
    with pytest.raises(WriteError, match="it is a character device, not a regular file"):
        write(device)
    assert stat.S_ISCHR(os.stat(device).st_mode)


@pytest.mark.parametrize("name", ["folder", "folder/", "missing/"])
def test_a_folder_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(WriteError, match=r"it is a folder; name a file"):
        write(f"{tmp_path}/{name}")
    assert entries(tmp_path) == ["folder"]
    assert entries(tmp_path / "folder") == []


@pytest.mark.parametrize("name", ["", "a\0b"])
def test_an_impossible_name_is_refused(name: str) -> None:
    with pytest.raises(WriteError, match="is not a file name"):
        write(name)


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match=r"cannot write '.*/missing/out': folder '.*/missing' does not exist"):
        write(tmp_path / "missing" / "out")
    assert entries(tmp_path) == []


def test_a_name_too_long_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(WriteError, match="cannot write"):
        write(tmp_path / ("x" * 300))
    assert entries(tmp_path) == []


# -- failures leave the old file ---------------------------------------------------------------------------


def test_an_error_of_the_writer_passes_through_and_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("old")

    def failing(temporary: Path) -> None:
        temporary.write_text("half")
        raise ValueError("cannot serialize")

    with pytest.raises(ValueError, match="cannot serialize"):
        write_atomically(path, failing, error=WriteError)
    assert path.read_text() == "old"
    assert entries(tmp_path) == ["out"]


def test_an_os_error_of_the_writer_becomes_the_callers_error(tmp_path: Path) -> None:
    def disk_full(temporary: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError) as caught:
        write_atomically(tmp_path / "out", disk_full, error=WriteError)
    assert str(caught.value) == f"cannot write {str(tmp_path / 'out')!r}: No space left on device"
    assert caught.value.__cause__ is None
    assert entries(tmp_path) == []


def test_an_interrupt_in_the_writer_leaves_no_temporary(tmp_path: Path) -> None:
    def interrupted(temporary: Path) -> None:
        temporary.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "out", interrupted, error=WriteError)
    assert entries(tmp_path) == []


def test_an_unwritable_folder_is_the_callers_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(WriteError, match="Permission denied"):
            write(folder / "out")
    finally:
        folder.chmod(0o700)


# -- modes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("permissions", [0o600, 0o640, 0o755, 0o444])
def test_an_existing_file_keeps_its_permission_bits(tmp_path: Path, umask: None, permissions: int) -> None:
    path = tmp_path / "out"
    path.write_text("old")
    path.chmod(permissions)
    os.umask(0o077)
    write(path)
    assert mode(path) == permissions
    assert path.read_text() == "new"


def test_a_writer_that_replaces_its_temporary_file_still_gets_the_kept_mode(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("old")
    path.chmod(0o644)

    def replacing(temporary: Path) -> None:  # as safetensors does, with a 0600 file of its own
        temporary.unlink()
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(descriptor, b"new")
        os.close(descriptor)

    write_atomically(path, replacing, error=WriteError)
    assert mode(path) == 0o644
    assert path.read_text() == "new"


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_follows_the_umask(tmp_path: Path, umask: None, mask: int, expected: int) -> None:
    os.umask(mask)
    write(tmp_path / "out")
    assert mode(tmp_path / "out") == expected
