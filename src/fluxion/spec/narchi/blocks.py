"""narchi's leaf blocks as fluxion nodes: the class table, argument renames and the few blocks whose
arguments need more than a rename (Concatenate, Reshape, LSTM/GRU/RNN).

narchi writes shapes without the batch dimension and names a block's output size ``output_feats``;
fluxion's nodes take torch's arguments, with the batch as dimension 0.

>>> from fluxion.spec.narchi.blocks import leaf
>>> leaf("Linear", {"_class": "Linear", "output_feats": 10}, ["blocks", 3])
{'type': 'Linear', 'out_features': 10}
>>> leaf("Concatenate", {"_class": "Concatenate", "dim": 0}, ["blocks", 4])
{'type': 'Cat', 'dim': 1}
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import fluxion.layers as fl
from fluxion.errors import SpecError
from fluxion.spec import registry
from fluxion.spec.arguments import arguments_in
from fluxion.spec.messages import json_path

NodePath = list[str | int]

AUTO = "<<auto>>"
"""narchi's mark for a value to be worked out: an argument written so is left out, to be inferred."""

VARIABLE = re.compile(r"^<<variable:(.*)>>$")
"""narchi's symbolic size, ``<<variable:W>>`` (or an expression such as ``<<variable:W/8>>``)."""

METADATA = ("_class", "_id", "_name", "_description", "_shape", "_id_share")
"""Keys every narchi block may have besides its arguments (``_shape`` is what narchi propagated)."""

CONTAINERS = ("Sequential", "Group", "Module")

_STRUCTURE = {
    "blocks": "a Sequential or a Group",
    "graph": "a Group",
    "input": "a Group",
    "output": "a Group",
    "reshape_spec": "a Reshape",
    "architecture": "a Module",
    "_path": "a Module",
    "_ext_vars": "a Module",
}
"""Keys that belong to one kind of block only, and to which."""


@dataclass(frozen=True)
class Leaf:
    """How one narchi leaf class becomes a fluxion node: the class, argument renames, what it needs.

    >>> LEAVES["Linear"]
    Leaf(fluxion='Linear', renames={'output_feats': 'out_features'}, needs=('output_feats',))
    """

    fluxion: str
    renames: Mapping[str, str] = field(default_factory=dict[str, str])
    """narchi argument name -> fluxion argument name."""
    needs: tuple[str, ...] = ()
    """narchi arguments without which narchi refuses the block (and fluxion could not build it)."""


def _output_feats(fluxion: str, argument: str, *needs: str) -> Leaf:
    return Leaf(fluxion, {"output_feats": argument}, ("output_feats", *needs))


LEAVES: dict[str, Leaf] = {
    **{
        name: Leaf(name)
        for name in ("Identity", "ReLU", "LeakyReLU", "Sigmoid", "LogSigmoid", "Tanh", "Dropout", "Add")
    },
    "Softmax": Leaf("Softmax"),
    "LogSoftmax": Leaf("LogSoftmax"),
    "BatchNorm2d": Leaf("BatchNorm2d"),
    "Linear": _output_feats("Linear", "out_features"),
    "Embedding": _output_feats("Embedding", "embedding_dim"),
    **{f"Conv{n}d": _output_feats(f"Conv{n}d", "out_channels", "kernel_size") for n in (1, 2, 3)},
    **{f"{kind}Pool{n}d": Leaf(f"{kind}Pool{n}d") for kind in ("Max", "Avg") for n in (1, 2, 3)},
    **{
        f"Adaptive{kind}Pool{n}d": _output_feats(f"Adaptive{kind}Pool{n}d", "output_size")
        for kind in ("Avg", "Max")
        for n in (1, 2)
    },
}
"""narchi's leaf classes that map to one fluxion class with renamed arguments."""

RECURRENT = ("LSTM", "GRU", "RNN")

UNSUPPORTED = {
    "CRF": "narchi defines only its shape (the last dim consumed), neither what it computes nor its parameters, "
    "and maps it to no PyTorch module",
}
"""narchi's classes without a fluxion equivalent, and why."""

SUPPORTED = tuple(sorted([*CONTAINERS, *LEAVES, *RECURRENT, "Concatenate", "Reshape"]))
"""Every narchi class that translates."""


