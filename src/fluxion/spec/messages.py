"""How spec errors name places and keep torch's noise out (``SpecError`` itself is in ``fluxion.errors``).

A spec error says where (file, line and column when known, then the JSON path of the node) and
what was expected, in the order a person reads it:

>>> from fluxion.errors import SpecError
>>> error = SpecError('expected an int, got "3"', file="model.jsonnet", line=12, column=5)
>>> error.path = json_path(["blocks", 3, "kernel_size"])
>>> print(error)
model.jsonnet:12:5: blocks[3].kernel_size: expected an int, got "3"
"""

from __future__ import annotations

import json
from collections.abc import Sequence

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
