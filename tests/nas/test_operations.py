"""fluxion.nas.operations: DARTS's operations (and Archai's extras) as fluxion layers.

Shape rules against real forward calls (symbolic, even and odd sizes), parameter counts equal to
DARTS's modules (by formula, and whole DARTS cells against the reference counts in DARTS's own
models), the operation table, Zero and DropPath, the order of the layers (outputs computed again
with torch's functions), and specs that build and write the layers back.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from fluxion.errors import LayerError, NasError, ShapeError
from fluxion.nas import operations as ops

CLASSES: tuple[type[torch.nn.Module], ...] = (
    ops.ReLUConvBN,
    ops.DilConv,
    ops.SepConv,
    ops.FactorizedReduce,
    ops.PoolBN,
    ops.Zero,
    ops.DropPath,
    ops.CifarStem,
    ops.AuxiliaryHeadCIFAR,
    ops.FacConv,
    ops.ConvBNReLU,
    ops.StemS4,
    ops.StemS4S2,
)


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def infer(module: torch.nn.Module, *shape: int | str) -> shapes.ShapeReport:
    """The shapes of ``module`` at the root of a Chain (a copy sharing its weights: it may have a parent already)."""
    assert isinstance(module, fl.Module)
    return shapes.infer(fl.Chain(module.structural_copy()), tuple(shape))


def ceil_half(size: str) -> dims.Dim:
    """``ceil(S/2)`` as the strided layers write it."""
    return dims.conv_output(dims.dim(size), kernel=1, stride=2)


# -- shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ops.OPERATIONS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("search", [False, True])
def test_every_operation_keeps_the_channels_and_divides_the_size_by_the_stride(
    name: str, stride: int, search: bool
) -> None:
    layer = ops.operation(name, 6, stride, search=search).eval()
    for height, width in ((8, 12), (6, 2)):
        out = layer(torch.randn(2, 6, height, width))
        assert tuple(out.shape) == (2, 6, height // stride, width // stride)
        assert infer(layer, 2, 6, height, width).output == tuple(out.shape)
    symbolic = infer(layer, "B", 6, "H", "W").output
    if stride == 1:
        assert symbolic == dims.Shape(["B", 6, "H", "W"])
    elif name == "skip_connect":  # FactorizedReduce: H and W must be even, so the halves are exact
        assert symbolic == dims.Shape(["B", 6, dims.dim("H") / 2, dims.dim("W") / 2])
    else:
        assert symbolic == dims.Shape(["B", 6, ceil_half("H"), ceil_half("W")])


@pytest.mark.parametrize("name", [name for name in ops.OPERATIONS if name != "skip_connect"])
@pytest.mark.parametrize("stride", [1, 2])
def test_odd_sizes_give_the_same_shapes_in_forward_and_in_inference(name: str, stride: int) -> None:
    layer = ops.operation(name, 4, stride).eval()
    out = layer(torch.randn(1, 4, 7, 9))
    assert tuple(out.shape) == (1, 4, -(-7 // stride), -(-9 // stride))
    assert infer(layer, 1, 4, 7, 9).output == tuple(out.shape)


def test_factorized_reduce_refuses_odd_sizes_in_inference_and_in_forward() -> None:
    layer = ops.FactorizedReduce(4, 8)
    with pytest.raises(ShapeError, match=r"even height .* got 7"):
        infer(layer, 2, 4, 7, 8)
    with pytest.raises(ShapeError, match=r"even width .* got 5"):
        infer(layer, 2, 4, 8, 5)
    with pytest.raises(fl.ChainError):  # torch.cat of halves of 4 and 3 rows
        layer(torch.randn(2, 4, 7, 8))
    report = infer(layer, "B", 4, "H", "W")
    assert report.output == dims.Shape(["B", 8, dims.dim("H") / 2, dims.dim("W") / 2])
    assert [constraint.reason for constraint in report.constraints] == [
        "FactorizedReduce needs an even height (its two halves differ otherwise)",
        "FactorizedReduce needs an even width (its two halves differ otherwise)",
    ]
    with pytest.raises(ShapeError, match=r"expects \(N, C, H, W\)"):
        infer(layer, 4, 8, 8)


def test_factorized_reduce_wants_an_even_number_of_output_channels() -> None:
    with pytest.raises(LayerError, match=r"out_channels must be even .* got 5"):
        ops.FactorizedReduce(4, 5)
    with pytest.raises(LayerError, match="out_channels must be at least 2, got 0"):
        ops.FactorizedReduce(4, 0)


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        (ops.ReLUConvBN(8, 4, 3, stride=2, padding=1), (2, 8, 9, 10), (2, 4, 5, 5)),
        (ops.DilConv(4, 6, 3, stride=1, padding=2, dilation=2), (2, 4, 7, 7), (2, 6, 7, 7)),
        (ops.SepConv(4, 8, 5, stride=2, padding=2), (2, 4, 11, 8), (2, 8, 6, 4)),
        (ops.PoolBN("max", 4, kernel_size=3, stride=2, padding=1), (2, 4, 9, 9), (2, 4, 5, 5)),
        (ops.CifarStem(16), (2, 3, 32, 32), (2, 16, 32, 32)),
        (ops.AuxiliaryHeadCIFAR(12, 7), (2, 12, 8, 8), (2, 7)),
        (ops.FacConv(4, 6, 7, stride=2, padding=3), (2, 4, 9, 12), (2, 6, 5, 6)),
        (ops.ConvBNReLU(3, 5, 1), (2, 3, 4, 6), (2, 5, 4, 6)),
        (ops.StemS4(8), (2, 3, 32, 30), (2, 8, 8, 8)),
        (ops.StemS4S2(8), (2, 3, 32, 30), (2, 8, 4, 4)),
        (ops.Zero(3), (2, 4, 7, 9), (2, 4, 3, 3)),
        (ops.DropPath(0.5), (2, 4, 3, 3), (2, 4, 3, 3)),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, torch.nn.Module) else None,
)
def test_each_layer_infers_the_shape_of_its_forward(
    layer: torch.nn.Module, shape: tuple[int, ...], expected: tuple[int, ...]
) -> None:
    assert tuple(layer.eval()(torch.randn(shape)).shape) == expected
    assert infer(layer, *shape).output == expected


def test_symbolic_shapes_of_the_stems_and_the_head() -> None:
    h, w = dims.dim("H"), dims.dim("W")
    assert infer(ops.CifarStem(16), "B", 3, "H", "W").output == dims.Shape(["B", 16, h, w])
    assert infer(ops.AuxiliaryHeadCIFAR(12, 7), "B", 12, 8, 8).output == dims.Shape(["B", 7])
    assert infer(ops.DilConv(4, 4, 5, 1, 4, 2), "B", 4, "H", "W").output == dims.Shape(["B", 4, h, w])
    assert infer(ops.Zero(), "B", "T").output == dims.Shape(["B", "T"])
    with pytest.raises(ShapeError, match="rank 2 or more"):
        infer(ops.Zero(2), "B")


@settings(max_examples=25, deadline=None, database=None)
@given(
    channels=st.integers(1, 8).map(lambda half: 2 * half),
    stride=st.sampled_from([1, 2]),
    height=st.integers(1, 8).map(lambda half: 2 * half),
    width=st.integers(1, 8).map(lambda half: 2 * half),
    search=st.booleans(),
)
def test_every_primitive_maps_even_sizes_to_size_over_stride(
    channels: int, stride: int, height: int, width: int, search: bool
) -> None:
    x = torch.randn(2, channels, height, width)
    expected = (2, channels, height // stride, width // stride)
    for name in ops.OPERATIONS:
        layer = ops.operation(name, channels, stride, affine=not search, search=search).eval()
        assert tuple(layer(x).shape) == expected, name
        assert infer(layer, *x.shape).output == expected, name


# -- parameter counts -------------------------------------------------------------------------------


@pytest.mark.parametrize("affine", [True, False])
def test_parameter_counts_are_those_of_dartss_modules(affine: bool) -> None:
    bn = 2 if affine else 0  # weight and bias per channel
    assert count(ops.ReLUConvBN(48, 16, 1, affine=affine)) == 48 * 16 + bn * 16
    assert count(ops.DilConv(16, 24, 5, 2, 4, 2, affine=affine)) == 16 * 25 + 16 * 24 + bn * 24
    assert count(ops.SepConv(16, 16, 3, 1, 1, affine=affine)) == 2 * (16 * 9 + 16 * 16) + bn * 2 * 16
    assert count(ops.SepConv(8, 12, 7, 2, 3, affine=affine)) == 2 * 8 * 49 + 8 * 8 + 8 * 12 + bn * (8 + 12)
    assert count(ops.FactorizedReduce(64, 32, affine=affine)) == 2 * 64 * 16 + bn * 32
    assert count(ops.FacConv(16, 16, 7, 1, 3, affine=affine)) == 2 * 16 * 16 * 7 + bn * 16
    assert count(ops.ConvBNReLU(16, 16, 3, 1, 1, affine=affine)) == 16 * 16 * 9 + bn * 16
    assert count(ops.CifarStem(48, affine=affine)) == 3 * 48 * 9 + bn * 48
    assert count(ops.StemS4(16, affine=affine)) == 3 * 8 * 9 + 8 * 16 * 9 + bn * (8 + 16)
    assert count(ops.StemS4S2(16, affine=affine)) == 3 * 8 * 9 + 8 * 16 * 9 + 16 * 16 * 9 + bn * (8 + 16 + 16)
    assert count(ops.PoolBN("avg", 16, affine=affine)) == bn * 16
    assert count(ops.Zero(2)) == count(ops.DropPath(0.2)) == 0


def test_the_auxiliary_head_and_the_stems_count_as_dartss() -> None:
    assert count(ops.AuxiliaryHeadCIFAR(576, 10)) == 476_426  # DARTS's NetworkCIFAR(36, 10, 20, auxiliary)
    assert count(ops.CifarStem(48)) == 1_392  # its search Network(16, 10, 8)
    assert count(ops.CifarStem(108)) == 3_132  # its NetworkCIFAR(36, 10, 20)


def search_cell(channels: int, previous: tuple[int, int], reduction: bool, reduction_prev: bool) -> int:
    """The parameters of a cell of DARTS's supernet: two preprocessings and 14 edges of all primitives."""
    first = (
        ops.FactorizedReduce(previous[0], channels, affine=False)
        if reduction_prev
        else ops.ReLUConvBN(previous[0], channels, 1, affine=False)
    )
    total = count(first) + count(ops.ReLUConvBN(previous[1], channels, 1, affine=False))
    for node in range(4):
        for edge in range(node + 2):
            stride = 2 if reduction and edge < 2 else 1
            total += sum(
                count(ops.operation(name, channels, stride, affine=False, search=True)) for name in ops.PRIMITIVES
            )
    return total


