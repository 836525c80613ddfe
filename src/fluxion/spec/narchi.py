"""narchi's architecture files: detected here; their translation lands in the next commit.

>>> is_narchi({"_class": "Sequential"})
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from fluxion.spec.errors import SpecError


def is_narchi(data: Any) -> bool:
    """Whether a spec's JSON value is written in narchi's format (its nodes have ``_class``).

    >>> is_narchi({"_class": "Sequential", "blocks": []}), is_narchi({"type": "Chain"})
    (True, False)
    """
    return isinstance(data, Mapping) and "_class" in cast(Mapping[str, Any], data)


def translate(data: Any, *, file: str | None = None) -> dict[str, Any]:
    """fluxion's spec for a narchi architecture.

    >>> translate({"_class": "Sequential"})
    Traceback (most recent call last):
    ...
    fluxion.spec.errors.SpecError: narchi files are not read yet
    """
    raise SpecError("narchi files are not read yet", file=file)
