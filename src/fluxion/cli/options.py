"""Reading the command line's values: ``NAME=VALUE`` options (jsonnet variables, input shapes) and limits.

An ``--ext-var`` or ``--tla`` value is read as JSON when it is valid JSON (``depth=50``,
``widths=[64,32]``, ``pretrained=true``) and is a string otherwise (``name=resnet``;
``name='"50"'`` for the string ``"50"``), except that a value starting with ``[`` or ``{`` is
meant as JSON: when it is not JSON, that is an error. ``--ext-vars`` takes a whole object of them
(narchi's ``--ext_vars``): JSON, or else YAML's flow style (``{num_blocks: [2, 2]}``), as narchi
reads it; ``--ext-code`` values are jsonnet code. An ``--input`` gives a shape as sizes and
symbols separated by commas: ``image=B,3,224,224``; an ``--assume`` states that a size divides
by a number: ``H%32==0``, and several of one size combine (``H%2==0`` and ``H%3==0``: ``H%6==0``).

>>> tla_value("widths=[64, 32]"), tla_value("norm=batch"), ext_var_value("depths=[2, 2]")
(('widths', [64, 32]), ('norm', 'batch'), ('depths', [2, 2]))
>>> ext_vars_object('{"num_blocks": [2, 2, 2, 2]}'), assumption("H%32==0")
([('num_blocks', [2, 2, 2, 2])], ('H', 32))
>>> input_shape("image=B,3,224,224")
('image', ('B', 3, 224, 224))
>>> seconds("2.5"), byte_size("512M"), positive_count("800")
(2.5, 536870912, 800)
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Iterable
from typing import Any, cast

from fluxion.errors import SpecError, UsageError

Shape = tuple[int | str, ...]
"""A shape as the command line gives it: sizes and symbol names."""

LARGEST_SIZE = 2**63 - 1
"""The largest size torch can hold."""

_BYTE_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_ASSUMPTION = re.compile(r"\s*(?P<name>[A-Za-z_]\w*)\s*%\s*(?P<divisor>[0-9]+)\s*==?\s*0\s*", re.ASCII)


def assignment(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` split in two (an argparse ``type``); a bad one is a usage error.

    >>> assignment("features=8"), assignment("expr=a=b")
    (('features', '8'), ('expr', 'a=b'))
    """
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME an identifier, got {text!r}")
    return name, value


def tla_value(text: str) -> tuple[str, Any]:
    """A top-level argument: its value read as JSON when it is valid JSON, else kept as a string.

    >>> tla_value("depth=50"), tla_value("scale=0.5"), tla_value("act=gelu"), tla_value('id="7"')
    (('depth', 50), ('scale', 0.5), ('act', 'gelu'), ('id', '7'))
    """
    name, value = assignment(text)
    return name, json_or_text(value, f"--tla {name}")


def ext_var_value(text: str) -> tuple[str, Any]:
    """An external variable: read as JSON when it is valid JSON, else kept as a string, as ``--tla``.

    >>> ext_var_value("n=3"), ext_var_value("act=gelu"), ext_var_value('id="3"')
    (('n', 3), ('act', 'gelu'), ('id', '3'))
    """
    name, value = assignment(text)
    return name, json_or_text(value, f"--ext-var {name}")


def json_or_text(value: str, option: str) -> Any:
    """``value`` read as JSON when it is valid JSON, else the text itself; ``option`` names it in errors.

    A value starting with ``[`` or ``{`` is meant as JSON: when it is not JSON, that is an error
    with the JSON parser's message (a string that starts so is given as JSON: ``x='"[1"'``).

    >>> json_or_text("[1, 2]", "--tla x"), json_or_text("NaN", "--tla x"), json_or_text('"[1,"', "--tla x")
    ([1, 2], 'NaN', '[1,')
    >>> json_or_text("[1,]", "--ext-var v")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --ext-var v: '[1,]' starts as JSON but is not JSON (Expecting value: \
line 1 column 4 (char 3)); for a string, give it as JSON: v='"[1,]"'
    """
    try:
        return json.loads(value, parse_constant=_not_json)
    except ValueError as error:  # not JSON (NaN and Infinity are refused too): the text itself
        if not value.lstrip().startswith(("[", "{")):
            return value
        name = option.rpartition(" ")[2]
        raise argparse.ArgumentTypeError(
            f"{option}: {value[:40]!r} starts as JSON but is not JSON ({error}); "
            f"for a string, give it as JSON: {name}='{json.dumps(value)}'"
        ) from None
    except RecursionError:
        raise argparse.ArgumentTypeError(f"{option}: the value nests too deeply") from None


