"""TorchArc's format 1 (the dict "arc" of torcharc 1.x), read as it is: translated to fluxion's spec format.

Two kinds of arc, recognised by their keys:

- a layer stack, ``type`` + ``layers`` (``{type: Linear, in_features: 8, layers: [64, 32],
  batch_norm: true, activation: ReLU, dropout: 0.2}``): for each row of ``layers``, the main
  layer (the row's values after the input size, positional as torch orders them), then the
  ``batch_norm``, ``activation`` and ``dropout`` layers in the order the arc writes those keys;
  one flat Chain whose children are named ``"0"``, ``"1"``... (torch's ``nn.Sequential`` names,
  so the keys are TorchArc's: ``0.weight``, ``1.running_mean``...);
- a DAG, ``dag_in_shape`` (a shape, or shapes by input name) + sub-arcs run in the arc's order,
  each reading the keys its ``in_names`` give (the first key by default) of the dict flowing
  through, the keys it did not read carried forward after its output, as TorchArc's
  ``carry_forward`` does. It becomes a Graph whose one node is a Graph named ``module_dict``
  (TorchArc's ``nn.ModuleDict``) holding a node per sub-arc, so the keys are TorchArc's
  (``module_dict.<name>.0.weight``), and it takes a tensor or, for shapes by name, one dict of
  them, returning a tensor or a dict in TorchArc's key order. Every size is inferred from
  ``dag_in_shape`` by fluxion's shape inference (no forward at build: BatchNorm statistics stay
  untouched).

``ReuseFork``, ``SplitFork``, ``ConcatMerge`` and ``FiLMMerge`` become graph wiring, ``Split``,
``Cat`` and ``FiLM`` (with TorchArc 1's child names ``conditioner_scale`` and
``conditioner_shift``). An ``init`` inside a DAG's sub-arc is returned as initializers of that
sub-arc's weight matrices (``Translation.init``), with the gain of its ``activation``; a root
``init`` is a spec's training section (``fluxion.spec.training``).

>>> spec = translate({"type": "Linear", "in_features": 4, "layers": [8, 2], "activation": "ReLU"})
>>> [(child["id"], child["type"]) for child in spec["children"]]
[('0', 'Linear'), ('1', 'ReLU'), ('2', 'Linear'), ('3', 'ReLU')]
>>> spec["inputs"]
{'input': ['B', 4]}
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from fluxion.errors import SpecError, TrainingError
from fluxion.spec.messages import json_path
from fluxion.spec.torcharc.classes import closest, extra_classes, leaf, torch_classes
from fluxion.spec.translation import Origin, Translation
from fluxion.training.init import parse_initializer

Path = list[str | int]

SUB_LAYERS = ("batch_norm", "activation", "dropout")
"""The keys of a layer stack that add a layer after each main layer, in the order the arc writes them."""

STACK_KEYS = ("type", "layers", "in_features", "in_shape", *SUB_LAYERS, "init", "in_names")
"""Every key a layer stack may have (``in_names`` only inside a DAG)."""

OWN_KEYS = {
    "ReuseFork": ("type", "names", "in_names"),
    "SplitFork": ("type", "shapes", "in_names"),
    "ConcatMerge": ("type", "in_names"),
    "FiLMMerge": ("type", "names", "shapes", "in_names", "init"),
}
"""TorchArc 1's own modules and the keys each takes in an arc."""

FILM_NAMES = ("conditioner_scale", "conditioner_shift")
"""The child names of TorchArc 1's ``FiLMMerge``: its state_dict keys."""

INFERRED = frozenset({"Linear", "Conv1d", "Conv2d", "Conv3d"})
"""The stack types whose input size a DAG infers (as TorchArc does) and fluxion's shape inference fills in."""

