"""Models with LoRA adapters compile with ``torch.compile(fullgraph=True)``: no graph breaks, eager outputs.

Graph breaks are counted with ``torch._dynamo.explain`` and dynamo's own counters; outputs are
compared under the ``aot_eager`` backend (as in ``tests/integration/test_compile.py``). The scale is a
buffer, so ``lora.set_scale`` after compiling changes the compiled output without a recompile.
"""

from collections.abc import Callable

import pytest
import torch
import torch._dynamo
from torch import Tensor
from torch._dynamo.utils import counters

import fluxion.layers as fl
from fluxion.adapters import lora
from tests.conftest import COMPILE_MARKS

pytestmark = COMPILE_MARKS


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def random_init(down: Tensor, up: Tensor) -> None:
    down.normal_(std=0.3)
    up.normal_(std=0.3)


def linear_model() -> tuple[fl.Chain, Tensor]:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(8, 16), fl.GeLU(), fl.Linear(16, 16), fl.ReLU(), torch.nn.Linear(16, 4))
    lora.inject(model, rank=2, alpha=4.0, init=random_init)
    return model, randn(3, 8)


def conv_model() -> tuple[fl.Chain, Tensor]:
    torch.manual_seed(0)
    model = fl.Chain(
        fl.Conv2d(3, 6, 3, padding=1, padding_mode="circular"),
        fl.ReLU(),
        fl.Conv2d(6, 6, 3, stride=2, dilation=2, padding=2),
        fl.Flatten(),
        fl.Linear(6 * 4 * 4, 5),
    )
    lora.inject(model, rank=3, targets=fl.Conv2d, init=random_init)
    return model, randn(2, 3, 8, 8)


def stacked_model() -> tuple[fl.Chain, Tensor]:
    model, x = conv_model()
    lora.inject(model, rank=2, scale=0.5, init=random_init, name="second")  # on the convs, and the Linear alone
    lora.inject(model, rank=1, targets="Linear", init=random_init, name="third")
    return model, x


CASES = [
    pytest.param(linear_model, id="Linear"),
    pytest.param(conv_model, id="Conv2d"),
    pytest.param(stacked_model, id="stacked"),
]


@pytest.mark.parametrize("make", CASES)
def test_no_graph_breaks_and_compiled_output_matches_eager(make: Callable[[], tuple[fl.Chain, Tensor]]) -> None:
    model, x = make()
    assert lora.adapters(model)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    assert not counters["graph_break"], list(counters["graph_break"])
    assert not counters["unimplemented"], list(counters["unimplemented"])

    torch._dynamo.reset()
    expected = model(x)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), expected)
    # the gradients flow to the LoRA weights through the compiled graph as in eager
    parameters = lora.trainable_parameters(model)
    eager_grads = torch.autograd.grad(model(x).square().sum(), parameters)
    compiled_grads = torch.autograd.grad(compiled(x).square().sum(), parameters)
    for eager, compiled_grad in zip(eager_grads, compiled_grads, strict=True):
        torch.testing.assert_close(compiled_grad, eager)


def test_set_scale_after_compiling_changes_the_compiled_output_without_recompiling() -> None:
    model, x = stacked_model()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    full = model(x)
    torch.testing.assert_close(compiled(x), full)

    lora.set_scale(model, 0.25, name="second")
    expected = model(x)
    assert not torch.allclose(expected, full, atol=1e-3)
    torch.testing.assert_close(compiled(x), expected)

    lora.set_scale(model, 0.0)
    off = compiled(x)
    assert counters["stats"]["unique_graphs"] == 1
    lora.eject(model)
    torch.testing.assert_close(off, model(x))  # scale 0 everywhere: the base model's output
