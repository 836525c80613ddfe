"""Other tools' files, recognised and translated: the one place ``load``, the builder and the CLI ask.

A dialect says whether a spec's value is written in its tool's format (``detects``) and translates
it to fluxion's own spec format (``translation``, with where each node came from). narchi's
architectures and TorchArc's YAML (format 2) and dict arcs (format 1) are the dialects; a value neither recognises is
fluxion's own format.

>>> found = translation({"modules": {"act": {"ReLU": None}}, "graph": {"input": "x", "modules": {"act": ["x"]},
...                                                                  "output": "act"}})
>>> found.spec["type"], dialect_of({"type": "Chain"})
('Graph', None)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fluxion.spec import narchi, torcharc
from fluxion.spec.translation import Translation


@dataclass(frozen=True)
class Dialect:
    """Another tool's format: its name, how to recognise a file's value, how to translate it.

    >>> DIALECTS[0].name, DIALECTS[0].detects({"type": "Linear"})
    ('narchi', False)
    """

    name: str
    detects: Callable[[Any], bool]
    translate: Callable[[Any, str | None], Translation]


DIALECTS = (
    Dialect("narchi", narchi.is_narchi, lambda data, file: narchi.translation(data, file=file)),
    Dialect("TorchArc 1", torcharc.is_arc, lambda data, file: torcharc.arc_translation(data, file=file)),
    Dialect("TorchArc", torcharc.is_torcharc, lambda data, file: torcharc.translation(data, file=file)),
)
"""Every dialect, asked in order: TorchArc's ``modules``/``graph`` keys are no narchi keys, and
``dag_in_shape`` or ``type`` + ``layers`` (TorchArc 1's arcs) are neither."""


def dialect_of(data: Any) -> Dialect | None:
    """The dialect a spec's value is written in; None for fluxion's own format.

    >>> dialect_of({"_class": "Linear", "output_feats": 2}).name
    'narchi'
    """
    return next((dialect for dialect in DIALECTS if dialect.detects(data)), None)


def translation(data: Any, *, file: str | None = None) -> Translation | None:
    """The translation of a value written in another tool's format; None for fluxion's own format.

    >>> translation({"type": "ReLU"}) is None
    True
    """
    dialect = dialect_of(data)
    return None if dialect is None else dialect.translate(data, file)
