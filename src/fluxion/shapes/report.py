"""``ShapeReport``: every node's input and output shapes, by address, and the model's constraints.

>>> import fluxion.layers as fl
>>> from fluxion import shapes
>>> report = shapes.infer(fl.Chain(fl.Linear(8, 4), fl.ReLU()), ("B", 8))
>>> report["Linear"].output, list(report)
((B, 4), ['', 'Linear', 'ReLU'])
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import cast

import torch

from fluxion.dims import Dim, Shape, ShapeMap, ShapeValue, show
from fluxion.layers import draw_tree
from fluxion.shapes.multiples import divisibility, symbol_divisor


@dataclass(frozen=True)
class Call:
    """One call of a node: its input shapes (one per argument) and its output.

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> shapes.infer(fl.Chain(fl.Linear(4, 2)), ("B", 4))["Linear"].calls
    (Call(inputs=((B, 4),), output=(B, 2)),)
    """

    inputs: tuple[ShapeValue, ...]
    output: ShapeValue


@dataclass(frozen=True)
class NodeShapes:
    """What one node received and gave: its input shapes (one per argument) and its output.

    A node that runs more than once at its address (a block its Chain calls twice) keeps every
    call in ``calls``; ``inputs`` and ``output`` are those of the first.

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> shapes.infer(fl.Chain(fl.Flatten()), ("B", 3, 4))["Flatten"]
    NodeShapes(inputs=((B, 3, 4),), output=(B, 12))
    """

    inputs: tuple[ShapeValue, ...]
    output: ShapeValue
    later: tuple[Call, ...] = field(default=(), repr=False)

    @property
    def calls(self) -> tuple[Call, ...]:
        """Every call of the node at this address, in order.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> len(shapes.infer(fl.Chain(fl.ReLU()), ("B", 4))["ReLU"].calls)
        1
        """
        return (Call(self.inputs, self.output), *self.later)

    def called_again(self, inputs: tuple[ShapeValue, ...], output: ShapeValue) -> NodeShapes:
        """These shapes with one more call recorded.

        >>> from fluxion import dims
        >>> once = NodeShapes((dims.Shape([2]),), dims.Shape([2]))
        >>> len(once.called_again((dims.Shape([3]),), dims.Shape([3])).calls)
        2
        """
        return NodeShapes(self.inputs, self.output, (*self.later, Call(inputs, output)))


@dataclass(frozen=True)
class Constraint:
    """A condition the model needs of its input sizes, such as ``2*floor(H/2) = H`` (H even).

    >>> from fluxion import dims
    >>> h = dims.dim("H")
    >>> str(Constraint(2 * dims.floordiv(h, 2), h, "Concatenate needs equal sizes", "up.Concatenate"))
    "H must be divisible by 2 (Concatenate needs equal sizes, at 'up.Concatenate')"
    """

    first: Dim
    second: Dim
    reason: str
    address: str

    def __str__(self) -> str:
        return f"{describe_equation(self.first, self.second)} ({self.reason}, at {self.address!r})"


class ShapeReport(Mapping[str, NodeShapes]):
    """The shapes of every node of a model, keyed by address; printing it draws the tree with them.

    ``output`` is the model's output shape and ``constraints`` what the model needs of its input
    sizes. ``draw(depth=...)`` folds Chains deeper than ``depth``.

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> print(shapes.infer(fl.Chain(fl.Conv2d(3, 8, 2, stride=2), fl.ReLU()), ("B", 3, "H", "W")))
    (CHAIN) Chain()  → (B, 8, floor(H/2), floor(W/2))
        ├── Conv2d(3, 8, kernel_size=(2, 2), stride=(2, 2))  → (B, 8, floor(H/2), floor(W/2))
        └── ReLU()  → (B, 8, floor(H/2), floor(W/2))
    """

    def __init__(
        self,
        model: torch.nn.Module,
        nodes: dict[str, NodeShapes],
        constraints: tuple[Constraint, ...],
        assumed: Mapping[str, int] | None = None,
        keywords: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self._nodes = nodes
        self.constraints = constraints
        self.assumed = dict(assumed or {})
        """What the caller stated of the input sizes (``{"H": 32}``: H divisible by 32), to read the shapes."""
        self.keywords = keywords
        """The names of the model's inputs given by name, in order: the last of ``report[""].inputs``."""

    def divisors(self) -> dict[str, int]:
        """Each symbol that must divide by a number, and that number: what was assumed, combined
        with what the constraints say of single symbols (``H/2`` divisible by 2: H by 4).

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Reshape(-1, 3)), ("B", "T"), assume={"T": 2}).divisors()
        {'T': 6}
        """
        found = dict(self.assumed)
        for constraint in self.constraints:
            pair = divisibility(constraint.first, constraint.second)
            single = None if pair is None else symbol_divisor(*pair)
            if single is not None:
                name = str(single[0])
                found[name] = math.lcm(found.get(name, 1), single[1])
        return found

    @property
    def output(self) -> ShapeValue:
        """The model's output shape.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Linear(3, 5)), (2, 3)).output
        (2, 5)
        """
        return self._nodes[""].output

    def __getitem__(self, address: str) -> NodeShapes:
        return self._nodes[address]

    def __iter__(self) -> Iterator[str]:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def draw(self, depth: int | None = None) -> str:
        """The model's tree with each node's output shape; Chains deeper than ``depth`` folded.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> report = shapes.infer(fl.Chain(fl.Chain(fl.Linear(2, 4), fl.ReLU())), ("N", 2))
        >>> print(report.draw(depth=1))
        (CHAIN) Chain()  → (N, 4)
            └── (CHAIN) Chain() … 2 children  → (N, 4)
        """
        addresses = node_addresses(self.model)

        def annotate(module: torch.nn.Module) -> str | None:
            shapes = self._nodes.get(addresses.get(id(module), "\0"))
            if shapes is None:
                return None
            outputs = list(dict.fromkeys(format_value(call.output) for call in shapes.calls))
            times = f"  (called {len(shapes.calls)} times)" if len(shapes.calls) > 1 else ""
            return f"→ {' then '.join(outputs)}{times}"

        lines = [draw_tree(self.model, max_depth=depth, annotate=annotate)]
        lines.extend(f"assuming: {assumption}" for assumption in assumptions_text(self.assumed))
        lines.extend(f"constraint: {constraint}" for constraint in self.constraints)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.draw()

    def __repr__(self) -> str:
        return f"ShapeReport({len(self)} nodes, output {format_value(self.output)})"


