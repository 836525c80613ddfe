"""The commands and their arguments, apart from what each does: every command is in the parser
with its own options, ``summary``'s ``--size`` and ``--top`` are read strictly, and a parsed command
line runs the module of its command."""

import argparse
import glob
import shlex
import sys

import pytest

from fluxion.cli.app import build_parser
from fluxion.cli.commands import COMMANDS, add_commands, run_command, symbol_value, top
from fluxion.cli.usage import check_usage, is_factory
from tests.cli.helpers import ROOT


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


def help_examples() -> list[list[str]]:
    """Every command line the help texts give as an example (``fluxion ...``), split as a shell would."""
    root = build_parser()
    subcommands = next(action for action in root._actions if isinstance(action, argparse._SubParsersAction))
    texts = [root.epilog or "", *(command.epilog or "" for command in subcommands.choices.values())]
    lines = [line.strip().split(" | ")[0] for text in texts for line in text.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("fluxion ")]


def test_every_example_of_the_help_texts_is_a_command_line_that_parses_and_names_a_real_spec() -> None:
    examples = help_examples()
    assert len(examples) >= 20
    for argv in examples:
        args = build_parser().parse_args(argv)
        check_usage(args)
        specs = args.spec if isinstance(args.spec, list) else [args.spec]
        for spec in specs:
            if not is_factory(spec) and spec not in ("model.json",):
                assert glob.glob(str(ROOT / spec)), f"{' '.join(argv)}: {spec} is not in the repository"
