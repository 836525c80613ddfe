"""Review of issue 21's fast command line: usage errors (and --help) that the command line alone
decides still import torch, or are not reported as usage errors at all."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fluxion.cli import main
from tests.cli.helpers import MLP, ROOT, write_spec

HEAVY = ("torch", "sympy", "fluxion.layers", "fluxion.spec")

PROGRAM = """
import contextlib, io, json, sys
from fluxion.cli import main
err = io.StringIO()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
    code = main(ARGV)
print(json.dumps({"code": code, "err": err.getvalue(), "heavy": [name for name in HEAVY if name in sys.modules]}))
"""


def answer(argv: list[str]) -> dict[str, object]:
    """The exit code, stderr and what of HEAVY a fresh Python imported to answer ``argv``."""
    program = f"ARGV = {argv!r}\nHEAVY = {HEAVY!r}\n{PROGRAM}"
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.xfail(
    strict=True,
    reason="--ext-vars falls back to YAML through fluxion.spec.source (which imports torch) before it "
    "refuses a value that is not an object: a usage error that takes ~2 s",
)
def test_an_ext_vars_value_that_is_not_an_object_is_refused_without_importing_torch() -> None:
    found = answer(["validate", "m.json", "--ext-vars", "num_blocks"])
    assert found["code"] == 2
    assert "--ext-vars" in str(found["err"])
    assert found["heavy"] == []


@pytest.mark.xfail(
    strict=True,
    reason="an --ext-vars value in YAML's flow style is read through fluxion.spec.source, which imports "
    "torch, even when the command line only asks for --help",
)
def test_help_after_an_ext_vars_value_in_yaml_flow_style_imports_no_torch() -> None:
    found = answer(["validate", "m.json", "--ext-vars", "{num_blocks: [2, 2]}", "--help"])
    assert found["code"] == 0
    assert found["heavy"] == []


@pytest.mark.xfail(
    strict=True,
    reason="a name given both as --ext-var and --ext-code is refused by fluxion.spec.source after torch "
    "is imported, with exit code 1 and the Python API's names (ext_vars, ext_code), not the options'",
)
def test_a_name_given_as_ext_var_and_as_ext_code_is_one_usage_error_decided_at_once() -> None:
    found = answer(["validate", "no-such-spec.json", "--ext-var", "n=1", "--ext-code", "n=2"])
    lines = str(found["err"]).strip().splitlines()
    assert found["code"] == 2
    assert len(lines) == 1
    assert "--ext-var" in lines[0]
    assert "--ext-code" in lines[0]
    assert found["heavy"] == []


@pytest.mark.xfail(
    strict=True,
    reason="show --mapping without --weights is silently ignored (exit 0), even when the mapping file "
    "does not exist: an option that cannot take effect, as export's --tla for a factory, which is refused",
)
def test_a_mapping_without_weights_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path / "mlp.json", MLP)
    code = main(["show", str(spec), "--mapping", str(tmp_path / "no-such-mapping.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--mapping" in err
    assert "--weights" in err
