"""TorchArc's class names, each as a fluxion spec node: ``{Linear: {out_features: 10}}`` -> ``Linear``.

A TorchArc module spec names a class of ``torch.nn`` (TorchArc looks it up there) or one of
TorchArc's own modules, which TorchArc registers into ``torch.nn``. Here:

- a ``torch.nn`` class that fluxion has with the same behaviour becomes fluxion's (``fl.Linear``
  subclasses ``torch.nn.Linear``: the same parameters, the same ``state_dict`` keys), with shape
  rules and sizes that can be inferred;
- ``Lazy*`` classes become fluxion's lazy form (``LazyLinear`` -> ``Linear`` without
  ``in_features``), where fluxion has the class;
- any other ``torch.nn`` module class is built as it is, a plain torch leaf (its spec type is
  ``torch.nn.<Name>``, a name only a TorchArc file's translation knows);
- TorchArc's own modules become fluxion layers of the same computation (``MergeConcat`` -> ``Cat``,
  ``MergeFiLM`` -> ``FiLM``...), with TorchArc's defaults written out.

Nothing is added to ``torch.nn``.

>>> leaf("LazyLinear", {"out_features": 10}, ["modules", "head"])
{'type': 'Linear', 'out_features': 10}
>>> leaf("MergeConcat", None, ["modules", "merge"])
{'type': 'Cat', 'dim': 1}
>>> leaf("MultiheadAttention", {"embed_dim": 8, "num_heads": 2}, ["modules", "attn"])
{'type': 'torch.nn.MultiheadAttention', 'embed_dim': 8, 'num_heads': 2}
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from fluxion.errors import SpecError
from fluxion.spec import registry
from fluxion.spec.messages import json_path

NodePath = list[str | int]

TORCH_PREFIX = "torch.nn."
"""How a translated spec names a plain ``torch.nn`` class (no registered name has a dot)."""

SAME_AS_TORCH = frozenset(
    {
        "AdaptiveAvgPool1d",
        "AdaptiveAvgPool2d",
        "AdaptiveMaxPool1d",
        "AdaptiveMaxPool2d",
        "AvgPool1d",
        "AvgPool2d",
        "AvgPool3d",
        "BatchNorm1d",
        "BatchNorm2d",
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "ConvTranspose2d",
        "Dropout",
        "Embedding",
        "Flatten",
        "GRU",
        "GroupNorm",
        "Identity",
        "LSTM",
        "LayerNorm",
        "LeakyReLU",
        "Linear",
        "LogSigmoid",
        "MaxPool1d",
        "MaxPool2d",
        "MaxPool3d",
        "PixelShuffle",
        "RMSNorm",
        "RNN",
        "ReLU",
        "SiLU",
        "Sigmoid",
        "Tanh",
        "Unflatten",
        "Upsample",
    }
)
"""``torch.nn`` names whose fluxion class (a subclass of torch's) takes torch's arguments, with
torch's defaults, and computes what torch's does."""

SAME_WITH_DIM = frozenset({"Softmax", "LogSoftmax"})
"""fluxion's class computes torch's when ``dim`` is given; without it torch picks a dim by the
input's rank (deprecated), fluxion's takes the last one: torch's class is built then."""

_LAZY = {
    "LazyLinear": "Linear",
    "LazyConv1d": "Conv1d",
    "LazyConv2d": "Conv2d",
    "LazyConv3d": "Conv3d",
    "LazyConvTranspose2d": "ConvTranspose2d",
    "LazyBatchNorm1d": "BatchNorm1d",
    "LazyBatchNorm2d": "BatchNorm2d",
}
"""torch's lazy classes that fluxion has a lazy form of (the input-side size left out)."""

_NOT_LEAVES = frozenset({"Module", "Container", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"})


@dataclass(frozen=True)
class Own:
    """One of TorchArc's own modules: the fluxion layer computing the same, its arguments renamed,
    TorchArc's defaults (written out where fluxion's differ) and the arguments fluxion does not need.

    >>> OWN["ForkChunk"].defaults
    {'chunks': 2, 'dim': 1}
    """

    fluxion: str
    defaults: Mapping[str, Any] = field(default_factory=dict[str, Any])
    renames: Mapping[str, str] = field(default_factory=dict[str, str])
    dropped: frozenset[str] = frozenset()
    merges: bool = False
    """Whether TorchArc calls it with a list of values (the graph's nested list): fluxion's layer
    takes them as separate arguments."""


_STACKED = frozenset({"dim"})  # MergeSum/Prod/Mean stack along dim and reduce it: an element-wise op, any dim

OWN: dict[str, Own] = {
    "Get": Own("Get", {"key": 0}),
    "Narrow": Own("Narrow"),
    "IndexSelect": Own("IndexSelect"),
    "Reduce": Own("Reduce", {"keepdim": False}),
    "TorchFn": Own("TorchFunction"),
    "ForkChunk": Own("Chunk", {"chunks": 2, "dim": 1}),
    "ForkSplit": Own("Split", {"dim": 1}),
    "MergeConcat": Own("Cat", {"dim": 1}, merges=True),
    "MergeStack": Own("Stack", {"dim": 1}, merges=True),
    "MergeSum": Own("Add", dropped=_STACKED, merges=True),
    "MergeProd": Own("Multiply", dropped=_STACKED, merges=True),
    "MergeMean": Own("Mean", dropped=_STACKED, merges=True),
    "MergeDot": Own("VecDot"),
    "MergeBMM": Own("BatchMatmul"),
    "MergeFiLM": Own("FiLM"),
}
"""TorchArc's own modules (``torcharc.module``) by name."""

FORMS = ("Sequential", "compact")
"""The module specs that are not a class: a list of layers, and TorchArc's compact layer stack."""


def torch_classes() -> dict[str, type[torch.nn.Module]]:
    """Every ``torch.nn`` module class a TorchArc file may name, by name.

    >>> torch_classes()["Linear"] is torch.nn.Linear, "Module" in torch_classes()
    (True, False)
    """
    names = vars(torch.nn)
    if _found[0] != len(names):  # read again when classes were added to torch.nn (as TorchArc does)
        found: dict[str, type[torch.nn.Module]] = {}
        for name in dir(torch.nn):
            value = getattr(torch.nn, name)
            leaf_class = name not in _NOT_LEAVES and name != "Sequential" and not name.startswith("_")
            if leaf_class and isinstance(value, type) and issubclass(value, torch.nn.Module):
                found[name] = value
        _found[:] = [len(names), found]
    return dict(_found[1])


_found: list[Any] = [-1, {}]  # (how many names torch.nn had, the classes found then)


def known_names() -> list[str]:
    """Every class name a TorchArc module spec may give (with ``Sequential`` and ``compact``).

    >>> "MergeFiLM" in known_names(), "LazyLinear" in known_names()
    (True, True)
    """
    return [*FORMS, *OWN, *torch_classes()]


def closest(name: str, names: list[str]) -> str:
    """A hint naming the closest of ``names`` to ``name`` (case aside), or "" when none is close.

    >>> closest("Linaer", ["Linear", "Bilinear", "ReLU"])
    ' (closest: Linear)'
    """
    found = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not found:
        lowered = {candidate.lower(): candidate for candidate in names}
        found = [lowered[match] for match in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]
    return f" (closest: {', '.join(found)})" if found else ""


def leaf(name: str, kwargs: Any, path: NodePath) -> dict[str, Any]:
    """The fluxion node for ``{name: kwargs}``; ``path`` is where the module spec is (for errors).

    >>> leaf("Linaer", {}, ["modules", "head"])
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: modules.head.Linaer: unknown class 'Linaer': TorchArc takes torch.nn's \
classes and its own (closest: Linear, LazyLinear)
    """
    where = json_path([*path, name])
    if name in _NOT_LEAVES or name == "MergeDim":
        raise SpecError(f"{name} is a base class, not a module to build", path=where)
    if name not in OWN and name not in torch_classes():
        raise SpecError(
            f"unknown class {name!r}: TorchArc takes torch.nn's classes and its own{closest(name, known_names())}",
            path=where,
        )
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise SpecError(
            f"{name}'s arguments are keyword arguments (a mapping such as {{out_features: 10}}) or null, "
            f"got {type(kwargs).__name__} {kwargs!r}",
            path=where,
        )
    given = dict(cast(Mapping[str, Any], kwargs))
    for key in given:
        if not isinstance(cast(object, key), str):
            raise SpecError(f"an argument name is a string, got {key!r}", path=where)
    if name in OWN:
        return _own(name, given, where)
    if name in SAME_AS_TORCH or (name in SAME_WITH_DIM and "dim" in given):
        return {"type": name, **given}
    if name in _LAZY and _LAZY[name] in registry.registered():
        return {"type": _LAZY[name], **given}
    return {"type": TORCH_PREFIX + name, **given}


def _own(name: str, given: dict[str, Any], where: str) -> dict[str, Any]:
    own = OWN[name]
    if own.fluxion not in registry.registered():
        raise SpecError(
            f"TorchArc's {name} needs fluxion's {own.fluxion}, which this fluxion does not have", path=where
        )
    arguments = {**own.defaults, **given}
    for key in own.dropped:
        arguments.pop(key, None)
    if name == "TorchFn":  # TorchFn(name, **kwargs): the keywords of the torch function, apart
        function = arguments.pop("name", None)
        return {"type": own.fluxion, "name": function, **({"kwargs": arguments} if arguments else {})}
    return {"type": own.fluxion, **{own.renames.get(key, key): value for key, value in arguments.items()}}


def extra_classes(spec_types: set[str]) -> dict[str, type[torch.nn.Module]]:
    """The plain torch classes the translated spec names (``torch.nn.<Name>``), by that name.

    >>> extra_classes({"Linear", "torch.nn.GELU"})
    {'torch.nn.GELU': <class 'torch.nn.modules.activation.GELU'>}
    """
    classes = torch_classes()
    return {
        kind: classes[kind.removeprefix(TORCH_PREFIX)] for kind in sorted(spec_types) if kind.startswith(TORCH_PREFIX)
    }


def forward_parameters(kind: str, classes: Mapping[str, type[torch.nn.Module]]) -> list[str] | None:
    """The names of the positional parameters of the ``forward`` of the class a spec type names, in
    order; None when it takes any number (``*args``).

    >>> forward_parameters("torch.nn.MultiheadAttention", extra_classes({"torch.nn.MultiheadAttention"}))[:3]
    ['query', 'key', 'value']
    >>> forward_parameters("Chain", {})
    ['input']
    """
    if kind == "Chain":
        return ["input"]  # a Sequential: torch's takes one input
    cls = classes[kind] if kind in classes else registry.lookup(kind)
    names: list[str] = []
    parameters = list(inspect.signature(cls.forward).parameters.values())[1:]  # self
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.append(parameter.name)
    return names


def merges(name: str) -> bool:
    """Whether TorchArc's class ``name`` is called with one list of values (``merge: [[a, b]]``).

    >>> merges("MergeSum"), merges("MergeDot"), merges("Linear")
    (True, False, False)
    """
    return name in OWN and OWN[name].merges
