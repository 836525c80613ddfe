"""Writing a tree as a spec: the inverse of building, so that loading the result gives the same tree.

Each node is written as its registered type and the arguments it was constructed with (defaults
left out, sizes that inference filled in written out), a container's children after it, each with
its id when its name was given explicitly. Parameters tied to another node's are written as a
``"share"``.

>>> import fluxion.layers as fl
>>> from fluxion import spec
>>> spec.dump(fl.Chain(fl.Linear(4, 2), out=fl.Softmax(dim=-1)))
{'fluxion': 1, 'type': 'Chain', 'children': [{'type': 'Linear', 'in_features': 4, 'out_features': 2}, \
{'type': 'Softmax', 'id': 'out'}]}
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch

import fluxion.layers as fl
from fluxion.errors import SpecError
from fluxion.spec import registry
from fluxion.spec.arguments import arguments_out, to_json
from fluxion.spec.build import FORMAT_VERSION, Builder
from fluxion.spec.source import MAX_NESTING, Document, check_nesting
from fluxion.tree import node_class
from fluxion.tree.module import CHILD, constructor_call


def dump(model: torch.nn.Module, *, inputs: Mapping[str, Sequence[int | str]] | None = None) -> dict[str, Any]:
    """``model`` as a spec (a JSON-ready dict); ``inputs`` adds input shapes by name.

    Every class in the tree must be registered (``fluxion.spec.register``) or be one of torch's
    that a spec built (written ``"torch.nn.<Name>"`` with the arguments it was built with). Loading
    the result gives the same tree: same addresses, classes, arguments, parameters and shapes.

    >>> import fluxion.layers as fl
    >>> from fluxion import spec, shapes
    >>> model = fl.Chain(fl.Linear(out_features=3))
    >>> _ = shapes.materialize(model, ("B", 5))
    >>> spec.dump(model, inputs={"x": ["B", 5]})["children"]
    [{'type': 'Linear', 'in_features': 5, 'out_features': 3}]
    """
    first_owner: dict[int, str] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        first_owner.setdefault(id(parameter), name)
    document: dict[str, Any] = {"fluxion": FORMAT_VERSION, **_node(model, "", first_owner)}
    if inputs is not None:
        if isinstance(model, fl.Graph) and set(inputs) != set(model.inputs):
            raise SpecError(f"the graph's inputs are {', '.join(model.inputs)}; inputs= names {', '.join(inputs)}")
        order = list(model.inputs) if isinstance(model, fl.Graph) else list(inputs)
        document["inputs"] = {name: list(inputs[name]) for name in order}
    try:
        check_nesting(document)
    except SpecError:
        raise SpecError(
            f"cannot dump this tree: its spec would nest more than {MAX_NESTING} levels of objects and lists, "
            "more than a spec may (so it could not be loaded back); make the tree shallower (a Chain of many "
            "children rather than one Chain inside another)"
        ) from None
    return document


def _node(root: torch.nn.Module, root_address: str, first_owner: dict[int, str]) -> dict[str, Any]:
    """The spec node of ``root`` and everything under it, built without recursion (a tree of any depth)."""
    top: list[dict[str, Any]] = []
    # (module, address, the list its node goes in, its id when written, whether the id comes last)
    pending: list[tuple[torch.nn.Module, str, list[dict[str, Any]], str | None, bool]] = [
        (root, root_address, top, None, False)
    ]
    while pending:
        module, address, siblings, node_id, id_last = pending.pop()
        node, children, into = _own_node(module, address, first_owner)
        if node_id is not None:
            node = {**node, "id": node_id} if id_last else {"type": node.pop("type"), "id": node_id, **node}
        siblings.append(node)  # ``into`` stays the same list inside the node: its children fill it later
        pending.extend(
            (child, _join(address, name), into, child_id, id_last)
            for name, child, child_id, id_last in reversed(children)
        )
    return top[0]


def _own_node(
    module: torch.nn.Module, address: str, first_owner: dict[int, str]
) -> tuple[dict[str, Any], list[tuple[str, torch.nn.Module, str | None, bool]], list[dict[str, Any]]]:
    """A node without its children's nodes: the node, its children (name, module, id, whether the id
    comes last) and the list in the node their nodes go in."""
    cls = node_class(module)
    name = registry.name_of(cls) or registry.torch_name_of(cls)
    where = f"the node at {address!r}" if address else "the root"
    if name is None:
        raise SpecError(
            f"{where} is a {cls.__name__}, which is not registered: call fluxion.spec.register({cls.__name__}) "
            "to write it in specs"
        )
    node: dict[str, Any] = {"type": name}
    children: list[tuple[str, torch.nn.Module, str | None, bool]] = []
    into: list[dict[str, Any]] = []
    if isinstance(module, fl.Graph):
        graph = module
        node["inputs"] = list(graph.inputs)
        outputs = graph.output_spec
        node["outputs"] = outputs if isinstance(outputs, dict) else list(outputs)
        node["nodes"] = into
        children = [(child_name, child, child_name, True) for child_name, child in graph.named_children()]
        node["edges"] = list(graph.edges)
        if graph.arguments:
            node["arguments"] = {call: list(names) for call, names in graph.arguments.items()}
    else:
        node.update(_arguments(module, where))
    if isinstance(module, fl.Chain) and not isinstance(module, fl.Graph) and _has_children_in_spec(module):
        chain = module
        explicit = chain.explicit_names
        children = [
            (child_name, child, child_name if child_name in explicit else None, False)
            for child_name, child in chain.named_children()
        ]
        node["children"] = into
    elif isinstance(module, fl.Chain) and not isinstance(module, fl.Graph):
        _check_rebuilds(module, node, address, first_owner, where)
    shared = _shared(module, address, first_owner)
    if shared is not None:
        node["share"] = shared
    return node, children, into


def _check_rebuilds(
    module: fl.Chain, node: dict[str, Any], address: str, first_owner: dict[int, str], where: str
) -> None:
    """A Chain that builds its own children is written as its arguments alone: refuse one whose
    subtree its arguments would not build again (surgery, adapters, ties inside it)."""
    with torch.device("meta"):
        _, rebuilt = Builder().node(node, [], Document({}))
    if repr(rebuilt) != repr(module) or [name for name, _ in rebuilt.named_parameters()] != [
        name for name, _ in module.named_parameters()
    ]:
        raise SpecError(
            f"{where} is a {node_class(module).__name__} whose children changed since it was built (surgery or "
            "adapters): a spec writes it as its arguments, which would build the original children"
        )
    for name, parameter in module.named_parameters(remove_duplicate=False):
        here = _join(address, name)
        if first_owner.get(id(parameter), here) != here:
            raise SpecError(
                f"{where} holds {name!r} tied to {first_owner[id(parameter)]!r}, which a spec cannot write "
                f"inside a {node_class(module).__name__} that builds its own children"
            )


def _arguments(module: torch.nn.Module, where: str) -> dict[str, Any]:
    recorded = constructor_call(module)
    cls = node_class(module)
    torch_name = registry.torch_name_of(cls) if registry.name_of(cls) is None else None
    if recorded is None and torch_name is not None:
        raise SpecError(
            f"{where} is a {torch_name} built in Python: its constructor arguments are unknown, so a spec cannot "
            f'write it; build it from a spec ({{"type": "{torch_name}", ...its arguments}}) or register a fluxion '
            "class for it (fluxion.spec.register)"
        )
    if recorded is None:
        raise SpecError(
            f"{where} is a {cls.__name__} built outside fluxion: its constructor arguments are unknown "
            "(derive it from fluxion.layers.Module, or build it from a spec)"
        )
    args, kwargs = recorded
    try:
        written = arguments_out(cls, args, kwargs)  # children (CHILD) are left out by name
    except SpecError as error:
        if torch_name is None:
            raise
        raise SpecError(f"{where} cannot be written: {error}") from None
    inferred = cast(dict[str, Any], module.__dict__.get("_fluxion_inferred", {}))
    for key, value in inferred.items():
        written[key] = to_json(value, f"{where}.{key}")
    order = list(inspect.signature(node_class(module)).parameters)
    return dict(sorted(written.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)))


def _shared(module: torch.nn.Module, address: str, first_owner: dict[int, str]) -> str | dict[str, str] | None:
    """Where this node's own parameters first appear in the tree, when somewhere else."""
    own = list(module.named_parameters(recurse=False))
    elsewhere = {
        name: first_owner[id(parameter)]
        for name, parameter in own
        if first_owner.get(id(parameter), _join(address, name)) != _join(address, name)
    }
    return elsewhere or None


def _has_children_in_spec(module: fl.Chain) -> bool:
    """Whether the Chain was given its children (``Chain(a, b)``, ``Matmul(a, b)``) rather than
    building them itself from arguments (``MultiHeadAttention(8)``)."""
    parameters = inspect.signature(node_class(module)).parameters.values()
    if any(parameter.kind is inspect.Parameter.VAR_POSITIONAL for parameter in parameters):
        return True
    recorded = constructor_call(module)
    return recorded is not None and any(value is CHILD for value in (*recorded[0], *recorded[1].values()))


def _join(address: str, name: str) -> str:
    return f"{address}.{name}" if address else name
