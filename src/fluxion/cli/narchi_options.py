"""narchi's command-line options, so that a ``narchi_cli.py validate|render ...`` line runs as
``fluxion validate|render ...`` (with ``-o`` for the file to write).

The options narchi users type either mean something here or are refused with what to write
instead. ``--ext_vars`` is fluxion's ``--ext-vars`` (a ``--a_name`` is always ``--a-name``, see
``fluxion.cli.parsing``); these options are not in ``--help``, docs/narchi.md lists them:

- ``--nested_depth N`` (render) is ``--depth N``; narchi's 0 (no limit) shows everything.
- ``--cwd DIR``: a relative spec path is read from ``DIR``.
- ``--overwrite=false`` (render) refuses to write over an existing file; ``true`` is fluxion's way.
- ``--outdir`` is accepted and has no effect: it is where ``--save_pdf``, ``--save_gv`` and
  ``--save_json`` write, and these are refused (``-o`` names the file to write).
- booleans fluxion always honours (``--validate=true``, ``--propagate=true``, ``--propagated=false``,
  ``--full_ids=false``...) and values it always uses (``--propagators default``, ``--layout_prog dot``,
  ``--parent_id ''``) are accepted; the other values are refused, saying why.
- ``--stack_trace=true`` (before the command, as narchi takes it, or after it) shows the traceback of
  an error nobody foresaw.

>>> from fluxion.cli.parsing import CommandParser
>>> parser = CommandParser(prog="fluxion render")
>>> parser.add_argument("--depth", type=int)  # doctest: +ELLIPSIS
_StoreAction(...)
>>> add_narchi_options(parser, "render")
>>> parser.parse_args(["--nested_depth", "0", "--overwrite=true", "--layout_prog", "dot"]).depth is None
True
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Literal

_BOOLEANS = {"true": True, "false": False}


def narchi_bool(text: str, option: str) -> bool:
    """A boolean as narchi's options take it: ``true`` or ``false``.

    >>> narchi_bool("True", "--overwrite")
    True
    >>> narchi_bool("1", "--overwrite")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --overwrite is true or false, got '1'
    """
    value = _BOOLEANS.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"{option} is true or false, got {text!r}")
    return value


def nested_depth(text: str) -> int | None:
    """narchi's ``--nested_depth``: the levels of nested blocks drawn, 0 for all (``None``).

    >>> nested_depth("3"), nested_depth("0")
    (3, None)
    """
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"--nested_depth is a number of levels, 0 (all) or more, got {text!r}")
    return int(text) or None


def _only(option: str, accepted: bool, why: str) -> Callable[[str], bool]:
    """A narchi boolean fluxion honours with one value only; the other is refused, saying ``why``."""

    def parse(text: str) -> bool:
        value = narchi_bool(text, option)
        if value is not accepted:
            raise argparse.ArgumentTypeError(f"{option}={str(value).lower()}: {why}")
        return value

    return parse


def _only_value(option: str, accepted: str, why: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text != accepted:
            raise argparse.ArgumentTypeError(f"{option} {text}: {why.replace('{value}', text)}")
        return text

    return parse


def _refused(option: str, why: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        raise argparse.ArgumentTypeError(f"{option}: {why}")

    return parse


def _add(
    parser: argparse.ArgumentParser, option: str, kind: Callable[[str], Any], *, flag: bool = False, default: Any = None
) -> None:
    """A hidden option in narchi's spelling and in fluxion's (``--save_pdf``, ``--save-pdf``)."""
    names = [option] if "_" not in option else [option, option.replace("_", "-")]
    extra: dict[str, Any] = {"nargs": "?", "const": "true"} if flag else {"metavar": "VALUE"}
    parser.add_argument(
        *names, dest="narchi_" + option.lstrip("-"), type=kind, default=default, help=argparse.SUPPRESS, **extra
    )


def add_narchi_options(parser: argparse.ArgumentParser, command: Literal["validate", "render"]) -> None:
    """narchi's options for ``validate`` or ``render``, hidden from ``--help``.

    >>> parser = argparse.ArgumentParser()
    >>> add_narchi_options(parser, "validate")
    >>> vars(parser.parse_args(["--cwd", "models", "--validate=true"]))["narchi_cwd"]
    'models'
    """
    config = "fluxion has no config files: give the options on the command line (fluxion COMMAND --help)"
    _add(parser, "--cfg", _refused("--cfg", config))
    _add(parser, "--print_config", _refused("--print_config", config), flag=True)
    _add(parser, "--validate", _only("--validate", True, "fluxion always checks a spec, then every shape"), flag=True)
    _add(parser, "--propagate", _only("--propagate", True, "fluxion always infers the shapes"), flag=True)
    propagated = "fluxion reads an architecture before narchi propagates it: give the file it came from"
    _add(parser, "--propagated", _only("--propagated", False, propagated), flag=True)
    rules = "fluxion's own shape rules cover narchi's blocks; only 'default' is accepted"
    _add(parser, "--propagators", _only_value("--propagators", "default", rules))
    _add(parser, "--cwd", str)
    ids = "fluxion names each node by its address in the tree; an id prefix has no equivalent"
    _add(parser, "--parent_id", _only_value("--parent_id", "", ids))
    _add(parser, "--overwrite", lambda text: narchi_bool(text, "--overwrite"), flag=True)
    _add(parser, "--outdir", str)
    export = "fluxion export SPEC -o FILE.json writes the spec as JSON"
    _add(parser, "--save_json", _only("--save_json", False, export), flag=True)
    if command == "validate":
        return
    _add(parser, "--save_pdf", _only("--save_pdf", False, "give the file to write with -o FILE.pdf"), flag=True)
    _add(parser, "--save_gv", _only("--save_gv", False, "-o FILE.dot writes the Graphviz source"), flag=True)
    styles = "fluxion draws with its own styles; write -o FILE.dot and edit the DOT text to restyle"
    for option in ("--block_attrs", "--block_labels", "--edge_attrs"):
        _add(parser, option, _refused(option, styles))
    full_ids = "each box is named within the box of its parent (the frames show the full address)"
    _add(parser, "--full_ids", _only("--full_ids", False, full_ids), flag=True)
    layout = "fluxion lays diagrams out with Graphviz's dot; write -o FILE.dot and run {value} on it"
    _add(parser, "--layout_prog", _only_value("--layout_prog", "dot", layout))
    parser.add_argument(
        "--nested_depth",
        "--nested-depth",
        dest="depth",
        type=nested_depth,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def add_stack_trace_option(parser: argparse.ArgumentParser, *, after_command: bool = False) -> None:
    """narchi's global ``--stack_trace=true``: the traceback of an error nobody foresaw, as
    ``FLUXION_TRACEBACK=1`` shows it. narchi takes it before the command; a command's parser
    (``after_command``) takes it too, leaving the value given before the command when not given.

    >>> parser = argparse.ArgumentParser()
    >>> add_stack_trace_option(parser)
    >>> vars(parser.parse_args(["--stack_trace=true"]))["narchi_stack_trace"]
    True
    >>> command = argparse.ArgumentParser()
    >>> add_stack_trace_option(command, after_command=True)
    >>> vars(command.parse_args([]))
    {}
    """
    default = argparse.SUPPRESS if after_command else None
    _add(parser, "--stack_trace", lambda text: narchi_bool(text, "--stack_trace"), flag=True, default=default)