DARTS_V2_NORMAL = [
    ("sep_conv_3x3", 0),
    ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 0),
    ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 1),
    ("skip_connect", 0),
    ("skip_connect", 0),
    ("dil_conv_3x3", 2),
]
DARTS_V2_REDUCE = [
    ("max_pool_3x3", 0),
    ("max_pool_3x3", 1),
    ("skip_connect", 2),
    ("max_pool_3x3", 1),
    ("max_pool_3x3", 0),
    ("skip_connect", 2),
    ("skip_connect", 2),
    ("max_pool_3x3", 1),
]


def evaluation_cell(channels: int, previous: tuple[int, int], reduction: bool, reduction_prev: bool) -> int:
    """The parameters of a cell of DARTS's evaluation network with the genotype DARTS_V2."""
    first = ops.FactorizedReduce(previous[0], channels) if reduction_prev else ops.ReLUConvBN(previous[0], channels, 1)
    total = count(first) + count(ops.ReLUConvBN(previous[1], channels, 1))
    for name, index in DARTS_V2_REDUCE if reduction else DARTS_V2_NORMAL:
        total += count(ops.operation(name, channels, 2 if reduction and index < 2 else 1))
    return total


def test_whole_darts_cells_count_as_in_dartss_own_networks() -> None:
    # the per-cell counts of DARTS's Network(16, 10, 8) and NetworkCIFAR(36, 10, 20, DARTS_V2)
    assert search_cell(16, (48, 48), reduction=False, reduction_prev=False) == 45_888
    assert search_cell(32, (64, 64), reduction=True, reduction_prev=False) == 144_000
    assert search_cell(32, (64, 128), reduction=False, reduction_prev=True) == 137_856
    assert evaluation_cell(36, (108, 108), reduction=False, reduction_prev=False) == 26_532
    assert evaluation_cell(72, (144, 144), reduction=True, reduction_prev=False) == 21_024
    assert evaluation_cell(72, (144, 288), reduction=False, reduction_prev=True) == 97_128


