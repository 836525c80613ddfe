"""The largest activations of a shape report: which nodes count (a tensor once, where it is made), how
they rank, their bytes."""

import warnings
from collections.abc import Callable, Sequence

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, nas, shapes
from fluxion.adapters import lora
from fluxion.errors import ShapeError
from fluxion.inspect.activations import (
    Activation,
    input_symbols,
    largest_activations,
    makes_no_tensor,
    outputs_made,
)
from fluxion.tree import context_of
from tests.inspect.helpers import made_on_cpu


def test_leaves_and_combinators_that_make_tensors_count_plain_chains_do_not() -> None:
    model = fl.Chain(
        block=fl.Chain(fl.Linear(4, 8), fl.ReLU()),
        res=fl.Residual(fl.Linear(8, 8)),
        both=fl.Concatenate(fl.Tanh(), fl.Sigmoid(), dim=-1),
    )
    report = shapes.infer(model, ("B", 4))
    found = {activation.address for activation in largest_activations(report, top=100)}
    assert found == {"block.Linear", "block.ReLU", "res", "res.Linear", "both", "both.Tanh", "both.Sigmoid"}


def test_a_lora_makes_a_tensor_of_its_own() -> None:
    model = fl.Chain(fl.Linear(4, 4))
    lora.inject(model, rank=2)
    found = {activation.address for activation in largest_activations(shapes.infer(model, ("B", 4)), top=100)}
    assert {"Linear", "Linear.target", "Linear.down", "Linear.up"} <= found


def test_ranked_at_the_sizes_given_each_symbol_one_by_default() -> None:
    model = fl.Chain(wide=fl.Linear(4, 100), tall=fl.Tanh())
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


