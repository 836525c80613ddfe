"""fluxion: PyTorch models as trees you can define, inspect, edit and load.

>>> import fluxion.layers as fl
>>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU(), fl.Linear(8, 2))
>>> model.Linear_2.address
'Linear_2'

``import fluxion`` itself imports neither torch nor sympy, so that ``fluxion --help`` answers at
once: a part is imported the first time it is used (``fluxion.layers``, ``fluxion.spec``...).

>>> import fluxion
>>> fluxion.layers.Chain is fl.Chain
True
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from fluxion.errors import FluxionError

if TYPE_CHECKING:
    from fluxion import layers

__all__ = ["FluxionError", "layers"]
__version__ = "0.1.0"


def __getattr__(name: str) -> ModuleType:
    """A part of fluxion not imported yet (``fluxion.layers``), imported now.

    >>> import fluxion
    >>> fluxion.no_such_part
    Traceback (most recent call last):
    AttributeError: module 'fluxion' has no attribute 'no_such_part'
    """
    if name.isidentifier() and not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":  # the part exists, something it imports does not
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
