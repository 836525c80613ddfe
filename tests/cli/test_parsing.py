"""The parser of every command: unknown options named with the closest ones, ``--a_name`` read as
``--a-name``, flags given ``=true``/``=false``, arguments left over named."""

import argparse
from pathlib import Path

import pytest

from fluxion.cli import main
from fluxion.cli.parsing import CommandParser, unknown_option_message
from tests.cli.helpers import fails, run

COMMANDS = ["validate", "show", "render", "summary", "export"]


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option_is_named_before_a_missing_argument(
    capsys: pytest.CaptureFixture[str], mlp: Path, command: str
) -> None:
    # render and export need -o, and without the check the missing -o would be all argparse says
    fails(run(capsys, command, str(mlp), "--frobnicate", "3"), 2, "unknown option --frobnicate", "--help")
    fails(run(capsys, command, "--frobnicate"), 2, "unknown option --frobnicate")
    result = run(capsys, command, "--ext_varz", "n=3", str(mlp))
    fails(result, 2, "unknown option --ext_varz; did you mean --ext-var")
    assert f"fluxion {command}: error:" in result.err


@pytest.mark.parametrize(
    ("command", "typed", "meant"),
    [
        ("render", "--nested_depht", "--nested-depth"),
        ("render", "--dpeth", "--depth"),
        ("show", "--nested_depth", "--depth"),
        ("show", "--wieghts", "--weights"),
        ("summary", "--szie", "--size"),
        ("validate", "--fromat", "--format"),
        ("export", "--ouput", "--output"),
        ("validate", "--asume", "--assume"),
    ],
)
def test_an_unknown_option_suggests_the_command_s_own_options(
    capsys: pytest.CaptureFixture[str], mlp: Path, command: str, typed: str, meant: str
) -> None:
    result = run(capsys, command, str(mlp), typed, "1")
    fails(result, 2, f"unknown option {typed}; did you mean ", meant)


def test_suggestions_come_from_the_command_s_own_options(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    fails(run(capsys, "show", str(mlp), "--tpo", "3"), 2, "unknown option --tpo (--help lists the options)")
    fails(run(capsys, "summary", str(mlp), "--tpo", "3"), 2, "unknown option --tpo; did you mean --top?")
    fails(run(capsys, "validate", str(mlp), "-x"), 2, "unknown option -x")


def test_an_unknown_option_before_the_command_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    fails(run(capsys, "--verison", "validate", "m.json"), 2, "unknown option --verison; did you mean --version?")


def test_underscored_names_are_the_hyphenated_options(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    result = run(capsys, "show", str(mlp), "--search_path", str(mlp.parent), "--time_limit", "5", "--format=json")
    assert result.code == 0, result.err
    assert run(capsys, "summary", str(mlp), "--top", "1", "--no_limits").code == 0


def test_abbreviations_still_work(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    assert '"level": 0' in run(capsys, "show", str(mlp), "--form", "json", "--dep", "0").out


@pytest.mark.parametrize(
    ("given", "limits"),
    [(["--no-limits=true"], False), (["--no-limits=False"], True), (["--no-limits", "true"], False),
     (["--no_limits", "FALSE"], True)],
)  # fmt: skip
def test_a_flag_given_true_or_false_the_way_narchi_takes_it(given: list[str], limits: bool) -> None:
    parser = CommandParser(prog="fluxion validate")
    parser.add_argument("spec")
    parser.add_argument("--no-limits", action="store_true")
    assert parser.parse_args([*given, "m.json"]) == argparse.Namespace(spec="m.json", no_limits=not limits)


def test_a_flag_given_another_value_is_a_usage_error(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    fails(run(capsys, "validate", str(mlp), "--no-limits=yes"), 2, "--no-limits takes no value", "--no-limits=true")


def test_an_argument_left_over_is_named(capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path) -> None:
    fails(run(capsys, "show", str(mlp), "extra.json"), 2, "fluxion show: error: unexpected argument 'extra.json'")
    output = str(tmp_path / "mlp.dot")
    fails(run(capsys, "render", str(mlp), output, "-o", "-"), 2, f"given with -o {output}")
    # narchi's render SPEC OUT_FILE without -o: the missing -o is said, and where the file to write went
    fails(run(capsys, "render", str(mlp), output), 2, "required: -o/--output", f"given with -o {output}")


def test_values_of_options_are_not_read_as_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # "-" after -o, "-1" after --tla: values, whatever they look like
    path = tmp_path / "net.jsonnet"
    path.write_text("function(x) {type: 'Chain', inputs: {x: ['B', std.extVar('n') + x + 3]}, children: []}")
    assert run(capsys, "render", str(path), "-o", "-", "--tla", "x=-1", "--ext-var", "n=-1").code == 0
    result = run(capsys, "validate", str(path), "--tla", "x=-1", "--ext-var", "n=-2", "--format", "json")
    assert result.out.startswith('{"valid": true'), result.err


def test_unknown_option_message() -> None:
    assert unknown_option_message("--nested_depht", ["--depth"], ["--nested-depth", "--nested_depth"]) == (
        "unknown option --nested_depht; did you mean --nested-depth?"
    )
    assert unknown_option_message("--frobnicate", ["--format"], ["--propagate"]).endswith("(--help lists the options)")
    assert unknown_option_message("--dept", ["--depth", "--help"]) == "unknown option --dept; did you mean --depth?"
    assert unknown_option_message("--hlp", ["--help"]) == "unknown option --hlp (--help lists the options)"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["summary", "m.json", "--top", "-5"], "fluxion summary: error: --top is a count, 0 or more, got '-5'"),
        (["show", "m.json", "--depth", "x"], "fluxion show: error: --depth is a number of levels, 0 or more, got 'x'"),
        (["show", "m.json", "--format", "xml"], "fluxion show: error: argument --format: invalid choice: 'xml'"),
    ],
)
def test_an_option_is_named_once_in_its_error(capsys: pytest.CaptureFixture[str], argv: list[str], line: str) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(line)
