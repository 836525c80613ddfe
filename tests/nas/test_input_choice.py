"""``fluxion.nas.InputChoice``: the sum of its inputs, weighted by its own softmax when it learns,
the inputs at fixed positions, ``keep`` inputs drawn at random; errors that name the join."""

import json
import re
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import nas, shapes, spec
from fluxion.errors import FluxionError, NasError


def random_inputs(count: int, shape: tuple[int, ...] = (2, 3)) -> list[torch.Tensor]:
    return [torch.randn(shape) for _ in range(count)]


def added(values: list[torch.Tensor]) -> torch.Tensor:
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 6), data=st.data(), seed=st.integers(0, 2**16))
def test_without_weights_of_its_own_it_adds_every_input(count: int, data: st.DataObject, seed: int) -> None:
    torch.manual_seed(seed)
    keep = data.draw(st.integers(1, count))
    given_count = data.draw(st.sampled_from([None, count]))
    join = nas.InputChoice(keep=keep, count=given_count)
    values = random_inputs(count)
    assert torch.equal(join(*values), added(values))
    assert list(join.parameters()) == []


def test_learning_joins_weight_their_inputs_by_the_softmax_of_their_alphas() -> None:
    torch.manual_seed(0)
    join = nas.InputChoice(keep=2, count=4, learn=True)
    with torch.no_grad():
        join.alphas.copy_(torch.tensor([0.3, -1.0, 2.0, 0.0]))  # pyright: ignore[reportOptionalMemberAccess]
    values = [value.requires_grad_() for value in random_inputs(4)]
    output = join(*values)
    probabilities = torch.softmax(join.alphas, dim=0)  # pyright: ignore[reportArgumentType]
    expected = added([probability * value for probability, value in zip(probabilities, values, strict=True)])
    assert torch.allclose(output, expected, rtol=1e-6, atol=1e-7)
    output.sum().backward()
    assert join.alphas is not None
    assert join.alphas.grad is not None
    assert join.alphas.grad.abs().sum() > 0
    assert [name for name, _ in nas.named_arch_parameters(fl.Chain(join=join))] == ["join.alphas"]


def test_fixed_positions_add_those_inputs_only() -> None:
    values = random_inputs(4)
    join = nas.InputChoice(keep=2)
    join.choose([3, 1])
    assert (join.mode, join.chosen) == ("fixed", (3, 1))
    assert torch.equal(join(*values), values[3] + values[1])
    learned = nas.InputChoice(keep=1, count=4, learn=True, mode="fixed", chosen=[2])
    assert torch.equal(learned(*values), values[2])  # fixed: its own weights play no part


def test_fixed_positions_past_the_inputs_given_are_a_nas_error_naming_the_join() -> None:
    model = fl.Chain(cells=fl.Chain(join=nas.InputChoice(keep=2, mode="fixed", chosen=[0, 3])))
    with pytest.raises(NasError, match=re.escape("InputChoice at 'cells.join': chosen [0, 3] but it got 2 inputs")):
        model.cells.join(*random_inputs(2))


def test_sample_mode_adds_keep_distinct_inputs_drawn_at_random() -> None:
    torch.manual_seed(0)
    join = nas.InputChoice(keep=2, count=4, mode="sample")
    values = [torch.full((1,), float(2**position)) for position in range(4)]  # each subset has its own sum
    seen: set[frozenset[int]] = set()
    for _ in range(200):
        total = int(join(*values).item())
        picked = frozenset(position for position in range(4) if total & (1 << position))
        assert len(picked) == 2
        seen.add(picked)
    assert len(seen) == 6  # every pair of four is drawn


