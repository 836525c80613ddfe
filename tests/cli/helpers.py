"""What the CLI tests share: running a command in-process, and the repository's examples."""

import json
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
