"""What the CLI tests share: running a command in-process, checking how it failed, a small spec,
and the repository's examples."""

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fluxion.cli import main
from fluxion.cli.arguments import add_depth_argument, add_format_argument, add_spec_arguments

ROOT = Path(__file__).resolve().parents[2]


def _is_spec(path: Path) -> bool:
    """Whether a file in examples/ is a spec: key mapping files (``fluxion_mapping``) are not."""
    return path.suffix == ".jsonnet" or "fluxion_mapping" not in json.loads(path.read_text())


EXAMPLES = sorted(path for path in [*ROOT.glob("examples/*.jsonnet"), *ROOT.glob("examples/*.json")] if _is_spec(path))
"""Every spec in examples/."""

MLP = {
    "type": "Chain",
    "inputs": {"x": ["B", 8]},
    "children": [
        {"type": "Linear", "id": "fc", "out_features": 16},
        {"type": "ReLU"},
        {"type": "Linear", "id": "head", "out_features": 2},
    ],
}
"""A small spec with input shapes: 178 parameters, output (B, 2)."""

CONVS = {
    "type": "Chain",
    "inputs": {"image": ["B", 3, "H", "W"]},
    "children": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1} for _ in range(3)],
}
"""Three stride-2 convolutions: (B, 4, ceil(H/8), ceil(W/8)), or H/8 when H divides by 8."""


def write_spec(path: Path, document: Any) -> Path:
    """``document`` written to ``path`` as JSON; the path."""
    path.write_text(json.dumps(document))
    return path


def write(path: Path, text: str) -> str:
    """``text`` written to ``path``; the path as a string, as a command line takes it."""
    path.write_text(text)
    return str(path)


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


def fails(result: Result, code: int, *words: str, internal: bool = False) -> None:
    """The command failed with ``code`` and one line on stderr that says ``words``: a message of
    its own, or (``internal``) the catch-all line for errors nobody foresaw."""
    assert result.code == code, result
    assert "Traceback" not in result.err
    # a jsonnet error names its callers on lines of their own: part of the one message
    lines = [line for line in result.err.strip().splitlines() if not line.startswith("  called from ")]
    if code == 2:  # argparse prints its usage line first
        lines = [line for line in lines if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, result.err
    assert ("internal error" in lines[0]) == internal, result.err
    for word in words:
        assert word in lines[0], result.err


def partial_files(folder: Path) -> list[str]:
    """The files a write left aside in ``folder`` (``.partial``): none after a write ends, however it ends."""
    return [name for name in os.listdir(folder) if name.endswith(".partial")]


def parser(*, several: bool = False) -> argparse.ArgumentParser:
    """A parser of the options the commands share (the spec's, ``--depth``, ``--format``) that raises
    instead of exiting."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_spec_arguments(parser, several=several)
    add_depth_argument(parser)
    add_format_argument(parser)
    return parser
