"""Building a tree from a spec's JSON value: nodes to modules, ids to addresses.

A node is an object naming a registered class (or one of torch's, ``"torch.nn.GELU"``) in
``"type"``, with an optional ``"id"`` (its name in its parent, so its address is the path of ids),
its constructor arguments (as keys of the node or in ``"args"``) and, for a container, its
``"children"``. A ``"Graph"`` node has ``"nodes"``, ``"edges"``, ``"inputs"`` and ``"outputs"``
instead. A node ``{"spec": "file.jsonnet", "args": {...}}`` builds another spec file (``args`` are
its top-level arguments). ``"share"`` ties a node's parameters to another node's, by address.
See docs/specs.md for the whole format.

>>> import fluxion.layers as fl
>>> from fluxion.spec.build import Builder
>>> from fluxion.spec.source import read
>>> head = {"type": "Linear", "id": "head", "in_features": 4, "out_features": 2}
>>> Builder().build(read({"type": "Chain", "children": [head]}))
(CHAIN) Chain()
    └── head: Linear(in_features=4, out_features=2, bias=True)
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

import fluxion.layers as fl
from fluxion.errors import FluxionError, SpecError
from fluxion.spec import dialects, registry
from fluxion.spec.arguments import arguments_in, call
from fluxion.spec.limits import DEFAULT_LIMITS, Limits
from fluxion.spec.messages import json_path, without_torch_trace
from fluxion.spec.source import Document, read, resolve
from fluxion.spec.translation import Origin, Translation
from fluxion.tree.display import set_display_name, set_output_names
from fluxion.tree.module import constructor_call, record_constructor_call

NodePath = list[str | int]

FORMAT_VERSION = 1
"""The version of fluxion's spec format (the root's ``"fluxion"`` key)."""

STRUCTURE_KEYS = (
    "type",
    "id",
    "description",
    "args",
    "children",
    "nodes",
    "edges",
    "arguments",
    "inputs",
    "outputs",
    "share",
)
"""The keys a node may have besides its constructor arguments."""

LARGEST_SIZE = 2**63 - 1
"""The largest size torch can hold (an int64): a larger input size is refused where the spec gives it."""


@dataclass(frozen=True)
class Share:
    """A tie to make once the tree is complete: ``module``'s parameters become those at ``source``.

    ``source`` is a node's address (all its parameters) or parameter addresses by name; ``path``
    and ``file`` say where the spec asked for it.

    >>> Share(torch.nn.Linear(2, 2), {"weight": "embed.weight"}, "children[1]", None).source
    {'weight': 'embed.weight'}
    """

    module: torch.nn.Module
    source: str | Mapping[str, str]
    path: str
    file: str | None
    base: torch.nn.Module | None = None
    """The tree the source addresses are in: the one built from the file the share is written in."""


@dataclass
class Builder:
    """One build: the spec files being built (to refuse cycles) and the ties to make at the end.

    ``limits`` bound the evaluation of the jsonnet files that ``"spec"`` nodes name.

    >>> Builder().build(read({"type": "ReLU"}))
    ReLU()
    """

    files: list[Path] = field(default_factory=list[Path])
    shares: list[Share] = field(default_factory=list[Share])
    paths: dict[int, tuple[str, str | None]] = field(default_factory=dict[int, tuple[str, str | None]])
    """``id(module) -> (JSON path, file)`` for every node built, to say where a problem found later is."""
    limits: Limits | None = DEFAULT_LIMITS
    built: int = 0
    """Nodes built so far (``limits.nodes`` bounds it)."""
    evaluating: float = 0.0
    """Seconds spent evaluating the files ``"spec"`` nodes name (``limits.time`` bounds it)."""
    translations: list[Translation | None] = field(default_factory=list[Translation | None])
    """For each document being built, innermost last: its translation from another tool's format (None for
    fluxion's own)."""

    def build(self, document: Document, translation: Translation | None = None) -> torch.nn.Module:
        """The module a document's root node describes; another tool's file (narchi's, TorchArc's) is
        translated first (or given ``translation``, its translation made already), and errors then name
        the places in that file.

        >>> Builder().build(read({"type": "Linear", "in_features": 2, "out_features": 3}))
        Linear(in_features=2, out_features=3, bias=True)
        """
        if translation is None:
            translation = dialects.translation(document.data, file=_file(document))
        if translation is not None:
            document = dataclasses.replace(document, data=translation.spec)
        data = cast(object, document.data)
        if isinstance(data, Mapping) and "fluxion" in data:  # the format version dump writes
            root = dict(cast(Mapping[str, Any], data))
            version = root.pop("fluxion")
            if version != FORMAT_VERSION:
                raise SpecError(
                    f"this fluxion reads spec format {FORMAT_VERSION}, the file says {version!r}",
                    path="fluxion",
                    file=_file(document),
                )
            document = dataclasses.replace(document, data=root)
        if document.file is not None:
            self.files.append(document.file)
        first_share = len(self.shares)
        self.translations.append(translation)
        try:
            _, module = self.node(document.data, [], document)
        except SpecError as error:
            if error.file is None:  # the error is this document's, not that of a file it names
                error.path = self._place(error.path)
                error.file = _file(document)
            raise
        finally:
            self.translations.pop()
            if document.file is not None:
                self.files.pop()
        if translation is not None:
            set_output_names(module, translation.outputs)
        for index in range(first_share, len(self.shares)):  # addresses in a file are relative to its own root
            if self.shares[index].base is None:
                self.shares[index] = dataclasses.replace(self.shares[index], base=module)
        return module

    def node(self, data: Any, path: NodePath, document: Document) -> tuple[str | None, torch.nn.Module]:
        """A node's id and module.

        >>> Builder().node({"type": "Tanh", "id": "squash"}, [], read({}))
        ('squash', Tanh())
        """
        where = json_path(path)
        self.built += 1
        if self.limits is not None and self.limits.nodes is not None and self.built > self.limits.nodes:
            raise SpecError(
                f"the spec builds more than {self.limits.nodes} nodes (the nodes limit: spec files that name "
                "each other many times multiply); if the spec is trusted, raise it (Limits(nodes=...) in "
                "Python, --node-limit on the command line) or turn limits off (limits=None, --no-limits)",
                path=where,
            )
        if not isinstance(data, Mapping):
            raise SpecError(f'a node is an object with a "type", got {_kind(data)}', path=where)
        node = cast(Mapping[str, Any], data)
        identifier = node.get("id")
        if identifier is not None and (not isinstance(identifier, str) or not identifier or "." in identifier):
            raise SpecError(
                f"an id is a non-empty string without dots, got {identifier!r}", path=json_path([*path, "id"])
            )
        if "spec" in node:
            return self._reference(node, path, document)
        if "type" not in node:
            raise SpecError('a node needs a "type" (a registered class name) or a "spec" (a file)', path=where)
        translation = self._translation()
        try:
            name = node["type"]
            cls = translation.classes[name] if translation and name in translation.classes else registry.lookup(name)
        except SpecError as error:
            error.path = json_path([*path, "type"])
            raise
        given = _arguments_of(node, path)
        if issubclass(cls, fl.Graph):
            module = self._graph(cls, node, given, path, document)
        elif "children" in node:
            module = self._container(cls, node, given, path, document)
        else:
            for key in ("nodes", "edges", "arguments", "outputs"):
                if key in node:
                    raise SpecError(f'"{key}" belongs to a Graph node, not to {cls.__name__}', path=where)
            arguments = arguments_in(cls, given, path)
            module = _construct(cls, arguments, (), where)
            if constructor_call(module) is None:  # a plain torch class (torch.nn.GELU): keep the call to write it back
                record_constructor_call(module, *call(cls, arguments))
        self._record(module, node, path, document)
        return identifier, module

    def _record(self, module: torch.nn.Module, node: Mapping[str, Any], path: NodePath, document: Document) -> None:
        """Note where a built node comes from (its share to make, its place for later errors, its name)."""
        translation = self._translation()
        where = json_path(path)
        if translation is not None:
            origin = translation.origins.get(where)
            if origin is not None and origin.name is not None:
                set_display_name(module, origin.name)
        if "share" in node:
            # narchi's files say where a share is asked for: at the block's _id_share
            place = where if translation is None else translation.source_path(json_path([*path, "share"]))
            self.shares.append(Share(module, _share_source(node["share"], path), place or "", _file(document)))
        self.paths[id(module)] = (self._place(where) or "", _file(document))

    def _translation(self) -> Translation | None:
        """The translation of the document being built; None for fluxion's own format."""
        return self.translations[-1] if self.translations else None

    def _origin(self, path: NodePath) -> Origin | None:
        """Where the node at ``path`` of the document being built comes from, when another tool wrote it."""
        translation = self._translation()
        return None if translation is None else translation.origins.get(json_path(path))

    def _place(self, where: str | None) -> str | None:
        """A JSON path of the document being built, as its author wrote it: narchi's, for a narchi file."""
        translation = self._translation()
        return where if translation is None else translation.source_path(where)

    def _container(
        self,
        cls: type[torch.nn.Module],
        node: Mapping[str, Any],
        given: dict[str, Any],
        path: NodePath,
        document: Document,
    ) -> torch.nn.Module:
        where = json_path(path)
        if not issubclass(cls, fl.Chain):
            raise SpecError(f"{cls.__name__} is a leaf: it takes no children", path=json_path([*path, "children"]))
        children = node["children"]
        if not isinstance(children, list):
            raise SpecError(f"children is a list of nodes, got {_kind(children)}", path=json_path([*path, "children"]))
        items = cast(list[Any], children)
        built = [self.node(child, [*path, "children", index], document) for index, child in enumerate(items)]
        signature = inspect.signature(cls)
        takes_children = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values())
        arguments = arguments_in(cls, given, path, children=0 if takes_children else len(built))
        if not takes_children:
            if any(identifier is not None for identifier, _ in built):
                raise SpecError(f"{cls.__name__} names its children itself: they take no id", path=where)
            return _construct(cls, arguments, tuple(module for _, module in built), where)
        container = cast(fl.Chain, _construct(cls, arguments, (), where))
        for index, (identifier, module) in enumerate(built):
            try:
                container.append(module, name=identifier)
            except FluxionError as error:
                raise SpecError(str(error), path=json_path([*path, "children", index, "id"])) from None
        return container

    def _graph(
        self,
        cls: type[torch.nn.Module],
        node: Mapping[str, Any],
        given: dict[str, Any],
        path: NodePath,
        document: Document,
    ) -> torch.nn.Module:
        where = json_path(path)
        if given:
            raise SpecError(f"a Graph takes no arguments besides its structure, got {', '.join(given)}", path=where)
        if "children" in node:
            raise SpecError('a Graph has "nodes" and "edges", not "children"', path=json_path([*path, "children"]))
        nodes: dict[str, torch.nn.Module] = {}
        raw = node.get("nodes")
        if isinstance(raw, Mapping):
            items = [(key, value, [*path, "nodes", key]) for key, value in cast(Mapping[str, Any], raw).items()]
        elif isinstance(raw, list):
            items = [(None, value, [*path, "nodes", index]) for index, value in enumerate(cast(list[Any], raw))]
        else:
            raise SpecError(
                f"a Graph's nodes are a list of nodes with ids, or an object by id, got {_kind(raw)}", path=where
            )
        for key, value, item_path in items:
            identifier, module = self.node(value, item_path, document)
            name = key if identifier is None else identifier
            if key is not None and identifier is not None and key != identifier:
                raise SpecError(
                    f"the node is listed as {key!r} but its id is {identifier!r}", path=json_path(item_path)
                )
            if name is None:
                raise SpecError("a Graph node needs an id (the name edges use)", path=json_path(item_path))
            if name in nodes:
                raise SpecError(f"duplicate id {name!r}", path=json_path([*item_path, "id"]))
            nodes[name] = module
        edges = node.get("edges")
        if not isinstance(edges, list) or not all(isinstance(edge, str) for edge in cast(list[Any], edges)):
            raise SpecError(
                'a Graph\'s "edges" is a list of strings such as "input -> a -> b"', path=json_path([*path, "edges"])
            )
        inputs = input_names(node.get("inputs", ["input"]), [*path, "inputs"])
        outputs = _graph_outputs(node.get("outputs"), [*path, "outputs"])
        arguments = _graph_arguments(node.get("arguments"), [*path, "arguments"])
        try:
            return cls(nodes=nodes, edges=cast(list[str], edges), inputs=inputs, outputs=outputs, arguments=arguments)
        except FluxionError as error:
            raise SpecError(str(error), path=where) from None

    def _reference(
        self, node: Mapping[str, Any], path: NodePath, document: Document
    ) -> tuple[str | None, torch.nn.Module]:
        where = json_path(path)
        reference = node["spec"]
        extra = set(node) - {"spec", "args", "ext_vars", "id", "description", "share"}
        if extra:
            raise SpecError(
                f'a "spec" node takes "args", "ext_vars", "id" and "share", not {", ".join(sorted(extra))}', path=where
            )
        if not isinstance(reference, str):
            raise SpecError(f"spec is a relative file path, got {_kind(reference)}", path=json_path([*path, "spec"]))
        arguments, variables = node.get("args", {}), node.get("ext_vars", {})
        for key, value in (("args", arguments), ("ext_vars", variables)):
            if not isinstance(value, Mapping):
                raise SpecError(
                    f"{key} is an object of values by name, got {_kind(value)}", path=json_path([*path, key])
                )
        try:
            file = resolve(reference, relative_to=document.file.parent if document.file else None, roots=document.roots)
        except SpecError as error:
            error.path = json_path([*path, "spec"])
            raise
        if file in self.files:
            cycle = " -> ".join(str(step.name) for step in [*self.files[self.files.index(file) :], file])
            raise SpecError(f"spec files refer to each other in a cycle: {cycle}", path=json_path([*path, "spec"]))
        given = cast(Mapping[str, Any], variables)
        code: Mapping[str, str] = {}
        origin = self._origin(path)
        if origin is not None and origin.module:  # narchi's: the file sees its parent's variables, updated
            given = {**{k: v for k, v in document.ext_vars.items() if k not in given}, **given}
            code = {name: value for name, value in document.ext_code.items() if name not in given}
        started = time.monotonic()
        included = read(
            file,
            tla=cast(Mapping[str, Any], arguments),
            ext_vars=given,
            ext_code=code,
            search_paths=document.roots,  # the main spec's folder tree, not only the included file's
            limits=self._time_left(json_path([*path, "spec"])),
        )
        self.evaluating += time.monotonic() - started
        module = self.build(dataclasses.replace(included, root=document.root, search_paths=document.search_paths))
        identifier = node.get("id")
        data = cast(object, included.data)
        if identifier is None and isinstance(data, Mapping):
            identifier = cast(Mapping[str, Any], data).get("id")
        self._record(module, node, path, document)
        return cast(str | None, identifier), module

    def _time_left(self, where: str) -> Limits | None:
        """The limits for evaluating one more named file: the time the earlier ones left."""
        if self.limits is None or self.limits.time is None:
            return self.limits
        left = self.limits.time - self.evaluating
        if left <= 0:
            raise SpecError(
                f"evaluating the spec files the spec names takes longer than the time limit "
                f"({self.limits.time:g} s, for all of them together); if the spec is trusted, raise it "
                "(Limits(time=...) in Python, --time-limit on the command line) or turn limits off "
                "(limits=None, --no-limits)",
                path=where,
            )
        return dataclasses.replace(self.limits, time=left)


