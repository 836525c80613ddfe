"""Each TorchArc class name as a fluxion node: torch.nn classes fluxion has (same outputs, same keys),
lazy ones in fluxion's lazy form, any other torch.nn class as it is, TorchArc's own as fluxion layers."""

from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes
from fluxion.spec import SpecError, registry
from fluxion.spec.torcharc.classes import SAME_AS_TORCH, extra_classes, forward_parameters, leaf

EXAMPLES: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "Linear": ({"in_features": 6, "out_features": 3}, (2, 6)),
    "Conv1d": ({"in_channels": 2, "out_channels": 3, "kernel_size": 3}, (2, 2, 9)),
    "Conv2d": ({"in_channels": 2, "out_channels": 3, "kernel_size": 3, "stride": 2}, (2, 2, 9, 9)),
    "Conv3d": ({"in_channels": 2, "out_channels": 3, "kernel_size": 2}, (2, 2, 5, 5, 5)),
    "ConvTranspose2d": ({"in_channels": 2, "out_channels": 3, "kernel_size": 2}, (2, 2, 4, 4)),
    "BatchNorm1d": ({"num_features": 4}, (3, 4)),
    "BatchNorm2d": ({"num_features": 2}, (3, 2, 4, 4)),
    "LayerNorm": ({"normalized_shape": 6}, (2, 6)),
    "GroupNorm": ({"num_groups": 2, "num_channels": 4}, (2, 4, 3)),
    "RMSNorm": ({"normalized_shape": 6}, (2, 6)),
    "Embedding": ({"num_embeddings": 10, "embedding_dim": 4}, (2, 5)),
    "LSTM": ({"input_size": 6, "hidden_size": 4, "batch_first": True}, (2, 3, 6)),
    "GRU": ({"input_size": 6, "hidden_size": 4}, (3, 2, 6)),
    "RNN": ({"input_size": 6, "hidden_size": 4, "num_layers": 2}, (3, 2, 6)),
    "MaxPool1d": ({"kernel_size": 2}, (2, 2, 8)),
    "MaxPool2d": ({"kernel_size": 2}, (2, 2, 8, 8)),
    "MaxPool3d": ({"kernel_size": 2}, (2, 2, 4, 4, 4)),
    "AvgPool1d": ({"kernel_size": 2}, (2, 2, 8)),
    "AvgPool2d": ({"kernel_size": 3, "stride": 2}, (2, 2, 8, 8)),
    "AvgPool3d": ({"kernel_size": 2}, (2, 2, 4, 4, 4)),
    "AdaptiveAvgPool1d": ({"output_size": 2}, (2, 2, 8)),
    "AdaptiveAvgPool2d": ({"output_size": 1}, (2, 2, 8, 8)),
    "AdaptiveMaxPool1d": ({"output_size": 2}, (2, 2, 8)),
    "AdaptiveMaxPool2d": ({"output_size": [2, 2]}, (2, 2, 8, 8)),
    "Dropout": ({"p": 0.0}, (2, 6)),
    "Flatten": ({}, (2, 3, 4)),
    "Unflatten": ({"dim": 1, "unflattened_size": [2, 3]}, (2, 6)),
    "Identity": ({}, (2, 6)),
    "ReLU": ({}, (2, 6)),
    "LeakyReLU": ({"negative_slope": 0.2}, (2, 6)),
    "SiLU": ({}, (2, 6)),
    "Sigmoid": ({}, (2, 6)),
    "Tanh": ({}, (2, 6)),
    "LogSigmoid": ({}, (2, 6)),
    "PixelShuffle": ({"upscale_factor": 2}, (2, 8, 3, 3)),
    "Upsample": ({"scale_factor": 2.0}, (2, 2, 3, 3)),
}


