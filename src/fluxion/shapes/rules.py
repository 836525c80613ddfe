"""Shape rules for classes without an ``output_shape`` method: torch's own, a third party's, yours.

Shape inference takes a node's rule from its class's ``output_shape`` method. A class that cannot
have one (``torch.nn.MultiheadAttention``, a class of another library) gets its rule here:
``register_rule(cls, rule)``, where ``rule(module, *input_shapes)`` returns the output shape, as
``output_shape`` would. A subclass uses its base's rule as long as it keeps the base's ``forward``.
fluxion registers rules for torch's classes it has no layer of (``fluxion.shapes.torch_rules``).

>>> import torch
>>> from fluxion import dims, shapes
>>> class Doubler(torch.nn.Module):  # a class you cannot change
...     def forward(self, x):
...         return torch.cat([x, x], dim=-1)
>>> shapes.register_rule(Doubler, lambda module, x: dims.Shape([*x[:-1], 2 * x[-1]]))
>>> shapes.infer(torch.nn.Sequential(Doubler(), torch.nn.ReLU()), ("B", "F")).output
(B, 2*F)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, TypeVar, cast

import torch

from fluxion.dims import ShapeValue
from fluxion.errors import ShapeError

M = TypeVar("M", bound=torch.nn.Module)

Rule = Callable[..., ShapeValue]
"""``rule(module, *input_shapes, **named_input_shapes) -> output shape``."""

_RULES: dict[type[torch.nn.Module], Rule] = {}


def register_rule(cls: type[M], rule: Callable[Concatenate[M, ...], ShapeValue]) -> None:
    """Make ``rule`` the shape rule of ``cls`` (and of its subclasses that keep its ``forward``).

    ``rule`` receives the module, then the input shapes (``dims.Shape``, tuples of them for several
    values, None for an argument left out) and returns the output's, written with ``fluxion.dims``
    (see docs/shapes.md). Registering again for the same class replaces the rule. A class's own
    ``output_shape`` method comes first.

    >>> import torch
    >>> from fluxion import dims, shapes
    >>> class Last(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[..., -1]
    >>> shapes.register_rule(Last, lambda module, x: dims.Shape(x[:-1]))
    >>> shapes.infer(Last(), ("B", "T", 4)).output
    (B, T)
    >>> shapes.register_rule(int, lambda module, x: x)
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: register_rule takes a torch.nn.Module class, got <class 'int'>
    """
    if not isinstance(cast(object, cls), type) or not issubclass(cast(type, cls), torch.nn.Module):
        raise ShapeError(f"register_rule takes a torch.nn.Module class, got {cls!r}")
    if not callable(rule):
        raise ShapeError(f"register_rule takes a rule to call as rule(module, *input_shapes), got {rule!r}")
    _RULES[cls] = rule


def registered_rule(cls: type[torch.nn.Module]) -> Rule | None:
    """The rule registered for ``cls`` itself, or None.

    >>> import torch
    >>> from fluxion import shapes
    >>> shapes.registered_rule(torch.nn.MultiheadAttention) is not None, shapes.registered_rule(torch.nn.Module)
    (True, None)
    """
    return _RULES.get(cls)


def rule_for(module: torch.nn.Module) -> Callable[..., ShapeValue] | None:
    """The registered rule for ``module``, bound to it (``rule(*input_shapes)``), or None.

    The rule is the one of the nearest class of ``type(module)``'s method order that has one,
    unless a class before it defines its own ``forward``: that class computes something else.

    >>> import torch
    >>> from fluxion import dims, shapes
    >>> class Gelu(torch.nn.GELU):
    ...     pass
    >>> class Other(torch.nn.GELU):
    ...     def forward(self, x):
    ...         return x[0]
    >>> shapes.rule_for(Gelu())(dims.Shape(["B", 3])), shapes.rule_for(Other())
    ((B, 3), None)
    """
    for cls in type(module).__mro__:
        rule = _RULES.get(cast(type[torch.nn.Module], cls))
        if rule is not None:
            return _bound(rule, module)
        if "forward" in vars(cls):
            return None
    return None


def _bound(rule: Rule, module: torch.nn.Module) -> Callable[..., ShapeValue]:
    def bound(*inputs: ShapeValue, **named: ShapeValue) -> ShapeValue:
        return rule(module, *inputs, **named)

    return bound
