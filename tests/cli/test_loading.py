"""Reading a spec for a command: paths that are not spec files, and jsonnet variables that do not evaluate."""

import os
from pathlib import Path

import pytest

from tests.cli.helpers import fails, run


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_a_spec_that_is_not_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str, deadline: None
) -> None:
    if kind == "fifo":
        path = tmp_path / "model.jsonnet"
        os.mkfifo(path)
    elif kind == "folder":
        path = tmp_path / "model.json"
        path.mkdir()
    else:
        path = Path("/dev/zero")
    said = {"fifo": "is a FIFO", "folder": "is a folder", "device": "is a character device"}[kind]
    fails(run(capsys, "validate", str(path)), 1, str(path), said)


def test_a_missing_spec_without_suffix_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fails(run(capsys, "validate", "model"), 1, "model", "no such spec file")


def test_bad_jsonnet_variables_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.jsonnet"
    path.write_text("{type: 'ReLU', description: std.extVar('x')}")
    fails(run(capsys, "validate", str(path), "--ext-code", "x={a: }"), 1)
    fails(run(capsys, "validate", str(path), "--ext-code", "x=" + "[" * 3000 + "]" * 3000), 1)
