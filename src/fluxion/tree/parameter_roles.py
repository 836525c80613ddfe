"""Two roles of parameters: weights, and architecture parameters that a search learns apart from them.

A module names its architecture parameters in the class attribute ``architecture_parameters``
(a tuple of its own parameter names); every other parameter is a weight. The two sets partition a
model's ``parameters()``: a tensor shared by several modules is counted once, in the role that any
of them declares. Helpers that build an optimizer or initialise a model for training
(``fluxion.training``) take the weights only, so architecture parameters never get the weights'
steps and weight decay.

>>> import torch
>>> import fluxion.layers as fl
>>> class Gate(fl.Module):
...     architecture_parameters = ("logit",)
...
...     def __init__(self) -> None:
...         super().__init__()
...         self.logit = torch.nn.Parameter(torch.zeros(()))
...
...     def forward(self, x: torch.Tensor) -> torch.Tensor:
...         return torch.sigmoid(self.logit) * x
>>> model = fl.Chain(fl.Linear(2, 2), Gate())
>>> [name for name, _ in named_architecture_parameters(model)], [name for name, _ in named_weights(model)]
(['Gate.logit'], ['Linear.weight', 'Linear.bias'])
"""

from __future__ import annotations

from typing import cast

import torch

ROLE_ATTRIBUTE = "architecture_parameters"
"""The class attribute in which a module names its own architecture parameters."""


def architecture_parameter_ids(model: torch.nn.Module) -> set[int]:
    """The ``id`` of every architecture parameter in ``model``.

    >>> import fluxion.layers as fl
    >>> architecture_parameter_ids(fl.Chain(fl.Linear(2, 2)))
    set()
    """
    found: set[int] = set()
    for module in model.modules():
        for name in cast(tuple[str, ...], getattr(type(module), ROLE_ATTRIBUTE, ())):
            value = getattr(module, name, None)
            if isinstance(value, torch.nn.Parameter):
                found.add(id(value))
    return found


def named_architecture_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """The architecture parameters of ``model`` by address, each tensor once (as ``named_parameters``).

    >>> import fluxion.layers as fl
    >>> named_architecture_parameters(fl.Chain(fl.Linear(2, 2)))
    []
    """
    chosen = architecture_parameter_ids(model)
    return [(name, value) for name, value in model.named_parameters() if id(value) in chosen]


def named_weights(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """Every parameter of ``model`` that is not an architecture parameter, by address, each tensor once.

    >>> import fluxion.layers as fl
    >>> [name for name, _ in named_weights(fl.Chain(fl.Linear(2, 2)))]
    ['Linear.weight', 'Linear.bias']
    """
    chosen = architecture_parameter_ids(model)
    return [(name, value) for name, value in model.named_parameters() if id(value) not in chosen]
