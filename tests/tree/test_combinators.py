"""The combinators' hand-written shape rules against their real forward passes.

Random small compositions of Passthrough, Residual, Sum, Parallel, Distribute, Concatenate, Matmul,
Graph and Tokens2d (and LinearLora / Conv2dLora, put in by ``lora.inject``) around simple leaves
of fixed sizes, called with random concrete input shapes: whenever ``shapes.infer`` accepts, the
forward runs and gives exactly the inferred shape(s); whenever the inference refuses with a
``ShapeError``, the forward fails too. For a long run set ``FLUXION_COMBINATOR_EXAMPLES``, e.g.
``FLUXION_COMBINATOR_EXAMPLES=2000 .venv/bin/pytest -q tests/tree/test_combinators.py``.
"""

import os
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import shapes
from fluxion.adapters import lora
from fluxion.errors import AdapterError, ShapeError
from tests.shapes.helpers import evaluate

EXAMPLES = int(os.environ.get("FLUXION_COMBINATOR_EXAMPLES", "100"))

FEATURES = st.sampled_from([2, 3])
"""Feature and channel sizes: two, so that leaves often fit and sometimes do not."""
SIZES = st.sampled_from([2, 3, 1, 0])
"""Input sizes (hypothesis favours the first values: 0 is the far end)."""


@st.composite
def leaves(draw: st.DrawFn) -> torch.nn.Module:
    kind = draw(st.sampled_from(["linear", "relu", "identity", "conv", "transpose", "add", "multiply", "cat"]))
    if kind == "linear":
        return fl.Linear(draw(FEATURES), draw(FEATURES))
    if kind == "conv":
        return fl.Conv2d(draw(FEATURES), draw(FEATURES), kernel_size=1)
    if kind == "transpose":
        return fl.Transpose(-1, -2)
    if kind == "cat":
        return fl.Cat(dim=draw(st.integers(-3, 2)))
    simple: dict[str, Callable[[], torch.nn.Module]] = {
        "relu": fl.ReLU,
        "identity": fl.Identity,
        "add": fl.Add,
        "multiply": fl.Multiply,
    }
    return simple[kind]()


def children(draw: st.DrawFn, depth: int, low: int = 0, high: int = 3) -> list[torch.nn.Module]:
    return [draw(subtrees(depth - 1)) for _ in range(draw(st.integers(low, high)))]


@st.composite
def graphs(draw: st.DrawFn, depth: int) -> fl.Graph:
    """One of a few wirings: a path, two branches joined by a leaf, or a branch beside a skip edge."""
    wiring = draw(st.sampled_from(["path", "branches", "skip"]))
    first, second = draw(subtrees(depth - 1)), draw(subtrees(depth - 1))
    if wiring == "path":
        return fl.Graph({"a": first, "b": second}, edges=["input -> a -> b"])
    join = draw(st.sampled_from([fl.Add, fl.Multiply, lambda: fl.Cat(dim=-1)]))()
    if wiring == "branches":
        return fl.Graph({"a": first, "b": second, "join": join}, edges=["input -> a -> join", "input -> b -> join"])
    return fl.Graph({"a": first, "join": join}, edges=["input -> a -> join", "input -> join"])


KINDS = [
    "chain",
    "passthrough",
    "residual",
    "sum",
    "parallel",
    "distribute",
    "concatenate",
    "matmul",
    "graph",
    "tokens",
]


@st.composite
def subtrees(draw: st.DrawFn, depth: int = 3) -> torch.nn.Module:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(leaves())
    kind = draw(st.sampled_from(KINDS))
    if kind == "matmul":
        return fl.Matmul(draw(subtrees(depth - 1)), draw(subtrees(depth - 1)))
    if kind == "graph":
        return draw(graphs(depth))
    if kind == "concatenate":
        return fl.Concatenate(*children(draw, depth), dim=draw(st.integers(-3, 2)))
    composites: dict[str, Callable[..., fl.Chain]] = {
        "chain": fl.Chain,
        "passthrough": fl.Passthrough,
        "residual": fl.Residual,
        "sum": fl.Sum,
        "parallel": fl.Parallel,
        "distribute": fl.Distribute,
        "tokens": fl.Tokens2d,
    }
    # An empty Sum gives None, which the forwards of Sum and of the Chain around pass on where rules refuse it
    return composites[kind](*children(draw, depth, low=1 if kind == "sum" else 0))


