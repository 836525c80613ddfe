"""What the zoo tests share: where the example specs are, and shapes inferred against shapes seen."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fluxion import shapes
from tests.shapes.helpers import evaluate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

ATOL = 1e-5
"""How far the spec-built model's outputs may be from the reference's (eval mode, float32)."""


def actual_shapes(value: Any) -> Any:
    """The shape of a traced output (a tensor, or a tuple of them) as plain tuples of integers."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, tuple | list):
        return tuple(actual_shapes(item) for item in value)  # pyright: ignore[reportUnknownVariableType]
    return value


def assert_inferred_shapes_are_real(
    model: torch.nn.Module, report: shapes.ShapeReport, values: Mapping[str, int], *inputs: Any
) -> int:
    """Every node's inferred output, at ``values`` for its symbols, is the shape the real forward gives.

    Returns the number of nodes compared.
    """
    traced = shapes.trace(model, *inputs)
    assert set(traced) == set(report), "the report and the forward pass saw different nodes"
    for address, output in traced.items():
        expected = evaluate(report[address].output, values)
        assert actual_shapes(output) == expected, f"{address!r}: inferred {expected}, ran {actual_shapes(output)}"
    return len(traced)
