"""TorchArc's module specs (the values of ``modules:``), each as a fluxion spec node.

A module spec has one key: ``{Class: kwargs | null}`` (a leaf, see ``classes``),
``{Sequential: [leaf specs]}`` (a Chain whose children are named ``"0"``, ``"1"``..., torch's
``nn.Sequential`` names) or ``{compact: {prelayer, layer: {type, keys, args}, postlayer}}``, which
TorchArc expands into one Sequential: for each row of ``args``, the prelayers, the layer with
``dict(zip(keys, row))`` and the postlayers, indexed flat. A row whose length is not that of
``keys`` is refused here (TorchArc's ``zip`` would drop the extra values silently).

Each node comes with its origin: the place of the module spec in the file, for errors found later.

>>> node, origins = module_node({"Sequential": [{"LazyLinear": {"out_features": 4}}, {"ReLU": None}]}, "mlp")
>>> node
{'type': 'Chain', 'children': [{'type': 'Linear', 'out_features': 4, 'id': '0'}, {'type': 'ReLU', 'id': '1'}]}
>>> origins["children[0]"].path
'modules.mlp.Sequential[0]'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from fluxion.errors import SpecError
from fluxion.spec.messages import json_path
from fluxion.spec.torcharc.classes import FORMS, NodePath, closest, leaf
from fluxion.spec.translation import Origin

_COMPACT_KEYS = ("prelayer", "layer", "postlayer")
_LAYER_KEYS = ("type", "keys", "args")


def module_node(spec: Any, name: str) -> tuple[dict[str, Any], dict[str, Origin]]:
    """The fluxion node for the module spec ``modules.<name>`` and the origin of each node in it,
    by its JSON path within the node (``""`` for the node itself).

    >>> module_node({"Linear": {"in_features": 2, "out_features": 3}, "ReLU": None}, "head")
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: modules.head: a module spec has one key (a class, Sequential or compact), \
got 2: Linear, ReLU; write each module under its own name
    """
    path: NodePath = ["modules", name]
    kind, value = _one_key(spec, path)
    if kind == "Sequential" and value is not None:
        return _sequential(value, [*path, "Sequential"])
    if kind == "compact":
        return _compact(value, [*path, "compact"])
    if kind == "Sequential":  # {Sequential: null}: an empty one, the identity, as TorchArc builds it
        return {"type": "Chain", "children": []}, {"": Origin(json_path(path))}
    return leaf(kind, value, path), {"": _leaf_origin(kind, value, path)}


def _one_key(spec: Any, path: NodePath) -> tuple[str, Any]:
    where = json_path(path)
    if not isinstance(spec, Mapping):
        raise SpecError(
            f"a module spec is a mapping with one key: {{Class: kwargs}}, {{Sequential: [...]}} or "
            f"{{compact: {{...}}}}, got {type(spec).__name__} {spec!r}",
            path=where,
        )
    keys = list(cast(Mapping[Any, Any], spec))
    if len(keys) != 1:
        shown = ", ".join(map(str, keys)) or "none"
        raise SpecError(
            f"a module spec has one key (a class, Sequential or compact), got {len(keys)}: {shown}"
            + ("; write each module under its own name" if len(keys) > 1 else ""),
            path=where,
        )
    kind = keys[0]
    if not isinstance(kind, str):
        raise SpecError(f"a module spec's key is a class name, got {kind!r}", path=where)
    return kind, cast(Mapping[str, Any], spec)[kind]


def _leaf_origin(kind: str, kwargs: Any, path: NodePath) -> Origin:
    """Where a leaf's arguments are: ``out_features`` -> ``<path>.Linear.out_features``."""
    keys = {key: f"{kind}.{key}" for key in cast(Mapping[str, Any], kwargs or {})}
    return Origin(json_path(path), keys)


def _inner_leaf(spec: Any, path: NodePath, container: str) -> tuple[dict[str, Any], Origin]:
    """A leaf spec inside a Sequential or compact: a class only (TorchArc refuses nesting too)."""
    kind, value = _one_key(spec, path)
    if kind in FORMS:
        raise SpecError(
            f"a {container} holds classes ({{Class: kwargs}}), not a {kind}: TorchArc does not nest them; "
            "give the inner one its own name in modules and wire the two in the graph",
            path=json_path([*path, kind]),
        )
    return leaf(kind, value, path), _leaf_origin(kind, value, path)


