"""Specs: architecture files (JSON, jsonnet) to trees and back.

Every problem with a spec is a :class:`SpecError` that names the file, the place in it and what
was expected.

>>> from fluxion.spec import SpecError
>>> print(SpecError("expected an int", file="model.json", path="blocks[3].kernel_size"))
model.json: blocks[3].kernel_size: expected an int
"""

from fluxion.spec.errors import SpecError

__all__ = ["SpecError"]