_MATRIX_LAYERS = (torch.nn.Linear, torch.nn.Bilinear, torch.nn.modules.conv._ConvNd, torch.nn.Embedding)  # pyright: ignore[reportPrivateUsage]
"""Classes whose ``weight`` TorchArc's ``init`` fills and fluxion's init fills too (a matrix, not a norm's scale)."""

_SAFE_SUFFIX = re.compile(r"^\w+$")


def is_arc(data: Any) -> bool:
    """Whether a spec's value is a TorchArc format 1 arc: a mapping with ``dag_in_shape``, or with
    ``type`` and ``layers``. (A plain ``{type: Linear, in_features, out_features}`` is fluxion's
    own format too, and gives the same module.)

    >>> is_arc({"dag_in_shape": [4], "head": {"type": "Linear", "out_features": 2}})
    True
    >>> is_arc({"type": "Linear", "in_features": 4, "layers": [8]}), is_arc({"type": "Linear", "in_features": 4})
    (True, False)
    """
    if not isinstance(data, Mapping):
        return False
    keys = cast(Mapping[Any, Any], data)
    return "dag_in_shape" in keys or ("type" in keys and "layers" in keys)


def translate(data: Any, *, file: str | None = None) -> dict[str, Any]:
    """fluxion's spec for a TorchArc format 1 arc (see ``translation``).

    >>> translate({"type": "Linear", "in_features": 4, "layers": [8], "activaton": "ReLU"}, file="mlp.json")
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: mlp.json: activaton: 'activaton' is not a key of a TorchArc layer stack (closest: \
activation)
    """
    return translation(data, file=file).spec


def translation(data: Any, *, file: str | None = None) -> Translation:
    """``translate``, with the place in the arc of each node (for errors found later), the plain
    torch classes it names and the initializers its sub-arcs give.

    >>> found = translation({"dag_in_shape": [4], "head": {"type": "Linear", "out_features": 2, "init": "zeros_"}})
    >>> found.spec["nodes"][0]["nodes"], found.init
    ([{'type': 'Linear', 'out_features': 2, 'id': 'head'}], {'module_dict.head.weight': {'type': 'zeros_'}})
    """
    try:
        return _Translator().arc(data)
    except SpecError as error:
        if error.file is None:
            error.file = file
        raise


@dataclass
class _Module:
    """A translated sub-arc: its node, the origins inside it (by JSON path within the node), and the
    places of the weight matrices its ``init`` fills (``""``: the node itself; ``"0"``: its child 0)."""

    node: dict[str, Any]
    origins: dict[str, Origin] = field(default_factory=dict[str, Origin])
    matrices: list[str] = field(default_factory=list[str])


@dataclass(frozen=True)
class _Value:
    """A value flowing through the DAG: a graph name; ``index``: item ``index`` of that node's tuple
    (a Get node, made when read); ``feed``: a call of a ReuseFork's node, wired from ``feed`` when read."""

    name: str
    index: int | None = None
    feed: _Value | None = None


