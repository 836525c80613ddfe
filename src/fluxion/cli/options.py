"""Reading the command line's ``NAME=VALUE`` options: jsonnet variables and input shapes.

``--ext-var`` values are strings, ``--ext-code`` values are jsonnet code, and a ``--tla`` value
is read as JSON when it is valid JSON (``depth=50``, ``widths=[64,32]``, ``pretrained=true``)
and is a string otherwise (``name=resnet``; ``name='"50"'`` for the string ``"50"``). An
``--input`` gives a shape as sizes and symbols separated by commas: ``image=B,3,224,224``.

>>> tla_value("widths=[64, 32]"), tla_value("norm=batch")
(('widths', [64, 32]), ('norm', 'batch'))
>>> input_shape("image=B,3,224,224")
('image', ('B', 3, 224, 224))
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from typing import Any

from fluxion.cli.errors import UsageError

Shape = tuple[int | str, ...]
"""A shape as the command line gives it: sizes and symbol names."""


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
    try:
        return name, json.loads(value)
    except ValueError:  # not JSON (NaN and Infinity are refused too): the text itself
        return name, value


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
        if part.isdigit():
            sizes.append(int(part))
        elif part.isidentifier():
            sizes.append(part)
        else:
            raise argparse.ArgumentTypeError(
                f"--input {name}: a size is a number or a symbol name such as B, got {part!r} "
                f"(as in {name}=B,3,224,224)"
            )
    return name, tuple(sizes)


def by_name(pairs: Iterable[tuple[str, Any]] | None, option: str) -> dict[str, Any]:
    """The pairs an option was given as a dict, in order; a name given twice is a usage error.

    >>> by_name([("a", 1), ("b", 2)], "--tla")
    {'a': 1, 'b': 2}
    >>> by_name([("a", 1), ("a", 2)], "--tla")
    Traceback (most recent call last):
    fluxion.cli.errors.UsageError: --tla a is given twice
    """
    values: dict[str, Any] = {}
    for name, value in pairs or ():
        if name in values:
            raise UsageError(f"{option} {name} is given twice")
        values[name] = value
    return values
