"""Architecture parameters apart from weights, and the modes of a supernet's choices.

``arch_parameters(model)`` and ``weights(model)`` partition ``model.parameters()``: every tensor is
in exactly one of them, once (a tensor shared by several cells is one parameter). Build the weight
optimizer from ``weights`` and the architecture optimizer from ``arch_parameters``; fluxion's own
helpers (``fluxion.training.build_optimizer``, ``initialize``) already take the weights only.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion import nas
>>> model = fl.Chain(fl.Linear(4, 4), nas.Choice(a=fl.ReLU(), b=fl.Tanh()))
>>> [name for name, _ in nas.named_arch_parameters(model)]
['Choice.alphas']
>>> len(nas.weights(model)) + len(nas.arch_parameters(model)) == len(list(model.parameters()))
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch

from fluxion.errors import NasError
from fluxion.nas.choice import Choice, Mode
from fluxion.nas.input_choice import InputChoice
from fluxion.tree.parameter_roles import named_architecture_parameters, named_weights

named_arch_parameters = named_architecture_parameters
"""The architecture parameters by address (the first address of a shared one); ``fluxion.tree``'s function."""


def arch_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The architecture parameters of ``model`` (choices' ``alphas``, and any a module declares), each once.

    >>> import fluxion.layers as fl
    >>> [tuple(p.shape) for p in arch_parameters(fl.Chain(Choice(a=fl.ReLU(), b=fl.Tanh())))]
    [(2,)]
    """
    return [value for _, value in named_architecture_parameters(model)]


def weights(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Every parameter of ``model`` that is not an architecture parameter, each once.

    >>> import fluxion.layers as fl
    >>> len(weights(fl.Chain(fl.Linear(2, 2), Choice(a=fl.ReLU()))))
    2
    """
    return [value for _, value in named_weights(model)]


def choices(model: torch.nn.Module) -> Iterator[tuple[str, Choice | InputChoice]]:
    """Every ``Choice`` and ``InputChoice`` of ``model`` with its address, in tree order.

    >>> import fluxion.layers as fl
    >>> [address for address, _ in choices(fl.Chain(edge=Choice(a=fl.ReLU()), join=InputChoice(keep=1)))]
    ['edge', 'join']
    """
    for address, module in cast(Iterator[tuple[str, torch.nn.Module]], model.named_modules()):
        if isinstance(module, Choice | InputChoice):
            yield address, module


def set_mode(model: torch.nn.Module, mode: Mode, *, tau: float | None = None) -> int:
    """Put every ``Choice`` of ``model`` in ``mode`` (and ``InputChoice`` in ``"softmax"``,
    ``"sample"``: the modes they share); the number of choices changed. ``"fixed"`` is per choice:
    use ``Choice.choose`` or :func:`fluxion.nas.finalize`.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(Choice(a=fl.ReLU(), b=fl.Tanh()), Choice(c=fl.ReLU()))
    >>> set_mode(model, "gumbel", tau=0.5), model.Choice_2.mode
    (2, 'gumbel')
    """
    if mode == "fixed":
        raise NasError("set_mode: 'fixed' is chosen per choice (Choice.choose, or fluxion.nas.finalize)")
    changed = 0
    for _, node in choices(model):
        if isinstance(node, Choice):
            node.set_mode(mode, tau=tau)
            changed += 1
        elif mode in ("softmax", "sample"):
            node.set_mode(mode)
    return changed
