"""Usage errors the command line alone decides: each is one line, exit code 2, and nothing is read
or written (the spec named need not exist, the output is not created)."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxion.cli.usage import is_factory, output_format
from fluxion.errors import UsageError
from tests.cli.helpers import fails, run


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
