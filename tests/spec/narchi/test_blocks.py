"""narchi's leaf blocks as fluxion nodes: renamed arguments, the blocks that need more than a rename
(Concatenate, Reshape, LSTM/GRU/RNN), and errors that name narchi's keys and JSON paths."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from fluxion.errors import SpecError
from fluxion.spec import registry
from fluxion.spec.narchi.blocks import (
    LEAVES,
    SUPPORTED,
    UNSUPPORTED,
    leaf,
    refuse_variables,
    reshape_steps,
    unknown_class,
)
from tests.shapes.helpers import evaluate

HERE = ["blocks", 2]
NARCHI = Path(__file__).parent


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
        ("AdaptiveAvgPool2d", {"output_size": 3}, {"type": "AdaptiveAvgPool2d", "output_size": 3}),
        ("AdaptiveAvgPool1d", {"output_feats": 4}, {"type": "AdaptiveAvgPool1d", "output_size": 4}),
        ("AdaptiveMaxPool1d", {"output_feats": 4}, {"type": "AdaptiveMaxPool1d", "output_size": 4}),
        ("AdaptiveMaxPool2d", {"output_feats": [1, 2]}, {"type": "AdaptiveMaxPool2d", "output_size": [1, 2]}),
        ("MaxPool1d", {"kernel_size": 3, "stride": 2}, {"type": "MaxPool1d", "kernel_size": 3, "stride": 2}),
        ("MaxPool3d", {"kernel_size": [1, 2, 2]}, {"type": "MaxPool3d", "kernel_size": [1, 2, 2]}),
        ("AvgPool1d", {"kernel_size": 2, "padding": 1}, {"type": "AvgPool1d", "kernel_size": 2, "padding": 1}),
        (
            "AvgPool3d",
            {"kernel_size": 2, "ceil_mode": True},
            {"type": "AvgPool3d", "kernel_size": 2, "ceil_mode": True},
        ),
        ("LogSoftmax", {"dim": -1}, {"type": "LogSoftmax", "dim": -1}),
        ("LogSigmoid", {}, {"type": "LogSigmoid"}),
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
    error = refused("Linear", {"output_size": 2.5})  # narchi's former name, named as written
    assert error.path == "blocks[2].output_size"


@pytest.mark.parametrize(
    ("narchi_class", "block", "path", "message"),
    [
        ("AdaptiveAvgPool1d", {}, "blocks[0]", "AdaptiveAvgPool1d needs output_feats (its output size)"),
        ("AdaptiveMaxPool2d", {"output_feats": [1, 2, 3]}, "blocks[0].output_feats", "a list of 2 int or null"),
        ("AdaptiveMaxPool1d", {"output_feats": -1}, "blocks[0]", "output_size must be an int or a tuple of 1"),
        ("AdaptiveAvgPool2d", {"output_feats": 2, "output_size": 2}, "blocks[0].output_size", "give one of them"),
        ("MaxPool1d", {}, "blocks[0]", "MaxPool1d needs argument 'kernel_size'"),
        ("MaxPool1d", {"kernel_size": [2, 2]}, "blocks[0].kernel_size", "an int or a list of 1 ints, got [2, 2]"),
        ("MaxPool3d", {"kernel_size": 3, "padding": 2}, "blocks[0]", "padding must be at most half the kernel size"),
        ("AvgPool1d", {"kernel_size": 2, "divisor_override": 2}, "blocks[0].divisor_override", "has no argument"),
        ("AvgPool3d", {"kernel_size": 2, "divisor_override": 0}, "blocks[0]", "divisor_override must not be 0"),
        ("AvgPool3d", {"kernel_size": 2, "stride": 0}, "blocks[0]", "stride must be at least 1, got 0"),
        ("LogSoftmax", {"dim": 1.5}, "blocks[0].dim", "expected an int, got 1.5"),
    ],
)
def test_a_pool_or_activation_with_arguments_torch_refuses_is_refused_at_narchis_path(
    narchi_class: str, block: dict[str, Any], path: str, message: str
) -> None:
    document = {
        "blocks": [{"_class": narchi_class, "_id": "b", **block}],
        "graph": ["x -> b -> y"],
        "inputs": [{"_id": "x", "_shape": [3, 8, 8]}],
        "outputs": [{"_id": "y", "_shape": ["<<auto>>"]}],
    }
    with pytest.raises(SpecError) as caught:
        spec.loads(document)
    assert caught.value.path == path
    assert message in caught.value.reason


# -- classes that do not translate ------------------------------------------------------------------


def test_a_class_without_fluxion_equivalent_says_why_and_what_to_do() -> None:
    error = refused("CRF", {})
    assert error.path == "blocks[2]._class"
    assert error.reason.startswith("narchi's CRF has no fluxion equivalent: narchi defines only its shape")
    assert "register a layer of your own under that name (fluxion.spec.register)" in error.reason


def test_every_class_narchis_propagators_know_translates_but_crf() -> None:
    known = {
        *("Sigmoid", "LogSigmoid", "Softmax", "LogSoftmax", "Tanh", "ReLU", "LeakyReLU", "Dropout"),
        *("BatchNorm2d", "Identity", "Add", "CRF", "Concatenate", "Linear", "Embedding"),
        *(f"Adaptive{kind}Pool{n}d" for kind in ("Avg", "Max") for n in (1, 2)),
        *(f"{kind}{n}d" for kind in ("Conv", "MaxPool", "AvgPool") for n in (1, 2, 3)),
        *("RNN", "LSTM", "GRU", "Reshape", "Sequential", "Group", "Module"),
    }
    assert known - set(SUPPORTED) == set(UNSUPPORTED) == {"CRF"}


def test_a_crf_registered_by_the_user_is_read() -> None:
    @spec.register(name="CRF")
    class Tags(fl.Module):  # a stand-in: the best tag per position, narchi's shape (the last dim consumed)
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.argmax(-1)

    try:
        assert leaf("CRF", {"_class": "CRF"}, HERE) == {"type": "CRF"}
    finally:
        registry._builtins().pop("CRF")  # pyright: ignore[reportPrivateUsage]
    assert "has no fluxion equivalent" in refused("CRF", {}).reason


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


# -- every pool and activation narchi knows, through a narchi file, against torch's own module ---------

Reference = torch.nn.Module

POOLS_AND_ACTIVATIONS: list[Any] = [
    pytest.param({"_class": "MaxPool1d", "kernel_size": 3, "stride": 2, "padding": 1}, [4, "T"], nn.MaxPool1d(3, 2, 1)),
    pytest.param(
        {"_class": "MaxPool1d", "kernel_size": 2, "ceil_mode": True}, [4, "T"], nn.MaxPool1d(2, ceil_mode=True)
    ),
    pytest.param({"_class": "MaxPool2d", "kernel_size": 2}, [2, "T", 5], nn.MaxPool2d(2)),
    pytest.param(
        {"_class": "MaxPool3d", "kernel_size": [1, 2, 2], "dilation": [1, 2, 1]},
        [2, "T", 6, 5],
        nn.MaxPool3d((1, 2, 2), dilation=(1, 2, 1)),
    ),
    pytest.param(
        {"_class": "AvgPool1d", "kernel_size": 2, "count_include_pad": False, "padding": 1},
        [3, "T"],
        nn.AvgPool1d(2, padding=1, count_include_pad=False),
    ),
    pytest.param({"_class": "AvgPool2d", "kernel_size": 3, "stride": 1}, [2, "T", 4], nn.AvgPool2d(3, 1)),
    pytest.param(
        {"_class": "AvgPool3d", "kernel_size": 2, "ceil_mode": True, "divisor_override": 3},
        [2, "T", 3, 4],
        nn.AvgPool3d(2, ceil_mode=True, divisor_override=3),
    ),
    pytest.param({"_class": "AdaptiveAvgPool1d", "output_feats": 3}, [4, "T"], nn.AdaptiveAvgPool1d(3)),
    pytest.param({"_class": "AdaptiveAvgPool2d", "output_feats": [2, 1]}, [4, "T", 3], nn.AdaptiveAvgPool2d((2, 1))),
    pytest.param({"_class": "AdaptiveMaxPool1d", "output_feats": 2}, [4, "T"], nn.AdaptiveMaxPool1d(2)),
    pytest.param({"_class": "AdaptiveMaxPool2d", "output_feats": [1, 3]}, [4, 3, "T"], nn.AdaptiveMaxPool2d((1, 3))),
    pytest.param({"_class": "LogSoftmax", "dim": -1}, ["T", 6], nn.LogSoftmax(-1)),
    pytest.param({"_class": "LogSoftmax", "dim": 1}, ["T", 6], nn.LogSoftmax(1)),  # torch's dim, as narchi passes it
    pytest.param({"_class": "LogSigmoid"}, ["T", 6], nn.LogSigmoid()),
]


def one_block(block: dict[str, Any], shape: list[Any]) -> dict[str, Any]:
    """A narchi architecture of ``block`` alone, its input of ``shape`` (strings are narchi variables)."""
    sizes = [f"<<variable:{size}>>" if isinstance(size, str) else size for size in shape]
    return {
        "blocks": [{**block, "_id": "b"}],
        "graph": ["x -> b -> y"],
        "inputs": [{"_id": "x", "_shape": sizes}],
        "outputs": [{"_id": "y", "_shape": ["<<auto>>"]}],
    }


@pytest.mark.parametrize(("block", "shape", "reference"), POOLS_AND_ACTIVATIONS)
def test_a_narchi_block_computes_what_torchs_module_computes_with_the_shape_its_rule_says(
    block: dict[str, Any], shape: list[Any], reference: Reference
) -> None:
    model = spec.loads(one_block(block, shape))
    assert not list(model.parameters())
    report = shapes.infer(model, ("B", *shape))
    for size in range(1, 12):
        x = torch.randn(2, *(size if isinstance(item, str) else item for item in shape))
        try:
            expected = reference(x)
        except RuntimeError:
            continue  # too small for the window; the rule's refusal is tested in tests/layers
        assert evaluate(report.output, {"B": 2, "T": size}) == tuple(expected.shape)
        assert torch.equal(model(x), expected), f"{block} at T={size}"


def test_a_narchi_file_with_every_pool_runs_with_the_shapes_its_rules_say() -> None:
    """narchi's text and image classifier habit: Conv1d + MaxPool1d along tokens, with 2d and 3d pools
    beside them, and log-probabilities out."""
    model = spec.load(NARCHI / "text_image_clip.jsonnet", ext_vars={"vocabulary": 50})
    assert isinstance(model, fl.Graph)
    kinds = {type(node).__name__ for node in model.modules()}
    pools = {f"{kind}Pool{n}d" for kind in ("Max", "Avg") for n in (1, 2, 3)} - {"AvgPool2d"}
    assert pools | {"AdaptiveAvgPool1d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "LogSoftmax", "LogSigmoid"} <= kinds
    report = shapes.infer(model, tokens=("B", "L"), image=("B", 3, "H", "W"), clip=("B", 3, "F", 16, 16))
    assert report["text.pool1"].output == dims.Shape(["B", 24, dims.floordiv(dims.dim("L"), 2)])
    assert report["motion.smooth"].output == dims.Shape(["B", 4, "F", 4, 4])
    model.eval()
    for length, height, width, frames in [(11, 9, 13, 5), (2, 2, 3, 1), (30, 16, 16, 2)]:
        at = {"B": 3, "L": length, "H": height, "W": width, "F": frames}
        tokens = torch.randint(0, 50, (3, length))
        topic, quality = model(tokens, torch.randn(3, 3, height, width), torch.randn(3, 3, frames, 16, 16))
        assert evaluate(report.output, at) == (tuple(topic.shape), tuple(quality.shape)) == ((3, 5), (3, 1))
        assert torch.allclose(topic.exp().sum(-1), torch.ones(3))
        assert (quality <= 0).all()


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
