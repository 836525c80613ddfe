"""narchi's architecture files, read as they are: translated to fluxion's own spec format.

narchi (github.com/omni-us/narchi) describes a network as ``blocks`` with a ``_class`` and an
``_id``, wired by a ``graph`` of paths ``"a -> b -> c"`` from named ``inputs`` (whose ``_shape``
leaves out the batch) to named ``outputs``. ``fluxion.spec.load`` recognises such a file (its nodes
have ``_class`` where fluxion's have ``type``) and builds the equivalent tree: ids become
addresses, ``Sequential`` becomes a Chain, ``Group`` a Graph (a Chain when its graph is a single
path), ``Module`` a reference to another spec file. docs/narchi.md has the whole mapping.

>>> from fluxion.spec import narchi
>>> architecture = {
...     "blocks": [{"_class": "Linear", "_id": "fc", "output_feats": 2}, {"_class": "Softmax", "_id": "prob"}],
...     "graph": ["x -> fc -> prob -> y"],
...     "inputs": [{"_id": "x", "_shape": ["<<variable:T>>", 8]}],
...     "outputs": [{"_id": "y", "_shape": ["<<variable:T>>", 2]}],
... }
>>> narchi.is_narchi(architecture)
True
>>> narchi.translate(architecture)
{'type': 'Chain', 'children': [{'type': 'Linear', 'id': 'fc', 'out_features': 2}, \
{'type': 'Softmax', 'id': 'prob'}], 'inputs': {'x': ['B', 'T', 8]}}
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import fluxion.layers as fl
from fluxion.errors import SpecError
from fluxion.spec.messages import json_path
from fluxion.spec.narchi.blocks import LEAVES, METADATA, VARIABLE, NodePath, leaf
from fluxion.spec.translation import Origin, Translation

_ARCHITECTURE_KEYS = ("_id", "_description", "_shape", "blocks", "graph", "inputs", "outputs")
_PORT_KEYS = ("_id", "_description", "_shape")
_CONTAINER_KEYS = {
    "Sequential": ("blocks",),
    "Group": ("blocks", "graph", "input", "output"),
    "Module": ("_path", "_ext_vars", "architecture"),  # architecture: what narchi propagated into it
}
_BATCH_NAMES = ("B", "batch", "batch_size")


def is_narchi(data: Any) -> bool:
    """Whether a spec's JSON value is written in narchi's format: an architecture (``blocks``,
    ``graph``, ``inputs``, ``outputs``, keys such as ``_id``) or a block (``_class``), not a fluxion
    node (``type`` or ``spec``).

    >>> is_narchi({"_class": "Sequential", "blocks": []}), is_narchi({"type": "Chain"})
    (True, False)
    >>> is_narchi({"_id": "classifier", "blocks": [], "graph": [], "inputs": [], "outputs": []})
    True
    """
    if not isinstance(data, Mapping):
        return False
    keys = cast(Mapping[Any, Any], data)
    if "type" in keys or "spec" in keys:
        return False
    return "_class" in keys or "blocks" in keys or any(isinstance(key, str) and key.startswith("_") for key in keys)


def translate(data: Any, *, file: str | None = None) -> dict[str, Any]:
    """fluxion's spec for a narchi architecture (or a single narchi block).

    The architecture's input shapes, batch dimension added in front, become the spec's ``"inputs"``;
    ``<<variable:NAME>>`` becomes the symbol ``NAME`` and an argument written ``<<auto>>`` is left out
    for inference. Whatever does not translate is a SpecError naming ``file`` and narchi's JSON path.

    >>> translate({"_class": "Sequential", "blocks": [{"_class": "Conv2d", "output_feats": 8, "kernel_size": 3}]})
    {'type': 'Chain', 'children': [{'type': 'Conv2d', 'id': '0', 'out_channels': 8, 'kernel_size': 3}]}
    >>> translate({"_class": "Sequential", "blocks": [{"_class": "Softmax2d"}]}, file="model.jsonnet")
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: model.jsonnet: blocks[0]._class: unknown narchi class 'Softmax2d' (closest: \
Softmax...
    """
    return translation(data, file=file).spec


def translation(data: Any, *, file: str | None = None) -> Translation:
    """``translate``, with where each node comes from: what errors found later and diagrams use.

    >>> translation({"_class": "ReLU", "_id_share": 3}, file="model.jsonnet")
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: model.jsonnet: _id_share: _id_share is a label (a name), got 3
    """
    try:
        if not is_narchi(data):
            raise SpecError("not a narchi architecture: expected an object with blocks, graph, inputs and outputs")
        given = cast(Mapping[str, Any], data)
        context = _Context()
        if "_class" in given:
            spec, outputs = _block(given, [], _Scope(""), None, context), ()
        else:
            spec, outputs = _architecture(given, context)
        context.tie_groups()
        return Translation(spec, context.collect(spec), tuple(outputs))
    except SpecError as error:
        if error.file is None:
            error.file = file
        raise


_ORIGIN = "\x00narchi"
"""The key an origin travels under in a node while the translation is being made (taken out after)."""
_FLUXION_KEYS = {"type": "_class", "id": "_id", "description": "_description", "share": "_id_share"}


@dataclass(frozen=True)
class _Scope:
    """The ids a block's ``_id_share`` may name: its siblings', then those of its ancestors."""

    prefix: str
    ids: frozenset[str] = frozenset()
    parent: _Scope | None = None

    def inner(self, name: str | None, ids: Sequence[str]) -> _Scope:
        return _Scope(self.prefix if name is None else f"{self.prefix}{name}.", frozenset(ids), self)

    def address(self, name: str) -> str | None:
        """The address of the block whose ``_id`` is ``name``, nearest first; None when none is."""
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.ids:
                return scope.prefix + name
            scope = scope.parent
        return None


@dataclass
class _Context:
    """What a translation gathers on its way: each ``_id_share`` group's blocks (JSON path, address
    and node), to tie once every block is translated."""

    groups: dict[str, list[tuple[NodePath, str, dict[str, Any]]]] = field(
        default_factory=dict[str, list[tuple[NodePath, str, dict[str, Any]]]]
    )

    def share(self, label: Any, node: dict[str, Any], address: str, scope: _Scope, path: NodePath) -> None:
        """Tie ``node`` to the block whose ``_id`` is ``label`` when one is beside it or around it;
        otherwise make it one of the group of blocks labelled so (the first one owns the weights)."""
        if not isinstance(label, str) or not label:
            raise SpecError(f"_id_share is a label (a name), got {label!r}", path=json_path([*path, "_id_share"]))
        named = scope.address(label)
        if named is not None:
            node["share"] = named
        else:
            self.groups.setdefault(label, []).append((path, address, node))

    def tie_groups(self) -> None:
        for members in self.groups.values():
            # file order: a block before the blocks inside it (which are translated first)
            (_, owner, _), *others = sorted(members, key=lambda member: _file_order(member[0]))
            for _, _, node in others:
                node["share"] = owner

    def collect(self, spec: dict[str, Any]) -> dict[str, Origin]:
        """Each node's origin by its JSON path in ``spec``, taken out of the nodes."""
        origins: dict[str, Origin] = {}
        pending: list[tuple[NodePath, dict[str, Any]]] = [([], spec)]
        while pending:
            path, node = pending.pop()
            origin = node.pop(_ORIGIN, None)
            if isinstance(origin, Origin):
                origins[json_path(path)] = origin
            for key in ("children", "nodes"):
                inner = node.get(key)
                if isinstance(inner, list):
                    for index, child in enumerate(cast(list[Any], inner)):
                        if isinstance(child, dict):
                            pending.append(([*path, key, index], cast(dict[str, Any], child)))
        return origins