def leaf(narchi_class: str, block: Mapping[str, Any], path: NodePath) -> dict[str, Any]:
    """The fluxion node for a narchi leaf block (``_id``, ``_description`` and ``_id_share`` apart).

    A value ``"<<auto>>"`` leaves its argument out (to be inferred); a fluxion leaf that narchi does
    not know (``GeLU``, a class registered with ``fluxion.spec.register``...) takes its own arguments.

    >>> leaf("Conv2d", {"_class": "Conv2d", "output_feats": 8, "kernel_size": 3, "bias": "<<auto>>"}, [])
    {'type': 'Conv2d', 'out_channels': 8, 'kernel_size': 3}
    >>> leaf("Conv2D", {"_class": "Conv2D"}, ["blocks", 0])
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: blocks[0]._class: unknown narchi class 'Conv2D' (closest: Conv2d, Conv3d, \
Conv1d); narchi classes read: AdaptiveAvgPool1d, AdaptiveAvgPool2d, ...
    """
    given = _arguments(narchi_class, block, path)
    special = _SPECIAL.get(narchi_class)
    if special is not None:
        return special(given, path)
    table = LEAVES.get(narchi_class)
    if table is None:
        return _registered(narchi_class, given, path)
    renames = dict(table.renames)
    origins = {value: key for key, value in renames.items()}
    if "output_feats" in renames and "output_size" in given:
        _rename(given, "output_size", "output_feats", path)  # narchi's former name of output_feats
        origins[renames["output_feats"]] = "output_size"  # an error names the key as written
    for needed in table.needs:
        if given.get(needed) is None:
            what = " (its output size)" if needed == "output_feats" else ""
            raise SpecError(f"{narchi_class} needs {needed}{what}", path=json_path(path))
    arguments = {renames.get(key, key): value for key, value in given.items()}
    if len(arguments) < len(given):
        twice = next(key for key in given if key in renames.values())
        raise SpecError(f"{twice} is given twice (as {twice} and as output_feats)", path=json_path([*path, twice]))
    return _checked(table.fluxion, arguments, origins, path)


def refuse_variables(value: Any, path: NodePath) -> None:
    """A SpecError where ``value`` holds a narchi symbolic size (or a nested ``<<auto>>``).

    >>> refuse_variables([3, "<<variable:C>>"], ["blocks", 2, "output_feats"])
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: blocks[2].output_feats[1]: symbolic sizes (<<variable:...>>) are for the \
inputs' _shape only; a block's argument is a number (fluxion infers input-side sizes itself)
    """
    if isinstance(value, str):
        if VARIABLE.match(value):
            raise SpecError(
                "symbolic sizes (<<variable:...>>) are for the inputs' _shape only; a block's argument is a "
                "number (fluxion infers input-side sizes itself)",
                path=json_path(path),
            )
        if value == AUTO:
            raise SpecError(f"{AUTO} stands for a whole argument, not for a part of one", path=json_path(path))
    elif isinstance(value, list):
        for index, item in enumerate(cast(list[Any], value)):
            refuse_variables(item, [*path, index])
    elif isinstance(value, Mapping):
        for key, item in cast(Mapping[str, Any], value).items():
            refuse_variables(item, [*path, key])


def unknown_class(name: str, path: NodePath) -> SpecError:
    """The error for a ``_class`` that does not translate, with the closest names and what does.

    >>> print(unknown_class("CRF", ["blocks", 7]))
    blocks[7]._class: narchi's CRF has no fluxion equivalent: narchi defines only its shape (the last dim consumed), \
neither what it computes nor its parameters, and maps it to no PyTorch module; register a layer of your own under that \
name (fluxion.spec.register) to read it
    """
    read = f"narchi classes read: {', '.join(SUPPORTED)}; and any fluxion leaf (see fluxion.spec.registered())"
    where = json_path([*path, "_class"])
    if name in UNSUPPORTED:
        return SpecError(
            f"narchi's {name} has no fluxion equivalent: {UNSUPPORTED[name]}; register a layer of your own under "
            f"that name (fluxion.spec.register) to read it",
            path=where,
        )
    leaves = (known for known in registry.registered() if not issubclass(registry.lookup(known), fl.Chain))
    names = [*SUPPORTED, *(known for known in leaves if known not in SUPPORTED)]  # fluxion's containers: never read
    lowered = {known.lower(): known for known in reversed(names)}  # narchi's spelling first
    close = [lowered[found] for found in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)]
    hint = f" (closest: {', '.join(close)})" if close else ""
    return SpecError(f"unknown narchi class {name!r}{hint}; {read}", path=where)


# -- arguments ------------------------------------------------------------------------------------


