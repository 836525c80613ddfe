"""The commands and their arguments, apart from what each does: every command is in the parser
with its own options, ``summary``'s ``--size`` and ``--top`` are read strictly, and a parsed command
line runs the module of its command."""

import argparse
import sys

import pytest

from fluxion.cli.commands import COMMANDS, add_commands, run_command, symbol_value, top


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_commands(parser.add_subparsers(dest="command"))
    return parser


def test_every_command_is_in_the_parser_with_its_own_options() -> None:
    subcommands = next(action for action in parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert tuple(subcommands.choices) == COMMANDS
    options = {
        name: {option for action in command._actions for option in action.option_strings}
        for name, command in subcommands.choices.items()
    }
    assert {"--tla", "--input", "--time-limit", "--no-limits"} <= set.intersection(*options.values())
    assert {"--weights", "--mapping", "--depth", "--format"} <= options["show"]
    assert {"-o", "--direction", "--depth"} <= options["render"]
    assert {"--size", "--top", "--assume"} <= options["summary"]
    assert "--format" in options["validate"]
    assert "--depth" not in options["validate"]
    assert options["export"] & {"--format", "--depth", "--assume"} == set()


@pytest.mark.parametrize(("text", "value"), [("B=1", ("B", 1)), ("H=224", ("H", 224)), ("T=007", ("T", 7))])
def test_size_accepted(text: str, value: tuple[str, int]) -> None:
    assert symbol_value(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("B=0", "--size B: expected a positive whole number, got '0'"),
        ("B=-2", "--size B: expected a positive whole number, got '-2'"),
        ("B=2.5", "--size B: expected a positive whole number, got '2.5'"),
        ("B=²", "--size B: expected a positive whole number, got '²'"),
        ("B", "expected NAME=VALUE with NAME an identifier, got 'B'"),
    ],
)
def test_size_refused(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        symbol_value(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(("text", "count"), [("0", 0), ("3", 3), ("010", 10)])
def test_top_accepted(text: str, count: int) -> None:
    assert top(text) == count


@pytest.mark.parametrize("text", ["-1", "1.5", "", "all", "³"])
def test_top_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        top(text)
    assert str(raised.value) == f"--top is a count, 0 or more, got {text!r}"


def test_a_command_runs_its_module_s_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from fluxion.cli import export

    seen: list[argparse.Namespace] = []

    def run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 7

    monkeypatch.setattr(export, "run", run)
    args = parser().parse_args(["export", "m.json", "-o", "-"])
    assert run_command(args) == 7
    assert seen == [args]
    assert "fluxion.cli.export" in sys.modules


def test_only_the_commands_run() -> None:
    with pytest.raises(ValueError, match="no command 'app': the commands are validate, show, render, summary, export"):
        run_command(argparse.Namespace(command="app"))
