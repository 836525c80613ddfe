"""The installed ``fluxion`` console script, run as a user runs it, on every example and on broken specs.

Each run starts Python and imports torch (seconds), so the runs are few and start all at once.
"""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.helpers import EXAMPLES

SCRIPT = Path(sys.executable).parent / "fluxion"


@dataclass(frozen=True)
class Finished:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Finished]:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: install the package (pip install -e .) to get the console script")
    folder = tmp_path_factory.mktemp("specs")
    (folder / "mismatch.json").write_text(
        json.dumps(
            {
                "type": "Chain",
                "inputs": {"x": ["B", 8]},
                "children": [
                    {"type": "Linear", "out_features": 16},
                    {"type": "Linear", "in_features": 200, "out_features": 2},
                ],
            }
        )
    )
    (folder / "syntax.jsonnet").write_text("function(width=8) {type: 'Chain' children: []}\n")
    commands = {
        "examples": ["validate", *map(str, EXAMPLES)],
        "broken": ["validate", str(folder / "mismatch.json"), str(folder / "syntax.jsonnet"), "--format", "json"],
        "usage": ["show", str(folder / "mismatch.json"), "--depth", "deep"],
    }
    started = {
        name: subprocess.Popen([str(SCRIPT), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, argv in commands.items()
    }
    finished: dict[str, Finished] = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        finished[name] = Finished(process.returncode, out, err)
    return finished


def test_every_example_is_valid(runs: dict[str, Finished]) -> None:
    run = runs["examples"]
    assert (run.code, run.err) == (0, "")
    lines = run.out.splitlines()
    assert [line.partition(": ")[0] for line in lines[:-1]] == list(map(str, EXAMPLES))
    assert all(line.partition(": ")[2].startswith("valid, ") for line in lines[:-1])
    assert lines[-1] == f"{len(EXAMPLES)} checked: {len(EXAMPLES)} valid, 0 not valid"


def test_broken_specs_exit_with_1_and_name_the_place(runs: dict[str, Finished]) -> None:
    run = runs["broken"]
    assert run.code == 1
    mismatch, syntax = (json.loads(line) for line in run.out.splitlines())
    assert (mismatch["valid"], mismatch["error"]["path"], mismatch["error"]["address"]) == (
        False,
        "children[1]",
        "Linear_2",
    )
    assert (syntax["error"]["line"], syntax["error"]["column"]) == (1, 34)
    errors = run.err.splitlines()
    assert errors[0].startswith("fluxion validate: error: ")
    assert errors[0].endswith(
        "mismatch.json: children[1]: shapes do not fit: Linear at 'Linear_2' got (B, 16): "
        "Linear expects last dim 200, got 16"
    )
    assert errors[-1].endswith("syntax.jsonnet:1:34: expected a comma before next field.")
    assert "Traceback" not in run.err


def test_bad_usage_exits_with_2(runs: dict[str, Finished]) -> None:
    run = runs["usage"]
    assert run.code == 2
    assert run.err.startswith("usage: fluxion show")
    assert "--depth is a number of levels, 0 or more, got 'deep'" in run.err
