"""Leaves of the tree: ``Module`` (knows its parent and address) and ``WeightedModule``.

A node's parent is held by the node itself for fluxion modules, and in a weak registry for plain
``torch.nn.Module`` leaves, so that any torch module can sit in a Chain without being modified.

>>> import fluxion.layers as fl
>>> model = fl.Chain(block=fl.Chain(fl.Linear(2, 2)))
>>> model.block.Linear.address
'block.Linear'
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

import torch

from fluxion.tree.wrapping import node_class

if TYPE_CHECKING:
    from fluxion.tree.chain import Chain

M = TypeVar("M", bound=torch.nn.Module)

_plain_parents: weakref.WeakKeyDictionary[torch.nn.Module, weakref.ref[Chain]] = weakref.WeakKeyDictionary()


class Module(torch.nn.Module):
    """A ``torch.nn.Module`` that knows its parent Chain and its address in the tree.

    >>> import fluxion.layers as fl
    >>> relu = fl.ReLU()
    >>> relu.parent is None
    True
    >>> chain = fl.Chain(relu)
    >>> relu.parent is chain, relu.address
    (True, 'ReLU')
    """

    _parent: Chain | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # The constructor call is kept so that fluxion.spec can write the node back as a spec;
        # modules given as arguments (a Chain's children) are left out: the tree has them.
        node = super().__new__(cls)
        node.__dict__[_CALL] = (
            tuple(CHILD if _holds_modules(value) else value for value in args),
            {name: CHILD if _holds_modules(value) else value for name, value in kwargs.items()},
        )
        return node

    def _get_name(self) -> str:
        # torch's repr names a module by its class: the class it was built as, under a class a
        # distributed wrapper swapped in (FSDPLinear is shown as Linear).
        return node_class(self).__name__

    @property
    def parent(self) -> Chain | None:
        """The Chain this node is a child of, or None for a root.

        >>> import fluxion.layers as fl
        >>> fl.Chain(fl.ReLU()).ReLU.parent.__class__.__name__
        'Chain'
        """
        return self._parent

    @property
    def root(self) -> Module:
        """The top of the tree this node belongs to (itself when it has no parent).

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Chain(fl.ReLU()))
        >>> model.Chain.ReLU.root is model
        True
        """
        node: Module = self
        while node._parent is not None:
            node = node._parent
        return node

    @property
    def address(self) -> str:
        """The dotted path from the root: the node's ``named_modules()`` name (``""`` at the root).

        >>> import fluxion.layers as fl
        >>> fl.Chain(encoder=fl.Chain(fl.Linear(2, 2))).encoder.Linear.address
        'encoder.Linear'
        """
        return address_of(self)

    def structural_copy(self) -> Self:
        """A copy of this leaf that shares its parameters and buffers (no tensor is copied).

        >>> import fluxion.layers as fl
        >>> linear = fl.Linear(2, 2)
        >>> linear.structural_copy().weight is linear.weight
        True
        """
        return shallow_copy(self)

    def __getstate__(self) -> dict[str, Any]:
        # A copied or pickled node starts detached; the Chain that is copied with it relinks it.
        state = dict(super().__getstate__())
        state.pop("_parent", None)
        return state


class WeightedModule(Module):
    """A leaf that holds weights; torch layers mix it in so their ``state_dict`` keys are torch's.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> linear = fl.Linear(2, 3)
    >>> isinstance(linear, fl.WeightedModule), linear.dtype, linear.device
    (True, torch.float32, device(type='cpu'))
    """

    @property
    def device(self) -> torch.device:
        """The device of the first parameter.

        >>> import fluxion.layers as fl
        >>> fl.Linear(1, 1).device.type
        'cpu'
        """
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the first parameter.

        >>> import fluxion.layers as fl
        >>> fl.Linear(1, 1, dtype=torch.float64).dtype
        torch.float64
        """
        return next(self.parameters()).dtype


_CALL = "_fluxion_call"


class _Child:
    def __repr__(self) -> str:
        return "<child>"

    def __reduce__(self) -> str:
        return "CHILD"  # pickled by name: one object


CHILD = _Child()
"""What stands for a module (or modules) passed to a constructor in ``constructor_call``."""


def constructor_call(module: torch.nn.Module) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """The arguments a fluxion module was constructed with (modules given replaced by ``CHILD``).

    None for a module that fluxion did not construct (a plain torch module built in Python); a
    plain torch module that a spec built has the call the spec made (``record_constructor_call``).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> constructor_call(fl.Linear(4, out_features=2))
    ((4,), {'out_features': 2})
    >>> constructor_call(fl.Concatenate(fl.Identity(), dim=1)), constructor_call(torch.nn.ReLU())
    (((<child>,), {'dim': 1}), None)
    """
    return module.__dict__.get(_CALL)