def test_sep_conv_lays_out_eight_layers_under_automatic_names() -> None:
    layer = ops.SepConv(4, 6, 3, 2, 1)
    assert [name for name, _ in layer.named_children()] == [
        "ReLU_1",
        "Conv2d_1",
        "Conv2d_2",
        "BatchNorm2d_1",
        "ReLU_2",
        "Conv2d_3",
        "Conv2d_4",
        "BatchNorm2d_2",
    ]
    model = fl.Chain(edge_3=fl.Chain(sep_conv_3x3=layer))
    assert "edge_3.sep_conv_3x3.Conv2d_1.weight" in model.state_dict()
    assert (layer.Conv2d_1.stride, layer.Conv2d_3.stride) == ((2, 2), (1, 1))
    assert (layer.Conv2d_1.groups, layer.Conv2d_3.groups, layer.Conv2d_2.out_channels) == (4, 4, 4)
    assert all(conv.bias is None for conv in layer.layers(fl.Conv2d))


# -- outputs, computed again with torch's functions ------------------------------------------------------


def batch_norm(x: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
    assert isinstance(layer, torch.nn.BatchNorm2d)
    return functional.batch_norm(
        x, layer.running_mean, layer.running_var, layer.weight, layer.bias, False, 0.0, layer.eps
    )


def randomize_statistics(module: torch.nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-1, 1)
            layer.running_var.uniform_(0.5, 2)


def test_factorized_reduce_concatenates_a_convolution_of_the_input_and_one_shifted_by_a_pixel() -> None:
    layer = ops.FactorizedReduce(3, 8).eval()
    randomize_statistics(layer)
    x = torch.randn(2, 3, 6, 10)
    first, second = (conv.weight for conv in layer.layers(fl.Conv2d, recurse=True))
    relu = functional.relu(x)
    halves = [functional.conv2d(relu, first, stride=2), functional.conv2d(relu[:, :, 1:, 1:], second, stride=2)]
    expected = batch_norm(torch.cat(halves, dim=1), layer.BatchNorm2d)
    torch.testing.assert_close(layer(x), expected)


def test_sep_conv_and_dil_conv_compute_dartss_sequence() -> None:
    layer = ops.SepConv(4, 6, 5, stride=2, padding=2).eval()
    randomize_statistics(layer)
    x = torch.randn(2, 4, 9, 8)
    w1, w2, w3, w4 = (conv.weight for conv in layer.layers(fl.Conv2d))
    h = functional.conv2d(functional.relu(x), w1, stride=2, padding=2, groups=4)
    h = functional.relu(batch_norm(functional.conv2d(h, w2), layer.BatchNorm2d_1))
    h = functional.conv2d(functional.conv2d(h, w3, padding=2, groups=4), w4)
    torch.testing.assert_close(layer(x), batch_norm(h, layer.BatchNorm2d_2))

    dilated = ops.DilConv(4, 6, 3, stride=2, padding=2, dilation=2).eval()
    randomize_statistics(dilated)
    d1, d2 = (conv.weight for conv in dilated.layers(fl.Conv2d))
    h = functional.conv2d(functional.relu(x), d1, stride=2, padding=2, dilation=2, groups=4)
    torch.testing.assert_close(dilated(x), batch_norm(functional.conv2d(h, d2), dilated.BatchNorm2d))


def test_fac_conv_runs_the_1xk_convolution_over_the_width_first() -> None:
    layer = ops.FacConv(4, 6, 7, stride=2, padding=3).eval()
    randomize_statistics(layer)
    first, second = layer.layers(fl.Conv2d)
    assert (first.kernel_size, first.stride, first.padding) == ((1, 7), (1, 2), (0, 3))
    assert (second.kernel_size, second.stride, second.padding) == ((7, 1), (2, 1), (3, 0))
    assert (first.out_channels, second.out_channels) == (4, 6)
    x = torch.randn(2, 4, 8, 10)
    h = functional.conv2d(functional.relu(x), first.weight, stride=(1, 2), padding=(0, 3))
    h = functional.conv2d(h, second.weight, stride=(2, 1), padding=(3, 0))
    torch.testing.assert_close(layer(x), batch_norm(h, layer.BatchNorm2d))


def test_pools_leave_the_padding_out_of_their_averages() -> None:
    x = torch.ones(1, 1, 4, 4)
    assert torch.equal(ops.operation("avg_pool_3x3", 1, 1)(x), x)  # padding counted, the corners would be 4/9
    search = ops.operation("avg_pool_3x3", 1, 1, search=True)
    assert isinstance(search, ops.PoolBN)
    assert isinstance(search.AvgPool2d, fl.AvgPool2d)
    assert not search.AvgPool2d.count_include_pad


# -- the operation table ------------------------------------------------------------------------------


def test_primitives_are_dartss_in_dartss_order() -> None:
    assert ops.PRIMITIVES == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )
    assert ops.OPERATIONS[: len(ops.PRIMITIVES)] == ops.PRIMITIVES
    assert set(ops.OPERATIONS) - set(ops.PRIMITIVES) == {
        "sep_conv_7x7",
        "conv_7x1_1x7",
        "convbnrelu_3x3",
        "convbnrelu_1x1",
    }


