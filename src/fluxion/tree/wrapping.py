"""Nodes whose class a wrapper swapped: the class they were built as, and the surgery they refuse.

PyTorch's distributed wrappers work in place: ``fully_shard`` (FSDP2) turns a ``Chain`` into an
``FSDPChain``, a subclass made on the fly that keeps the node's attributes, children and tensors.
The tree speaks of such a node by the class it was built as (:func:`node_class`), so automatic
names, ``repr``, shape reports and spec dumps read as before; and a Chain refuses surgery in or
around a wrapped node (:func:`wrapped_node_in`), since the wrapper holds on to the tensors it
manages. A swapped-in class is recognised by its bases: it derives from a class defined under
``torch.distributed`` (FSDP2's ``FSDPModule``) and from the node's own class.

>>> import fluxion.layers as fl
>>> linear = fl.Linear(2, 2)
>>> node_class(linear) is fl.Linear, is_wrapped(linear)
(True, False)
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch

WRAPPER_PACKAGE = "torch.distributed"
"""Classes defined in this package (or below) are wrappers' stand-ins, never a node's own class."""


def node_class(module: torch.nn.Module) -> type[torch.nn.Module]:
    """The class ``module`` was built as, under any class a distributed wrapper swapped in.

    >>> import fluxion.layers as fl
    >>> node_class(fl.Chain()).__name__
    'Chain'
    """
    return _built_as(type(module))


@functools.lru_cache(maxsize=1024)
def _built_as(cls: type[torch.nn.Module]) -> type[torch.nn.Module]:
    # A swapped-in class derives from a mixin of torch.distributed (FSDPModule) and the node's
    # class. Its own __module__ cannot be trusted: made through a metaclass (ABCMeta), it says "abc".
    mixins = tuple(base for base in cls.__mro__ if _is_wrapper_class(base))
    if not mixins:
        return cls
    for base in cls.__mro__:
        if issubclass(base, torch.nn.Module) and base is not torch.nn.Module and not issubclass(base, mixins):
            return base
    return cls  # a module class of torch.distributed itself (FSDP1's wrapper): its own class


def is_wrapped(module: torch.nn.Module) -> bool:
    """Whether a distributed wrapper swapped ``module``'s class (``fully_shard`` did, for one); a
    module of a class torch.distributed defines itself (FSDP1's wrapper) is not a swapped node.

    >>> import torch
    >>> is_wrapped(torch.nn.Linear(2, 2))
    False
    """
    return node_class(module) is not type(module)


def wrapped_node_in(modules: Iterable[torch.nn.Module]) -> torch.nn.Module | None:
    """The first wrapped node among ``modules`` and everything under them, or None.

    Surgery asks this about the nodes it removes and adds: its cost is the size of what changes.

    >>> import fluxion.layers as fl
    >>> wrapped_node_in([fl.Chain(fl.ReLU())]) is None
    True
    """
    for module in modules:
        for node in module.modules():
            if is_wrapped(node):
                return node
    return None


def _is_wrapper_class(cls: type) -> bool:
    module = cls.__module__
    return module == WRAPPER_PACKAGE or module.startswith(WRAPPER_PACKAGE + ".")
