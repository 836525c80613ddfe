"""Losses from specs: a ``torch.nn`` loss by name, its tensor arguments (``weight``, ``pos_weight``)
made tensors from numbers and lists, every other argument passed as written.

>>> from fluxion import training
>>> training.build_loss({"type": "BCEWithLogitsLoss", "pos_weight": 10.0}).pos_weight
tensor(10.)
>>> training.build_loss({"type": "HuberLoss", "delta": 2.0}).delta
2.0
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch

from fluxion.errors import TrainingError
from fluxion.training.options import check_arguments, did_you_mean, split_type

LossSpec = Mapping[str, Any]
"""``{"type": "CrossEntropyLoss", "weight": [1.0, 3.0], "label_smoothing": 0.1}``."""

LOSSES: dict[str, type[torch.nn.Module]] = {
    name: value
    for name, value in vars(torch.nn).items()
    if name.endswith("Loss") and isinstance(value, type) and issubclass(value, torch.nn.Module)
}
"""``torch.nn``'s losses by name: its classes whose name ends in ``Loss``."""


def loss_class(kind: object) -> type[torch.nn.Module]:
    """The loss class a spec's ``type`` names: a ``torch.nn`` loss name, or (from Python) a module class.

    >>> loss_class("MSELoss")
    <class 'torch.nn.modules.loss.MSELoss'>
    """
    if isinstance(kind, type) and issubclass(kind, torch.nn.Module):
        return kind
    if isinstance(kind, str) and kind in LOSSES:
        return LOSSES[kind]
    spelled = kind if isinstance(kind, str) else repr(cast(object, kind))
    raise TrainingError(
        f"unknown loss {spelled!r}{did_you_mean(spelled, LOSSES)}; a loss is a torch.nn class whose name ends in Loss",
        path=("type",),
    )


def tensor_arguments(cls: type[torch.nn.Module]) -> tuple[str, ...]:
    """The constructor arguments of ``cls`` that take a tensor (their annotation says ``Tensor``).

    >>> tensor_arguments(torch.nn.BCEWithLogitsLoss), tensor_arguments(torch.nn.HuberLoss)
    (('weight', 'pos_weight'), ())
    """
    parameters = inspect.signature(cls).parameters.values()
    return tuple(parameter.name for parameter in parameters if "Tensor" in str(parameter.annotation))


def build_loss(spec: LossSpec) -> torch.nn.Module:
    """The loss ``spec`` describes (TorchArc's ``build_criterion``): ``{"type": name, **arguments}``.

    Arguments that take a tensor become one (in the default dtype) when given a number or a list of
    numbers; the others are passed as written, so ``HuberLoss``'s ``delta`` stays a float. ``spec``
    is never changed; an unknown name or argument is a ``TrainingError`` with a suggestion.

    >>> build_loss({"type": "CrossEntropyLoss", "weight": [1, 3]}).weight
    tensor([1., 3.])
    """
    kind, arguments = split_type(spec, "loss")
    cls = loss_class(kind)
    check_arguments(arguments, cls, cls.__name__)
    for name in tensor_arguments(cls):
        if name in arguments and arguments[name] is not None and not isinstance(arguments[name], torch.Tensor):
            arguments[name] = _as_tensor(cls.__name__, name, arguments[name])
    try:
        return cls(**arguments)
    except (ValueError, TypeError) as error:
        raise TrainingError(f"{cls.__name__}: {error}") from None


def _as_tensor(loss: str, name: str, value: object) -> torch.Tensor:
    numbers = cast(Sequence[object], value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not all(
        isinstance(number, int | float) and not isinstance(number, bool) for number in cast(Sequence[object], numbers)
    ):
        raise TrainingError(f"{loss}: {name} takes a number or a list of numbers, got {value!r}", path=(name,))
    return torch.tensor(value, dtype=torch.get_default_dtype())
