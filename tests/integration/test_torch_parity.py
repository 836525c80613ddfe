"""Every fluxion layer and combinator computes exactly what the plain-torch equivalent computes.

Weighted layers load the torch layer's ``state_dict`` with ``strict=True`` (so their keys are
torch's) and must then give the same outputs; weightless layers are compared with the torch
function or op they stand for; combinators with the torch expression they abbreviate.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional

import fluxion.layers as fl
from tests.layers.helpers import build_pair, randn

# -- weighted leaves ------------------------------------------------------------------------------

WEIGHTED: list[Any] = [
    pytest.param(fl.Linear, nn.Linear, (5, 7), {}, lambda: randn(2, 3, 5), id="Linear"),
    pytest.param(fl.Linear, nn.Linear, (5, 7), {"bias": False}, lambda: randn(4, 5), id="Linear-nobias"),
    pytest.param(
        fl.Embedding,
        nn.Embedding,
        (10, 4),
        {"padding_idx": 0},
        lambda: torch.tensor([[0, 3, 9], [1, 1, 2]]),
        id="Embedding",
    ),
    pytest.param(fl.Conv1d, nn.Conv1d, (3, 6, 3), {"stride": 2, "padding": 1}, lambda: randn(2, 3, 11), id="Conv1d"),
    pytest.param(
        fl.Conv1d,
        nn.Conv1d,
        (3, 6, 3),
        {"groups": 3, "padding": 2, "padding_mode": "reflect", "bias": False},
        lambda: randn(2, 3, 9),
        id="Conv1d-groups-reflect",
    ),
    pytest.param(
        fl.Conv2d,
        nn.Conv2d,
        (4, 6, 3),
        {"padding": "same", "dilation": 2, "groups": 2},
        lambda: randn(2, 4, 9, 8),
        id="Conv2d-same-dilated",
    ),
    pytest.param(
        fl.Conv2d,
        nn.Conv2d,
        (3, 5, (3, 2)),
        {"stride": (2, 1), "padding": 1, "padding_mode": "circular", "bias": False},
        lambda: randn(1, 3, 7, 6),
        id="Conv2d-circular",
    ),
    pytest.param(fl.Conv3d, nn.Conv3d, (2, 4, 3), {"padding": 1}, lambda: randn(1, 2, 4, 5, 6), id="Conv3d"),
    pytest.param(
        fl.ConvTranspose2d,
        nn.ConvTranspose2d,
        (4, 3, 3),
        {"stride": 2, "padding": 1, "output_padding": 1},
        lambda: randn(2, 4, 5, 5),
        id="ConvTranspose2d",
    ),
    pytest.param(fl.BatchNorm1d, nn.BatchNorm1d, (5,), {}, lambda: randn(4, 5), id="BatchNorm1d-2d-input"),
    pytest.param(fl.BatchNorm1d, nn.BatchNorm1d, (5,), {"momentum": 0.3}, lambda: randn(4, 5, 7), id="BatchNorm1d"),
    pytest.param(fl.BatchNorm2d, nn.BatchNorm2d, (3,), {}, lambda: randn(4, 3, 5, 5), id="BatchNorm2d"),
    pytest.param(
        fl.BatchNorm2d,
        nn.BatchNorm2d,
        (3,),
        {"affine": False, "track_running_stats": False},
        lambda: randn(4, 3, 5, 5),
        id="BatchNorm2d-stateless",
    ),
    pytest.param(fl.LayerNorm, nn.LayerNorm, (6,), {}, lambda: randn(2, 3, 6), id="LayerNorm"),
    pytest.param(
        fl.LayerNorm,
        nn.LayerNorm,
        ((3, 6),),
        {"elementwise_affine": False, "eps": 1e-3},
        lambda: randn(2, 3, 6),
        id="LayerNorm-2d-noaffine",
    ),
    pytest.param(fl.LayerNorm, nn.LayerNorm, (6,), {"bias": False}, lambda: randn(4, 6), id="LayerNorm-nobias"),
    pytest.param(fl.GroupNorm, nn.GroupNorm, (2, 6), {}, lambda: randn(3, 6, 4, 4), id="GroupNorm"),
    pytest.param(fl.GroupNorm, nn.GroupNorm, (3, 6), {"affine": False}, lambda: randn(3, 6, 5), id="GroupNorm-1d"),
    pytest.param(fl.RMSNorm, nn.RMSNorm, (6,), {}, lambda: randn(2, 3, 6), id="RMSNorm"),
    pytest.param(fl.RMSNorm, nn.RMSNorm, ((3, 6),), {"eps": 1e-3}, lambda: randn(2, 3, 6), id="RMSNorm-2d"),
]


@pytest.mark.parametrize(("fl_type", "torch_type", "args", "kwargs", "make_input"), WEIGHTED)
def test_weighted_layer_state_dict_keys_are_torch_keys(
    fl_type: type[nn.Module],
    torch_type: type[nn.Module],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    make_input: Callable[[], Tensor],
) -> None:
    ours, reference = fl_type(*args, **kwargs), torch_type(*args, **kwargs)
    assert isinstance(ours, torch_type)
    assert isinstance(ours, fl.WeightedModule)
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert [name for name, _ in ours.named_parameters()] == [name for name, _ in reference.named_parameters()]
    assert [name for name, _ in ours.named_buffers()] == [name for name, _ in reference.named_buffers()]
    for key, value in reference.state_dict().items():
        assert ours.state_dict()[key].shape == value.shape, key
        assert ours.state_dict()[key].dtype == value.dtype, key


@pytest.mark.parametrize(("fl_type", "torch_type", "args", "kwargs", "make_input"), WEIGHTED)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_weighted_layer_matches_torch(
    fl_type: type[nn.Module],
    torch_type: type[nn.Module],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    make_input: Callable[[], Tensor],
    training: bool,
) -> None:
    ours, reference = build_pair(fl_type, torch_type, args, kwargs)
    ours.train(training)
    reference.train(training)
    x = make_input()
    for _ in range(2):  # twice: BatchNorm's running statistics must evolve identically too
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
        for (key, mine), (ref_key, theirs) in zip(
            ours.state_dict().items(), reference.state_dict().items(), strict=True
        ):
            assert key == ref_key
            torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


def test_weighted_layer_gradients_match_torch() -> None:
    ours, reference = build_pair(fl.Conv2d, nn.Conv2d, (3, 4, 3), {"padding": 1})
    x = randn(2, 3, 6, 6)
    ours(x).square().sum().backward()
    reference(x).square().sum().backward()
    for (name, mine), (_, theirs) in zip(ours.named_parameters(), reference.named_parameters(), strict=True):
        assert mine.grad is not None, name
        assert theirs.grad is not None, name
        torch.testing.assert_close(mine.grad, theirs.grad)


# -- weightless leaves ----------------------------------------------------------------------------

X4 = (2, 3, 6, 5)

WEIGHTLESS: list[Any] = [
    pytest.param(lambda: fl.Identity(), lambda x: x, (2, 3), id="Identity"),
    pytest.param(lambda: fl.Dropout(0.4).eval(), lambda x: x, (2, 3), id="Dropout-eval"),
    pytest.param(lambda: fl.ReLU(), functional.relu, (2, 7), id="ReLU"),
    pytest.param(lambda: fl.GeLU(), functional.gelu, (2, 7), id="GeLU"),
    pytest.param(
        lambda: fl.GeLU(approximate="tanh"),
        lambda x: functional.gelu(x, approximate="tanh"),
        (2, 7),
        id="GeLU-tanh",
    ),
    pytest.param(lambda: fl.SiLU(), functional.silu, (2, 7), id="SiLU"),
    pytest.param(lambda: fl.Sigmoid(), torch.sigmoid, (2, 7), id="Sigmoid"),
    pytest.param(lambda: fl.Tanh(), torch.tanh, (2, 7), id="Tanh"),
    pytest.param(lambda: fl.Softmax(), lambda x: torch.softmax(x, dim=-1), (2, 3, 7), id="Softmax"),
    pytest.param(lambda: fl.Softmax(dim=1), lambda x: torch.softmax(x, dim=1), (2, 3, 7), id="Softmax-dim1"),
    pytest.param(lambda: fl.LeakyReLU(), functional.leaky_relu, (2, 7), id="LeakyReLU"),
    pytest.param(lambda: fl.LeakyReLU(0.2), lambda x: functional.leaky_relu(x, 0.2), (2, 7), id="LeakyReLU-0.2"),
    pytest.param(lambda: fl.MaxPool2d(2), lambda x: functional.max_pool2d(x, 2), X4, id="MaxPool2d"),
    pytest.param(
        lambda: fl.MaxPool2d(3, stride=2, padding=1, dilation=1, ceil_mode=True),
        lambda x: functional.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
        X4,
        id="MaxPool2d-ceil",
    ),
    pytest.param(
        lambda: fl.MaxPool2d(2, dilation=2, return_indices=True),
        lambda x: functional.max_pool2d(x, 2, dilation=2, return_indices=True),
        X4,
        id="MaxPool2d-indices",
    ),
    pytest.param(lambda: fl.AvgPool2d(2), lambda x: functional.avg_pool2d(x, 2), X4, id="AvgPool2d"),
    pytest.param(
        lambda: fl.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
        lambda x: functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
        X4,
        id="AvgPool2d-nopad",
    ),
    pytest.param(
        lambda: fl.AvgPool2d(2, divisor_override=3),
        lambda x: functional.avg_pool2d(x, 2, divisor_override=3),
        X4,
        id="AvgPool2d-divisor",
    ),
    pytest.param(
        lambda: fl.AdaptiveAvgPool2d((3, 2)),
        lambda x: functional.adaptive_avg_pool2d(x, (3, 2)),
        X4,
        id="AdaptiveAvgPool2d",
    ),
    pytest.param(
        lambda: fl.AdaptiveAvgPool2d(1), lambda x: x.mean(dim=(-2, -1), keepdim=True), X4, id="AdaptiveAvgPool2d-1"
    ),
    pytest.param(lambda: fl.Flatten(), lambda x: torch.flatten(x, 1), X4, id="Flatten"),
    pytest.param(lambda: fl.Flatten(0, -2), lambda x: torch.flatten(x, 0, -2), X4, id="Flatten-0-2"),
    pytest.param(lambda: fl.Unflatten(1, (3, 4)), lambda x: x.reshape(2, 3, 4, 5), (2, 12, 5), id="Unflatten"),
    pytest.param(lambda: fl.Unflatten(-1, (2, -1)), lambda x: x.reshape(2, 12, 2, 3), (2, 12, 6), id="Unflatten-neg"),
    pytest.param(lambda: fl.Reshape(3, -1), lambda x: x.reshape(2, 3, 30), X4, id="Reshape"),
    pytest.param(lambda: fl.Reshape(-1), lambda x: x.reshape(2, -1), X4, id="Reshape-flat"),
    pytest.param(lambda: fl.Permute(0, 2, 3, 1), lambda x: x.permute(0, 2, 3, 1), X4, id="Permute"),
    pytest.param(lambda: fl.Permute(-1, 0, 1, 2), lambda x: x.permute(3, 0, 1, 2), X4, id="Permute-neg"),
    pytest.param(lambda: fl.Transpose(1, -1), lambda x: x.transpose(1, 3), X4, id="Transpose"),
    pytest.param(lambda: fl.Squeeze(1), lambda x: x[:, 0], (2, 1, 3), id="Squeeze"),
    pytest.param(lambda: fl.Squeeze(-1), lambda x: x[..., 0], (2, 3, 1), id="Squeeze-neg"),
    pytest.param(lambda: fl.Squeeze(1), lambda x: x, (2, 3, 4), id="Squeeze-not-singleton"),
    pytest.param(lambda: fl.Unsqueeze(0), lambda x: x[None], (2, 3), id="Unsqueeze"),
    pytest.param(lambda: fl.Unsqueeze(-1), lambda x: x[..., None], (2, 3), id="Unsqueeze-neg"),
    pytest.param(lambda: fl.Chunk(3, dim=1), lambda x: torch.chunk(x, 3, dim=1), (2, 7, 2), id="Chunk-uneven"),
    pytest.param(lambda: fl.Chunk(2), lambda x: (x[:1], x[1:]), (2, 3), id="Chunk-dim0"),
    pytest.param(lambda: fl.Unbind(), lambda x: tuple(x), (3, 2), id="Unbind"),
    pytest.param(lambda: fl.Unbind(-1), lambda x: torch.unbind(x, dim=-1), (2, 3, 4), id="Unbind-neg"),
    pytest.param(
        lambda: fl.Upsample(scale_factor=2),
        lambda x: x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1),
        X4,
        id="Upsample-nearest",
    ),
    pytest.param(
        lambda: fl.Upsample(size=(5, 7), mode="bilinear", align_corners=True),
        lambda x: functional.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True),
        X4,
        id="Upsample-bilinear",
    ),
    pytest.param(
        lambda: fl.Upsample(scale_factor=1.5, mode="bicubic"),
        lambda x: functional.interpolate(x, scale_factor=1.5, mode="bicubic"),
        X4,
        id="Upsample-bicubic",
    ),
    pytest.param(
        lambda: fl.Upsample(scale_factor=2, mode="linear"),
        lambda x: functional.interpolate(x, scale_factor=2, mode="linear"),
        (2, 3, 5),
        id="Upsample-linear-1d",
    ),
    pytest.param(lambda: fl.PixelShuffle(2), lambda x: functional.pixel_shuffle(x, 2), (2, 8, 3, 4), id="PixelShuffle"),
]


@pytest.mark.parametrize(("make_layer", "reference", "shape"), WEIGHTLESS)
def test_weightless_layer_matches_torch(
    make_layer: Callable[[], nn.Module], reference: Callable[[Tensor], Any], shape: tuple[int, ...]
) -> None:
    layer = make_layer()
    assert isinstance(layer, fl.Module)
    assert not list(layer.state_dict())
    x = randn(*shape)
    expected = reference(x.clone())
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)
    # inside a Chain too (tuples come out as tuples)
    torch.testing.assert_close(fl.Chain(layer)(x), expected, rtol=0, atol=0)


def test_weightless_layers_match_torch_modules() -> None:
    pairs: list[tuple[nn.Module, nn.Module]] = [
        (fl.Identity(), nn.Identity()),
        (fl.Dropout(0.2).eval(), nn.Dropout(0.2).eval()),
        (fl.ReLU(), nn.ReLU()),
        (fl.GeLU(approximate="tanh"), nn.GELU(approximate="tanh")),
        (fl.SiLU(), nn.SiLU()),
        (fl.Sigmoid(), nn.Sigmoid()),
        (fl.Tanh(), nn.Tanh()),
        (fl.Softmax(dim=1), nn.Softmax(dim=1)),
        (fl.LeakyReLU(0.3), nn.LeakyReLU(0.3)),
        (fl.MaxPool2d(3, stride=1, padding=1), nn.MaxPool2d(3, stride=1, padding=1)),
        (fl.AvgPool2d(2, stride=1), nn.AvgPool2d(2, stride=1)),
        (fl.AdaptiveAvgPool2d(3), nn.AdaptiveAvgPool2d(3)),
        (fl.Flatten(), nn.Flatten()),
        (fl.Unflatten(1, (2, 2)), nn.Unflatten(1, (2, 2))),
        (fl.Upsample(scale_factor=2, mode="bilinear"), nn.Upsample(scale_factor=2, mode="bilinear")),
        (fl.PixelShuffle(2), nn.PixelShuffle(2)),
    ]
    x = randn(2, 4, 4, 4)
    for ours, theirs in pairs:
        assert isinstance(ours, type(theirs))
        assert ours.extra_repr() == theirs.extra_repr()
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


# -- combinators ----------------------------------------------------------------------------------


def linears(*dims: int, seed: int = 0) -> list[fl.Linear]:
    torch.manual_seed(seed)
    return [fl.Linear(a, b) for a, b in itertools.pairwise(dims)]


def test_chain_is_function_composition() -> None:
    a, b, c = linears(4, 5, 6, 3)
    model = fl.Chain(a, fl.ReLU(), b, fl.Tanh(), c)
    x = randn(2, 4)
    torch.testing.assert_close(model(x), c(torch.tanh(b(torch.relu(a(x))))), rtol=0, atol=0)
    sequential = nn.Sequential(a, nn.ReLU(), b, nn.Tanh(), c)
    torch.testing.assert_close(model(x), sequential(x), rtol=0, atol=0)


def test_chain_passes_tuple_items_as_separate_arguments() -> None:
    x = randn(2, 6)
    model = fl.Chain(fl.Chunk(2, dim=-1), fl.Lambda(lambda u, v: u * v - v))
    u, v = x.chunk(2, dim=-1)
    torch.testing.assert_close(model(x), u * v - v, rtol=0, atol=0)
    # several inputs into a Chain go to its first child as separate arguments
    torch.testing.assert_close(fl.Chain(fl.Lambda(torch.sub))(u, v), u - v, rtol=0, atol=0)


def test_passthrough_returns_its_input() -> None:
    (a,) = linears(4, 4)
    seen: list[Tensor] = []
    model = fl.Chain(fl.Passthrough(a, fl.Lambda(seen.append)), fl.Lambda(lambda x: 2 * x))
    x = randn(3, 4)
    torch.testing.assert_close(model(x), 2 * x, rtol=0, atol=0)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], a(x), rtol=0, atol=0)
    # with several inputs, it returns them all
    y = randn(3, 4, seed=1)
    out = fl.Passthrough(fl.Lambda(torch.add))(x, y)
    assert isinstance(out, tuple)
    assert len(out) == 2
    assert out[0] is x
    assert out[1] is y


def test_residual_adds_input() -> None:
    a, b = linears(4, 6, 4)
    x = randn(3, 4)
    torch.testing.assert_close(fl.Residual(a, fl.GeLU(), b)(x), x + b(functional.gelu(a(x))), rtol=0, atol=0)
    # several inputs: the first one is added, all of them feed the children
    y = randn(3, 4, seed=1)
    torch.testing.assert_close(fl.Residual(fl.Lambda(torch.mul))(x, y), x + x * y, rtol=0, atol=0)


def test_sum_adds_branch_outputs() -> None:
    a, b, c = linears(4, 4, 4, 4)
    x = randn(2, 4)
    torch.testing.assert_close(fl.Sum(a, fl.Chain(c, b), fl.Identity())(x), a(x) + b(c(x)) + x)
    y = randn(2, 4, seed=1)
    torch.testing.assert_close(fl.Sum(fl.Lambda(torch.add), fl.Lambda(torch.mul))(x, y), (x + y) + x * y)


def test_parallel_returns_branch_outputs() -> None:
    a, b = linears(4, 5, 3)
    x = randn(2, 4)
    out = fl.Parallel(a, fl.Chain(a.structural_copy(), b), fl.Identity())(x)
    assert isinstance(out, tuple)
    assert len(out) == 3
    torch.testing.assert_close(out, (a(x), b(a(x)), x), rtol=0, atol=0)
    y = randn(2, 4, seed=1)
    torch.testing.assert_close(fl.Parallel(fl.Lambda(torch.add), fl.Lambda(torch.mul))(x, y), (x + y, x * y))


def test_distribute_gives_one_input_per_child() -> None:
    a, b = linears(4, 5, 3)
    x, y = randn(2, 4), randn(2, 5, seed=1)
    out = fl.Distribute(a, b)(x, y)
    torch.testing.assert_close(out, (a(x), b(y)), rtol=0, atol=0)
    with pytest.raises(fl.ChainError) as caught:
        fl.Distribute(a.structural_copy(), b.structural_copy())(x)
    assert isinstance(caught.value.__cause__, fl.TreeError)
    assert "Distribute needs exactly one input per child" in str(caught.value)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_concatenate_matches_torch_cat(dim: int) -> None:
    (a,) = linears(4, 4)
    x = randn(2, 4)
    out = fl.Concatenate(a, fl.Identity(), fl.ReLU(), dim=dim)(x)
    torch.testing.assert_close(out, torch.cat([a(x), x, torch.relu(x)], dim=dim), rtol=0, atol=0)


def test_concatenate_default_dim_is_0() -> None:
    x = randn(2, 3)
    torch.testing.assert_close(fl.Concatenate(fl.Identity(), fl.Tanh())(x), torch.cat([x, x.tanh()]))


def test_matmul_multiplies_branch_outputs() -> None:
    a, b = linears(4, 5, 5)
    x = randn(2, 3, 4)
    model = fl.Matmul(a, fl.Chain(a.structural_copy(), b, fl.Transpose(-1, -2)))
    torch.testing.assert_close(model(x), a(x) @ b(a(x)).transpose(-1, -2), rtol=0, atol=0)


def test_lambda_applies_its_function() -> None:
    x, y = randn(2, 3), randn(2, 3, seed=1)
    torch.testing.assert_close(fl.Lambda(torch.neg)(x), -x, rtol=0, atol=0)
    torch.testing.assert_close(fl.Lambda(lambda u, v: u @ v.T)(x, y), x @ y.T, rtol=0, atol=0)
    assert not list(fl.Lambda(torch.neg).parameters())


# -- Return ---------------------------------------------------------------------------------------


def test_return_ends_the_root_chain() -> None:
    a, b = linears(4, 4, 4)
    x = randn(2, 4)
    torch.testing.assert_close(fl.Chain(a, fl.Return(), b)(x), a(x), rtol=0, atol=0)


def test_return_ends_only_its_innermost_chain() -> None:
    a, b, c = linears(4, 4, 4, 4)
    x = randn(2, 4)
    model = fl.Chain(fl.Chain(a, fl.Return(), fl.Lambda(torch.neg)), b, fl.Chain(c))
    torch.testing.assert_close(model(x), c(b(a(x))), rtol=0, atol=0)
    deep = fl.Chain(
        fl.Chain(fl.Chain(fl.Return(), fl.Lambda(torch.neg)), fl.Lambda(lambda t: t + 1)), a.structural_copy()
    )
    torch.testing.assert_close(deep(x), a(x + 1), rtol=0, atol=0)


def test_return_skips_the_rest_of_its_chain() -> None:
    calls: list[str] = []
    model = fl.Chain(
        fl.Chain(fl.Lambda(lambda t: calls.append("before") or t), fl.Return(), fl.Lambda(calls.append)),
        fl.Lambda(lambda t: calls.append("after") or t),
    )
    model(randn(1))
    assert calls == ["before", "after"]


def test_return_inside_combinators() -> None:
    a, b = linears(4, 4, 4)
    x = randn(2, 4)

    def copies() -> tuple[fl.Linear, fl.Linear]:  # a node has one parent: give each model its own leaves
        return a.structural_copy(), b.structural_copy()

    # Residual: its children end early, the residual is still added
    torch.testing.assert_close(fl.Residual(copies()[0], fl.Return(), copies()[1])(x), x + a(x), rtol=0, atol=0)
    # Passthrough returns its input anyway
    torch.testing.assert_close(fl.Passthrough(*copies(), fl.Return())(x), x, rtol=0, atol=0)
    # a branch that is a Chain ends only itself
    a1, b1 = copies()
    out = fl.Parallel(fl.Chain(a1, fl.Return(), b1), copies()[1])(x)
    torch.testing.assert_close(out, (a(x), b(x)), rtol=0, atol=0)
    a1, b1 = copies()
    summed = fl.Sum(fl.Chain(a1, fl.Return(), b1), copies()[1])(x)
    torch.testing.assert_close(summed, a(x) + b(x), rtol=0, atol=0)
    # Return as a direct child of Sum ends the Sum with the Sum's input (its own input)
    a1, b1 = copies()
    torch.testing.assert_close(fl.Chain(fl.Sum(a1, fl.Return(), b1), fl.Lambda(torch.neg))(x), -x)


def test_return_passes_several_values_on_as_a_tuple() -> None:
    a, b = linears(4, 4, 4)
    x = randn(2, 4)
    model = fl.Chain(fl.Chain(fl.Parallel(a, b), fl.Return(), fl.Lambda(torch.add)), fl.Lambda(torch.sub))
    torch.testing.assert_close(model(x), a(x) - b(x), rtol=0, atol=0)


# -- context --------------------------------------------------------------------------------------


def test_context_set_in_one_nested_chain_is_seen_in_another() -> None:
    a, b = linears(4, 4, 4)
    x = randn(2, 4)
    model = fl.Chain(
        fl.Chain(a, fl.SetContext("unet", "skip")),
        fl.Lambda(torch.neg),
        fl.Chain(fl.Chain(b, fl.Sum(fl.Identity(), fl.UseContext("unet", "skip")))),
    )
    torch.testing.assert_close(model(x), b(-a(x)) + a(x), rtol=0, atol=0)
    assert model.use_context("unet") == {}  # cleared when the root's forward returned


def test_context_set_from_outside_reaches_nested_chains() -> None:
    (a,) = linears(4, 4)
    x, t = randn(2, 4), randn(2, 4, seed=1)
    model = fl.Chain(a, fl.Chain(fl.Chain(fl.Sum(fl.Identity(), fl.UseContext("run", "t", func=torch.neg)))))
    model.set_context("run", {"t": t})
    torch.testing.assert_close(model(x), a(x) - t, rtol=0, atol=0)


def test_set_context_callback_collects_values() -> None:
    (a,) = linears(4, 4)
    x = randn(2, 4)
    collect = fl.SetContext("net", "seen", callback=lambda seen, value: [*(seen or []), value])
    model = fl.Chain(
        collect,
        a,
        fl.Chain(collect.structural_copy()),
        fl.UseContext("net", "seen", func=lambda seen: torch.stack(seen)),
    )
    torch.testing.assert_close(model(x), torch.stack([x, a(x)]), rtol=0, atol=0)


def test_context_is_cleared_after_the_root_forward_returns() -> None:
    x = randn(2, 4)
    # UseContext runs before SetContext: the first call works only thanks to set_context()
    model = fl.Chain(
        fl.Chain(fl.Sum(fl.Identity(), fl.UseContext("ctx", "value"))),
        fl.Chain(fl.Chain(fl.SetContext("ctx", "value"))),
    )
    model.set_context("ctx", {"value": torch.ones(())})
    torch.testing.assert_close(model(x), x + 1, rtol=0, atol=0)
    # the value SetContext stored during that call does not survive it
    with pytest.raises(fl.ChainError) as caught:
        model(x)
    assert isinstance(caught.value.__cause__, fl.ContextError)
    assert caught.value.address == "Chain_1.Sum.UseContext"
    assert "'value'" in str(caught.value)


def test_context_is_cleared_after_a_failing_forward() -> None:
    model = fl.Chain(fl.SetContext("ctx", "value"), fl.Linear(3, 3))
    with pytest.raises(fl.ChainError):
        model(randn(2, 4))
    assert model.use_context("ctx") == {}


def test_building_on_meta_stays_cheap() -> None:
    # torch's normal_ on meta tensors imports torch._dynamo (about a second); a meta build of every
    # weighted layer must not, so that building a large model on meta costs milliseconds.
    code = (
        "import sys, torch, fluxion.layers as fl\n"
        "with torch.device('meta'):\n"
        "    fl.Chain(fl.Embedding(10, 4, padding_idx=0), fl.Linear(4, 4), fl.LayerNorm(4), fl.Conv2d(4, 4, 3),\n"
        "             fl.BatchNorm2d(4), fl.GroupNorm(2, 4), fl.MultiHeadAttention(4, 2), fl.RMSNorm(4))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