def assumptions_text(assumed: Mapping[str, int]) -> list[str]:
    """Each stated divisibility as a line: ``H % 32 == 0``.

    >>> assumptions_text({"H": 32, "W": 32})
    ['H % 32 == 0', 'W % 32 == 0']
    """
    return [f"{name} % {divisor} == 0" for name, divisor in assumed.items()]


def format_value(value: ShapeValue) -> str:
    """A shape, a tuple of shapes, values by name (a ``ShapeMap``), or None, as text.

    >>> from fluxion import dims
    >>> format_value((dims.Shape(["B", 2]), dims.Shape(["B", 3])))
    '((B, 2), (B, 3))'
    >>> format_value(dims.ShapeMap({"mean": dims.Shape(["B", 4]), "std": None}))
    '{mean: (B, 4), std: None}'
    """
    if value is None:
        return "None"
    if isinstance(value, ShapeMap):
        return "{" + ", ".join(f"{key}: {format_value(item)}" for key, item in value.items()) + "}"
    if not isinstance(value, Shape):
        return f"({', '.join(format_value(item) for item in value)})"
    return repr(value)


def describe_equation(first: Dim, second: Dim) -> str:
    """A constraint in words: ``H must be divisible by 32`` when it has that form, else the equation.

    >>> from fluxion import dims
    >>> w = dims.dim("W")
    >>> describe_equation(32 * dims.floordiv(w, 32), w), describe_equation(w + 1, 2 * w)
    ('W must be divisible by 32', 'W + 1 = 2*W')
    >>> h = dims.dim("H")
    >>> describe_equation(2 * dims.floordiv(h * w, 2), h * w)
    'H*W must be divisible by 2'
    """
    found = divisibility(first, second)
    if found is not None:
        return f"{show(found[0])} must be divisible by {found[1]}"
    return f"{show(first)} = {show(second)}"


def node_addresses(model: torch.nn.Module) -> dict[int, str]:
    """``id(node) -> address`` for every node of the tree.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.ReLU())
    >>> node_addresses(model)[id(model.ReLU)]
    'ReLU'
    """
    named = cast("Iterator[tuple[str, torch.nn.Module]]", model.named_modules(remove_duplicate=False))
    return {id(module): address for address, module in named}
