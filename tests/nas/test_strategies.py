"""fluxion.nas.strategies: the modes each strategy sets, the Gumbel temperature schedule, what the
architecture steps touch, and DARTS's second-order step against the exact hypergradient."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from torch.func import functional_call
from torch.nn import functional

import fluxion.layers as fl
from fluxion import nas
from fluxion.errors import NasError
from fluxion.nas.search import Search
from fluxion.nas.strategies import Darts, Gumbel, RandomSampling, StepContext, Strategy

FEATURES, CLASSES = 5, 3


def supernet() -> fl.Chain:
    return fl.Chain(
        stem=fl.Linear(FEATURES, 6),
        edge=nas.Choice(linear=fl.Linear(6, 6), tanh=fl.Tanh(), skip=fl.Identity()),
        join=nas.InputChoice(keep=1),
        head=fl.Linear(6, CLASSES),
    )


def data(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, FEATURES, generator=generator)
    return inputs, (inputs[:, 0] > 0).long() + (inputs[:, 2] > 0.5).long()


def search(strategy: Strategy, **options: Any) -> Search:
    torch.manual_seed(0)
    arguments: dict[str, Any] = {"epochs": 2, "batch_size": 4, "seed": 0, "progress": False}
    arguments.update(options)
    return Search(supernet(), data(12, 1), data(8, 2), strategy=strategy, **arguments)


@pytest.mark.parametrize(
    ("strategy", "mode"),
    [
        (Darts(), "softmax"),
        (Darts(order=2), "softmax"),
        (Gumbel(), "gumbel"),
        (Gumbel(hard=False), "gumbel_soft"),
        (RandomSampling(), "sample"),
    ],
)
def test_each_strategy_puts_every_choice_in_its_mode(strategy: Strategy, mode: str) -> None:
    model = supernet()
    nas.set_mode(model, "sample")
    strategy.prepare(model)
    assert model.edge.mode == mode
    assert model.join.mode == ("sample" if mode == "sample" else "softmax")


def test_the_gumbel_temperature_goes_down_linearly_from_tau_max_to_tau_min_over_the_run() -> None:
    run = search(Gumbel(tau_max=4.0, tau_min=0.5))
    seen: list[float] = []
    run.describe = lambda model: seen.append(model.edge.tau)  # called after each step of run()
    run.progress = True
    run.stream = io.StringIO()
    records = run.run()
    assert run.total_steps == 6
    expected = [4.0 - 3.5 * step / 5 for step in range(6)]
    assert [record.temperature for record in records] == pytest.approx(expected)
    assert seen == pytest.approx(expected)
    assert run.model.edge.tau == 0.5
    assert Gumbel(2.0, 2.0).temperature(3, 10) == 2.0
    assert Gumbel(3.0, 1.0).temperature(0, 1) == 3.0  # a run of one step stays at tau_max


@pytest.mark.parametrize(("tau_max", "tau_min"), [(1.0, 2.0), (1.0, 0.0), (-1.0, -2.0)])
def test_bad_temperatures_are_refused(tau_max: float, tau_min: float) -> None:
    with pytest.raises(NasError, match="Gumbel: temperatures are above 0 and tau_max >= tau_min"):
        Gumbel(tau_max, tau_min)


def test_darts_order_is_one_or_two() -> None:
    for order in (0, 3, True, 1.0):
        with pytest.raises(NasError, match=r"Darts: order is 1 .* or 2"):
            Darts(order=order)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", [Darts(), Gumbel(), Gumbel(hard=False)], ids=["darts", "gdas", "snas"])
def test_searching_strategies_move_the_alphas(strategy: Strategy) -> None:
    run = search(strategy)
    before = [alpha.detach().clone() for alpha in nas.arch_parameters(run.model)]
    run.run()
    after = nas.arch_parameters(run.model)
    assert all(not torch.equal(one, two) for one, two in zip(before, after, strict=True))


def test_random_sampling_takes_no_architecture_step_and_builds_no_architecture_optimizer() -> None:
    run = search(RandomSampling())
    before = [alpha.detach().clone() for alpha in nas.arch_parameters(run.model)]
    records = run.run()
    assert run.arch_optimizer is None
    assert all(torch.equal(one, two) for one, two in zip(before, nas.arch_parameters(run.model), strict=True))
    assert all(record.valid_loss > 0 for record in records)
    context = StepContext(
        run.model, functional.cross_entropy, (), (), torch.optim.SGD([torch.zeros(1)]), run.weight_optimizer, 0, 1
    )
    with pytest.raises(NasError, match="RandomSampling takes no architecture steps"):
        RandomSampling().architecture_step(context, data(2, 0), data(2, 0))


def test_an_architecture_step_replaces_the_alphas_gradients_and_leaves_the_weights() -> None:
    torch.manual_seed(0)
    model = supernet()
    alphas, weights = tuple(nas.arch_parameters(model)), tuple(nas.weights(model))
    for alpha in alphas:
        alpha.grad = torch.full_like(alpha, 100.0)  # stale: must not be added to
    optimizer = torch.optim.SGD(alphas, lr=0.0)
    context = StepContext(
        model, functional.cross_entropy, alphas, weights, optimizer, torch.optim.SGD(weights, lr=0.1), 0, 1
    )
    batch = data(6, 3)
    Darts().architecture_step(context, batch, batch)
    expected = torch.autograd.grad(functional.cross_entropy(model(batch[0]), batch[1]), alphas)
    for alpha, gradient in zip(alphas, expected, strict=True):
        torch.testing.assert_close(alpha.grad, gradient)
    assert all(weight.grad is None for weight in weights)


def test_a_step_whose_validation_loss_ignores_the_alphas_is_refused() -> None:
    run = search(Darts())
    run.model.edge.choose("tanh")
    with pytest.raises(NasError, match="the validation loss does not depend on the architecture parameters"):
        run.step()
    frozen = fl.Chain(fl.Linear(FEATURES, CLASSES)).requires_grad_(False)
    alphas = tuple(nas.arch_parameters(run.model))
    context = StepContext(
        frozen, functional.cross_entropy, alphas, (), torch.optim.SGD(alphas, lr=0.1), run.weight_optimizer, 0, 1
    )
    with pytest.raises(NasError, match="the validation loss does not depend on any parameter being trained"):
        Darts().architecture_step(context, data(2, 0), data(2, 0))


def test_the_second_order_step_follows_the_exact_hypergradient() -> None:
    """DARTS's unrolled gradient d/dalpha L_valid(w - eta * (dL_train/dw + wd * w)), computed by
    autograd through the unrolled step, against the finite-difference Hessian-vector product."""
    torch.manual_seed(0)
    model = supernet().double()
    alphas, weights = tuple(nas.arch_parameters(model)), tuple(nas.weights(model))
    eta, decay = 0.05, 3e-4
    train = (data(8, 4)[0].double(), data(8, 4)[1])
    valid = (data(8, 5)[0].double(), data(8, 5)[1])
    names = {id(parameter): name for name, parameter in model.named_parameters()}

    def loss_at(values: dict[str, torch.Tensor], batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return functional.cross_entropy(functional_call(model, values, (batch[0],)), batch[1])

    current = {names[id(p)]: p for p in (*alphas, *weights)}
    train_gradients = torch.autograd.grad(loss_at(current, train), weights, create_graph=True)
    unrolled = {names[id(p)]: p for p in alphas}
    for weight, gradient in zip(weights, train_gradients, strict=True):
        unrolled[names[id(weight)]] = weight - eta * (gradient + decay * weight)
    exact = torch.autograd.grad(loss_at(unrolled, valid), alphas)
    first_order = torch.autograd.grad(loss_at(current, valid), alphas)

    saved = [weight.detach().clone() for weight in weights]
    context = StepContext(
        model,
        functional.cross_entropy,
        alphas,
        weights,
        torch.optim.SGD(alphas, lr=0.0),
        torch.optim.SGD(weights, lr=eta, momentum=0.9, weight_decay=decay),
        0,
        1,
    )
    Darts(order=2).architecture_step(context, train, valid)
    for alpha, expected, plain in zip(alphas, exact, first_order, strict=True):
        assert alpha.grad is not None
        torch.testing.assert_close(alpha.grad, expected, rtol=1e-4, atol=1e-7)
        assert not torch.allclose(alpha.grad, plain, rtol=1e-4, atol=1e-7)  # the correction counts
    assert all(torch.equal(weight, value) for weight, value in zip(weights, saved, strict=True))


def test_the_second_order_step_undoes_the_unrolled_forwards_effect_on_the_buffers() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(FEATURES, 6), fl.BatchNorm1d(6), nas.Choice(a=fl.ReLU(), b=fl.Tanh()), fl.Linear(6, 3))
    alphas, weights = tuple(nas.arch_parameters(model)), tuple(nas.weights(model))
    context = StepContext(
        model,
        functional.cross_entropy,
        alphas,
        weights,
        torch.optim.Adam(alphas),
        torch.optim.SGD(weights, lr=0.05),
        0,
        1,
    )
    Darts(order=2).architecture_step(context, data(8, 4), data(8, 5))
    # forwards on the training batch at w, w+ and w- count (as in DARTS); the one at the unrolled w' does not
    assert int(model.BatchNorm1d.num_batches_tracked) == 3
