"""Search strategies: what each step of a search does with the architecture parameters.

A :class:`Strategy` is a set of hooks that :class:`fluxion.nas.Search` calls: ``prepare`` puts the
supernet's choices in the strategy's mode (and checks that the supernet suits it), ``begin_step``
updates what changes over the run (the Gumbel temperature), and ``architecture_step`` takes one
step on the architecture parameters from a validation batch, before the driver's weight step.

- :class:`Darts` (the default): choices in ``"softmax"`` mode; first order (the gradient of the
  validation loss, as DARTS's ``unrolled=False``), or second order (``order=2``: DARTS's unrolled
  step, with the finite-difference Hessian-vector product of its ``architect.py``).
- :class:`Gumbel`: choices in ``"gumbel"`` mode (GDAS: one path per forward, straight-through
  gradient) or ``"gumbel_soft"`` (SNAS), the temperature going down linearly from ``tau_max`` at the
  first step to ``tau_min`` at the last; architecture steps as first-order DARTS.
- :class:`RandomSampling`: choices in ``"sample"`` mode (one uniform path per forward), no
  architecture step: single-path one-shot training, the random-search baseline.

>>> import fluxion.layers as fl
>>> from fluxion import nas
>>> supernet = fl.Chain(nas.Choice(a=fl.ReLU(), b=fl.Tanh()))
>>> Gumbel(tau_max=10.0, tau_min=1.0).prepare(supernet)
>>> supernet.Choice.mode, supernet.Choice.tau
('gumbel', 10.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from fluxion.errors import NasError
from fluxion.nas.choice import Mode
from fluxion.nas.input_choice import InputChoice
from fluxion.nas.parameters import arch_parameters, choices, set_mode

LossFunction = Callable[[Any, torch.Tensor], torch.Tensor]
"""``loss(model_output, targets)``: a scalar tensor (``torch.nn.functional.cross_entropy`` by default)."""

Batch = tuple[torch.Tensor, torch.Tensor]
"""A batch of inputs and targets."""

FINITE_DIFFERENCE_SCALE = 1e-2
"""DARTS's ``r``: the step of the Hessian-vector product's central difference is ``r / ||v||``."""


@dataclass(frozen=True)
class StepContext:
    """What a strategy's architecture step works with: the model, the loss, both optimizers and their
    parameters (the weight optimizer's weights, the architecture optimizer's parameters), and where the
    run is (``step`` counts from 0).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> from fluxion import nas
    >>> model = fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU(), b=fl.Tanh()))
    >>> context = StepContext(
    ...     model, torch.nn.functional.mse_loss, tuple(nas.arch_parameters(model)), tuple(nas.weights(model)),
    ...     torch.optim.Adam(nas.arch_parameters(model)), torch.optim.SGD(nas.weights(model), lr=0.1), 0, 10,
    ... )
    >>> len(context.arch_parameters), len(context.weights)
    (1, 2)
    """

    model: torch.nn.Module
    loss: LossFunction
    arch_parameters: tuple[torch.nn.Parameter, ...]
    weights: tuple[torch.nn.Parameter, ...]
    arch_optimizer: torch.optim.Optimizer
    weight_optimizer: torch.optim.Optimizer
    step: int
    total_steps: int


class Strategy:
    """The hooks a search calls; the base class is first-order DARTS in ``mode`` (override what differs).

    ``searches_architecture`` says whether the strategy takes architecture steps (and so needs
    architecture parameters and an architecture optimizer). ``settings()`` is what a checkpoint
    records so that a run resumes only under the same strategy.

    >>> import fluxion.layers as fl
    >>> from fluxion import nas
    >>> class Softmax(Strategy):
    ...     name = "softmax"
    >>> model = fl.Chain(nas.Choice(a=fl.ReLU(), b=fl.Tanh(), mode="sample"))
    >>> Softmax().prepare(model)
    >>> model.Choice.mode
    'softmax'
    """

    name: ClassVar[str] = "strategy"
    mode: Mode = "softmax"
    searches_architecture: ClassVar[bool] = True

    def settings(self) -> dict[str, Any]:
        """The strategy's name and settings, as JSON (recorded in checkpoints).

        >>> Darts().settings()
        {'name': 'darts', 'order': 1}
        """
        return {"name": self.name}

    def prepare(self, model: torch.nn.Module) -> None:
        """Check that ``model`` suits the strategy and put its choices in the strategy's mode (input
        choices in ``"softmax"`` mode, adding every input, when the mode is one they lack).

        >>> import fluxion.layers as fl
        >>> Darts().prepare(fl.Chain(fl.Linear(2, 2)))
        Traceback (most recent call last):
        ...
        fluxion.errors.NasError: the darts strategy searches architecture parameters, but the model has none ...
        """
        if self.searches_architecture and not arch_parameters(model):
            raise NasError(
                f"the {self.name} strategy searches architecture parameters, but the model has none "
                "(no Choice or InputChoice with weights): give it a supernet, or use RandomSampling()"
            )
        set_mode(model, self.mode, tau=self.temperature(0, 1))
        if self.mode not in ("softmax", "sample"):  # modes joins do not have: they add every input
            for _, join in choices(model):
                if isinstance(join, InputChoice):
                    join.set_mode("softmax")

    def temperature(self, step: int, total_steps: int) -> float | None:
        """The softmax temperature at ``step`` (from 0) of ``total_steps``; ``None`` when the mode has none.

        >>> Darts().temperature(0, 10) is None
        True
        """
        return None

    def begin_step(self, model: torch.nn.Module, step: int, total_steps: int) -> None:
        """Called before each step (``step`` from 0): sets the temperature when the strategy has one.

        >>> import fluxion.layers as fl
        >>> from fluxion import nas
        >>> model = fl.Chain(nas.Choice(a=fl.ReLU(), b=fl.Tanh()))
        >>> Gumbel(tau_max=4.0, tau_min=1.0).begin_step(model, 1, 3)
        >>> model.Choice.tau
        2.5
        """
        tau = self.temperature(step, total_steps)
        if tau is not None:
            set_mode(model, self.mode, tau=tau)

    def architecture_step(self, context: StepContext, train: Batch, valid: Batch) -> torch.Tensor:
        """One first-order step: the validation loss's gradient (the alphas' gradients replaced, nothing
        else touched), then the architecture optimizer's step; returns the validation loss (detached).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> from fluxion import nas
        >>> model = fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU(), b=fl.Tanh()))
        >>> context = StepContext(
        ...     model, torch.nn.functional.mse_loss, tuple(nas.arch_parameters(model)), tuple(nas.weights(model)),
        ...     torch.optim.Adam(nas.arch_parameters(model)), torch.optim.SGD(nas.weights(model), lr=0.1), 0, 1,
        ... )
        >>> batch = (torch.randn(4, 2), torch.randn(4, 2))
        >>> before = model.Choice.alphas.detach().clone()
        >>> loss = Darts().architecture_step(context, batch, batch)
        >>> bool((model.Choice.alphas != before).any()), model.Linear.weight.grad is None
        (True, True)
        """
        inputs, targets = valid
        loss = context.loss(context.model(inputs), targets)
        gradients = _gradients(loss, context.arch_parameters, "validation")
        if all(gradient is None for gradient in gradients):
            raise NasError(
                "the validation loss does not depend on the architecture parameters: are the choices in "
                f"'fixed' or 'sample' mode? (the {self.name} strategy puts them in {self.mode!r})"
            )
        _set_gradients(context.arch_parameters, gradients)
        context.arch_optimizer.step()
        return loss.detach()


class Darts(Strategy):
    """DARTS: every choice a softmax-weighted sum; first order by default, ``order=2`` for DARTS's
    unrolled (second-order) architecture step.

    The second-order step follows DARTS's ``architect.py``: with the weight optimizer's learning
    rate ``eta``, momentum and weight decay, the unrolled weights are
    ``w' = w - eta * (momentum * buffer + dL_train/dw + weight_decay * w)``; the architecture
    gradient is ``dL_valid(w')/dalpha - eta * (dL_train(w+)/dalpha - dL_train(w-)/dalpha) / (2 eps)``
    with ``w± = w ± eps * dL_valid(w')/dw'`` and ``eps = 0.01 / ||dL_valid(w')/dw'||``. The weights
    are moved in place and put back exactly; the forward pass at the unrolled weights leaves the
    buffers (batch-norm statistics) as they were, as DARTS's copy of the model does.

    >>> Darts(order=2).settings()
    {'name': 'darts', 'order': 2}
    >>> Darts(order=3)
    Traceback (most recent call last):
    ...
    fluxion.errors.NasError: Darts: order is 1 (first order) or 2 (second order, unrolled), got 3
    """

    name = "darts"

    def __init__(self, order: int = 1) -> None:
        if type(order) is not int or order not in (1, 2):
            raise NasError(f"Darts: order is 1 (first order) or 2 (second order, unrolled), got {order!r}")
        self.order = order

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "order": self.order}

    def architecture_step(self, context: StepContext, train: Batch, valid: Batch) -> torch.Tensor:
        if self.order == 1:
            return super().architecture_step(context, train, valid)
        return _second_order_step(context, train, valid)


class Gumbel(Strategy):
    """Gumbel-softmax search: GDAS (``hard=True``, mode ``"gumbel"``: one path per forward) or SNAS
    (``hard=False``, mode ``"gumbel_soft"``), the temperature going down linearly from ``tau_max``
    at the first step to ``tau_min`` at the last (GDAS's defaults: 10 to 0.1); architecture steps
    as first-order DARTS.

    >>> strategy = Gumbel(tau_max=10.0, tau_min=0.1)
    >>> [round(strategy.temperature(step, 4), 2) for step in range(4)]
    [10.0, 6.7, 3.4, 0.1]
    >>> Gumbel(tau_max=0.1, tau_min=1.0)
    Traceback (most recent call last):
    ...
    fluxion.errors.NasError: Gumbel: temperatures are above 0 and tau_max >= tau_min, got tau_max=0.1, tau_min=1.0
    """

    name = "gumbel"

    def __init__(self, tau_max: float = 10.0, tau_min: float = 0.1, *, hard: bool = True) -> None:
        if not (tau_min > 0 and tau_max >= tau_min):
            raise NasError(
                f"Gumbel: temperatures are above 0 and tau_max >= tau_min, got tau_max={tau_max!r}, tau_min={tau_min!r}"
            )
        self.tau_max = float(tau_max)
        self.tau_min = float(tau_min)
        self.hard = hard
        self.mode = "gumbel" if hard else "gumbel_soft"

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "tau_max": self.tau_max, "tau_min": self.tau_min, "hard": self.hard}

    def temperature(self, step: int, total_steps: int) -> float:
        if total_steps <= 1:
            return self.tau_max
        fraction = min(max(step, 0), total_steps - 1) / (total_steps - 1)
        return self.tau_max - (self.tau_max - self.tau_min) * fraction


class RandomSampling(Strategy):
    """Single-path one-shot training, the random-search baseline: each forward runs one uniformly
    drawn candidate of every choice (mode ``"sample"``); no architecture step, the alphas stay as
    they are.

    >>> import fluxion.layers as fl
    >>> from fluxion import nas
    >>> model = fl.Chain(nas.Choice(a=fl.ReLU(), b=fl.Tanh()))
    >>> RandomSampling().prepare(model)
    >>> model.Choice.mode, RandomSampling.searches_architecture
    ('sample', False)
    """

    name = "random"
    mode = "sample"
    searches_architecture = False

    def architecture_step(self, context: StepContext, train: Batch, valid: Batch) -> torch.Tensor:
        raise NasError("RandomSampling takes no architecture steps")


def _gradients(
    loss: torch.Tensor, parameters: Sequence[torch.nn.Parameter], what: str
) -> tuple[torch.Tensor | None, ...]:
    """``d loss / d parameters`` (None where a parameter does not count), without touching any ``.grad``."""
    if not loss.requires_grad:
        raise NasError(
            f"the {what} loss does not depend on any parameter being trained (are the choices in 'fixed' mode, "
            "or the forward under torch.no_grad?)"
        )
    trainable = [parameter for parameter in parameters if parameter.requires_grad]
    found = iter(torch.autograd.grad(loss, trainable, allow_unused=True))
    return tuple(next(found) if parameter.requires_grad else None for parameter in parameters)


def _set_gradients(parameters: Sequence[torch.nn.Parameter], gradients: Sequence[torch.Tensor | None]) -> None:
    for parameter, gradient in zip(parameters, gradients, strict=True):
        parameter.grad = gradient


def _second_order_step(context: StepContext, train: Batch, valid: Batch) -> torch.Tensor:
    """DARTS's unrolled architecture step (see :class:`Darts`)."""
    model, loss_of = context.model, context.loss
    alphas, weights = context.arch_parameters, context.weights
    eta, moves = _unrolled_moves(context, train)
    saved = [weight.detach().clone() for weight in weights]
    buffers = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        with torch.no_grad():
            for weight, move in zip(weights, moves, strict=True):
                weight.sub_(move, alpha=eta)
        valid_loss = loss_of(model(valid[0]), valid[1])
        both = _gradients(valid_loss, (*alphas, *weights), "validation")
        with torch.no_grad():
            for buffer, value in buffers:
                buffer.copy_(value)
        alpha_gradients, vector = both[: len(alphas)], both[len(alphas) :]
        directions = [torch.zeros_like(w) if v is None else v for w, v in zip(weights, vector, strict=True)]
        norm = float(torch.cat([direction.reshape(-1) for direction in directions]).square().sum().sqrt())
        epsilon = FINITE_DIFFERENCE_SCALE / norm if norm > 0 else 0.0
        if epsilon == 0.0:
            implicit: list[torch.Tensor | None] = [None] * len(alphas)
        else:
            plus = _train_alpha_gradients(context, train, saved, directions, epsilon)
            minus = _train_alpha_gradients(context, train, saved, directions, -epsilon)
            implicit = [
                None if p is None or m is None else (p - m) / (2 * epsilon) for p, m in zip(plus, minus, strict=True)
            ]
    finally:
        with torch.no_grad():
            for weight, value in zip(weights, saved, strict=True):
                weight.copy_(value)
    gradients: list[torch.Tensor | None] = []
    for direct, correction in zip(alpha_gradients, implicit, strict=True):
        if correction is None:
            gradients.append(direct)
        else:
            gradients.append(-eta * correction if direct is None else direct - eta * correction)
    _set_gradients(alphas, gradients)
    context.arch_optimizer.step()
    return valid_loss.detach()


def _unrolled_moves(context: StepContext, train: Batch) -> tuple[float, list[torch.Tensor]]:
    """The weight optimizer's learning rate and, per weight, ``momentum * buffer + dL_train/dw + wd * w``."""
    optimizer = context.weight_optimizer
    group_of: dict[int, dict[str, Any]] = {
        id(parameter): group for group in optimizer.param_groups for parameter in group["params"]
    }
    eta = float(optimizer.param_groups[0]["lr"])
    loss = context.loss(context.model(train[0]), train[1])
    gradients = _gradients(loss, context.weights, "training")
    moves: list[torch.Tensor] = []
    for weight, gradient in zip(context.weights, gradients, strict=True):
        group = group_of.get(id(weight), {})
        move = torch.zeros_like(weight) if gradient is None else gradient.detach().clone()
        move.add_(weight.detach(), alpha=float(group.get("weight_decay", 0.0)))
        buffer = optimizer.state.get(weight, {}).get("momentum_buffer")
        if isinstance(buffer, torch.Tensor):
            move.add_(buffer, alpha=float(group.get("momentum", 0.0)))
        moves.append(move)
    return eta, moves


def _train_alpha_gradients(
    context: StepContext, train: Batch, saved: Sequence[torch.Tensor], directions: Sequence[torch.Tensor], step: float
) -> list[torch.Tensor | None]:
    """``dL_train/dalpha`` at ``w + step * direction``."""
    with torch.no_grad():
        for weight, value, direction in zip(context.weights, saved, directions, strict=True):
            weight.copy_(value).add_(direction, alpha=step)
    loss = context.loss(context.model(train[0]), train[1])
    return list(_gradients(loss, context.arch_parameters, "training"))
