"""``infer``: run the shape rules over a tree, recording every node's shapes by address.

Each node's rule is its class's ``output_shape`` method, else the rule registered for its class
(``register_rule``; torch's own classes come with theirs, ``fluxion.shapes.torch_rules``). A node
without either (a plain torch module of another kind, a user layer, a ``Lambda``) is evaluated on
``meta`` tensors when its input sizes are all numbers; with symbolic sizes the error says which
layer needs a rule. Nothing in the model is
changed.

>>> import fluxion.layers as fl
>>> from fluxion import shapes
>>> model = fl.Chain(fl.Conv2d(3, 16, 3, padding=1), fl.ReLU(), fl.Flatten(), fl.Linear(16 * 8 * 8, 10))
>>> shapes.infer(model, ("B", 3, 8, 8)).output
(B, 10)
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

import torch

from fluxion import dims
from fluxion.dims import Dim, DimLike, Shape, ShapeValue
from fluxion.errors import ShapeError
from fluxion.layers.lazy import lazy_addresses
from fluxion.shapes.assumptions import Assumptions
from fluxion.shapes.meta import run_on_meta
from fluxion.shapes.multiples import Multiples, unwind, unwind_value
from fluxion.shapes.report import (
    Call,
    Constraint,
    NodeShapes,
    ShapeReport,
    assumptions_text,
    format_value,
    node_addresses,
)
from fluxion.shapes.rules import rule_for
from fluxion.shapes.torch_rules import register_torch_rules
from fluxion.tree import node_class
from fluxion.tree.chain import ReturnSignal, too_deep_error
from fluxion.tree.graph import Graph

ShapeLike = Sequence[DimLike] | torch.Size
"""An input shape as given by a user: ``("B", 3, "H", "W")``, ``[2, 8]`` or a ``torch.Size``."""

register_torch_rules()

_TRAIL = 6  # how many steps before a failure its message shows
_RULE_FRAMES = 4  # Python frames inference takes per level of the tree (dims.run, run, _apply, the rule)


def infer(
    model: torch.nn.Module,
    *input_shapes: ShapeLike,
    assume: Mapping[str, int] | None = None,
    **named_input_shapes: ShapeLike,
) -> ShapeReport:
    """Every node's input and output shapes for inputs of ``input_shapes`` (symbols allowed).

    Keyword shapes go to a model whose rule takes named inputs. A shape mismatch raises a
    ``ShapeError`` naming the node's address, what it needs, what it got and the shapes that
    led there; the model is never modified. ``assume`` states divisibility of input sizes
    (``{"H": 32}``: H is a multiple of 32), under which the shapes read ``H/32`` rather than
    ``ceil(H/32)``; the report prints it.

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> model = fl.Chain(*[fl.Conv2d(3, 3, 3, stride=2, padding=1) for _ in range(5)])
    >>> shapes.infer(model, ("B", 3, "H", "W")).output
    (B, 3, ceil(H/32), ceil(W/32))
    >>> shapes.infer(model, ("B", 3, "H", "W"), assume={"H": 32}).output
    (B, 3, H/32, ceil(W/32))

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> model = fl.Chain(fl.Linear(200, 10))
    >>> shapes.infer(model, ("B", 300))
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Linear at 'Linear' got (B, 300): Linear expects last dim 200, got 300
      path: input (B, 300)
    """
    return infer_with_sources(model, *input_shapes, assume=assume, **named_input_shapes)[0]


Sources = dict[str, tuple[tuple[int, ...], ...]]
"""For each address, for each call of the node there: the positions, among the model's inputs
(``report[""].inputs``), of those that the node's inputs were computed from."""


