"""Usage errors the command line alone decides: each is one line, exit code 2, and nothing is read
or written (the spec named need not exist, the output is not created)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxion.cli.usage import is_factory, output_format
from fluxion.errors import UsageError
from tests.cli.helpers import MLP, ROOT, fails, run, write_spec


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["validate", "{spec}", "--tla", "a=1", "--tla", "a=2"], ["--tla a is given twice"]),
        (["show", "{spec}", "--ext-var", "n=1", "--ext-vars", '{"n": 2}'], ["--ext-var n is given twice"]),
        (["summary", "{spec}", "--ext-code", "n=1", "--ext-code", "n=2"], ["--ext-code n is given twice"]),
        (["render", "{spec}", "-o", "{out}.svg", "--input", "x=B,8", "--input", "x=B,4"], ["--input x"]),
        (["summary", "{spec}", "--size", "B=2", "--size", "B=3"], ["--size B is given twice"]),
        (["show", "{spec}", "--assume", f"H%{2**62}==0", "--assume", "H%3==0"], ["--assume H", "above 2**63 - 1"]),
        (["summary", "{spec}", "--assume", "H%32==0", "--size", "H=48"], ["--size H=48", "multiple of 32"]),
        (["render", "{spec}", "-o", "{out}.gif"], ["-o", ".gif", "suffix", ".svg, .pdf, .png or .dot"]),
        (["render", "{spec}", "-o", ""], ["-o: name the file to write"]),
        (["export", "{spec}", "-o", ""], ["-o: name the file to write"]),
        (["export", "pkg.models:build", "-o", "{out}.json", "--tla", "a=1"], ["a factory takes no arguments"]),
        (["export", "pkg.models:build", "-o", "{out}.json", "-J", "lib"], ["a factory takes no arguments"]),
    ],
)
def test_a_contradiction_in_the_command_line_is_one_usage_error_and_touches_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], words: list[str]
) -> None:
    spec, out = tmp_path / "no-such-spec.json", tmp_path / "out"
    argv = [word.replace("{spec}", str(spec)).replace("{out}", str(out)) for word in argv]
    fails(run(capsys, *argv), 2, f"fluxion {argv[0]}: error:", *words)
    assert list(tmp_path.iterdir()) == []


def test_a_command_line_without_contradictions_goes_on_to_read_the_spec(capsys: pytest.CaptureFixture[str]) -> None:
    # the same options, given once each: the error is now the missing spec's (exit code 1)
    argv = ["summary", "no/such.json", "--tla", "a=1", "--size", "H=64", "--assume", "H%32==0"]
    fails(run(capsys, *argv), 1, "no/such.json")


@given(
    stem=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8),
    suffix=st.sampled_from(["svg", "pdf", "png", "dot"]),
    upper=st.booleans(),
)
def test_the_format_is_the_suffix_in_any_case(stem: str, suffix: str, upper: bool) -> None:
    assert output_format(f"{stem}.{suffix.upper() if upper else suffix}") == suffix


@pytest.mark.parametrize("output", ["model", "model.svg.gz", "model.jpeg", ".svg"])
def test_an_output_without_a_format_suffix_is_refused(output: str) -> None:
    with pytest.raises(UsageError, match="the format is taken from the suffix"):
        output_format(output)


def test_stdout_is_dot_text() -> None:
    assert output_format("-") == "dot"


@pytest.mark.parametrize(
    ("text", "factory"),
    [
        ("models:build", True),
        ("my_package.models:Builders.small", True),
        ("_private:_make", True),
        ("examples/mlp.jsonnet", False),
        ("models:build.json", False),
        ("models:build.jsonnet", False),
        ("C:\\models\\net.json", False),
        ("models:", False),
        (":build", False),
        ("models:1build", False),
        ("my-package:build", False),
    ],
)
def test_what_names_a_factory(text: str, factory: bool) -> None:
    assert is_factory(text) is factory


HEAVY = ("torch", "sympy", "fluxion.layers")

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


def test_usage_errors_of_ext_vars_and_ext_code_answer_without_torch() -> None:
    # YAML's flow style is read by fluxion.spec.source, which imports no torch
    not_an_object = answer(["validate", "m.json", "--ext-vars", "num_blocks"])
    assert (not_an_object["code"], not_an_object["heavy"]) == (2, [])
    assert "--ext-vars takes a JSON object" in str(not_an_object["err"])
    helped = answer(["validate", "m.json", "--ext-vars", "{num_blocks: [2, 2]}", "--help"])
    assert (helped["code"], helped["heavy"]) == (0, [])
    both = answer(["validate", "no-such-spec.json", "--ext-var", "n=1", "--ext-code", "n=2"])
    assert (both["code"], both["heavy"]) == (2, [])
    assert str(both["err"]).strip().splitlines()[-1] == (
        "fluxion validate: error: --ext-var n and --ext-code n name one variable: give it once"
    )


def test_a_mapping_without_weights_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "mlp.json", MLP)
    result = run(capsys, "show", str(spec), "--mapping", str(tmp_path / "no-such-mapping.json"))
    fails(result, 2, "--mapping maps the keys of a checkpoint: give the checkpoint with --weights")