@st.composite
def models(draw: st.DrawFn) -> fl.Chain:
    """A Chain of random subtrees, with LoRAs (rank 1) injected into its Linears and Conv2ds now and then."""
    model = fl.Chain(*[draw(subtrees()) for _ in range(draw(st.integers(1, 3)))])
    if draw(st.integers(0, 3)) == 0:
        try:
            event(f"{len(lora.inject(model, rank=1, init='gaussian'))} LoRA(s)")
        except AdapterError:  # nothing to adapt
            event("no layer for a LoRA")
    return model.eval()


@st.composite
def input_shapes(draw: st.DrawFn) -> tuple[int, ...]:
    """Rank 1 to 4; the last dim and dim -3 (features, channels) mostly of a feature size."""
    rank = draw(st.integers(1, 4))
    sizes = [draw(SIZES) for _ in range(rank)]
    for position in (-1, -3):
        if rank >= -position and draw(st.integers(0, 4)) > 0:
            sizes[position] = draw(FEATURES)
    if sizes == [0]:  # torch.cat skips a 1-d empty tensor whatever its dim (a legacy rule that fluxion's does not copy)
        sizes = [draw(FEATURES)]
    return tuple(sizes)


def shape_of(output: Any) -> Any:
    """A forward's output as plain shapes: a tuple of ints for a tensor, tuples of those, or None."""
    if output is None:
        return None
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    assert isinstance(output, tuple), f"unexpected output {type(output).__name__}"
    return tuple(shape_of(item) for item in output)  # pyright: ignore[reportUnknownVariableType]


def forward_passes_non_tensors(model: torch.nn.Module, size: tuple[int, ...]) -> bool:
    """Whether the forward hands something else than a tensor to an Identity (torch's passes anything
    on, where the rule takes one tensor) or, from one of its children, to a Sum of several (its
    forward adds what Python can: tuples concatenate, a None counts as nothing, where the rule
    refuses): looseness of those forwards, not disagreements of the combinators' rules."""
    seen: list[object] = []

    def record_input(module: torch.nn.Module, args: tuple[object, ...]) -> None:
        if len(args) != 1 or not isinstance(args[0], torch.Tensor):
            seen.append(args)

    def record_output(module: torch.nn.Module, args: object, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            seen.append(output)

    handles = [
        node.register_forward_pre_hook(record_input) for node in model.modules() if isinstance(node, fl.Identity)
    ]
    handles += [
        child.register_forward_hook(record_output)
        for node in model.modules()
        if isinstance(node, fl.Sum) and len(node) > 1
        for child in node.children()
    ]
    try:
        with torch.no_grad():
            model(torch.randn(size))
    except Exception:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return bool(seen)


def check(model: torch.nn.Module, size: tuple[int, ...]) -> str:
    """Compare the inferred shape with the forward's; "accepted" or "refused" (by the inference)."""
    try:
        report = shapes.infer(model, size)
    except ShapeError as refusal:
        try:
            with torch.no_grad():
                output = model(torch.randn(size))
        except Exception:  # the forward may fail in any way; it must fail
            return "refused"
        raise AssertionError(
            f"{model}\ninput {size}: refused ({refusal}), yet the forward gave {shape_of(output)}"
        ) from None
    with torch.no_grad():
        output = model(torch.randn(size))
    assert shape_of(output) == evaluate(report.output, {}), f"{model}\ninput {size}"
    return "accepted"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models(), size=input_shapes())
def test_shape_rules_match_the_forward(model: fl.Chain, size: tuple[int, ...]) -> None:
    assume(not forward_passes_non_tensors(model, size))
    event(check(model, size))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (fl.Identity, fl.Identity),  # vector . vector: a number
        (fl.Identity, lambda: fl.Unsqueeze(-1)),  # vector @ matrix
        (lambda: fl.Unsqueeze(0), fl.Identity),  # matrix @ vector
    ],
)
def test_matmul_takes_vectors_as_torch_matmul_does(
    left: Callable[[], torch.nn.Module], right: Callable[[], torch.nn.Module]
) -> None:
    # Matmul's rule refused operands of rank 1, which torch.matmul (its forward) takes.
    model = fl.Chain(fl.Matmul(left(), right()))
    check(model, (3,))
    assert shapes.infer(model, (3,)).output == tuple(model(torch.zeros(3)).shape)


def test_a_sum_of_one_child_gives_that_child_s_output() -> None:
    # The forward returns a single child's output as it is (a tuple too); the rule refused a non-tensor.
    model = fl.Chain(fl.Sum(fl.Parallel(fl.Linear(3, 2), fl.Identity())))
    check(model, (4, 3))
    assert evaluate(shapes.infer(model, (4, 3)).output, {}) == ((4, 2), (4, 3))