def _file_order(path: NodePath) -> tuple[tuple[int, int, str], ...]:
    """A sort key putting JSON paths in the order their values appear in the file."""
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in path)


# -- the architecture: inputs, blocks, graph, outputs ---------------------------------------------------


def _architecture(data: Mapping[str, Any], context: _Context) -> tuple[dict[str, Any], list[str]]:
    for key in data:
        if key not in _ARCHITECTURE_KEYS:
            raise SpecError(
                f"{key!r} is not a key of a narchi architecture (those are {', '.join(_ARCHITECTURE_KEYS)})",
                path=json_path([key]),
            )
    for key in ("blocks", "graph", "inputs", "outputs"):
        if key not in data:
            raise SpecError(f"a narchi architecture needs blocks, graph, inputs and outputs; {key} is missing")
    inputs = _ports(data["inputs"], "inputs")
    outputs = list(_ports(data["outputs"], "outputs"))
    shapes = {
        name: _input_shape(shape, ["inputs", index, "_shape"]) for index, (name, shape) in enumerate(inputs.items())
    }
    blocks = _blocks(data["blocks"], ["blocks"])
    ids = _ids(blocks, ["blocks"], positional=False)
    for index, name in enumerate(ids):
        if name in inputs or name in outputs:
            raise SpecError(
                f"{name!r} is both a block id and an input or output id", path=json_path(["blocks", index, "_id"])
            )
    paths, returned = _outputs(_paths(data["graph"], ["graph"]), outputs)
    scope = _Scope("", frozenset(ids))
    nodes = [
        (name, _block(block, ["blocks", index], scope, name, context))
        for index, (name, block) in enumerate(zip(ids, blocks, strict=True))
    ]
    node = _wire(nodes, paths, list(inputs), returned, ["graph"])
    batch = _batch_name(shapes)
    node["inputs"] = {name: [batch, *shape] for name, shape in shapes.items()}
    node[_ORIGIN] = Origin("", {"edges": "graph", "inputs": "inputs", "outputs": "outputs"})
    return _described(node, data), outputs


