"""TorchArc's ``graph:`` section as a fluxion Graph's inputs, edges and outputs.

``input`` names the model's inputs (one name or a list). ``modules`` maps each call to its
arguments: a list of values (a nested list, TorchArc's one list argument of a Merge module,
gives its values in order) or a mapping of the forward's parameter names, which fluxion passes by
position in the forward's order. ``name~suffix`` calls the module ``name`` again (the same weights).
``output`` is one value, a list (a tuple is returned) or a mapping (a dict is returned).
A call given one value in several places (``attn: {query: x, key: x, value: x}``, ``merge: [[h, h]]``)
gets that argument list in the Graph's ``arguments``, so each place takes the value.

Unlike TorchArc, the calls may be listed in any order (the graph is a DAG); a cycle, a name that
is neither an input nor a call, and a value no output needs are each one ``SpecError`` at the place
in the file.

>>> wiring = wire(
...     {"input": "x", "modules": {"head": ["mlp"], "mlp": ["x"]}, "output": "head"},
...     {"mlp": "Chain", "head": "Linear"},
...     {"mlp": "Sequential", "head": "Linear"},
...     {},
... )
>>> wiring.inputs, wiring.edges, wiring.order, wiring.outputs
(['x'], ['x -> mlp', 'mlp -> head'], ['mlp', 'head'], 'head')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from fluxion.errors import SpecError
from fluxion.spec.messages import json_path
from fluxion.spec.torcharc.classes import NodePath, closest, forward_parameters, merges

GRAPH_KEYS = ("input", "modules", "output")
REUSE = "~"
"""``conv~left``: another call of the module ``conv``."""


@dataclass(frozen=True)
class Wiring:
    """The graph section translated: inputs, edges (one per argument, in argument order; one per
    value for a call given a value several times), the modules called in the order the graph first
    calls them, what the graph returns (a list of names, or names by key for a dict), and the
    argument lists of the calls given a value several times.

    >>> Wiring(["x"], ["x -> head"], ["head"], "head").order
    ['head']
    >>> Wiring(["x"], ["x -> square"], ["square"], "square", {"square": ["x", "x"]}).arguments
    {'square': ['x', 'x']}
    """

    inputs: list[str]
    edges: list[str]
    order: list[str]
    outputs: str | list[str] | dict[str, str]
    arguments: dict[str, list[str]] = field(default_factory=dict[str, list[str]])


def wire(
    graph: Any,
    kinds: Mapping[str, str],
    torcharc_kinds: Mapping[str, str],
    classes: Mapping[str, type[torch.nn.Module]],
) -> Wiring:
    """The wiring of the graph section; ``kinds`` is each module's fluxion spec type,
    ``torcharc_kinds`` its TorchArc class (or ``Sequential``/``compact``), ``classes`` the plain
    torch classes the spec names.

    >>> wire({"input": "x", "modules": {"head": ["y"]}, "output": "head"}, {"head": "Linear"}, {"head": "Linear"}, {})
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: graph.modules.head[0]: 'y' is neither an input nor a call of the graph \
(inputs: x; calls: head)
    """
    if not isinstance(graph, Mapping):
        raise SpecError(f"graph is a mapping with {', '.join(GRAPH_KEYS)}, got {graph!r}", path="graph")
    section = cast(Mapping[str, Any], graph)
    for key in section:
        if key not in GRAPH_KEYS:
            hint = closest(str(key), list(GRAPH_KEYS)) or f" (those are {', '.join(GRAPH_KEYS)})"
            raise SpecError(f"{key!r} is not a key of graph{hint}", path=json_path(["graph", str(key)]))
    for key in GRAPH_KEYS:
        if key not in section:
            raise SpecError(f"graph needs {key} ({', '.join(GRAPH_KEYS)})", path="graph")
    inputs = _inputs(section["input"], kinds)
    calls = section["modules"]
    if not isinstance(calls, Mapping) or not calls:
        raise SpecError(
            f"graph.modules maps each call to its arguments ({{mlp: [x]}}), got {calls!r}", path="graph.modules"
        )
    arguments = {
        str(call): _call(str(call), value, inputs, kinds, torcharc_kinds, classes)
        for call, value in cast(Mapping[Any, Any], calls).items()
    }
    names = [*inputs, *arguments]
    for call, sources in arguments.items():
        for source, path in sources:
            if source not in names and source in kinds:
                raise SpecError(
                    f"{source!r} is a module the graph does not call: add a call ({source}: [...]) to graph.modules",
                    path=json_path(path),
                )
            if source not in names:
                hint = closest(source, list(dict.fromkeys([*names, *kinds])))
                raise SpecError(
                    f"{source!r} is neither an input nor a call of the graph{hint} "
                    f"(inputs: {', '.join(inputs)}; calls: {', '.join(arguments)})",
                    path=json_path(path),
                )
            if source == call:
                raise SpecError(f"{call!r} takes its own value: the graph is a DAG", path=json_path(path))
    _refuse_cycles(arguments)
    outputs = _outputs(section["output"], names)
    returned = (
        list(outputs.values()) if isinstance(outputs, dict) else [outputs] if isinstance(outputs, str) else outputs
    )
    _refuse_dead(arguments, returned)
    calls_in_order = _topological(arguments)
    edges = [
        f"{source} -> {call}"
        for call in calls_in_order
        for source in dict.fromkeys(name for name, _ in arguments[call])
    ]
    repeated = {
        call: [source for source, _ in arguments[call]]
        for call in calls_in_order
        if len({source for source, _ in arguments[call]}) < len(arguments[call])
    }
    order = list(dict.fromkeys(call.partition(REUSE)[0] for call in calls_in_order))
    return Wiring(inputs, edges, order, outputs, repeated)


def _inputs(value: Any, kinds: Mapping[str, str]) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in cast(list[Any], names)):
        raise SpecError(f"graph.input is an input name or a list of them, got {value!r}", path="graph.input")
    found = cast(list[str], names)
    for index, name in enumerate(found):
        where = "graph.input" if isinstance(value, str) else json_path(["graph", "input", index])
        _check_name(name, where, "an input name")
        if name in found[:index]:
            raise SpecError(f"input {name!r} is named twice", path=where)
        if name in kinds:
            raise SpecError(f"{name!r} is both an input and a module: give them different names", path=where)
    return found


def _check_name(name: str, where: str, what: str) -> None:
    if not name or "." in name or REUSE in name or "->" in name or any(c.isspace() for c in name):
        raise SpecError(f"{what} has no dots, spaces, '~' or '->', got {name!r}", path=where)


def _call(
    call: str,
    value: Any,
    inputs: list[str],
    kinds: Mapping[str, str],
    torcharc_kinds: Mapping[str, str],
    classes: Mapping[str, type[torch.nn.Module]],
) -> list[tuple[str, NodePath]]:
    """The sources of one call's arguments, in argument order, each with its place in the file."""
    path: NodePath = ["graph", "modules", call]
    where = json_path(path)
    module, _, suffix = call.partition(REUSE)
    if REUSE in suffix or (REUSE in call and not suffix):
        raise SpecError(f"a call is a module name, or name~suffix for another call of it; got {call!r}", path=where)
    if module not in kinds:
        raise SpecError(
            f"no module {module!r} in modules{closest(module, list(kinds))} (modules: {', '.join(kinds) or 'none'})",
            path=where,
        )
    if call in inputs:
        raise SpecError(f"{call!r} is both an input and a call: give them different names", path=where)
    sources: list[tuple[str, NodePath]]
    if isinstance(value, list):
        sources = _positional(cast(list[Any], value), path, merges(torcharc_kinds[module]), torcharc_kinds[module])
    elif isinstance(value, Mapping):
        sources = _keywords(cast(Mapping[Any, Any], value), path, kinds[module], torcharc_kinds[module], classes)
    else:
        raise SpecError(
            f"a call's arguments are a list ([x], [[a, b]]) or a mapping of parameter names ({{query: x}}), "
            f"got {value!r}",
            path=where,
        )
    return sources


