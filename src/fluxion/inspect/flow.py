"""The data flow of a tree as nodes, edges and clusters: what ``fluxion render`` lays out.

This module knows nothing of any drawing library (``fluxion.inspect.diagram`` turns a flow into
Graphviz's DOT text; anything else can walk ``Flow.nodes``, ``edges`` and ``clusters``). Each
leaf, and each Chain folded at the depth asked for, is a node; each Chain shown is a cluster
holding its children. Edges follow what ``forward`` does with the values, not the order of the
children:

- ``Chain``: its children in sequence (after a ``Return``, the rest receive nothing).
- ``Residual``: its children in sequence, then an add node that also takes the input (a ``skip`` edge).
- ``Sum``, ``Concatenate``, ``Matmul``: the input goes to every child, then a merge node (``+``, ``cat``, ``@``).
- ``Parallel``: the input goes to every child; their outputs go on together, as the tuple they form.
- ``Distribute``: the i-th input to the i-th child (a single node's output goes to every child:
  it is the tuple that holds them).
- ``Passthrough``: its children run on the input, and the input itself goes on.
- ``Graph``: its own edges (``graph.sources``), from ``graph.inputs`` to ``graph.outputs`` (a single
  node's output feeds every input, as the tuple that holds them). A node called again
  (``conv~right``) is one more box, ``address~right``, titled with the call and shaped as that call.
- ``SetContext`` → ``UseContext``: a ``context`` edge; a ``UseContext`` ignores its own input.
- ``MultiHeadAttention``: query, key and value to the projections, then attention (with the mask),
  then output; ``SelfAttention`` the same with its input as query, key and value;
  adapters run their children in sequence, a LoRA adds its low-rank branch to its target.

Any other Chain with a ``forward`` of its own is drawn as one node: what it does with its
children cannot be read without running it.

>>> import fluxion.layers as fl
>>> flow = data_flow(fl.Chain(fl.Residual(fl.Linear(4, 4)), head=fl.Linear(4, 2)))
>>> for edge in flow.edges:
...     print(edge.source, "->", edge.target, edge.kind)
/input/input -> Residual.Linear data
Residual.Linear -> Residual/add data
/input/input -> Residual/add skip
Residual/add -> head data
head -> /output data
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, cast

import torch

import fluxion.layers as fl
from fluxion.adapters import Adapter, Lora
from fluxion.errors import ChildNotFoundError, TreeError
from fluxion.inspect.labels import key_arguments, title
from fluxion.shapes import ShapeReport
from fluxion.shapes.report import format_value
from fluxion.tree.display import output_names

NodeKind = Literal["input", "output", "leaf", "folded", "merge"]
"""What a node stands for: a model input or output, a leaf, a folded Chain, or a merge of values."""

EdgeKind = Literal["data", "skip", "context"]
"""An edge carries a value (``data``), a Residual's input to its add (``skip``), or a context value."""

Value = tuple[str, ...]
"""The ids of the nodes whose outputs make a value: one for a tensor, several for a tuple."""

OUTPUT = "/output"
"""The id of the node the model's output goes to."""


def input_id(name: str) -> str:
    """The id of the node of the model input ``name``.

    >>> input_id("image")
    '/input/image'
    """
    return f"/input/{name}"


@dataclass(frozen=True)
class FlowNode:
    """One box of the diagram: its id (the tree address for leaves and folded Chains), what it is,
    its title (``name: Class``), details (key arguments), its output shape and its cluster.

    >>> FlowNode("head", "leaf", "head: Linear", "in_features=8, out_features=2", "(B, 2)").cluster is None
    True
    """

    id: str
    kind: NodeKind
    title: str
    details: str = ""
    shape: str | None = None
    cluster: str | None = None
    """The address of the innermost cluster holding the node; None outside every cluster."""


@dataclass(frozen=True)
class FlowEdge:
    """A value going from one node to another.

    >>> FlowEdge("a", "b").kind
    'data'
    """

    source: str
    target: str
    kind: EdgeKind = "data"


@dataclass(frozen=True)
class FlowCluster:
    """A Chain drawn as a box around its children: its address, title, details, output shape and
    the address of the cluster it is in (None for the outermost).

    >>> FlowCluster("layer1", "layer1: Chain").parent is None
    True
    """

    address: str
    title: str
    details: str = ""
    shape: str | None = None
    parent: str | None = None