def ext_vars_object(text: str) -> list[tuple[str, Any]]:
    """An ``--ext-vars`` value: an object of external variables, as narchi's ``--ext_vars`` takes: JSON,
    or else YAML's flow style (read by YAML's safe loader); a value that is not JSON's kind is refused.

    >>> ext_vars_object('{"width": 64, "act": "relu"}'), ext_vars_object("{depths: [2, 2], act: gelu}")
    ([('width', 64), ('act', 'relu')], [('depths', [2, 2]), ('act', 'gelu')])
    >>> ext_vars_object("[2, 2]")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --ext-vars takes a JSON object of names and values (or YAML's flow style), \
such as '{...}'; got a list
    """
    takes = """--ext-vars takes a JSON object of names and values (or YAML's flow style), \
such as '{"num_blocks": [2, 2, 2, 2]}'"""
    try:
        value = json.loads(text, parse_constant=_not_json)
    except ValueError as json_error:
        value = _yaml_value(text, f"{takes}; {text[:40]!r} is neither JSON ({json_error}) nor YAML")
    except RecursionError:
        raise argparse.ArgumentTypeError("--ext-vars: the value nests too deeply") from None
    if not isinstance(value, dict):
        kinds: dict[type, str] = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
        kind = kinds.get(type(cast(object, value)), "a number")
        raise argparse.ArgumentTypeError(f"{takes}; got {kind}")
    pairs = list(cast(dict[Any, Any], value).items())
    for name, _ in pairs:
        if not (isinstance(name, str) and name.isidentifier()):
            raise argparse.ArgumentTypeError(f"--ext-vars: a name is an identifier, got {str(name)[:40]!r}")
    return pairs


def _yaml_value(text: str, neither: str) -> Any:
    """``text`` read as YAML, as JSON's kinds of values (so that jsonnet can take it); ``neither`` starts
    the message when it is not YAML."""
    from fluxion.spec.source import read_yaml  # torch-free, as the package imports its names when used

    try:
        value = read_yaml(text)
    except SpecError as error:
        raise argparse.ArgumentTypeError(f"{neither} ({error})") from None
    try:  # YAML has more kinds of values than JSON: dates, .nan, sets...
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"--ext-vars: a value is not JSON's kind ({error})") from None
    except RecursionError:
        raise argparse.ArgumentTypeError("--ext-vars: the value nests too deeply") from None


def assumption(text: str) -> tuple[str, int]:
    """An ``--assume``: a size's name and a number it divides by, ``H%32==0`` (or ``H%32=0``).

    >>> assumption("H%32==0"), assumption("W % 8 = 0")
    (('H', 32), ('W', 8))
    >>> assumption("H%1==0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --assume: the divisor is a whole number, 2 or more, got 1 in 'H%1==0'
    """
    match = _ASSUMPTION.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"--assume: expected NAME%N==0, a size's name and a number it divides by (H%32==0), got {text!r}"
        )
    divisor = match["divisor"].lstrip("0") or "0"
    if len(divisor) > len(str(LARGEST_SIZE)) or not 2 <= int(divisor) <= LARGEST_SIZE:
        raise argparse.ArgumentTypeError(
            f"--assume: the divisor is a whole number, 2 or more, got {divisor[:30]} in {text[:60]!r}"
        )
    return match["name"], int(divisor)


def _not_json(constant: str) -> Any:
    """Python's ``json`` reads ``NaN`` and ``Infinity``; JSON (and jsonnet) has no such values."""
    raise ValueError(f"{constant} is not JSON")