def _ports(value: Any, key: str) -> dict[str, list[Any]]:
    """The ``_shape`` of each input or output by ``_id``."""
    if not isinstance(value, list) or not value:
        raise SpecError(f'{key} is a list of {{"_id": ..., "_shape": [...]}} objects, one or more', path=key)
    ports: dict[str, list[Any]] = {}
    for index, port in enumerate(cast(list[Any], value)):
        where: NodePath = [key, index]
        if not isinstance(port, Mapping):
            raise SpecError(f'expected an object {{"_id": ..., "_shape": [...]}}, got {port!r}', path=json_path(where))
        entry = cast(Mapping[str, Any], port)
        for name in entry:
            if name not in _PORT_KEYS:
                raise SpecError(
                    f"{name!r} is not a key of an {key[:-1]} (those are {', '.join(_PORT_KEYS)})",
                    path=json_path([*where, name]),
                )
        identifier, shape = entry.get("_id"), entry.get("_shape")
        if not isinstance(identifier, str) or not identifier:
            raise SpecError(f"an {key[:-1]} needs an _id, a name", path=json_path([*where, "_id"]))
        if identifier in ports:
            raise SpecError(f"duplicate {key[:-1]} id {identifier!r}", path=json_path([*where, "_id"]))
        if not isinstance(shape, list) or not shape:
            raise SpecError(
                f"an {key[:-1]} needs a _shape, a list of sizes (without the batch)", path=json_path([*where, "_shape"])
            )
        ports[identifier] = cast(list[Any], shape)
    return ports


def _input_shape(shape: list[Any], path: NodePath) -> list[int | str]:
    sizes: list[int | str] = []
    for index, size in enumerate(shape):
        found = VARIABLE.match(size) if isinstance(size, str) else None
        if found is not None and found.group(1).isidentifier():
            sizes.append(found.group(1))
        elif isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            sizes.append(size)
        else:
            raise SpecError(
                f"an input size is a positive int or <<variable:NAME>> (a symbol, not an expression), got {size!r}",
                path=json_path([*path, index]),
            )
    return sizes


def _batch_name(shapes: Mapping[str, list[int | str]]) -> str:
    """A symbol for the batch dimension that narchi leaves out, unlike every name the shapes use."""
    taken = {size for shape in shapes.values() for size in shape if isinstance(size, str)}
    candidates = [*_BATCH_NAMES, *(f"B{number}" for number in range(1, len(taken) + 2))]
    return next(name for name in candidates if name not in taken)


def _outputs(paths: list[list[str]], outputs: list[str]) -> tuple[list[list[str]], list[str]]:
    """The paths without the output ids (narchi's graph names them; fluxion returns nodes), and the
    node each output takes its value from."""
    sources: dict[str, list[str]] = {name: [] for name in outputs}
    kept: list[list[str]] = []
    for number, names in enumerate(paths):
        for position, name in enumerate(names):
            if name not in sources:
                continue
            if position != len(names) - 1:
                raise SpecError(
                    f"output {name!r} must end its path: nothing runs after an output",
                    path=json_path(["graph", number]),
                )
            if position and names[position - 1] not in sources[name]:
                sources[name].append(names[position - 1])
        rest = names[:-1] if names[-1] in sources else names
        if len(rest) > 1:
            kept.append(rest)
    returned: list[str] = []
    for index, name in enumerate(outputs):
        where = json_path(["outputs", index, "_id"])
        found = sources[name]
        if len(found) != 1:
            problem = "is in no path of the graph" if not found else f"takes several values ({', '.join(found)})"
            raise SpecError(f"output {name!r} {problem}; an output takes the value of one block", path=where)
        if found[0] in returned:
            raise SpecError(f"output {name!r} takes the value of {found[0]!r}, as an earlier output does", path=where)
        returned.append(found[0])
    return kept, returned


# -- blocks ------------------------------------------------------------------------------------------


