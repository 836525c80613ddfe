"""The one error of ``fluxion.spec``, and how it names the place of a problem.

A spec error says where (file, line and column when known, then the JSON path of the node) and
what was expected, in the order a person reads it:

>>> from fluxion.spec.errors import SpecError
>>> error = SpecError('expected an int, got "3"', file="model.jsonnet", line=12, column=5)
>>> error.path = "blocks[3].kernel_size"
>>> print(error)
model.jsonnet:12:5: blocks[3].kernel_size: expected an int, got "3"
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from fluxion.errors import FluxionError


class SpecError(FluxionError, ValueError):
    """A spec that cannot be read, evaluated or built.

    ``reason`` is the bare message; ``file``, ``line``, ``column`` and ``path`` (the JSON path of
    the offending node, ``""`` for the root) say where, each ``None`` when unknown. They may be
    filled in after the error was raised (by code that knows the file, say): ``str()`` always
    reads the current values.

    >>> error = SpecError("expected an object", path="blocks[0]")
    >>> error.file = "model.json"
    >>> print(error)
    model.json: blocks[0]: expected an object
    >>> error.reason
    'expected an object'
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike[str] | None = None,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = message
        self.file = file
        self.path = path
        self.line = line
        self.column = column

    def __str__(self) -> str:
        parts = [self._place(), self.path or "", self.reason]
        return ": ".join(part for part in parts if part)

    def _place(self) -> str:
        numbers = [] if self.line is None else [self.line] if self.column is None else [self.line, self.column]
        if self.file is not None:
            return ":".join([os.fspath(self.file), *map(str, numbers)])
        return ", ".join(f"{name} {number}" for name, number in zip(("line", "column"), numbers, strict=False))

    def __reduce__(self) -> tuple[Any, ...]:
        # the keyword-only fields would be lost by the default pickling of exceptions (multiprocessing)
        fields = {"file": self.file, "path": self.path, "line": self.line, "column": self.column}
        return (_rebuild, (self.reason, fields))


def _rebuild(reason: str, fields: dict[str, Any]) -> SpecError:
    return SpecError(reason, **fields)


_TORCH_FRAME_LINES = ("frame #", "<omitting python frames>")


def without_torch_trace(text: str) -> str:
    """``text`` without the C++ stack that some torch errors carry ("Exception raised from ...",
    then one line per frame): it says nothing to a user and makes one message fifty lines long.

    >>> print(without_torch_trace('failed with error "Overflow\\nException raised from f at x.h:79:\\n'
    ...                           'frame #0: c10::Error + 0x9d\\nframe #1: _start + 0x21\\n"\\nnext line'))
    failed with error "Overflow"
    next line
    """
    lines: list[str] = []
    skipping = False
    for line in text.split("\n"):
        if line.startswith("Exception raised from "):
            skipping = True
        elif skipping and line.startswith(_TORCH_FRAME_LINES):
            pass
        elif skipping and lines and not line.strip(" \"'").strip():
            lines[-1] += line.strip()  # the closing quote of the message the stack was inside
            skipping = False
        else:
            lines.append(line)
            skipping = False
    return "\n".join(lines)


def json_path(parts: Sequence[str | int]) -> str:
    """The JSON path of a node from its keys and indices, the way errors print it (``""`` is the root).

    >>> json_path(["blocks", 3, "kernel_size"])
    'blocks[3].kernel_size'
    >>> json_path(["args", "a-b", 0])
    'args["a-b"][0]'
    >>> json_path([])
    ''
    """
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text
