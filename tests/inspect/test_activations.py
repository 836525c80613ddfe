"""The largest activations of a shape report: which nodes count, how they rank, their bytes."""

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.adapters import lora
from fluxion.errors import ShapeError
from fluxion.inspect.activations import Activation, input_symbols, largest_activations


def test_leaves_and_combinators_that_make_tensors_count_plain_chains_do_not() -> None:
    model = fl.Chain(
        block=fl.Chain(fl.Linear(4, 8), fl.ReLU()),
        res=fl.Residual(fl.Linear(8, 8)),
        both=fl.Concatenate(fl.Identity(), fl.Identity(), dim=-1),
    )
    report = shapes.infer(model, ("B", 4))
    found = {activation.address for activation in largest_activations(report, top=100)}
    assert found == {"block.Linear", "block.ReLU", "res", "res.Linear", "both", "both.Identity_1", "both.Identity_2"}


def test_a_lora_makes_a_tensor_of_its_own() -> None:
    model = fl.Chain(fl.Linear(4, 4))
    lora.inject(model, rank=2)
    found = {activation.address for activation in largest_activations(shapes.infer(model, ("B", 4)), top=100)}
    assert {"Linear", "Linear.target", "Linear.down", "Linear.up"} <= found


def test_ranked_at_the_sizes_given_each_symbol_one_by_default() -> None:
    model = fl.Chain(wide=fl.Linear(4, 100), tall=fl.Unflatten(-1, (1, 100)))
    report = shapes.infer(model, ("B", "T", 4))
    assert input_symbols(report) == ["B", "T"]
    ranked = largest_activations(report, {"T": 3})
    assert [(a.address, dims.show(a.elements), a.evaluated) for a in ranked] == [
        ("wide", "100*B*T", 300),
        ("tall", "100*B*T", 300),
    ]
    assert ranked[0] == Activation(
        "wide", "Linear", report["wide"].output, 100 * dims.dim("B") * dims.dim("T"), 300, 1200
    )
    assert largest_activations(report, {"T": 3}, top=1) == ranked[:1]
    assert largest_activations(report, top=0) == []


def test_bytes_follow_the_layers_dtype_and_a_tuple_counts_all_its_tensors() -> None:
    model = fl.Chain(fl.Linear(4, 6).to(torch.float16), fl.Chunk(3, dim=-1))
    report = shapes.infer(model, ("B", 4))
    by_address = {a.address: a for a in largest_activations(report, {"B": 2})}
    assert (by_address["Linear"].evaluated, by_address["Linear"].bytes) == (12, 24)
    assert by_address["Chunk"].evaluated == 12  # three (B, 2) tensors
    assert by_address["Chunk"].bytes == 12 * torch.get_default_dtype().itemsize


@pytest.mark.parametrize(
    ("sizes", "top", "message"),
    [
        ({"B": 0}, 10, "the value of B is a positive whole number, got 0"),
        ({"B": 2.5}, 10, "the value of B is a positive whole number, got 2.5"),
        ({"B": True}, 10, "the value of B is a positive whole number, got True"),
        ({}, -1, "top is a count, 0 or more, got -1"),
        ({}, "3", "top is a count, 0 or more, got '3'"),
    ],
)
def test_bad_sizes_or_top_are_one_shape_error(sizes: dict[str, object], top: object, message: str) -> None:
    report = shapes.infer(fl.Chain(fl.Linear(4, 2)), ("B", 4))
    with pytest.raises(ShapeError, match=message):
        largest_activations(report, sizes, top)  # pyright: ignore[reportArgumentType]
