"""Every error fluxion raises on purpose: :class:`FluxionError` and each part's family under it.

Every part of fluxion raises a subclass of :class:`FluxionError`, so one ``except`` clause catches
anything fluxion reports about bad input, while the subclasses say which part complained:
``TreeError`` (the tree), ``LayerError`` (a layer's arguments), ``ShapeError`` (shapes),
``WeightsError`` (checkpoints), ``AdapterError`` (adapters), ``TrainingError`` (init, optimizer
and loss specs), ``SpecError`` (spec files), ``NasError`` (architecture search), ``DistributedError`` (sharding
and sharded checkpoints) and ``CliError`` (the command line). Each part
re-exports its own (``fl.TreeError``, ``fluxion.weights.WeightsError``...), and all of them live
here, below every other floor.

>>> import fluxion
>>> issubclass(fluxion.errors.TreeError, fluxion.FluxionError)
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, cast


class FluxionError(Exception):
    """Base class of every error fluxion raises on purpose.

    >>> try:
    ...     raise FluxionError("something is off")
    ... except FluxionError as error:
    ...     print(error)
    something is off
    """


# --- The tree: access, surgery, forward calls, context, graphs


class TreeError(FluxionError, ValueError):
    """Bad use of the tree: a node that already has a parent, a name with a dot, a duplicate name.

    >>> import fluxion.layers as fl
    >>> try:
    ...     fl.Chain(**{"a.b": fl.ReLU()})
    ... except fl.TreeError as error:
    ...     print(error)
    Chain: child name 'a.b' must not contain a dot (dots separate the parts of an address)
    """


class ChildNotFoundError(TreeError, KeyError):
    """A name or address that names no node; the message lists the valid names.

    >>> import fluxion.layers as fl
    >>> isinstance(fl.ChildNotFoundError("x"), KeyError)
    True
    """

    def __str__(self) -> str:
        # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class ChildAttributeError(ChildNotFoundError, AttributeError):
    """An attribute of a Chain that is neither a child nor anything else the Chain has; the message
    lists the children. It is an ``AttributeError`` too, so ``hasattr`` and ``getattr(..., default)``
    work as they do on any module.

    >>> import fluxion.layers as fl
    >>> try:
    ...     fl.Chain(fl.Linear(2, 2), fl.ReLU()).Linaer
    ... except fl.ChildNotFoundError as error:
    ...     print(error)
    Chain has no child or attribute 'Linaer'; its children are: Linear, ReLU (did you mean 'Linear'?)
    """

    def __init__(self, message: str | Callable[[], str]) -> None:
        # the message may be a function: hasattr() probes Chains often and never reads it
        super().__init__(message)

    def __str__(self) -> str:
        message = cast(object, self.args[0]) if self.args else ""
        return str(message()) if callable(message) else str(message)


class ChildIndexError(TreeError, IndexError):
    """An integer index outside a Chain's children.

    >>> import fluxion.layers as fl
    >>> try:
    ...     fl.Chain(fl.ReLU())[3]
    ... except IndexError as error:
    ...     print(error)
    Chain: index 3 is out of range for 1 child (valid: -1..0)
    """


class ChainError(FluxionError, RuntimeError):
    """A forward call failed inside a Chain.

    The message names the failing node's address, draws the tree around it and summarises the
    inputs it received; the original exception is chained as ``__cause__``. ``address`` and
    ``node`` hold the failing node for programmatic use.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(4, 4), fl.Linear(8, 2))
    >>> try:
    ...     model(torch.zeros(1, 4))
    ... except fl.ChainError as error:
    ...     print(error.address)
    Linear_2
    """

    def __init__(self, message: str, *, address: str, node: object) -> None:
        super().__init__(message)
        self.address = address
        self.node = node


class ContextError(FluxionError, KeyError):
    """A context value was read before anything set it.

    >>> import fluxion.layers as fl
    >>> isinstance(fl.ContextError("x"), KeyError)
    True
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class GraphError(TreeError):
    """A Graph whose names, edges or outputs make no data flow, or a Graph called with wrong inputs.

    >>> import fluxion.layers as fl
    >>> try:
    ...     fl.Graph({"a": fl.ReLU(), "b": fl.Tanh()}, edges=["input -> a -> b -> a"])
    ... except fl.GraphError as error:
    ...     print(error)
    Graph: the edges make a cycle: a -> b -> a
    """


