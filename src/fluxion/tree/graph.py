"""Graph: a Chain whose children are named nodes wired by edges, for data flows a sequence cannot say.

Edges are paths of names, ``"a -> b -> c"``; names are the graph's inputs and its node ids. The
nodes are the graph's children under their ids, so a node's address is ``graph_address.node_id``.

>>> import torch
>>> import fluxion.layers as fl
>>> block = fl.Graph(
...     {"fc": fl.Linear(4, 4), "act": fl.ReLU(), "add": fl.Add()},
...     edges=["input -> fc -> act -> add", "input -> add"],
... )
>>> block(torch.ones(2, 4)).shape
torch.Size([2, 4])
>>> block.act.address, block.sources("add")
('act', ('act', 'input'))
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import count, pairwise
from typing import Any, NamedTuple, Self, cast

import torch

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import ChildIndexError, ChildNotFoundError, FluxionError, GraphError, ShapeError
from fluxion.tree.chain import Chain, ReturnSignal
from fluxion.tree.context import SetContext, UseContext
from fluxion.tree.naming import class_name

_ARROW = "->"
_CALL = "~"

_Step = tuple[str, tuple[int, ...], tuple[int, ...]]
"""One node run: the node's id (for a call ``conv~left``, ``conv``), the slots of its arguments,
and the slots no later node reads."""

Outputs = Sequence[str] | Mapping[str, str] | str
"""What a Graph returns: one name (its value), a sequence of names (a tuple; one name: its value),
or names by key (a dict)."""

Arguments = Mapping[str, Sequence[str]]
"""The argument lists of some nodes or calls: each takes these values, in this order, one per slot."""


class Graph(Chain):
    """Named nodes run in the order their edges need: several paths, named inputs and outputs.

    ``edges`` are paths ``"a -> b -> c"`` over the names in ``inputs`` and the keys of ``nodes``.
    A node receives one argument per incoming edge, in the order the edges first appear (an edge
    given twice, as paths sharing a segment do, counts once); a node with a single incoming edge
    whose value is a tuple gets its items as separate arguments, as in a Chain. The graph returns
    the values of ``outputs`` (node ids, calls or inputs): one value, a tuple of several, or, when
    ``outputs`` maps keys to names, a dict ``{key: value}`` in that order. By default it returns
    the one node with no outgoing edge.

    A node may be called more than once: in edges, ``conv~left`` names another call of the node
    ``conv`` (the same module: the same weights, one set of keys in the state dict). Each call
    takes its arguments from the edges into that call and gives its value to the edges out of it.

    ``arguments`` gives a node (or a call) its argument list instead: ``{"attn": ["x", "x", "x"]}``
    calls ``attn(x, x, x)``, each name a slot, so one value may fill several. Each name is an edge
    into the node; edges into it may still be written (a path through it reads well) but must come
    from names of its list. Nodes without a list take one argument per incoming edge, as above.

    Every node is on a path from an input to an output, with two exceptions for the context: a
    ``UseContext`` without incoming edges is called with no arguments and reads the context, and a
    ``SetContext`` may end a path, storing its value for nodes later in the tree (such as a mask
    that every block's attention reads). A ``UseContext`` runs after any ``SetContext`` of the same
    Graph that stores the value it reads; otherwise nodes run in the order they are listed wherever
    the edges leave it free.

    Called with its inputs by position (in the order of ``inputs``), by name, or, when it has
    several inputs, as one dict of them by name (``graph({"x": x, "context": c})``; a graph of one
    input takes a dict as that input's value).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> gate = fl.Graph(
    ...     {"proj": fl.Linear(4, 3), "gate": fl.Linear(6, 3), "act": fl.Sigmoid(), "mul": fl.Multiply()},
    ...     edges=["x -> proj -> mul", "context -> gate -> act -> mul"],
    ...     inputs=("x", "context"),
    ... )
    >>> gate(torch.ones(2, 4), context=torch.ones(2, 6)).shape
    torch.Size([2, 3])
    >>> print(gate)
    (GRAPH) Graph(inputs=['x', 'context'], outputs=['mul'])
        ├── proj: Linear(in_features=4, out_features=3, bias=True)  ← x
        ├── gate: Linear(in_features=6, out_features=3, bias=True)  ← context
        ├── act: Sigmoid()  ← gate
        └── mul: Multiply()  ← proj, act

    Surgery rewires the edges. A Graph is a Chain, and a Chain is the Graph whose edges make one
    path: each of Chain's changes means here what it means on that path. ``insert(i, node)`` puts
    ``node`` on the incoming edge of the node at ``i``, ``append`` runs it on the output (which it
    becomes), ``pop``/``remove``/``del`` give a node's one input to whatever read it (for each of
    its calls), a replacement under a new id renames the node and its calls in the edges, and
    :meth:`insert_on_edge` picks any edge (into or out of a call too).
    Replacing a node under its id changes no edge (``gate["act"] = fl.Tanh()``). A change the
    wiring gives no meaning to (inserting before a node of several inputs or calls, removing one of
    several inputs, appending to a graph of several outputs, slicing some of the nodes) raises a
    :class:`GraphError`, as does
    one whose result would not be a valid graph; either leaves the graph as it was.

    Why not a separate class beside Chain: every part of fluxion that walks, addresses, adapts,
    saves or draws a tree treats a Chain as the container it is, and a Graph is one (named
    children, parent pointers, addresses, lookup, replacement). Giving Chain's changes their graph
    meaning keeps that true without a second container type every consumer would have to know.
    """

    repr_tag = "GRAPH"
    _inputs: tuple[str, ...]
    _outputs: tuple[str, ...]
    _output_keys: tuple[str, ...] | None
    _single_output: bool
    _edges: tuple[str, ...]
    _node_ids: tuple[str, ...]
    _sources: dict[str, tuple[str, ...]]
    _arguments: dict[str, tuple[str, ...]]
    _call_order: tuple[str, ...]
    _steps: tuple[_Step, ...]
    _output_slots: tuple[int, ...]

    def __init__(
        self,
        nodes: Mapping[str, torch.nn.Module],
        edges: Sequence[str],
        inputs: Sequence[str] = ("input",),
        outputs: Outputs | None = None,
        arguments: Arguments | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        given = cast(object, nodes)
        if not isinstance(given, Mapping):
            raise GraphError(f"{owner}: nodes is a mapping from node id to module, got {type(given).__name__}")
        flow = _analyse(owner, _Nodes.of(nodes), edges, inputs, outputs, arguments)
        self._inputs = flow.inputs
        self._node_ids = tuple(nodes)
        self._take(flow)
        self._splice(0, 0, list(nodes.items()), internal=True)

    # -- reading -------------------------------------------------------------------------------

    @property
    def inputs(self) -> tuple[str, ...]:
        """The names of the graph's inputs, in the order of positional arguments.

        >>> import fluxion.layers as fl
        >>> fl.Graph({"add": fl.Add()}, edges=["x -> add", "y -> add"], inputs=("x", "y")).inputs
        ('x', 'y')
        """
        return self._inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        """The names whose values the graph returns (with :attr:`output_keys`, the dict's values).

        >>> import fluxion.layers as fl
        >>> fl.Graph({"a": fl.ReLU(), "b": fl.Tanh()}, edges=["input -> a -> b"]).outputs
        ('b',)
        """
        return self._outputs

    @property
    def output_keys(self) -> tuple[str, ...] | None:
        """The keys of the dict the graph returns, one per output; None when it returns a value or a tuple.

        >>> import fluxion.layers as fl
        >>> heads = fl.Graph(
        ...     {"mean": fl.Linear(4, 2), "std": fl.Linear(4, 2)},
        ...     edges=["input -> mean", "input -> std"],
        ...     outputs={"loc": "mean", "scale": "std"},
        ... )
        >>> heads.output_keys, heads.outputs
        (('loc', 'scale'), ('mean', 'std'))
        """
        return self._output_keys

    @property
    def output_spec(self) -> tuple[str, ...] | dict[str, str]:
        """``outputs`` as a Graph is given it: the names, or the names by key.

        >>> import fluxion.layers as fl
        >>> fl.Graph({"a": fl.ReLU()}, edges=["input -> a"], outputs={"out": "a"}).output_spec
        {'out': 'a'}
        """
        if self._output_keys is None:
            return self._outputs
        return dict(zip(self._output_keys, self._outputs, strict=True))

    def calls(self, node: str) -> tuple[str, ...]:
        """The calls of the node ``node`` in the order they run: ``node`` itself when the edges name
        it, and each ``node~suffix`` they name.

        >>> import fluxion.layers as fl
        >>> twice = fl.Graph({"fc": fl.Linear(2, 2)}, edges=["input -> fc -> fc~again"])
        >>> twice.calls("fc"), twice.sources("fc~again")
        (('fc', 'fc~again'), ('fc',))
        """
        if node not in self._node_ids:
            raise ChildNotFoundError(f"{self._label()} has no node {node!r}; its nodes: {', '.join(self._node_ids)}")
        return tuple(call for call in self._call_order if _node_of(call) == node)

    @property
    def edges(self) -> tuple[str, ...]:
        """The edges as given, written ``"a -> b -> c"``.

        >>> import fluxion.layers as fl
        >>> fl.Graph({"a": fl.ReLU(), "b": fl.Tanh()}, edges=["input->a  ->b"]).edges
        ('input -> a -> b',)
        """
        return self._edges

    @property
    def arguments(self) -> dict[str, tuple[str, ...]]:
        """The argument lists given to nodes or calls (see ``arguments`` of the constructor), by node or call.

        >>> import fluxion.layers as fl
        >>> square = fl.Graph({"mul": fl.Multiply()}, edges=[], arguments={"mul": ["input", "input"]})
        >>> square.arguments, square.sources("mul")
        ({'mul': ('input', 'input')}, ('input', 'input'))
        """
        return dict(self._arguments)

    def sources(self, name: str) -> tuple[str, ...]:
        """Where the arguments of the node or call ``name`` come from, in argument order (none for an
        input, or for a node that the edges name only as calls ``name~suffix``).

        >>> import fluxion.layers as fl
        >>> graph = fl.Graph({"a": fl.ReLU(), "add": fl.Add()}, edges=["input -> a -> add", "input -> add"])
        >>> graph.sources("add"), graph.sources("input")
        (('a', 'input'), ())
        """
        found = self._sources.get(name)
        if found is not None:
            return found
        if name in self._inputs or name in self._node_ids:
            return ()
        known = _known(self._inputs, self._node_ids)
        raise ChildNotFoundError(f"{self._label()} has no node or input {name!r}; {known}")

    # -- running -------------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Run the nodes in an order their edges allow, computed once when the graph is built.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> graph = fl.Graph({"add": fl.Add()}, edges=["x -> add", "y -> add"], inputs=("x", "y"))
        >>> graph(torch.tensor(1.0), y=torch.tensor(2.0)), graph({"y": torch.tensor(2.0), "x": torch.tensor(1.0)})
        (tensor(3.), tensor(3.))
        """
        values = _bind(self._label, self._inputs, args, kwargs, GraphError)
        modules = self._modules
        for name, sources, done in self._steps:
            node = modules[name]
            if len(sources) == 1:
                value = values[sources[0]]
                output = node(*value) if isinstance(value, tuple) else node(value)  # pyright: ignore[reportOptionalCall]
            else:
                output = node(*[values[source] for source in sources])  # pyright: ignore[reportOptionalCall]
            values.append(output)
            for slot in done:  # drop what no later node reads, so memory peaks as in a Chain
                values[slot] = None
        slots = self._output_slots
        if self._single_output:
            return values[slots[0]]
        keys = self._output_keys
        if keys is None:
            return tuple(values[slot] for slot in slots)
        return {key: values[slot] for key, slot in zip(keys, slots, strict=True)}

    def output_shape(self, *inputs: ShapeValue, **named: ShapeValue) -> ShapeValue:
        """The data flow of ``forward`` over shapes; inputs by position or, at the root of an inference, by name.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> graph = fl.Graph(
        ...     {"fc": fl.Linear(4, 8), "cat": fl.Cat(dim=-1)}, edges=["x -> fc -> cat", "y -> cat"], inputs=("x", "y")
        ... )
        >>> report = shapes.infer(graph, ("B", 4), y=("B", 2))
        >>> report.output, report["fc"].output
        ((B, 10), (B, 8))
        """
        values = _bind(self._label, self._inputs, inputs, named, ShapeError)
        modules = self._modules
        try:
            for name, sources, _ in self._steps:
                node = cast(torch.nn.Module, modules[name])
                single = values[sources[0]] if len(sources) == 1 else None
                if dims.several(single):
                    values.append(dims.run(node, *single))
                else:
                    values.append(dims.run(node, *(values[source] for source in sources)))
        except ReturnSignal as signal:
            return cast(ShapeValue, signal.value)
        slots = self._output_slots
        if self._single_output:
            return values[slots[0]]
        keys = self._output_keys
        if keys is None:
            return tuple(values[slot] for slot in slots)
        return dims.ShapeMap((key, values[slot]) for key, slot in zip(keys, slots, strict=True))

    # -- representation ------------------------------------------------------------------------

    def extra_repr(self) -> str:
        outputs = self.output_spec
        return f"inputs={list(self._inputs)}, outputs={outputs if isinstance(outputs, dict) else list(outputs)}"

    def child_note(self, name: str) -> str | None:
        """Where the arguments of the node ``name`` come from, as ``repr`` shows them after its line;
        each further call ``~suffix`` after a semicolon.

        >>> import fluxion.layers as fl
        >>> fl.Graph({"a": fl.ReLU(), "add": fl.Add()}, edges=["input -> a -> add", "input -> add"]).child_note("add")
        '← a, input'
        >>> fl.Graph({"fc": fl.Linear(2, 2)}, edges=["input -> fc -> fc~again"]).child_note("fc")
        '← input; ~again ← fc'
        """
        notes: list[str] = []
        for call in self._call_order:
            if _node_of(call) == name:
                arrow = "← " + ", ".join(self._sources[call]) if self._sources[call] else "← nothing"
                notes.append(arrow if call == name else f"{call[len(name) :]} {arrow}")
        if notes == ["← nothing"]:
            return None
        return "; ".join(notes) or None

    # -- surgery -------------------------------------------------------------------------------
    #
    # A Chain is the Graph whose edges make one path: each of Chain's changes has the meaning here
    # that reduces to the Chain's on such a path. Inserting puts a node on an edge, removing gives
    # a node's consumers its one input instead, appending runs a node on the output, renaming
    # renames the node in the edges. Each works out the new wiring and checks it as a new Graph
    # would be checked before anything changes.

    def insert(self, index: int, module: torch.nn.Module, name: str | None = None) -> None:
        """Insert ``module`` on the incoming edge of the node at ``index`` (``len(graph)``: after the
        output, as :meth:`append`), under the id ``name`` or an automatic one.

        The node at ``index`` must take one input; ``module`` takes it instead and feeds the node.
        For a node with several inputs, say which edge with :meth:`insert_on_edge`.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> graph = fl.Graph({"fc": fl.Linear(2, 2), "add": fl.Add()}, edges=["input -> fc -> add", "input -> add"])
        >>> graph.insert(0, fl.LayerNorm(2), name="norm")
        >>> graph.edges
        ('input -> norm -> fc -> add', 'input -> add')
        """
        size = len(self._modules)
        if type(index) is not int:
            index = self._int_index(index, "insert")
        if not -size <= index <= size:
            raise ChildIndexError(f"{self._label()}: cannot insert at index {index} among {size} nodes")
        position = index + size if index < 0 else index
        if position == size:
            self.append(module, name)
            return
        node = self._node_ids[position]
        self._refuse_calls(node, "'before it'")
        sources = self._sources[node]
        if len(set(sources)) != 1:
            raise GraphError(
                f"{self._label()}: node {node!r} takes {len(set(sources)) or 'no'} inputs"
                f"{' (' + ', '.join(sources) + ')' if sources else ''}, so 'before it' names no single edge; "
                "say which with insert_on_edge(source, target, module)"
            )
        self.insert_on_edge(sources[0], node, module, name)

    def insert_on_edge(self, source: str, target: str, module: torch.nn.Module, name: str | None = None) -> None:
        """Put ``module`` on the edge ``source -> target``: it takes ``source``'s value, and ``target``
        takes its output in the argument place ``source`` had (in each of them, for a target whose
        argument list names ``source`` several times). Either may be a call ``node~suffix``.

        >>> import fluxion.layers as fl
        >>> graph = fl.Graph({"a": fl.ReLU(), "add": fl.Add()}, edges=["input -> a -> add", "input -> add"])
        >>> graph.insert_on_edge("input", "add", fl.Tanh())
        >>> graph.edges, graph.sources("add")
        (('input -> a -> add', 'input -> Tanh -> add'), ('a', 'Tanh'))
        """
        if target not in self._sources or source not in self._sources[target]:
            raise GraphError(f"{self._label()}: there is no edge {source} {_ARROW} {target}; its edges: {self._edges}")
        node = self._new_id(module, name)
        paths = [_spliced_pairs(path, source, target, node) for path in self._paths()]
        arguments = dict(self._arguments)
        if target in arguments:
            arguments[target] = tuple(node if part == source else part for part in arguments[target])
            if not any(node in path for path in paths):  # the edge was the argument list's alone
                paths.append([source, node])
        position = self._node_ids.index(_node_of(target))
        self._rewire(position, [(node, module)], 0, paths, self._outputs, arguments)

    def append(self, module: torch.nn.Module, name: str | None = None) -> None:
        """Run ``module`` on the graph's output: it takes the output's value and becomes the output
        (in a Chain, the last child's output is the output).

        >>> import fluxion.layers as fl
        >>> graph = fl.Graph({"fc": fl.Linear(2, 2)}, edges=["input -> fc"])
        >>> graph.append(fl.ReLU(), name="act")
        >>> graph.edges, graph.outputs
        (('input -> fc -> act',), ('act',))
        """
        if len(self._outputs) != 1:
            raise GraphError(
                f"{self._label()} returns several values ({', '.join(self._outputs)}), so 'after the output' names "
                "no single one; put the node on an edge (insert_on_edge) or build a new Graph"
            )
        self._insert_after(self._outputs[0], len(self._modules), module, name)

    def insert_before_type(self, module_type: type[torch.nn.Module], module: torch.nn.Module) -> None:
        """Insert ``module`` on the incoming edge of the first node of type ``module_type`` (see :meth:`insert`).

        >>> import fluxion.layers as fl
        >>> graph = fl.Graph({"fc": fl.Linear(2, 2), "act": fl.ReLU()}, edges=["input -> fc -> act"])
        >>> graph.insert_before_type(fl.ReLU, fl.Dropout(0.1))
        >>> graph.edges
        ('input -> fc -> Dropout -> act',)
        """
        self.insert(self._type_position(module_type, "insert_before_type"), module)

    def insert_after_type(self, module_type: type[torch.nn.Module], module: torch.nn.Module) -> None:
        """Run ``module`` on the output of the first node of type ``module_type``: it takes that node's
        value, and every node (and output) that read the value reads ``module``'s instead.

        >>> import fluxion.layers as fl
        >>> graph = fl.Graph({"fc": fl.Linear(2, 2), "act": fl.ReLU()}, edges=["input -> fc -> act"])
        >>> graph.insert_after_type(fl.Linear, fl.Dropout(0.1))
        >>> graph.edges
        ('input -> fc -> Dropout -> act',)
        """
        position = self._type_position(module_type, "insert_after_type")
        self._refuse_calls(self._node_ids[position], "'after it'")
        self._insert_after(self._node_ids[position], position + 1, module, None)

    def pop(self, index: int = -1) -> torch.nn.Module:
        """Remove the node at ``index`` (the last by default) and return it: the nodes (and outputs)
        that read its value read its one input instead, for each of its calls, in the same argument
        places (a node that would then read one value twice gets an argument list saying so).

        A node with several inputs, or none, cannot be taken out that way: replace it instead.

        >>> import fluxion.layers as fl
        >>> shared = fl.Graph({"fc": fl.Linear(2, 2), "act": fl.ReLU()}, edges=["input -> fc -> act -> fc~again"])
        >>> _ = shared.pop(0)
        >>> shared.edges
        ('input -> act',)

        >>> import fluxion.layers as fl
        >>> graph = fl.Graph({"fc": fl.Linear(2, 2), "act": fl.ReLU()}, edges=["input -> fc -> act"])
        >>> type(graph.pop()).__name__, graph.edges, graph.outputs
        ('ReLU', ('input -> fc',), ('fc',))
        """
        if type(index) is not int:
            index = self._int_index(index, "pop")
        position = self._checked_index(index, len(self._modules))
        node = self._node_ids[position]
        taken: dict[str, str] = {}  # each call -> the value that takes its place
        for call in self.calls(node):
            sources = self._sources[call]
            if len(set(sources)) != 1:
                raise GraphError(
                    f"{self._label()}: {'call' if call != node else 'node'} {call!r} takes "
                    f"{len(set(sources)) or 'no'} inputs{' (' + ', '.join(sources) + ')' if sources else ''}, "
                    f"so no single value can take its place; replace it instead (graph.replace({node!r}, module))"
                )
            taken[call] = sources[0]
        # a value read through the removed calls stays where it is read, so calls of calls resolve
        for call, source in taken.items():
            while source in taken:
                source = taken[source]
            taken[call] = source
        arguments = {call: read for call, read in self._arguments.items() if call not in taken}
        for reader, read in self._sources.items():
            replaced = tuple(taken.get(name, name) for name in read)
            if reader not in taken and replaced != read and (reader in arguments or len(set(replaced)) < len(read)):
                arguments[reader] = replaced
        outputs = tuple(taken.get(name, name) for name in self._outputs)
        doubled = next((name for name in outputs if outputs.count(name) > 1), None)
        if doubled is not None:
            merged = [repr(name) for name in self._outputs if taken.get(name, name) == doubled]
            raise GraphError(
                f"{self._label()}: outputs {' and '.join(merged)} would {'both' if len(merged) == 2 else 'all'} "
                f"be {doubled!r}; replace {node!r} instead"
            )
        removed = self._modules[node]
        paths = [_merged([taken.get(name, name) for name in path]) for path in self._paths()]
        kept = list(dict.fromkeys(tuple(path) for path in paths if len(path) > 1))  # once each: paths may merge
        self._rewire(position, [], 1, [list(path) for path in kept], outputs, arguments)
        return cast(torch.nn.Module, removed)

    def _refuse_calls(self, node: str, where: str) -> None:
        calls = self.calls(node)
        if calls != (node,):
            raise GraphError(
                f"{self._label()}: node {node!r} is called {len(calls)} times ({', '.join(calls)}), so {where} "
                "names no single edge; say which with insert_on_edge(source, target, module)"
            )

    def _put_in_place(self, key: str, new: torch.nn.Module, name: str | None) -> None:
        # Chain.replace (and a stand-in giving its place back): a new id renames the node in the edges.
        if name is None or name == key:
            self._swap(key, new)
            return
        position = self._node_ids.index(key)
        paths = [[_renamed(part, key, name) for part in path] for path in self._paths()]
        outputs = tuple(_renamed(part, key, name) for part in self._outputs)
        arguments = {
            _renamed(call, key, name): tuple(_renamed(part, key, name) for part in read)
            for call, read in self._arguments.items()
        }
        self._rewire(position, [(name, new)], 1, paths, outputs, arguments)

    def _insert_after(self, value: str, position: int, module: torch.nn.Module, name: str | None) -> None:
        """Put ``module`` on the value ``value`` (a node id or input): whatever read it reads ``module``
        (an argument list too); ``module`` takes ``value`` by an edge."""
        node = self._new_id(module, name)
        paths: list[list[str]] = []
        fed = False
        for path in self._paths():
            spliced = [path[0]]
            for before, after in pairwise(path):
                if before == value:
                    spliced.append(node)
                    fed = True
                spliced.append(after)
            paths.append(spliced)
        if not fed:  # the value ends paths (an output): the first of them goes on to the new node
            ending = next((path for path in paths if path[-1] == value), None)
            if ending is None:
                paths.append([value, node])
            else:
                ending.append(node)
        outputs = tuple(node if part == value else part for part in self._outputs)
        arguments = {
            call: tuple(node if part == value else part for part in read) for call, read in self._arguments.items()
        }
        self._rewire(position, [(node, module)], 0, paths, outputs, arguments)

    def _rewire(
        self,
        position: int,
        entries: list[tuple[str, torch.nn.Module]],
        remove: int,
        paths: list[list[str]],
        outputs: tuple[str, ...],
        arguments: Arguments,
    ) -> None:
        """Replace ``remove`` nodes at ``position`` by ``entries``, with new edges, outputs and argument lists:
        checked as a new Graph's would be, and through the Chain's checks, before anything changes."""
        modules = cast(dict[str, torch.nn.Module], self._modules)
        ids = list(self._node_ids)
        ids[position : position + remove] = [node for node, _ in entries]
        for node, _ in entries:
            if ids.count(node) > 1 or node in self._inputs:
                known = _known(self._inputs, self._node_ids)
                raise GraphError(f"{self._label()}: the id {node!r} is taken; the graph's {known}")
        nodes = {node: modules[node] for node in ids if node in modules}
        nodes.update(entries)
        edges = [f" {_ARROW} ".join(path) for path in paths]
        wanted = self._keyed(outputs)
        flow = _analyse(
            self._label(), _Nodes.of({node: nodes[node] for node in ids}), edges, self._inputs, wanted, arguments
        )
        before = self._node_ids
        self._node_ids = tuple(ids)
        try:
            super()._splice(position, remove, list[tuple[str | None, torch.nn.Module]](entries))
        except BaseException:
            self._node_ids = before
            raise
        self._take(flow)

    def _take(self, flow: _Flow) -> None:
        """Run as ``flow`` says from now on."""
        self._outputs, self._output_keys, self._edges, self._sources, self._arguments = (
            flow.outputs,
            flow.output_keys,
            flow.edges,
            flow.sources,
            flow.arguments,
        )
        self._single_output = flow.output_keys is None and len(flow.outputs) == 1
        self._call_order, self._steps, self._output_slots = flow.call_order, flow.steps, flow.output_slots

    def _keyed(self, outputs: tuple[str, ...]) -> Outputs:
        """``outputs`` (names) under this graph's output keys, when it has them."""
        keys = self._output_keys
        return outputs if keys is None else dict(zip(keys, outputs, strict=True))

    def _new_id(self, module: torch.nn.Module, name: str | None) -> str:
        """``name``, or the first free automatic name of ``module`` (its class name, then suffixed)."""
        if name is not None:
            return name
        taken = {*self._inputs, *self._node_ids}
        base = class_name(module)
        return base if base not in taken else next(f"{base}_{n}" for n in count(1) if f"{base}_{n}" not in taken)

    def _paths(self) -> list[list[str]]:
        return [path.split(f" {_ARROW} ") for path in self._edges]

    def _slice_copy(self, key: slice) -> Self:
        if range(len(self._modules))[key] != range(len(self._modules)):
            raise GraphError(
                f"{self._label()}: a slice of a Graph's nodes has no edges to the graph's inputs and outputs; "
                "copy the whole graph (graph[:] or structural_copy()), or build a Graph of the nodes you want"
            )
        return super()._slice_copy(key)

    def _splice(
        self,
        index: int,
        remove: int,
        entries: list[tuple[str | None, torch.nn.Module]],
        *,
        internal: bool = False,
    ) -> list[torch.nn.Module]:
        # Every change of the children comes through here; the Graph's own surgery sets the new node
        # ids first. Anything else changing them (a Graph asked to stand in for a node) would leave
        # edges naming nodes that are not there.
        if remove or entries:
            keys = list(self._modules)
            after = (*keys[:index], *(name for name, _ in entries), *keys[index + remove :])
            if after != self._node_ids:
                raise GraphError(
                    f"{self._label()}: a Graph's children are its nodes, wired by its edges; they change only "
                    "through its surgery (insert, insert_on_edge, append, pop, remove, replace), which rewires them"
                )
        return super()._splice(index, remove, entries, internal=internal)

    def _swap(self, key: str, new: torch.nn.Module) -> None:
        # Only a context node may start or end a path without edges, and only a context node's
        # replacement changes what the plan relies on: check the flow again then, and only then
        # (surgery on the other nodes stays as cheap as in a Chain).
        modules = cast(dict[str, torch.nn.Module], self._modules)
        if isinstance(modules[key], SetContext | UseContext) or isinstance(new, SetContext | UseContext):
            nodes = _Nodes.of({**modules, key: new})
            flow = _analyse(self._label(), nodes, self._edges, self._inputs, self.output_spec, self._arguments)
            super()._swap(key, new)
            self._take(flow)  # the order may change
            return
        super()._swap(key, new)


def _spliced_pairs(path: list[str], source: str, target: str, node: str) -> list[str]:
    """``path`` with ``node`` put between each ``source`` directly followed by ``target``."""
    spliced = [path[0]]
    for before, after in pairwise(path):
        if (before, after) == (source, target):
            spliced.append(node)
        spliced.append(after)
    return spliced


def _node_of(name: str) -> str:
    """The node a name in the edges calls: ``conv`` for ``conv~left`` (and for ``conv``)."""
    return name.partition(_CALL)[0]


def _renamed(name: str, old: str, new: str) -> str:
    """``name`` with the node ``old`` renamed ``new``, in a call ``old~suffix`` too."""
    node, mark, suffix = name.partition(_CALL)
    return new + mark + suffix if node == old else name


def _merged(path: list[str]) -> list[str]:
    """``path`` with each run of one name written once (``a -> a -> b`` is ``a -> b``)."""
    return [name for position, name in enumerate(path) if position == 0 or path[position - 1] != name]


class _Nodes(NamedTuple):
    """The node ids, and those that touch the context: they may start or end a path of edges."""

    ids: tuple[str, ...]
    readers: dict[str, tuple[str, str]]
    writers: dict[str, tuple[str, str]]

    @classmethod
    def of(cls, nodes: Mapping[str, torch.nn.Module]) -> _Nodes:
        readers = {name: (node.context, node.key) for name, node in nodes.items() if isinstance(node, UseContext)}
        writers = {name: (node.context, node.key) for name, node in nodes.items() if isinstance(node, SetContext)}
        return cls(tuple(nodes), readers, writers)

    def calls(self, call_ids: tuple[str, ...]) -> _Nodes:
        """The same nodes seen call by call: each call of a context node touches the context."""
        readers = {call: self.readers[_node_of(call)] for call in call_ids if _node_of(call) in self.readers}
        writers = {call: self.writers[_node_of(call)] for call in call_ids if _node_of(call) in self.writers}
        return _Nodes(call_ids, readers, writers)

    def stores_read_by(self, reader: str) -> list[str]:
        """The nodes of this Graph storing the value ``reader`` reads: it must run after them."""
        return [writer for writer, slot in self.writers.items() if slot == self.readers.get(reader)]


class _Flow(NamedTuple):
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    output_keys: tuple[str, ...] | None
    edges: tuple[str, ...]
    sources: dict[str, tuple[str, ...]]
    """The arguments of every call, by call id (a node's own id for its plain call)."""
    arguments: dict[str, tuple[str, ...]]
    """The argument lists as given, by call id."""
    call_order: tuple[str, ...]
    steps: tuple[_Step, ...]
    output_slots: tuple[int, ...]


def _analyse(
    owner: str,
    nodes: _Nodes,
    edges: Sequence[str],
    inputs: Sequence[str],
    outputs: Outputs | None,
    arguments: Arguments | None = None,
) -> _Flow:
    """Check that the names and edges make a data flow from the inputs to the outputs, and plan its run.

    A path may also start at a ``UseContext`` without incoming edges (called with no arguments, it
    reads the context) and end at a ``SetContext`` whose value no output needs (it stores it). The
    flow is worked out call by call: a node called again (``conv~left``) is one more step.
    """
    declared = nodes.ids
    input_names = _names(owner, "inputs", inputs)
    for kind, names in (("input", input_names), ("node", declared)):
        for name in names:
            _check_id(owner, kind, name)
    if not input_names:
        raise GraphError(f"{owner}: a Graph needs at least one input")
    duplicates = sorted({name for name in input_names if input_names.count(name) > 1})
    if duplicates:
        raise GraphError(f"{owner}: input {duplicates[0]!r} is named twice in inputs")
    clashes = [name for name in input_names if name in declared]
    if clashes:
        raise GraphError(f"{owner}: {clashes[0]!r} is both an input and a node id; give them different names")

    paths, pairs = _parse_edges(owner, _names(owner, "edges", edges), input_names, declared)
    listed = _parse_arguments(owner, arguments, input_names, declared)
    for source, target in pairs:
        if target in listed and source not in listed[target]:
            raise GraphError(
                f"{owner}: an edge leads from {source!r} into {target!r}, whose arguments are listed as "
                f"{', '.join(listed[target])}; add {source!r} to that list or leave the edge out"
            )
    for target, read in listed.items():
        for source in read:
            pairs[source, target] = None
    node_ids = _call_ids(declared, pairs)
    nodes = nodes.calls(node_ids)
    sources: dict[str, list[str]] = {name: [] for name in node_ids}
    targets: dict[str, list[str]] = {name: [] for name in (*input_names, *node_ids)}
    for source, target in pairs:
        if target not in listed:
            sources[target].append(source)
        targets[source].append(target)
    for target, read in listed.items():
        sources[target] = list(read)
    isolated = [name for name in node_ids if not sources[name] and not targets[name]]
    if isolated:
        raise GraphError(f"{owner}: node {isolated[0]!r} is in no edge; connect it or leave it out of nodes")
    keys, wanted = _output_names(owner, outputs)
    unused = [name for name in input_names if not targets[name] and name not in (wanted or ())]
    if unused:
        raise GraphError(f"{owner}: input {unused[0]!r} is in no edge; connect it or leave it out of inputs")

    # a UseContext runs after the SetContext nodes of this Graph that store what it reads
    after = {name: [*sources[name], *nodes.stores_read_by(name)] for name in node_ids}
    before: dict[str, list[str]] = {name: [] for name in (*input_names, *node_ids)}
    for name, earlier in after.items():
        for source in earlier:
            before[source].append(name)
    order = _topological_order(owner, node_ids, after, before)
    starts = (*input_names, *(name for name in nodes.readers if not sources[name]))
    unreached = sorted(set(node_ids) - _reachable(starts, targets), key=node_ids.index)
    if unreached:
        raise GraphError(
            f"{owner}: node {unreached[0]!r} cannot be reached from the inputs ({', '.join(input_names)}); "
            "every node needs a path from an input (or from a UseContext, which reads the context)"
        )
    chosen = _outputs(owner, wanted, input_names, nodes, targets)
    dead = sorted(set(node_ids) - _reachable((*chosen, *nodes.writers), sources), key=node_ids.index)
    if dead:
        raise GraphError(
            f"{owner}: the value of node {dead[0]!r} reaches no output ({', '.join(chosen)}); "
            "connect it, list it in outputs, or leave it out (a SetContext may end a path: it stores its value)"
        )
    frozen = {name: tuple(found) for name, found in sources.items()}
    steps, output_slots = _plan(input_names, order, frozen, chosen)
    return _Flow(input_names, chosen, keys, paths, frozen, listed, tuple(order), steps, output_slots)


def _call_ids(node_ids: tuple[str, ...], pairs: Mapping[tuple[str, str], None]) -> tuple[str, ...]:
    """Every call the edges name, by node: its plain call (unless the edges name only ``node~suffix``
    calls of it), then its further calls in the order the edges first name them."""
    named = dict.fromkeys(name for pair in pairs for name in pair)
    again: dict[str, list[str]] = {node: [] for node in node_ids}
    for name in named:
        if _CALL in name:
            again[_node_of(name)].append(name)
    return tuple(
        call for node in node_ids for call in ([node] if node in named or not again[node] else []) + again[node]
    )


def _output_names(owner: str, outputs: Outputs | None) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """The keys (None but for a dict) and the names of ``outputs`` (None: the graph finds its output)."""
    if outputs is None:
        return None, None
    if isinstance(outputs, str):
        return None, (outputs,)
    if isinstance(outputs, Mapping):
        given = cast(Mapping[object, object], outputs)
        for key, name in given.items():
            if not isinstance(key, str) or not isinstance(name, str):
                raise GraphError(f"{owner}: outputs by key map strings to names, got {key!r}: {name!r}")
        named = cast(Mapping[str, str], given)
        return tuple(named), tuple(named.values())
    return None, _names(owner, "outputs", outputs)


def _names(owner: str, what: str, given: object) -> tuple[str, ...]:
    if isinstance(given, str) or not isinstance(given, Iterable):
        raise GraphError(f"{owner}: {what} is a sequence of strings, got {given!r}")
    return tuple(cast(Iterable[str], given))


def _check_id(owner: str, kind: str, name: object) -> None:
    if (
        not isinstance(name, str)
        or not name
        or any(c.isspace() for c in name)
        or "." in name
        or _ARROW in name
        or _CALL in name
    ):
        raise GraphError(
            f"{owner}: {kind} name {name!r} must be a non-empty string without spaces, dots, {_ARROW!r} or "
            f"{_CALL!r} (edges write a node's further calls node{_CALL}suffix)"
        )


def _check_call(owner: str, where: str, name: str, inputs: tuple[str, ...], node_ids: tuple[str, ...]) -> None:
    """Refuse a name ``node~suffix`` (in ``where``: an edge, an argument list) that calls no node of the graph."""
    node, _, suffix = name.partition(_CALL)
    if node in node_ids and suffix and _CALL not in suffix and "." not in suffix:
        return
    if node in node_ids:
        raise GraphError(
            f"{owner}: {where} names {name!r}; a further call of a node is written node{_CALL}suffix, "
            f"with a suffix of letters, digits or '_' (such as {node}{_CALL}2)"
        )
    close = difflib.get_close_matches(node, node_ids, n=1)
    hint = f"did you mean {close[0] + _CALL + suffix!r}? " if close else ""
    raise GraphError(
        f"{owner}: {where} names {name!r}, a call of node {node!r}, which is not a node; "
        f"{hint}{_known(inputs, node_ids)}"
    )


def _parse_edges(
    owner: str, edges: tuple[str, ...], inputs: tuple[str, ...], node_ids: tuple[str, ...]
) -> tuple[tuple[str, ...], dict[tuple[str, str], None]]:
    """The edges written the normal way, and every (source, target) pair in order of first appearance."""
    known = {*inputs, *node_ids}
    paths: list[str] = []
    pairs: dict[tuple[str, str], None] = {}  # an ordered set
    for edge in edges:
        if not isinstance(cast(object, edge), str):
            raise GraphError(f"{owner}: an edge is a string 'a -> b', got {edge!r}")
        names = [part.strip() for part in edge.split(_ARROW)]
        if len(names) < 2:
            raise GraphError(
                f"{owner}: edge {edge!r} has no {_ARROW!r}; an edge is a path 'a -> b' of two or more names"
            )
        if not all(names):
            raise GraphError(f"{owner}: edge {edge!r} has an empty segment")
        for name in names:
            if _CALL in name:
                _check_call(owner, f"edge {edge!r}", name, inputs, node_ids)
            elif name not in known:
                raise GraphError(f"{owner}: edge {edge!r} names {name!r}, which is unknown; {_known(inputs, node_ids)}")
        for source, target in pairwise(names):
            if target in inputs:
                raise GraphError(f"{owner}: edge {edge!r} leads into the input {target!r}; inputs only feed nodes")
            pairs[source, target] = None
        paths.append(f" {_ARROW} ".join(names))
    return tuple(paths), pairs


def _parse_arguments(
    owner: str, arguments: Arguments | None, inputs: tuple[str, ...], node_ids: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    """The argument lists, checked: each of a node or call, naming inputs, nodes or calls."""
    if arguments is None:
        return {}
    given = cast(object, arguments)
    if not isinstance(given, Mapping):
        raise GraphError(f"{owner}: arguments maps a node (or call) to its argument list, got {given!r}")
    listed: dict[str, tuple[str, ...]] = {}
    for call, read in cast(Mapping[object, object], given).items():
        if not isinstance(call, str) or (call not in node_ids and _CALL not in call):
            hint = "inputs take no arguments; " if call in inputs else ""
            raise GraphError(
                f"{owner}: arguments names {call!r}, which is not a node; {hint}{_known(inputs, node_ids)}"
            )
        where = f"the arguments of {call!r}"
        if _CALL in call:
            _check_call(owner, "arguments", call, inputs, node_ids)
        names = _names(owner, where, read)
        if not names:
            raise GraphError(f"{owner}: {where} are empty; list at least one value")
        for name in names:
            if not isinstance(cast(object, name), str):
                raise GraphError(f"{owner}: {where} are names, got {name!r}")
            if _CALL in name:
                _check_call(owner, where, name, inputs, node_ids)
            elif name not in inputs and name not in node_ids:
                close = difflib.get_close_matches(name, (*inputs, *node_ids), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise GraphError(f"{owner}: {where} name {name!r}, which is unknown; {hint}{_known(inputs, node_ids)}")
        listed[call] = names
    return listed


def _topological_order(
    owner: str, node_ids: tuple[str, ...], sources: dict[str, list[str]], targets: dict[str, list[str]]
) -> list[str]:
    """The nodes in an order where each comes after its sources: node order wherever that is free."""
    position = {name: index for index, name in enumerate(node_ids)}
    waiting = {name: sum(source in position for source in sources[name]) for name in node_ids}
    ready = [position[name] for name in node_ids if not waiting[name]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = node_ids[heapq.heappop(ready)]
        order.append(name)
        for target in targets[name]:
            waiting[target] -= 1
            if not waiting[target]:
                heapq.heappush(ready, position[target])
    if len(order) < len(node_ids):
        left = {name for name in node_ids if waiting[name]}
        raise GraphError(f"{owner}: the edges make a cycle: {f' {_ARROW} '.join(_cycle(left, node_ids, sources))}")
    return order


def _cycle(left: set[str], node_ids: tuple[str, ...], sources: dict[str, list[str]]) -> list[str]:
    """A cycle among ``left``, the nodes a topological order could not place (each has a source there)."""
    walk = [next(name for name in node_ids if name in left)]
    seen = {walk[0]: 0}
    while True:  # backwards along edges, until a node comes round again
        source = next(name for name in sources[walk[-1]] if name in left)
        if source in seen:
            loop = walk[seen[source] :]
            return [source, *reversed(loop[1:]), source]
        seen[source] = len(walk)
        walk.append(source)


def _reachable(starts: Iterable[str], links: Mapping[str, Sequence[str]]) -> set[str]:
    found = set(starts)
    pending = list(found)
    while pending:
        for name in links.get(pending.pop(), ()):
            if name not in found:
                found.add(name)
                pending.append(name)
    return found


def _outputs(
    owner: str,
    wanted: tuple[str, ...] | None,
    inputs: tuple[str, ...],
    nodes: _Nodes,
    targets: dict[str, list[str]],
) -> tuple[str, ...]:
    node_ids = nodes.ids
    if wanted is None:
        # never empty: the nodes make no cycle, and without nodes every input is an output or refused
        ends = [name for name in node_ids if not targets[name]]
        # a SetContext at the end of a side path stores its value; the graph returns the main path's
        ends = [name for name in ends if name not in nodes.writers] or ends
        if len(ends) > 1:
            raise GraphError(
                f"{owner}: nodes {', '.join(ends)} have no outgoing edge; say which it returns with outputs=[...]"
            )
        return (ends[0],)
    if not wanted:
        raise GraphError(f"{owner}: outputs is empty; a Graph returns at least one value")
    for position, name in enumerate(wanted):
        if name not in inputs and name not in node_ids:
            raise GraphError(f"{owner}: output {name!r} is not known; {_known(inputs, node_ids)}")
        if name in wanted[:position]:
            raise GraphError(f"{owner}: output {name!r} is listed twice")
    return wanted


def _plan(
    inputs: tuple[str, ...], order: list[str], sources: dict[str, tuple[str, ...]], outputs: tuple[str, ...]
) -> tuple[tuple[_Step, ...], tuple[int, ...]]:
    """Value slots (inputs first, then each node in run order) and what each step reads and frees."""
    slot = {name: index for index, name in enumerate((*inputs, *order))}
    last_reader: dict[int, int] = {}
    for step, name in enumerate(order):
        for source in sources[name]:
            last_reader[slot[source]] = step
    output_slots = tuple(slot[name] for name in outputs)
    freed: list[list[int]] = [[] for _ in order]
    for value, step in last_reader.items():
        if value not in output_slots:
            freed[step].append(value)
    steps = tuple(
        (_node_of(name), tuple(slot[source] for source in sources[name]), tuple(sorted(freed[step])))
        for step, name in enumerate(order)
    )
    return steps, output_slots


def _bind(
    owner: Callable[[], str],
    names: tuple[str, ...],
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    error: type[FluxionError],
) -> list[Any]:
    """The input values in the order of ``names``, from positional and keyword arguments, or from one
    mapping of them by name. A graph with one input takes a mapping as that input's value, unless
    its keys are exactly the input's name (``graph({"x": t})``); ``graph(x=mapping)`` always passes it.

    ``owner`` gives the graph's label for a message; it is only called when something is wrong.
    """
    if not kwargs and len(args) == len(names):
        if len(names) == 1 and isinstance(args[0], Mapping) and list(cast(Mapping[object, Any], args[0])) == [names[0]]:
            return [cast(Mapping[object, Any], args[0])[names[0]]]
        return list(args)
    if not kwargs and len(args) == 1 and isinstance(args[0], Mapping):
        return _bind_mapping(owner, names, cast(Mapping[object, Any], args[0]), error)
    if len(args) > len(names):
        raise error(f"{owner()} takes {len(names)} inputs ({', '.join(names)}), got {len(args)} by position")
    for name in kwargs:
        if name not in names:
            raise error(f"{owner()} has no input {name!r}; its inputs are: {', '.join(names)}")
        if name in names[: len(args)]:
            raise error(f"{owner()} got its input {name!r} both by position and by name")
    values = list(args)
    for name in names[len(args) :]:
        if name not in kwargs:
            raise error(f"{owner()} got no value for its input {name!r}; its inputs are: {', '.join(names)}")
        values.append(kwargs[name])
    return values


def _bind_mapping(
    owner: Callable[[], str], names: tuple[str, ...], given: Mapping[object, Any], error: type[FluxionError]
) -> list[Any]:
    """The input values in the order of ``names``, from one mapping that holds each of them by name."""
    missing = [name for name in names if name not in given]
    unknown = [repr(key) for key in given if key not in names]
    if missing or unknown:
        problems = [f"no {', '.join(map(repr, missing))}"] if missing else []
        problems += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise error(
            f"{owner()} was given a dict of its inputs with {' and '.join(problems)}; "
            f"its inputs are: {', '.join(names)}"
        )
    return [given[name] for name in names]


def _known(inputs: tuple[str, ...], node_ids: tuple[str, ...]) -> str:
    return f"inputs: {', '.join(inputs)}; nodes: {', '.join(node_ids) or 'none'}"
