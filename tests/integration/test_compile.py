"""Every layer and combinator compiles with ``torch.compile(fullgraph=True)``: no graph breaks, same outputs.

Each case is wrapped in an ``fl.Chain`` so that the Chain machinery itself (child calls, tuple
unpacking, failure reporting, context clearing) is traced too. Graph breaks are counted with
``torch._dynamo.explain``, cross-checked with dynamo's own counters, and outputs compared under
the ``aot_eager`` backend (inductor takes seconds per graph; one test below uses it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch._dynamo
from torch import Tensor
from torch._dynamo.utils import counters

import fluxion.layers as fl
from tests.conftest import COMPILE_MARKS

Case = tuple[torch.nn.Module, tuple[Any, ...]]

pytestmark = COMPILE_MARKS


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def chain(
    make: Callable[[], tuple[list[torch.nn.Module], tuple[Any, ...]]], training: bool = False
) -> Callable[[], Case]:
    """A case: the children ``make`` returns, wrapped in a Chain (weights seeded), and the inputs."""

    def build() -> Case:
        torch.manual_seed(0)
        children, inputs = make()
        return fl.Chain(*children).train(training), inputs

    return build


def mha_with_mask() -> tuple[list[torch.nn.Module], tuple[Any, ...]]:
    mask = torch.ones(5, 7, dtype=torch.bool).tril()
    return [fl.MultiHeadAttention(8, 2, key_dim=6), fl.LayerNorm(8)], (randn(2, 5, 8), randn(2, 7, 6), None, mask)


def context_model() -> tuple[list[torch.nn.Module], tuple[Any, ...]]:
    return [
        fl.Chain(fl.Linear(4, 4), fl.SetContext("unet", "skip")),
        fl.SetContext("unet", "all", callback=lambda seen, x: [*(seen or []), x]),
        fl.ReLU(),
        fl.Chain(
            fl.Chain(fl.Linear(4, 4), fl.Sum(fl.Identity(), fl.UseContext("unet", "skip"))),
            fl.SetContext("unet", "all", callback=lambda seen, x: [*(seen or []), x]),
        ),
        fl.Sum(fl.Identity(), fl.UseContext("unet", "all", func=lambda seen: torch.stack(seen).sum(0))),
    ], (randn(3, 4),)


CASES: list[Any] = [
    # weighted leaves
    pytest.param(chain(lambda: ([fl.Linear(4, 6)], (randn(2, 3, 4),))), id="Linear"),
    pytest.param(chain(lambda: ([fl.Embedding(10, 4)], (torch.tensor([[1, 2, 9]]),))), id="Embedding"),
    pytest.param(chain(lambda: ([fl.Conv1d(3, 4, 3, padding=1)], (randn(2, 3, 8),))), id="Conv1d"),
    pytest.param(chain(lambda: ([fl.Conv2d(3, 4, 3, stride=2)], (randn(2, 3, 9, 9),))), id="Conv2d"),
    pytest.param(
        chain(lambda: ([fl.Conv2d(4, 4, 3, padding=1, padding_mode="reflect", groups=2)], (randn(1, 4, 6, 6),))),
        id="Conv2d-reflect",
    ),
    pytest.param(chain(lambda: ([fl.Conv3d(2, 3, 3, padding=1)], (randn(1, 2, 4, 4, 4),))), id="Conv3d"),
    pytest.param(chain(lambda: ([fl.ConvTranspose2d(4, 2, 2, stride=2)], (randn(1, 4, 5, 5),))), id="ConvTranspose2d"),
    pytest.param(
        chain(
            lambda: (
                [
                    fl.Parallel(fl.Identity(), fl.Lambda(lambda _: [10, 10])),
                    fl.ConvTranspose2d(4, 2, 3, stride=2, padding=1),
                ],
                (randn(1, 4, 5, 5),),
            )
        ),
        id="ConvTranspose2d-output_size",
    ),
    pytest.param(chain(lambda: ([fl.BatchNorm1d(4)], (randn(3, 4, 5),))), id="BatchNorm1d"),
    pytest.param(chain(lambda: ([fl.BatchNorm2d(3)], (randn(2, 3, 4, 4),))), id="BatchNorm2d"),
    pytest.param(chain(lambda: ([fl.BatchNorm2d(3)], (randn(2, 3, 4, 4),)), training=True), id="BatchNorm2d-train"),
    pytest.param(chain(lambda: ([fl.LayerNorm(6)], (randn(2, 3, 6),))), id="LayerNorm"),
    pytest.param(chain(lambda: ([fl.GroupNorm(2, 4)], (randn(2, 4, 3, 3),))), id="GroupNorm"),
    pytest.param(chain(lambda: ([fl.RMSNorm(6)], (randn(2, 3, 6),))), id="RMSNorm"),
    # weightless leaves
    # alone, each would leave an empty graph, which explain reports as graph_break_count -1
    pytest.param(
        chain(lambda: ([fl.Identity(), fl.Dropout(0.5), fl.Lambda(torch.exp)], (randn(2, 3),))), id="Identity-Dropout"
    ),
    pytest.param(
        chain(lambda: ([fl.ReLU(), fl.GeLU(), fl.GeLU(approximate="tanh"), fl.SiLU()], (randn(2, 5),))),
        id="ReLU-GeLU-SiLU",
    ),
    pytest.param(
        chain(lambda: ([fl.Sigmoid(), fl.Tanh(), fl.LeakyReLU(0.2)], (randn(2, 5),))), id="Sigmoid-Tanh-LeakyReLU"
    ),
    pytest.param(chain(lambda: ([fl.Softmax(), fl.Softmax(dim=0)], (randn(2, 5),))), id="Softmax"),
    pytest.param(chain(lambda: ([fl.MaxPool2d(2)], (randn(1, 2, 6, 6),))), id="MaxPool2d"),
    pytest.param(
        chain(lambda: ([fl.MaxPool2d(2, return_indices=True), fl.Lambda(lambda v, i: v + i)], (randn(1, 2, 6, 6),))),
        id="MaxPool2d-indices",
    ),
    pytest.param(chain(lambda: ([fl.AvgPool2d(3, stride=2, padding=1)], (randn(1, 2, 6, 6),))), id="AvgPool2d"),
    pytest.param(chain(lambda: ([fl.AdaptiveAvgPool2d((2, 3))], (randn(1, 2, 6, 6),))), id="AdaptiveAvgPool2d"),
    pytest.param(chain(lambda: ([fl.LogSoftmax(), fl.LogSigmoid()], (randn(2, 5),))), id="LogSoftmax-LogSigmoid"),
    pytest.param(
        chain(lambda: ([fl.MaxPool1d(3, stride=2, padding=1), fl.AvgPool1d(2, ceil_mode=True)], (randn(2, 3, 9),))),
        id="MaxPool1d-AvgPool1d",
    ),
    pytest.param(
        chain(lambda: ([fl.MaxPool3d((1, 2, 2)), fl.AvgPool3d(2, divisor_override=3)], (randn(1, 2, 4, 6, 6),))),
        id="MaxPool3d-AvgPool3d",
    ),
    pytest.param(
        chain(lambda: ([fl.AdaptiveAvgPool1d(3), fl.AdaptiveMaxPool1d(2)], (randn(2, 3, 9),))),
        id="AdaptiveAvgPool1d-AdaptiveMaxPool1d",
    ),
    pytest.param(
        chain(
            lambda: (
                [fl.AdaptiveMaxPool2d((None, 2), return_indices=True), fl.Lambda(lambda v, i: v + i)],
                (randn(1, 2, 5, 6),),
            )
        ),
        id="AdaptiveMaxPool2d-indices",
    ),
    pytest.param(
        chain(lambda: ([fl.Flatten(), fl.Unflatten(1, (4, 9)), fl.Reshape(2, 2, -1)], (randn(2, 4, 3, 3),))),
        id="Flatten-Unflatten-Reshape",
    ),
    pytest.param(
        chain(lambda: ([fl.Permute(0, 2, 1), fl.Transpose(0, -1), fl.Unsqueeze(1), fl.Squeeze(1)], (randn(2, 3, 4),))),
        id="Permute-Transpose-Squeeze",
    ),
    pytest.param(
        chain(lambda: ([fl.Slicing(dim=1, start=-5, end=-1, step=2), fl.Slicing(dim=-1, end=0)], (randn(2, 7, 3),))),
        id="Slicing",
    ),
    pytest.param(
        chain(lambda: ([fl.Chunk(3, dim=-1), fl.Lambda(lambda a, b, c: a * b + c)], (randn(2, 6),))), id="Chunk"
    ),
    pytest.param(chain(lambda: ([fl.Unbind(1), fl.Lambda(lambda a, b: a - b)], (randn(4, 2),))), id="Unbind"),
    pytest.param(
        chain(lambda: ([fl.Upsample(scale_factor=2), fl.Upsample(size=(5, 7), mode="bilinear")], (randn(1, 2, 3, 3),))),
        id="Upsample",
    ),
    pytest.param(
        chain(
            lambda: (
                [fl.Parallel(fl.Identity(), fl.Lambda(lambda x: (x.shape[-2] * 2, x.shape[-1] + 1))), fl.Interpolate()],
                (randn(1, 2, 3, 4),),
            )
        ),
        id="Interpolate",
    ),
    pytest.param(chain(lambda: ([fl.PixelShuffle(2)], (randn(1, 8, 3, 3),))), id="PixelShuffle"),
    pytest.param(
        chain(
            lambda: (
                [
                    fl.Parallel(fl.Identity(), fl.Identity(), fl.Identity()),
                    fl.ScaledDotProductAttention(2, is_causal=True),
                ],
                (randn(2, 5, 8),),
            )
        ),
        id="ScaledDotProductAttention",
    ),
    pytest.param(chain(lambda: ([fl.MultiHeadAttention(8, 2)], (randn(2, 5, 8),))), id="MultiHeadAttention"),
    pytest.param(
        chain(lambda: ([fl.MultiHeadAttention(8, 4, is_causal=True)], (randn(2, 5, 8),))),
        id="MultiHeadAttention-causal",
    ),
    pytest.param(chain(mha_with_mask), id="MultiHeadAttention-cross-mask"),
    # combinators
    pytest.param(
        chain(lambda: ([fl.Chain(fl.Linear(4, 4), fl.Chain(fl.ReLU(), fl.Linear(4, 2)))], (randn(2, 4),))),
        id="Chain-nested",
    ),
    pytest.param(
        chain(lambda: ([fl.Passthrough(fl.Linear(4, 4), fl.ReLU()), fl.Linear(4, 2)], (randn(2, 4),))), id="Passthrough"
    ),
    pytest.param(
        chain(lambda: ([fl.Residual(fl.Linear(4, 8), fl.GeLU(), fl.Linear(8, 4))], (randn(2, 4),))), id="Residual"
    ),
    pytest.param(chain(lambda: ([fl.Sum(fl.Linear(4, 4), fl.Identity(), fl.Tanh())], (randn(2, 4),))), id="Sum"),
    pytest.param(
        chain(lambda: ([fl.Parallel(fl.Linear(4, 3), fl.Linear(4, 3)), fl.Lambda(torch.mul)], (randn(2, 4),))),
        id="Parallel",
    ),
    pytest.param(
        chain(
            lambda: (
                [fl.Distribute(fl.Linear(4, 3), fl.Linear(5, 3)), fl.Lambda(torch.sub)],
                (randn(2, 4), randn(2, 5)),
            )
        ),
        id="Distribute",
    ),
    pytest.param(
        chain(lambda: ([fl.Concatenate(fl.Linear(4, 3), fl.Identity(), dim=-1)], (randn(2, 4),))), id="Concatenate"
    ),
    pytest.param(chain(lambda: ([fl.Matmul(fl.Linear(4, 4), fl.Transpose(-1, -2))], (randn(2, 3, 4),))), id="Matmul"),
    pytest.param(chain(lambda: ([fl.Lambda(lambda x, y: (x * y).sum(-1))], (randn(2, 4), randn(2, 4)))), id="Lambda"),
    pytest.param(chain(context_model), id="SetContext-UseContext"),
    pytest.param(
        chain(
            lambda: ([fl.Chain(fl.Linear(4, 4), fl.Return(), fl.Lambda(torch.neg)), fl.Linear(4, 2)], (randn(2, 4),))
        ),
        id="Return",
    ),
    pytest.param(
        chain(lambda: ([fl.Residual(fl.Linear(4, 4), fl.Return(), fl.Tanh())], (randn(2, 4),))),
        id="Return-in-Residual",
    ),
    # TorchArc's own modules
    pytest.param(
        chain(
            lambda: ([fl.Chunk(2, dim=0), fl.Get(1), fl.Narrow(0, -2, 2), fl.IndexSelect(-1, [2, 0])], (randn(6, 3),))
        ),
        id="Get-Narrow-IndexSelect",
    ),
    pytest.param(
        chain(lambda: ([fl.Reduce("max", dim=1), fl.Get(0), fl.Reduce("mean", dim=[0, 1])], (randn(2, 3, 4),))),
        id="Reduce",
    ),
    pytest.param(
        chain(lambda: ([fl.TorchFunction("topk", k=2, dim=-1), fl.Get(0)], (randn(2, 5),))), id="TorchFunction"
    ),
    pytest.param(chain(lambda: ([fl.Split([2, 2], dim=1), fl.Stack(dim=1)], (randn(2, 4, 3),))), id="Split-Stack"),
    pytest.param(chain(lambda: ([fl.Split(2, dim=1), fl.Mean()], (randn(2, 4),))), id="Mean"),
    pytest.param(chain(lambda: ([fl.VecDot()], (randn(2, 3, 5), randn(3, 5)))), id="VecDot"),
    pytest.param(chain(lambda: ([fl.BatchMatmul()], (randn(2, 3, 4), randn(2, 4, 5)))), id="BatchMatmul"),
    pytest.param(chain(lambda: ([fl.FiLM(4, 3)], (randn(2, 4, 5, 5), randn(2, 3)))), id="FiLM"),
]


@pytest.mark.parametrize("make", CASES)
def test_no_graph_breaks(make: Callable[[], Case]) -> None:
    model, inputs = make()
    explanation = torch._dynamo.explain(model)(*inputs)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    # explain alone misses breaks that make dynamo skip a whole frame (e.g. inside a try block,
    # which every Chain.forward has): dynamo's own counters see them
    assert not counters["graph_break"], list(counters["graph_break"])
    assert not counters["unimplemented"], list(counters["unimplemented"])


@pytest.mark.parametrize("make", CASES)
def test_compiled_output_matches_eager(make: Callable[[], Case]) -> None:
    model, inputs = make()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    expected = model(*inputs)
    torch.testing.assert_close(compiled(*inputs), expected)
    torch.testing.assert_close(compiled(*inputs), expected)  # a second call reuses the graph, context included


def test_context_set_from_outside_compiles() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(4, 4), fl.Chain(fl.Sum(fl.Identity(), fl.UseContext("run", "t"))))
    x, t = randn(2, 4), randn(2, 4, seed=1)
    model.set_context("run", {"t": t})
    expected = model(x)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    model.set_context("run", {"t": t})
    torch.testing.assert_close(compiled(x), expected)
    assert model.use_context("run") == {}  # cleared after the compiled call as after an eager one


def test_inductor_compiles_a_chain_with_context() -> None:
    torch.manual_seed(0)
    model = fl.Chain(
        fl.Linear(8, 16),
        fl.ReLU(),
        fl.SetContext("net", "hidden"),
        fl.Residual(fl.Linear(16, 16), fl.ReLU(), fl.Linear(16, 16)),
        fl.Sum(fl.Identity(), fl.UseContext("net", "hidden")),
        fl.Linear(16, 4),
    ).eval()
    x = randn(3, 8)
    expected = model(x)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), expected)
    torch.testing.assert_close(compiled(x), expected)
    assert counters["stats"]["unique_graphs"] == 1