# --- Layers built with arguments they cannot work with


class LayerError(FluxionError, ValueError):
    """A layer built with arguments it cannot work with.

    >>> import fluxion.layers as fl
    >>> try:
    ...     fl.Slicing(dim=1, step=0)
    ... except fl.LayerError as error:
    ...     print(error)
    Slicing: step must be at least 1, got 0
    """


# --- Shapes


class ShapeError(FluxionError, ValueError):
    """A shape a layer cannot take, or a shape rule that cannot be worked out.

    Rules raise it with what they need; ``fluxion.shapes.infer`` adds the node's ``address`` and
    the ``path`` of shapes that led there.

    >>> from fluxion import dims
    >>> try:
    ...     dims.require_equal(200, 21632, "Linear expects last dim 200")
    ... except dims.ShapeError as error:
    ...     print(error)
    Linear expects last dim 200, got 21632
    """

    def __init__(self, message: str, *, address: str | None = None, path: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.address = address
        self.path = tuple(path)


# --- Weights


class WeightsError(FluxionError, ValueError):
    """A checkpoint that cannot be read, mapped or loaded; the message says which file and which keys.

    A failed load raises this before anything is copied, so the model is left exactly as it was.
    The problems are also available to programs as ``missing``, ``unexpected`` and ``mismatched``
    (tuples of keys; empty when the error is about something else, such as an unreadable file).

    >>> error = WeightsError("model.safetensors: 1 missing key", missing=("head.bias",))
    >>> error.missing
    ('head.bias',)
    """

    def __init__(
        self,
        message: str,
        *,
        missing: tuple[str, ...] = (),
        unexpected: tuple[str, ...] = (),
        mismatched: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


class ConversionError(WeightsError):
    """``convert`` could not pair two models' weights, or the converted model computes something else.

    The message names the leaves that disagree: by address in the source and in the target.

    >>> issubclass(ConversionError, WeightsError)
    True
    """


class WeightsWarning(UserWarning):
    """Something a load did that works but deserves attention (a pickled file, tensors left on meta).

    >>> issubclass(WeightsWarning, UserWarning)
    True
    """


class PickleCheckpointWarning(WeightsWarning):
    """A ``.pt``/``.pth``/``.bin`` checkpoint was read (safely, with ``weights_only=True``).

    Such files are pickles; safetensors files are faster to load, memory-mapped and cannot run code.

    >>> issubclass(PickleCheckpointWarning, WeightsWarning)
    True
    """


# --- Adapters


class AdapterError(FluxionError, ValueError):
    """Bad use of an adapter: injecting one twice, ejecting one that is not injected, a target
    selection that matches nothing, LoRA weights for addresses the model does not have.

    Adapter operations check everything before they change anything, so when this is raised the
    model is exactly as it was.

    >>> import fluxion.layers as fl
    >>> from fluxion.adapters import Adapter, AdapterError
    >>> try:
    ...     Adapter(fl.Linear(2, 2)).eject()
    ... except AdapterError as error:
    ...     print(error)
    Adapter on Linear is not injected; there is nothing to eject
    """


class AdapterStructureError(AdapterError, TreeError):
    """Surgery that would break an adapter: taking out its target or its own layers, or giving it
    a target its layers do not fit. Both an :class:`AdapterError` and a :class:`TreeError`.

    >>> import fluxion.layers as fl
    >>> from fluxion.adapters import Adapter
    >>> model = fl.Chain(fl.Linear(2, 2))
    >>> adapter = Adapter(model.Linear).inject()
    >>> try:
    ...     adapter.remove("target")
    ... except AdapterStructureError as error:
    ...     print(error)
    Adapter on Linear at 'Linear': its target cannot be removed or renamed; eject the adapter \
(adapter.eject()) to put the target back in its place
    """


# --- Training: init, optimizer and loss specs


class TrainingError(FluxionError, ValueError):
    """An init, optimizer or loss spec that cannot be built or applied: an unknown type or keyword, an
    address glob that matches nothing, a value of the wrong kind.

    ``path`` says where in the spec given (its keys and list indices, ``()`` for its top);
    ``fluxion.spec`` reports it as a ``SpecError`` naming the file and the JSON path.

    >>> from fluxion import training
    >>> try:
    ...     training.build_loss({"type": "MSELos"})
    ... except TrainingError as error:
    ...     print(error)
    unknown loss 'MSELos' (did you mean 'MSELoss'?); a loss is a torch.nn class whose name ends in Loss
    """

    def __init__(self, message: str, *, path: Sequence[str | int] = ()) -> None:
        super().__init__(message)
        self.path = tuple(path)


# --- Specs


class SpecError(FluxionError, ValueError):
    """A spec that cannot be read, evaluated or built.

    ``reason`` is the bare message; ``file``, ``line``, ``column`` and ``path`` (the JSON path of
    the offending node, ``""`` for the root) say where, each ``None`` when unknown. They may be
    filled in after the error was raised (by code that knows the file, say): ``str()`` always
    reads the current values.

    >>> error = SpecError("expected an object", path="blocks[0]")
    >>> error.file = "model.json"
    >>> print(error)
    model.json: blocks[0]: expected an object
    >>> error.reason
    'expected an object'
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike[str] | None = None,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = message
        self.file = file
        self.path = path
        self.line = line
        self.column = column

    def __str__(self) -> str:
        parts = [self._place(), self.path or "", self.reason]
        return ": ".join(part for part in parts if part)

    def _place(self) -> str:
        numbers = [] if self.line is None else [self.line] if self.column is None else [self.line, self.column]
        if self.file is not None:
            return ":".join([os.fspath(self.file), *map(str, numbers)])
        return ", ".join(f"{name} {number}" for name, number in zip(("line", "column"), numbers, strict=False))

    def __reduce__(self) -> tuple[Any, ...]:
        # the keyword-only fields would be lost by the default pickling of exceptions (multiprocessing)
        fields = {"file": self.file, "path": self.path, "line": self.line, "column": self.column}
        return (_rebuild, (self.reason, fields))


def _rebuild(reason: str, fields: dict[str, Any]) -> SpecError:
    return SpecError(reason, **fields)


# --- Architecture search


class NasError(FluxionError, ValueError):
    """Bad use of architecture search: an unknown operation name, a supernet or a genotype that
    does not fit together.

    >>> from fluxion.nas import operations
    >>> try:
    ...     operations.operation("sep_conv_3x", channels=8, stride=1)
    ... except NasError as error:
    ...     print(str(error).split(";")[0])
    unknown primitive 'sep_conv_3x' (closest: sep_conv_3x3)
    """


class DistributedError(FluxionError, ValueError):
    """Bad use of ``fluxion.distributed``: no process group, a selection that matches nothing,
    surgery or a load a sharded tree cannot take. Under a process group, every rank raises it with
    the same message (the lowest failing rank's), so no rank is left waiting in a collective.

    >>> from fluxion import distributed
    >>> import fluxion.layers as fl
    >>> try:
    ...     distributed.shard(fl.Chain(fl.Linear(2, 2)))
    ... except DistributedError as error:
    ...     print(str(error).split(";")[0])
    no process group is running
    """


# --- The command line


class CliError(FluxionError):
    """Something the command cannot do (a missing program, a factory that cannot be imported).

    >>> CliError("dot not found").exit_code
    1
    """

    exit_code = 1


class UsageError(CliError):
    """A command line whose options contradict each other or the spec they are given with.

    >>> print(UsageError("--depth must be 0 or more"))
    --depth must be 0 or more
    """

    exit_code = 2


def first_line(error: BaseException) -> str:
    """An exception in one line, for a message that wraps it: its class and its message's first line.

    >>> first_line(ValueError("bad shape\\nmore detail"))
    'ValueError: bad shape'
    >>> first_line(KeyError())
    'KeyError'
    """
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
