"""Nodes whose class a wrapper swapped: the class they were built as, and the surgery they refuse.

PyTorch's distributed wrappers work in place: ``fully_shard`` (FSDP2) turns a ``Chain`` into an
``FSDPChain``, a subclass made on the fly that keeps the node's attributes, children and tensors.
The tree speaks of such a node by the class it was built as (:func:`node_class`), so automatic
names, ``repr``, shape reports and spec dumps read as before; and a Chain refuses surgery in or
around a wrapped node (:func:`wrapped_node_in`), since the wrapper holds on to the tensors it
manages. A swapped-in class is recognised by where it is defined: anywhere under
``torch.distributed``.

>>> import fluxion.layers as fl
>>> linear = fl.Linear(2, 2)
>>> node_class(linear) is fl.Linear, is_wrapped(linear)
(True, False)
"""

from __future__ import annotations

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
    cls = type(module)
    if not _is_wrapper_class(cls):
        return cls
    for base in cls.__mro__:
        if issubclass(base, torch.nn.Module) and not _is_wrapper_class(base):
            return base
    return cls


def is_wrapped(module: torch.nn.Module) -> bool:
    """Whether a distributed wrapper swapped ``module``'s class (``fully_shard`` did, for one).

    >>> import torch
    >>> is_wrapped(torch.nn.Linear(2, 2))
    False
    """
    return _is_wrapper_class(type(module))


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