def _input(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randint(0, 10, shape) if name == "Embedding" else torch.randn(shape)


def test_every_class_fluxion_shares_with_torch_has_an_example() -> None:
    assert set(EXAMPLES) == set(SAME_AS_TORCH)


@pytest.mark.parametrize("name", sorted(SAME_AS_TORCH))
def test_a_class_fluxion_shares_with_torch_computes_torchs_with_torchs_keys(name: str) -> None:
    kwargs, shape = EXAMPLES[name]
    node = leaf(name, kwargs, ["modules", "m"])
    assert node["type"] == name
    ours = registry.lookup(name)(**kwargs)
    theirs = getattr(torch.nn, name)(**kwargs)
    ours.load_state_dict(theirs.state_dict())  # strict: the same keys
    x = _input(name, shape)
    got, expected = ours(x), theirs(x)
    if isinstance(expected, tuple):
        assert torch.equal(got[0], expected[0])
    else:
        assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("name", "kwargs", "shape", "size"),
    [
        ("LazyLinear", {"out_features": 3}, ("B", 7), ("in_features", 7)),
        ("LazyConv1d", {"out_channels": 3, "kernel_size": 3}, ("B", 5, 9), ("in_channels", 5)),
        ("LazyConv2d", {"out_channels": 3, "kernel_size": 3}, ("B", 5, 9, 9), ("in_channels", 5)),
        ("LazyConv3d", {"out_channels": 3, "kernel_size": 1}, ("B", 5, 2, 2, 2), ("in_channels", 5)),
        ("LazyConvTranspose2d", {"out_channels": 3, "kernel_size": 2}, ("B", 5, 4, 4), ("in_channels", 5)),
        ("LazyBatchNorm1d", {}, ("B", 5), ("num_features", 5)),
        ("LazyBatchNorm2d", {"momentum": 0.2}, ("B", 5, 3, 3), ("num_features", 5)),
    ],
)
def test_a_lazy_class_is_fluxions_lazy_form_sized_by_inference(
    name: str, kwargs: dict[str, Any], shape: tuple[Any, ...], size: tuple[str, int]
) -> None:
    node = leaf(name, kwargs, ["modules", "m"])
    assert node == {"type": name.removeprefix("Lazy"), **kwargs}
    layer = registry.lookup(node["type"])(**kwargs)
    model = fl.Chain(layer)
    shapes.materialize(model, shape)
    assert getattr(layer, size[0]) == size[1]


def test_a_lazy_class_fluxion_lacks_and_any_other_torch_class_are_torchs_own() -> None:
    assert leaf("LazyInstanceNorm2d", None, ["modules", "m"]) == {"type": "torch.nn.LazyInstanceNorm2d"}
    assert leaf("GELU", {"approximate": "tanh"}, ["modules", "m"]) == {"type": "torch.nn.GELU", "approximate": "tanh"}
    assert extra_classes({"torch.nn.GELU", "Linear"}) == {"torch.nn.GELU": torch.nn.GELU}


def test_softmax_is_fluxions_only_with_its_dim_given() -> None:
    # without dim torch picks one by the input's rank (dim 1 of a 4-d input), fluxion's the last
    assert leaf("Softmax", {"dim": 1}, ["modules", "m"]) == {"type": "Softmax", "dim": 1}
    assert leaf("Softmax", None, ["modules", "m"]) == {"type": "torch.nn.Softmax"}


def test_torcharcs_merges_take_torcharcs_defaults() -> None:
    assert leaf("MergeConcat", None, ["modules", "m"]) == {"type": "Cat", "dim": 1}
    assert leaf("MergeConcat", {"dim": -1}, ["modules", "m"]) == {"type": "Cat", "dim": -1}
    assert leaf("MergeSum", {"dim": 1}, ["modules", "m"]) == {"type": "Add"}  # stacked then summed: element-wise
    assert leaf("ForkChunk", None, ["modules", "m"]) == {"type": "Chunk", "chunks": 2, "dim": 1}


def test_the_forward_parameters_say_where_keyword_values_go() -> None:
    classes = extra_classes({"torch.nn.MultiheadAttention", "torch.nn.Transformer"})
    assert forward_parameters("torch.nn.Transformer", classes)[:2] == ["src", "tgt"]  # type: ignore[index]
    assert forward_parameters("Linear", classes) == ["input"]
    assert forward_parameters("Add", classes) is None  # any number, by position


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("Linaer", {}, "unknown class 'Linaer': TorchArc takes torch.nn's classes and its own (closest: Linear"),
        ("MergeConcta", {}, "(closest: MergeConcat"),
        ("Module", None, "Module is a base class"),
        ("MergeDim", None, "MergeDim is a base class"),
        ("Linear", [4, 2], "Linear's arguments are keyword arguments"),
    ],
)
def test_a_bad_class_spec_is_one_error_at_its_place(name: str, kwargs: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        leaf(name, kwargs, ["modules", "head"])
    assert caught.value.path == f"modules.head.{name}"
    assert message in caught.value.reason
