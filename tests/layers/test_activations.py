"""Activations and the other element-wise leaves: torch's results, in place where torch works in place."""

from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn
from torch.nn import functional

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.errors import LayerError, ShapeError
from tests.layers.helpers import randn


def test_softmax_default_dim_is_last() -> None:
    assert fl.Softmax().dim == -1
    x = randn(3, 4, 5)
    torch.testing.assert_close(fl.Softmax()(x), nn.Softmax(dim=-1)(x))


@pytest.mark.parametrize(
    ("make_layer", "reference"),
    [
        (lambda: fl.ReLU(inplace=True), lambda x: functional.relu(x, inplace=True)),
        (lambda: fl.SiLU(inplace=True), lambda x: functional.silu(x, inplace=True)),
        (lambda: fl.LeakyReLU(0.1, inplace=True), lambda x: functional.leaky_relu(x, 0.1, inplace=True)),
        (lambda: fl.Dropout(0.5, inplace=True).eval(), lambda x: x),
    ],
    ids=["ReLU", "SiLU", "LeakyReLU", "Dropout-eval"],
)
def test_inplace_activations_match_torch(
    make_layer: Callable[[], nn.Module], reference: Callable[[Tensor], Tensor]
) -> None:
    x, y = randn(3, 5), randn(3, 5)
    out = make_layer()(x)
    expected = reference(y)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(x, y, rtol=0, atol=0)  # the input was changed in place as torch does


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_dropout_in_training_matches_torch_with_the_same_seed(p: float) -> None:
    x = randn(4, 50)
    layer = fl.Dropout(p)
    assert layer.training
    torch.manual_seed(123)
    out = layer(x)
    torch.manual_seed(123)
    torch.testing.assert_close(out, functional.dropout(x, p, training=True), rtol=0, atol=0)


# -- shape rules ----------------------------------------------------------------------------------

ELEMENTWISE = [
    fl.Identity,
    lambda: fl.Dropout(0.3),
    fl.ReLU,
    fl.GeLU,
    fl.SiLU,
    fl.Sigmoid,
    fl.Tanh,
    fl.Softmax,
    fl.LogSoftmax,
    fl.LogSigmoid,
    fl.LeakyReLU,
]


@pytest.mark.parametrize("make_layer", ELEMENTWISE)
@settings(max_examples=20, deadline=None)
@given(sizes=st.lists(st.integers(0, 4), max_size=4))
def test_an_elementwise_rule_gives_the_shape_forward_gives(
    make_layer: Callable[[], nn.Module], sizes: list[int]
) -> None:
    layer = make_layer()
    assert layer(torch.randn(sizes)).shape == tuple(sizes)
    assert shapes.infer(layer, sizes).output == dims.Shape(sizes)


@pytest.mark.parametrize("make_layer", ELEMENTWISE)
def test_an_elementwise_rule_keeps_symbols_and_takes_exactly_one_tensor(make_layer: Callable[[], nn.Module]) -> None:
    layer = make_layer()
    name = type(layer).__name__
    assert shapes.infer(fl.Chain(layer), ("B", "T", 8)).output == dims.Shape(["B", "T", 8])
    with pytest.raises(ShapeError, match=f"{name} takes one tensor, got nothing"):
        layer.output_shape()
    with pytest.raises(ShapeError, match=rf"{name} takes one tensor, got \(2,\), \(3,\)"):
        layer.output_shape(dims.Shape([2]), dims.Shape([3]))


@pytest.mark.parametrize(("dim", "rank"), [(0, 0), (-1, 0), (1, 2), (-2, 2), (2, 3), (-3, 3)])
def test_softmax_takes_every_dim_the_input_has(dim: int, rank: int) -> None:
    x = torch.randn((2,) * rank)
    out = fl.Softmax(dim=dim)(x)
    assert shapes.infer(fl.Softmax(dim=dim), tuple(x.shape)).output == dims.Shape(out.shape)
    totals = out.sum(dim=dim)  # a probability distribution along dim
    torch.testing.assert_close(totals, torch.ones(totals.shape))