@dataclass
class _Translator:
    """The DAG being translated: its nodes by name, edges, initializers, and which names were read."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    origins: dict[str, Origin] = field(default_factory=dict[str, Origin])
    edges: list[str] = field(default_factory=list[str])
    init: dict[str, Any] = field(default_factory=dict[str, Any])
    read: set[str] = field(default_factory=set[str])
    forks: set[str] = field(default_factory=set[str])
    taken: set[str] = field(default_factory=set[str])
    names: dict[_Value, str] = field(default_factory=dict[_Value, str])

    def arc(self, data: Any) -> Translation:
        if not isinstance(data, Mapping):
            raise SpecError("a TorchArc arc is a mapping")
        arc = cast(Mapping[str, Any], data)
        if "dag_in_shape" in arc:
            return self.dag(arc)
        stack = _stack(arc, [], in_dag=False)
        spec: dict[str, Any] = {"type": "Chain", "children": stack.node["children"]}
        kind = arc["type"]
        shape = [arc["in_features"]] if kind == "Linear" and "in_features" in arc else None
        if kind in INFERRED and kind != "Linear" and "in_shape" in arc:
            shape = list(arc["in_shape"])
        classes = extra_classes(_types(spec))
        if shape is not None:  # sizes checked at load; torch's own leaves have no shape rule: numbers then
            spec = {"type": "Chain", "inputs": {"input": [4 if classes else "B", *shape]}, **spec}
        origins = {"": Origin("", {"inputs": "in_shape" if kind != "Linear" else "in_features"}), **stack.origins}
        return Translation(spec, origins, classes=classes, materialize_on_call=shape is None)

    def dag(self, arc: Mapping[str, Any]) -> Translation:
        given = arc["dag_in_shape"]
        named = isinstance(given, Mapping)
        shapes = _dag_shapes(given)
        arcs = {key: value for key, value in arc.items() if key != "dag_in_shape"}
        typed = "type" in arcs
        if typed:  # TorchArc names a DAG of one typed arc after its type
            arcs = {str(arcs["type"]): arcs}
        if not arcs:
            raise SpecError("a DAG arc has sub-arcs beside dag_in_shape ({name: {type: ..., ...}})")
        paths: dict[str, Path] = {name: [] if typed else [name] for name in arcs}
        for name in arcs:
            _check_name(name, "a sub-arc's name", json_path(paths[name]))
        self.taken = set(arcs)
        if named:
            for name in shapes:
                _check_name(name, "an input's name", json_path(["dag_in_shape", name]))
        else:
            shapes = {"input": shapes[""]}
        inner = {name: _free(name, self.taken) for name in shapes}  # a sub-arc may share an input's name
        self.taken |= set(inner.values())
        current: _Value | dict[str, _Value] = (
            {name: _Value(inner[name]) for name in shapes} if named else _Value(inner["input"])
        )
        for name, sub_arc in arcs.items():
            current = self.sub_arc(name, sub_arc, current, paths[name])
        outputs: str | dict[str, str] = (
            self.reference(current)
            if isinstance(current, _Value)
            else {key: self.reference(value) for key, value in current.items()}
        )
        unread = [name for name in arcs if name not in self.read and name not in self.forks]
        if unread:
            raise SpecError(
                f"the output of {unread[0]!r} is never read: a later output replaces it in the dict",
                path=json_path(paths[unread[0]]),
            )
        nodes = [{**node, "id": name} for name, node in self.nodes.items() if name in self.read]
        graph = {"type": "Graph", "id": "module_dict", "inputs": list(inner.values()), "nodes": nodes}
        graph |= {"edges": self.edges, "outputs": outputs}
        classes = extra_classes(_types(graph))
        batch: int | str = 4 if classes else "B"  # torch's own leaves have no shape rule: numbers then
        root = {name: _free(name, {"module_dict"}) for name in shapes}
        spec: dict[str, Any] = {
            "type": "Graph",
            "inputs": {root[name]: [batch, *shape] for name, shape in shapes.items()},
            "nodes": [graph],
            "edges": [f"{name} -> module_dict" for name in root.values()],
            "outputs": "module_dict",
        }
        positions = {node["id"]: index for index, node in enumerate(nodes)}
        origins: dict[str, Origin] = {"": Origin("", {"inputs": "dag_in_shape"}), "nodes[0]": Origin("")}
        for place, origin in self.origins.items():
            name, _, inner = place.partition("/")
            if name in positions:
                origins[f"nodes[0].nodes[{positions[name]}]{'.' if inner else ''}{inner}"] = origin
        return Translation(spec, origins, classes=classes, init=self.init or None)

    def sub_arc(
        self, name: str, given: Any, current: _Value | dict[str, _Value], path: Path
    ) -> _Value | dict[str, _Value]:
        """Translate one sub-arc and return what flows on: TorchArc's ``carry_forward``."""
        where = json_path(path)
        if not isinstance(given, Mapping) or "type" not in given:
            raise SpecError(f"a sub-arc is a mapping with a type ({{type: Linear, ...}}), got {given!r}", path=where)
        sub = cast(Mapping[str, Any], given)
        if isinstance(current, _Value):  # TorchArc hands a lone tensor on, whatever in_names say
            read = [""]
            arguments = {"": current}
        else:
            read = _in_names(sub, current, path)
            arguments = {key: current[key] for key in read}
        output = self.module(name, sub, arguments, path)
        if isinstance(current, _Value):
            return output
        unused = {key: value for key, value in current.items() if key not in read}
        if not unused:
            return output
        if isinstance(output, _Value):
            return {read[0]: output, **unused}
        return {**output, **unused}

    def module(
        self, name: str, sub: Mapping[str, Any], arguments: dict[str, _Value], path: Path
    ) -> _Value | dict[str, _Value]:
        kind = sub["type"]
        where = json_path(path)
        if kind in OWN_KEYS:
            _known_keys(sub, OWN_KEYS[kind], path, f"TorchArc's {kind}")
        values = list(arguments.values())
        if kind == "ConcatMerge":
            if len(values) < 2:
                raise SpecError("ConcatMerge concatenates the keys in_names gives: name two or more", path=where)
            return self.add(name, _Module({"type": "Cat", "dim": 1}, {"": Origin(where)}), values)
        if kind == "FiLMMerge":
            feature, conditioner = _film_names(sub, list(arguments), path)
            module = _Module({"type": "FiLM", "names": list(FILM_NAMES)}, {"": Origin(where)}, list(FILM_NAMES))
            self.initialize(name, sub, module, path)
            return self.add(name, module, [arguments[feature], arguments[conditioner]])
        if len(values) != 1:
            raise SpecError(
                f"{kind} takes one value, but in_names names {len(values)} keys: {', '.join(arguments)}; only "
                "ConcatMerge and FiLMMerge take several",
                path=json_path([*path, "in_names"]),
            )
        if kind == "ReuseFork":
            forks = _names(sub.get("names"), [*path, "names"])
            self.nodes[name] = {"type": "Identity"}
            self.forks.add(name)
            calls = [f"{name}~{fork if _SAFE_SUFFIX.match(fork) else index}" for index, fork in enumerate(forks)]
            return {fork: _Value(call, feed=values[0]) for fork, call in zip(forks, calls, strict=True)}
        if kind == "SplitFork":
            sizes = _split_shapes(sub.get("shapes"), [*path, "shapes"])
            split = {"type": "Split", "split_size_or_sections": list(sizes.values()), "dim": 1}
            self.add(name, _Module(split, {"": Origin(where)}), values)
            self.forks.add(name)
            return {key: _Value(name, index=index) for index, key in enumerate(sizes)}
        module = _stack(sub, path, in_dag=True) if "layers" in sub else _plain(sub, path)
        self.initialize(name, sub, module, path)
        return self.add(name, module, values)

    def initialize(self, name: str, sub: Mapping[str, Any], module: _Module, path: Path) -> None:
        """Record a sub-arc's ``init`` for its weight matrices, checked now (errors at its place)."""
        spec = sub.get("init")
        if not spec:
            return
        activation = sub.get("activation")
        entry: dict[str, Any] = {"type": spec} if isinstance(spec, str) else dict(cast(Mapping[str, Any], spec))
        if isinstance(activation, str) and activation:
            entry.setdefault("activation", activation)
        try:
            parse_initializer(entry)
        except TrainingError as error:
            raise SpecError(str(error), path=json_path([*path, "init", *error.path])) from None
        if not module.matrices:
            raise SpecError(
                f"{sub['type']} has no weight matrix for init to fill (TorchArc's init fills a layer's .weight)",
                path=json_path([*path, "init"]),
            )
        for place in module.matrices:
            self.init[".".join(part for part in ("module_dict", name, place, "weight") if part)] = entry

    def add(self, name: str, module: _Module, arguments: list[_Value]) -> _Value:
        self.nodes[name] = module.node
        for place, origin in module.origins.items():
            self.origins[f"{name}/{place}"] = origin
        for argument in arguments:
            self.edges.append(f"{self.reference(argument)} -> {name}")
        return _Value(name)

    def reference(self, value: _Value) -> str:
        """The graph name of a value, its node marked read; a tuple's item gets a Get node, a
        ReuseFork's call its incoming edge, when first read."""
        if value in self.names:
            return self.names[value]
        self.read.add(value.name.partition("~")[0])
        found = value.name
        if value.feed is not None:
            self.edges.append(f"{self.reference(value.feed)} -> {value.name}")
        elif value.index is not None:
            found = _free(f"{value.name}_{value.index}", self.taken)
            self.taken.add(found)
            self.nodes[found] = {"type": "Get", "key": value.index}
            self.read.add(found)
            self.edges.append(f"{value.name} -> {found}")
        self.names[value] = found
        return found


