"""narchi's leaf blocks as fluxion nodes: renamed arguments, the blocks that need more than a rename
(Concatenate, Reshape, LSTM/GRU/RNN), and errors that name narchi's keys and JSON paths."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import spec
from fluxion.errors import SpecError
from fluxion.spec import registry
from fluxion.spec.narchi_blocks import (
    LEAVES,
    SUPPORTED,
    UNSUPPORTED,
    leaf,
    refuse_variables,
    reshape_steps,
    unknown_class,
)

HERE = ["blocks", 2]


def refused(narchi_class: str, block: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as caught:
        leaf(narchi_class, {"_class": narchi_class, **block}, HERE)
    return caught.value


def test_every_renamed_leaf_names_a_registered_fluxion_class() -> None:
    for name, table in LEAVES.items():
        assert registry.lookup(table.fluxion).__name__ == table.fluxion, name
        assert set(table.needs) <= {*table.renames, "kernel_size"}
    assert not set(UNSUPPORTED) & set(SUPPORTED)


@pytest.mark.parametrize(
    ("narchi_class", "block", "node"),
    [
        ("Linear", {"output_feats": 10, "bias": False}, {"type": "Linear", "out_features": 10, "bias": False}),
        ("Linear", {"output_size": 10}, {"type": "Linear", "out_features": 10}),  # narchi's former name
        (
            "Embedding",
            {"output_feats": 4, "num_embeddings": 9},
            {"type": "Embedding", "embedding_dim": 4, "num_embeddings": 9},
        ),
        ("Conv1d", {"output_feats": 4, "kernel_size": 3}, {"type": "Conv1d", "out_channels": 4, "kernel_size": 3}),
        ("AdaptiveAvgPool2d", {"output_feats": [2, 2]}, {"type": "AdaptiveAvgPool2d", "output_size": [2, 2]}),
        ("ReLU", {}, {"type": "ReLU"}),
        ("Softmax", {"dim": -1}, {"type": "Softmax", "dim": -1}),
        ("GeLU", {"approximate": "tanh"}, {"type": "GeLU", "approximate": "tanh"}),  # a fluxion leaf narchi lacks
    ],
)
def test_a_leaf_block_becomes_a_fluxion_node_with_torchs_argument_names(
    narchi_class: str, block: dict[str, Any], node: dict[str, Any]
) -> None:
    with_metadata = {"_class": narchi_class, "_id": "x", "_name": "n", "_description": "d", "_shape": {}, **block}
    assert leaf(narchi_class, with_metadata, HERE) == node


def test_auto_leaves_an_argument_out_to_be_inferred() -> None:
    block = {"_class": "Conv2d", "output_feats": 8, "kernel_size": 3, "bias": "<<auto>>", "padding": "<<auto>>"}
    assert leaf("Conv2d", block, HERE) == {"type": "Conv2d", "out_channels": 8, "kernel_size": 3}
    assert "Linear needs output_feats" in refused("Linear", {"output_feats": "<<auto>>"}).reason


@pytest.mark.parametrize(
    ("narchi_class", "block", "path", "message"),
    [
        ("Linear", {}, "blocks[2]", "Linear needs output_feats (its output size)"),
        ("Conv2d", {"output_feats": 4}, "blocks[2]", "Conv2d needs kernel_size"),
        ("Linear", {"output_feats": 4, "output_size": 4}, "blocks[2].output_size", "former name of output_feats"),
        ("Linear", {"output_feats": 4, "out_features": 4}, "blocks[2].out_features", "out_features is given twice"),
        ("Linear", {"output_feats": "4"}, "blocks[2].output_feats", 'expected an int or null, got "4"'),
        (
            "Conv2d",
            {"output_feats": 4, "kernel_size": 3, "kernal_size": 3},
            "blocks[2].kernal_size",
            "did you mean kernel_size?",
        ),
        ("ReLU", {"blocks": []}, "blocks[2].blocks", "blocks belongs to a Sequential or a Group, not to a ReLU"),
        ("ReLU", {"graph": []}, "blocks[2].graph", "graph belongs to a Group"),
        ("Linear", {"output_feats": 2, "reshape_spec": [0]}, "blocks[2].reshape_spec", "belongs to a Reshape"),
        ("ReLU", {"_private": 1}, "blocks[2]._private", "_private is not a narchi block key (those are _class,"),
        ("Conv2d", {"output_feats": 4, "kernel_size": "<<variable:K>>"}, "blocks[2].kernel_size", "symbolic sizes"),
        ("Conv2d", {"output_feats": 4, "kernel_size": [3, "<<auto>>"]}, "blocks[2].kernel_size[1]", "a whole argument"),
    ],
)
def test_a_block_that_does_not_translate_names_narchis_key(
    narchi_class: str, block: dict[str, Any], path: str, message: str
) -> None:
    error = refused(narchi_class, block)
    assert error.path == path
    assert message in error.reason


def test_an_error_of_a_renamed_argument_names_it_as_narchi_writes_it() -> None:
    error = refused("Embedding", {"output_feats": 2.5, "num_embeddings": 3})
    assert error.path == "blocks[2].output_feats"
    assert "expected an int, got 2.5" in error.reason


# -- classes that do not translate ------------------------------------------------------------------


def test_a_class_without_fluxion_equivalent_says_so() -> None:
    error = refused("LogSoftmax", {})
    assert error.path == "blocks[2]._class"
    assert error.reason.startswith("narchi's LogSoftmax has no fluxion equivalent yet; narchi classes read: ")


def test_an_unknown_class_names_the_closest_whatever_the_case() -> None:
    assert "unknown narchi class 'conv2D' (closest: Conv2d, Conv3d, Conv1d)" in refused("conv2D", {}).reason
    assert "(closest: LSTM" in refused("lstm", {}).reason
    assert "(closest:" not in refused("Qqqqqq", {}).reason


@pytest.mark.parametrize("container", ["Chain", "Residual", "Parallel", "Graph", "MultiHeadAttention"])
def test_fluxion_containers_are_neither_read_nor_suggested(container: str) -> None:
    error = refused(container, {})
    assert f"unknown narchi class {container!r}" in error.reason
    suggested = error.reason.split("(closest: ")[1].split(")")[0].split(", ") if "(closest: " in error.reason else []
    assert container not in suggested
    for name in suggested:
        assert name in SUPPORTED or not issubclass(registry.lookup(name), fl.Chain)


def test_a_class_registered_by_the_user_is_read_as_a_leaf() -> None:
    @spec.register(name="NarchiBlocksScale")
    class Scale(fl.Module):
        def __init__(self, factor: float = 1.0) -> None:
            super().__init__()
            self.factor = factor

    assert leaf("NarchiBlocksScale", {"factor": 2}, HERE) == {"type": "NarchiBlocksScale", "factor": 2}
    assert "Scale has no argument 'scale'" in refused("NarchiBlocksScale", {"scale": 2}).reason
    assert "NarchiBlocksScale" in str(unknown_class("NarchiBlockScale", HERE))


# -- Concatenate -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dim", "fluxion_dim"), [(0, 1), (2, 3), (-1, -1), (-3, -3)])
def test_concatenate_counts_dims_after_the_batch(dim: int, fluxion_dim: int) -> None:
    assert leaf("Concatenate", {"_class": "Concatenate", "dim": dim}, HERE) == {"type": "Cat", "dim": fluxion_dim}


@pytest.mark.parametrize("dim", [None, True, 1.0, "0"])
def test_concatenate_needs_an_int_dim(dim: object) -> None:
    block = {} if dim is None else {"dim": dim}
    error = refused("Concatenate", block)
    assert error.path == "blocks[2]"
    assert f"Concatenate needs dim, an int (a dim of narchi's shapes), got {dim!r}" in error.reason


# -- recurrent blocks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "node"),
    [
        ({"output_feats": 8}, {"hidden_size": 8, "return_state": False}),
        ({"output_feats": 8, "bidirectional": True}, {"bidirectional": True, "hidden_size": 4, "return_state": False}),
        ({"output_size": 6}, {"hidden_size": 6, "return_state": False}),
        ({"hidden_size": 5}, {"hidden_size": 5, "return_state": False}),
        ({"output_feats": 4, "hidden_size": 4}, {"hidden_size": 4, "return_state": False}),
        ({"output_feats": 4, "output_state": True}, {"hidden_size": 4, "return_state": True}),
        ({"output_feats": 4, "batch_first": True}, {"hidden_size": 4, "return_state": False}),
    ],
)
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_a_recurrent_block_gives_torchs_hidden_size_batch_first(
    kind: str, block: dict[str, Any], node: dict[str, Any]
) -> None:
    assert leaf(kind, {"_class": kind, **block}, HERE) == {"type": kind, **node, "batch_first": True}


@pytest.mark.parametrize(
    ("block", "path", "message"),
    [
        ({}, "blocks[2]", "LSTM needs output_feats (its output size: hidden size × directions)"),
        ({"output_feats": 0}, "blocks[2].output_feats", "expected a positive int, got 0"),
        ({"output_feats": True}, "blocks[2].output_feats", "expected a positive int, got True"),
        ({"output_feats": 7, "bidirectional": True}, "blocks[2].output_feats", "has an even output_feats"),
        ({"output_feats": 4, "bidirectional": "yes"}, "blocks[2].bidirectional", "expected a boolean, got 'yes'"),
        ({"output_feats": 8, "hidden_size": 5}, "blocks[2].hidden_size", "hidden_size 5 disagrees with output_feats 8"),
        ({"output_feats": 4, "batch_first": False}, "blocks[2].batch_first", "batch_first can only be true"),
        ({"output_feats": 4, "output_size": 4}, "blocks[2].output_size", "former name of output_feats"),
        ({"output_feats": 4, "output_state": 1}, "blocks[2].output_state", "expected a boolean, got 1"),
    ],
)
def test_recurrent_blocks_that_do_not_translate(block: dict[str, Any], path: str, message: str) -> None:
    error = refused("LSTM", block)
    assert error.path == path
    assert message in error.reason


def test_a_translated_recurrent_block_builds_and_outputs_narchis_size() -> None:
    node = leaf("LSTM", {"_class": "LSTM", "output_feats": 6, "bidirectional": True}, HERE)
    model = spec.loads({"type": "Chain", "inputs": {"x": ["B", "T", 3]}, "children": [node]})
    assert model(torch.zeros(2, 5, 3)).shape == (2, 5, 6)


# -- Reshape -------------------------------------------------------------------------------------------


def test_reshape_block() -> None:
    assert leaf("Reshape", {"_class": "Reshape", "reshape_spec": "flatten"}, HERE) == {"type": "Flatten"}
    assert leaf("Reshape", {"_class": "Reshape", "reshape_spec": [0, 1]}, HERE) == {"type": "Identity"}
    assert leaf("Reshape", {"_class": "Reshape", "reshape_spec": [1, 0]}, HERE) == {
        "type": "Permute",
        "dims": [0, 2, 1],
    }
    assert leaf("Reshape", {"_class": "Reshape", "reshape_spec": [1, [0, 2]]}, HERE) == {
        "type": "Chain",
        "children": [{"type": "Permute", "dims": [0, 2, 1, 3]}, {"type": "Flatten", "start_dim": 2, "end_dim": 3}],
    }
    error = refused("Reshape", {})
    assert (error.path, error.reason) == ("blocks[2]", "Reshape needs reshape_spec")
    error = refused("Reshape", {"reshape_spec": [0], "dim": 1})
    assert (error.path, error.reason) == ("blocks[2].dim", "Reshape takes reshape_spec only, got dim")


@pytest.mark.parametrize(
    ("reshape_spec", "path", "message"),
    [
        ([], "r", 'a reshape_spec is "flatten" or a list'),
        ("unflatten", "r", 'a reshape_spec is "flatten" or a list'),
        ([True], "r[0]", "got True"),
        ([-1], "r[0]", "got -1"),
        ([[]], "r[0]", "got []"),
        ([0, 0], "r", "reshape_spec must name each input dim once (0 to 1), got [0, 0]"),
        ([0, 2], "r", "must name each input dim once"),
        ([{"a": [2]}], "r[0]", "an unflatten entry is keyed by a dim index, got 'a'"),
        ([{"0": [2], "1": [3]}], "r[0]", "got {"),
        ([{"0": []}], 'r[0]["0"]', "the sizes to unflatten into are a list, got []"),
        ([{"0": 4}], 'r[0]["0"]', "the sizes to unflatten into are a list, got 4"),
        ([{"0": [0, 2]}], 'r[0]["0"][0]', "a size is a positive int or <<auto>>, got 0"),
        ([{"0": ["<<auto>>", "<<auto>>"]}], 'r[0]["0"]', "at most one size is <<auto>>"),
        ([{"0": ["<<variable:W>>", 2]}], 'r[0]["0"][0]', "symbolic sizes"),
    ],
)
def test_a_reshape_spec_that_does_not_translate(reshape_spec: Any, path: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        reshape_steps(reshape_spec, ["r"])
    assert caught.value.path == path
    assert message in caught.value.reason


def run_steps(steps: list[dict[str, Any]], x: torch.Tensor) -> torch.Tensor:
    return spec.loads({"type": "Chain", "children": [{"type": "Identity"}, *steps]})(x)


@st.composite
def reshapes(draw: st.DrawFn) -> tuple[list[Any], list[int], list[list[int]]]:
    """A reshape_spec of reordered dims, some grouped to be flattened: (spec, order, groups)."""
    count = draw(st.integers(1, 4))
    order = draw(st.permutations(range(count)))
    cuts = sorted(draw(st.sets(st.integers(1, count - 1), max_size=count - 1))) if count > 1 else []
    groups = [list(order[start:end]) for start, end in zip([0, *cuts], [*cuts, count], strict=True)]
    reshape_spec = [group[0] if len(group) == 1 and draw(st.booleans()) else group for group in groups]
    return reshape_spec, list(order), groups


@given(reshapes(), st.lists(st.integers(1, 3), min_size=4, max_size=4))
def test_reshape_steps_do_what_the_spec_says(
    case: tuple[list[Any], list[int], list[list[int]]], sizes: list[int]
) -> None:
    reshape_spec, order, groups = case
    x = torch.arange(2 * math.prod(sizes[: len(order)])).reshape(2, *sizes[: len(order)])
    expected = x.permute(0, *(index + 1 for index in order))
    expected = expected.reshape(2, *(math.prod(x.shape[index + 1] for index in group) for group in groups))
    assert torch.equal(run_steps(reshape_steps(reshape_spec, []), x), expected)


def test_unflatten_entries_split_a_dim_and_auto_is_the_rest() -> None:
    x = torch.arange(2 * 12 * 5).reshape(2, 12, 5)
    steps = reshape_steps([1, {"0": [3, "<<auto>>"]}], [])
    assert steps == [
        {"type": "Permute", "dims": [0, 2, 1]},
        {"type": "Unflatten", "dim": 2, "unflattened_size": [3, -1]},
    ]
    assert torch.equal(run_steps(steps, x), x.permute(0, 2, 1).reshape(2, 5, 3, 4))


# -- refuse_variables ----------------------------------------------------------------------------------


def test_refuse_variables_finds_symbolic_sizes_and_auto_anywhere_inside_a_value() -> None:
    for value in (1, "same", [1, [2, {"a": "<<variables>>"}]], {"k": None}, "<<variable:W"):
        refuse_variables(value, ["x"])
    with pytest.raises(SpecError) as caught:
        refuse_variables({"a": [1, {"b": "<<variable:W/8>>"}]}, ["blocks", 0, "arg"])
    assert caught.value.path == "blocks[0].arg.a[1].b"
    with pytest.raises(SpecError, match="<<auto>> stands for a whole argument") as caught:
        refuse_variables([["<<auto>>"]], ["p"])
    assert caught.value.path == "p[0][0]"
