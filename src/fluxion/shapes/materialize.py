"""``materialize``: fill in the sizes that lazy layers left out, from the inferred shapes.

A layer built with its input-side size left out (``fl.Linear(out_features=10)``, ``fl.LayerNorm()``,
see ``fluxion.layers.lazy``) has no parameters and refuses to run. ``materialize`` infers every
shape of the model, takes each lazy layer's missing size from the shape of its input, and creates
its parameters, after which the layer is the one that giving the size would have built.

>>> import fluxion.layers as fl
>>> from fluxion import shapes
>>> model = fl.Chain(fl.Conv2d(out_channels=8, kernel_size=3, padding=1), fl.Flatten(), fl.Linear(out_features=10))
>>> shapes.materialize(model, ("B", 3, 4, 4)).output
(B, 10)
>>> model.Linear
Linear(in_features=128, out_features=10, bias=True)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch

from fluxion import dims
from fluxion.dims import Dim
from fluxion.errors import ShapeError
from fluxion.layers.lazy import Argument, Materializable, is_lazy
from fluxion.shapes.infer import ShapeLike, Sources, infer, infer_with_sources
from fluxion.shapes.report import ShapeReport
from fluxion.tree.chain import Chain


def materialize(model: torch.nn.Module, *input_shapes: ShapeLike, **named_input_shapes: ShapeLike) -> ShapeReport:
    """Fill in every lazy layer of ``model`` from the shapes of inputs of ``input_shapes``; the shape report.

    Shapes are given as for ``infer`` and may be symbolic, but each size a lazy layer takes must
    come out a number. Each layer's parameters are created with torch's initialisation, on the
    device and dtype it was built with (``meta`` included). Everything is worked out, and every
    parameter created, before the model is changed: when anything fails, a ``ShapeError`` lists
    every problem and the model is left as it was.

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> model = fl.Chain(fl.Linear(out_features=16), fl.LayerNorm(), fl.Linear(out_features=4))
    >>> shapes.materialize(model, ("B", 8)).output
    (B, 4)
    >>> [tuple(weight.shape) for name, weight in model.named_parameters() if name.endswith("weight")]
    [(16, 8), (16,), (4, 16)]
    >>> shapes.materialize(fl.Chain(fl.Linear(out_features=2)), ("B", "F"))
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Linear at 'Linear' needs its in_features as a number, got F: give F as a number
    """
    report, sources = infer_with_sources(model, *input_shapes, assume=None, **named_input_shapes)
    twins: list[tuple[Materializable, Materializable]] = []
    problems: list[tuple[str, str]] = []
    for address, node in cast("Iterator[tuple[str, torch.nn.Module]]", model.named_modules()):
        if is_lazy(node):
            twin = _twin(node, address, report, sources, problems)
            if twin is not None:
                twins.append((node, twin))
    if problems:
        if len(problems) == 1:
            message = problems[0][1]
        else:
            listed = "\n".join(f"  - {problem}" for _, problem in problems)
            message = f"{len(problems)} lazy layers cannot be materialized (nothing was changed):\n{listed}"
        raise ShapeError(message, address=problems[0][0])
    for node, twin in twins:  # plain assignments: nothing can fail from here on
        node.adopt(twin)
    if any(isinstance(node, Chain) for node, _ in twins):  # new children: their shapes too
        report = infer(model, *input_shapes, assume=None, **named_input_shapes)
    return report


def _twin(
    node: Materializable, address: str, report: ShapeReport, sources: Sources, problems: list[tuple[str, str]]
) -> Materializable | None:
    """The complete twin of a lazy ``node``, or None with the reason added to ``problems``."""
    label = f"{type(node).__name__} at {address!r}" if address else f"{type(node).__name__} (the root)"
    missing = ", ".join(node.missing)
    shapes = report.get(address)
    if shapes is None:
        problems.append((address, f"{label} was not reached by shape inference, so its {missing} is unknown"))
        return None
    found: list[dict[str, Argument]] = []
    model_inputs = report[""].inputs
    calls_from = sources.get(address, ())
    for number, call in enumerate(shapes.calls):
        # a layer sized relative to the model's input (model_downsample=) reads here, as during
        # inference, the model's inputs that this call's input comes from
        positions = calls_from[number] if number < len(calls_from) else range(len(model_inputs))
        try:
            with dims.running(inputs=tuple(model_inputs[position] for position in positions)):
                found.append(node.inferred_arguments(*call.inputs))
        except ShapeError as error:
            problems.append((address, f"{label} cannot infer its {missing}: {error}"))
            return None
    arguments = found[0]
    for number, other in enumerate(found[1:], start=2):
        if any(not _same(other[name], value) for name, value in arguments.items()):
            first = ", ".join(f"{name}={_show(value)}" for name, value in arguments.items())
            then = ", ".join(f"{name}={_show(value)}" for name, value in other.items())
            problems.append(
                (
                    address,
                    f"{label} runs {len(found)} times with inputs that disagree: {first} at its first call, "
                    f"{then} at call {number}",
                )
            )
            return None
    for name, value in arguments.items():
        if isinstance(value, tuple):  # one number per spatial dim (a derived stride): the layer checked them
            continue
        if not dims.known(value):
            symbols = sorted(str(symbol) for symbol in _free_symbols(value))
            wanted = f"{symbols[0]} as a number" if len(symbols) == 1 else f"{_listed(symbols)} as numbers"
            problems.append((address, f"{label} needs its {name} as a number, got {dims.show(value)}: give {wanted}"))
            return None
    sizes = cast(dict[str, int | tuple[int, ...]], arguments)
    try:
        return node.materialized(**sizes)
    except Exception as error:
        given = ", ".join(f"{name}={value}" for name, value in sizes.items())
        problems.append((address, f"{label} cannot be built with {given}: {type(error).__name__}: {error}"))
        return None


def _same(first: Argument, second: Argument) -> bool:
    if isinstance(first, tuple) or isinstance(second, tuple):
        return bool(cast(object, first) == cast(object, second))
    return dims.equal(first, second) is True


def _show(value: Argument) -> str:
    return str(value) if isinstance(value, tuple) else dims.show(value)


def _free_symbols(value: Dim) -> set[object]:
    return set() if isinstance(value, int) else cast(set[object], value.free_symbols)


def _listed(names: list[str]) -> str:
    return f"{', '.join(names[:-1])} and {names[-1]}"
