"""``finalize``: from a trained supernet to a discrete tree, its genotype, its spec and its address map.

Every :class:`Choice` gives way to the candidate it ranks best (never ``none``), under the
choice's own name, so ``normal_0.edge_3.sep_conv_3x3.Conv2d_1.weight`` becomes
``normal_0.edge_3.Conv2d_1.weight``. Every :class:`InputChoice` in a Graph keeps its ``keep``
strongest inputs and becomes an ``Add`` of them (an ``Identity`` when it keeps one); the nodes that
fed only the dropped inputs leave the Graph. Outside a Graph, a join that learns its own weights
becomes an ``InputChoice`` fixed to the positions it keeps, without weights. The discrete tree is
a structural copy of the supernet: the chosen operations keep their trained tensors (shared with
the supernet; ``copy.deepcopy`` the result for tensors of its own). The supernet is not changed.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion.nas import Choice
>>> supernet = fl.Chain(fl.Linear(4, 4), act=Choice(none=fl.Identity(), relu=fl.ReLU(), tanh=fl.Tanh()))
>>> with torch.no_grad():
...     _ = supernet.act.alphas.copy_(torch.tensor([3.0, 0.0, 1.0]))
>>> result = finalize(supernet)
>>> result.model
(CHAIN) Chain()
    ├── Linear(in_features=4, out_features=4, bias=True)
    └── act: Tanh()
>>> result.choices, result.model.Linear.weight is supernet.Linear.weight
({'act': 'tanh'}, True)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from fluxion import spec, weights
from fluxion.errors import GraphError, NasError
from fluxion.files import write_text_atomically
from fluxion.layers.activations import Identity
from fluxion.layers.merging import Add
from fluxion.nas.choice import Choice
from fluxion.nas.genotype import Genotype, Pair
from fluxion.nas.input_choice import InputChoice
from fluxion.nas.ranking import NEVER, Rank, best_candidate, check_rank, scores, strongest
from fluxion.tree.chain import Chain
from fluxion.tree.graph import Graph
from fluxion.tree.module import Module, shallow_copy
from fluxion.weights.mapping import KeyMapping

_CELL = re.compile(r"^(?P<kind>.+)_(?P<index>\d+)$")
_STATE = re.compile(r"^state_(?P<index>\d+)$")


@dataclass(frozen=True)
class Join:
    """What finalize keeps of one ``InputChoice``: its sources (node ids, strongest first) and those it drops.

    >>> Join(kept=("edge_1", "edge_0"), dropped=("edge_2",)).kept
    ('edge_1', 'edge_0')
    """

    kept: tuple[str, ...]
    dropped: tuple[str, ...]


@dataclass(frozen=True)
class Decisions:
    """Every choice a supernet's architecture weights make under one ranking rule.

    ``choices`` maps each Choice's address to the candidate it keeps, ``strengths`` to that
    candidate's score; ``joins`` maps each InputChoice's address to what it keeps.

    >>> import fluxion.layers as fl
    >>> decide(fl.Chain(edge=Choice(relu=fl.ReLU())), "softmax").choices
    {'edge': 'relu'}
    """

    choices: Mapping[str, str]
    strengths: Mapping[str, float]
    joins: Mapping[str, Join]


@dataclass(frozen=True)
class Finalized:
    """A finalized supernet: the discrete ``model``, its ``genotype`` (when the supernet is made of
    DARTS-style cells, see :func:`genotype_of`), the decisions, and ``address_map``: each module
    address of the supernet, to its address in ``model`` (None when it was left out).

    >>> import fluxion.layers as fl
    >>> result = finalize(fl.Chain(edge=Choice(relu=fl.ReLU(), tanh=fl.Tanh(), mode="fixed", chosen="tanh")))
    >>> result.address_map["edge.tanh"], result.address_map["edge.relu"]
    ('edge', None)
    """

    model: torch.nn.Module
    genotype: Genotype | None
    choices: Mapping[str, str]
    joins: Mapping[str, Join]
    address_map: Mapping[str, str | None]
    keys: Mapping[str, str | None]

    def key_mapping(self) -> KeyMapping:
        """The supernet's state-dict keys to the discrete model's (architecture parameters and the
        candidates left out map to None): load a supernet checkpoint into the discrete model with
        ``fluxion.weights.load(model, checkpoint, mapping=result.key_mapping())``.

        >>> import fluxion.layers as fl
        >>> result = finalize(fl.Chain(edge=Choice(fc=fl.Linear(2, 2), mode="fixed", chosen="fc")))
        >>> mapping = result.key_mapping()
        >>> mapping("edge.fc.weight"), mapping("edge.alphas")
        ('edge.weight', None)
        """
        return KeyMapping(rename=dict(self.keys))

    def spec(self, *, inputs: Mapping[str, Sequence[int | str]] | None = None) -> dict[str, Any]:
        """The discrete model as a spec (``fluxion.spec.dump``); ``inputs`` adds its input shapes.

        >>> import fluxion.layers as fl
        >>> finalize(fl.Chain(edge=Choice(relu=fl.ReLU()))).spec()["children"]
        [{'type': 'ReLU', 'id': 'edge'}]
        """
        return spec.dump(self.model, inputs=inputs)

    def save(self, folder: str | os.PathLike[str], *, inputs: Mapping[str, Sequence[int | str]] | None = None) -> Path:
        """Write ``model.json`` (the spec), ``model.safetensors`` (its weights), ``genotype.json`` (when
        there is one) and ``address_map.json`` into ``folder``; the folder.

        >>> import pathlib, tempfile
        >>> import fluxion.layers as fl
        >>> folder = finalize(fl.Chain(edge=Choice(fc=fl.Linear(2, 2)))).save(tempfile.mkdtemp())
        >>> sorted(path.name for path in folder.iterdir())
        ['address_map.json', 'model.json', 'model.safetensors']
        """
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        spec.save(self.model, target / "model.json", inputs=inputs)
        weights.save(self.model, target / "model.safetensors")
        if self.genotype is not None:
            self.genotype.save(target / "genotype.json")
        text = json.dumps({"modules": dict(self.address_map), "keys": dict(self.keys)}, indent=1) + "\n"
        write_text_atomically(target / "address_map.json", text, error=NasError)
        return target


def finalize(
    supernet: torch.nn.Module, *, rank: Rank = "softmax", keep: int | None = None, never: Collection[str] = NEVER
) -> Finalized:
    """The discrete network a trained supernet chooses (see the module docstring).

    ``rank`` is the ranking rule (``"softmax"`` as DARTS, ``"raw"`` as Archai; see
    :mod:`fluxion.nas.ranking`); ``keep`` overrides every InputChoice's number of inputs kept;
    ``never`` names candidates never chosen.

    >>> import fluxion.layers as fl
    >>> finalize(fl.Linear(2, 2))
    Traceback (most recent call last):
    ...
    fluxion.errors.NasError: finalize: the supernet is a Linear, not a Chain or Graph: nothing to choose
    """
    if not isinstance(supernet, Chain):
        raise NasError(
            f"finalize: the supernet is a {type(supernet).__name__}, not a Chain or Graph: nothing to choose"
        )
    decisions = decide(supernet, rank, keep=keep, never=never)
    model = _discrete(supernet, decisions)
    address_map, keys = _addresses(supernet, decisions)
    return Finalized(
        model=model,
        genotype=_genotype(supernet, decisions),
        choices=dict(decisions.choices),
        joins=dict(decisions.joins),
        address_map=address_map,
        keys=keys,
    )


def decide(
    supernet: torch.nn.Module, rank: Rank = "softmax", *, keep: int | None = None, never: Collection[str] = NEVER
) -> Decisions:
    """What each choice of ``supernet`` keeps under ``rank`` (nothing is changed).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> graph = fl.Graph(
    ...     {"a": Choice(relu=fl.ReLU()), "b": Choice(tanh=fl.Tanh()), "join": InputChoice(keep=1)},
    ...     edges=["input -> a -> join", "input -> b -> join"],
    ... )
    >>> with torch.no_grad():
    ...     _ = graph.a.alphas.fill_(0.0)
    >>> decide(graph, "softmax").joins["join"]
    Join(kept=('a',), dropped=('b',))
    """
    rule = check_rank(rank)
    if isinstance(never, str):
        never = (never,)  # one name, not its letters
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise NasError(f"finalize: keep is the number of inputs each join keeps (1 or more), got {keep!r}")
    choices: dict[str, str] = {}
    strengths: dict[str, float] = {}
    joins: dict[str, Join] = {}
    nodes = list(_named_modules(supernet))
    for address, module in nodes:
        if isinstance(module, Choice):
            choices[address], strengths[address] = best_candidate(module, rule, never)
    for address, module in nodes:
        if isinstance(module, InputChoice):
            joins[address] = _join(address, module, rule, keep, strengths)
    return Decisions(choices=choices, strengths=strengths, joins=joins)


def genotype_of(supernet: torch.nn.Module, rank: Rank = "softmax") -> Genotype | None:
    """The genotype a supernet of DARTS-style cells chooses now, or None for another kind of supernet.

    A cell is a Graph named ``<type>_<index>`` (``normal_0``, ``reduce_2``) whose states are the
    nodes ``state_0``, ``state_1`` (its preprocessed inputs) and the InputChoice joins ``state_2``,
    ``state_3``... keeping 2 inputs each, each fed by Choice edges that read a state; the first cell
    of each type gives the type's entry, its output node's inputs the concat
    (``examples/darts.jsonnet`` builds this layout).

    >>> import fluxion.layers as fl
    >>> genotype_of(fl.Chain(fl.Linear(2, 2))) is None
    True
    """
    if not isinstance(supernet, Chain):
        return None
    return _genotype(supernet, decide(supernet, rank))


# -- deciding ----------------------------------------------------------------------------------


def _join(address: str, join: InputChoice, rank: Rank, keep: int | None, strengths: Mapping[str, float]) -> Join:
    count = keep if keep is not None else join.keep
    if join.mode == "fixed" and join.chosen is not None:
        positions = list(join.chosen)
        graph = join.parent
        if isinstance(graph, Graph):
            sources = _sources(graph, address)
            return _split(sources, positions)
        return _split(tuple(str(index) for index in range(max(positions) + 1)), positions)
    graph = join.parent
    if join.alphas is not None:
        own = scores(join.alphas, rank, f"InputChoice at {address!r}")
        if isinstance(graph, Graph):
            sources = _sources(graph, address)
            if len(sources) != len(own):
                raise NasError(f"InputChoice at {address!r}: {len(own)} weights for {len(sources)} inputs")
        else:
            sources = tuple(str(index) for index in range(len(own)))
        return _split(sources, strongest(own, count))
    if not isinstance(graph, Graph):
        raise NasError(
            f"InputChoice at {address!r}: finalize ranks a join's inputs by the choices that feed it in a Graph; "
            "outside a Graph give it weights of its own (learn=True, count=...)"
        )
    sources = _sources(graph, address)
    prefix = address.rpartition(".")[0]
    ranked = [strengths.get(_join_address(prefix, source), float("inf")) for source in sources]
    if count > len(sources):
        raise NasError(f"InputChoice at {address!r} keeps {count} inputs but gets {len(sources)}")
    return _split(sources, strongest(ranked, count))


def _sources(graph: Graph, address: str) -> tuple[str, ...]:
    node = address.rpartition(".")[2]
    calls = graph.calls(node)
    if len(calls) != 1:
        raise NasError(f"InputChoice at {address!r} is called {len(calls)} times in its Graph; finalize needs one call")
    return graph.sources(calls[0])


def _split(sources: tuple[str, ...], positions: Sequence[int]) -> Join:
    kept = tuple(sources[position] for position in positions)
    return Join(kept=kept, dropped=tuple(source for source in sources if source not in kept))


def _join_address(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# -- building the discrete tree ------------------------------------------------------------------


def _discrete(supernet: Chain, decisions: Decisions) -> torch.nn.Module:
    root: torch.nn.Module = supernet.structural_copy()
    # Innermost choices first, so that the addresses of the others still hold.
    for address in sorted(decisions.choices, key=lambda found: -found.count(".") if found else 1):
        root = _replace(root, address, _chosen(root, address, decisions.choices[address]))
    # A Graph inside a chosen candidate now has the choice's address; one inside a candidate left
    # out is gone.
    graphs = {
        address: where
        for address in _join_owners(decisions)
        if (where := _through_choices(address, decisions.choices)) is not None
    }
    for address in sorted(graphs, key=lambda found: -found.count(".") if found else 1):
        joins = _joins_in(decisions, address)
        where = graphs[address]
        if isinstance(supernet.get_submodule(address), Graph):
            graph = cast(Graph, root if not where else cast(Chain, root)[where])
            root = _replace(root, where, _rebuilt(graph, joins))
            continue
        for name, join in joins.items():  # outside a Graph, a join keeps its inputs by position
            target = _through_choices(_join_address(address, name), decisions.choices)
            if target is not None:
                count = cast(InputChoice, supernet.get_submodule(_join_address(address, name))).count
                positions = [int(position) for position in join.kept]
                root = _replace(root, target, InputChoice(len(positions), count, mode="fixed", chosen=positions))
    return root


def _through_choices(address: str, choices: Mapping[str, str]) -> str | None:
    """The address in the discrete tree of the supernet's node at ``address`` (None: in a candidate left out)."""
    kept: list[str] = []
    prefix = ""
    for part in address.split(".") if address else []:
        if prefix in choices:
            if part != choices[prefix]:
                return None
        else:
            kept.append(part)
        prefix = _join_address(prefix, part)
    return ".".join(kept)


