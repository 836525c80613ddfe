"""The ``fluxion`` command line: its parser, and ``main``, which runs a command and returns its exit code.

Exit codes: 0 for success, 1 for a problem fluxion reports (an invalid spec, a checkpoint that
does not fit, a missing program), printed as one message on stderr, without a traceback; 2 for a
command line that cannot be understood. An error fluxion did not foresee (a bug) is one line
too, exit code 1; ``FLUXION_TRACEBACK=1`` in the environment (or narchi's ``--stack_trace=true``,
before or after the command) shows its traceback. An unknown option is named, with the closest
options the command has, and narchi's spellings of options are understood (see
``fluxion.cli.parsing`` and ``narchi_options``).

>>> main(["validate"])
2
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import TextIO

import fluxion
from fluxion.cli.commands import add_commands, run_command
from fluxion.cli.narchi_options import add_stack_trace_option
from fluxion.cli.parsing import CommandParser
from fluxion.errors import CliError, FluxionError

EXAMPLES = """\
examples:
  fluxion validate examples/resnet.jsonnet --tla depth=50
  fluxion show examples/convnet.jsonnet --depth 1
  fluxion render examples/resnet.jsonnet -o resnet.svg --depth 3
  fluxion summary examples/mlp.jsonnet --tla widths=[1024,512]
  fluxion export examples/resnet.jsonnet -o resnet18.json

Run "fluxion COMMAND --help" for a command's options. The specs named in the examples are in the
examples/ folder of fluxion's source, and the documentation of the command line is its docs/cli.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command line, with one subcommand per command.

    >>> build_parser().parse_args(["show", "model.json", "--depth", "2"]).command
    'show'
    """
    parser = CommandParser(
        prog="fluxion",
        description="Check and look at fluxion architectures (JSON or jsonnet specs) without writing Python.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fluxion {fluxion.__version__}")
    add_stack_trace_option(parser)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True)
    add_commands(commands)
    for command_parser in commands.choices.values():  # narchi's --stack_trace, written after the command
        add_stack_trace_option(command_parser, after_command=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: the process's arguments) and return its exit code.

    >>> main(["--version"])
    fluxion 0.1.0
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # argparse's way to end: --help, --version, or a usage error
        return exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return run_command(args)
    except CliError as error:
        print(f"fluxion {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except FluxionError as error:
        print(f"fluxion {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (fluxion show ... | head): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print(f"fluxion {args.command}: error: out of memory", file=sys.stderr)
        return 1
    except Exception as error:  # a bug: still one line, the traceback on demand
        if os.environ.get("FLUXION_TRACEBACK") or getattr(args, "narchi_stack_trace", None):
            traceback.print_exc()
        first = (str(error).strip().splitlines() or [""])[0]
        print(
            f"fluxion {args.command}: internal error: {type(error).__name__}: {first} "
            "(a bug in fluxion: please report it; FLUXION_TRACEBACK=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line_warning(command: str) -> Callable[..., None]:
    """How a command shows a warning: ``fluxion COMMAND: warning: ...`` on stderr, without the line
    of fluxion's source that Python's default display adds."""

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        print(f"fluxion {command}: warning: {message}", file=file or sys.stderr)

    return show
