"""``evaluate``: train a discrete network (a searched architecture) from scratch and report how it does.

DARTS's evaluation (``train.py``) in small: SGD on the weights (lr 0.025, momentum 0.9, weight
decay 3e-4) annealed by a cosine over the epochs, gradient norm clipped at 5, an auxiliary loss
weighted by ``auxiliary_weight`` (DARTS: 0.4) for models that return ``(logits, aux_logits)`` in
training, and drop-path raised linearly over the epochs (every ``DropPath`` gets
``p = drop_path * epoch / epochs``, epochs from 0). Batches come in an order drawn per epoch from
``(seed, epoch)``, and torch's random state is seeded with ``seed`` for the run and put back after,
so an evaluation is the same whatever ran before it.

>>> import torch
>>> import fluxion.layers as fl
>>> _ = torch.manual_seed(0)
>>> inputs = torch.randn(64, 2)
>>> targets = (inputs[:, 0] > 0).long()
>>> model = fl.Chain(fl.Linear(2, 8), fl.ReLU(), fl.Linear(8, 2))
>>> result = evaluate(model, (inputs, targets), (inputs, targets), epochs=20, batch_size=16, lr=0.1)
>>> result.parameters, result.test_accuracy > 0.9
(42, True)
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, TextIO, cast

import torch

from fluxion.errors import NasError
from fluxion.nas.operations import DropPath
from fluxion.nas.parameters import weights
from fluxion.nas.search import Batches, Data
from fluxion.nas.strategies import LossFunction
from fluxion.progress import Ticker


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of an evaluation (``epoch`` from 1): its learning rate and drop-path probability,
    the mean training loss, and the loss and accuracy on the test data after it.

    >>> EpochRecord(epoch=1, lr=0.025, drop_path=0.0, train_loss=0.7, test_loss=0.6, test_accuracy=0.75).epoch
    1
    """

    epoch: int
    lr: float
    drop_path: float
    train_loss: float
    test_loss: float
    test_accuracy: float


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` found: the weights' count (shared tensors once, auxiliary head included),
    the last epoch's mean training loss, the test accuracy after the last epoch (a fraction), and
    every epoch's record.

    >>> record = EpochRecord(epoch=1, lr=0.025, drop_path=0.0, train_loss=0.7, test_loss=0.6, test_accuracy=0.75)
    >>> Evaluation(parameters=42, train_loss=0.7, test_accuracy=0.75, history=(record,)).test_accuracy
    0.75
    """

    parameters: int
    train_loss: float
    test_accuracy: float
    history: tuple[EpochRecord, ...]


def evaluate(
    model: torch.nn.Module,
    train: Data,
    test: Data,
    *,
    epochs: int,
    batch_size: int = 96,
    seed: int = 0,
    lr: float = 0.025,
    momentum: float = 0.9,
    weight_decay: float = 3e-4,
    min_lr: float = 0.0,
    grad_clip: float | None = 5.0,
    auxiliary_weight: float | None = None,
    drop_path: float = 0.0,
    loss: LossFunction = torch.nn.functional.cross_entropy,
    progress: bool | None = None,
    stream: TextIO | None = None,
) -> Evaluation:
    """Train ``model``'s weights on ``train`` for ``epochs`` and test it on ``test`` after each epoch.

    The data are ``(inputs, targets)`` tensors or Datasets of pairs, targets being class indices
    (accuracy is the share of ``argmax`` of the logits equal to the target). A model that returns a
    tuple gives its logits first; with ``auxiliary_weight``, training adds that weight times the loss
    of the second output (DARTS's auxiliary head). ``min_lr`` is where the cosine ends (DARTS: 0).
    A progress line shows on a terminal (``progress=True``/``False`` forces it).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> data = (torch.randn(8, 2), torch.randint(0, 2, (8,)))
    >>> evaluate(fl.Chain(fl.Linear(2, 2)), data, data, epochs=1, auxiliary_weight=0.4)
    Traceback (most recent call last):
    ...
    fluxion.errors.NasError: evaluate: auxiliary_weight=0.4 needs a model that returns (logits, aux_logits) ...
    """
    _check_arguments(model, epochs, drop_path, auxiliary_weight, grad_clip)
    train_batches = Batches("train", train, batch_size=batch_size, seed=seed)
    test_batches = Batches("test", test, batch_size=batch_size, seed=seed)
    trained = weights(model)
    if not trained:
        raise NasError("evaluate: the model has no weights to train")
    optimizer: torch.optim.Optimizer = torch.optim.SGD(trained, lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=min_lr)
    drops = [module for module in model.modules() if isinstance(module, DropPath)]
    device = next((parameter.device for parameter in model.parameters()), torch.device("cpu"))
    history: list[EpochRecord] = []
    shown = progress if progress is not None else (stream if stream is not None else sys.stderr).isatty()
    forked = [device.index or 0] if device.type == "cuda" else []
    forking = cast(AbstractContextManager[object], torch.random.fork_rng(devices=forked))  # pyright: ignore[reportUnknownMemberType]
    with forking, Ticker("evaluate", stream=stream, enabled=shown, delay=0.0) as ticker:
        torch.manual_seed(seed)  # pyright: ignore[reportUnknownMemberType]
        for epoch in range(epochs):
            probability = drop_path * epoch / epochs
            for module in drops:
                module.p = probability
            current_lr = float(optimizer.param_groups[0]["lr"])
            model.train()
            total, count = 0.0, 0
            for index in range(len(train_batches)):
                inputs, targets = (tensor.to(device) for tensor in train_batches.batch(epoch, index))
                value = _training_loss(model(inputs), targets, loss, auxiliary_weight)
                optimizer.zero_grad(set_to_none=True)
                value.backward()  # pyright: ignore[reportUnknownMemberType]
                if grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(trained, grad_clip)
                optimizer.step()  # pyright: ignore[reportUnknownMemberType]
                total += float(value.detach()) * len(targets)
                count += len(targets)
                ticker.label = f"evaluate epoch {epoch + 1}/{epochs} batch {index + 1}/{len(train_batches)}"
                ticker.tick()
            scheduler.step()
            test_loss, accuracy = _test(model, test_batches, loss, device)
            history.append(
                EpochRecord(
                    epoch=epoch + 1,
                    lr=current_lr,
                    drop_path=probability,
                    train_loss=total / count,
                    test_loss=test_loss,
                    test_accuracy=accuracy,
                )
            )
            ticker.label = (
                f"evaluate epoch {epoch + 1}/{epochs} train {total / count:.4f} "
                f"test {test_loss:.4f} accuracy {accuracy:.2%}"
            )
            ticker.tick()
    return Evaluation(
        parameters=sum(parameter.numel() for parameter in trained),
        train_loss=history[-1].train_loss,
        test_accuracy=history[-1].test_accuracy,
        history=tuple(history),
    )


def _check_arguments(
    model: object, epochs: object, drop_path: object, auxiliary_weight: object, grad_clip: object
) -> None:
    if not isinstance(model, torch.nn.Module):
        raise NasError(f"evaluate trains a torch module, got {type(model).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise NasError(f"evaluate: epochs is a whole number above 0, got {epochs!r}")
    if not isinstance(drop_path, int | float) or not 0 <= drop_path < 1:
        raise NasError(f"evaluate: drop_path is a probability from 0 up to (not including) 1, got {drop_path!r}")
    if auxiliary_weight is not None and (not isinstance(auxiliary_weight, int | float) or auxiliary_weight < 0):
        raise NasError(f"evaluate: auxiliary_weight is a weight of 0 or more (or None), got {auxiliary_weight!r}")
    if grad_clip is not None and (not isinstance(grad_clip, int | float) or not grad_clip > 0):
        raise NasError(f"evaluate: grad_clip is a norm above 0 (or None for no clipping), got {grad_clip!r}")


def _training_loss(
    output: Any, targets: torch.Tensor, loss: LossFunction, auxiliary_weight: float | None
) -> torch.Tensor:
    if not isinstance(output, tuple | list):
        if auxiliary_weight is not None:
            raise NasError(
                f"evaluate: auxiliary_weight={auxiliary_weight} needs a model that returns (logits, aux_logits) "
                f"in training; this one returns a {type(output).__name__}"
            )
        return loss(output, targets)
    outputs = tuple(cast(Any, output))
    value = loss(outputs[0], targets)
    if auxiliary_weight is not None:
        if len(outputs) < 2 or outputs[1] is None:
            raise NasError(
                f"evaluate: auxiliary_weight={auxiliary_weight} needs a model that returns (logits, aux_logits) "
                "in training; its second output is missing"
            )
        value = value + auxiliary_weight * loss(outputs[1], targets)
    return value


def _logits(output: Any) -> torch.Tensor:
    if isinstance(output, tuple | list):
        return cast(torch.Tensor, cast(Any, output)[0])
    return cast(torch.Tensor, output)


def _test(model: torch.nn.Module, batches: Batches, loss: LossFunction, device: torch.device) -> tuple[float, float]:
    """Mean loss and accuracy on every batch, in eval mode."""
    model.eval()
    total, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for index in range(len(batches)):
            inputs, targets = (tensor.to(device) for tensor in batches.batch(0, index))
            logits = _logits(model(inputs))
            total += float(loss(logits, targets)) * len(targets)
            correct += int((logits.argmax(dim=-1) == targets).sum())
            count += len(targets)
    model.train()
    return total / count, correct / count
