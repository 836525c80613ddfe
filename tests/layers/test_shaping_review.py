"""The shaping rules' divisibility on a flattened map of side 2*S + 2, (2*S + 2)**2 elements, which
sympy takes for a multiple of 6: Reshape, Unflatten and Chunk state the constraint, as torch
refuses or splits unevenly."""

from collections.abc import Iterator

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims, shapes

SPLITS = {
    "Reshape": lambda: fl.Reshape(-1, 6),
    "Unflatten": lambda: fl.Unflatten(1, (-1, 6)),
    "Chunk": lambda: fl.Chunk(6, dim=1),
}


def sizes_of(value: dims.ShapeValue) -> Iterator[dims.Dim]:
    if isinstance(value, dims.Shape):
        yield from value
    elif value is not None:
        for item in dims.parts(value):
            yield from sizes_of(item)


def square_map_split(name: str) -> torch.nn.Module:
    return fl.Chain(fl.ConvTranspose2d(1, 1, 4, stride=2), fl.Flatten(1), SPLITS[name]())


def test_torch_does_not_split_sixteen_elements_into_even_sixes() -> None:
    for name in ("Reshape", "Unflatten"):
        with pytest.raises(RuntimeError):
            square_map_split(name)(torch.randn(1, 1, 1, 1))  # S = 1: a 4x4 map, 16 elements
    pieces = square_map_split("Chunk")(torch.randn(1, 1, 1, 1))
    assert [piece.shape[1] for piece in pieces] == [3, 3, 3, 3, 3, 1]


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_a_split_of_a_flattened_square_map_states_its_divisibility(name: str) -> None:
    report = shapes.infer(square_map_split(name), ("B", 1, "S", "S"))
    assert name in [constraint.address for constraint in report.constraints], report.output
    at_two = dims.substitute_shape(report.output, {"B": 1, "S": 2})  # 36 elements: six sixes
    assert all(isinstance(size, int) for size in sizes_of(at_two)), at_two
