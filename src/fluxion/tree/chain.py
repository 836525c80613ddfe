"""Chain: the inner node of the tree, a named sequence of children run one after the other.

>>> import torch
>>> import fluxion.layers as fl
>>> class MLP(fl.Chain):
...     def __init__(self, dim: int) -> None:
...         super().__init__(fl.Linear(dim, 4 * dim), fl.GeLU(), fl.Linear(4 * dim, dim))
>>> mlp = MLP(8)
>>> [name for name, _ in mlp.named_children()]
['Linear_1', 'GeLU', 'Linear_2']
>>> mlp(torch.randn(2, 8)).shape
torch.Size([2, 8])
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import operator
import sys
from collections import Counter, OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any, ClassVar, NoReturn, Self, TypeVar, cast, overload

import torch

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import ChainError, ChildAttributeError, ChildIndexError, ChildNotFoundError, TreeError
from fluxion.tree.failure import describe_failure
from fluxion.tree.module import Module, address_of, clone_shell, parent_of, place_of, set_parent, shallow_copy
from fluxion.tree.naming import STAND_IN, auto_names, base_of, class_name, holds_suffix_like_name, ranks_of
from fluxion.tree.tree_repr import draw_tree
from fluxion.tree.wrapping import is_wrapped, wrapped_node_in

T = TypeVar("T", bound=torch.nn.Module)
Predicate = (
    type[torch.nn.Module]
    | tuple[type[torch.nn.Module], ...]
    | Callable[[torch.nn.Module], bool]
    | Callable[[torch.nn.Module, "Chain"], bool]
)


class ReturnSignal(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Raised by :class:`~fluxion.layers.Return` to end the enclosing Chain with ``value``.

    Chains catch it; it never leaves a forward call.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Chain(fl.Return(), fl.Lambda(torch.neg))(torch.ones(1)).tolist()
    [1.0]
    """

    # The value travels in ``args``: an ``__init__`` calling super() would break torch.compile's graph.
    @property
    def value(self) -> Any:
        """The input of the Return layer that raised this signal.

        >>> ReturnSignal(3).value
        3
        """
        return self.args[0]