class Thirds(fl.Module):
    """Three new tensors of a third of the input each (unlike Chunk's, which are views of it)."""

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(piece.clone() for piece in input.chunk(3, dim=-1))

    def output_shape(self, *inputs: dims.ShapeValue) -> dims.ShapeValue:
        shape = dims.single(inputs, "Thirds")
        return (dims.Shape([*shape[:-1], shape[-1] // 3]),) * 3


def test_bytes_follow_the_layers_dtype_and_a_tuple_counts_all_its_tensors() -> None:
    model = fl.Chain(fl.Linear(4, 6).to(torch.float16), Thirds())
    report = shapes.infer(model, ("B", 4))
    by_address = {a.address: a for a in largest_activations(report, {"B": 2})}
    assert (by_address["Linear"].evaluated, by_address["Linear"].bytes) == (12, 24)
    assert by_address["Thirds"].evaluated == 12  # three (B, 2) tensors
    assert by_address["Thirds"].bytes == 12 * torch.get_default_dtype().itemsize


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


# -- a tensor counted once: in-place layers and views make none of their own


def listed(model: torch.nn.Module, *shapes_given: tuple[int | str, ...]) -> set[str]:
    report = shapes.infer(model, *shapes_given)
    return {activation.address for activation in largest_activations(report, top=1000)}


def test_in_place_layers_keep_their_input_s_tensor() -> None:
    model = fl.Chain(
        fl.Conv2d(3, 8, 3, padding=1),
        fl.BatchNorm2d(8),
        fl.ReLU(inplace=True),
        fl.Residual(fl.Conv2d(8, 8, 3, padding=1), fl.LeakyReLU(inplace=True)),
        fl.SiLU(inplace=True),
        torch.nn.Hardtanh(inplace=True),  # a torch layer: its inplace is read too
        fl.Dropout(0.1, inplace=True),
        fl.ReLU(),
    )
    found = listed(model, ("B", 3, 8, 8))
    assert found == {"Conv2d", "BatchNorm2d", "Residual", "Residual.Conv2d", "ReLU_2"}
    assert found == made_on_cpu(model, torch.randn(2, 3, 8, 8))


def test_views_keep_their_input_s_tensor() -> None:
    model = fl.Chain(
        fl.Linear(4, 24),
        fl.Unflatten(-1, (2, 12)),
        fl.Transpose(-1, -2),
        fl.Slicing(dim=1, start=2),
        fl.Squeeze(0),
        fl.Unsqueeze(0),
        fl.Permute(1, 2, 0),
        fl.Narrow(0, 0, 8),
        fl.Identity(),
        fl.Tanh(),
        fl.Flatten(1),
        fl.Reshape(2, 1),
        fl.Sigmoid(),
        fl.Chunk(2, dim=1),
    )
    found = listed(model, (1, 4))
    assert found == {"Linear", "Tanh", "Sigmoid"}
    assert found == made_on_cpu(model, torch.randn(1, 4))


def test_layers_that_hand_on_a_tensor_made_elsewhere() -> None:
    model = fl.Chain(
        fl.Linear(4, 8),
        fl.SetContext("skip", "x"),
        fl.Linear(8, 8),
        fl.Parallel(fl.Identity(), fl.UseContext("skip", "x")),
        fl.Get(1),
        fl.Linear(8, 2),
    )
    found = listed(model, ("B", 4))
    assert found == {"Linear_1", "Linear_2", "Linear_3"}
    assert found == made_on_cpu(model, torch.randn(3, 4))


def test_a_tensor_the_model_is_given_is_not_an_activation() -> None:
    model = fl.Chain(fl.ReLU(inplace=True), fl.Flatten(), fl.Linear(12, 2))
    assert listed(model, ("B", 3, 4)) == {"Linear"} == made_on_cpu(model, torch.randn(2, 3, 4))


def test_which_layers_make_no_tensor() -> None:
    assert makes_no_tensor(fl.ReLU(inplace=True))
    assert makes_no_tensor(torch.nn.ReLU(inplace=True))
    assert makes_no_tensor(fl.Add(inplace=True))
    assert not makes_no_tensor(fl.Add())
    assert not makes_no_tensor(fl.ReLU())
    assert makes_no_tensor(torch.nn.Flatten())  # torch's own views too
    assert makes_no_tensor(fl.Chain(fl.Linear(2, 2)))
    for maker in (fl.Residual(), fl.Sum(), fl.Concatenate(), fl.Matmul(fl.Linear(2, 2), fl.Linear(2, 2))):
        assert not makes_no_tensor(maker)


def test_films_output_is_an_activation() -> None:
    model = fl.Chain(fl.FiLM(64, 4))
    report = shapes.infer(model, ("B", 64, 32, 32), ("B", 4))
    assert "FiLM" in [activation.address for activation in largest_activations(report, {"B": 1})]


def test_a_reshape_that_copies_is_an_activation() -> None:
    model = fl.Chain(fl.Linear(8, 8), fl.Permute(0, 2, 1), fl.Reshape(-1))
    permuted = model[1](model[0](torch.randn(2, 16, 8)))
    reshaped = model[2](permuted)
    assert reshaped.untyped_storage().data_ptr() != permuted.untyped_storage().data_ptr()  # torch copied
    assert listed(model, ("B", 16, 8)) == {"Linear", "Reshape"} == made_on_cpu(model, torch.randn(2, 16, 8))


SQUARE = {
    "Linear": lambda: fl.Linear(6, 6),
    "Permute": lambda: fl.Permute(0, 2, 1),
    "Transpose": lambda: fl.Transpose(1, 2),
    "Reshape": lambda: fl.Reshape(6, 6),
    "Flatten+Unflatten": lambda: fl.Chain(fl.Flatten(), fl.Unflatten(1, (6, 6))),
    "ReLU": lambda: fl.ReLU(),
    "ReLU in place": lambda: fl.ReLU(inplace=True),
    "Residual": lambda: fl.Residual(fl.Linear(6, 6)),
    "Identity": lambda: fl.Identity(),
    "Slicing all": lambda: fl.Slicing(dim=1, start=0),
}
"""Layers that take and give (B, 6, 6): views, copies and in-place layers, in any order."""


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(sorted(SQUARE)), min_size=1, max_size=8))
def test_what_is_listed_is_what_torch_makes(names: Sequence[str]) -> None:
    model = fl.Chain(*(SQUARE[name]() for name in names))
    assert listed(model, ("B", 6, 6)) == made_on_cpu(model, torch.randn(2, 6, 6))


def test_token_ids_are_tried_when_the_model_does_not_run_on_floating_point() -> None:
    model = fl.Chain(fl.Embedding(100, 8), fl.Linear(8, 8), fl.ReLU(inplace=True), fl.Transpose(1, 2), fl.Flatten())
    tokens = torch.randint(0, 100, (2, 5))
    assert listed(model, ("B", "T")) == {"Embedding", "Linear", "Flatten"} == made_on_cpu(model, tokens)


class ItemScale(torch.nn.Module):
    """A layer that reads a value out of its input: it cannot run on meta tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x.abs().max().item()

    def output_shape(self, x: dims.ShapeValue) -> dims.ShapeValue:
        return x


def test_a_model_that_cannot_run_on_meta_tensors_is_judged_by_its_classes() -> None:
    model = fl.Chain(fl.Linear(8, 8), ItemScale(), fl.Permute(0, 2, 1), fl.Reshape(-1))
    report = shapes.infer(model, ("B", 16, 8))
    assert outputs_made(report) is None
    # the classes say that a Reshape is a view: what torch does here is not seen
    assert {activation.address for activation in largest_activations(report, top=100)} == {"Linear", "ItemScale"}


def test_looking_leaves_the_model_as_it_was() -> None:
    model = fl.Chain(fl.Linear(4, 8), fl.SetContext("skip", "x"), fl.BatchNorm1d(8), fl.UseContext("skip", "x"))
    report = shapes.infer(model, ("B", 4))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    store = {key: dict(values) for key, values in context_of(model).items()}
    made = outputs_made(report)
    assert made is not None
    assert {address for address, new in made.items() if new} == {"Linear", "BatchNorm1d"}
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())
    assert {value.device.type for value in model.state_dict().values()} == {"cpu"}
    assert {key: dict(values) for key, values in context_of(model).items()} == store
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in model.modules())  # pyright: ignore[reportPrivateUsage]


class ShapeRecorder(torch.nn.Module):
    """Hands on its input, and tells ``record`` the shape of each it is given."""

    def __init__(self, record: Callable[[tuple[int, ...]], None]) -> None:
        super().__init__()
        self.record = record

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.record(tuple(x.shape))
        return x

    def output_shape(self, x: dims.ShapeValue) -> dims.ShapeValue:
        return x


def test_the_run_is_at_sizes_of_its_own_whatever_the_sizes_ranked_at() -> None:
    # a recurrent layer steps through the sequence, on meta tensors too: a long one would only take longer
    seen: list[tuple[int, ...]] = []
    model = fl.Chain(ShapeRecorder(seen.append), fl.LSTM(2, 2, batch_first=True), fl.Get(0))
    report = shapes.infer(model, ("B", "T", 2))
    activations = largest_activations(report, {"B": 3, "T": 5000})
    assert [(activation.address, activation.evaluated) for activation in activations] == [
        ("LSTM", 30012)
    ]  # the output and (h, c)
    assert seen == [(64, 64, 2)]


def test_the_run_is_at_sizes_the_constraints_allow() -> None:
    model = fl.Chain(fl.Linear(6, 6), fl.Reshape(-1, 3), fl.Transpose(1, 2), fl.Reshape(-1))
    report = shapes.infer(model, ("B", "T"))  # T must divide by 3: 66, not 64
    assert outputs_made(report) == {
        "Linear": True,
        "Reshape_1": False,
        "Transpose": False,
        "Reshape_2": True,
        "": False,
    }
    positions = fl.Chain(fl.SequencePositionEmbedding(16, 8), fl.Transpose(1, 2), fl.Reshape(-1))
    report = shapes.infer(positions, ("B", "T", 8))  # T <= 16: run at 8
    assert outputs_made(report) == {
        "SequencePositionEmbedding": True,
        "Transpose": False,
        "Reshape": True,
        "": False,
    }


@pytest.mark.parametrize("norm", ["weight_norm", "spectral_norm"])
def test_a_weight_a_hook_computes_is_left_as_it_was(norm: str) -> None:
    model = fl.Chain(fl.Linear(4, 8), fl.ReLU())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's classic weight_norm is deprecated
        getattr(torch.nn.utils, norm)(model.Linear)
    model(torch.randn(2, 4))
    weight = model.Linear.weight
    largest_activations(shapes.infer(model, ("B", 4)))
    assert model.Linear.weight is weight
    assert model(torch.randn(2, 4)).device.type == "cpu"


def sampling_supernet() -> torch.nn.Module:
    """A supernet whose Choice draws one candidate per call from torch's global generator."""
    choice = nas.Choice(a=fl.Linear(8, 8), b=fl.Chain(fl.Linear(8, 8), fl.ReLU(inplace=True)), c=fl.Identity())
    choice.set_mode("sample")
    return fl.Chain(fl.Linear(4, 8), choice)


def test_looking_leaves_torch_s_random_stream_as_it_was() -> None:
    report = shapes.infer(sampling_supernet(), ("B", 4))
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    largest_activations(report)
    assert torch.equal(torch.rand(4), expected)


def test_candidates_a_sampling_choice_did_not_draw_are_judged_by_their_classes() -> None:
    report = shapes.infer(sampling_supernet(), ("B", 4))
    listed: set[tuple[str, ...]] = set()
    for seed in range(8):
        torch.manual_seed(seed)
        listed.add(tuple(sorted(activation.address for activation in largest_activations(report, top=10))))
    assert listed == {("Choice.a", "Choice.b.Linear", "Linear")}  # the Choice hands on what it drew