def _chosen(root: torch.nn.Module, address: str, name: str) -> torch.nn.Module:
    choice = root if not address else cast(Chain, root)[address]
    assert isinstance(choice, Choice)
    # The copy shares the supernet's alphas: give it its own before its candidates change.
    choice.alphas = torch.nn.Parameter(choice.alphas.detach().clone())
    candidate = choice[name]
    choice.remove(name)
    return candidate


def _replace(root: torch.nn.Module, address: str, module: torch.nn.Module) -> torch.nn.Module:
    if not address:
        return module
    cast(Chain, root)[address] = module
    return root


def _join_owners(decisions: Decisions) -> set[str]:
    """The addresses of the nodes (Graphs, mostly) whose children include joins."""
    return {join.rpartition(".")[0] for join in decisions.joins}


def _joins_in(decisions: Decisions, owner: str) -> dict[str, Join]:
    """The joins that are children of the node at ``owner``, by name."""
    return {key.rpartition(".")[2]: join for key, join in decisions.joins.items() if key.rpartition(".")[0] == owner}


def _remaining_sources(graph: Graph, joins: Mapping[str, Join]) -> dict[str, list[str]]:
    """Each call's sources in ``graph`` once the joins' dropped inputs are gone."""
    dropped = {(node, source) for node, join in joins.items() for source in join.dropped}
    sources: dict[str, list[str]] = {}
    for name, _ in graph.named_children():
        for call in graph.calls(name):
            sources[call] = [source for source in graph.sources(call) if (call, source) not in dropped]
    return sources


