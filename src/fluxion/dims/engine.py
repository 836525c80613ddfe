"""The hooks shape inference sets while it runs: how a composite runs a child's rule, where
constraints go, the context values of the current inference and the shapes of the model's inputs.

Outside ``fluxion.shapes.infer`` a child's rule is called directly, constraints are dropped, the
context is empty and no model input is known; ``fluxion.shapes`` installs its own for one
inference with ``running``.

>>> import fluxion.layers as fl
>>> from fluxion import dims
>>> seen = []
>>> with dims.running(lambda child, inputs: seen.append(type(child).__name__)):
...     _ = dims.run(fl.ReLU(), dims.Shape([2]))
>>> seen
['ReLU']
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Generator
from contextlib import contextmanager
from typing import Any, TypeAlias, cast

import torch

from fluxion.dims.symbols import Dim, ShapeValue
from fluxion.errors import ShapeError

Runner: TypeAlias = Callable[[torch.nn.Module, tuple[ShapeValue, ...]], ShapeValue]
"""How a composite's rule gets a child's output shape: ``runner(child, inputs)``."""

Recorder: TypeAlias = Callable[[Dim, Dim, str], None]
"""Where a constraint goes: ``recorder(first, second, reason)`` for ``first == second``."""

ModelInputs: TypeAlias = tuple[ShapeValue, ...] | Callable[[], tuple[ShapeValue, ...]]
"""The model's input shapes, or a function giving them as the sizes read at the moment of the call."""

_runner: contextvars.ContextVar[Runner | None] = contextvars.ContextVar("fluxion_shape_runner", default=None)
_constraints: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "fluxion_shape_constraints", default=None
)
_context: contextvars.ContextVar[dict[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "fluxion_shape_context", default=None
)
_inputs: contextvars.ContextVar[ModelInputs] = contextvars.ContextVar("fluxion_model_inputs", default=())


def run(child: torch.nn.Module, *inputs: ShapeValue) -> ShapeValue:
    """The output shape of ``child`` for ``inputs``: what a Chain's rule calls for each child.

    Inside ``fluxion.shapes.infer`` this records the child's shapes under its address.

    >>> import fluxion.layers as fl
    >>> from fluxion import dims
    >>> dims.run(fl.Linear(4, 2), dims.Shape(["B", 4]))
    (B, 2)
    """
    runner = _runner.get()
    if runner is not None:
        return runner(child, inputs)
    rule = getattr(child, "output_shape", None)
    if rule is None:
        raise ShapeError(f"{type(child).__name__} has no shape rule (outside fluxion.shapes.infer)")
    return cast(ShapeValue, rule(*inputs))


def context_values() -> dict[str, dict[str, Any]]:
    """The context values of the current inference (shapes that ``SetContext`` stored).

    >>> from fluxion import dims
    >>> dims.context_values()
    {}
    """
    store = _context.get()
    return {} if store is None else store


def model_inputs() -> tuple[ShapeValue, ...]:
    """The input shapes of the model that the current inference runs on, or ``()`` outside one: what
    a layer sized relative to the model's input reads. Inside ``fluxion.shapes.infer`` they are those
    that the input of the rule now running comes from (inference follows every value from the
    model's inputs), in the model's order (positional inputs first, then named ones, in a Graph's
    order of inputs).

    Inside ``fluxion.shapes.infer`` they are written in the same symbols as the input of the rule
    that asks (once H must be a multiple of 4, H reads ``4*h`` where the rule's input reads ``h``).

    >>> import fluxion.layers as fl
    >>> from fluxion import dims
    >>> dims.model_inputs()
    ()
    >>> with dims.running(inputs=(dims.Shape(["B", 3, "H", "W"]),)):
    ...     dims.model_inputs()
    ((B, 3, H, W),)
    """
    inputs = _inputs.get()
    return inputs() if callable(inputs) else inputs


def constrain(first: Dim, second: Dim, reason: str) -> None:
    """Record that the model only works when ``first == second`` (inside ``fluxion.shapes.infer``).

    >>> from fluxion import dims
    >>> dims.constrain(dims.dim("H"), 2 * dims.floordiv(dims.dim("H"), 2), "skip connection")
    """
    recorder = _constraints.get()
    if recorder is not None:
        recorder(first, second, reason)


@contextmanager
def running(
    runner: Runner | None = None,
    recorder: Recorder | None = None,
    context: dict[str, dict[str, Any]] | None = None,
    *,
    inputs: ModelInputs = (),
) -> Generator[None]:
    """Within the block, ``run`` calls ``runner``, ``constrain`` calls ``recorder``,
    ``context_values`` is ``context`` and ``model_inputs`` is ``inputs``: how an inference engine
    sees every rule a tree runs.

    >>> from fluxion import dims
    >>> found = []
    >>> with dims.running(recorder=lambda first, second, reason: found.append(reason)):
    ...     dims.require_equal(dims.dim("H"), 2 * dims.floordiv(dims.dim("H"), 2), "even height")
    >>> found
    ['even height']
    """
    tokens = (_runner.set(runner), _constraints.set(recorder), _context.set(context))
    given = _inputs.set(inputs)
    try:
        yield
    finally:
        _runner.reset(tokens[0])
        _constraints.reset(tokens[1])
        _context.reset(tokens[2])
        _inputs.reset(given)
