"""Short descriptions of nodes for diagrams: the name and class, and the arguments that matter.

The arguments are the node's ``extra_repr`` with those left at their defaults dropped and
repeated tuples folded (``kernel_size=(3, 3)`` reads ``kernel_size=3``).

>>> import fluxion.layers as fl
>>> key_arguments(fl.Conv2d(3, 64, kernel_size=3, padding=1))
'3, 64, kernel_size=3, padding=1'
>>> key_arguments(fl.BatchNorm2d(64))
'64'
>>> title("conv1", fl.Conv2d(3, 8, 3)), title("Conv2d_2", fl.Conv2d(3, 8, 3))
('conv1: Conv2d', 'Conv2d')
"""

from __future__ import annotations

import functools
import inspect
import re

import torch

from fluxion.tree import node_class
from fluxion.tree.display import display_name
from fluxion.tree.naming import base_of

_REPEATED = re.compile(r"\((-?[\w.]+)(?:, \1)+,?\)")
_TOP_LEVEL_COMMA = re.compile(r",\s*(?![^()\[\]{}]*[)\]}])")


def title(name: str, module: torch.nn.Module) -> str:
    """``name: Class``, or just ``Class`` when the name is the automatic one (``Class`` or ``Class_2``).

    A node given a display name by the file it was read from (narchi's ``_name``) shows it in place
    of its class: ``0: ResBlock``.

    >>> import fluxion.layers as fl
    >>> from fluxion.tree.display import set_display_name
    >>> block = fl.Chain(fl.ReLU())
    >>> set_display_name(block, "ResBlock")
    >>> title("", fl.ReLU()), title("head", fl.Linear(2, 2)), title("0", block)
    ('ReLU', 'head: Linear', '0: ResBlock')
    """
    kind = node_class(module).__name__
    shown = display_name(module) or kind
    return shown if not name or name == shown or base_of(name) == kind else f"{name}: {shown}"


def key_arguments(module: torch.nn.Module) -> str:
    """The arguments of ``module`` worth showing: ``extra_repr`` without defaults, tuples folded.

    >>> import fluxion.layers as fl
    >>> key_arguments(fl.Linear(64, 10)), key_arguments(fl.ReLU())
    ('in_features=64, out_features=10', '')
    """
    text = _REPEATED.sub(r"\1", module.extra_repr().replace("\n", ", "))
    defaults = _defaults(node_class(module))
    kept: list[str] = []
    for part in (part.strip() for part in _TOP_LEVEL_COMMA.split(text) if part.strip()):
        name, equals, value = part.partition("=")
        if equals and value in defaults.get(name, ()):
            continue
        kept.append(part)
    return ", ".join(kept)


@functools.cache
def _defaults(cls: type[torch.nn.Module]) -> dict[str, set[str]]:
    """Each constructor argument's defaults as ``repr`` text, from the class and the torch classes it
    builds on (``stride=None`` in fluxion's Conv2d means torch's ``stride=1``)."""
    defaults: dict[str, set[str]] = {}
    for base in cls.__mro__:
        if "__init__" not in vars(base) or not issubclass(base, torch.nn.Module) or base is torch.nn.Module:
            continue
        try:
            parameters = inspect.signature(base).parameters.values()
        except (TypeError, ValueError):
            continue
        for parameter in parameters:
            if parameter.default is not inspect.Parameter.empty:
                defaults.setdefault(parameter.name, set()).add(repr(parameter.default))
    return defaults