@pytest.mark.parametrize(
    ("name", "kind", "kernel", "padding", "dilation"),
    [
        ("sep_conv_3x3", ops.SepConv, (3, 3), (1, 1), (1, 1)),
        ("sep_conv_5x5", ops.SepConv, (5, 5), (2, 2), (1, 1)),
        ("sep_conv_7x7", ops.SepConv, (7, 7), (3, 3), (1, 1)),
        ("dil_conv_3x3", ops.DilConv, (3, 3), (2, 2), (2, 2)),
        ("dil_conv_5x5", ops.DilConv, (5, 5), (4, 4), (2, 2)),
        ("conv_7x1_1x7", ops.FacConv, (1, 7), (0, 3), (1, 1)),
        ("convbnrelu_3x3", ops.ConvBNReLU, (3, 3), (1, 1), (1, 1)),
        ("convbnrelu_1x1", ops.ConvBNReLU, (1, 1), (0, 0), (1, 1)),
    ],
)
@pytest.mark.parametrize("stride", [1, 2])
def test_the_table_builds_dartss_convolutions(
    name: str,
    kind: type[fl.Chain],
    kernel: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    stride: int,
) -> None:
    layer = ops.operation(name, 8, stride, affine=False)
    assert type(layer) is kind
    first = next(iter(layer.layers(fl.Conv2d)))
    assert (first.in_channels, first.kernel_size, first.padding, first.dilation) == (8, kernel, padding, dilation)
    assert first.stride == ((1, stride) if kind is ops.FacConv else (stride, stride))
    assert all(not norm.affine for norm in layer.layers(fl.BatchNorm2d))


