"""Shapes: every tensor shape of a model before running it, with sizes left symbolic.

Each layer class has a shape rule (its ``output_shape`` method, written with ``fluxion.dims``);
``infer`` runs the rules over a tree and returns a ``ShapeReport``. A class that cannot have the
method (torch's own, another library's) gets a rule with ``register_rule``; torch's classes that
fluxion has no layer of come with theirs.

>>> import fluxion.layers as fl
>>> from fluxion import shapes
>>> model = fl.Chain(fl.Embedding(1000, 64), fl.Linear(64, 256), fl.GeLU(), fl.Linear(256, 64))
>>> shapes.infer(model, ("B", "T")).output
(B, T, 64)
"""

from fluxion.dims import Shape
from fluxion.errors import ShapeError
from fluxion.shapes.infer import ShapeLike, infer
from fluxion.shapes.materialize import materialize
from fluxion.shapes.report import Constraint, NodeShapes, ShapeReport
from fluxion.shapes.rules import Rule, register_rule, registered_rule, rule_for
from fluxion.shapes.trace import trace

__all__ = [
    "Constraint",
    "NodeShapes",
    "Rule",
    "Shape",
    "ShapeError",
    "ShapeLike",
    "ShapeReport",
    "infer",
    "materialize",
    "register_rule",
    "registered_rule",
    "rule_for",
    "trace",
]