def test_modes_are_set_and_recorded() -> None:
    join = nas.InputChoice(keep=1, count=3)
    join.set_mode("sample")
    assert (join.mode, join.chosen) == ("sample", None)
    join.set_mode("fixed", chosen=(2,))
    assert (join.mode, join.chosen) == ("fixed", (2,))
    join.set_mode("softmax")
    assert (join.mode, join.chosen) == ("softmax", None)
    assert repr(join) == "InputChoice(keep=1, count=3)"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"keep": 0}, "InputChoice: keep is the number of inputs to keep (1 or more), got 0"),
        ({"keep": True}, "keep is the number of inputs to keep (1 or more), got True"),
        ({"keep": 3, "count": 2}, "InputChoice: count (2) is the number of inputs, at least keep (3)"),
        ({"keep": 1, "learn": True}, "learn=True needs count, the number of inputs (one weight each)"),
        ({"keep": 1, "mode": "gumbel"}, "unknown mode 'gumbel'; modes: softmax, sample, fixed"),
        ({"keep": 1, "mode": "fixed"}, "mode 'fixed' needs the input positions it keeps: chosen=[...]"),
        ({"keep": 1, "mode": "fixed", "chosen": []}, "chosen is a list of distinct input positions, got []"),
        ({"keep": 2, "mode": "fixed", "chosen": [1, 1]}, "chosen is a list of distinct input positions, got [1, 1]"),
        ({"keep": 1, "mode": "fixed", "chosen": [-1]}, "distinct input positions, got [-1]"),
        ({"keep": 1, "count": 3, "mode": "fixed", "chosen": [3]}, "chosen [3] names an input past its 3"),
    ],
)
def test_bad_arguments_are_nas_errors(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(NasError, match=re.escape(message)):
        nas.InputChoice(**arguments)  # pyright: ignore[reportArgumentType]


def test_a_bad_mode_names_the_join_by_address_and_changes_nothing() -> None:
    model = fl.Chain(cell=fl.Chain(state_2=nas.InputChoice(keep=2, mode="sample")))
    join = model.cell.state_2
    with pytest.raises(NasError, match=re.escape("InputChoice at 'cell.state_2': unknown mode 'max'")):
        join.set_mode("max")  # pyright: ignore[reportArgumentType]
    assert join.mode == "sample"


@pytest.mark.parametrize(
    ("keep", "count", "given", "message"),
    [
        (2, None, 1, "expects at least 2 inputs, got 1"),
        (2, 3, 2, "expects 3 inputs, got 2"),
        (1, 3, 4, "expects 3 inputs, got 4"),
    ],
)
def test_the_wrong_number_of_inputs_is_a_nas_error_naming_the_join(
    keep: int, count: int | None, given: int, message: str
) -> None:
    model = fl.Chain(cells=fl.Chain(join=nas.InputChoice(keep=keep, count=count)))
    with pytest.raises(NasError, match=re.escape(f"InputChoice at 'cells.join': {message}")):
        model.cells.join(*random_inputs(given))
    with pytest.raises(NasError, match=re.escape(f"InputChoice at 'cells.join': {message}")):
        model.cells.join.output_shape(*[shapes.Shape(["B", 3]) for _ in range(given)])


def test_in_a_graph_the_error_names_the_node() -> None:
    graph = fl.Graph(
        {"a": fl.Linear(3, 3), "b": fl.Linear(3, 3), "state_2": nas.InputChoice(keep=1, count=3)},
        edges=["x -> a -> state_2", "x -> b -> state_2"],
        inputs=("x",),
    )
    with pytest.raises(FluxionError, match=re.escape("InputChoice at 'state_2': expects 3 inputs, got 2")):
        graph(torch.randn(2, 3))


def test_its_shape_is_the_broadcast_of_its_inputs() -> None:
    graph = fl.Graph(
        {"a": fl.Linear(3, 4), "b": fl.Linear(3, 4), "join": nas.InputChoice(keep=1)},
        edges=["x -> a -> join", "x -> b -> join"],
        inputs=("x",),
    )
    assert str(shapes.infer(graph, ("B", 3)).output) == "(B, 4)"
    mismatched = fl.Graph(
        {"a": fl.Linear(3, 4), "b": fl.Linear(3, 5), "join": nas.InputChoice(keep=1)},
        edges=["x -> a -> join", "x -> b -> join"],
        inputs=("x",),
    )
    with pytest.raises(shapes.ShapeError):
        shapes.infer(mismatched, ("B", 3))


@pytest.mark.parametrize(
    "join",
    [
        nas.InputChoice(keep=2),
        nas.InputChoice(keep=1, count=3, learn=True),
        nas.InputChoice(keep=2, count=3, mode="sample"),
        nas.InputChoice(keep=2, count=4, learn=True, mode="fixed", chosen=[3, 0]),
    ],
)
def test_a_spec_round_trip_keeps_keep_count_learning_mode_and_positions(join: nas.InputChoice) -> None:
    loaded = spec.loads(json.dumps(spec.dump(fl.Chain(join=join)))).join
    assert isinstance(loaded, nas.InputChoice)
    assert (loaded.keep, loaded.count, loaded.learn, loaded.mode, loaded.chosen) == (
        join.keep,
        join.count,
        join.learn,
        join.mode,
        join.chosen,
    )
    assert (loaded.alphas is None) == (join.alphas is None)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: nas.InputChoice(keep=1, count="3"), "count ('3') is the number of inputs"),
        (lambda: nas.InputChoice(keep=1, mode="fixed", chosen=["a"]), "chosen is a list of input positions, got ['a']"),
        (lambda: nas.InputChoice(keep=1, mode="fixed", chosen=1), "chosen is a list of input positions, got 1"),
    ],
)
def test_arguments_of_the_wrong_type_are_nas_errors(build: Any, message: str) -> None:
    with pytest.raises(nas.NasError, match=re.escape(message)):
        build()