def _sequential(value: Any, path: NodePath) -> tuple[dict[str, Any], dict[str, Origin]]:
    if not isinstance(value, list):
        raise SpecError(
            f"Sequential takes a list of module specs ([{{Linear: {{...}}}}, {{ReLU: null}}]), got {value!r}",
            path=json_path(path),
        )
    children: list[dict[str, Any]] = []
    origins = {"": Origin(json_path(path[:-1]))}
    for index, item in enumerate(cast(list[Any], value)):
        node, origin = _inner_leaf(item, [*path, index], "Sequential")
        children.append({**node, "id": str(index)})
        origins[f"children[{index}]"] = origin
    return {"type": "Chain", "children": children}, origins


def _compact(value: Any, path: NodePath) -> tuple[dict[str, Any], dict[str, Origin]]:
    where = json_path(path)
    if not isinstance(value, Mapping):
        raise SpecError(f"compact takes a mapping with {', '.join(_COMPACT_KEYS)}, got {value!r}", path=where)
    compact = cast(Mapping[str, Any], value)
    _known_keys(compact, _COMPACT_KEYS, path, "compact")
    if "layer" not in compact:
        raise SpecError("compact needs a layer: {type, keys, args}", path=where)
    layer = compact["layer"]
    layer_path = [*path, "layer"]
    if not isinstance(layer, Mapping):
        raise SpecError(
            f"compact's layer is a mapping with {', '.join(_LAYER_KEYS)}, got {layer!r}", path=json_path(layer_path)
        )
    layer_spec = cast(Mapping[str, Any], layer)
    _known_keys(layer_spec, _LAYER_KEYS, layer_path, "compact's layer")
    for key in _LAYER_KEYS:
        if key not in layer_spec:
            raise SpecError(f"compact's layer needs {key} ({', '.join(_LAYER_KEYS)})", path=json_path(layer_path))
    kind, keys, rows = layer_spec["type"], layer_spec["keys"], layer_spec["args"]
    if not isinstance(kind, str):
        raise SpecError(f"type is a class name, got {kind!r}", path=json_path([*layer_path, "type"]))
    if kind in ("Sequential", "compact"):
        raise SpecError(f"compact's layer is a class, not {kind}", path=json_path([*layer_path, "type"]))
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in cast(list[Any], keys)):
        raise SpecError(f"keys is a list of argument names, got {keys!r}", path=json_path([*layer_path, "keys"]))
    if not isinstance(rows, list):
        raise SpecError(
            f"args is a list of argument values, one per layer, got {rows!r}", path=json_path([*layer_path, "args"])
        )
    names = cast(list[str], keys)
    before = _layer_list(compact.get("prelayer"), [*path, "prelayer"])
    after = _layer_list(compact.get("postlayer"), [*path, "postlayer"])
    children: list[dict[str, Any]] = []
    origins = {"": Origin(json_path(path[:-1]))}
    for row_index, row in enumerate(cast(list[Any], rows)):
        row_path = [*layer_path, "args", row_index]
        values = cast(list[Any], row) if isinstance(row, list) else [row]  # TorchArc wraps a single value
        if len(values) != len(names):
            raise SpecError(
                f"this row gives {len(values)} value{'s' * (len(values) != 1)} for {len(names)} keys "
                f"({', '.join(names)}): give one value per key",
                path=json_path(row_path),
            )
        for spec, origin in before:
            origins[f"children[{len(children)}]"] = origin
            children.append({**spec, "id": str(len(children))})
        try:
            mid = leaf(kind, dict(zip(names, values, strict=True)), layer_path)
        except SpecError as error:
            error.path = json_path([*layer_path, "type"])
            raise
        origins[f"children[{len(children)}]"] = Origin(json_path(row_path))
        children.append({**mid, "id": str(len(children))})
        for spec, origin in after:
            origins[f"children[{len(children)}]"] = origin
            children.append({**spec, "id": str(len(children))})
    return {"type": "Chain", "children": children}, origins


def _layer_list(value: Any, path: NodePath) -> list[tuple[dict[str, Any], Origin]]:
    """A compact's prelayer or postlayer: a list of class specs (a single one is taken as a list of one)."""
    if value is None:
        return []
    items = cast(list[Any], value) if isinstance(value, list) else [value]
    return [_inner_leaf(item, [*path, index], "compact") for index, item in enumerate(items)]


def _known_keys(given: Mapping[str, Any], allowed: tuple[str, ...], path: NodePath, what: str) -> None:
    for key in given:
        if key not in allowed:
            hint = closest(str(key), list(allowed)) or f" (those are {', '.join(allowed)})"
            raise SpecError(f"{key!r} is not a key of {what}{hint}", path=json_path([*path, str(key)]))