def _positional(items: list[Any], path: NodePath, merge: bool, kind: str) -> list[tuple[str, NodePath]]:
    sources: list[tuple[str, NodePath]] = []
    for index, item in enumerate(items):
        place: NodePath = [*path, index]
        if isinstance(item, str):
            sources.append((item, place))
        elif isinstance(item, list):
            if not merge:
                raise SpecError(
                    f"a list of values is an argument of TorchArc's Merge modules; {kind} takes values ([a, b])",
                    path=json_path(place),
                )
            for inner, name in enumerate(cast(list[Any], item)):
                if not isinstance(name, str):
                    raise SpecError(f"a value is named by a string, got {name!r}", path=json_path([*place, inner]))
                sources.append((name, [*place, inner]))
        else:
            raise SpecError(f"a value is named by a string (or a list of them), got {item!r}", path=json_path(place))
    return sources


def _keywords(
    given: Mapping[Any, Any],
    path: NodePath,
    kind: str,
    torcharc_kind: str,
    classes: Mapping[str, type[torch.nn.Module]],
) -> list[tuple[str, NodePath]]:
    parameters = forward_parameters(kind, classes)
    if parameters is None:
        raise SpecError(f"{torcharc_kind} takes its values by position: give them as a list", path=json_path(path))
    for name, source in given.items():
        if not isinstance(source, str):
            raise SpecError(f"a value is named by a string, got {source!r}", path=json_path([*path, str(name)]))
        if name not in parameters:
            raise SpecError(
                f"{torcharc_kind}'s forward has no parameter {name!r}{closest(str(name), parameters)} "
                f"(it takes {', '.join(parameters)})",
                path=json_path([*path, str(name)]),
            )
    wanted = parameters[: len(given)]
    skipped = [name for name in wanted if name not in given]
    if skipped:
        raise SpecError(
            f"fluxion passes values by position, in the forward's order ({', '.join(parameters)}): "
            f"give {', '.join(skipped)} too, or leave out what comes after",
            path=json_path(path),
        )
    return [(cast(str, given[name]), [*path, name]) for name in wanted]


