"""``Intermediates``: run a model and get the outputs of the nodes you name, for training.

Where ``fluxion.shapes.trace`` keeps every node's output, detached, for debugging, this keeps the
outputs of chosen nodes with their gradients (deep supervision, feature losses, distillation), in
the same forward call that gives the model's output, and works under ``torch.compile``.

>>> import torch
>>> import fluxion.layers as fl
>>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU(), head=fl.Linear(8, 2))
>>> with fl.Intermediates(model, "ReLU") as tapped:
...     output, features = tapped(torch.randn(3, 4))
>>> list(features), features["ReLU"].requires_grad
(['ReLU'], True)
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Self, cast

import torch

from fluxion.errors import TreeError


class Intermediates(torch.nn.Module):
    """Wraps ``model``: a call returns ``(output, {address: output of that node})`` for the nodes
    ``nodes`` names, with gradients, in one forward of the model.

    ``nodes`` is an address or a glob (``"blocks.*.attention"``, ``*`` matching across dots as in
    ``fnmatch``), or a list of them; each must name at least one node, or a ``TreeError`` lists
    addresses close to it. Outputs are keyed by address in the order the nodes finished; a node
    called more than once keeps its last output. Tensors are kept as copies (``clone``, which
    gradients go through), so a later in-place layer (``ReLU(inplace=True)``) cannot change them.
    The hooks that collect them stay on the model until :meth:`remove` (or the end of a ``with``
    block); calling ``model`` directly meanwhile collects nothing. After surgery moves a tapped node,
    its outputs are keyed by its new address; a tapped node taken out of the model is an error.
    Copies (``copy.deepcopy``, an EMA model) and pickles of the model and of the wrapper keep
    collecting. ``torch.compile(Intermediates(model, ...), fullgraph=True)`` compiles the whole call.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(block_1=fl.Chain(fl.Linear(2, 2)), block_2=fl.Chain(fl.Linear(2, 2)))
    >>> tapped = fl.Intermediates(model, "block_?")
    >>> output, outputs = tapped(torch.ones(1, 2))
    >>> list(outputs), torch.equal(outputs["block_2"], output)
    (['block_1', 'block_2'], True)
    >>> tapped.remove()
    """

    def __init__(self, model: torch.nn.Module, nodes: str | Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.addresses = _selected(model, nodes)
        self._collecting: list[dict[str, Any]] = []  # one dict per call in progress
        self._active = True
        self._tapped = [model.get_submodule(address) for address in self.addresses]
        for address, module in zip(self.addresses, self._tapped, strict=True):
            module.register_forward_hook(_Collector(self, address))

    def forward(self, *args: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """``(model(*args, **kwargs), {address: output})``.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> tapped = fl.Intermediates(fl.Chain(fl.Linear(2, 2), fl.ReLU()), ["Linear"])
        >>> output, outputs = tapped(torch.ones(1, 2))
        >>> torch.equal(outputs["Linear"].relu(), output)
        True
        """
        if not self._active:
            raise TreeError("Intermediates: its hooks were removed; wrap the model again to collect outputs")
        if any(
            _at(self.model, address) is not module for address, module in zip(self.addresses, self._tapped, strict=True)
        ):
            self._follow_surgery()
        collected: dict[str, Any] = {}
        self._collecting.append(collected)
        try:
            output = self.model(*args, **kwargs)
        finally:
            self._collecting.pop()
        return output, collected

    def remove(self) -> None:
        """Take the hooks off the model (it runs as before); this wrapper collects nothing after.

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.ReLU())
        >>> fl.Intermediates(model, "ReLU").remove()
        >>> len(model.ReLU._forward_hooks)
        0
        """
        for module in self._tapped:
            hooks = _hooks(module)
            for key in [key for key, hook in hooks.items() if isinstance(hook, _Collector) and hook.owner is self]:
                del hooks[key]
        self._active = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.remove()

    def extra_repr(self) -> str:
        return f"nodes={list(self.addresses)!r}"

    def _follow_surgery(self) -> None:
        """Key each tapped node by its address now; a node no longer in the model is an error."""
        named = cast("Iterator[tuple[str, torch.nn.Module]]", self.model.named_modules(remove_duplicate=False))
        found = {id(module): address for address, module in named}
        for address, module in zip(self.addresses, self._tapped, strict=True):
            if id(module) not in found:
                raise TreeError(
                    f"Intermediates: the node tapped as {address!r} is no longer in the model (surgery after "
                    "wrapping); wrap the model again to choose the nodes"
                )
        self.addresses = tuple(found[id(module)] for module in self._tapped)
        for address, module in zip(self.addresses, self._tapped, strict=True):
            for hook in _hooks(module).values():
                if isinstance(hook, _Collector) and hook.owner is self:
                    hook.address = address


def _hooks(module: torch.nn.Module) -> dict[int, object]:
    """torch's table of a module's forward hooks (where this wrapper finds its own, by owner)."""
    return cast(dict[int, object], module.__dict__["_forward_hooks"])


class _Collector:
    """The forward hook that keeps one node's output for the call in progress of its ``owner``.

    A class rather than a closure, so that the model (and the wrapper) can be pickled and copied:
    a deep copy's hooks then collect for the copied wrapper.
    """

    def __init__(self, owner: Intermediates, address: str) -> None:
        self.owner = owner
        self.address = address

    def __call__(self, module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        calls = self.owner._collecting  # pyright: ignore[reportPrivateUsage]
        if calls:
            calls[-1].pop(self.address, None)  # the latest call goes last, in finishing order
            calls[-1][self.address] = output_copy(output)


def _at(model: torch.nn.Module, address: str) -> torch.nn.Module | None:
    """The node at ``address`` in ``model``, or None when there is none."""
    try:
        return model.get_submodule(address)
    except AttributeError:
        return None


def output_copy(value: Any, *, detach: bool = False) -> Any:
    """A node's output with its tensors cloned (gradients flow through a clone, unless ``detach``),
    tuples and lists kept: what a later in-place layer (``ReLU(inplace=True)``) cannot change.

    >>> import torch
    >>> output = (torch.ones(2),)
    >>> kept = output_copy(output)
    >>> _ = output[0].zero_()
    >>> kept[0].tolist()
    [1.0, 1.0]
    """
    if isinstance(value, torch.Tensor):
        return value.detach().clone() if detach else value.clone()
    if isinstance(value, tuple | list):
        items = [output_copy(item, detach=detach) for item in cast("list[Any]", value)]
        return tuple(items) if isinstance(value, tuple) else items
    return value


def _selected(model: torch.nn.Module, nodes: str | Sequence[str]) -> tuple[str, ...]:
    """The addresses ``nodes`` names, in the model's order, each pattern matching at least one."""
    given = cast(object, nodes)
    patterns: list[object] = [given]
    if isinstance(given, Sequence) and not isinstance(given, str):
        patterns = list(cast(Sequence[object], given))
    if not patterns or not all(isinstance(pattern, str) for pattern in patterns):
        raise TreeError(f"Intermediates: nodes are an address or glob, or a list of them; got {nodes!r}")
    named = cast("Iterator[tuple[str, torch.nn.Module]]", model.named_modules(remove_duplicate=False))
    addresses = [address for address, _ in named]
    chosen: set[str] = set()
    for pattern in cast(list[str], patterns):
        matched = {address for address in addresses if fnmatch.fnmatchcase(address, pattern)}
        if not matched:
            close = difflib.get_close_matches(pattern, [address for address in addresses if address], n=3)
            hint = f"; close addresses: {', '.join(close)}" if close else ""
            raise TreeError(f"Intermediates: no node of the {type(model).__name__} matches {pattern!r}{hint}")
        chosen |= matched
    return tuple(dict.fromkeys(address for address in addresses if address in chosen))