def _arguments(narchi_class: str, block: Mapping[str, Any], path: NodePath) -> dict[str, Any]:
    """A leaf block's arguments: metadata left out, ``<<auto>>`` dropped, symbolic sizes refused."""
    given: dict[str, Any] = {}
    for key, value in block.items():
        if key in METADATA:
            continue
        owner = _STRUCTURE.get(key)
        if owner is not None and not (key == "reshape_spec" and narchi_class == "Reshape"):
            raise SpecError(f"{key} belongs to {owner}, not to a {narchi_class}", path=json_path([*path, key]))
        if key.startswith("_"):
            known = ", ".join(METADATA)
            raise SpecError(f"{key} is not a narchi block key (those are {known})", path=json_path([*path, key]))
        if value == AUTO:
            continue
        if key != "reshape_spec":  # whose sizes may be <<auto>>, checked with the rest of it
            refuse_variables(value, [*path, key])
        given[key] = value
    return given


def _rename(given: dict[str, Any], old: str, new: str, path: NodePath) -> None:
    if new in given:
        raise SpecError(f"{old} is narchi's former name of {new}: give one of them", path=json_path([*path, old]))
    given[new] = given.pop(old)


def _checked(fluxion: str, arguments: dict[str, Any], origins: Mapping[str, str], path: NodePath) -> dict[str, Any]:
    """The fluxion node, its arguments checked against the class now, so that an error names narchi's keys."""
    cls = registry.lookup(fluxion)
    try:
        arguments_in(cls, arguments, path)
    except SpecError as error:
        for name, origin in origins.items():
            if error.path == json_path([*path, name]):
                error.path = json_path([*path, origin])
        raise
    return {"type": fluxion, **arguments}


def _registered(name: str, given: dict[str, Any], path: NodePath) -> dict[str, Any]:
    """A class narchi does not know: one from fluxion's registry (a leaf), with fluxion's arguments."""
    if name in registry.registered() and not issubclass(registry.lookup(name), fl.Chain):
        return _checked(name, given, {}, path)
    raise unknown_class(name, path)


# -- blocks whose arguments need more than a rename --------------------------------------------------


def _concatenate(given: dict[str, Any], path: NodePath) -> dict[str, Any]:
    dim = given.pop("dim", None)
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise SpecError(f"Concatenate needs dim, an int (a dim of narchi's shapes), got {dim!r}", path=json_path(path))
    # narchi counts dims without the batch: its dim 0 is the tensor's dim 1
    return _checked("Cat", {"dim": dim + 1 if dim >= 0 else dim, **given}, {}, path)


def _recurrent(kind: str) -> Callable[[dict[str, Any], NodePath], dict[str, Any]]:
    def convert(given: dict[str, Any], path: NodePath) -> dict[str, Any]:
        origins = {"return_state": "output_state"}
        if "output_size" in given:
            _rename(given, "output_size", "output_feats", path)
        bidirectional = given.get("bidirectional", False)
        if not isinstance(bidirectional, bool):
            raise SpecError(f"expected a boolean, got {bidirectional!r}", path=json_path([*path, "bidirectional"]))
        features = given.pop("output_feats", None)
        if features is not None:
            if not isinstance(features, int) or isinstance(features, bool) or features < 1:
                raise SpecError(f"expected a positive int, got {features!r}", path=json_path([*path, "output_feats"]))
            if bidirectional and features % 2:
                raise SpecError(
                    f"a bidirectional {kind} has an even output_feats (two directions), got {features}",
                    path=json_path([*path, "output_feats"]),
                )
            hidden = features // 2 if bidirectional else features
            if given.get("hidden_size", hidden) != hidden:
                raise SpecError(
                    f"hidden_size {given['hidden_size']!r} disagrees with output_feats {features} "
                    "(hidden size × directions)",
                    path=json_path([*path, "hidden_size"]),
                )
            given["hidden_size"] = hidden
            origins["hidden_size"] = "output_feats"
        elif "hidden_size" not in given:
            raise SpecError(
                f"{kind} needs output_feats (its output size: hidden size × directions)", path=json_path(path)
            )
        if given.pop("batch_first", True) is not True:
            raise SpecError(
                "narchi's sequences are batch first (batch, length, features): batch_first can only be true",
                path=json_path([*path, "batch_first"]),
            )
        given["return_state"] = given.pop("output_state", False)
        return _checked(kind, {**given, "batch_first": True}, origins, path)

    return convert


