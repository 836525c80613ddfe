"""``Adapter``: a Chain that takes the place of a node in a tree and wraps it, reversibly.

While injected, the adapter stands where its target stood, under the target's name, and holds
the target as its child ``target``. Ejecting puts the target back: the tree, its addresses, its
``state_dict`` and its outputs are exactly as before. Adapters stack (on the same target, on a
target inside another adapter, on Chains and on leaves) and eject in any order.

>>> import torch
>>> import fluxion.layers as fl
>>> model = fl.Chain(fl.Linear(2, 2), fl.ReLU())
>>> adapter = Adapter(model.Linear, fl.Lambda(torch.neg)).inject()
>>> model.Linear is adapter, adapter.target.address
(True, 'Linear.target')
>>> adapter.eject()
>>> model.Linear is adapter.target
True
"""

from __future__ import annotations

from typing import Any, ClassVar, Self, cast

import torch

from fluxion.dims import ShapeValue
from fluxion.errors import AdapterError, AdapterStructureError
from fluxion.layers import Chain, Return, TreeError, address_of, parent_of

SLOT = "target"
"""The name of the child an injected adapter holds its target under."""

_DETACHED_TARGET = "_fluxion_target"  # __dict__ key: the target while the adapter is not injected


class Adapter(Chain):
    """A Chain that wraps ``target``: once injected, it runs in the target's place.

    The target becomes the child ``target`` at position ``target_position`` (0: first), before
    ``children``; by default the adapter runs its children in sequence like any Chain, so
    ``Adapter(layer, post)`` computes ``post(layer(x))``. Subclasses override ``forward`` for other
    data flows (LoRA adds a low-rank branch to the target's output).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(2, 2))
    >>> doubled = Adapter(model.Linear, fl.Lambda(lambda x: 2 * x)).inject()
    >>> x = torch.ones(1, 2)
    >>> torch.allclose(model(x), 2 * doubled.target(x))
    True
    """

    repr_tag = "ADAPTER"
    child_properties = frozenset({SLOT})
    target_position: ClassVar[int] = 0

    def __init__(self, target: torch.nn.Module, /, *children: torch.nn.Module, **named: torch.nn.Module) -> None:
        given = cast(object, target)
        if not isinstance(given, torch.nn.Module):
            raise AdapterError(f"{type(self).__name__}: the target must be a torch module, got {type(given).__name__}")
        if SLOT in named:
            raise AdapterError(f"{type(self).__name__}: the child name {SLOT!r} is reserved for the adapter's target")
        super().__init__(*children, **named)
        if not 0 <= self.target_position <= len(self):
            raise AdapterError(
                f"{type(self).__name__}: target_position {self.target_position} is outside 0..{len(self)}"
            )
        self.__dict__[_DETACHED_TARGET] = target

    @property
    def target(self) -> torch.nn.Module:
        """The node this adapter wraps: its child ``target`` while injected.

        >>> import fluxion.layers as fl
        >>> linear = fl.Linear(2, 2)
        >>> Adapter(linear).target is linear
        True
        """
        wrapped = self.standing_in_for
        return self.__dict__[_DETACHED_TARGET] if wrapped is None else wrapped

    @property
    def injected(self) -> bool:
        """Whether the adapter currently wraps its target.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU())
        >>> adapter = Adapter(model.ReLU)
        >>> adapter.injected, adapter.inject().injected
        (False, True)
        """
        return self.standing_in_for is not None

    def inject(self, parent: Chain | None = None) -> Self:
        """Put this adapter where its target is, and the target inside it; returns the adapter.

        ``parent``, when given, must be the Chain holding the target (a check, for code that
        knows where the target should be). The target must sit in a Chain: a root, or a module
        inside a plain torch container, has no place the adapter could take. The adapter's own
        layers take the target's mode (train or eval).

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(block=fl.Chain(fl.ReLU()))
        >>> adapter = Adapter(model.block).inject(parent=model)
        >>> model.block is adapter, [name for name, _ in model.named_modules()]
        (True, ['', 'block', 'block.target', 'block.target.ReLU'])
        """
        if self.injected:
            raise AdapterError(f"{self._describe()} is already injected; eject it before injecting it again")
        target: torch.nn.Module = self.__dict__[_DETACHED_TARGET]
        self._check_injectable(target, parent)
        training = self.training
        self.train(target.training)  # before the target is a child: only the adapter's own layers
        try:
            # While it takes the target's place, the adapter still names the target as its own (an
            # adapter around it may check what it wraps).
            self.stand_in_for(target, name=SLOT, position=self.target_position)
        except TreeError as error:  # refused by the target's parent (or a tree broken by hand)
            self.train(training)
            raise AdapterError(f"{self._describe()}: cannot inject: {error}") from error
        self.__dict__[_DETACHED_TARGET] = None
        return self

    def _check_injectable(self, target: torch.nn.Module, parent: Chain | None) -> None:
        """Rule out every reason to refuse the injection that an adapter can say better than the tree."""
        if parent_of(self) is not None:
            raise AdapterError(
                f"{self._describe()} already sits in a tree (at {self.address!r}) without wrapping its target; "
                "remove it from there first"
            )
        holder = parent_of(target)
        if holder is None:
            raise AdapterError(
                f"{self._describe()}: the target is in no Chain (a root, or a module inside a plain torch "
                "container), so there is no place for the adapter to take; adapters wrap nodes of a fluxion tree"
            )
        if parent is not None and holder is not parent:
            raise AdapterError(
                f"{self._describe()}: the target is not a child of the given parent; "
                f"it is at {address_of(target)!r} in another Chain"
            )
        if isinstance(holder, Adapter) and holder.name_of(target) != SLOT:
            raise AdapterError(
                f"{self._describe()}: the target is {type(holder).__name__}'s own layer "
                f"{holder.name_of(target)!r}, part of that adapter; wrap the adapter itself, or its target"
            )
        if isinstance(target, Return):
            raise AdapterError(f"{self._describe()}: a Return ends its Chain; an adapter around it would stop that")
        node: torch.nn.Module | None = holder
        while node is not None:
            if node is self:
                raise AdapterError(f"{self._describe()}: an adapter cannot wrap a node inside itself")
            node = parent_of(node)

    def eject(self) -> None:
        """Put the node this adapter wraps back in its place; the adapter leaves the tree.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(2, 2))
        >>> linear = model.Linear
        >>> adapter = Adapter(linear).inject()
        >>> adapter.eject()
        >>> model.Linear is linear, adapter.parent is None, adapter.injected
        (True, True, False)
        """
        if not self.injected:
            raise AdapterError(f"{self._describe()} is not injected; there is nothing to eject")
        try:
            self.__dict__[_DETACHED_TARGET] = self.step_aside()
        except TreeError as error:  # refused by the target's parent (a sharded part of the tree)
            raise AdapterError(f"{self._describe()}: cannot eject: {error}") from error

    def forward(self, *args: Any) -> Any:
        """Run the children in sequence, the target among them (see the class docstring).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Lambda(torch.exp))
        >>> _ = Adapter(model.Lambda, fl.Lambda(torch.log)).inject()
        >>> model(torch.tensor(0.5))
        tensor(0.5000)
        """
        self._injected_target()
        return super().forward(*args)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The shape rule of a sequence, as ``forward`` runs one (see ``Chain.output_shape``).

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> model = fl.Chain(fl.Linear(4, 4))
        >>> _ = Adapter(model.Linear, fl.Linear(4, 2)).inject()
        >>> shapes.infer(model, ("B", 4)).output
        (B, 2)
        """
        self._injected_target()
        return super().output_shape(*inputs)

    def extra_repr(self) -> str:
        return "" if self.injected else f"target={type(self.target).__name__}, not injected"

    def _injected_target(self) -> torch.nn.Module:
        """The target, which only an injected adapter runs."""
        target = self.standing_in_for
        if target is None:
            raise AdapterError(f"{self._describe()} is not injected, so it has no target to run")
        return target

    def _describe(self) -> str:
        address = f" at {self.address!r}" if self.parent is not None else ""
        target = self.standing_in_for
        if target is None:
            target = self.__dict__.get(_DETACHED_TARGET)
        return f"{type(self).__name__} on {type(target).__name__ if target is not None else 'nothing'}{address}"

    def check_surgery(
        self, removed: list[tuple[str, torch.nn.Module]], added: list[tuple[str | None, torch.nn.Module]]
    ) -> None:
        """Refuse taking out or renaming the target, or filling its slot by hand (``inject()`` does);
        check a new target with :meth:`check_target`.

        Replacing the target under its name is surgery like any other (``adapter.target = layer``);
        every adapter wrapping this one's target through stacked adapters checks the new layer too.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(2, 2))
        >>> adapter = Adapter(model.Linear).inject()
        >>> adapter.target = fl.Linear(2, 2)
        >>> model.Linear.target.address
        'Linear.target'
        """
        replacements = {name: module for name, module in added if name is not None}
        if SLOT in replacements and all(name != SLOT for name, _ in removed):
            raise AdapterStructureError(f"{self._describe()}: the child name {SLOT!r} is reserved; inject() fills it")
        for name, _ in removed:
            if name != SLOT:
                continue
            new = replacements.get(SLOT)
            if new is None:
                raise AdapterStructureError(
                    f"{self._describe()}: its target cannot be removed or renamed; eject the adapter "
                    "(adapter.eject()) to put the target back in its place"
                )
            layer = wrapped_layer(new)
            node: Adapter = self
            while True:
                node.check_target(layer)
                holder = parent_of(node)
                if not isinstance(holder, Adapter) or holder.name_of(node) != SLOT:
                    break
                node = holder

    def check_target(self, layer: torch.nn.Module) -> None:
        """Refuse ``layer`` as the new node this adapter wraps (looking through stacked adapters) by
        raising an :class:`AdapterStructureError`; an Adapter accepts any node, a LoRA one it fits.

        >>> import fluxion.layers as fl
        >>> Adapter(fl.Linear(2, 2)).check_target(fl.ReLU())
        """


def wrapped_layer(node: torch.nn.Module) -> torch.nn.Module:
    """The node that ``node`` finally wraps, looking through adapters (``node`` itself for any other).

    An adapter on its way into a tree already wraps its target in this sense.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(2, 2))
    >>> linear = model.Linear
    >>> outer = Adapter(Adapter(linear).inject()).inject()
    >>> wrapped_layer(outer) is linear
    True
    """
    while isinstance(node, Adapter):
        node = node.target
    return node