def _block(data: Any, path: NodePath, scope: _Scope, identifier: str | None, context: _Context) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SpecError(f'a narchi block is an object with a "_class", got {data!r}', path=json_path(path))
    block = cast(Mapping[str, Any], data)
    name = block.get("_class")
    if not isinstance(name, str):
        where = json_path([*path, "_class"]) if "_class" in block else json_path(path)
        raise SpecError(f'a narchi block needs a "_class", a class name, got {name!r}', path=where)
    allowed = _CONTAINER_KEYS.get(name)
    if allowed is not None:
        for key in block:
            if key not in METADATA and key not in allowed:
                keys = ", ".join([*METADATA, *allowed])
                raise SpecError(
                    f"{key!r} is not a key of a narchi {name} (those are {keys})", path=json_path([*path, key])
                )
    if name == "Sequential":
        node = _sequential(block, path, scope, identifier, context)
    elif name == "Group":
        node = _group(block, path, scope, identifier, context)
    elif name == "Module":
        node = _module(block, path)
    else:
        node = leaf(name, block, path)
    if identifier is not None:
        first, *rest = node.items()
        node = dict([first, ("id", identifier), *rest])
    if "_id_share" in block:
        address = scope.prefix + identifier if identifier is not None else scope.prefix.removesuffix(".")
        context.share(block["_id_share"], node, address, scope, path)
    label = block.get("_name")
    node[_ORIGIN] = Origin(
        json_path(path),
        _origin_keys(name, block),
        label if isinstance(label, str) and label else None,
        name == "Module",
    )
    return _described(node, block)


def _origin_keys(name: str, block: Mapping[str, Any]) -> dict[str, str]:
    """The narchi key behind each fluxion key of a block's node (those narchi's block has)."""
    keys = {key: key for key in block if not key.startswith("_")}
    keys |= {fluxion: narchi for fluxion, narchi in _FLUXION_KEYS.items() if narchi in block}
    renames: dict[str, str] = {
        "Module": {"spec": "_path", "ext_vars": "_ext_vars"},
        "Group": {"nodes": "blocks", "edges": "graph", "inputs": "input", "outputs": "output"},
        "Sequential": {"children": "blocks"},
        **{kind: {"hidden_size": "output_feats", "return_state": "output_state"} for kind in ("LSTM", "GRU", "RNN")},
    }.get(name, {})
    if name in LEAVES:
        renames = {fluxion: narchi for narchi, fluxion in LEAVES[name].renames.items()}
    for fluxion, narchi in renames.items():
        if narchi not in block and narchi == "output_feats" and "output_size" in block:
            narchi = "output_size"  # narchi's former name of output_feats
        if narchi in block:
            keys[fluxion] = narchi
    return keys


