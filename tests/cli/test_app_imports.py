"""What ``fluxion`` imports before it answers: ``--help``, ``--version`` and a command line that
cannot be understood need neither torch nor sympy nor the spec registry, so that they answer at
once; a command that runs imports what it needs. Checked in a fresh Python, by its ``sys.modules``
(the figures are benchmarks/cli_start.py's, not a test's)."""

import json
import subprocess
import sys
from dataclasses import dataclass

import pytest

from tests.cli.helpers import ROOT

HEAVY = ("torch", "sympy", "yaml", "_jsonnet", "fluxion.layers", "fluxion.spec", "fluxion.shapes", "fluxion.inspect")
"""What the parser must not import."""

QUICK = [
    ["--help"],
    ["--version"],
    *([command, "--help"] for command in ("validate", "show", "render", "summary", "export")),
    [],
    ["frobnicate"],
    ["validate"],
    ["show", "m.json", "--depth", "deep"],
    ["show", "m.json", "--dpeth", "1"],
    ["summary", "m.json", "--size", "B=0"],
    ["render", "m.json"],
    ["validate", "m.json", "--tla", "depth"],
    ["validate", "m.json", "--ext-vars", '{"n": [1, 2]}', "--help"],
    # usage errors found once parsed, before the command's module is imported (fluxion.cli.usage)
    ["render", "m.json", "-o", "m.xyz"],
    ["validate", "m.json", "--tla", "a=1", "--tla", "a=2"],
    ["export", "pkg.mod:build", "-o", "m.json", "--tla", "a=1"],
    ["show", "m.json", "--assume", f"H%{2**62}==0", "--assume", "H%3==0"],
    ["summary", "m.json", "--assume", "H%32==0", "--size", "H=48"],
]
"""Command lines that answer without running a command: help, the version, usage errors."""

PROGRAM = """
import contextlib, io, json, sys
import fluxion
imported = {"import fluxion": sorted(name for name in HEAVY if name in sys.modules)}
from fluxion.cli import main
from fluxion.cli.app import build_parser
build_parser()
imported["build_parser()"] = sorted(name for name in HEAVY if name in sys.modules)
codes = []
for argv in QUICK:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(main(argv))
    imported[" ".join(argv) or "(nothing)"] = sorted(name for name in HEAVY if name in sys.modules)
with contextlib.redirect_stdout(io.StringIO()):
    codes.append(main(["validate", "examples/mlp.jsonnet"]))
imported["validate examples/mlp.jsonnet"] = sorted(name for name in HEAVY if name in sys.modules)
print(json.dumps({"imported": imported, "codes": codes}))
"""


@dataclass(frozen=True)
class Answers:
    imported: dict[str, list[str]]
    """What of ``HEAVY`` was imported after each step: ``import fluxion``, ``build_parser()``, each argv."""
    codes: list[int]
    """The exit code of each argv."""


@pytest.fixture(scope="module")
def answers() -> Answers:
    program = f"HEAVY = {HEAVY!r}\nQUICK = {QUICK!r}\n{PROGRAM}"
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return Answers(**json.loads(done.stdout.splitlines()[-1]))


def test_help_version_and_usage_errors_import_neither_torch_nor_the_registry(answers: Answers) -> None:
    quick = {step: modules for step, modules in answers.imported.items() if step != "validate examples/mlp.jsonnet"}
    assert len(quick) == 2 + len(QUICK)
    loaded = {step: modules for step, modules in quick.items() if modules}
    assert not loaded, "imported before answering:\n" + json.dumps(loaded, indent=1)
    assert answers.codes == [0] * 7 + [2] * 8 + [0] + [2] * 5 + [0]


def test_a_command_that_runs_imports_what_it_needs(answers: Answers) -> None:
    # the check above could not see torch if it were never imported: running a command does import it
    assert {"torch", "sympy", "fluxion.layers", "fluxion.spec"} <= set(
        answers.imported["validate examples/mlp.jsonnet"]
    )