def _stack(arc: Mapping[str, Any], path: Path, *, in_dag: bool) -> _Module:
    """A layer stack (``type`` + ``layers``) as a flat Chain, TorchArc's ``sequential.build``."""
    _known_keys(arc, STACK_KEYS if in_dag else STACK_KEYS[:-1], path, "a TorchArc layer stack")
    kind = _torch_type(arc.get("type"), [*path, "type"])
    rows = arc.get("layers")
    if not isinstance(rows, list) or not rows:
        raise SpecError(
            f"layers is a non-empty list of sizes or of rows, got {rows!r}", path=json_path([*path, "layers"])
        )
    dim = int(next((char for char in kind if char.isdigit()), "1"))
    size = _input_size(arc, kind, path, in_dag=in_dag)
    parameters = _positional_parameters(kind)
    cls = torch_classes()[kind]
    children: list[dict[str, Any]] = []
    origins: dict[str, Origin] = {}
    matrices: list[str] = []
    for index, row in enumerate(cast(list[Any], rows)):
        row_path = [*path, "layers", index]
        values = [*cast(list[Any], row)] if isinstance(row, list) else [row]
        arguments = [size, *values]
        if len(arguments) > len(parameters):
            raise SpecError(
                f"a row of {kind} gives at most {len(parameters) - 1} values after the input size "
                f"({', '.join(parameters[1:])}), got {len(values)}",
                path=json_path(row_path),
            )
        if not values:
            raise SpecError(f"a row of {kind} gives at least its output size, got {row!r}", path=json_path(row_path))
        named = {key: value for key, value in zip(parameters, arguments, strict=False) if value is not None}
        origins[f"children[{len(children)}]"] = Origin(json_path(row_path))
        if issubclass(cls, _MATRIX_LAYERS):
            matrices.append(str(len(children)))
        children.append(_leaf(kind, named, row_path))
        out = values[0]
        for key, value in arc.items():
            if key not in SUB_LAYERS or not value:  # TorchArc adds nothing for a false value
                continue
            origins[f"children[{len(children)}]"] = Origin(json_path([*path, key]))
            children.append(_sub_layer(key, value, out, dim, [*path, key]))
        size = out
    for index, child in enumerate(children):
        child["id"] = str(index)
    return _Module({"type": "Chain", "children": children}, origins, matrices)


