"""TorchArc's files (format 2, torcharc >= 2.0), read as they are: translated to fluxion's spec format.

A TorchArc spec has ``modules:`` (each name's module spec, see ``modules``) and ``graph:`` (how
they are called, see ``graph``). It becomes a fluxion ``Graph`` whose nodes are the modules under
their names, so the tree's ``state_dict`` keys are those of TorchArc's own model
(``mlp.0.weight``, ``film.gamma.weight``), in the order the graph first calls each module. A
module the graph never calls is left out, as TorchArc leaves it out of its model, with a warning
naming it. A TorchArc file gives no input shapes: give them to ``load`` (``inputs=``) or on the
command line (``--input``) and every size is inferred and checked at load; without them the first
call infers them, as TorchArc's lazy modules do.

>>> spec = {
...     "modules": {"mlp": {"Sequential": [{"LazyLinear": {"out_features": 8}}, {"ReLU": None}]}},
...     "graph": {"input": "x", "modules": {"mlp": ["x"]}, "output": "mlp"},
... }
>>> is_torcharc(spec)
True
>>> translate(spec)
{'type': 'Graph', 'inputs': ['x'], 'nodes': [{'type': 'Chain', 'children': [{'type': 'Linear', 'out_features': 8, \
'id': '0'}, {'type': 'ReLU', 'id': '1'}], 'id': 'mlp'}], 'edges': ['x -> mlp'], 'outputs': 'mlp'}
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, cast

from fluxion.errors import SpecError
from fluxion.spec.messages import json_path
from fluxion.spec.torcharc.classes import closest, extra_classes
from fluxion.spec.torcharc.graph import REUSE, wire
from fluxion.spec.torcharc.modules import module_node
from fluxion.spec.translation import Origin, Translation

TOP_KEYS = ("modules", "graph")


class UnusedModuleWarning(UserWarning):
    """A module of ``modules:`` that the graph never calls: it is left out of the model.

    >>> issubclass(UnusedModuleWarning, UserWarning)
    True
    """


def is_torcharc(data: Any) -> bool:
    """Whether a spec's value is a TorchArc (format 2) spec: a mapping with ``modules`` or ``graph``
    and no ``type`` (fluxion's node) or key of narchi's (``blocks``, ``_class``...).

    >>> is_torcharc({"modules": {}, "graph": {}}), is_torcharc({"type": "Graph", "nodes": []})
    (True, False)
    """
    if not isinstance(data, Mapping):
        return False
    keys = cast(Mapping[Any, Any], data)
    if "type" in keys or "spec" in keys or "blocks" in keys:
        return False
    if any(isinstance(key, str) and key.startswith("_") for key in keys):
        return False
    return "modules" in keys or "graph" in keys


def translate(data: Any, *, file: str | None = None) -> dict[str, Any]:
    """fluxion's spec for a TorchArc spec (see ``translation``).

    >>> translate({"modules": {"head": {"Linear": {"in_features": 2, "out_features": 1}}}, "graf": {}}, file="m.yaml")
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: m.yaml: graf: 'graf' is not a key of a TorchArc spec (closest: graph)
    """
    return translation(data, file=file).spec


def translation(data: Any, *, file: str | None = None) -> Translation:
    """``translate``, with the TorchArc origin of each node (for errors found later), the plain torch
    classes the spec names and leave to infer sizes at the first call.

    >>> found = translation({"modules": {"head": {"LazyLinear": {"out_features": 2}}},
    ...                      "graph": {"input": "x", "modules": {"head": ["x"]}, "output": "head"}})
    >>> found.source_path("nodes[0].out_features"), found.materialize_on_call
    ('modules.head.LazyLinear.out_features', True)
    """
    try:
        return _translation(data)
    except SpecError as error:
        if error.file is None:
            error.file = file
        raise


def _translation(data: Any) -> Translation:
    if not isinstance(data, Mapping):
        raise SpecError("a TorchArc spec is a mapping with modules and graph")
    given = cast(Mapping[Any, Any], data)
    for key in given:
        if key not in TOP_KEYS:
            hint = closest(str(key), list(TOP_KEYS)) or f" (those are {', '.join(TOP_KEYS)})"
            raise SpecError(f"{key!r} is not a key of a TorchArc spec{hint}", path=str(key))
    for key in TOP_KEYS:
        if key not in given:
            raise SpecError(f"a TorchArc spec needs modules and graph; {key} is missing")
    modules = given["modules"]
    if not isinstance(modules, Mapping) or not modules:
        raise SpecError(
            f"modules maps names to module specs ({{head: {{Linear: {{...}}}}}}), got {modules!r}", path="modules"
        )
    nodes: dict[str, tuple[dict[str, Any], dict[str, Origin]]] = {}
    torcharc_kinds: dict[str, str] = {}
    for name, spec in cast(Mapping[Any, Any], modules).items():
        where = json_path(["modules", str(name)])
        if not isinstance(name, str) or not name or "." in name or REUSE in name or not name.isprintable():
            raise SpecError(f"a module name is a name without dots or '~', got {name!r}", path=where)
        nodes[name] = module_node(spec, name)
        torcharc_kinds[name] = next(iter(cast(Mapping[str, Any], spec)))
    kinds = {name: node["type"] for name, (node, _) in nodes.items()}
    classes = extra_classes(_types([node for node, _ in nodes.values()]))
    wiring = wire(given["graph"], kinds, torcharc_kinds, classes)
    unused = [name for name in nodes if name not in wiring.order]
    for name in unused:
        warnings.warn(
            f"TorchArc module {name!r} (modules.{name}) is not called in graph.modules: it is left out of the "
            "model, as TorchArc leaves it out",
            UnusedModuleWarning,
            stacklevel=4,
        )
    spec: dict[str, Any] = {"type": "Graph", "inputs": wiring.inputs, "nodes": [], "edges": wiring.edges}
    spec["outputs"] = wiring.outputs
    if wiring.arguments:
        spec["arguments"] = wiring.arguments
    origins: dict[str, Origin] = {
        "": Origin(
            "",
            {
                "inputs": "graph.input",
                "outputs": "graph.output",
                "edges": "graph.modules",
                "arguments": "graph.modules",
            },
        )
    }
    for index, name in enumerate(wiring.order):
        node, inner = nodes[name]
        spec["nodes"].append({**node, "id": name})
        for place, origin in inner.items():
            origins[f"nodes[{index}]{'.' if place else ''}{place}"] = origin
    if isinstance(wiring.outputs, list) and len(wiring.outputs) == 1:
        # TorchArc returns a tuple of one value where a Graph returns the value: a Pack node packs it
        taken = {*nodes, *wiring.inputs}
        packed = next(
            name for name in ("output", *(f"output_{n}" for n in range(1, len(taken) + 2))) if name not in taken
        )
        origins[f"nodes[{len(spec['nodes'])}]"] = Origin("graph.output", {})
        spec["nodes"].append({"type": "Pack", "id": packed})
        spec["edges"] = [*wiring.edges, f"{wiring.outputs[0]} -> {packed}"]
        spec["outputs"] = packed
    return Translation(spec, origins, classes=classes, materialize_on_call=True)


def _all_nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    pending = list(nodes)
    while pending:
        node = pending.pop()
        found.append(node)
        pending.extend(cast(list[dict[str, Any]], node.get("children", [])))
    return found


def _types(nodes: list[dict[str, Any]]) -> set[str]:
    return {cast(str, node["type"]) for node in _all_nodes(nodes)}