def _described(node: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    description = data.get("_description")
    if isinstance(description, str):
        node["description"] = description
    return node


def _sequential(
    block: Mapping[str, Any], path: NodePath, scope: _Scope, identifier: str | None, context: _Context
) -> dict[str, Any]:
    where = [*path, "blocks"]
    blocks = _blocks(block.get("blocks"), where)
    ids = _ids(blocks, where, positional=True)
    inner = scope.inner(identifier, ids)
    children = [_block(child, [*where, index], inner, ids[index], context) for index, child in enumerate(blocks)]
    return {"type": "Chain", "children": children}


def _group(
    block: Mapping[str, Any], path: NodePath, scope: _Scope, identifier: str | None, context: _Context
) -> dict[str, Any]:
    for key in ("blocks", "graph", "input", "output"):
        if key not in block:
            raise SpecError(f"a Group needs blocks, graph, input and output; {key} is missing", path=json_path(path))
    where = [*path, "blocks"]
    blocks = _blocks(block["blocks"], where)
    ids = _ids(blocks, where, positional=False)
    for key in ("input", "output"):
        if block[key] not in ids:
            raise SpecError(
                f"{key} names the block that {'takes' if key == 'input' else 'gives'} the group's {key}: "
                f"one of {', '.join(ids)}; got {block[key]!r}",
                path=json_path([*path, key]),
            )
    entry = next(name for name in ("input", *(f"input_{n}" for n in range(1, len(ids) + 2))) if name not in ids)
    paths = [[entry, cast(str, block["input"])], *_paths(block["graph"], [*path, "graph"])]
    inner = scope.inner(identifier, ids)
    nodes = [
        (name, _block(child, [*where, index], inner, name, context))
        for index, (name, child) in enumerate(zip(ids, blocks, strict=True))
    ]
    return _wire(nodes, paths, [entry], [cast(str, block["output"])], [*path, "graph"])


def _module(block: Mapping[str, Any], path: NodePath) -> dict[str, Any]:
    reference = block.get("_path")
    if not isinstance(reference, str) or not reference:
        raise SpecError(
            f"a Module needs _path, the architecture file it stands for, got {reference!r}",
            path=json_path([*path, "_path"]),
        )
    variables = block.get("_ext_vars", {})
    if not isinstance(variables, Mapping):
        raise SpecError(
            f"_ext_vars is an object of values by name, got {variables!r}", path=json_path([*path, "_ext_vars"])
        )
    node: dict[str, Any] = {"spec": reference}
    if variables:
        node["ext_vars"] = dict(cast(Mapping[str, Any], variables))
    return node


def _blocks(value: Any, path: NodePath) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise SpecError(f"blocks is a list of narchi blocks, one or more, got {value!r}", path=json_path(path))
    return cast(list[Any], value)


def _ids(blocks: list[Any], path: NodePath, *, positional: bool) -> list[str]:
    """Each block's ``_id``; in a Sequential a block without one is named by its position, as narchi does."""
    ids: list[str] = []
    names = fl.Chain()
    for index, block in enumerate(blocks):
        if not isinstance(block, Mapping):
            raise SpecError(
                f'a narchi block is an object with a "_class", got {block!r}', path=json_path([*path, index])
            )
        name = cast(Mapping[str, Any], block).get("_id")
        if name is None:
            if not positional:
                raise SpecError(
                    "this block needs an _id: the name the graph knows it by", path=json_path([*path, index])
                )
            name = str(index)
        if not isinstance(name, str) or not name or "." in name:
            raise SpecError(f"an _id is a name without dots, got {name!r}", path=json_path([*path, index, "_id"]))
        if name in ids:
            raise SpecError(f"duplicate _id {name!r}", path=json_path([*path, index, "_id"]))
        try:
            names.append(fl.Identity(), name=name)  # the checks of a child name, on a stand-in
        except fl.TreeError as error:
            raise SpecError(str(error).removeprefix("Chain: "), path=json_path([*path, index, "_id"])) from None
        ids.append(name)
    return ids


# -- the graph ---------------------------------------------------------------------------------------


def _paths(value: Any, path: NodePath) -> list[list[str]]:
    usage = 'a graph is a list of paths such as "a -> b -> c"'
    if not isinstance(value, list) or not value:
        raise SpecError(f"{usage}, got {value!r}", path=json_path(path))
    paths: list[list[str]] = []
    for index, line in enumerate(cast(list[Any], value)):
        names = [part.strip() for part in line.split("->")] if isinstance(line, str) else []
        if len(names) < 2 or not all(names):
            raise SpecError(f"{usage}, got {line!r}", path=json_path([*path, index]))
        paths.append(names)
    return paths


def _wire(
    nodes: list[tuple[str, dict[str, Any]]],
    paths: list[list[str]],
    inputs: list[str],
    outputs: list[str],
    path: NodePath,
) -> dict[str, Any]:
    """A Chain when the paths run through every node in one line, else a Graph; checked either way."""
    ids = [name for name, _ in nodes]
    edges = [" -> ".join(names) for names in paths]
    try:
        fl.Graph({name: fl.Identity() for name in ids}, edges, inputs, outputs)  # its checks, on stand-ins
    except fl.TreeError as error:
        raise SpecError(str(error).removeprefix("Graph: "), path=json_path(path)) from None
    order = _line(paths, inputs, outputs, ids)
    if order is not None:
        by_id = dict(nodes)
        return {"type": "Chain", "children": [by_id[name] for name in order]}
    return {"type": "Graph", "nodes": [node for _, node in nodes], "edges": edges, "inputs": inputs, "outputs": outputs}


def _line(paths: list[list[str]], inputs: list[str], outputs: list[str], ids: list[str]) -> list[str] | None:
    """The node ids in order when the graph is one line from its input to its output, else None."""
    if len(inputs) != 1 or len(outputs) != 1:
        return None
    successors: dict[str, set[str]] = {}
    predecessors: dict[str, set[str]] = {}
    for names in paths:
        for source, target in itertools.pairwise(names):
            successors.setdefault(source, set()).add(target)
            predecessors.setdefault(target, set()).add(source)
    order: list[str] = []
    current = inputs[0]
    while current in successors:
        following = successors[current]
        if len(following) != 1:
            return None
        (current,) = following
        if len(predecessors[current]) != 1:
            return None
        order.append(current)
    return order if len(order) == len(ids) and order[-1:] == outputs else None