def _plain(sub: Mapping[str, Any], path: Path) -> _Module:
    """A sub-arc without layers: ``type`` with its keyword arguments (TorchArc's ``build_module``)."""
    kind = _torch_type(sub.get("type"), [*path, "type"])
    arguments = {key: value for key, value in sub.items() if key not in ("type", "in_names", "init")}
    if kind == "Linear":
        arguments.pop("in_features", None)  # a DAG infers it, as TorchArc does
    node = _leaf(kind, arguments, path)
    matrices = [""] if issubclass(torch_classes()[kind], _MATRIX_LAYERS) else []
    return _Module(node, {"": Origin(json_path(path), {key: key for key in arguments})}, matrices)


def _leaf(kind: str, arguments: dict[str, Any], path: Path) -> dict[str, Any]:
    node = leaf(kind, arguments, path)
    node.pop("id", None)
    return node


def _sub_layer(key: str, value: Any, out: Any, dim: int, path: Path) -> dict[str, Any]:
    """The layer a stack's ``batch_norm``, ``activation`` or ``dropout`` adds after a main layer."""
    if dim not in (1, 2, 3) and key != "activation":
        raise SpecError(f"TorchArc has no {key} for {dim}-d layers (1 to 3)", path=json_path(path))
    if key == "batch_norm":
        return _leaf(f"BatchNorm{dim}d", {"num_features": out}, path)
    if key == "dropout":
        return _leaf("Dropout" if dim == 1 else f"Dropout{dim}d", {"p": value}, path)
    if not isinstance(value, str) or value not in torch_classes():
        hint = closest(str(value), list(torch_classes()))
        raise SpecError(f"activation names a torch.nn class (ReLU, Tanh...), got {value!r}{hint}", path=json_path(path))
    return _leaf(value, {}, path)


