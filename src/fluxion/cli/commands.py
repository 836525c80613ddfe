"""The commands of the ``fluxion`` command line and what each takes, apart from what each does.

Building the parser, printing any ``--help`` and refusing a command line that cannot be
understood need only this module, which imports neither torch nor sympy nor the spec registry:
they answer at once. A command's work is in its own module (``fluxion.cli.validate``, ``show``,
``render``, ``summary``, ``export``), imported by ``run_command`` when the command runs.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_commands(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["summary", "m.json", "--size", "B=32", "--top", "3"])
>>> args.command, args.size, args.top
('summary', [('B', 32)], 3)
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import cast

from fluxion.cli.arguments import (
    Subcommands,
    add_assume_argument,
    add_depth_argument,
    add_format_argument,
    add_spec_arguments,
)
from fluxion.cli.narchi_options import add_narchi_options
from fluxion.cli.options import assignment
from fluxion.cli.usage import check_usage

COMMANDS = ("validate", "show", "render", "summary", "export")
"""The commands, in the order ``fluxion --help`` lists them; each is the module ``fluxion.cli.NAME``."""

_VALIDATE_EXAMPLES = """\
examples:
  fluxion validate examples/resnet.jsonnet --tla depth=50
  fluxion validate model.json --input image=B,3,224,224
  fluxion validate examples/
  fluxion validate examples/*.jsonnet --format json
  fluxion validate examples/resnet.jsonnet --input image=B,3,H,W --assume H%32==0 --assume W%32==0

A folder stands for the specs in it: its .json, .jsonnet, .yaml and .yml files (not .libsonnet
libraries, key mappings or hidden files, nor sub-folders), in order of name. With several specs,
each gives one line and a total follows; with --format json, each gives one JSON object, on one line.
exit codes: 0 all valid, 1 one or more not valid (each error names the file, JSON path and address),
2 bad usage
"""

_SHOW_EXAMPLES = """\
examples:
  fluxion show examples/resnet.jsonnet --depth 2
  fluxion show examples/resnet.jsonnet --tla depth=50 --weights resnet50.safetensors
  fluxion show examples/mlp.jsonnet --tla widths=[512,256] --format json

exit codes: 0 shown (and the checkpoint fits), 1 an error or a checkpoint that does not fit, 2 bad usage
"""

_RENDER_EXAMPLES = """\
examples:
  fluxion render examples/resnet.jsonnet -o resnet.svg --depth 3
  fluxion render examples/convnet.jsonnet -o convnet.png --direction LR
  fluxion render examples/mlp.jsonnet -o - | dot -Tpdf > mlp.pdf

.svg, .pdf and .png need Graphviz's dot program (apt-get install graphviz, brew install graphviz);
.dot needs nothing.
"""

_SUMMARY_EXAMPLES = """\
examples:
  fluxion summary examples/resnet.jsonnet --tla depth=50
  fluxion summary examples/convnet.jsonnet --size B=64 --top 5
  fluxion summary examples/mlp.jsonnet --format json
"""

_EXPORT_EXAMPLES = """\
examples:
  fluxion export examples/resnet.jsonnet --tla depth=50 -o resnet50.json
  fluxion export mypackage.models:build_classifier -o classifier.json --input x=B,3,32,32
"""


def add_commands(commands: Subcommands) -> None:
    """Add every command, with its arguments, to the parser's subcommands.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_commands(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["render", "m.json", "-o", "m.svg"]).direction
    'TB'
    """
    add_validate(commands)
    add_show(commands)
    add_render(commands)
    add_summary(commands)
    add_export(commands)


def run_command(args: argparse.Namespace) -> int:
    """Run the command a parsed command line names (``args.command``): what the command line alone
    decides is checked first (``fluxion.cli.usage``, a ``UsageError`` before torch is imported),
    then the command's module is imported, and its ``run(args)`` returns the exit code.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_commands(parser.add_subparsers(dest="command"))
    >>> run_command(parser.parse_args(["validate", "no/such/spec.json"]))  # the error is on stderr
    1
    """
    command = cast(str, args.command)
    if command not in COMMANDS:
        raise ValueError(f"no command {command!r}: the commands are {', '.join(COMMANDS)}")
    check_usage(args)
    module = importlib.import_module(f"{__package__}.{command}")
    run = cast(Callable[[argparse.Namespace], int], module.run)
    return run(args)


def _add_parser(
    commands: Subcommands, name: str, help: str, description: str, examples: str
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=help,
        description=description,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_validate(commands: Subcommands) -> None:
    """Add ``validate``: spec files or folders, and the options that read them.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_validate(parser.add_subparsers())
    >>> parser.parse_args(["validate", "a.json", "specs/"]).spec
    ['a.json', 'specs/']
    """
    parser = _add_parser(
        commands,
        "validate",
        help="check that specs build and that their shapes fit",
        description="Read each spec, build it on the meta device (nothing is allocated) and infer every shape.",
        examples=_VALIDATE_EXAMPLES,
    )
    add_spec_arguments(parser, several=True)
    add_assume_argument(parser)
    add_format_argument(parser)
    add_narchi_options(parser, "validate")


def add_show(commands: Subcommands) -> None:
    """Add ``show``: the spec, ``--depth``, ``--assume``, ``--weights`` and ``--mapping``, ``--format``.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_show(parser.add_subparsers())
    >>> parser.parse_args(["show", "m.json", "--depth", "1"]).depth
    1
    """
    parser = _add_parser(
        commands,
        "show",
        help="print the tree with shapes and parameter counts",
        description="Print the tree of a spec with each node's output shape and parameter count, and the "
        "totals (parameters and bytes by dtype). With --weights, check a checkpoint against it.",
        examples=_SHOW_EXAMPLES,
    )
    add_spec_arguments(parser)
    add_depth_argument(parser)
    add_assume_argument(parser)
    parser.add_argument("--weights", metavar="FILE", help="a checkpoint to check against the tree (nothing is loaded)")
    parser.add_argument("--mapping", metavar="FILE", help="a key mapping (JSON) for a checkpoint with foreign keys")
    add_format_argument(parser)


def add_render(commands: Subcommands) -> None:
    """Add ``render``: the spec, ``-o`` (its suffix is the format), ``--depth``, ``--assume``, ``--direction``.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_render(parser.add_subparsers())
    >>> parser.parse_args(["render", "m.json", "-o", "m.svg", "--direction", "LR"]).direction
    'LR'
    """
    parser = _add_parser(
        commands,
        "render",
        help="draw the data flow as a diagram (svg, pdf, png or dot)",
        description="Draw a spec's data flow with Graphviz: leaves with their key arguments and output "
        "shapes, Chains as boxes, residual, parallel, graph and context edges as the data flows.",
        examples=_RENDER_EXAMPLES,
    )
    add_spec_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        required=True,
        help="the file to write: .svg, .pdf, .png or .dot (- for stdout)",
    )
    add_depth_argument(parser)
    add_assume_argument(parser)
    parser.add_argument(
        "--direction", choices=("TB", "LR"), default="TB", help="top to bottom (default) or left to right"
    )
    add_narchi_options(parser, "render")


def add_summary(commands: Subcommands) -> None:
    """Add ``summary``: the spec, ``--size NAME=N``, ``--top N``, ``--assume``, ``--format``.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_summary(parser.add_subparsers())
    >>> parser.parse_args(["summary", "m.json", "--size", "B=32"]).size
    [('B', 32)]
    """
    parser = _add_parser(
        commands,
        "summary",
        help="layers by type and the largest activations",
        description="Count the layers of a spec by type (with their parameters) and list its largest "
        "activations, from the shape report.",
        examples=_SUMMARY_EXAMPLES,
    )
    add_spec_arguments(parser)
    parser.add_argument(
        "--size",
        metavar="NAME=N",
        type=symbol_value,
        action="append",
        help="the value of a symbolic size when ranking activations (default: 1 for each symbol, or the N "
        "of its --assume NAME%%N==0)",
    )
    parser.add_argument("--top", metavar="N", type=top, default=10, help="how many activations to list (default 10)")
    add_assume_argument(parser)
    add_format_argument(parser)


def add_export(commands: Subcommands) -> None:
    """Add ``export``: a spec or ``package.module:factory``, and ``-o``.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_export(parser.add_subparsers())
    >>> parser.parse_args(["export", "pkg.models:build", "-o", "model.json"]).spec
    'pkg.models:build'
    """
    parser = _add_parser(
        commands,
        "export",
        help="write a spec file from a spec or from a Python factory",
        description="Write a JSON spec: from a spec file (normalised, inferred sizes written out) or from "
        "package.module:factory, a function returning a Chain.",
        examples=_EXPORT_EXAMPLES,
    )
    add_spec_arguments(parser)
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="the JSON file to write (- for stdout)")


def symbol_value(text: str) -> tuple[str, int]:
    """A ``--size NAME=N``: a symbol and the positive number it stands for.

    >>> symbol_value("B=32")
    ('B', 32)
    >>> symbol_value("B=x")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --size B: expected a positive whole number, got 'x'
    """
    name, value = assignment(text)
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--size {name}: expected a positive whole number, got {value!r}")
    return name, int(value)


def top(text: str) -> int:
    """A ``--top N``: how many activations to list, 0 or more.

    >>> top("5")
    5
    >>> top("-5")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --top is a count, 0 or more, got '-5'
    """
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"--top is a count, 0 or more, got {text!r}")
    return int(text)