def _reshape(given: dict[str, Any], path: NodePath) -> dict[str, Any]:
    if "reshape_spec" not in given:
        raise SpecError("Reshape needs reshape_spec", path=json_path(path))
    where = [*path, "reshape_spec"]
    extra = sorted(set(given) - {"reshape_spec"})
    if extra:
        raise SpecError(f"Reshape takes reshape_spec only, got {', '.join(extra)}", path=json_path([*path, extra[0]]))
    steps = reshape_steps(given["reshape_spec"], where)
    if not steps:
        return {"type": "Identity"}
    return steps[0] if len(steps) == 1 else {"type": "Chain", "children": steps}


def reshape_steps(spec: Any, path: NodePath) -> list[dict[str, Any]]:
    """fluxion nodes doing what a narchi ``reshape_spec`` says: a ``Permute`` when the dims are
    reordered, then a ``Flatten`` for each list of dims, an ``Unflatten`` for each ``{dim: sizes}``.

    narchi's indices count dims without the batch, so they are one less than torch's.

    >>> reshape_steps([2, [0, 1]], [])
    [{'type': 'Permute', 'dims': [0, 3, 1, 2]}, {'type': 'Flatten', 'start_dim': 2, 'end_dim': 3}]
    >>> reshape_steps([{"0": [3, "<<auto>>"]}], []), reshape_steps("flatten", [])
    ([{'type': 'Unflatten', 'dim': 1, 'unflattened_size': [3, -1]}], [{'type': 'Flatten'}])
    """
    if spec == "flatten":
        return [{"type": "Flatten"}]
    usage = 'a reshape_spec is "flatten" or a list of dim indices, lists of indices to flatten and {"index": [sizes]}'
    if not isinstance(spec, list) or not spec:
        raise SpecError(f"{usage}, got {spec!r}", path=json_path(path))
    order: list[int] = []
    groups: list[tuple[int, list[int] | None]] = []  # (how many input dims, sizes to unflatten into)
    for position, item in enumerate(cast(list[Any], spec)):
        where = [*path, position]
        if _is_index(item):
            order.append(item)
            groups.append((1, None))
        elif isinstance(item, list) and item and all(_is_index(index) for index in cast(list[Any], item)):
            order.extend(cast(list[int], item))
            groups.append((len(cast(list[int], item)), None))
        elif isinstance(item, Mapping) and len(cast(Mapping[Any, Any], item)) == 1:
            key, sizes = next(iter(cast(Mapping[str, Any], item).items()))
            if not key.isdigit():
                raise SpecError(f"an unflatten entry is keyed by a dim index, got {key!r}", path=json_path(where))
            order.append(int(key))
            groups.append((1, _unflatten_sizes(sizes, [*where, key])))
        else:
            raise SpecError(f"{usage}, got {item!r}", path=json_path(where))
    if sorted(order) != list(range(len(order))):
        raise SpecError(
            f"reshape_spec must name each input dim once (0 to {len(order) - 1}), got {order}", path=json_path(path)
        )
    steps: list[dict[str, Any]] = []
    if order != sorted(order):
        steps.append({"type": "Permute", "dims": [0, *(index + 1 for index in order)]})
    dim = 1
    for count, sizes in groups:
        if sizes is not None:
            steps.append({"type": "Unflatten", "dim": dim, "unflattened_size": sizes})
            dim += len(sizes)
            continue
        if count > 1:
            steps.append({"type": "Flatten", "start_dim": dim, "end_dim": dim + count - 1})
        dim += 1
    return steps


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _unflatten_sizes(sizes: Any, path: NodePath) -> list[int]:
    if not isinstance(sizes, list) or not sizes:
        raise SpecError(f"the sizes to unflatten into are a list, got {sizes!r}", path=json_path(path))
    result: list[int] = []
    for index, size in enumerate(cast(list[Any], sizes)):
        if size == AUTO:
            result.append(-1)
        elif isinstance(size, int) and not isinstance(size, bool) and size >= 1:
            result.append(size)
        else:
            refuse_variables(size, [*path, index])
            raise SpecError(f"a size is a positive int or {AUTO}, got {size!r}", path=json_path([*path, index]))
    if result.count(-1) > 1:
        raise SpecError(f"at most one size is {AUTO}", path=json_path(path))
    return result


_SPECIAL: dict[str, Callable[[dict[str, Any], NodePath], dict[str, Any]]] = {
    "Concatenate": _concatenate,
    "Reshape": _reshape,
    **{kind: _recurrent(kind) for kind in RECURRENT},
}
