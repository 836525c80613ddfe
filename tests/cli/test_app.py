"""The ``fluxion`` command line as a whole (``fluxion.cli.main``): usage errors exit with 2, help
shows examples, and an error nobody foresaw is still one line."""

import argparse
import sys
from pathlib import Path

import pytest

import fluxion
from fluxion.cli import export, main, render, show, summary, validate
from fluxion.cli.app import build_parser
from fluxion.errors import CliError, SpecError, UsageError, WeightsError
from tests.cli.helpers import Result, fails, run


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate"], "the following arguments are required: SPEC"),
        (["validate", "m.json", "--tla", "depth"], "expected NAME=VALUE"),
        (["validate", "m.json", "--input", "x=B,3.5"], "a size is a number or a symbol name such as B, got '3.5'"),
        (["show", "m.json", "--depth", "-1"], "--depth is a number of levels, 0 or more"),
        (["render", "m.json"], "the following arguments are required: -o/--output"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_usage_exits_with_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    result = run(capsys, *argv)
    assert result.code == 2
    assert message in result.err


def test_usage_that_contradicts_the_spec_exits_with_2(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    result = run(capsys, "validate", str(mlp), "--input", "image=B,8")
    assert (result.code, result.err.strip()) == (2, "fluxion validate: error: --input image: the spec's inputs are x")
    result = run(capsys, "validate", str(mlp), "--tla", "a=1", "--tla", "a=2")
    assert (result.code, result.err.strip()) == (2, "fluxion validate: error: --tla a is given twice")
    result = run(capsys, "render", str(mlp), "-o", "m.gif")
    assert result.code == 2
    assert "the format is taken from the suffix: .svg, .pdf, .png or .dot" in result.err


@pytest.mark.parametrize("command", [None, "validate", "show", "render", "summary", "export"])
def test_help_explains_with_an_example(capsys: pytest.CaptureFixture[str], command: str | None) -> None:
    result = run(capsys, *([command] if command else []), "--help")
    assert result.code == 0
    assert "examples:\n  fluxion " in result.out


def test_an_unforeseen_error_is_one_line(
    capsys: pytest.CaptureFixture[str], mlp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxion.cli import validate

    def broken(options: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(validate, "load_spec", broken)
    monkeypatch.delenv("FLUXION_TRACEBACK", raising=False)
    fails(run(capsys, "validate", str(mlp)), 1, "internal error", "KeyError", internal=True)


# -- main: exit codes and the one line said


def failing_with(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """``fluxion validate`` raises ``error`` whatever it is given."""

    def run_command(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setattr(validate, "run", run_command)


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (CliError("dot is not installed"), 1, "fluxion validate: error: dot is not installed"),
        (UsageError("--input x is given twice"), 2, "fluxion validate: error: --input x is given twice"),
        (
            SpecError("expected an object", file="m.json", path="children[0]"),
            1,
            "fluxion validate: error: m.json: children[0]: expected an object",
        ),
        (WeightsError("m.safetensors: 1 missing key"), 1, "fluxion validate: error: m.safetensors: 1 missing key"),
        (MemoryError(), 1, "fluxion validate: error: out of memory"),
    ],
)
def test_an_error_is_one_line_and_its_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, error: Exception, code: int, line: str
) -> None:
    failing_with(monkeypatch, error)
    result = run(capsys, "validate", "m.json")
    assert (result.code, result.out, result.err) == (code, "", line + "\n")


def test_ctrl_c_exits_with_130_quietly(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    failing_with(monkeypatch, KeyboardInterrupt())
    assert run(capsys, "validate", "m.json") == Result(130, "", "")


def test_a_reader_that_went_away_ends_the_output_quietly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    failing_with(monkeypatch, BrokenPipeError())
    with (tmp_path / "stdout").open("w") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert main(["validate", "m.json"]) == 0
        print("written after the pipe broke", flush=True)  # goes nowhere, raises nothing
    assert (tmp_path / "stdout").read_text() == ""
    assert capsys.readouterr().err == ""


def test_an_unforeseen_error_says_its_first_line_and_the_traceback_on_demand(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_with(monkeypatch, ValueError("first line\nsecond line"))
    monkeypatch.delenv("FLUXION_TRACEBACK", raising=False)
    result = run(capsys, "validate", "m.json")
    assert result.code == 1
    assert result.err == (
        "fluxion validate: internal error: ValueError: first line (a bug in fluxion: please report it; "
        "FLUXION_TRACEBACK=1 shows the traceback)\n"
    )
    monkeypatch.setenv("FLUXION_TRACEBACK", "1")
    result = run(capsys, "validate", "m.json")
    assert result.code == 1
    assert result.err.startswith("Traceback (most recent call last):")
    assert "ValueError: first line\nsecond line\n" in result.err
    assert result.err.splitlines()[-1].startswith("fluxion validate: internal error: ValueError: first line (")

    failing_with(monkeypatch, RuntimeError())
    monkeypatch.delenv("FLUXION_TRACEBACK")
    assert "internal error: RuntimeError:  (a bug in fluxion" in run(capsys, "validate", "m.json").err


def test_version_and_the_process_s_own_arguments(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(capsys, "--version") == Result(0, f"fluxion {fluxion.__version__}\n", "")
    monkeypatch.setattr(sys, "argv", ["fluxion", "--version"])
    assert main() == 0
    assert capsys.readouterr().out == f"fluxion {fluxion.__version__}\n"


def test_the_parser_has_one_subcommand_per_command_each_run_by_its_module(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    parser = build_parser()
    ran: list[tuple[str, str]] = []
    for module in (validate, show, render, summary, export):
        command = module.__name__.rpartition(".")[2]
        output = ["-o", "m.dot"] if module in (render, export) else []
        assert parser.parse_args([command, "m.json", *output]).command == command

        def record(args: argparse.Namespace, command: str = command) -> int:
            ran.append((command, args.spec if isinstance(args.spec, str) else args.spec[0]))
            return 0

        monkeypatch.setattr(module, "run", record)
        assert run(capsys, command, "m.json", *output) == Result(0, "", "")
    assert ran == [(command, "m.json") for command in ("validate", "show", "render", "summary", "export")]


def test_narchi_s_stack_trace_shows_the_traceback_of_a_bug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mlp: Path
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("a bug")

    monkeypatch.delenv("FLUXION_TRACEBACK", raising=False)
    monkeypatch.setattr(validate, "run", broken)
    assert "Traceback" not in run(capsys, "validate", str(mlp)).err
    assert "Traceback" not in run(capsys, "--stack_trace=false", "validate", str(mlp)).err
    result = run(capsys, "--stack_trace=true", "validate", str(mlp))
    assert (result.code, "Traceback" in result.err, "RuntimeError: a bug" in result.err) == (1, True, True)
    fails(run(capsys, "--stack_trace=sometimes", "validate", str(mlp)), 2, "--stack_trace is true or false")


@pytest.mark.parametrize("command", ["validate", "show", "render", "summary", "export"])
def test_narchi_s_stack_trace_may_follow_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mlp: Path, command: str
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise RuntimeError("a bug")

    monkeypatch.delenv("FLUXION_TRACEBACK", raising=False)
    module = {"validate": validate, "show": show, "render": render, "summary": summary, "export": export}[command]
    monkeypatch.setattr(module, "run", broken)
    output = ["-o", "-"] if command in ("render", "export") else []
    result = run(capsys, command, "--stack_trace=true", str(mlp), *output)
    assert (result.code, "Traceback" in result.err, "RuntimeError: a bug" in result.err) == (1, True, True)
    result = run(capsys, command, str(mlp), "--stack_trace", "true", *output)
    assert (result.code, "Traceback" in result.err) == (1, True)
    # not given after the command, the value given before it holds; given after, it is the last word
    assert "Traceback" in run(capsys, "--stack_trace=true", command, str(mlp), *output).err
    assert "Traceback" not in run(capsys, "--stack_trace=true", command, "--stack_trace=false", str(mlp), *output).err
    fails(run(capsys, command, "--stack_trace=maybe", str(mlp), *output), 2, "--stack_trace is true or false")


def test_a_warning_is_one_line_naming_the_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    unused = tmp_path / "unused.yaml"
    unused.write_text(
        "modules:\n  head: {Linear: {in_features: 4, out_features: 2}}\n"
        "  tail: {Linear: {in_features: 2, out_features: 1}}\n"
        "graph: {input: x, modules: {head: [x]}, output: head}\n"
    )
    result = run(capsys, "validate", str(unused), "--input", "x=B,4")
    assert result.code == 0
    assert result.err.splitlines() == [
        "fluxion validate: warning: TorchArc module 'tail' (modules.tail) is not called in graph.modules: "
        "it is left out of the model, as TorchArc leaves it out"
    ]