@dataclass(frozen=True)
class Flow:
    """Nodes, edges and clusters, in the order the model runs them.

    >>> import fluxion.layers as fl
    >>> flow = data_flow(fl.Chain(fl.Linear(2, 2)))
    >>> [node.id for node in flow.nodes], [cluster.address for cluster in flow.clusters]
    (['/input/input', 'Linear', '/output'], [''])
    """

    nodes: tuple[FlowNode, ...]
    edges: tuple[FlowEdge, ...]
    clusters: tuple[FlowCluster, ...]

    def node(self, node_id: str) -> FlowNode:
        """The node with this id; a ``ChildNotFoundError`` (a ``KeyError``) naming the ids when there is none.

        >>> import fluxion.layers as fl
        >>> flow = data_flow(fl.Chain(fl.ReLU()))
        >>> flow.node("ReLU").kind
        'leaf'
        >>> flow.node("Tanh")
        Traceback (most recent call last):
        fluxion.errors.ChildNotFoundError: no node 'Tanh' in this data flow; its nodes are /input/input, ReLU, /output
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        ids = ", ".join(node.id for node in self.nodes)
        raise ChildNotFoundError(f"no node {node_id!r} in this data flow; its nodes are {ids}")

    def sources(self, node_id: str, kind: EdgeKind | None = None) -> list[str]:
        """The nodes with an edge into ``node_id`` (of ``kind`` only, when given), in order.

        >>> import fluxion.layers as fl
        >>> data_flow(fl.Chain(fl.Sum(fl.ReLU(), fl.Tanh()))).sources("Sum/add")
        ['Sum.ReLU', 'Sum.Tanh']
        """
        return [edge.source for edge in self.edges if edge.target == node_id and kind in (None, edge.kind)]


def data_flow(
    model: torch.nn.Module,
    *,
    depth: int | None = None,
    report: ShapeReport | None = None,
    inputs: Mapping[str, Sequence[int | str]] | Sequence[str] | None = None,
) -> Flow:
    """The data flow of ``model``: Chains more than ``depth`` levels below the root are folded.

    ``report`` (from ``fluxion.shapes.infer``) gives each node its output shape; ``inputs`` names
    the model's inputs (with their shapes, as a spec gives them); by default a Graph's own input
    names, else one input called ``input``.

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> model = fl.Chain(fl.Chain(fl.Linear(4, 8), fl.ReLU()), fl.Linear(8, 2))
    >>> flow = data_flow(model, depth=1, report=shapes.infer(model, ("B", 4)), inputs={"x": ("B", 4)})
    >>> for node in flow.nodes:
    ...     print(node.id, node.kind, node.shape)
    /input/x input (B, 4)
    Chain folded (B, 8)
    Linear leaf (B, 2)
    /output output (B, 2)
    >>> data_flow(model, depth=-1)
    Traceback (most recent call last):
    fluxion.errors.TreeError: data_flow: depth is a number of levels, 0 or more (or None for all), got -1
    """
    given = cast(object, model)
    if not isinstance(given, torch.nn.Module):
        raise TreeError(f"data_flow: expected a torch module, got {type(given).__name__}")
    levels = cast(object, depth)
    if levels is not None and (not isinstance(levels, int) or isinstance(levels, bool) or levels < 0):
        raise TreeError(f"data_flow: depth is a number of levels, 0 or more (or None for all), got {levels!r}")
    builder = _Builder(depth, report)
    ports: list[str] = []
    for position, (name, shape) in enumerate(_named_inputs(model, inputs, report)):
        ports.append(input_id(name))
        given = _root_input_shape(report, position) if shape is None else f"({', '.join(map(str, shape))})"
        builder.add(FlowNode(input_id(name), "input", name, shape=given))
    output = builder.visit(model, "", "", tuple(ports), 0)
    builder.add(FlowNode(OUTPUT, "output", ", ".join(output_names(model)) or "output", shape=builder.shape("")))
    builder.edge(output, OUTPUT)
    return Flow(tuple(builder.nodes), tuple(builder.edges), tuple(builder.clusters))


def _named_inputs(
    model: torch.nn.Module,
    inputs: Mapping[str, Sequence[int | str]] | Sequence[str] | None,
    report: ShapeReport | None,
) -> list[tuple[str, Sequence[int | str] | None]]:
    if isinstance(inputs, Mapping):
        return list(inputs.items())
    if inputs:
        return [(name, None) for name in inputs]
    if isinstance(model, fl.Graph):
        return [(name, None) for name in model.inputs]
    count = len(report[""].inputs) if report is not None and "" in report else 1
    return [("input" if count == 1 else f"input{position}", None) for position in range(count)]


def _root_input_shape(report: ShapeReport | None, position: int) -> str | None:
    if report is None or "" not in report or position >= len(report[""].inputs):
        return None
    return format_value(report[""].inputs[position])


# -- building ----------------------------------------------------------------------------------


@dataclass
class _Builder:
    depth: int | None
    report: ShapeReport | None
    nodes: list[FlowNode] = field(default_factory=lambda: [])
    edges: list[FlowEdge] = field(default_factory=lambda: [])
    clusters: list[FlowCluster] = field(default_factory=lambda: [])
    setters: dict[tuple[str, str], str] = field(default_factory=lambda: {})
    """The node that last set each context value, by (context, key)."""
    call_of: dict[str, int] = field(default_factory=lambda: {})
    """For a node a Graph calls several times, by address: which of its calls the box being drawn is."""
    cluster: str | None = None

    def visit(self, module: torch.nn.Module, address: str, name: str, inputs: Value, level: int) -> Value:
        rule = _rule_for(module) if isinstance(module, fl.Chain) else None
        if rule is None or (self.depth is not None and level >= self.depth):
            return self.single(module, address, name, inputs, opaque=isinstance(module, fl.Chain) and rule is None)
        chain = cast(fl.Chain, module)
        details = "" if isinstance(chain, fl.Graph) else key_arguments(chain)
        self.clusters.append(FlowCluster(address, title(name, chain), details, self.shape(address), self.cluster))
        outer, self.cluster = self.cluster, address
        try:
            return rule(_Scope(self, chain, address, level), inputs)
        finally:
            self.cluster = outer

    def single(self, module: torch.nn.Module, address: str, name: str, inputs: Value, *, opaque: bool) -> Value:
        """A leaf, or a Chain folded into one node (with the context edges of what it holds)."""
        node_id = address or "/root"
        folded = isinstance(module, fl.Chain)
        if folded:
            count = len(list(module.children()))
            details = f"{count} {'child' if count == 1 else 'children'}" + (", own forward" if opaque else "")
        else:
            details = key_arguments(module)
        self.add(FlowNode(node_id, "folded" if folded else "leaf", title(name, module), details, self.shape(address)))
        if not isinstance(module, fl.UseContext):  # it ignores its input: its value comes from the context
            self.edge(inputs, node_id)
        linked: set[str] = set()  # a folded node reading one setter's values many times gets one edge
        for inner in module.modules() if folded else (module,):
            if isinstance(inner, fl.UseContext):
                setter = self.setters.get((inner.context, inner.key))
                if setter is not None and setter != node_id and setter not in linked:
                    linked.add(setter)
                    self.edges.append(FlowEdge(setter, node_id, "context"))
            elif isinstance(inner, fl.SetContext):
                self.setters[inner.context, inner.key] = node_id
        return (node_id,)

    def add(self, node: FlowNode) -> None:
        self.nodes.append(FlowNode(node.id, node.kind, node.title, node.details, node.shape, self.cluster))

    def edge(self, sources: Value, target: str, kind: EdgeKind = "data") -> None:
        self.edges.extend(FlowEdge(source, target, kind) for source in sources)

    def shape(self, address: str) -> str | None:
        if self.report is None or address not in self.report:
            return None
        calls = self.report[address].calls
        if address in self.call_of:
            calls = calls[self.call_of[address] : self.call_of[address] + 1]
        return " then ".join(dict.fromkeys(format_value(call.output) for call in calls))


@dataclass(frozen=True)
class _Scope:
    """What a rule works with: the Chain being expanded, and ways to visit its children."""

    builder: _Builder
    chain: fl.Chain
    address: str
    level: int

    def children(self) -> list[tuple[str, torch.nn.Module]]:
        return list(self.chain.named_children())

    def run(self, name: str, child: torch.nn.Module, inputs: Value) -> Value:
        address = f"{self.address}.{name}" if self.address else name
        return self.builder.visit(child, address, name, inputs, self.level + 1)

    def sequence(self, inputs: Value, children: Iterable[tuple[str, torch.nn.Module]] | None = None) -> Value:
        value: Value = inputs
        returned: Value | None = None
        for name, child in self.children() if children is None else children:
            output = self.run(name, child, value if returned is None else ())
            if returned is None:
                value = output
                if isinstance(child, fl.Return):
                    returned = output
        return value if returned is None else returned

    def merge(self, sources: Iterable[Value], what: str, symbol: str, details: str = "") -> Value:
        node_id = f"{self.address}/{what}"
        self.builder.add(FlowNode(node_id, "merge", symbol, details, self.builder.shape(self.address)))
        for value in sources:
            self.builder.edge(value, node_id)
        return (node_id,)


Rule = Callable[[_Scope, Value], Value]


def _sequence(scope: _Scope, inputs: Value) -> Value:
    return scope.sequence(inputs)


def _residual(scope: _Scope, inputs: Value) -> Value:
    branch = scope.sequence(inputs)
    add = scope.merge([branch], "add", "+")
    scope.builder.edge(inputs[:1], add[0], "skip")
    return add


def _fan_out(scope: _Scope, inputs: Value) -> list[Value]:
    return [scope.run(name, child, inputs) for name, child in scope.children()]


def _sum(scope: _Scope, inputs: Value) -> Value:
    return scope.merge(_fan_out(scope, inputs), "add", "+")


def _concatenate(scope: _Scope, inputs: Value) -> Value:
    return scope.merge(_fan_out(scope, inputs), "cat", "cat", key_arguments(scope.chain))


def _matmul(scope: _Scope, inputs: Value) -> Value:
    return scope.merge(_fan_out(scope, inputs), "matmul", "@")


def _parallel(scope: _Scope, inputs: Value) -> Value:
    return tuple(port for output in _fan_out(scope, inputs) for port in output)


def _distribute(scope: _Scope, inputs: Value) -> Value:
    outputs: list[str] = []
    for position, (name, child) in enumerate(scope.children()):
        given = inputs if len(inputs) == 1 else inputs[position : position + 1]
        outputs.extend(scope.run(name, child, given))
    return tuple(outputs)


def _passthrough(scope: _Scope, inputs: Value) -> Value:
    scope.sequence(inputs)
    return inputs


def _graph(scope: _Scope, inputs: Value) -> Value:
    graph = cast(fl.Graph, scope.chain)
    if len(graph.inputs) == 1 or len(inputs) == 1:  # one value, or one node's tuple holding them all
        values: dict[str, Value] = dict.fromkeys(graph.inputs, inputs)
    else:
        values = {name: inputs[position : position + 1] for position, name in enumerate(graph.inputs)}
    children = dict(scope.children())
    builder = scope.builder
    for call in _graph_order(graph, [call for name in children for call in graph.calls(name)]):
        given = tuple(port for source in graph.sources(call) for port in values.get(source, ()))
        name = call.partition("~")[0]
        calls = graph.calls(name)
        if len(calls) == 1:
            values[call] = scope.run(name, children[name], given)
            continue
        address = f"{scope.address}.{name}" if scope.address else name
        builder.call_of[address] = calls.index(call)
        try:
            if call == name:
                values[call] = scope.run(name, children[name], given)
            else:  # the same module again: one box for the call, its children drawn at its first
                node_id = address + call[len(name) :]
                module = children[name]
                kind: NodeKind = "folded" if isinstance(module, fl.Chain) else "leaf"
                builder.add(FlowNode(node_id, kind, title(call, module), key_arguments(module), builder.shape(address)))
                builder.edge(given, node_id)
                values[call] = (node_id,)
        finally:
            del builder.call_of[address]
    return tuple(port for name in graph.outputs for port in values.get(name, ()))


def _graph_order(graph: fl.Graph, names: list[str]) -> list[str]:
    """The calls in an order where each comes after its sources, child order wherever that is free."""
    done, order = set(graph.inputs), list[str]()
    pending = list(names)
    while pending:
        ready = next((name for name in pending if all(source in done for source in graph.sources(name))), pending[0])
        order.append(ready)
        done.add(ready)
        pending.remove(ready)
    return order


def _attention(scope: _Scope, inputs: Value) -> Value:
    query = inputs[:1]
    key = inputs[1:2] or query
    value = inputs[2:3] or key
    mask = inputs[3:]
    output: Value = (*query, *key, *value)
    for name, child in scope.children():
        output = scope.run(name, child, (*output, *mask) if name == "attention" else output)
    return output


def _self_attention(scope: _Scope, inputs: Value) -> Value:
    sequence, mask = inputs[:1], inputs[1:]
    return _attention(scope, (*sequence, *sequence, *sequence, *mask))


def _lora(scope: _Scope, inputs: Value) -> Value:
    adapter = cast(Lora, scope.chain)
    children = dict(scope.children())
    base = inputs
    if adapter.injected:
        name = adapter.name_of(adapter.target)
        base = scope.run(name, children[name], inputs)
    branch = scope.sequence(inputs, [(name, children[name]) for name in ("dropout", "down", "up") if name in children])
    return scope.merge([base, branch], "add", "+")


_RULES: dict[type[torch.nn.Module], Rule] = {
    fl.Chain: _sequence,
    fl.Residual: _residual,
    fl.Sum: _sum,
    fl.Concatenate: _concatenate,
    fl.Matmul: _matmul,
    fl.Parallel: _parallel,
    fl.Distribute: _distribute,
    fl.Passthrough: _passthrough,
    fl.Graph: _graph,
    fl.MultiHeadAttention: _attention,
    fl.SelfAttention: _self_attention,
    Adapter: _sequence,
    Lora: _lora,
}


def _rule_for(chain: torch.nn.Module) -> Rule | None:
    """The rule of the nearest class that has one, unless a class before it has its own ``forward``."""
    for cls in type(chain).__mro__:
        rule = _RULES.get(cls)
        if rule is not None:
            return rule
        if "forward" in vars(cls):
            return None
    return None