def infer_with_sources(
    model: torch.nn.Module,
    *input_shapes: ShapeLike,
    assume: Mapping[str, int] | None = None,
    **named_input_shapes: ShapeLike,
) -> tuple[ShapeReport, Sources]:
    """``infer``'s report, and which of the model's inputs each node's inputs come from, call by call.

    Inference follows every value from the model's inputs through the rules: a node's output comes
    from the inputs its own inputs come from (a value a rule makes itself, from those of the node
    running it). A layer sized relative to the model's input reads these (``dims.model_inputs``).

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> from fluxion.shapes.infer import infer_with_sources
    >>> graph = fl.Graph(
    ...     {"fc": fl.Linear(4, 8), "cat": fl.Cat(dim=-1)}, edges=["x -> fc -> cat", "y -> cat"], inputs=("x", "y")
    ... )
    >>> report, sources = infer_with_sources(graph, ("B", 4), y=("B", 2))
    >>> sources["fc"], sources["cat"], report[""].inputs
    (((0,),), ((0, 1),), ((B, 4), (B, 2)))
    """
    inputs = tuple(_as_shape(shape, f"input {position}") for position, shape in enumerate(input_shapes))
    named = _in_input_order(
        model, {name: _as_shape(shape, f"input {name!r}") for name, shape in named_input_shapes.items()}
    )
    assumed = _checked_assumptions(assume, [*inputs, *named.values()])
    fixed: list[Constraint] = []  # constraints that fix a symbol to a number, from earlier rounds
    while True:
        inference = _Inference(model)
        with inference.active((*inputs, *named.values())):
            inference.trail.extend(("input", shape) for shape in inputs)
            try:
                inference.run_root(inputs, named)
            except ShapeError as error:
                raise _with_fixed_values(error, fixed) from None
            except RecursionError:
                too_deep = too_deep_error(model, "shape inference", _RULE_FRAMES)
                if too_deep is None:
                    raise
                raise too_deep from None
        found = [_unwound_constraint(constraint) for constraint in inference.constraints]
        values = _fixed_values(found)
        if not values:
            sources = {address: tuple(calls) for address, calls in inference.sources.items()}
            report = _read_under_constraints(model, inference.nodes, [*fixed, *found], assumed, tuple(named))
            return report, sources
        for name, value in values.items():
            if name in assumed and value % assumed[name]:
                raise ShapeError(
                    f"the model fixes {name} = {value}, which is not a multiple of {assumed[name]} "
                    f"(with what was assumed: {', '.join(assumptions_text(assumed))})"
                )
        # Some symbols must be numbers: infer again with the numbers, so that every rule checks them.
        fixed.extend(c for c in found if _fixed_value(c) is not None)
        inputs = tuple(cast(Shape, dims.substitute_shape(shape, values)) for shape in inputs)
        named = {key: cast(Shape, dims.substitute_shape(shape, values)) for key, shape in named.items()}


def _in_input_order(model: torch.nn.Module, named: dict[str, Shape]) -> dict[str, Shape]:
    """The shapes given by name, in the order of the graph's inputs when the model is a Graph."""
    if not isinstance(model, Graph):
        return named
    order = {name: position for position, name in enumerate(model.inputs)}
    return {name: named[name] for name in sorted(named, key=lambda name: order.get(name, len(order)))}


def _unwound(shapes: NodeShapes) -> NodeShapes:
    return NodeShapes(
        tuple(unwind_value(value) for value in shapes.inputs),
        unwind_value(shapes.output),
        tuple(
            Call(tuple(unwind_value(value) for value in call.inputs), unwind_value(call.output))
            for call in shapes.later
        ),
    )


def _unwound_constraint(constraint: Constraint) -> Constraint:
    first, second = unwind(constraint.first), unwind(constraint.second)
    if first is constraint.first and second is constraint.second:
        return constraint
    return Constraint(first, second, constraint.reason, constraint.address)


def _fixed_values(constraints: Sequence[Constraint]) -> dict[str, int]:
    """The symbols that constraints fix to a number (``3 = C``, ``H/2 = 4``), by name."""
    values: dict[str, int] = {}
    for constraint in constraints:
        found = _fixed_value(constraint)
        if found is not None:
            values.setdefault(*found)
    return values


def _fixed_value(constraint: Constraint) -> tuple[str, int] | None:
    """``(symbol name, value)`` when the constraint says that a multiple of one symbol is a number."""
    for side, number in ((constraint.first, constraint.second), (constraint.second, constraint.first)):
        if isinstance(number, int) and not isinstance(side, int):
            coefficient, symbol = side.as_coeff_Mul()
            value = number / coefficient
            if symbol.is_Symbol and value.is_Integer and value > 0:
                return str(symbol), int(value)
    return None


def _with_fixed_values(error: ShapeError, fixed: Sequence[Constraint]) -> ShapeError:
    """``error``, saying which sizes the model itself fixed when it came with numbers it was not given."""
    if not fixed:
        return error
    because = "; ".join(str(constraint) for constraint in fixed)
    return ShapeError(f"{error}\n  with sizes the model fixes: {because}", address=error.address, path=error.path)