def record_constructor_call(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Keep ``args`` and ``kwargs`` as the call that built ``module``, for a module whose class does
    not keep it itself (a plain torch module a spec built), so that a spec can write it back.

    The call is kept in the module, so copies and pickles of it keep it too.

    >>> import copy, torch
    >>> attention = torch.nn.MultiheadAttention(8, 2)
    >>> record_constructor_call(attention, (), {"embed_dim": 8, "num_heads": 2})
    >>> constructor_call(copy.deepcopy(attention))
    ((), {'embed_dim': 8, 'num_heads': 2})
    """
    module.__dict__[_CALL] = (
        tuple(CHILD if _holds_modules(value) else value for value in args),
        {name: CHILD if _holds_modules(value) else value for name, value in kwargs.items()},
    )


def _holds_modules(value: object) -> bool:
    if isinstance(value, torch.nn.Module):
        return True
    if isinstance(value, Iterator):
        # A generator of children (``Chain(Block() for _ in range(n))``) is used up by the
        # constructor; kept, it would only stop the model from being copied or pickled.
        return True
    if isinstance(value, list | tuple):
        return any(isinstance(item, torch.nn.Module) for item in cast("list[object]", value))
    if isinstance(value, dict):
        return any(isinstance(item, torch.nn.Module) for item in cast("dict[object, object]", value).values())
    return False


def parent_of(module: torch.nn.Module) -> Chain | None:
    """The Chain a module (fluxion or plain torch) is a child of, or None.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> plain = torch.nn.ReLU()
    >>> chain = fl.Chain(plain)
    >>> parent_of(plain) is chain
    True
    """
    if isinstance(module, Module):
        return module.parent
    ref = _plain_parents.get(module)
    return None if ref is None else ref()


def set_parent(module: torch.nn.Module, parent: Chain | None) -> None:
    """Record ``parent`` as the parent of ``module`` (None detaches it). Chains call this.

    >>> import fluxion.layers as fl
    >>> relu = fl.ReLU()
    >>> set_parent(relu, None)
    >>> relu.parent is None
    True
    """
    if isinstance(module, Module):
        # Written into __dict__ so torch does not register the parent as a submodule.
        module.__dict__["_parent"] = parent
    elif parent is None:
        _plain_parents.pop(module, None)
    else:
        _plain_parents[module] = weakref.ref(parent)


def address_of(module: torch.nn.Module) -> str:
    """The address of any node of a tree (``""`` for a root or a detached module).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> plain = torch.nn.Tanh()
    >>> address_of(fl.Chain(body=fl.Chain(plain)).body.Tanh)
    'body.Tanh'
    """
    names: list[str] = []
    node = module
    parent = parent_of(node)
    while parent is not None:
        names.append(parent.name_of(node))
        node = parent
        parent = node.parent
    return ".".join(reversed(names))


def place_of(module: torch.nn.Module) -> str:
    """How error messages name a node: its class and address (its class alone for a root).

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(body=fl.Chain(fl.Tanh()))
    >>> place_of(model.body.Tanh), place_of(model)
    ("Tanh at 'body.Tanh'", 'Chain')
    """
    address = address_of(module)
    name = node_class(module).__name__
    return f"{name} at {address!r}" if address else name


def shallow_copy(module: torch.nn.Module) -> Any:
    """A new module object with the same attributes, sharing every parameter and buffer.

    Submodules of a plain torch leaf are copied the same way, so the copy is a separate object
    tree whose tensors are the original's.

    >>> import torch
    >>> block = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> twin = shallow_copy(block)
    >>> twin is block, twin[0] is block[0], twin[0].weight is block[0].weight
    (False, False, True)
    """
    clone = clone_shell(module)
    clone.__dict__["_modules"] = {
        name: child.structural_copy() if isinstance(child, Module) else shallow_copy(child)
        for name, child in module.named_children()
    }
    return clone


def clone_shell(module: M) -> M:
    """A detached new object of the same class and attributes, with tables of its own.

    Parameter, buffer, hook and child tables (every dict or set attribute) are copied, so the
    clone can change without touching the original; the tensors and children in them are shared.

    >>> import torch
    >>> linear = torch.nn.Linear(2, 2)
    >>> clone = clone_shell(linear)
    >>> clone._parameters is linear._parameters, clone.weight is linear.weight
    (False, True)
    """
    clone = type(module).__new__(type(module))
    state = clone.__dict__
    for key, value in module.__dict__.items():
        state[key] = cast(dict[Any, Any] | set[Any], value).copy() if isinstance(value, dict | set) else value
    state.pop("_parent", None)
    return clone
