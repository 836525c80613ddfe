"""The options several commands share: how to read the spec, how deep to look, text or JSON.

Only what building the parser needs is here: this module imports neither torch nor the spec
registry, so that ``--help`` and a usage error answer at once. What the options then mean (a
``SpecOptions`` for reading the spec) is ``fluxion.cli.loading.spec_options``'s.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_spec_arguments(parser)
>>> args = parser.parse_args(["model.jsonnet", "--tla", "depth=50", "--input", "image=B,3,H,W"])
>>> args.tla, args.input, args.time_limit
([('depth', 50)], [('image', ('B', 3, 'H', 'W'))], 10.0)
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from fluxion.cli.options import (
    assignment,
    assumption,
    byte_size,
    ext_var_value,
    ext_vars_object,
    input_shape,
    positive_count,
    seconds,
    tla_value,
)

# The defaults of fluxion.spec.limits.Limits, written out: importing fluxion.spec imports torch,
# which the parser must not (tests/cli/test_arguments.py checks that they agree).
DEFAULT_TIME_LIMIT = 10.0
"""Seconds evaluating a spec's jsonnet may take: ``Limits().time``."""
DEFAULT_MEMORY_LIMIT = 2**30
"""Bytes evaluating a spec's jsonnet may use: ``Limits().memory``."""
DEFAULT_STACK_LIMIT = 500
"""How deeply jsonnet calls may nest: ``Limits().stack``."""
DEFAULT_NODE_LIMIT = 20_000
"""How many nodes one build may make: ``Limits().nodes``."""


class Subcommands(Protocol):
    """What ``ArgumentParser.add_subparsers()`` returns, as the commands use it.

    >>> import argparse
    >>> commands: Subcommands = argparse.ArgumentParser().add_subparsers()
    >>> commands.add_parser("hello").prog.endswith("hello")
    True
    """

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add a subcommand called ``name`` and return its parser (see argparse).

        >>> import argparse
        >>> argparse.ArgumentParser().add_subparsers().add_parser("x").prog.split()[-1]
        'x'
        """
        ...


def add_spec_arguments(parser: argparse.ArgumentParser, *, several: bool = False) -> None:
    """``SPEC`` (one, or ``several``: files, or folders of them) and the options that read it: ``--ext-var``,
    ``--ext-vars``, ``--ext-code``, ``--tla``, ``--input``, ``-J``, and the limits on evaluating jsonnet:
    ``--time-limit``, ``--memory-limit``, ``--stack-limit``, ``--no-limits``.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_spec_arguments(parser)
    >>> parser.parse_args(["m.json"]).spec
    'm.json'
    """
    what = "a spec file: .json, or .jsonnet (evaluated with its variables)"
    if several:
        several_help = f"{what}, or a folder of specs (see below); all are checked, in one process"
        parser.add_argument("spec", metavar="SPEC", nargs="+", help=several_help)
    else:
        parser.add_argument("spec", metavar="SPEC", help=what)
    group = parser.add_argument_group("reading the spec")
    group.add_argument(
        "--ext-var",
        metavar="NAME=VALUE",
        type=ext_var_value,
        action="append",
        help="a jsonnet external variable (std.extVar('NAME')): read as JSON when it is JSON (n=3, "
        "depths=[2,2,2,2]), else as a string (act=gelu; a string that looks like JSON: id='\"3\"')",
    )
    group.add_argument(
        "--ext-vars",
        metavar="JSON",
        type=ext_vars_object,
        action="append",
        help="external variables as one JSON object, as narchi's --ext_vars: '{\"num_blocks\": [2, 2, 2, 2]}'",
    )
    group.add_argument(
        "--ext-code",
        metavar="NAME=CODE",
        type=assignment,
        action="append",
        help="a jsonnet external variable given as code or JSON: --ext-code widths=[64,32]",
    )
    group.add_argument(
        "--tla",
        metavar="NAME=VALUE",
        type=tla_value,
        action="append",
        help="a top-level argument of a jsonnet spec that is a function: read as JSON when it is JSON "
        "(depth=50, widths=[64,32], bias=true), else as a string (act=gelu)",
    )
    group.add_argument(
        "--input",
        metavar="NAME=DIMS",
        type=input_shape,
        action="append",
        help="an input shape, sizes and symbols separated by commas (image=B,3,224,224); replaces the "
        "spec's own shape for that input",
    )
    group.add_argument(
        "-J",
        "--search-path",
        metavar="DIR",
        action="append",
        help="a folder jsonnet imports and spec references may also read from",
    )
    limits = parser.add_argument_group(
        "limits on evaluating jsonnet",
        "jsonnet runs in a child process within these limits, so that a spec from a stranger cannot\n"
        "hang or exhaust the machine; a spec that needs more fails with an error naming the limit",
    )
    limits.add_argument(
        "--time-limit",
        metavar="SECONDS",
        type=seconds,
        default=DEFAULT_TIME_LIMIT,
        help=f"time for the spec's jsonnet, and again for the files it names (default {DEFAULT_TIME_LIMIT:g})",
    )
    limits.add_argument(
        "--memory-limit",
        metavar="SIZE",
        type=byte_size,
        default=DEFAULT_MEMORY_LIMIT,
        help="how much memory evaluating it may use: bytes, or with a unit: 512M, 2G (default 1G)",
    )
    limits.add_argument(
        "--stack-limit",
        metavar="N",
        type=positive_count,
        default=DEFAULT_STACK_LIMIT,
        help=f"how deeply jsonnet calls may nest (default {DEFAULT_STACK_LIMIT})",
    )
    limits.add_argument(
        "--node-limit",
        metavar="N",
        type=positive_count,
        default=DEFAULT_NODE_LIMIT,
        help=f"how many nodes one build may make, a file counted each time named (default {DEFAULT_NODE_LIMIT})",
    )
    limits.add_argument(
        "--no-limits",
        action="store_true",
        help="evaluate jsonnet in this process without limits (a little faster; for specs you trust)",
    )


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    """``--format text|json``: for people, or for programs (the keys are in docs/cli.md).

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_format_argument(parser)
    >>> parser.parse_args(["--format", "json"]).format
    'json'
    """
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="text for people (default), json for programs"
    )


def depth(text: str) -> int:
    """A ``--depth``: how many levels below the root to show, 0 or more.

    >>> depth("2")
    2
    >>> depth("-1")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --depth is a number of levels, 0 or more, got '-1'
    """
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"--depth is a number of levels, 0 or more, got {text!r}")
    return int(text)


def add_depth_argument(parser: argparse.ArgumentParser) -> None:
    """``--depth N``: show N levels below the root; Chains at level N are folded into one line or node.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_depth_argument(parser)
    >>> parser.parse_args([]).depth is None
    True
    """
    parser.add_argument(
        "--depth",
        metavar="N",
        type=depth,
        help="show N levels below the root; a Chain at level N is folded into one (default: everything)",
    )


def add_assume_argument(parser: argparse.ArgumentParser) -> None:
    """``--assume H%32==0`` (repeatable): read the shapes knowing that a size divides by a number.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_assume_argument(parser)
    >>> parser.parse_args(["--assume", "H%32==0", "--assume", "W%32=0"]).assume
    [('H', 32), ('W', 32)]
    """
    parser.add_argument(
        "--assume",
        metavar="NAME%N==0",
        type=assumption,
        action="append",
        help="read the shapes knowing that input size NAME divides by N: H/32 rather than ceil(H/32); "
        "printed with the shapes (H%%2==0 and H%%3==0 combine into H%%6==0)",
    )