class Chain(Module):
    """A sequence of named child modules; the output of each child is the input of the next.

    A child returning a tuple passes its items as separate arguments to the next child. Children
    get automatic names (the class name, suffixed ``_1.._n`` when a class repeats) unless given
    one explicitly as a keyword argument; explicit names never change.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(4, 4), fl.ReLU(), out=fl.Linear(4, 2))
    >>> list(dict(model.named_children()))
    ['Linear', 'ReLU', 'out']
    >>> model(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    """

    repr_tag: ClassVar[str] = "CHAIN"
    """The tag before the class name in the Chain's line of ``repr`` (``(CHAIN) Chain()``): a subclass
    sets its own (``"RES"``, ``"LORA"``...) to show its kind of data flow."""
    child_properties: ClassVar[frozenset[str]] = frozenset()
    """Attributes of the class that give a child of the same name (an adapter's ``target``
    property gives its child ``target``): a child may take such a name, although a child name
    may not hide any other attribute of the class."""
    _explicit: frozenset[str]
    _group_sizes: dict[str, int]
    _claimed: frozenset[str]  # class names held by a single member, which look suffixed (``Block_2``)
    _child_names: dict[int, str]
    _context: dict[str, dict[str, Any]]
    _stand_in_slot: str | None = None  # the child holding the node this Chain stands in for

    def __init__(self, *children: torch.nn.Module | Iterable[torch.nn.Module], **named: torch.nn.Module) -> None:
        super().__init__()
        state = self.__dict__
        state["_explicit"] = frozenset[str]()
        state["_group_sizes"] = dict[str, int]()
        state["_claimed"] = frozenset[str]()
        state["_child_names"] = dict[int, str]()
        state["_context"] = dict[str, dict[str, Any]]()
        entries: list[tuple[str | None, torch.nn.Module]] = []
        for child in children:
            item = cast(object, child)
            if isinstance(item, torch.nn.Module):
                entries.append((None, item))
            elif isinstance(item, Iterable):
                entries.extend((None, module) for module in cast(Iterable[torch.nn.Module], item))
            else:
                raise TreeError(f"{type(self).__name__}: expected modules, got {type(item).__name__}")
        entries.extend(named.items())
        self._splice(0, 0, entries, internal=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is not None and not getattr(forward, "_fluxion_guarded", False):
            cls.forward = Chain._guarded(forward)
        if forward is not None and "output_shape" not in cls.__dict__:
            # Its own data flow: the sequence rule would be wrong. Without a rule of its own, shape
            # inference evaluates it on meta tensors instead.
            setattr(cls, "output_shape", None)  # noqa: B010

    @staticmethod
    def _guarded(forward: Callable[..., Any]) -> Callable[..., Any]:
        """Give a subclass's own ``forward`` the failure reporting and context handling of Chain."""

        @functools.wraps(forward)
        def guarded(self: Chain, *args: Any, **kwargs: Any) -> Any:
            try:
                return forward(self, *args, **kwargs)
            except ReturnSignal as signal:
                return signal.value
            except Exception as error:
                self._report(error)
            finally:
                if self._parent is None and self._context:
                    self._context.clear()

        guarded._fluxion_guarded = True  # type: ignore[attr-defined]
        return guarded

    # -- running -------------------------------------------------------------------------------

    def forward(self, *args: Any) -> Any:
        """Run the children in order (see the class docstring for how values flow).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> fl.Chain(fl.Lambda(lambda x: x + 1), fl.Lambda(lambda x: 2 * x))(torch.tensor(1.0))
        tensor(4.)
        """
        try:
            return self._call_children(args)
        except Exception as error:
            self._report(error)
        finally:
            if self._parent is None and self._context:
                self._context.clear()

    def _report(self, error: Exception) -> NoReturn:
        """Raise what a failed forward call says: a child's report as it is, this node's otherwise."""
        if isinstance(error, ChainError):
            raise error
        if isinstance(error, RecursionError):
            if self._parent is not None:
                raise error  # no room to say more this deep: the root does
            self._raise_too_deep(error)
        raise describe_failure(self, error) from error

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The shape rule of a sequence: each child's output shape is the next child's input.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Linear(4, 8), fl.ReLU(), fl.Linear(8, 2)), ("B", 4)).output
        (B, 2)
        """
        value: ShapeValue = inputs[0] if len(inputs) == 1 else inputs
        try:
            for child in self._modules.values():
                assert child is not None
                value = dims.run(child, *value) if dims.several(value) else dims.run(child, value)
        except ReturnSignal as signal:
            return cast(ShapeValue, signal.value)
        return value

    def _call_children(self, args: tuple[Any, ...]) -> Any:
        """Run the children in sequence; a Return child ends the sequence with its input."""
        value: Any = args[0] if len(args) == 1 else args
        try:
            for child in self._modules.values():
                value = child(*value) if isinstance(value, tuple) else child(value)  # pyright: ignore[reportOptionalCall]
        except ReturnSignal as signal:
            return signal.value
        return value

    # -- reading -------------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        """A child by its name (``model.Linear``), or what torch's modules offer: parameters and buffers.

        A name that is none of these is a :class:`~fluxion.errors.ChildAttributeError` listing the
        children (an ``AttributeError`` too), as ``model["name"]`` does.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Chain(fl.Linear(2, 2)))
        >>> type(model.Chain.Linear).__name__
        'Linear'
        >>> hasattr(model.Chain, "Lienar")
        False
        """
        modules = self.__dict__.get("_modules")  # None before torch's __init__ has run
        if modules is not None and name in modules:
            return modules[name]
        try:
            return super().__getattr__(name)
        except AttributeError:
            # private names are torch's and other libraries' probes (hasattr): their usual error
            if name.startswith("_") or hasattr(type(self), name):
                raise
            raise ChildAttributeError(functools.partial(self._no_such_child, name)) from None

    def _no_such_child(self, name: str) -> str:
        children = list(self.__dict__.get("_modules", {}))
        close = difflib.get_close_matches(name, children, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = ", ".join(children) or "none"
        return f"{self._label()} has no child or attribute {name!r}; its children are: {listed}{hint}"

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[torch.nn.Module]:
        return iter(self.children_list())

    def children_list(self) -> list[torch.nn.Module]:
        """The direct children, in order.

        >>> import fluxion.layers as fl
        >>> [type(m).__name__ for m in fl.Chain(fl.ReLU(), fl.Tanh()).children_list()]
        ['ReLU', 'Tanh']
        """
        return cast(list[torch.nn.Module], list(self._modules.values()))

    @overload
    def __getitem__(self, key: int) -> torch.nn.Module: ...
    @overload
    def __getitem__(self, key: str) -> torch.nn.Module: ...
    @overload
    def __getitem__(self, key: slice) -> Self: ...
    def __getitem__(self, key: int | str | slice) -> torch.nn.Module | Self:
        """A child by index or name, a descendant by address, or a structural copy of a slice.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(2, 2), block=fl.Chain(fl.ReLU(), fl.Linear(2, 2)))
        >>> type(model[0]).__name__, type(model["block.Linear"]).__name__, len(model[:1])
        ('Linear', 'Linear', 1)
        """
        if isinstance(key, slice):
            return self._slice_copy(self._checked_slice(key))
        return self._child_at(key, "a child is reached by an int index, a str name or address, or a slice")

    def __setitem__(self, key: int | str, module: torch.nn.Module) -> None:
        """Replace the child at an index, name or address (one child: a slice is refused).

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU())
        >>> model[0] = fl.Tanh()
        >>> type(model[0]).__name__
        'Tanh'
        """
        self._refuse_slice(key, "assigned to", "replace(old, new) for each child, or insert(index, module)")
        self.replace(self._child_at(key, "a child is replaced by an int index or a str name or address"), module)

    def __delitem__(self, key: int | str) -> None:
        """Remove the child at an index, name or address (one child: a slice is refused).

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU(), fl.Tanh())
        >>> del model["ReLU"]
        >>> len(model)
        1
        """
        self._refuse_slice(key, "deleted", "pop(index) or remove(child) for each child")
        self.remove(self._child_at(key, "a child is removed by an int index or a str name or address"))

    def _child_at(self, key: object, accepted: str) -> torch.nn.Module:
        """The child at an int index, or the node at a str name or address; ``accepted`` says what is
        accepted when ``key`` is neither."""
        if isinstance(key, str):
            return self._resolve(key)
        try:
            position = operator.index(cast(Any, key))
        except TypeError:
            raise ChildNotFoundError(f"{self._label()}: {accepted}; got {_shown(key)}") from None
        return self.children_list()[self._checked_index(position, len(self._modules))]

    def _checked_slice(self, key: slice) -> slice:
        """``key`` with int (or None) bounds and a step other than 0; a ChildIndexError otherwise."""
        try:
            bounds = [None if part is None else operator.index(part) for part in (key.start, key.stop, key.step)]
        except TypeError:
            bounds = None
        if bounds is None or bounds[2] == 0:
            raise ChildIndexError(
                f"{self._label()}: a slice of a Chain takes int (or None) start, stop and step, "
                f"the step not 0; got {key!r}"
            )
        return slice(*bounds)

    def _refuse_slice(self, key: object, done: str, instead: str) -> None:
        if isinstance(key, slice):
            raise TreeError(
                f"{self._label()}: a slice of a Chain cannot be {done} (model[a:b] is a copy, not a view "
                f"of the children); use {instead}"
            )

    def name_of(self, child: torch.nn.Module) -> str:
        """The name under which ``child`` sits in this Chain.

        >>> import fluxion.layers as fl
        >>> relu = fl.ReLU()
        >>> fl.Chain(fl.Tanh(), act=relu).name_of(relu)
        'act'
        """
        names = self._child_names
        name = names.get(id(child))
        if name is None or self._modules.get(name) is not child:
            names = {id(module): key for key, module in self._modules.items()}
            self.__dict__["_child_names"] = names
            name = names.get(id(child))
            if name is None:
                raise ChildNotFoundError(f"{self._label()}: {type(child).__name__} is not a child of this Chain")
        return name

    @property
    def explicit_names(self) -> frozenset[str]:
        """The names given explicitly (a keyword argument, ``append(m, name=...)``, a spec id): they never
        change, while automatic names follow the classes of the children.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU(), out=fl.Linear(2, 2))
        >>> model.explicit_names, [name for name, _ in model.named_children()]
        (frozenset({'out'}), ['ReLU', 'out'])
        """
        return self._explicit

    def child_note(self, name: str) -> str | None:
        """What ``repr`` writes after the line of the child ``name``: nothing for a Chain; a subclass
        with a data flow of its own says where the child's inputs come from (a Graph does).

        >>> import fluxion.layers as fl
        >>> class Swap(fl.Chain):
        ...     def child_note(self, name):
        ...         return "← the other's input"
        >>> print(Swap(fl.ReLU(), fl.Tanh()))
        (CHAIN) Swap()
            ├── ReLU()  ← the other's input
            └── Tanh()  ← the other's input
        """
        return None

    def walk(
        self, predicate: Predicate | None = None, recurse: bool = False
    ) -> Iterator[tuple[torch.nn.Module, Chain]]:
        """Yield ``(module, parent)`` for every descendant matching ``predicate``, depth first.

        ``predicate`` is a type, a tuple of types, a function of the module, or a function of the
        module and its parent (as Refiners' ``walk`` takes); None matches all. The walk goes into
        non-matching Chains always, and into matching ones only when ``recurse`` is true.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(2, 2), fl.Chain(fl.Linear(2, 2)))
        >>> [m.address for m, _ in model.walk(fl.Linear)]
        ['Linear', 'Chain.Linear']
        >>> [m.address for m, _ in model.walk(lambda module, parent: parent is not model)]
        ['Chain.Linear']
        """
        match = _matcher(predicate, self._label())
        return self._walk(match, recurse)

    def _walk(
        self, match: Callable[[torch.nn.Module, Chain], bool], recurse: bool
    ) -> Iterator[tuple[torch.nn.Module, Chain]]:
        stack: list[Iterator[torch.nn.Module]] = [iter(self.children_list())]
        parents: list[Chain] = [self]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                parents.pop()
                continue
            matched = match(child, parents[-1])
            if matched:
                yield child, parents[-1]
            if isinstance(child, Chain) and (recurse or not matched):
                stack.append(iter(child.children_list()))
                parents.append(child)

    def layers(self, layer_type: type[T], recurse: bool = False) -> Iterator[T]:
        """Every descendant of type ``layer_type``, depth first (see :meth:`walk`).

        >>> import fluxion.layers as fl
        >>> len(list(fl.Chain(fl.Linear(2, 2), fl.ReLU(), fl.Linear(2, 2)).layers(fl.Linear)))
        2
        """
        kinds = self._layer_types(layer_type, "layers")
        return (cast(T, module) for module, _ in self._walk(lambda module, _: isinstance(module, kinds), recurse))

    def find(self, layer_type: type[T]) -> T | None:
        """The first descendant of type ``layer_type``, or None.

        >>> import fluxion.layers as fl
        >>> fl.Chain(fl.ReLU()).find(fl.Linear) is None
        True
        """
        kinds = self._layer_types(layer_type, "find")
        found = (module for module, _ in self._walk(lambda module, _: isinstance(module, kinds), False))
        return cast(T | None, next(found, None))

    def ensure_find(self, layer_type: type[T]) -> T:
        """The first descendant of type ``layer_type``; raises ChildNotFoundError when none.

        >>> import fluxion.layers as fl
        >>> fl.Chain(fl.Chain(fl.ReLU())).ensure_find(fl.ReLU).address
        'Chain.ReLU'
        """
        self._layer_types(layer_type, "ensure_find")
        found = self.find(layer_type)
        if found is None:
            present = sorted({type(m).__name__ for m, _ in self.walk()})
            raise ChildNotFoundError(
                f"{self._label()}: no node of type {layer_type.__name__} in this tree; "
                f"types present: {', '.join(present) or 'none'}"
            )
        return found

    def find_parent(self, module: torch.nn.Module) -> Chain | None:
        """The Chain inside this tree (``self`` included) that holds ``module``, or None.

        >>> import fluxion.layers as fl
        >>> inner = fl.Chain(fl.ReLU())
        >>> model = fl.Chain(inner)
        >>> model.find_parent(inner.ReLU) is inner
        True
        """
        try:
            parent = parent_of(module)
        except TypeError:  # not a module (parent_of keys plain modules weakly)
            parent = None
        if parent is None and not isinstance(cast(object, module), torch.nn.Module):
            raise TreeError(f"{self._label()}: find_parent takes a module, got {_shown(module)}")
        node: Chain | None = parent
        while node is not None and node is not self:
            node = node._parent
        return parent if node is self else None

    # -- surgery -------------------------------------------------------------------------------

    def insert(self, index: int, module: torch.nn.Module, name: str | None = None) -> None:
        """Insert ``module`` before position ``index``, as :meth:`list.insert` does.

        ``index`` runs from ``-len(self)`` to ``len(self)``; a negative index counts from the end,
        so ``insert(-1, m)`` puts ``m`` just before the last child. Outside that range it raises
        ChildIndexError rather than clamping.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU(), fl.Tanh())
        >>> model.insert(-1, fl.SiLU())
        >>> [type(m).__name__ for m in model]
        ['ReLU', 'SiLU', 'Tanh']
        """
        size = len(self._modules)
        if type(index) is not int:
            index = self._int_index(index, "insert")
        if not -size <= index <= size:
            raise ChildIndexError(
                f"{self._label()}: cannot insert at index {index} into {size} "
                f"{_plural(size, 'child', 'children')} (valid: {-size}..{size})"
            )
        self._splice(index + size if index < 0 else index, 0, [(name, module)])

    def append(self, module: torch.nn.Module, name: str | None = None) -> None:
        """Add ``module`` as the last child.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU())
        >>> model.append(fl.Tanh(), name="squash")
        >>> model.squash.address
        'squash'
        """
        self._splice(len(self._modules), 0, [(name, module)])

    def pop(self, index: int = -1) -> torch.nn.Module:
        """Remove and return the child at ``index`` (the last by default), detached from the tree.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU(), fl.Tanh())
        >>> tanh = model.pop()
        >>> type(tanh).__name__, tanh.parent is None, len(model)
        ('Tanh', True, 1)
        """
        if type(index) is not int:
            index = self._int_index(index, "pop")
        position = self._checked_index(index, len(self._modules))
        return self._splice(position, 1, [])[0]

    def remove(self, module: torch.nn.Module | str) -> None:
        """Remove a node of this tree (given as a module, name or address) from its parent.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU(), block=fl.Chain(fl.Tanh(), fl.SiLU()))
        >>> model.remove("block.Tanh")
        >>> [type(m).__name__ for m in model.block]
        ['SiLU']
        """
        parent, key = self._locate(module)
        parent.pop(list(parent._modules).index(key))  # (pop: a Graph rewires its edges)

    def replace(self, old: torch.nn.Module | str, new: torch.nn.Module, name: str | None = None) -> None:
        """Put ``new`` where ``old`` (a module, name or address in this tree) was; ``old`` is detached.

        ``new`` keeps ``old``'s explicit name unless ``name`` gives another one.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(act=fl.ReLU())
        >>> model.replace("act", fl.GeLU())
        >>> type(model.act).__name__
        'GeLU'
        """
        given = cast(object, new)
        if not isinstance(given, torch.nn.Module):
            raise TreeError(f"{self._label()}: replace puts a torch module in place of a node, got {_shown(given)}")
        parent, key = self._locate(old)
        parent._put_in_place(key, new, name)

    def insert_before_type(self, module_type: type[torch.nn.Module], module: torch.nn.Module) -> None:
        """Insert ``module`` just before the first direct child of type ``module_type``.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(2, 2), fl.ReLU())
        >>> model.insert_before_type(fl.ReLU, fl.Dropout(0.1))
        >>> [type(m).__name__ for m in model]
        ['Linear', 'Dropout', 'ReLU']
        """
        self._splice(self._type_position(module_type, "insert_before_type"), 0, [(None, module)])

    def insert_after_type(self, module_type: type[torch.nn.Module], module: torch.nn.Module) -> None:
        """Insert ``module`` just after the first direct child of type ``module_type``.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(2, 2), fl.ReLU())
        >>> model.insert_after_type(fl.Linear, fl.Dropout(0.1))
        >>> [type(m).__name__ for m in model]
        ['Linear', 'Dropout', 'ReLU']
        """
        self._splice(self._type_position(module_type, "insert_after_type") + 1, 0, [(None, module)])

    def structural_copy(self) -> Self:
        """A copy of the tree: new Chains all the way down, leaves sharing their weights.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Chain(fl.Linear(2, 2)))
        >>> twin = model.structural_copy()
        >>> twin.Chain is model.Chain, twin.Chain.Linear.weight is model.Chain.Linear.weight
        (False, True)
        """
        return self._copy_with(self._modules.items())

    # -- standing in for a node: how an adapter takes a node's place and gives it back ---------

    def stand_in_for(self, target: torch.nn.Module, *, name: str, position: int = 0) -> None:
        """Take ``target``'s place in its parent Chain, and hold ``target`` as the child ``name``.

        This Chain (which has no parent) takes the target's name in the target's parent, explicit
        or automatic, so no other address changes and the siblings keep their names; later surgery
        on the siblings counts it in the target's name group, as it counted the target. The
        target becomes this Chain's child ``name`` (an explicit name) at ``position`` among its
        children. The target's parent is asked (:meth:`check_surgery`: a replacement under the
        same name); this Chain is not, as it asked for the change itself. :meth:`step_aside` gives
        the place back. Adapters are built on this pair; a wrapper of your own can be too.

        A refused change raises a :class:`TreeError` and changes nothing: a target in no Chain, a
        Chain that has a parent or stands in already, a target in this Chain's own subtree, a name
        or a position this Chain cannot take, or a parent that refuses.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(2, 2), fl.ReLU(), fl.Linear(2, 2))
        >>> doubled = fl.Chain(fl.Lambda(lambda x: 2 * x))
        >>> doubled.stand_in_for(model.Linear_1, name="inner")
        >>> [name for name, _ in model.named_children()], model.Linear_1 is doubled
        (['Linear_1', 'ReLU', 'Linear_2'], True)
        >>> doubled.standing_in_for.address
        'Linear_1.inner'
        """
        given = cast(object, target)
        if not isinstance(given, torch.nn.Module):
            raise TreeError(f"{self._label()}: stand_in_for takes a module of a tree, got {_shown(given)}")
        if self._stand_in_slot is not None:
            raise TreeError(f"{self._label()} stands in for a node already; step_aside() first")
        if self._parent is not None:
            raise TreeError(f"{self._label()} already has a parent; only a Chain out of any tree can stand in")
        holder = parent_of(target)
        if holder is None:
            raise TreeError(
                f"{self._label()}: {type(target).__name__} is in no Chain (a root, or a module inside a plain "
                "torch container), so it has no place to take"
            )
        size = len(self._modules)
        if type(position) is not int:
            position = self._int_index(position, "stand_in_for")
        if not 0 <= position <= size:
            raise ChildIndexError(f"{self._label()}: position {position} is outside 0..{size}")
        self._check_name(name, self._explicit)
        key = holder.name_of(target)
        state = self.__dict__
        state[STAND_IN] = class_name(target) if key in holder._explicit else holder._group_of(key)
        state["_stand_in_slot"] = name
        try:
            holder._swap(key, self)
        except BaseException:
            del state[STAND_IN], state["_stand_in_slot"]
            raise
        try:
            self._splice(position, 0, [(name, target)], internal=True)
        except BaseException:  # nothing checked above lets this fail; if it does, leave all as it was
            holder._swap(key, target)
            del state[STAND_IN], state["_stand_in_slot"]
            raise

    def step_aside(self) -> torch.nn.Module:
        """Give the place this Chain took with :meth:`stand_in_for` back to the node it holds; return that node.

        The node (the child named as ``stand_in_for`` named it, replaced since or not) goes back
        under this Chain's name in its parent (whose :meth:`check_surgery` is asked), and this
        Chain leaves the tree. A Chain that was taken out of its tree meanwhile just lets the node go.
        A refused change raises a :class:`TreeError` and changes nothing.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(2, 2), fl.ReLU())
        >>> linear = model.Linear
        >>> wrapper = fl.Chain(fl.Tanh())
        >>> wrapper.stand_in_for(linear, name="inner")
        >>> wrapper.step_aside() is linear, model.Linear is linear, wrapper.parent, wrapper.standing_in_for
        (True, True, None, None)
        """
        slot = self._stand_in_slot
        if slot is None:
            raise TreeError(f"{self._label()} stands in for no node; there is no place to give back")
        modules = cast(dict[str, torch.nn.Module], self._modules)
        held = modules.get(slot)
        if held is None:
            raise TreeError(f"{self._label()} lost the node it stands in for (its child {slot!r} was taken out)")
        holder = self._parent
        position = list(modules).index(slot)
        self._splice(position, 1, [], internal=True)
        if holder is not None:
            try:
                holder._put_in_place(holder.name_of(self), held, None)
            except BaseException:
                self._splice(position, 0, [(slot, held)], internal=True)
                raise
        del self.__dict__[STAND_IN], self.__dict__["_stand_in_slot"]
        return held

    @property
    def standing_in_for(self) -> torch.nn.Module | None:
        """The node this Chain stands in for (see :meth:`stand_in_for`), or None.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU())
        >>> wrapper = fl.Chain()
        >>> wrapper.standing_in_for is None
        True
        >>> wrapper.stand_in_for(model.ReLU, name="inner")
        >>> type(wrapper.standing_in_for).__name__, wrapper.name_of(wrapper.standing_in_for)
        ('ReLU', 'inner')
        """
        slot = self._stand_in_slot
        return None if slot is None else self._modules.get(slot)

    # -- representation ------------------------------------------------------------------------

    def __repr__(self) -> str:
        return draw_tree(self)

    # -- context -------------------------------------------------------------------------------

    def set_context(self, context: str, values: dict[str, Any]) -> None:
        """Set values of a named context for the next forward call of this tree.

        Context belongs to the root of the tree and is cleared when the root's forward returns.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.UseContext("run", "scale"))
        >>> model.set_context("run", {"scale": torch.tensor(3.0)})
        >>> model()
        tensor(3.)
        """
        store = self._context_store()
        store.setdefault(context, {}).update(values)

    def use_context(self, context: str) -> dict[str, Any]:
        """The values of a named context of this tree (an empty dict when none was set).

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU())
        >>> model.set_context("run", {"step": 1})
        >>> model.use_context("run")
        {'step': 1}
        """
        return self._context_store().setdefault(context, {})

    def _context_store(self) -> dict[str, dict[str, Any]]:
        node: Chain = self
        while node._parent is not None:
            node = node._parent
        return node._context

    # -- torch integration: every torch way of changing the children goes through surgery ------

    def __setattr__(self, name: str, value: Any) -> None:
        state = self.__dict__
        if "_explicit" in state:
            if isinstance(value, torch.nn.Module):
                if name in self._modules:
                    self.replace(name, value, name=name)
                else:
                    self.append(value, name=name)
                return
            if name in self._modules:
                self._refuse_over_child(name, value)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._modules:
            self.remove(name)
            return
        super().__delattr__(name)  # pyright: ignore[reportUnknownMemberType]

    def add_module(self, name: str, module: torch.nn.Module | None) -> None:
        """Append (or replace) a child under an explicit name, as torch's ``add_module`` does.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain()
        >>> model.add_module("act", fl.ReLU())
        >>> model.act.address
        'act'
        """
        given = cast(object, module)
        if given is None:
            raise TreeError(f"{self._label()}: a Chain cannot hold None (child {name!r})")
        if not isinstance(given, torch.nn.Module):
            raise TreeError(f"{self._label()}: add_module takes a torch module, got {_shown(given)} (child {name!r})")
        if not isinstance(cast(object, name), str):
            raise TreeError(f"{self._label()}: child names are strings, got {_shown(name)}")
        setattr(self, name, module)

    def register_module(self, name: str, module: torch.nn.Module | None) -> None:
        """Same as :meth:`add_module`.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain()
        >>> model.register_module("act", fl.ReLU())
        >>> len(model)
        1
        """
        self.add_module(name, module)

    def register_parameter(self, name: str, param: torch.nn.Parameter | None) -> None:
        """torch's ``register_parameter``, refused under the name of a child (one name, one thing).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU())
        >>> model.register_parameter("gain", torch.nn.Parameter(torch.ones(1)))
        >>> sorted(model.state_dict())
        ['gain']
        """
        if isinstance(cast(object, name), str) and name in self._modules:
            self._refuse_over_child(name, param)
        super().register_parameter(name, param)

    def register_buffer(self, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        """torch's ``register_buffer``, refused under the name of a child (one name, one thing).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU())
        >>> model.register_buffer("mean", torch.zeros(1))
        >>> sorted(model.state_dict())
        ['mean']
        """
        if isinstance(cast(object, name), str) and name in self._modules:
            self._refuse_over_child(name, tensor)
        super().register_buffer(name, tensor, persistent)

    def named_modules(
        self, memo: set[torch.nn.Module] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Generator[tuple[str, torch.nn.Module]]:
        """torch's ``named_modules`` (same modules, names and order), walking Chains without recursion.

        So ``modules()``, ``parameters()``, ``named_buffers()``... work on a tree of any depth.

        >>> import fluxion.layers as fl
        >>> [name for name, _ in fl.Chain(block=fl.Chain(fl.ReLU())).named_modules()]
        ['', 'block', 'block.ReLU']
        """
        if memo is None:
            memo = set()
        pending: list[tuple[str, torch.nn.Module]] = [(prefix, self)]
        while pending:
            address, module = pending.pop()
            if module is not self and not (isinstance(module, Chain) and Chain._walks_by_default(module)):
                yield from cast(
                    Iterator[tuple[str, torch.nn.Module]], module.named_modules(memo, address, remove_duplicate)
                )
                continue
            if module in memo:
                continue
            if remove_duplicate:
                memo.add(module)
            yield address, module
            children = [(name, child) for name, child in module._modules.items() if child is not None]
            pending.extend((f"{address}.{name}" if address else name, child) for name, child in reversed(children))

    def state_dict(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False
    ) -> Any:
        """torch's ``state_dict`` (same keys, tensors, metadata and hooks), walking Chains without recursion.

        >>> import fluxion.layers as fl
        >>> list(fl.Chain(block=fl.Chain(fl.Linear(2, 2))).state_dict())
        ['block.Linear.weight', 'block.Linear.bias']
        """
        if args:  # torch's deprecated positional form: leave it to torch
            return super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        if destination is None:
            # Plain OrderedDicts: one made as ``OrderedDict[str, Any]()`` remembers that alias, which
            # torch.load(weights_only=True) refuses to unpickle.
            fresh: OrderedDict[str, Any] = OrderedDict()
            table: OrderedDict[str, Any] = OrderedDict()
            fresh.__dict__["_metadata"] = table
            destination = fresh
        result: Any = destination
        # Entering a node saves its own tensors; leaving it (after its children) runs its post-hooks.
        pending: list[tuple[str, torch.nn.Module, dict[str, Any] | None]] = [(prefix, self, None)]
        while pending:
            address, module, entered = pending.pop()
            if entered is not None:
                output = _post_hooks(module, destination, address, entered)
                if module is self:
                    result = output
                continue
            if module is not self and not (isinstance(module, Chain) and Chain._saves_by_default(module)):
                module.state_dict(destination=destination, prefix=address, keep_vars=keep_vars)
                continue
            metadata: dict[str, Any] = {"version": module._version}
            if hasattr(destination, "_metadata"):
                destination._metadata[address[:-1]] = metadata
            for hook in _hooks(module, "_state_dict_pre_hooks"):
                hook(module, address, keep_vars)
            module._save_to_state_dict(destination, address, keep_vars)  # pyright: ignore[reportUnknownMemberType]
            pending.append((address, module, metadata))
            children = [(name, child) for name, child in module._modules.items() if child is not None]
            pending.extend((f"{address}{name}.", child, None) for name, child in reversed(children))
        return result

    def train(self, mode: bool = True) -> Self:
        """torch's ``train`` (and so ``eval``), setting the mode of Chains without recursion.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Chain(fl.Dropout(0.5))).eval()
        >>> model.Chain.Dropout.training
        False
        """
        if not isinstance(cast(object, mode), bool):
            raise ValueError("training mode is expected to be boolean")  # torch's own check and words
        pending: list[torch.nn.Module] = [self]
        while pending:
            module = pending.pop()
            if module is self or (isinstance(module, Chain) and type(module).train is Chain.train):
                module.training = mode
                pending.extend(reversed(list(module.children())))
            else:
                module.train(mode)
        return self

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> Self:
        # What ``to()``, ``float()``, ``cuda()``... run: torch's, over Chains without recursion.
        # Each node after its children, as torch goes: the mirror of a pre-order, read backwards.
        if not recurse:
            return super()._apply(fn, recurse=False)  # pyright: ignore[reportUnknownMemberType]
        order: list[torch.nn.Module] = []
        pending: list[torch.nn.Module] = [self]
        while pending:
            module = pending.pop()
            order.append(module)
            if module is self or (isinstance(module, Chain) and Chain._applies_by_default(module)):
                pending.extend(module.children())
        for module in reversed(order):
            if module is self or (isinstance(module, Chain) and Chain._applies_by_default(module)):
                torch.nn.Module._apply(module, fn, recurse=False)  # pyright: ignore[reportUnknownMemberType]
            else:
                module._apply(fn)  # pyright: ignore[reportUnknownMemberType]
        return self

    @staticmethod
    def _applies_by_default(chain: Chain) -> bool:
        return type(chain)._apply is Chain._apply  # pyright: ignore[reportUnknownMemberType]

    @staticmethod
    def _walks_by_default(chain: Chain) -> bool:
        return type(chain).named_modules is Chain.named_modules

    @staticmethod
    def _saves_by_default(chain: Chain) -> bool:
        kind = type(chain)
        own_tensors = kind._save_to_state_dict is Chain._save_to_state_dict  # pyright: ignore[reportUnknownMemberType]
        return kind.state_dict is Chain.state_dict and own_tensors

    @staticmethod
    def _copies_by_default(chain: Chain) -> bool:
        kind = type(chain)
        return kind.structural_copy is Chain.structural_copy and kind._empty_twin is Chain._empty_twin

    def _raise_too_deep(self, error: RecursionError) -> NoReturn:
        """At the root, for a forward call that ran out of Python's recursion limit: a TreeError when
        the tree's depth explains it, else the failure described as any other."""
        too_deep = too_deep_error(self, "a forward call", _FORWARD_FRAMES)
        if too_deep is not None:
            raise too_deep from None
        raise describe_failure(self, error) from error

    def __copy__(self) -> Self:
        # A shallow copy sharing the children would give them two parents: copy the inner nodes.
        return self.structural_copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # pyright: ignore[reportUnknownMemberType]
        for child in self._modules.values():
            if child is not None:
                set_parent(child, self)

    def check_surgery(
        self, removed: list[tuple[str, torch.nn.Module]], added: list[tuple[str | None, torch.nn.Module]]
    ) -> None:
        """Accept or refuse a change of this Chain's children, before anything changes.

        Every change of the children (insert, append, pop, remove, replace, item and attribute
        assignment or deletion, ``add_module``) calls it on the Chain whose children change, with
        the children it takes out (name, module) and those it puts in (explicit name or None,
        module); a replacement under the same name lists the name on both sides. Building and
        copying do not call it. A Chain accepts every change; a container whose children have
        roles of their own (an adapter's target, a LoRA's projections) overrides it and raises a
        :class:`TreeError` to refuse one. A refused change leaves the tree as it was.

        >>> import fluxion.layers as fl
        >>> class Pair(fl.Chain):
        ...     def check_surgery(self, removed, added):
        ...         if len(removed) != len(added):
        ...             raise fl.TreeError("a Pair keeps two children; replace them instead")
        >>> pair = Pair(fl.ReLU(), fl.Tanh())
        >>> pair.replace(pair.ReLU, fl.SiLU())
        >>> try:
        ...     pair.pop()
        ... except fl.TreeError as error:
        ...     print(error)
        a Pair keeps two children; replace them instead
        >>> [type(m).__name__ for m in pair]
        ['SiLU', 'Tanh']
        """

    def children_changed(self) -> None:
        """Called after every change of this Chain's children that :meth:`check_surgery` accepted.

        The children are in place, in their new order, when it runs. A Chain does nothing; a
        container that keeps something in step with its children (a table with one entry per
        child, in the children's order) overrides it to bring that up to date. Building and
        copying do not call it.

        >>> import fluxion.layers as fl
        >>> class Counted(fl.Chain):
        ...     def children_changed(self):
        ...         self.order = [name for name, _ in self.named_children()]
        >>> counted = Counted(a=fl.ReLU(), b=fl.Tanh())
        >>> counted.insert(1, fl.SiLU(), name="c")
        >>> counted.order
        ['a', 'c', 'b']
        """

    def _refuse_over_child(self, name: str, value: object) -> None:
        child = type(self._modules[name]).__name__
        if value is None:
            raise TreeError(
                f"{self._label()}: cannot set child {name!r} ({child}) to None: a Chain holds modules only; "
                f"remove the child with `del chain.{name}` or chain.remove({name!r})"
            )
        raise TreeError(
            f"{self._label()}: cannot assign {_shown(value)} to {name!r}: that name is a child of this Chain "
            f"({child}); give the value another name, or remove the child first (`del chain.{name}`)"
        )

    # -- internals -----------------------------------------------------------------------------

    def _label(self) -> str:
        return place_of(self)

    def _layer_types(self, kinds: object, method: str) -> Any:
        """``kinds`` when it is a type or a tuple of types; a TreeError that says what was given otherwise."""
        if _is_types(kinds):
            return kinds
        raise TreeError(f"{self._label()}: {method} takes a layer type (a class), got {_shown(kinds)}")

    def _int_index(self, index: object, method: str) -> int:
        """``index`` as an int (anything with ``__index__``); a ChildIndexError saying what was given otherwise."""
        try:
            if isinstance(index, bool):
                raise TypeError  # True is no position, though Python reads it as 1
            return operator.index(cast(Any, index))
        except TypeError:
            raise ChildIndexError(f"{self._label()}: {method} takes an int index, got {_shown(index)}") from None

    @staticmethod
    def _checked_index(index: int, size: int) -> int:
        if not -size <= index < size:
            valid = f"valid: {-size}..{size - 1}" if size else "the Chain is empty"
            raise ChildIndexError(
                f"Chain: index {index} is out of range for {size} {_plural(size, 'child', 'children')} ({valid})"
            )
        return index + size if index < 0 else index

    def _resolve(self, address: str) -> torch.nn.Module:
        node: torch.nn.Module = self
        for depth, part in enumerate(address.split(".")):
            child = node._modules.get(part) if isinstance(node, Chain) else None
            if child is None:
                where = ".".join(address.split(".")[:depth])
                owner = f"{type(node).__name__} at {where!r}" if where else type(node).__name__
                if not isinstance(node, Chain):
                    raise ChildNotFoundError(f"{owner} is a leaf; it has no child {part!r} (in {address!r})")
                names = ", ".join(node._modules) or "none"
                raise ChildNotFoundError(f"{owner} has no child {part!r}; its children are: {names}")
            node = child
        return node

    def _locate(self, module: torch.nn.Module | str) -> tuple[Chain, str]:
        """The parent in this tree of a node (given as a module or an address), and its name there."""
        given = cast(object, module)
        if not isinstance(given, str | torch.nn.Module):
            raise ChildNotFoundError(
                f"{self._label()}: a node is given as a module of this tree, or its name or address; "
                f"got {_shown(given)}"
            )
        target = self._resolve(module) if isinstance(module, str) else module
        parent = self.find_parent(target)
        if parent is None:
            raise ChildNotFoundError(f"{self._label()}: {type(target).__name__} is not in this tree")
        return parent, parent.name_of(target)

    def _put_in_place(self, key: str, new: torch.nn.Module, name: str | None) -> None:
        """Put ``new`` in place of the child ``key``: under the same name when nothing says otherwise
        (an explicit name stays; an automatic one when ``new`` joins the same name group)."""
        explicit = key in self._explicit
        name = key if name is None and explicit else name
        same_name = name == key if explicit else name is None and class_name(new) == self._group_of(key)
        if same_name:
            self._swap(key, new)
        else:
            self._splice(list(self._modules).index(key), 1, [(name, new)])

    def _swap(self, key: str, new: torch.nn.Module) -> None:
        """Put ``new`` in place of the child named ``key``, under the same name: no renaming."""
        modules = cast(dict[str, torch.nn.Module], self._modules)
        old = modules[key]
        explicit = key in self._explicit
        self._check_entries([(key if explicit else None, new)], [old], self._explicit - {key})
        self._refuse_wrapped([old], [new])
        if type(self).check_surgery is not Chain.check_surgery:
            self.check_surgery([(key, old)], [(key if explicit else None, new)])
        modules[key] = new
        set_parent(old, None)
        set_parent(new, self)
        self._child_names.pop(id(old), None)
        self._child_names[id(new)] = key
        if type(self).children_changed is not Chain.children_changed:
            self.children_changed()

    def _group_of(self, key: str) -> str:
        """The name group of the child with the automatic name ``key``, read from the name.

        Not from the child's class: a class can change after naming (torch's parametrize swaps it
        for a subclass), and the child stays in the group it was named in until it leaves.
        """
        return key if self._group_sizes.get(key) == 1 else base_of(key)

    def _type_position(self, module_type: type[torch.nn.Module], method: str) -> int:
        self._layer_types(module_type, method)
        for position, child in enumerate(self._modules.values()):
            if isinstance(child, module_type):
                return position
        present = ", ".join(type(m).__name__ for m in self._modules.values()) or "none"
        raise ChildNotFoundError(
            f"{self._label()}: no child of type {module_type.__name__}; its children are: {present}"
        )

    def _slice_copy(self, key: slice) -> Self:
        items = list(self._modules.items())[key]
        return self._copy_with(items)

    def _copy_with(self, items: Iterable[tuple[str, torch.nn.Module | None]]) -> Self:
        """A twin of this Chain holding copies of ``items``, made without recursion (a tree of any depth).

        Twins of the inner nodes are made top down, then filled bottom up: no twin has a parent yet
        when it gets its children, so their checks stay cheap.
        """
        items = list(items)
        wrapped = wrapped_node_in([self]) if is_wrapped(self) else wrapped_node_in(m for _, m in items if m is not None)
        if wrapped is not None:
            raise TreeError(
                f"{self._label()}: cannot copy a sharded part of the tree ({place_of(wrapped)} is wrapped by "
                f"{type(wrapped).__name__}, which manages its tensors); copy the model before sharding, or copy "
                "the plain tree fluxion.distributed.unshard gives"
            )
        clone = self._empty_twin()
        fills: list[tuple[Chain, list[tuple[str | None, torch.nn.Module]]]] = []
        pending: list[tuple[Chain, Chain, Iterable[tuple[str, torch.nn.Module | None]]]] = [(self, clone, items)]
        while pending:
            original, twin, children = pending.pop()
            entries: list[tuple[str | None, torch.nn.Module]] = []
            for key, child in children:
                copied: torch.nn.Module
                if isinstance(child, Chain) and Chain._copies_by_default(child):
                    copied = child._empty_twin()
                    pending.append((child, copied, child._modules.items()))
                elif isinstance(child, Module):
                    copied = child.structural_copy()
                else:
                    copied = shallow_copy(cast(torch.nn.Module, child))
                entries.append((key if key in original._explicit else None, copied))
            fills.append((twin, entries))
        for twin, entries in reversed(fills):
            twin._splice(0, 0, entries, internal=True)
        return clone

    def _empty_twin(self) -> Self:
        """Same class and attributes, no children, bookkeeping of its own."""
        clone = clone_shell(self)
        state = clone.__dict__
        state["_modules"] = {}
        state["_explicit"] = frozenset[str]()
        state["_group_sizes"] = {}
        state["_claimed"] = frozenset[str]()
        state["_child_names"] = {}
        state["_context"] = {}
        return clone

    def _splice(
        self,
        index: int,
        remove: int,
        entries: list[tuple[str | None, torch.nn.Module]],
        *,
        internal: bool = False,
    ) -> list[torch.nn.Module]:
        """Replace ``remove`` children at ``index`` by ``entries`` (explicit name or None, module).

        Everything is checked before anything changes, so a refused splice leaves the Chain as it
        was. Only the name groups the change touches are renamed. ``internal`` is for the Chain's
        own building (construction, copies, an adapter filling its slot): :meth:`check_surgery`
        is not asked.
        """
        modules = cast(dict[str, torch.nn.Module], self._modules)
        keys = list(modules)
        removed_keys = keys[index : index + remove]
        removed = [modules[key] for key in removed_keys]
        explicit = self._explicit
        self._check_entries(entries, removed, explicit - set(removed_keys))
        if not internal:
            self._refuse_wrapped(removed, [module for _, module in entries])
        if not internal and type(self).check_surgery is not Chain.check_surgery:  # (skip building lists)
            self.check_surgery(list(zip(removed_keys, removed, strict=True)), list(entries))
        # after check_surgery, so that a container's own refusal (an adapter's) speaks first
        slot = self._stand_in_slot
        if slot is not None and not internal and slot in removed_keys and all(name != slot for name, _ in entries):
            raise TreeError(
                f"{self._label()}: its child {slot!r} is the node it stands in for; it can be replaced under "
                "that name, not removed or renamed (step_aside() gives the place back first)"
            )

        new_explicit = {name for name, _ in entries if name is not None}
        gone_explicit = {key for key in removed_keys if key in explicit}
        explicit_after = (explicit - gone_explicit) | new_explicit
        sizes = self._group_sizes
        removed_groups = [None if key in explicit else self._group_of(key) for key in removed_keys]
        removed_auto = Counter(group for group in removed_groups if group is not None)
        added_auto = Counter(class_name(m) for name, m in entries if name is None)
        touched = set(removed_auto) | set(added_auto)
        for name in gone_explicit | new_explicit:
            touched.update(base for base in {name, base_of(name)} if base in sizes)

        # A class whose single member is named like another class's suffixed name (a class
        # ``Block_2``) keeps that name from the other class (``Block``); when it takes or gives up
        # the name, the other class's names change too. Only such classes change what is held.
        claimed_before = claimed_after = self._claimed
        suffix_like = [base for base in touched if "_" in base and base_of(base) != base]
        if suffix_like:

            def size_after(base: str) -> int:
                return sizes.get(base, 0) - removed_auto[base] + added_auto[base]

            for base in suffix_like:
                owner = base_of(base)
                if owner not in touched and owner in sizes:
                    held_before = holds_suffix_like_name(base, sizes.get(base, 0), explicit)
                    if held_before != holds_suffix_like_name(base, size_after(base), explicit_after):
                        touched.add(owner)
            claimed_after = frozenset(
                {
                    *(claimed_before - touched),
                    *(base for base in touched if holds_suffix_like_name(base, size_after(base), explicit_after)),
                }
            )

        renames: dict[str, str] = {}
        head_renamed = False
        added_names = [name for name, _ in entries]
        for base in touched:
            size = sizes.get(base, 0)
            old = auto_names(base, size, explicit, claimed_before)
            n_removed, n_added = removed_auto[base], added_auto[base]
            new = auto_names(base, size - n_removed + n_added, explicit_after, claimed_after)
            if new == old:
                # Same group, same names: the added members take the removed members' names.
                fresh = iter([key for key, group in zip(removed_keys, removed_groups, strict=True) if group == base])
            else:
                rank = _rank_before(keys, index, old)
                if old[:rank] != new[:rank]:
                    renames.update(zip(old[:rank], new[:rank], strict=True))
                    head_renamed = True
                if old[rank + n_removed :] != new[rank + n_added :]:
                    renames.update(zip(old[rank + n_removed :], new[rank + n_added :], strict=True))
                fresh = iter(new[rank : rank + n_added])
            for position, (name, module) in enumerate(entries):
                if name is None and class_name(module) == base:
                    added_names[position] = next(fresh)
            if new:
                sizes[base] = len(new)
            else:
                sizes.pop(base, None)

        added = [module for _, module in entries]
        named = cast(list[str], added_names)
        child_names = self._child_names
        if not renames and named == removed_keys:
            modules.update(zip(named, added, strict=True))  # same names: replaced in place
        elif not renames and index == len(keys) - remove and (not remove or not entries):
            for key in removed_keys:  # removing from the end (or appending): no rebuild needed
                del modules[key]
            modules.update(zip(named, added, strict=True))
        else:
            # Rebuild from ``index`` on: dicts keep insertion order and cannot insert in the middle.
            for key in removed_keys:
                del modules[key]
            tail = keys[index + remove :]
            tail_values = list(map(modules.pop, tail))  # the tail leaves in one pass, in C
            if renames:
                if head_renamed:
                    head_items = list(modules.items())
                    modules.clear()
                    modules.update((renames.get(key, key), value) for key, value in head_items)
                tail = list(map(renames.get, tail, tail))
                child_names.clear()
            modules.update(zip(named, added, strict=True))
            modules.update(zip(tail, tail_values, strict=True))
        self.__dict__["_explicit"] = explicit_after
        self.__dict__["_claimed"] = claimed_after
        for module in removed:
            set_parent(module, None)
            child_names.pop(id(module), None)
        for name, module in zip(named, added, strict=True):
            set_parent(module, self)
            child_names[id(module)] = name
        if not internal and type(self).children_changed is not Chain.children_changed:
            self.children_changed()
        return removed

    def _refuse_wrapped(self, removed: list[torch.nn.Module], added: list[torch.nn.Module]) -> None:
        """Refuse a change in or around a node a distributed wrapper manages (see ``tree.wrapping``).

        FSDP2's ``fully_shard`` holds on to the tensors of the nodes it wraps and of everything
        under them; a node moved in or out behind its back would run unsharded, or not at all.
        """
        node: torch.nn.Module | None = self
        wrapped = None
        while node is not None and wrapped is None:
            wrapped = node if is_wrapped(node) else None
            node = parent_of(node)
        wrapped = wrapped or wrapped_node_in(removed) or wrapped_node_in(added)
        if wrapped is not None:
            raise TreeError(
                f"{self._label()}: surgery here would change a sharded part of the tree ({place_of(wrapped)} is "
                f"wrapped by {type(wrapped).__name__}); do surgery before sharding, or on a plain copy "
                "(fluxion.distributed.unshard)"
            )

    def _check_entries(
        self,
        entries: list[tuple[str | None, torch.nn.Module]],
        removed: list[torch.nn.Module],
        kept_explicit: AbstractSet[str],
    ) -> None:
        seen: set[int] = set()
        taken: set[str] | None = None  # the explicit names once the entries so far are in
        for name, module in entries:
            given = cast(object, module)
            if not isinstance(given, torch.nn.Module):
                raise TreeError(f"{self._label()}: children must be torch modules, got {type(given).__name__}")
            current = parent_of(module)
            if current is not None and not any(module is gone for gone in removed):
                raise TreeError(
                    f"{self._label()}: {type(module).__name__} already has a parent "
                    f"({current._label()}, as {current.name_of(module)!r}); remove it there first, "
                    "or insert a structural_copy()"
                )
            if id(module) in seen:
                raise TreeError(f"{self._label()}: the same {type(module).__name__} is given twice")
            seen.add(id(module))
            node: Chain | None = self
            while node is not None:
                if node is module:
                    raise TreeError(f"{self._label()}: cannot insert a Chain into itself or its own subtree")
                node = node._parent
            if name is not None:
                if taken is None:
                    taken = set(kept_explicit)
                self._check_name(name, taken)
                taken.add(name)

    def _check_name(self, name: str, kept_explicit: AbstractSet[str]) -> None:
        given = cast(object, name)
        if not isinstance(given, str) or not name:
            raise TreeError(f"{self._label()}: child names must be non-empty strings, got {name!r}")
        if "." in name:
            raise TreeError(
                f"{self._label()}: child name {name!r} must not contain a dot (dots separate the parts of an address)"
            )
        if name in kept_explicit:
            raise TreeError(f"{self._label()}: duplicate child name {name!r}")
        if (hasattr(type(self), name) and name not in type(self).child_properties) or (name in self.__dict__):
            raise TreeError(f"{self._label()}: child name {name!r} would hide the Chain attribute of that name")
        if name in self._parameters or name in self._buffers:
            raise TreeError(f"{self._label()}: child name {name!r} is the name of a tensor this Chain holds")


