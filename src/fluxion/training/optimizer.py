"""Optimizers from specs: a ``torch.optim`` class by name with its options, and parameter groups
picked by address glob, each with its own options (learning rate, weight decay...).

>>> import fluxion.layers as fl
>>> from fluxion import training
>>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU(), fl.Linear(8, 2))
>>> optimizer = training.build_optimizer(
...     {"type": "AdamW", "lr": 1e-3, "groups": [{"params": "*.bias", "weight_decay": 0.0}]}, model
... )
>>> [(len(group["params"]), group["weight_decay"]) for group in optimizer.param_groups]
[(2, 0.0), (2, 0.01)]
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch

from fluxion.errors import TrainingError
from fluxion.training.options import Place, check_arguments, close_addresses, did_you_mean, split_type
from fluxion.tree.parameter_roles import named_architecture_parameters, named_weights

OptimizerSpec = Mapping[str, Any]
"""``{"type": "Adam", "lr": 0.001, "groups": [{"params": "*.bias", "weight_decay": 0.0}, ...]}``."""

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    name: value
    for name, value in vars(torch.optim).items()
    if isinstance(value, type) and issubclass(value, torch.optim.Optimizer) and value is not torch.optim.Optimizer
}
"""``torch.optim``'s optimizers by name."""

TORCHARC_OPTIMIZERS = ("GlobalAdam", "GlobalRMSprop", "Lookahead")
"""TorchArc 1's own optimizers, which it added to ``torch.optim`` (fluxion adds nothing there)."""


def optimizer_class(kind: object, place: Place = ("type",)) -> type[torch.optim.Optimizer]:
    """The optimizer class a spec's ``type`` names: a ``torch.optim`` name, or (from Python) a class.

    >>> optimizer_class("SGD")
    <class 'torch.optim.sgd.SGD'>
    """
    if isinstance(kind, type) and issubclass(kind, torch.optim.Optimizer):
        return kind
    if isinstance(kind, str) and kind in OPTIMIZERS:
        return OPTIMIZERS[kind]
    if kind in TORCHARC_OPTIMIZERS:
        raise TrainingError(
            f"{kind!r} is TorchArc's own optimizer, not torch's; from Python, give its class as the type "
            '({"type": MyOptimizer, ...})',
            path=place,
        )
    spelled = kind if isinstance(kind, str) else repr(cast(object, kind))
    raise TrainingError(
        f"unknown optimizer {spelled!r}{did_you_mean(spelled, OPTIMIZERS)}; optimizers are torch.optim's: "
        + ", ".join(sorted(OPTIMIZERS)),
        path=place,
    )


def parameter_groups(
    model: torch.nn.Module, groups: object, cls: type[torch.optim.Optimizer] | None = None
) -> list[dict[str, Any]]:
    """The parameter groups ``groups`` (a list of ``{"params": glob or globs, **options}``) pick from
    ``model``: each parameter in the first group that matches it, the rest in a last group of its
    own (with the optimizer's options). Shared parameters count once. Given the optimizer's class
    ``cls``, each group's options are checked against it.

    >>> import fluxion.layers as fl
    >>> groups = parameter_groups(fl.Chain(fl.Linear(2, 2)), [{"params": ["*.bias"], "lr": 0.1}])
    >>> [(len(group["params"]), group.get("lr")) for group in groups]
    [(1, 0.1), (1, None)]
    """
    parameters = dict(named_weights(model))
    lazy = [
        address
        for address, tensor in parameters.items()
        if isinstance(tensor, torch.nn.parameter.UninitializedParameter)
    ]
    if lazy:
        raise TrainingError(
            f"{lazy[0]!r} has no size yet (a lazy layer): build the optimizer after the sizes are known "
            "(fluxion.shapes.materialize, or one call of the model)"
        )
    if not isinstance(groups, Sequence) or isinstance(groups, str):
        raise TrainingError(f'"groups" is a list of {{"params": glob, **options}}, got {groups!r}', path=("groups",))
    claimed: dict[str, int] = {}
    built: list[dict[str, Any]] = []
    for index, group in enumerate(cast(Sequence[object], groups)):
        place: Place = ("groups", index)
        if not isinstance(group, Mapping) or "params" not in group:
            raise TrainingError(f'a group is {{"params": glob, **options}}, got {group!r}', path=place)
        entries = cast(Mapping[str, Any], group)
        options = {str(key): value for key, value in entries.items() if key != "params"}
        if cls is not None:
            check_arguments(options, cls, cls.__name__, place, skip=("params",))
        matched = _matching(parameters, cast(object, entries["params"]), (*place, "params"), model)
        fresh = [address for address in matched if address not in claimed]
        if not fresh:
            raise TrainingError(
                f"every parameter this group matches is in an earlier group (groups[{claimed[matched[0]]}]): a "
                "parameter goes to the first group that matches it, so put the narrower group first",
                path=(*place, "params"),
            )
        claimed.update(dict.fromkeys(fresh, index))
        built.append({"params": [parameters[address] for address in fresh], **options})
    rest = [tensor for address, tensor in parameters.items() if address not in claimed]
    if rest or not built:
        built.append({"params": rest})
    return built


def _matching(parameters: Mapping[str, torch.Tensor], globs: object, place: Place, model: torch.nn.Module) -> list[str]:
    listed = cast(object, [globs] if isinstance(globs, str) else globs)
    if (
        not isinstance(listed, list | tuple)
        or not listed
        or not all(isinstance(glob, str) for glob in cast(Sequence[object], listed))
    ):
        raise TrainingError(f"params is an address glob or a list of them, got {globs!r}", path=place)
    matched: dict[str, None] = {}
    for position, glob in enumerate(cast(Sequence[str], listed)):
        found = [address for address in parameters if fnmatch.fnmatchcase(address, glob)]
        if not found:
            where = place if isinstance(globs, str) else (*place, position)
            architecture = [name for name, _ in named_architecture_parameters(model) if fnmatch.fnmatchcase(name, glob)]
            if architecture:
                raise TrainingError(
                    f"{glob!r} matches only architecture parameters ({', '.join(architecture[:3])}), which an "
                    "optimizer built here never holds: give them their own (fluxion.nas.arch_parameters)",
                    path=where,
                )
            raise TrainingError(f"{glob!r} matches no parameter{close_addresses(glob, parameters)}", path=where)
        matched.update(dict.fromkeys(found))
    return [address for address in parameters if address in matched]


def build_optimizer(spec: OptimizerSpec, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``spec`` describes over ``model``'s parameters (TorchArc's ``build_optimizer``).

    ``spec`` is ``{"type": name, **options}`` with a ``torch.optim`` name; beyond TorchArc,
    ``"groups"`` picks parameter groups by address glob (see ``parameter_groups``), each with its
    own options. Unknown names and options are a ``TrainingError`` with a suggestion; ``spec`` is
    never changed.

    >>> import fluxion.layers as fl
    >>> optimizer = build_optimizer({"type": "SGD", "lr": 0.1, "momentum": 0.9}, fl.Linear(2, 2))
    >>> type(optimizer).__name__, optimizer.param_groups[0]["momentum"]
    ('SGD', 0.9)
    """
    kind, options = split_type(spec, "optimizer")
    cls = optimizer_class(kind)
    groups = cast(object, options.pop("groups", []))
    check_arguments(options, cls, cls.__name__, skip=("params",))
    built = parameter_groups(model, groups, cls)
    try:
        return cls(built, **options)
    except (ValueError, TypeError) as error:
        raise TrainingError(f"{cls.__name__}: {error}") from None
