"""What the CLI tests share: running a command in-process, and the repository's examples."""

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from fluxion.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _is_spec(path: Path) -> bool:
    """Whether a file in examples/ is a spec: key mapping files (``fluxion_mapping``) are not."""
    return path.suffix == ".jsonnet" or "fluxion_mapping" not in json.loads(path.read_text())


EXAMPLES = sorted(path for path in [*ROOT.glob("examples/*.jsonnet"), *ROOT.glob("examples/*.json")] if _is_spec(path))
"""Every spec in examples/."""


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """``fluxion ARGV`` run in this process: its exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def null_device(folder: Path) -> Path:
    """A character device to write to: a null device made in ``folder`` where this process may make
    one (as root), so that a regression that replaced it would replace only that node, never the
    system's ``/dev/null``; else ``/dev/null`` itself, which such a process cannot replace."""
    node = folder / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return Path("/dev/null")
    return node