def _input_size(arc: Mapping[str, Any], kind: str, path: Path, *, in_dag: bool) -> Any:
    """The first layer's input size: ``in_features`` for Linear, ``in_shape[0]`` for the others;
    None (inferred) for a Linear or a convolution inside a DAG, or when left out of one."""
    if in_dag and kind in INFERRED:
        return None  # TorchArc infers it from the DAG's value, over what the arc says
    if kind == "Linear":
        if "in_shape" in arc and "in_features" not in arc:
            raise SpecError("a Linear stack takes in_features, not in_shape", path=json_path([*path, "in_shape"]))
        return arc.get("in_features")
    shape = arc.get("in_shape")
    if shape is None:
        if kind in INFERRED:
            return None
        raise SpecError(f"a {kind} stack needs in_shape (its input's shape without the batch)", path=json_path(path))
    if not isinstance(shape, list) or not shape:
        raise SpecError(f"in_shape is a list of sizes, got {shape!r}", path=json_path([*path, "in_shape"]))
    return cast(list[Any], shape)[0]


def _torch_type(kind: Any, path: Path) -> str:
    if not isinstance(kind, str) or kind not in torch_classes():
        names = [*torch_classes(), *OWN_KEYS]
        hint = closest(str(kind), names)
        raise SpecError(f"type names a torch.nn class or one of TorchArc's, got {kind!r}{hint}", path=json_path(path))
    return kind


def _positional_parameters(kind: str) -> list[str]:
    """torch's constructor parameters of ``kind`` that may be given by position, in order."""
    cls = torch_classes()[kind]
    init: Any = torch.nn.RNNBase if issubclass(cls, torch.nn.RNNBase) else cls  # GRU(*args): RNNBase's after mode
    parameters = [parameter for parameter in inspect.signature(init).parameters.values() if parameter.name != "mode"]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [parameter.name for parameter in parameters if parameter.kind in positional]


def _dag_shapes(given: Any) -> dict[str, list[int]]:
    """``dag_in_shape``'s shapes by input name (``""`` for one shape)."""
    if isinstance(given, Mapping) and given:
        named = cast(Mapping[Any, Any], given)
        return {str(name): _shape(shape, ["dag_in_shape", str(name)]) for name, shape in named.items()}
    if isinstance(given, list):
        return {"": _shape(given, ["dag_in_shape"])}
    raise SpecError(
        f"dag_in_shape is a shape without the batch ([3, 32, 32]) or shapes by name, got {given!r}",
        path="dag_in_shape",
    )


