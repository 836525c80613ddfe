"""The registry: the only way a spec names a class.

A spec's ``"type"`` is looked up here and nowhere else: no dotted import paths, no ``eval``. Every
layer of ``fluxion.layers`` is registered under its class name; ``register`` adds your own. A
package adds its layers for everyone by naming a module in the ``fluxion.layers`` entry-point group
(in its ``pyproject.toml``): the module's public ``torch.nn.Module`` classes (its ``__all__``) are
registered the first time a type is looked up. fluxion's own ``fluxion.nas`` comes in this way, as
a higher floor that this module may not import. torch's
own module classes are named ``"torch.nn.<Name>"`` (``"torch.nn.MultiheadAttention"``): built as
plain torch leaves, with torch's arguments.

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
import functools
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar, cast, overload

import torch

import fluxion.layers as fl
from fluxion.errors import SpecError

M = TypeVar("M", bound=type[torch.nn.Module])

_NOT_IN_SPECS = {"Module", "WeightedModule", "Lambda", "Intermediates"}
"""Bases, a layer that holds a Python function, and a wrapper that hooks a model it is given: no spec builds them."""
_classes: dict[str, type[torch.nn.Module]] = {}


ENTRY_POINTS = "fluxion.layers"
"""The entry-point group whose modules add their layers to every spec (``[project.entry-points."fluxion.layers"]``)."""


def _builtins() -> dict[str, type[torch.nn.Module]]:
    if not _classes:
        _classes.update(_layers_of(fl))
        for entry in entry_points(group=ENTRY_POINTS):
            for name, value in _layers_of(importlib.import_module(entry.value)).items():
                _classes.setdefault(name, value)
    return _classes


def _layers_of(module: object) -> dict[str, type[torch.nn.Module]]:
    """The public module classes of ``module`` (its ``__all__``), by name."""
    found: dict[str, type[torch.nn.Module]] = {}
    for name in cast(list[str], getattr(module, "__all__", [])):
        value = getattr(module, name)
        if isinstance(value, type) and issubclass(value, torch.nn.Module) and name not in _NOT_IN_SPECS:
            found[name] = value
    return found


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


TORCH_PREFIX = "torch.nn."
"""How a spec names one of torch's own module classes (a registered name never has a dot)."""

_TORCH_CONTAINERS = frozenset(
    {"Module", "Container", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"}
)


@functools.cache
def torch_module_classes() -> dict[str, type[torch.nn.Module]]:
    """torch's own module classes a spec may name, by spec type (``"torch.nn.GELU"``): every
    ``torch.nn.Module`` subclass defined by torch in ``torch.nn`` but the containers and bases.

    >>> classes = torch_module_classes()
    >>> classes["torch.nn.MultiheadAttention"] is torch.nn.MultiheadAttention, "torch.nn.Sequential" in classes
    (True, False)
    """
    found: dict[str, type[torch.nn.Module]] = {}
    for name, value in vars(torch.nn).items():
        if name.startswith("_") or name in _TORCH_CONTAINERS or not isinstance(value, type):
            continue
        if issubclass(value, torch.nn.Module) and value.__module__.startswith("torch."):
            found[TORCH_PREFIX + name] = value
    return found


def torch_name_of(cls: type[torch.nn.Module]) -> str | None:
    """The spec type of one of torch's own module classes (``"torch.nn.GELU"``), or None.

    >>> import fluxion.layers as fl
    >>> torch_name_of(torch.nn.GELU), torch_name_of(fl.Linear)
    ('torch.nn.GELU', None)
    """
    key = TORCH_PREFIX + cls.__name__
    return key if torch_module_classes().get(key) is cls else None


def _torch_lookup(name: str) -> type[torch.nn.Module]:
    classes = torch_module_classes()
    found = classes.get(name)
    if found is not None:
        return found
    short = name.removeprefix(TORCH_PREFIX)
    if short in _TORCH_CONTAINERS:
        raise SpecError(f"{name} is a container or a base class, not a leaf a spec builds (a Chain holds children)")
    names = [key.removeprefix(TORCH_PREFIX) for key in classes]
    close = difflib.get_close_matches(short, names, n=3, cutoff=0.6) or difflib.get_close_matches(
        short.lower(), [key.lower() for key in names], n=3, cutoff=0.6
    )
    spelled = {key.lower(): key for key in names}
    hint = ", ".join(TORCH_PREFIX + spelled.get(key.lower(), key) for key in close)
    raise SpecError(
        f"unknown type {name!r}: not one of torch.nn's module classes"
        + (f" (closest: {hint})" if hint else " (torch.nn.<Name>, such as torch.nn.GELU)")
    )


def lookup(name: object) -> type[torch.nn.Module]:
    """The class registered as ``name`` (or torch's class named ``"torch.nn.<Name>"``), or a
    SpecError with the closest names.

    >>> lookup("Conv2d").__name__
    'Conv2d'
    >>> lookup("Conv2D")
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: unknown type 'Conv2D' (closest registered: Conv2d, Conv3d, Conv1d)
    >>> lookup("torch.nn.MultiheadAttention").__name__
    'MultiheadAttention'
    >>> lookup("torch.nn.MultiHeadAttention")
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: unknown type 'torch.nn.MultiHeadAttention': not one of torch.nn's module classes \
(closest: torch.nn.MultiheadAttention)
    """
    classes = _builtins()
    if not isinstance(name, str):
        raise SpecError(f"a node's type is a registered class name (a string), got {name!r}")
    if name.startswith(TORCH_PREFIX):
        return _torch_lookup(name)
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