def _rebuilt(graph: Graph, joins: Mapping[str, Join]) -> Graph:
    sources = _remaining_sources(graph, joins)
    kept = _reachable(graph, sources)
    nodes: dict[str, torch.nn.Module] = {}
    for name, module in graph.named_children():
        if name in kept:
            if name not in joins:
                nodes[name] = _detached_copy(module)
            else:  # Add merges two inputs or more
                nodes[name] = Add() if len(joins[name].kept) > 1 else Identity()
    edges: list[str] = []
    arguments: dict[str, list[str]] = {}
    given = graph.arguments
    for call, found in sources.items():
        if _node_of(call) not in kept:
            continue
        if call in given:
            arguments[call] = found
        else:
            edges.extend(f"{source} -> {call}" for source in found)
    outputs = graph.output_spec
    try:
        return Graph(
            nodes,
            edges=edges,
            inputs=graph.inputs,
            outputs=outputs if isinstance(outputs, dict) else list(outputs),
            arguments=arguments or None,
        )
    except GraphError as error:  # the inputs kept leave no valid graph (a graph input nothing reads now)
        raise NasError(
            f"finalize: the Graph at {graph.address!r} with only the inputs its joins keep: {error}"
        ) from None


def _reachable(graph: Graph, sources: Mapping[str, list[str]]) -> set[str]:
    """The nodes that still lead to an output once the dropped edges are gone."""
    wanted = [_node_of(name) for name in graph.outputs]
    kept: set[str] = set()
    while wanted:
        node = wanted.pop()
        if node in kept or node in graph.inputs:
            continue
        kept.add(node)
        for call in graph.calls(node) if node in dict(graph.named_children()) else ():
            wanted.extend(_node_of(source) for source in sources.get(call, ()))
    for name, module in graph.named_children():
        if type(module).__name__ in ("SetContext", "UseContext"):
            kept.add(name)  # context nodes talk to the rest of the tree, not along edges
    return kept