def _checked_assumptions(assume: Mapping[str, int] | None, shapes: Sequence[Shape]) -> dict[str, int]:
    """``assume`` when each name is a symbol of the input shapes and each divisor an int >= 2."""
    if assume is None:
        return {}
    if not isinstance(cast(object, assume), Mapping):
        raise ShapeError(f"assume maps a size's name to its divisor ({{'H': 32}}), got {assume!r}")
    present = {
        str(symbol) for shape in shapes for size in shape if not isinstance(size, int) for symbol in size.free_symbols
    }
    for name, divisor in assume.items():
        if name not in present:
            known = ", ".join(sorted(present)) or "none (the shapes are numbers)"
            raise ShapeError(f"assume names {name!r}, which no input shape has; the input sizes named are: {known}")
        if type(divisor) is not int or divisor < 2:
            raise ShapeError(f"assume: {name}'s divisor must be an int of 2 or more, got {divisor!r}")
    return dict(assume)


def _read_under_constraints(
    model: torch.nn.Module,
    nodes: dict[str, NodeShapes],
    constraints: list[Constraint],
    assumed: Mapping[str, int],
    keywords: tuple[str, ...],
) -> ShapeReport:
    """The report with every shape read under what the constraints say of single symbols
    (``8*floor(H/8)`` is ``H`` when H must be divisible by 8) and what the caller assumed, less
    the constraints these imply."""
    nodes = {address: _unwound(shapes) for address, shapes in nodes.items()}
    stated = [(divisor * dims.floordiv(dims.dim(name), divisor), dims.dim(name)) for name, divisor in assumed.items()]
    pairs = [(constraint.first, constraint.second) for constraint in constraints]
    try:
        facts = Assumptions.of([*pairs, *stated])
    except ShapeError as error:
        raise ShapeError(f"{error} (with what was assumed: {', '.join(assumptions_text(assumed))})") from None
    if not facts:
        return ShapeReport(model, nodes, tuple(constraints), assumed, keywords)
    try:
        # what the model needs, said once; the caller's assumptions read the shapes, not the needs
        essential = Assumptions.of(pairs).essential(pairs)
    except ShapeError as error:
        raise ShapeError(f"{error}:\n" + "\n".join(f"  - {c}" for c in constraints)) from None
    kept: list[Constraint] = []
    for positions, first, second in essential:
        sources = [constraints[position] for position in positions]
        if len(sources) == 1 and (sources[0].first, sources[0].second) == (first, second):
            kept.append(sources[0])
        else:
            reasons = "; ".join(dict.fromkeys(source.reason for source in sources))
            kept.append(Constraint(first, second, f"together: {reasons}", sources[-1].address))
    read = {
        address: NodeShapes(
            tuple(facts.apply_to(value) for value in shapes.inputs),
            facts.apply_to(shapes.output),
            tuple(
                Call(tuple(facts.apply_to(value) for value in call.inputs), facts.apply_to(call.output))
                for call in shapes.later
            ),
        )
        for address, shapes in nodes.items()
    }
    return ShapeReport(model, read, tuple(kept), assumed, keywords)


