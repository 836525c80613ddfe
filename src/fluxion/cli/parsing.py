"""The parser every ``fluxion`` command uses: argparse, with the habits of other tools understood.

- An unknown option is named, with the command's own options closest to it, before anything
  else is said (argparse would first complain of a missing argument): ``unknown option
  --nested_depht; did you mean --nested-depth?``.
- ``--a_name`` is ``--a-name`` (narchi and jsonargparse spell options with underscores).
- A flag given a value the way narchi's ``--overwrite=true`` is: ``--no-limits=true`` is
  ``--no-limits``, ``--no-limits=false`` leaves it out, and ``--no-limits true`` reads the same.
- An argument left over is named, and one that looks like an output file says to give it with ``-o``.

>>> parser = CommandParser(prog="demo", exit_on_error=False)
>>> _ = parser.add_argument("--search-path")
>>> _ = parser.add_argument("--quiet", action="store_true")
>>> parser.parse_args(["--search_path", "lib", "--quiet=true"])
Namespace(search_path='lib', quiet=True)
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

_NUMBER = re.compile(r"-\d+(\.\d*)?([eE][-+]?\d+)?")
_BOOLEANS = {"true": True, "false": False}
_OUTPUT_SUFFIXES = (".svg", ".pdf", ".png", ".dot", ".gv")


_NAMED_TWICE = re.compile(r"^argument (?:\S+/)?(\S+): (?=\1\b)")
"""argparse's start of a value's error, ``argument --top: ``, before a message that names the option itself."""


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that names unknown options, reads ``--a_name`` as ``--a-name`` and
    ``--flag=true`` as ``--flag``; its subcommands' parsers are ``CommandParser`` too.

    >>> parser = CommandParser(prog="fluxion show")
    >>> _ = parser.add_argument("--depth")
    >>> parser.parse_args(["--dpeth", "2"])
    Traceback (most recent call last):
    SystemExit: 2
    """

    _tokens: Sequence[str] = ()  # what the last parse read, for error messages

    def parse_known_args(  # pyright: ignore[reportIncompatibleMethodOverride]  # typeshed's overloads
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        """argparse's ``parse_known_args``, after the tokens are read as described above; for a
        command (a parser without subcommands), an argument left over is an error here.

        >>> parser = CommandParser(prog="x")
        >>> parser.parse_known_args([])
        (Namespace(), [])
        """
        tokens = self.understood(sys.argv[1:] if args is None else list(args))
        self._tokens = tokens
        parsed, extras = super().parse_known_args(tokens, namespace)
        if extras and self._subparsers is None:
            self.error(_leftover_message(extras[0], has_output=self._has_option("-o")))
        return parsed, extras

    def understood(self, tokens: list[str]) -> list[str]:
        """``tokens`` with underscored names and flags given values rewritten; an unknown option
        is an error (``self.error``). A parser with subcommands reads only what comes before the
        command.

        >>> parser = CommandParser(prog="x")
        >>> _ = parser.add_argument("--no-limits", action="store_true")
        >>> parser.understood(["--no_limits", "false", "spec.json"])
        ['spec.json']
        """
        result: list[str] = []
        position = 0
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == "--":
                return result + tokens[position - 1 :]
            if not token.startswith("-") or token == "-" or _NUMBER.fullmatch(token):
                result.append(token)
                if self._subparsers is not None:  # the command: the rest is its own to read
                    return result + tokens[position:]
                continue
            name, equals, value = token.partition("=") if token.startswith("--") else (token[:2], "", token[2:])
            name = self._known_name(name)
            action = self._option_string_actions.get(name)
            if action is None:  # an abbreviation: argparse knows what to do with it
                result.append(token)
                continue
            has_value = bool(equals) or (not token.startswith("--") and bool(value))
            if action.nargs == 0:
                given = value if equals else None
                if given is None and position < len(tokens) and tokens[position].lower() in _BOOLEANS:
                    given = tokens[position]
                    position += 1
                if given is not None:
                    if given.lower() not in _BOOLEANS:
                        self.error(f"{name} takes no value: write {name} alone (or {name}=true, {name}=false)")
                    if not _BOOLEANS[given.lower()]:
                        continue
                result.append(name)
                continue
            result.append(name + equals + value if token.startswith("--") else token)
            next_is_boolean = position < len(tokens) and tokens[position].lower() in _BOOLEANS
            takes_next = action.nargs is None or (action.nargs == "?" and next_is_boolean)
            if not has_value and position < len(tokens) and takes_next:
                result.append(tokens[position])  # the option's value, whatever it looks like
                position += 1
        return result

    def error(self, message: str) -> NoReturn:
        """argparse's usage line and ``message``, exit code 2; a missing ``-o`` names the argument
        that looks like the file to write, as narchi takes it (``render SPEC OUT_FILE``).

        >>> parser = CommandParser(prog="fluxion render", usage="fluxion render SPEC -o OUT")
        >>> _ = parser.add_argument("spec")
        >>> _ = parser.add_argument("-o", required=True)
        >>> parser.parse_args(["model.jsonnet", "model.pdf"])
        Traceback (most recent call last):
        SystemExit: 2
        """
        if message.startswith("the following arguments are required: ") and "-o" in message:
            outputs = [token for token in self._tokens if token.lower().endswith(_OUTPUT_SUFFIXES)]
            if outputs:
                message += f" (the file to write is given with -o {outputs[0]})"
        named = _NAMED_TWICE.match(message)
        if named is not None:  # "argument --top: --top is a count...": the option's own message names it
            message = message[named.end() :]
        super().error(message)

    def _known_name(self, name: str) -> str:
        """The option ``name`` stands for: itself, its hyphenated spelling, or (when it is neither
        nor the start of an option's name) an error naming it and the closest options."""
        known = self._option_string_actions
        if name in known:
            return name
        hyphenated = name[:2] + name[2:].replace("_", "-")
        if hyphenated in known:
            return hyphenated
        if name.startswith("--") and any(option.startswith((name, hyphenated)) for option in known):
            return name  # an abbreviation
        shown = [option for option, action in known.items() if action.help != argparse.SUPPRESS]
        self.error(unknown_option_message(name, shown, [option for option in known if option not in shown]))

    def _has_option(self, name: str) -> bool:
        return name in self._option_string_actions


def unknown_option_message(name: str, options: Sequence[str], hidden: Sequence[str] = ()) -> str:
    """What to say of an unknown option: its name, and the options closest to it (``hidden``
    ones, other tools' spellings, only when very close).

    >>> unknown_option_message("--nested_depht", ["--depth", "--tla"], hidden=["--nested-depth"])
    'unknown option --nested_depht; did you mean --nested-depth?'
    >>> unknown_option_message("--frobnicate", ["--format"], hidden=["--propagate"])
    'unknown option --frobnicate (--help lists the options)'
    """
    spelled = name[:2] + name[2:].replace("_", "-")

    def closest(candidates: Sequence[str], cutoff: float) -> list[str]:
        spellings = [
            option.replace("_", "-") for option in candidates if option.startswith("--") and option != "--help"
        ]
        return difflib.get_close_matches(spelled, spellings, n=3, cutoff=cutoff)

    close = list(dict.fromkeys([*closest(options, 0.65), *closest(hidden, 0.8)]))
    if not close:
        return f"unknown option {name} (--help lists the options)"
    return f"unknown option {name}; did you mean {' or '.join(close)}?"


def _leftover_message(argument: str, *, has_output: bool) -> str:
    if argument.startswith("-") and argument != "-":
        return f"unknown option {argument} (--help lists the options)"
    message = f"unexpected argument {argument!r}"
    if has_output and argument.lower().endswith(_OUTPUT_SUFFIXES):
        return f"{message}: the file to write is given with -o {argument}"
    return message
