"""Names a node shows in diagrams besides its address and class: the name the file it was read
from gives it (narchi's ``_name``, such as ``ResBlock``), and the names of a model's outputs.

They are kept in the module itself, so copies of the module keep them; nothing else reads them.

>>> import fluxion.layers as fl
>>> block = fl.Chain(fl.Linear(2, 2))
>>> set_display_name(block, "ResBlock")
>>> display_name(block), display_name(fl.ReLU())
('ResBlock', None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch

DISPLAY_NAME = "_fluxion_display_name"
"""Key in a module's ``__dict__`` holding the name it shows in diagrams."""

OUTPUT_NAMES = "_fluxion_output_names"
"""Key in a module's ``__dict__`` holding the names of its outputs."""


def set_display_name(module: torch.nn.Module, name: str | None) -> None:
    """Give ``module`` a name to show in diagrams in place of its class (None takes it away).

    >>> import torch
    >>> relu = torch.nn.ReLU()
    >>> set_display_name(relu, "Activation"); display_name(relu)
    'Activation'
    >>> set_display_name(relu, None); display_name(relu) is None
    True
    """
    if name is None:
        module.__dict__.pop(DISPLAY_NAME, None)
    else:
        module.__dict__[DISPLAY_NAME] = str(name)


def display_name(module: torch.nn.Module) -> str | None:
    """The name ``module`` shows in diagrams in place of its class, if it was given one.

    >>> import torch
    >>> display_name(torch.nn.ReLU()) is None
    True
    """
    name = module.__dict__.get(DISPLAY_NAME)
    return name if isinstance(name, str) else None


def set_output_names(module: torch.nn.Module, names: Sequence[str]) -> None:
    """Name the outputs of ``module`` (a model's root), in order; an empty sequence takes them away.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(4, 2))
    >>> set_output_names(model, ["logits"]); output_names(model)
    ('logits',)
    """
    if names:
        module.__dict__[OUTPUT_NAMES] = tuple(str(name) for name in names)
    else:
        module.__dict__.pop(OUTPUT_NAMES, None)


def output_names(module: torch.nn.Module) -> tuple[str, ...]:
    """The names of the outputs of ``module``, in order; empty when it was given none.

    >>> import torch
    >>> output_names(torch.nn.Linear(2, 2))
    ()
    """
    names: object = module.__dict__.get(OUTPUT_NAMES, ())
    return cast(tuple[str, ...], names) if isinstance(names, tuple) else ()