def _graph_outputs(value: Any, path: NodePath) -> str | list[str] | dict[str, str] | None:
    """A Graph's ``"outputs"``: a name (its value), a list of names (a tuple), or names by key (a dict)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(name, str) for name in cast(list[Any], value)):
        return cast(list[str], value)
    if isinstance(value, Mapping) and all(isinstance(name, str) for name in cast(Mapping[str, Any], value).values()):
        return dict(cast(Mapping[str, str], value))
    raise SpecError(
        'a Graph\'s "outputs" is a name, a list of names (it returns a tuple) or an object of names by key '
        '(it returns a dict: {"mean": "head_mean"})',
        path=json_path(path),
    )


def _graph_arguments(value: Any, path: NodePath) -> dict[str, list[str]] | None:
    """A Graph's ``"arguments"``: each node's (or call's) argument list by id, ``{"attn": ["x", "x", "x"]}``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        lists = cast(Mapping[str, Any], value)
        for key, names in lists.items():
            if not isinstance(names, list) or not all(isinstance(name, str) for name in cast(list[Any], names)):
                raise SpecError(
                    f"an argument list is a list of names (inputs, node ids or calls), got {_kind(names)}",
                    path=json_path([*path, key]),
                )
        return {key: list(cast(list[str], names)) for key, names in lists.items()}
    raise SpecError(
        'a Graph\'s "arguments" is an object of argument lists by node id, such as {"attn": ["x", "x", "x"]}',
        path=json_path(path),
    )


def input_names(value: Any, path: NodePath) -> list[str]:
    """The names in an ``"inputs"`` entry: a list of names, or an object of shapes by name.

    >>> input_names({"image": ["B", 3, "H", "W"], "mask": ["B", "H", "W"]}, ["inputs"])
    ['image', 'mask']
    """
    if isinstance(value, Mapping):
        value = list(cast(Mapping[str, Any], value))
    if not isinstance(value, list) or not all(isinstance(name, str) for name in cast(list[Any], value)):
        raise SpecError(
            'inputs is a list of names, or an object of shapes by name ({"x": ["B", 3, "H", "W"]})',
            path=json_path(path),
        )
    return cast(list[str], value)


def input_shapes(value: Any, path: NodePath) -> dict[str, tuple[int | str, ...]] | None:
    """The input shapes an ``"inputs"`` entry gives, by name (None when it names inputs only).

    >>> input_shapes({"x": ["B", 8]}, ["inputs"]), input_shapes(["x"], ["inputs"])
    ({'x': ('B', 8)}, None)
    """
    if not isinstance(value, Mapping):
        input_names(value, path)
        return None
    shapes: dict[str, tuple[int | str, ...]] = {}
    for name, shape in cast(Mapping[str, Any], value).items():
        where = json_path([*path, name])
        if not isinstance(shape, list):
            raise SpecError(f"a shape is a list of sizes and symbol names, got {_kind(shape)}", path=where)
        sizes = cast(list[Any], shape)
        for size in sizes:
            if isinstance(size, str) and size.isidentifier():
                continue
            if isinstance(size, int) and not isinstance(size, bool) and size > LARGEST_SIZE:
                raise SpecError(f"a size is at most 2**63 - 1 (torch's largest), got {size}", path=where)
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise SpecError(f'a size is a number or a symbol name such as "B", got {size!r}', path=where)
        shapes[name] = tuple(sizes)
    return shapes


def tie(root: torch.nn.Module, shares: list[Share]) -> None:
    """Make each share's parameters those of its source (the same tensors), checking shapes first.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(2, 2), fl.Linear(2, 2))
    >>> tie(model, [Share(model.Linear_2, "Linear_1", "children[1]", None)])
    >>> model.Linear_2.weight is model.Linear_1.weight
    True
    """
    for share in shares:  # one at a time, so that a share of a shared node gets the first tensors
        for name, source in _share_pairs(root if share.base is None else share.base, share):
            owner, _, leaf = name.rpartition(".")
            try:
                holder = share.module.get_submodule(owner)
                current = getattr(holder, leaf)
            except AttributeError:
                raise SpecError(
                    f"share: the node has no parameter {name!r}", path=share.path, file=share.file
                ) from None
            if not isinstance(current, torch.nn.Parameter) or current.shape != source.shape:
                what = (
                    f"has shape {tuple(current.shape)}"
                    if isinstance(current, torch.nn.Parameter)
                    else "is no parameter"
                )
                raise SpecError(
                    f"share: {name!r} {what}, its source {tuple(source.shape)}", path=share.path, file=share.file
                )
            holder._parameters[leaf] = source  # pyright: ignore[reportPrivateUsage]


def _share_pairs(root: torch.nn.Module, share: Share) -> list[tuple[str, torch.nn.Parameter]]:
    """(parameter name in the sharing node, source parameter) for every tie of one share."""
    if isinstance(share.source, str):
        try:
            source_module = root.get_submodule(share.source)
        except AttributeError:
            raise SpecError(f"share: no node at address {share.source!r}", path=share.path, file=share.file) from None
        own = dict(share.module.named_parameters())
        theirs = dict(source_module.named_parameters())
        if list(own) != list(theirs):
            raise SpecError(
                f"share: the node's parameters ({', '.join(own) or 'none'}) are not those of {share.source!r} "
                f"({', '.join(theirs) or 'none'})",
                path=share.path,
                file=share.file,
            )
        return list(theirs.items())
    pairs: list[tuple[str, torch.nn.Parameter]] = []
    for name, address in share.source.items():
        try:
            pairs.append((name, root.get_parameter(address)))  # a lookup by address, not a walk of the tree
        except AttributeError:
            raise SpecError(f"share: no parameter at address {address!r}", path=share.path, file=share.file) from None
    return pairs


def _share_source(value: Any, path: NodePath) -> str | Mapping[str, str]:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and all(
        isinstance(key, str) and isinstance(item, str) for key, item in cast(Mapping[Any, Any], value).items()
    ):
        return cast(Mapping[str, str], value)
    raise SpecError(
        'share is an address ("encoder.embed") or parameters by name ({"weight": "embed.weight"})',
        path=json_path([*path, "share"]),
    )


def _arguments_of(node: Mapping[str, Any], path: NodePath) -> dict[str, Any]:
    for key in node:
        if not isinstance(cast(object, key), str):
            raise SpecError(f"a node's keys are strings, got {key!r}", path=json_path(path))
    given = {key: value for key, value in node.items() if key not in STRUCTURE_KEYS}
    nested = node.get("args", {})
    if not isinstance(nested, Mapping):
        raise SpecError(
            f"args is an object of constructor arguments, got {_kind(nested)}", path=json_path([*path, "args"])
        )
    for key, value in cast(Mapping[str, Any], nested).items():
        if key in given:
            raise SpecError(
                f"argument {key!r} is given twice (in the node and in args)", path=json_path([*path, "args", key])
            )
        given[key] = value
    return given


def _construct(
    cls: type[torch.nn.Module], arguments: Mapping[str, Any], children: tuple[torch.nn.Module, ...], where: str
) -> torch.nn.Module:
    positional, keywords = call(cls, arguments)
    try:
        return cls(*children, *positional, **keywords)
    except SpecError:
        raise
    except Exception as error:  # the constructor's own checks, whatever they raise
        message = without_torch_trace(str(error)).split("\n")[0]
        raise SpecError(
            f"{cls.__name__} refused its arguments: {type(error).__name__}: {message}", path=where
        ) from None


def _file(document: Document) -> str | None:
    return None if document.file is None else str(document.file)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names: dict[type, str] = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }
    kind: type = type(cast(object, value))
    return names.get(kind, kind.__name__)
