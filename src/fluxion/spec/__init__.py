"""Specs: architecture files (JSON, jsonnet) to trees and back.

``load`` builds a ready, shape-checked Chain from a spec file (or ``loads`` from text or a dict);
``dump`` and ``save`` write a tree as a spec that loads back into the same tree. Classes come only
from the registry (``register``); ``schema()`` is the format's JSON Schema. A spec's ``init``
section is applied at load, and ``optimizer`` and ``loss`` build its other training sections.
Every problem with a spec is a :class:`SpecError` that names the file, the place in it and what
was expected. jsonnet is evaluated in a child process within :class:`Limits` (time, memory,
stack) unless ``limits=None``.

>>> from fluxion import spec
>>> layers = [{"type": "Linear", "out_features": 2}]
>>> model = spec.loads({"type": "Chain", "inputs": {"x": ["B", 4]}, "children": layers})
>>> spec.dump(model)["children"]
[{'type': 'Linear', 'in_features': 4, 'out_features': 2}]
>>> print(SpecError("expected an int", file="model.json", path="blocks[3].kernel_size"))
model.json: blocks[3].kernel_size: expected an int

Each name is imported from its module when first used, so that the package's torch-free modules
(``fluxion.spec.source``, ``limits``, ``sandbox``) import without torch: the command line reads
a YAML ``--ext-vars`` value with ``source.read_yaml`` and still answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fluxion.errors import SpecError

if TYPE_CHECKING:
    from fluxion.spec.api import InputShapes, load, loads, save, schema
    from fluxion.spec.dumping import dump
    from fluxion.spec.limits import Limits
    from fluxion.spec.registry import register, registered
    from fluxion.spec.training import loss, optimizer

_MODULES = {
    "InputShapes": "api",
    "load": "api",
    "loads": "api",
    "save": "api",
    "schema": "api",
    "dump": "dumping",
    "Limits": "limits",
    "register": "registry",
    "registered": "registry",
    "loss": "training",
    "optimizer": "training",
}
"""The module of each name the package gives."""

__all__ = [
    "InputShapes",
    "Limits",
    "SpecError",
    "dump",
    "load",
    "loads",
    "loss",
    "optimizer",
    "register",
    "registered",
    "save",
    "schema",
]


def __dir__() -> list[str]:
    """The package's names, those not imported yet included (for ``dir()``, ``help()`` and completion).

    >>> from fluxion import spec
    >>> "load" in dir(spec)
    True
    """
    return sorted({*globals(), *__all__})


if not TYPE_CHECKING:  # a type checker sees the names above, and a misspelt one is an error

    def __getattr__(name: str) -> Any:
        """A name the package gives (``load``, ``dump``...), imported from its module when first used;
        a submodule (``fluxion.spec.registry``) imported when first named.

        >>> from fluxion import spec
        >>> spec.no_such_name
        Traceback (most recent call last):
        AttributeError: module 'fluxion.spec' has no attribute 'no_such_name'
        """
        module = _MODULES.get(name)
        if module is not None:
            value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
            globals()[name] = value  # found directly from now on
            return value
        if name.isidentifier() and not name.startswith("_"):
            try:
                return importlib.import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as error:
                if error.name != f"{__name__}.{name}":  # the submodule exists, something it imports does not
                    raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
