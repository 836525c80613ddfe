"""``spec.save`` writes like every fluxion file: atomically, through links, never onto special files."""

import os
import stat
from pathlib import Path

import pytest

import fluxion.layers as fl
from fluxion import spec
from fluxion.errors import SpecError
from tests.special_files import null_device


def model() -> fl.Chain:
    return fl.Chain(fl.Linear(2, 3), fl.ReLU())


def test_a_symbolic_link_is_written_through(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    spec.save(model(), link)
    assert link.is_symlink()
    assert spec.load(target).Linear.out_features == 3


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text("old")
    path.chmod(0o640)
    spec.save(model(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_new_file_follows_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        spec.save(model(), tmp_path / "model.json")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "model.json").stat().st_mode) == 0o640


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "missing folder", "empty"])
def test_special_destinations_are_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        destination = tmp_path / "model.json"
        os.mkfifo(destination)
    elif kind == "device":
        destination = null_device(tmp_path)
    elif kind == "folder":
        destination = tmp_path
    elif kind == "missing folder":
        destination = tmp_path / "missing" / "model.json"
    else:
        destination = Path("")
    with pytest.raises(SpecError, match=r"cannot write|not a file name"):
        spec.save(model(), destination)
    if kind == "device":
        assert stat.S_ISCHR(os.stat(destination).st_mode)
    if kind == "fifo":
        assert stat.S_ISFIFO(os.stat(destination).st_mode)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".partial")]