@pytest.mark.parametrize(("dim", "rank"), [(1, 0), (-2, 0), (2, 2), (-3, 2)])
def test_softmax_over_a_dim_the_input_lacks_is_refused_by_forward_and_rule(dim: int, rank: int) -> None:
    x = torch.randn((2,) * rank)
    with pytest.raises(IndexError):
        fl.Softmax(dim=dim)(x)
    with pytest.raises(ShapeError, match=rf"at 'Softmax'.*Softmax expects an input with a dim {dim}, got rank {rank}"):
        shapes.infer(fl.Chain(fl.Softmax(dim=dim)), tuple(x.shape))


@pytest.mark.parametrize(("dim", "rank"), [(0, 0), (-1, 0), (0, 1), (1, 2), (-2, 2), (2, 3), (-3, 3)])
def test_log_softmax_is_torchs_along_every_dim_the_input_has(dim: int, rank: int) -> None:
    x = torch.randn((3,) * rank)
    out = fl.LogSoftmax(dim=dim)(x)
    assert torch.equal(out, functional.log_softmax(x, dim))
    assert torch.equal(fl.LogSoftmax(dim=dim)(x), nn.LogSoftmax(dim=dim)(x))
    assert shapes.infer(fl.LogSoftmax(dim=dim), tuple(x.shape)).output == dims.Shape(out.shape)
    torch.testing.assert_close(out.exp().sum(dim=dim), torch.ones(out.sum(dim=dim).shape))


@pytest.mark.parametrize(("dim", "rank"), [(1, 0), (-2, 0), (2, 2), (-3, 2)])
def test_log_softmax_over_a_dim_the_input_lacks_is_refused_by_forward_and_rule(dim: int, rank: int) -> None:
    x = torch.randn((2,) * rank)
    with pytest.raises(IndexError):
        fl.LogSoftmax(dim=dim)(x)
    with pytest.raises(ShapeError, match=rf"LogSoftmax expects an input with a dim {dim}, got rank {rank}"):
        shapes.infer(fl.Chain(fl.LogSoftmax(dim=dim)), tuple(x.shape))


def test_log_softmax_default_dim_is_last_and_log_sigmoid_is_torchs() -> None:
    x = randn(3, 4, 5) * 30  # large values, where log(sigmoid(x)) computed in two steps loses precision
    assert fl.LogSoftmax().dim == -1
    assert torch.equal(fl.LogSoftmax()(x), nn.LogSoftmax(dim=-1)(x))
    assert torch.equal(fl.LogSigmoid()(x), functional.logsigmoid(x))
    assert torch.isfinite(fl.LogSigmoid()(x)).all()


# -- arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), float("inf")])
def test_dropout_refuses_a_p_that_is_no_probability(p: float) -> None:
    with pytest.raises(LayerError, match=r"Dropout: p must be a probability from 0 to 1, got"):
        fl.Dropout(p)


def test_dropout_keeps_everything_in_eval_and_drops_everything_at_p_1() -> None:
    x = randn(4, 8) + 5  # no zeros of its own
    assert torch.equal(fl.Dropout(1.0).eval()(x), x)
    assert torch.equal(fl.Dropout(1.0)(x), torch.zeros_like(x))
    kept = fl.Dropout(0.5)(x)
    survivors = kept != 0
    assert 0 < survivors.sum() < x.numel()
    torch.testing.assert_close(kept[survivors], 2 * x[survivors])  # survivors scaled by 1 / (1 - p)


def test_gelu_refuses_an_approximation_torch_does_not_have() -> None:
    with pytest.raises(LayerError, match="GeLU: approximate must be one of 'none', 'tanh', got 'fast'"):
        fl.GeLU(approximate="fast")


def test_inplace_layers_return_their_input_tensor_itself() -> None:
    x = randn(3, 4)
    assert fl.ReLU(inplace=True)(x) is x
    assert (x >= 0).all()
    y = randn(3, 4)
    assert fl.ReLU()(y) is not y
    assert (y < 0).any()  # left as it was


def test_leaky_relu_keeps_torchs_default_slope() -> None:
    assert fl.LeakyReLU().negative_slope == nn.LeakyReLU().negative_slope == 0.01
    assert fl.LeakyReLU()(torch.tensor([-100.0, 3.0])).tolist() == [-1.0, 3.0]


def test_activations_have_no_state_and_keep_gradients_flowing() -> None:
    for make_layer in ELEMENTWISE:
        layer = make_layer().eval()
        assert not list(layer.state_dict())
        x = randn(2, 5).requires_grad_()
        layer(x).sum().backward()
        assert x.grad is not None
        assert x.grad.shape == x.shape
