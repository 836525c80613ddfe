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
"""

from fluxion.errors import SpecError
from fluxion.spec.api import InputShapes, load, loads, save, schema
from fluxion.spec.dump import dump
from fluxion.spec.limits import Limits
from fluxion.spec.registry import register, registered
from fluxion.spec.training import loss, optimizer

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