def test_the_table_builds_dartss_other_operations() -> None:
    zero = ops.operation("none", 8, 2)
    assert isinstance(zero, ops.Zero)
    assert zero.stride == 2
    assert type(ops.operation("skip_connect", 8, 1)) is fl.Identity
    reduce = ops.operation("skip_connect", 8, 2, affine=False)
    assert isinstance(reduce, ops.FactorizedReduce)
    assert not reduce.BatchNorm2d.affine
    pool = ops.operation("max_pool_3x3", 8, 2)
    assert type(pool) is fl.MaxPool2d
    assert (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)
    average = ops.operation("avg_pool_3x3", 8, 2)
    assert type(average) is fl.AvgPool2d
    assert not average.count_include_pad
    for name, kind in (("max_pool_3x3", fl.MaxPool2d), ("avg_pool_3x3", fl.AvgPool2d)):
        searched = ops.operation(name, 8, 2, affine=True, search=True)  # the BN has no parameters whatever affine says
        assert isinstance(searched, ops.PoolBN)
        assert isinstance(searched[0], kind)
        assert not searched.BatchNorm2d.affine
        assert searched.BatchNorm2d.num_features == 8
    assert type(ops.operation("sep_conv_3x3", 8, 1, search=True)) is ops.SepConv


def test_unknown_names_and_impossible_strides_are_nas_errors() -> None:
    with pytest.raises(NasError) as raised:
        ops.operation("sep_conv_3x", 8, 1)
    assert str(raised.value) == (
        "unknown primitive 'sep_conv_3x' (closest: sep_conv_3x3); primitives: " + ", ".join(ops.OPERATIONS)
    )
    with pytest.raises(NasError, match=r"^unknown primitive 'attention'; primitives: none, max_pool_3x3"):
        ops.operation("attention", 8, 1)
    with pytest.raises(NasError, match=r"skip_connect takes stride 1 .* or 2 .* got 3"):
        ops.operation("skip_connect", 8, 3)
    with pytest.raises(LayerError, match="stride must be at least 1, got 0"):
        ops.operation("none", 8, 0)
    with pytest.raises(LayerError, match="kind must be 'max' or 'avg', got 'mean'"):
        ops.PoolBN("mean", 8)  # pyright: ignore[reportArgumentType]