def _node_of(call: str) -> str:
    return call.partition("~")[0]


def _detached_copy(module: torch.nn.Module) -> torch.nn.Module:
    if isinstance(module, Chain | Module):
        return module.structural_copy()
    return cast(torch.nn.Module, shallow_copy(module))


# -- addresses ---------------------------------------------------------------------------------


def _addresses(supernet: Chain, decisions: Decisions) -> tuple[dict[str, str | None], dict[str, str | None]]:
    modules = dict(_named_modules(supernet))
    dropped_nodes = _dropped_graph_nodes(supernet, decisions)

    def translate(key: str) -> str | None:
        parts = key.split(".") if key else []
        new: list[str] = []
        prefix = ""
        for part in parts:
            owner = modules.get(prefix)
            here = _join_address(prefix, part)
            if isinstance(owner, Choice):
                if part != decisions.choices[prefix]:
                    return None  # alphas, or a candidate left out
            elif isinstance(owner, InputChoice) and here not in modules:
                return None  # a join's own weights
            elif here in dropped_nodes:
                return None
            else:
                new.append(part)
            prefix = here
        return ".".join(new)

    address_map = {address: translate(address) for address in modules}
    keys = {key: translate(key) for key in supernet.state_dict()}
    return address_map, keys


def _dropped_graph_nodes(supernet: Chain, decisions: Decisions) -> set[str]:
    """The addresses of the Graph nodes that lead to no output once the joins' dropped inputs are gone
    (a source one join drops but another node reads stays)."""
    dropped: set[str] = set()
    for address in _join_owners(decisions):
        graph = supernet.get_submodule(address)
        if isinstance(graph, Graph):
            kept = _reachable(graph, _remaining_sources(graph, _joins_in(decisions, address)))
            dropped.update(_join_address(address, name) for name, _ in graph.named_children() if name not in kept)
    return dropped