class _Inference:
    """The state of one ``infer`` call: records, constraints, context values, the trail of shapes."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.addresses = node_addresses(model)
        self.nodes: dict[str, NodeShapes] = {}
        self.constraints: list[Constraint] = []
        self.trail: list[tuple[str, ShapeValue]] = []  # (who, output) in execution order; text only on error
        self.within: list[tuple[torch.nn.Module, str]] = []  # the nodes being run, outermost first
        self.child_names: dict[int, dict[int, str]] = {}  # id(parent) -> id(child) -> its name there
        self.context: dict[str, dict[str, Any]] = {}
        self.facts = Multiples()
        self.overflow: RecursionError | None = None  # raised because the tree is too deep, on its way up
        # which of the model's inputs (their positions) each value comes from, by id (the value kept
        # alive so that its id is not reused); for each node in `within`, where its inputs come from;
        # for each address, where each call's inputs came from
        self.origins: dict[int, tuple[ShapeValue, frozenset[int]]] = {}
        self.coming_from: list[frozenset[int]] = []
        self.sources: dict[str, list[tuple[int, ...]]] = {}
        self.every_input: frozenset[int] = frozenset()

    @contextmanager
    def active(self, inputs: tuple[ShapeValue, ...]) -> Generator[None]:
        """Every rule run in the block goes through this inference, and sees those of ``inputs`` (the
        model's) that the running node's inputs come from (``dims.model_inputs``), read as the
        divisibility found so far reads the rules' inputs."""
        self.every_input = frozenset(range(len(inputs)))
        for position, value in enumerate(inputs):  # one shape given twice comes from both places
            self.origins[id(value)] = (value, self._origin(value, frozenset()) | {position})

        def model_inputs() -> tuple[ShapeValue, ...]:
            positions = self.coming_from[-1] if self.coming_from else self.every_input
            chosen = tuple(inputs[position] for position in sorted(positions))
            return tuple(self.facts.read_value(value) for value in chosen) if self.facts else chosen

        with dims.running(self.run, self.constrain, self.context, inputs=model_inputs):
            yield

    def run_root(self, inputs: tuple[ShapeValue, ...], named: Mapping[str, ShapeValue]) -> None:
        self.run(self.model, inputs, named)

    def run(
        self, node: torch.nn.Module, inputs: tuple[ShapeValue, ...], named: Mapping[str, ShapeValue] | None = None
    ) -> ShapeValue:
        address = self.address_of(node)
        # a value the running rule made itself comes from what that rule's node came from
        made_here = self.coming_from[-1] if self.coming_from else self.every_input
        came = [self._origin(value, made_here) for value in (*inputs, *(named or {}).values())]
        coming = frozenset[int]().union(*came)
        if self.facts:  # rules see sizes as the divisibility so far makes them (H/2, not floor((H - 1)/2) + 1)
            inputs = tuple(self.facts.read_value(value) for value in inputs)
            named = {key: self.facts.read_value(value) for key, value in (named or {}).items()}
            for value, origin in zip((*inputs, *named.values()), came, strict=True):
                self._remember(value, origin)
        given = (*inputs, *(named or {}).values())
        earlier = self.nodes.get(address)
        if earlier is None:
            self.nodes[address] = NodeShapes(given, None)  # its place in tree order, filled in below
            self.sources[address] = [tuple(sorted(coming))]  # one entry for each call recorded, in order
        self.within.append((node, address))
        self.coming_from.append(coming)
        try:
            output = self._apply(node, inputs, named or {}, address)
        finally:
            self.within.pop()
            self.coming_from.pop()
        origin = self._origin(output, coming)  # an input passed on keeps its own
        self._remember(output, origin)
        if self.facts:
            output = self.facts.read_value(output)
            self._remember(output, origin)
        self.nodes[address] = NodeShapes(given, output) if earlier is None else earlier.called_again(given, output)
        if earlier is not None:
            self.sources[address].append(tuple(sorted(coming)))
        self.trail.append((_label(node, address), output))
        return output

    def _origin(self, value: ShapeValue, otherwise: frozenset[int]) -> frozenset[int]:
        """The model's inputs that ``value`` comes from, ``otherwise`` for a shape not seen yet."""
        if value is None:
            return frozenset()
        known = self.origins.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        if isinstance(value, Shape):
            return otherwise
        return frozenset[int]().union(*(self._origin(part, otherwise) for part in dims.parts(value)))

    def _remember(self, value: ShapeValue, origin: frozenset[int]) -> None:
        """Record where ``value``, and each part of it not seen yet, comes from (a value seen keeps its own)."""
        if value is None or id(value) in self.origins:
            return
        if isinstance(value, Shape) or dims.parts(value):  # never (): the empty tuple is one object
            self.origins[id(value)] = (value, origin)
        for part in dims.parts(value):
            self._remember(part, origin)

    def address_of(self, node: torch.nn.Module) -> str:
        """The node's address where it runs now: under the running node when it is a child of that one
        (so a module shared by two places is recorded at each), else its address in the tree."""
        if not self.within:
            return "" if node is self.model else self.addresses.get(id(node), "")
        parent, parent_address = self.within[-1]
        names = self.child_names.get(id(parent))
        if names is None:
            names = dict[int, str]()
            for name, child in parent.named_children():
                names.setdefault(id(child), name)
            self.child_names[id(parent)] = names
        name = names.get(id(node))
        if name is None:
            return self.addresses.get(id(node), "")
        return f"{parent_address}.{name}" if parent_address else name

    def constrain(self, first: Dim, second: Dim, reason: str) -> None:
        constraint = Constraint(first, second, reason, self.within[-1][1] if self.within else "")
        if constraint not in self.constraints:
            self.constraints.append(constraint)
            # a symbol fixed to a number is not read here: infer runs again with the number
            self.facts = self.facts.with_equation(first, second)

    def _apply(
        self, node: torch.nn.Module, inputs: tuple[ShapeValue, ...], named: Mapping[str, ShapeValue], address: str
    ) -> ShapeValue:
        rule = getattr(node, "output_shape", None)
        if rule is None:
            rule = rule_for(node)
        try:
            if rule is not None:
                return cast(ShapeValue, rule(*inputs, **named))
            return _on_meta(node, inputs, named)
        except ReturnSignal:
            raise  # a Return's value travels to its Chain's rule, as in forward
        except ShapeError as error:
            if error.address is not None:
                raise
            raise self._error(node, address, (*inputs, *named.values()), str(error)) from None
        except Exception as error:
            if isinstance(error, RecursionError) and (
                error is self.overflow or len(self.within) * _RULE_FRAMES >= sys.getrecursionlimit() // 2
            ):
                self.overflow = error
                raise  # the tree is too deep for Python's recursion limit: infer says so, from the top
            message = f"its shape rule failed: {type(error).__name__}: {error}"
            raise self._error(node, address, (*inputs, *named.values()), message) from error

    def _error(self, node: torch.nn.Module, address: str, inputs: tuple[ShapeValue, ...], message: str) -> ShapeError:
        got = ", ".join(format_value(value) for value in inputs) or "no input"
        path = [f"{who} {format_value(output)}" for who, output in self.trail[-_TRAIL:]]
        text = f"{_label(node, address)} got {got}: {message}\n  path: {' → '.join(path) or '(start)'}"
        return ShapeError(text, address=address, path=path)


def _label(node: torch.nn.Module, address: str) -> str:
    return f"{node_class(node).__name__} at {address!r}" if address else f"{node_class(node).__name__} (the root)"


def _as_shape(shape: object, what: str) -> Shape:
    if isinstance(shape, Shape):
        return shape
    if isinstance(shape, str) or not isinstance(shape, Sequence | torch.Size):
        raise ShapeError(f"{what}: a shape is a sequence of sizes and symbol names, got {shape!r}")
    return Shape(cast(Sequence[DimLike], shape))


# -- nodes without a rule: evaluated on meta tensors ------------------------------------------------


def _on_meta(node: torch.nn.Module, inputs: tuple[ShapeValue, ...], named: Mapping[str, ShapeValue]) -> ShapeValue:
    symbolic = [format_value(value) for value in (*inputs, *named.values()) if not _concrete(value)]
    if symbolic:
        raise ShapeError(
            f"{node_class(node).__name__} has no shape rule and its input {symbolic[0]} has symbolic sizes: "
            "give its class an output_shape method or register one (fluxion.shapes.register_rule, see docs/shapes.md), "
            "or infer with numbers"
        )
    lazy = lazy_addresses(node)
    if lazy:
        raise ShapeError(
            f"{node_class(node).__name__} has no shape rule, so the sizes left out inside it ({', '.join(lazy[:3])}) "
            "cannot be inferred: give its class an output_shape method or register one "
            "(fluxion.shapes.register_rule, see docs/shapes.md)"
        )
    return _shape_of(run_on_meta(node, inputs, named))


def _concrete(value: ShapeValue) -> bool:
    if value is None:
        return True
    if isinstance(value, Shape):
        return all(dims.known(size) for size in value)
    return all(_concrete(item) for item in dims.parts(value))


def _shape_of(output: object) -> ShapeValue:
    if isinstance(output, torch.Tensor):
        return Shape(output.shape)
    if isinstance(output, tuple | list):
        return tuple(_shape_of(item) for item in cast(Sequence[object], output))
    if isinstance(output, Mapping):
        return dims.ShapeMap((str(key), _shape_of(item)) for key, item in cast(Mapping[object, object], output).items())
    return None
