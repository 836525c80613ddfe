"""A Griffe extension that makes fluxion's docstrings read well as Markdown on the API reference pages.

fluxion's docstrings are written for ``help()`` and doctest: examples are bare ``>>>`` sessions and
names are marked in reStructuredText roles (``:class:`Chain```). Markdown would read a session's
output (``['ReLU', 'Tanh']``) as reference links and its ``>>>`` as nested quotes, so each session
becomes a fenced ``pycon`` block, and each role plain code. The docstrings themselves stay as they
are: the doctests run them.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj):`~?([^`]+)`")
"""A reStructuredText cross-reference role: ``:class:`Chain```, ``:meth:`~list.insert```."""
FENCE = re.compile(r"^\s*(```|~~~)")
DIRECTIVE = re.compile(r"\s*# doctest:.*$")
"""A doctest directive (``# doctest: +SKIP``): for the test runner, not the reader."""


def markdown(docstring: str) -> str:
    """The docstring with each doctest session fenced as ``pycon`` and each role written as code.

    >>> markdown("Adds :class:`Chain` nodes.\\n\\n>>> 1 + 1\\n2\\n\\nMore.").splitlines()
    ['Adds `Chain` nodes.', '', '```pycon', '>>> 1 + 1', '2', '```', '', 'More.']
    """
    lines: list[str] = []
    session: str | None = None  # the indent of the session being fenced
    in_fence = False
    for line in docstring.splitlines():
        stripped = line.strip()
        if session is not None and not stripped:
            lines.append(session + "```")
            session = None
        if session is None and not in_fence and stripped.startswith(">>>"):
            session = line[: len(line) - len(line.lstrip())]
            lines.append(session + "```pycon")
        if session is None and FENCE.match(line):
            in_fence = not in_fence
        if session is not None:
            lines.append(DIRECTIVE.sub("", line))
        else:
            lines.append(line if in_fence else ROLE.sub(r"`\1`", line))
    if session is not None:
        lines.append(session + "```")
    return "\n".join(lines)


class DoctestFences(griffe.Extension):
    """Rewrite every docstring with ``markdown`` as Griffe reads it (before mkdocstrings parses it)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