def input_shape(text: str) -> tuple[str, Shape]:
    """An input shape ``NAME=DIMS``: sizes (numbers) and symbols (names) separated by commas.

    Brackets or parentheses around the sizes are allowed; an empty list is a scalar.

    >>> input_shape("x=(B, T, 512)"), input_shape("scale=")
    (('x', ('B', 'T', 512)), ('scale', ()))
    """
    name, value = assignment(text)
    body = value.strip()
    if body and body[0] in "([" and body[-1] in ")]":
        body = body[1:-1]
    sizes: list[int | str] = []
    for part in (part.strip() for part in body.split(",")) if body.strip() else ():
        if part.isascii() and part.isdigit():
            if len(part) > len(str(LARGEST_SIZE)) or int(part) > LARGEST_SIZE:
                raise argparse.ArgumentTypeError(f"--input {name}: a size is at most 2**63 - 1, got {part[:30]}")
            sizes.append(int(part))
        elif part.isidentifier():
            sizes.append(part)
        else:
            raise argparse.ArgumentTypeError(
                f"--input {name}: a size is a number or a symbol name such as B, got {part!r} "
                f"(as in {name}=B,3,224,224)"
            )
    return name, tuple(sizes)


def seconds(text: str) -> float:
    """A ``--time-limit``: a number of seconds above 0, at most a million.

    >>> seconds("10"), seconds("0.5")
    (10.0, 0.5)
    >>> seconds("0")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected a number of seconds above 0 (at most 1e6), got '0'
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1e6:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0 (at most 1e6), got {text!r}")
    return value


def byte_size(text: str) -> int:
    """A ``--memory-limit``: bytes, or a number with a binary unit (``512M``, ``2G``, ``1.5GiB``).

    >>> byte_size("1G"), byte_size("2048"), byte_size("1.5GiB")
    (1073741824, 2048, 1610612736)
    >>> byte_size("lots")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected a size such as 512M or 2G, got 'lots'
    """
    match = _BYTE_SIZE.fullmatch(text.strip())
    size = 0 if match is None else int(float(match["number"]) * _UNITS[match["unit"].upper()])
    if size <= 0 or size > LARGEST_SIZE:
        raise argparse.ArgumentTypeError(f"expected a size such as 512M or 2G, got {text!r}")
    return size


def positive_count(text: str) -> int:
    """A whole number from 1 to 2**31 - 1 (``--stack-limit``).

    >>> positive_count("500")
    500
    >>> positive_count("-1")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: expected a whole number from 1 to 2147483647, got '-1'
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 1 <= int(text) < 2**31:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {2**31 - 1}, got {text!r}")
    return int(text)


def by_name(pairs: Iterable[tuple[str, Any]] | None, option: str) -> dict[str, Any]:
    """The pairs an option was given as a dict, in order; a name given twice is a usage error.

    >>> by_name([("a", 1), ("b", 2)], "--tla")
    {'a': 1, 'b': 2}
    >>> by_name([("a", 1), ("a", 2)], "--tla")
    Traceback (most recent call last):
    fluxion.errors.UsageError: --tla a is given twice
    """
    values: dict[str, Any] = {}
    for name, value in pairs or ():
        if name in values:
            raise UsageError(f"{option} {name} is given twice")
        values[name] = value
    return values


def combined_assumptions(pairs: Iterable[tuple[str, int]] | None) -> dict[str, int]:
    """The ``--assume`` divisors by name, in order; several of one name combine into their least common
    multiple (a size that divides by 2 and by 3 divides by 6).

    >>> combined_assumptions([("H", 2), ("W", 32), ("H", 3), ("H", 2)])
    {'H': 6, 'W': 32}
    >>> combined_assumptions([("H", 2**62), ("H", 3)])
    Traceback (most recent call last):
    fluxion.errors.UsageError: --assume H: the divisors given combine to 13835058055282163712, above 2**63 - 1
    """
    divisors: dict[str, int] = {}
    for name, divisor in pairs or ():
        combined = math.lcm(divisors.get(name, 1), divisor)
        if combined > LARGEST_SIZE:
            raise UsageError(f"--assume {name}: the divisors given combine to {combined}, above 2**63 - 1")
        divisors[name] = combined
    return divisors