def _shape(given: Any, path: Path) -> list[int]:
    sizes = cast(list[Any], given) if isinstance(given, list) else None
    if not sizes or any(isinstance(size, bool) or not isinstance(size, int) or size < 0 for size in sizes):
        raise SpecError(f"a shape is a list of sizes (without the batch), got {given!r}", path=json_path(path))
    return [cast(int, size) for size in sizes]


def _in_names(sub: Mapping[str, Any], current: Mapping[str, _Value], path: Path) -> list[str]:
    """The keys a sub-arc reads from the dict flowing in: ``in_names`` (once each), else the first."""
    if "in_names" not in sub:
        return [next(iter(current))]
    names = _names(sub["in_names"], [*path, "in_names"])
    for index, name in enumerate(names):
        if name not in current:
            hint = closest(name, list(current))
            raise SpecError(
                f"{name!r} is not a key of the dict here ({', '.join(current)}){hint}",
                path=json_path([*path, "in_names", index]),
            )
    return list(dict.fromkeys(names))


def _names(given: Any, path: Path) -> list[str]:
    if not isinstance(given, list) or not given or not all(isinstance(name, str) for name in cast(list[Any], given)):
        raise SpecError(f"a list of names is expected, got {given!r}", path=json_path(path))
    return cast(list[str], given)


def _film_names(sub: Mapping[str, Any], read: list[str], path: Path) -> tuple[str, str]:
    names = sub.get("names")
    where = json_path([*path, "names"])
    if not isinstance(names, Mapping) or set(cast(Mapping[Any, Any], names)) != {"feature", "conditioner"}:
        raise SpecError(f"FiLMMerge's names are {{feature: <key>, conditioner: <key>}}, got {names!r}", path=where)
    chosen = cast(Mapping[str, Any], names)
    feature, conditioner = chosen["feature"], chosen["conditioner"]
    if sorted(read) != sorted([feature, conditioner]) or feature == conditioner:
        raise SpecError(
            f"FiLMMerge reads its feature {feature!r} and conditioner {conditioner!r}: in_names must be those two "
            f"keys, got {', '.join(read) or 'none'}",
            path=json_path([*path, "in_names"]),
        )
    return feature, conditioner


def _split_shapes(given: Any, path: Path) -> dict[str, int]:
    """SplitFork's ``shapes``: each name's size along dim 1 (``{mean: [4], std: [4]}``)."""
    where = json_path(path)
    if not isinstance(given, Mapping) or not given:
        raise SpecError(f"SplitFork's shapes are sizes by name ({{mean: [4], std: [4]}}), got {given!r}", path=where)
    sizes: dict[str, int] = {}
    for name, shape in cast(Mapping[Any, Any], given).items():
        items = cast(list[Any], shape) if isinstance(shape, list) else [shape]
        size: Any = items[0] if len(items) == 1 else None
        if not isinstance(name, str) or isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise SpecError(f"a SplitFork piece is a name and a size ([4]), got {name!r}: {shape!r}", path=where)
        sizes[name] = size
    return sizes


def _known_keys(arc: Mapping[str, Any], allowed: Sequence[str], path: Path, what: str) -> None:
    for key in arc:
        if key not in allowed:
            hint = closest(str(key), list(allowed)) or f" (those are {', '.join(allowed)})"
            raise SpecError(f"{key!r} is not a key of {what}{hint}", path=json_path([*path, str(key)]))


def _check_name(name: Any, what: str, where: str) -> None:
    if not isinstance(name, str) or not name or "." in name or "~" in name or "->" in name or " " in name:
        raise SpecError(f"{what} is a name without dots, spaces, '~' or '->', got {name!r}", path=where)


def _free(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name


def _types(node: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    pending = [node]
    while pending:
        current = pending.pop()
        found.add(cast(str, current["type"]))
        pending.extend(cast(list[dict[str, Any]], current.get("children", [])))
        pending.extend(cast(list[dict[str, Any]], current.get("nodes", [])))
    return found
