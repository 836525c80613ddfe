"""Shapes and errors as JSON values, for ``--format json``.

A shape is a list of sizes: numbers, and strings for symbolic sizes (``"B"``, ``"floor(H/2)"``);
several values (a tuple) are a list of shapes, values by name an object; no value is ``null``.

>>> from fluxion import dims
>>> shape_json(dims.Shape(["B", 3, dims.floordiv(dims.dim("H"), 2)]))
['B', 3, 'floor(H/2)']
>>> shape_json((dims.Shape([2]), None))
[[2], None]
"""

from __future__ import annotations

import os
from typing import Any, cast

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import ShapeError


def shape_json(value: ShapeValue) -> Any:
    """A shape, a tuple of shapes or None as JSON: sizes as numbers, symbolic sizes as text; values by
    name (a ``ShapeMap``) as an object.

    >>> from fluxion import dims
    >>> shape_json(dims.Shape([4, "T"])), shape_json(None), shape_json(dims.ShapeMap({"mean": dims.Shape([2])}))
    ([4, 'T'], None, {'mean': [2]})
    """
    if value is None:
        return None
    if isinstance(value, dims.Shape):
        return [size if dims.known(size) else dims.show(size) for size in value]
    if isinstance(value, dims.ShapeMap):
        return {key: shape_json(item) for key, item in value.items()}
    return [shape_json(item) for item in value]


def error_json(error: BaseException) -> dict[str, Any]:
    """An error as JSON: its class, its message, and where it happened when the error says so.

    ``file``, ``line``, ``column`` and ``path`` (the JSON path) come from a ``SpecError``,
    ``address`` (the tree address) from the ``ShapeError`` behind it; keys whose value is
    unknown are left out.

    >>> from fluxion.spec import SpecError
    >>> error_json(SpecError("expected an int", file="m.json", path="children[0].kernel_size"))
    {'type': 'SpecError', 'message': 'm.json: children[0].kernel_size: expected an int', \
'file': 'm.json', 'path': 'children[0].kernel_size'}
    """
    found: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    for key in ("file", "line", "column", "path"):
        value: object = getattr(error, key, None)
        if isinstance(value, int | str):
            found[key] = value
        elif isinstance(value, os.PathLike):
            found[key] = os.fspath(cast("os.PathLike[str]", value))
    # a spec's shape problem is a SpecError raised while handling the ShapeError that has the address
    for cause in (error, error.__cause__, error.__context__):
        if isinstance(cause, ShapeError) and cause.address is not None:
            found["address"] = cause.address
            break
    return found