# -- genotype ----------------------------------------------------------------------------------


def _genotype(supernet: Chain, decisions: Decisions) -> Genotype | None:
    data: dict[str, Any] = {}
    for address, module in _named_modules(supernet):
        match = _CELL.match(address.rpartition(".")[2])
        if not isinstance(module, Graph) or match is None or match["kind"] in data:
            continue
        found = _cell(address, module, decisions)
        if found is None:
            continue
        pairs, concat = found
        data[match["kind"]] = [list(pair) for pair in pairs]
        data[match["kind"] + "_concat"] = concat
    if not data:
        return None
    try:
        return Genotype.parse(data)
    except NasError:
        return None


def _cell(address: str, cell: Graph, decisions: Decisions) -> tuple[list[Pair], list[int]] | None:
    children = dict(cell.named_children())
    states = sorted(
        (int(match["index"]), name)
        for name in children
        if (match := _STATE.match(name)) is not None and isinstance(children[name], InputChoice)
    )
    if not states or [index for index, _ in states] != list(range(2, 2 + len(states))):
        return None
    pairs: list[Pair] = []
    for _, name in states:
        join = decisions.joins.get(_join_address(address, name))
        if join is None or len(join.kept) != 2:
            return None
        for edge in join.kept:
            operation = decisions.choices.get(_join_address(address, edge))
            edge_sources = cell.sources(edge) if edge in children else ()
            state = _STATE.match(edge_sources[0]) if len(edge_sources) == 1 else None
            if operation is None or state is None:
                return None
            pairs.append((operation, int(state["index"])))
    concat: list[int] = []
    for output in cell.outputs:
        for source in cell.sources(output):
            state = _STATE.match(source)
            if state is None:
                return None
            concat.append(int(state["index"]))
    return pairs, concat


def _named_modules(model: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Module]]:
    return cast(Iterator[tuple[str, torch.nn.Module]], model.named_modules())
