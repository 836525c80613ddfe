"""The registry: the only way a spec names a class.

A spec's ``"type"`` is looked up here and nowhere else: no dotted import paths, no ``eval``. Every
layer of ``fluxion.layers`` is registered under its class name; ``register`` adds your own.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion import spec
>>> @spec.register
... class Amplify(fl.Module):
...     def __init__(self, factor: float = 2.0) -> None:
...         super().__init__()
...         self.factor = factor
...
...     def forward(self, x: torch.Tensor) -> torch.Tensor:
...         return x * self.factor
>>> spec.loads({"type": "Chain", "children": [{"type": "Amplify", "factor": 3.0}]})(torch.ones(1)).item()
3.0
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TypeVar, cast, overload

import torch

import fluxion.layers as fl
from fluxion.errors import SpecError

M = TypeVar("M", bound=type[torch.nn.Module])

_NOT_IN_SPECS = {"Module", "WeightedModule", "Lambda", "Intermediates"}
"""Bases, a layer that holds a Python function, and a wrapper that hooks a model it is given: no spec builds them."""
_classes: dict[str, type[torch.nn.Module]] = {}


def _builtins() -> dict[str, type[torch.nn.Module]]:
    if not _classes:
        for name in fl.__all__:
            value = getattr(fl, name)
            if isinstance(value, type) and issubclass(value, torch.nn.Module) and name not in _NOT_IN_SPECS:
                _classes[name] = value
    return _classes


@overload
def register(cls: M, name: str | None = None) -> M: ...


@overload
def register(cls: None = None, name: str | None = None) -> Callable[[M], M]: ...


def register(cls: M | None = None, name: str | None = None) -> M | Callable[[M], M]:
    """Make ``cls`` available to specs as ``name`` (its class name by default); also a decorator.

    Registering a second class under a taken name is an error; registering the same class again
    is not, nor is registering a class defined again under the same module and name (a re-run
    notebook cell), which replaces the earlier one.

    >>> import fluxion.layers as fl
    >>> from fluxion import spec
    >>> class Gate(fl.Sigmoid): ...
    >>> spec.register(Gate, name="MyGate") is Gate
    True
    >>> spec.register(name="MyGate")(fl.Sigmoid)
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: cannot register Sigmoid as 'MyGate': that name is Gate already
    """

    def add(layer: M) -> M:
        given = cast(object, layer)
        if not (isinstance(given, type) and issubclass(given, torch.nn.Module)):
            raise SpecError(f"register expects a torch.nn.Module class, got {layer!r}")
        key = layer.__name__ if name is None else name
        if not key.isidentifier():
            raise SpecError(f"a registered name is an identifier, got {key!r}")
        classes = _builtins()
        present = classes.get(key)
        redefined = present is not None and (present.__module__, present.__qualname__) == (
            layer.__module__,
            layer.__qualname__,
        )
        if present is not None and present is not layer and not redefined:
            raise SpecError(f"cannot register {layer.__name__} as {key!r}: that name is {present.__name__} already")
        classes[key] = layer
        return layer

    return add if cls is None else add(cls)


def lookup(name: object) -> type[torch.nn.Module]:
    """The class registered as ``name``, or a SpecError with the closest registered names.

    >>> lookup("Conv2d").__name__
    'Conv2d'
    >>> lookup("Conv2D")
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: unknown type 'Conv2D' (closest registered: Conv2d, Conv3d, Conv1d)
    """
    classes = _builtins()
    if not isinstance(name, str):
        raise SpecError(f"a node's type is a registered class name (a string), got {name!r}")
    found = classes.get(name)
    if found is None:
        lowered = {key.lower(): key for key in classes}  # suggestions are names as registered
        close = difflib.get_close_matches(name, classes, n=3, cutoff=0.5) or [
            lowered[found] for found in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.5)
        ]
        hint = f"closest registered: {', '.join(close)}" if close else "see fluxion.spec.registered()"
        raise SpecError(f"unknown type {name!r} ({hint})")
    return found


def name_of(cls: type[torch.nn.Module]) -> str | None:
    """The name ``cls`` is registered under, or None.

    >>> import fluxion.layers as fl
    >>> name_of(fl.ReLU), name_of(dict)
    ('ReLU', None)
    """
    for key, value in _builtins().items():
        if value is cls:
            return key
    return None


def registered() -> list[str]:
    """Every registered name, sorted.

    >>> "Linear" in registered()
    True
    """
    return sorted(_builtins())