# -- Zero and DropPath --------------------------------------------------------------------------------


@pytest.mark.parametrize(("stride", "expected"), [(1, (2, 3, 7, 6)), (2, (2, 3, 4, 3)), (3, (2, 3, 3, 2))])
def test_zero_gives_zeros_of_the_strided_shape(stride: int, expected: tuple[int, ...]) -> None:
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    out = ops.Zero(stride)(x)
    assert out.shape == expected
    assert out.dtype == torch.float64
    assert torch.equal(out, torch.zeros(expected, dtype=torch.float64))
    out.sum().backward()  # in the graph, with zero gradients
    assert x.grad is not None
    assert torch.equal(x.grad, torch.zeros_like(x))
    with pytest.raises(LayerError, match="stride must be at least 1"):
        ops.Zero(0)


def test_drop_path_is_the_identity_in_eval_and_without_a_probability() -> None:
    x = torch.randn(8, 3, 2, 2)
    assert ops.DropPath(0.5).eval()(x) is x
    assert ops.DropPath().train()(x) is x


def test_drop_path_zeros_whole_samples_and_keeps_the_expected_value() -> None:
    torch.manual_seed(0)
    drop = ops.DropPath(0.3).train()
    x = torch.randn(4000, 2, 3, 3)
    out = drop(x)
    kept = out.flatten(1).ne(0).any(dim=1)
    torch.testing.assert_close(out[kept], x[kept] / 0.7)
    assert torch.equal(out[~kept], torch.zeros_like(out[~kept]))
    assert abs(kept.float().mean().item() - 0.7) < 0.03
    means = torch.stack([drop(torch.ones(2000, 4)).mean() for _ in range(5)])
    assert abs(means.mean().item() - 1.0) < 0.03
    assert not torch.equal(drop(x), drop(x))  # a new mask at each call


