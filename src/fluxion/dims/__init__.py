"""Symbolic dimensions: the small vocabulary that shape rules are written in.

A dimension is an ``int`` or a sympy expression in named integer symbols (``B``, ``H``...). Layers
describe their shape rule with these helpers (a method ``output_shape`` on the layer class), and
``fluxion.shapes`` runs the rules over a tree. This package sits below both (``layers`` may not
import ``shapes``): ``symbols`` holds dimensions and shapes, ``rules`` the helpers a rule is
written with, ``engine`` the hooks an inference sets while it runs.

>>> from fluxion import dims
>>> height = dims.dim("H")
>>> dims.show(dims.conv_output(height, kernel=3, stride=2, padding=1))
'ceil(H/2)'
"""

from fluxion.dims.engine import ModelInputs, Recorder, Runner, constrain, context_values, model_inputs, run, running
from fluxion.dims.rules import broadcast, concatenate, require_equal, several, single
from fluxion.dims.symbols import (
    Dim,
    DimLike,
    Shape,
    ShapeMap,
    ShapeValue,
    conv_output,
    dim,
    equal,
    floordiv,
    known,
    map_shapes,
    nonnegative,
    normal,
    parts,
    product,
    show,
    substitute,
    substitute_shape,
    sympy_module,
    whole,
)
from fluxion.errors import ShapeError

__all__ = [
    "Dim",
    "DimLike",
    "ModelInputs",
    "Recorder",
    "Runner",
    "Shape",
    "ShapeError",
    "ShapeMap",
    "ShapeValue",
    "broadcast",
    "concatenate",
    "constrain",
    "context_values",
    "conv_output",
    "dim",
    "equal",
    "floordiv",
    "known",
    "map_shapes",
    "model_inputs",
    "nonnegative",
    "normal",
    "parts",
    "product",
    "require_equal",
    "run",
    "running",
    "several",
    "show",
    "single",
    "substitute",
    "substitute_shape",
    "sympy_module",
    "whole",
]
