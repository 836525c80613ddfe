"""What a command line alone decides is wrong: options that contradict each other, checked before a
command's module (and torch) is imported, so that such a usage error answers at once.

What needs the spec (an ``--input`` the spec has no input for, an ``--assume`` of a size no input
names) is checked when the spec is read, by ``fluxion.cli.loading``.

>>> import argparse
>>> check_usage(argparse.Namespace(command="render", spec="m.json", output="m.gif"))
Traceback (most recent call last):
fluxion.errors.UsageError: -o m.gif: the format is taken from the suffix: .svg, .pdf, .png or .dot
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any, cast

from fluxion.cli.dot import FORMATS
from fluxion.cli.options import by_name, combined_assumptions
from fluxion.errors import UsageError

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def check_usage(args: argparse.Namespace) -> None:
    """Raise a ``UsageError`` (exit code 2) for a parsed command line whose options contradict each
    other: a name given twice (``--tla a=1 --tla a=2``, or as ``--ext-var`` and ``--ext-code``),
    ``--assume`` divisors that combine past 2**63 - 1, an output whose suffix names no format, a
    ``--size`` that ``--assume`` rules out, ``show --mapping`` without ``--weights``, or
    spec-reading options given to ``export`` of a Python factory.

    >>> import argparse
    >>> check_usage(argparse.Namespace(command="validate", spec=["m.json"], tla=[("a", 1), ("a", 2)]))
    Traceback (most recent call last):
    fluxion.errors.UsageError: --tla a is given twice
    >>> check_usage(argparse.Namespace(command="validate", spec=["m.json"], tla=[("a", 1)]))  # nothing to say
    """
    given = vars(args)
    pairs = [*(given.get("ext_var") or ()), *(pair for pairs in given.get("ext_vars") or () for pair in pairs)]
    variables = by_name(pairs, "--ext-var")
    code = by_name(given.get("ext_code"), "--ext-code")
    both = [name for name in variables if name in code]
    if both:
        raise UsageError(f"--ext-var {both[0]} and --ext-code {both[0]} name one variable: give it once")
    for option in ("tla", "input", "size"):
        by_name(given.get(option), "--" + option)
    assume = combined_assumptions(given.get("assume"))
    if args.command == "show" and given.get("mapping") and not given.get("weights"):
        raise UsageError("--mapping maps the keys of a checkpoint: give the checkpoint with --weights")
    if args.command == "render":
        output_format(cast(str, args.output))
    elif args.command == "summary":
        _check_sizes(cast("list[tuple[str, int]] | None", args.size), assume)
    elif args.command == "export":
        _check_export(given)


def output_format(output: str) -> str:
    """The format ``fluxion render -o OUTPUT`` writes, from the suffix (``-``, stdout, is DOT text).

    >>> output_format("model.SVG"), output_format("-")
    ('svg', 'dot')
    >>> output_format("")
    Traceback (most recent call last):
    fluxion.errors.UsageError: -o: name the file to write: .svg, .pdf, .png or .dot (- for stdout)
    """
    if not output:
        raise UsageError("-o: name the file to write: .svg, .pdf, .png or .dot (- for stdout)")
    if output == "-":
        return "dot"
    kind = os.path.splitext(output)[1].lstrip(".").lower()
    if kind not in FORMATS:
        raise UsageError(f"-o {output}: the format is taken from the suffix: .svg, .pdf, .png or .dot")
    return kind


def is_factory(text: str) -> bool:
    """Whether ``text`` names a factory (``package.module:function``) rather than a spec file.

    >>> is_factory("models.vision:resnet"), is_factory("examples/mlp.jsonnet"), is_factory("C:model.json")
    (True, False, False)
    """
    return _FACTORY.match(text) is not None and not os.path.exists(text) and not text.endswith((".json", ".jsonnet"))


def _check_sizes(sizes: list[tuple[str, int]] | None, assume: dict[str, int]) -> None:
    for name, value in sizes or ():
        divisor = assume.get(name, 1)
        if value % divisor:
            raise UsageError(
                f"--size {name}={value} is not a multiple of {divisor}, as --assume {name}%{divisor}==0 says it is"
            )


def _check_export(given: dict[str, Any]) -> None:
    if not given.get("output"):
        raise UsageError("-o: name the file to write (- for stdout)")
    reading = ("ext_var", "ext_vars", "ext_code", "tla", "search_path")
    if is_factory(cast(str, given["spec"])) and any(given.get(option) for option in reading):
        raise UsageError("--ext-var, --ext-code, --tla and -J read spec files; a factory takes no arguments")