def _refuse_cycles(arguments: Mapping[str, list[tuple[str, NodePath]]]) -> None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    for start in arguments:
        stack: list[tuple[str, int]] = [(start, 0)]
        trail: list[str] = []
        while stack:
            call, position = stack.pop()
            if position == 0:
                if state.get(call) == 2:
                    continue
                state[call] = 1
                trail.append(call)
            sources = [source for source, _ in arguments[call] if source in arguments]
            if position < len(sources):
                stack.append((call, position + 1))
                following = sources[position]
                if state.get(following) == 1:
                    cycle = [*trail[trail.index(following) :], following]
                    raise SpecError(
                        f"the graph has a cycle: {' <- '.join(cycle)} (each takes the value of the next)",
                        path=json_path(["graph", "modules", following]),
                    )
                if state.get(following) != 2:
                    stack.append((following, 0))
            else:
                state[call] = 2
                trail.pop()


def _topological(arguments: Mapping[str, list[tuple[str, NodePath]]]) -> list[str]:
    """The calls in an order each comes after those it takes values from: the order listed where
    that already holds (as TorchArc needs it), so the modules' keys come in TorchArc's order."""
    listed = list(arguments)
    done: set[str] = set()
    order: list[str] = []
    while len(order) < len(listed):
        call = next(
            call
            for call in listed
            if call not in done and all(source in done or source not in arguments for source, _ in arguments[call])
        )
        done.add(call)
        order.append(call)
    return order


def _outputs(value: Any, names: list[str]) -> str | list[str] | dict[str, str]:
    def checked(name: Any, path: NodePath) -> str:
        if not isinstance(name, str) or name not in names:
            raise SpecError(
                f"{name!r} is neither an input nor a call of the graph{closest(str(name), names)}",
                path=json_path(path),
            )
        return name

    if isinstance(value, str):
        return checked(value, ["graph", "output"])
    if isinstance(value, list) and value:
        return [checked(name, ["graph", "output", index]) for index, name in enumerate(cast(list[Any], value))]
    if isinstance(value, Mapping) and value:
        return {
            str(key): checked(name, ["graph", "output", str(key)])
            for key, name in cast(Mapping[Any, Any], value).items()
        }
    raise SpecError(
        f"graph.output is a name, a list of names (a tuple) or a mapping of names (a dict), got {value!r}",
        path="graph.output",
    )


def _refuse_dead(arguments: Mapping[str, list[tuple[str, NodePath]]], returned: list[str]) -> None:
    needed: set[str] = set()
    pending = list(returned)
    while pending:
        name = pending.pop()
        if name in needed or name not in arguments:
            continue
        needed.add(name)
        pending.extend(source for source, _ in arguments[name])
    for call in arguments:
        if call not in needed:
            raise SpecError(
                f"the value of {call!r} reaches no output: list it in graph.output, or leave the call out",
                path=json_path(["graph", "modules", call]),
            )