_FORWARD_FRAMES = 5
"""Python frames a forward call takes per level of Chains (torch's ``__call__``, ``forward``...)."""


def tree_depth(module: torch.nn.Module) -> int:
    """How many levels of modules lie below ``module`` (0 for a leaf), counted without recursion.

    >>> import fluxion.layers as fl
    >>> tree_depth(fl.Chain(fl.Chain(fl.ReLU()), fl.Tanh())), tree_depth(fl.ReLU())
    (2, 0)
    """
    deepest = 0
    seen: set[int] = set()
    pending: list[tuple[torch.nn.Module, int]] = [(module, 0)]
    while pending:
        node, depth = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in node.children())
    return deepest


def too_deep_error(root: torch.nn.Module, action: str, frames_per_level: int) -> TreeError | None:
    """The error for ``action`` on ``root`` running out of Python's recursion limit, when the tree's
    depth explains it (None when it does not: the recursion came from somewhere else).

    ``frames_per_level`` is how many Python frames ``action`` takes for each level of the tree.

    >>> import fluxion.layers as fl
    >>> tree = fl.ReLU()
    >>> for _ in range(300):
    ...     tree = fl.Chain(tree)
    >>> print(too_deep_error(tree, "a forward call", 5))  # doctest: +ELLIPSIS
    Chain: a forward call ran out of Python's recursion limit (...) on a tree 300 levels deep: ...
    >>> too_deep_error(fl.Chain(fl.ReLU()), "a forward call", 5) is None
    True
    """
    depth = tree_depth(root)
    limit = sys.getrecursionlimit()
    if depth * frames_per_level < limit // 2:
        return None
    suggested = -(-(depth * frames_per_level * 3 // 2 + limit) // 1000) * 1000
    address = address_of(root)
    where = f"{type(root).__name__} at {address!r}" if address else type(root).__name__
    return TreeError(
        f"{where}: {action} ran out of Python's recursion limit ({limit}) on a tree {depth} levels deep: "
        f"each level runs inside the one above (about {frames_per_level} Python frames a level). Raise "
        f"the limit, e.g. sys.setrecursionlimit({suggested}), or make the tree shallower (a Chain of many "
        "children rather than one Chain inside another)"
    )


def _post_hooks(module: torch.nn.Module, destination: Any, prefix: str, metadata: dict[str, Any]) -> Any:
    """Run ``module``'s state_dict post-hooks as torch does; what the last one returned (or ``destination``)."""
    for hook in _hooks(module, "_state_dict_hooks"):
        returned = hook(module, destination, prefix, metadata)
        if not getattr(hook, "_from_public_api", False):
            if returned is not None:
                destination = returned
        elif returned is not None:
            raise RuntimeError("state_dict post-hook must return None")
    return destination


def _hooks(module: torch.nn.Module, table: str) -> list[Callable[..., Any]]:
    """The hooks of one of ``module``'s hook tables (torch leaves them untyped), in order."""
    return list(cast(dict[int, Callable[..., Any]], vars(module)[table]).values())


def _rank_before(keys: list[str], index: int, group: tuple[str, ...]) -> int:
    """How many of ``group``'s names stand before ``index``: found from the nearest one before it."""
    ranks = ranks_of(group)
    for position in range(index - 1, -1, -1):
        rank = ranks.get(keys[position])
        if rank is not None:
            return rank + 1
    return 0


def _matcher(predicate: Predicate | None, owner: str) -> Callable[[torch.nn.Module, Chain], bool]:
    """The test a walk applies to each module and its parent (a TreeError for anything else)."""
    given = cast(object, predicate)
    if given is None:
        return lambda _, __: True
    if _is_types(given):
        kinds = cast(type[torch.nn.Module] | tuple[type[torch.nn.Module], ...], given)
        return lambda module, _: isinstance(module, kinds)
    if isinstance(given, torch.nn.Module):
        raise TreeError(
            f"{owner}: walk takes a type, not a module: got a {type(given).__name__} "
            f"(its class, {type(given).__name__}, selects every one)"
        )
    if callable(given):
        arguments = _positional_arguments(given)
        if arguments[0] > 2 or arguments[1] == 0:
            wanted = f"needs {arguments[0]} arguments" if arguments[0] > 2 else "takes no argument"
            raise TreeError(
                f"{owner}: walk's predicate is called with (module) or (module, parent); {_shown(given)} {wanted}"
            )
        if arguments[1] >= 2:
            return cast(Callable[[torch.nn.Module, Chain], bool], given)
        function = cast(Callable[[torch.nn.Module], bool], given)
        return lambda module, _: function(module)
    raise TreeError(
        f"{owner}: walk takes a type, a tuple of types, a function of the module or None (a function "
        f"may also take the module and its parent); got {_shown(predicate)}"
    )


def _positional_arguments(function: Callable[..., Any]) -> tuple[int, float]:
    """How many positional arguments ``function`` needs, and how many it can take (``inf`` with
    ``*args``); ``(1, 1)`` when its signature cannot be read."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature
        return 1, 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [parameter for parameter in parameters if parameter.kind in kinds]
    needed = sum(1 for parameter in positional if parameter.default is parameter.empty)
    if any(parameter.kind is inspect.Parameter.VAR_POSITIONAL for parameter in parameters):
        return needed, math.inf
    return needed, len(positional)


def _is_types(value: object) -> bool:
    """Whether ``value`` is what ``isinstance`` takes: a type or a tuple of types."""
    if isinstance(value, tuple):
        return all(isinstance(kind, type) for kind in cast(tuple[object, ...], value))
    return isinstance(value, type)


def _shown(value: object) -> str:
    """A value as an error message shows it: its type and a short repr."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many