def test_drop_path_is_out_of_place_and_its_probability_is_set_by_training_loops() -> None:
    x = torch.ones(64, 3, requires_grad=True)
    drop = ops.DropPath(0.5)
    out = drop(x)
    out.sum().backward()  # no in-place change to a leaf that requires grad
    assert x.grad is not None
    assert set(x.grad[:, 0].tolist()) <= {0.0, 2.0}
    assert torch.equal(x, torch.ones(64, 3))
    drop.p = 0.25
    assert drop.p == 0.25
    assert repr(drop) == "DropPath(p=0.25)"
    for wrong in (1.0, -0.1, float("nan")):
        with pytest.raises(LayerError, match="DropPath: p must be"):
            drop.p = wrong
        with pytest.raises(LayerError, match="DropPath: p must be"):
            ops.DropPath(wrong)
    assert drop.p == 0.25


# -- specs ---------------------------------------------------------------------------------------------

SPECS: list[tuple[dict[str, Any], tuple[int | str, ...]]] = [
    ({"type": "ReLUConvBN", "in_channels": 8, "out_channels": 4, "kernel_size": 1}, ("B", 8, "H", "W")),
    (
        {
            "type": "DilConv",
            "in_channels": 4,
            "out_channels": 4,
            "kernel_size": 3,
            "stride": 2,
            "padding": 2,
            "dilation": 2,
            "affine": False,
        },
        ("B", 4, 8, 8),
    ),
    (
        {"type": "SepConv", "in_channels": 4, "out_channels": 6, "kernel_size": 3, "stride": 1, "padding": 1},
        ("B", 4, "H", "W"),
    ),
    ({"type": "FactorizedReduce", "in_channels": 4, "out_channels": 6}, ("B", 4, "H", "W")),
    ({"type": "PoolBN", "kind": "avg", "channels": 4, "stride": 2}, ("B", 4, 8, 8)),
    ({"type": "Zero", "stride": 2}, ("B", 4, 8, 8)),
    ({"type": "DropPath", "p": 0.2}, ("B", 4, 8, 8)),
    ({"type": "CifarStem", "out_channels": 12}, ("B", 3, "H", "W")),
    ({"type": "AuxiliaryHeadCIFAR", "in_channels": 8, "classes": 3}, ("B", 8, 8, 8)),
    (
        {"type": "FacConv", "in_channels": 4, "out_channels": 4, "kernel_size": 7, "stride": 1, "padding": 3},
        ("B", 4, "H", "W"),
    ),
    ({"type": "ConvBNReLU", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1}, ("B", 4, "H", "W")),
    ({"type": "StemS4", "out_channels": 8}, ("B", 3, 16, 16)),
    ({"type": "StemS4S2", "out_channels": 8, "affine": False}, ("B", 3, 16, 16)),
]


def registered() -> None:
    """Register the classes by hand as long as ``fluxion.nas`` does not (the same classes: a no-op once it does)."""
    for cls in CLASSES:
        spec.register(cls)


def test_the_spec_cases_cover_every_class() -> None:
    assert {node["type"] for node, _ in SPECS} == {cls.__name__ for cls in CLASSES}
    assert {cls.__name__ for cls in CLASSES} | {"OPERATIONS", "PRIMITIVES", "operation"} == set(ops.__all__)


@pytest.mark.parametrize(("node", "shape"), SPECS, ids=[node["type"] for node, _ in SPECS])
def test_every_class_builds_from_a_spec_and_writes_back_the_same_tree(
    node: dict[str, Any], shape: tuple[int | str, ...]
) -> None:
    registered()
    model = spec.loads({"type": "Chain", "children": [{**node, "id": "op"}]})
    arguments = {key: value for key, value in node.items() if key != "type"}
    assert type(model.op).__name__ == node["type"]
    assert spec.dump(model)["children"] == [{"type": node["type"], "id": "op", **arguments}]
    again = spec.loads(spec.dump(model))
    assert repr(again) == repr(model)
    assert list(again.state_dict()) == list(model.state_dict())
    assert shapes.infer(again, shape).output == shapes.infer(model, shape).output


def test_a_spec_with_an_unknown_pool_kind_is_refused_with_its_path() -> None:
    registered()
    with pytest.raises(spec.SpecError, match=r"children\[0\]\.kind"):
        spec.loads({"type": "Chain", "children": [{"type": "PoolBN", "kind": "mean", "channels": 4}]})
