"""``Search``: a small architecture-search driver, reproducible step by step and resumable.

Each step takes one training batch and one validation batch (the two data splits). The strategy's
architecture step comes first (first-order DARTS by default: the validation loss's gradient on the
architecture parameters, then Adam), then the weight step: the training loss's gradient on the
weights, their norm clipped (5.0), then SGD. The two optimizers hold two disjoint sets,
:func:`fluxion.nas.weights` and :func:`fluxion.nas.arch_parameters`, and the driver checks that
optimizers you give it do too: an architecture parameter in the weight optimizer would get the
weights' SGD steps and weight decay (a bug of Archai's trainer), so it is refused by address.

The driver draws the batches: each epoch's order comes from a ``torch.Generator`` seeded from
``(seed, epoch)``, so any step's batches are known without replaying the ones before. Together
with a checkpoint (:meth:`Search.save`: model, both optimizers, the learning-rate schedule, the
step, the temperature and torch's random state) a run resumes at any step and goes on exactly as
if it had never stopped (same seeds, same device).

Defaults are DARTS's (``train_search.py``, ``architect.py``): batch 64, SGD (lr 0.025, momentum
0.9, weight decay 3e-4) annealed by a cosine to 0.001 over the epochs, Adam (lr 3e-4, betas
(0.5, 0.999), weight decay 1e-3) on the architecture parameters.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion import nas
>>> _ = torch.manual_seed(0)
>>> supernet = fl.Chain(fl.Linear(4, 8), nas.Choice(relu=fl.ReLU(), tanh=fl.Tanh()), fl.Linear(8, 2))
>>> data = (torch.randn(32, 4), torch.randint(0, 2, (32,)))
>>> search = Search(supernet, train=data, valid=data, epochs=2, batch_size=16, seed=0)
>>> records = search.run()
>>> search.steps_done, search.total_steps, records[-1].step
(4, 4, 4)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import torch
from safetensors import safe_open

import fluxion
from fluxion.errors import NasError, WeightsError
from fluxion.files import special_kind, write_text_atomically
from fluxion.nas.finalize import genotype_of
from fluxion.nas.parameters import arch_parameters, set_mode, weights
from fluxion.nas.strategies import Batch, Darts, LossFunction, StepContext, Strategy
from fluxion.progress import Ticker
from fluxion.tree.parameter_roles import architecture_parameter_ids
from fluxion.weights import load as load_weights
from fluxion.weights import save as save_weights
from fluxion.weights.plan import ALIASES_METADATA, model_slots

Data = tuple[torch.Tensor, torch.Tensor] | torch.utils.data.Dataset[Any]
"""A data split: ``(inputs, targets)`` tensors of the same length, or a map-style ``Dataset`` of
``(input, target)`` pairs (with ``len``)."""

Describe = Callable[[torch.nn.Module], object]
"""What the progress line shows of the supernet (its current genotype by default; ``None`` shows nothing)."""

WEIGHT_LR, WEIGHT_MOMENTUM, WEIGHT_DECAY = 0.025, 0.9, 3e-4
ARCH_LR, ARCH_BETAS, ARCH_WEIGHT_DECAY = 3e-4, (0.5, 0.999), 1e-3

MODEL_FILE = "model.safetensors"
STATE_FILE = "search.json"
TENSORS_FILE = "search.safetensors"
CHECKPOINT_FORMAT = "fluxion.nas.search/1"


def default_weight_optimizer(model: torch.nn.Module) -> torch.optim.SGD:
    """DARTS's weight optimizer over ``fluxion.nas.weights(model)``: SGD, lr 0.025, momentum 0.9, weight decay 3e-4.

    >>> import fluxion.layers as fl
    >>> default_weight_optimizer(fl.Chain(fl.Linear(2, 2))).param_groups[0]["lr"]
    0.025
    """
    return torch.optim.SGD(weights(model), lr=WEIGHT_LR, momentum=WEIGHT_MOMENTUM, weight_decay=WEIGHT_DECAY)


def default_arch_optimizer(model: torch.nn.Module) -> torch.optim.Adam:
    """DARTS's architecture optimizer over ``fluxion.nas.arch_parameters(model)``: Adam, lr 3e-4,
    betas (0.5, 0.999), weight decay 1e-3.

    >>> import fluxion.layers as fl
    >>> from fluxion import nas
    >>> default_arch_optimizer(fl.Chain(nas.Choice(a=fl.ReLU(), b=fl.Tanh()))).param_groups[0]["betas"]
    (0.5, 0.999)
    """
    return torch.optim.Adam(arch_parameters(model), lr=ARCH_LR, betas=ARCH_BETAS, weight_decay=ARCH_WEIGHT_DECAY)


def current_genotype(model: torch.nn.Module) -> object:
    """The supernet's current genotype (``fluxion.nas.genotype_of``), or None when it has no DARTS
    cells (or cells finalize cannot read): the default of what the progress line shows.

    >>> import fluxion.layers as fl
    >>> current_genotype(fl.Chain(fl.Linear(2, 2))) is None
    True
    """
    try:
        return genotype_of(model)
    except NasError:  # a supernet finalize cannot read (yet): the progress line goes without it
        return None


@dataclass(frozen=True)
class StepRecord:
    """One search step: its number (from 1), epoch (from 0), losses, the weights' learning rate and
    the temperature (None outside Gumbel modes).

    >>> StepRecord(step=1, epoch=0, train_loss=0.7, valid_loss=0.69, lr=0.025, temperature=None).step
    1
    """

    step: int
    epoch: int
    train_loss: float
    valid_loss: float
    lr: float
    temperature: float | None


class Batches:
    """Batches of one data split, in an order drawn per epoch from a generator seeded from ``(seed, epoch)``.

    ``batch(epoch, index)`` is the same for the same arguments, whatever was drawn before;
    ``len(batches)`` is the number of batches per epoch (the last one may be smaller).

    >>> import torch
    >>> batches = Batches("train", (torch.arange(10.0), torch.arange(10)), batch_size=4, seed=0)
    >>> len(batches), batches.batch(0, 2)[0].shape
    (3, torch.Size([2]))
    >>> torch.equal(batches.batch(1, 0)[1], batches.batch(1, 0)[1])
    True
    """

    def __init__(self, name: str, data: Data, *, batch_size: int, seed: int) -> None:
        _check_count("batch_size", batch_size)
        if isinstance(seed, bool) or not isinstance(seed, int):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise NasError(f"seed must be an integer, got {seed!r}")
        self.name = name
        self.batch_size = batch_size
        self.seed = seed
        self._tensors: tuple[torch.Tensor, torch.Tensor] | None = None
        self._dataset: torch.utils.data.Dataset[Any] | None = None
        if isinstance(data, tuple):
            self._tensors = _checked_tensors(name, data)
            self.size = len(self._tensors[0])
        elif isinstance(data, torch.utils.data.Dataset):  # pyright: ignore[reportUnnecessaryIsInstance]
            self._dataset = data
            self.size = _dataset_length(name, data)
        else:
            raise NasError(
                f"{name} data: expected (inputs, targets) tensors or a torch Dataset, got {type(data).__name__}"
            )
        if self.size == 0:
            raise NasError(f"{name} data is empty")
        self._order: tuple[tuple[int, int], torch.Tensor] | None = None

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def sample_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The shape of one input and of one target (without the batch dimension).

        >>> import torch
        >>> Batches("x", (torch.zeros(5, 3), torch.zeros(5)), batch_size=2, seed=0).sample_shapes()
        ((3,), ())
        """
        if self._tensors is not None:
            return tuple(self._tensors[0].shape[1:]), tuple(self._tensors[1].shape[1:])
        inputs, targets = self._items([0])
        return tuple(inputs.shape[1:]), tuple(targets.shape[1:])

    def batch(self, epoch: int, index: int, *, draw: int = 0) -> Batch:
        """Batch ``index`` (from 0) of ``epoch``; ``draw`` tells apart several passes in one epoch.

        >>> import torch
        >>> batches = Batches("valid", (torch.arange(4.0), torch.arange(4)), batch_size=4, seed=1)
        >>> sorted(batches.batch(0, 0)[1].tolist())
        [0, 1, 2, 3]
        """
        order = self._permutation(epoch, draw)
        chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
        if self._tensors is not None:
            inputs, targets = self._tensors
            return inputs[chosen], targets[chosen]
        return self._items(cast(list[int], chosen.tolist()))  # pyright: ignore[reportUnknownMemberType]

    def _permutation(self, epoch: int, draw: int) -> torch.Tensor:
        key = (epoch, draw)
        if self._order is None or self._order[0] != key:
            generator = torch.Generator().manual_seed(_mixed_seed(self.seed, self.name, epoch, draw))
            self._order = (key, torch.randperm(self.size, generator=generator))
        return self._order[1]

    def _items(self, indices: Sequence[int]) -> Batch:
        dataset = cast(torch.utils.data.Dataset[Any], self._dataset)
        inputs: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        for index in indices:
            item = cast(object, dataset[index])
            kind = type(item).__name__
            pair = cast(Sequence[object], item) if isinstance(item, tuple | list) else None
            if pair is None or len(pair) != 2:
                raise NasError(f"{self.name} data: item {index} is not an (input, target) pair: a {kind}")
            value, target = pair
            inputs.append(_as_tensor(self.name, index, "input", value))
            targets.append(_as_tensor(self.name, index, "target", target))
        return _stacked(self.name, indices, inputs, "inputs"), _stacked(self.name, indices, targets, "targets")


class Search:
    """Searches the architecture of ``model`` (a supernet) on ``train`` and ``valid`` data.

    ``strategy`` is a :class:`fluxion.nas.Strategy` (``Darts()`` by default; ``Gumbel()``,
    ``RandomSampling()``). The run is ``epochs`` passes over the training data in batches of
    ``batch_size``, each step paired with a validation batch (the validation data is drawn anew
    whenever a pass over it ends). ``loss(output, targets)`` is cross entropy by default.
    ``weight_optimizer`` and ``arch_optimizer`` replace DARTS's defaults (each checked to hold only
    its own set); ``cosine`` anneals the weights' learning rate to ``min_lr`` over the epochs
    (DARTS's ``CosineAnnealingLR(T_max=epochs)``, stepped at the end of each epoch); ``grad_clip``
    bounds the weights' gradient norm (``None``: no clipping). ``run()`` shows a progress line on a
    terminal (``progress=True``/``False`` forces it) with the step, the losses and ``describe(model)``
    (the current genotype, for DARTS-style supernets).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> from fluxion import nas
    >>> model = fl.Chain(fl.Linear(2, 2))
    >>> data = (torch.randn(8, 2), torch.randint(0, 2, (8,)))
    >>> Search(model, train=data, valid=data, epochs=1)
    Traceback (most recent call last):
    ...
    fluxion.errors.NasError: the darts strategy searches architecture parameters, but the model has none ...
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train: Data,
        valid: Data,
        *,
        epochs: int,
        batch_size: int = 64,
        seed: int = 0,
        strategy: Strategy | None = None,
        loss: LossFunction = torch.nn.functional.cross_entropy,
        weight_optimizer: torch.optim.Optimizer | None = None,
        arch_optimizer: torch.optim.Optimizer | None = None,
        cosine: bool = True,
        min_lr: float = 0.001,
        grad_clip: float | None = 5.0,
        describe: Describe | None = current_genotype,
        progress: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise NasError(f"Search searches a torch module, got {type(model).__name__}")
        _check_count("epochs", epochs)
        if grad_clip is not None and not grad_clip > 0:
            raise NasError(f"grad_clip is a norm above 0 (or None for no clipping), got {grad_clip!r}")
        self.model = model
        self.strategy: Strategy = strategy if strategy is not None else Darts()
        self.train_batches = Batches("train", train, batch_size=batch_size, seed=seed)
        self.valid_batches = Batches("valid", valid, batch_size=batch_size, seed=seed)
        _check_same_shapes(self.train_batches, self.valid_batches)
        self.epochs = epochs
        self.seed = seed
        self.batch_size = batch_size
        self.loss = loss
        self.cosine = cosine
        self.min_lr = float(min_lr)
        self.grad_clip = grad_clip
        self.describe = describe
        self.progress = progress
        self.stream = stream
        addresses = _parameter_addresses(model)
        architecture = architecture_parameter_ids(model)
        if weight_optimizer is not None:
            _check_optimizer(weight_optimizer, "weight", addresses, architecture)
        if arch_optimizer is not None:
            _check_optimizer(arch_optimizer, "architecture", addresses, architecture)
        self.strategy.prepare(model)
        if weight_optimizer is None:
            if not weights(model):
                raise NasError("the model has no weights to train (every parameter is an architecture parameter)")
            weight_optimizer = default_weight_optimizer(model)
        if arch_optimizer is None and self.strategy.searches_architecture:
            arch_optimizer = default_arch_optimizer(model)
        self.weight_optimizer: torch.optim.Optimizer = weight_optimizer
        self.arch_optimizer: torch.optim.Optimizer | None = arch_optimizer
        self.scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(weight_optimizer, T_max=epochs, eta_min=self.min_lr)
            if cosine
            else None
        )
        self.steps_done = 0
        self.temperature: float | None = self.strategy.temperature(0, self.total_steps)
        self.history: list[StepRecord] = []

    # -- where the run is ------------------------------------------------------------------------

    @property
    def steps_per_epoch(self) -> int:
        """Training batches per epoch (the last one may be smaller).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> from fluxion import nas
        >>> data = (torch.randn(10, 2), torch.randint(0, 2, (10,)))
        >>> model = fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU(), b=fl.Tanh()))
        >>> Search(model, data, data, epochs=3, batch_size=4).steps_per_epoch
        3
        """
        return len(self.train_batches)

    @property
    def total_steps(self) -> int:
        """The steps of the whole run: ``epochs * steps_per_epoch``.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> from fluxion import nas
        >>> data = (torch.randn(10, 2), torch.randint(0, 2, (10,)))
        >>> model = fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU(), b=fl.Tanh()))
        >>> Search(model, data, data, epochs=3, batch_size=4).total_steps
        9
        """
        return self.epochs * self.steps_per_epoch

    @property
    def done(self) -> bool:
        """Whether every step of the run has been taken.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> from fluxion import nas
        >>> data = (torch.randn(4, 2), torch.randint(0, 2, (4,)))
        >>> search = Search(fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU())), data, data, epochs=1)
        >>> _ = search.step()
        >>> search.done
        True
        """
        return self.steps_done >= self.total_steps

    # -- running ---------------------------------------------------------------------------------

    def run(self, steps: int | None = None) -> list[StepRecord]:
        """Take ``steps`` more steps (all that are left by default, never beyond the run's end), with a
        progress line on a terminal; returns their records (also appended to ``history``).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> from fluxion import nas
        >>> data = (torch.randn(8, 2), torch.randint(0, 2, (8,)))
        >>> search = Search(fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU())), data, data, epochs=2, batch_size=4)
        >>> [record.step for record in search.run(3)], len(search.run())
        ([1, 2, 3], 1)
        >>> search.run(0)
        Traceback (most recent call last):
        ...
        fluxion.errors.NasError: steps is a whole number above 0, got 0
        """
        if steps is not None:
            _check_count("steps", steps)
        left = self.total_steps - self.steps_done
        if left <= 0:
            raise NasError(f"the search is over: all {self.total_steps} steps were taken (epochs={self.epochs})")
        count = left if steps is None else min(steps, left)
        records: list[StepRecord] = []
        shown = self._show_progress()
        with Ticker("search", stream=self.stream, enabled=shown, delay=0.0) as ticker:
            for _ in range(count):
                records.append(self.step())
                if shown:
                    ticker.label = self._progress_line(records[-1])
                    ticker.tick()
        return records

    def step(self) -> StepRecord:
        """Take one step: the architecture step on a validation batch, then the weight step on a
        training batch; the learning rate anneals at the end of each epoch.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> from fluxion import nas
        >>> data = (torch.randn(4, 2), torch.randint(0, 2, (4,)))
        >>> search = Search(fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU())), data, data, epochs=1)
        >>> search.step().epoch
        0
        >>> search.step()
        Traceback (most recent call last):
        ...
        fluxion.errors.NasError: the search is over: all 1 steps were taken (epochs=1)
        """
        if self.done:
            raise NasError(f"the search is over: all {self.total_steps} steps were taken (epochs={self.epochs})")
        step, total = self.steps_done, self.total_steps
        epoch, index = divmod(step, self.steps_per_epoch)
        train = self._on_device(self.train_batches.batch(epoch, index))
        draw, valid_index = divmod(index, len(self.valid_batches))
        valid = self._on_device(self.valid_batches.batch(epoch, valid_index, draw=draw))
        model = self.model
        model.train()
        self.strategy.begin_step(model, step, total)
        self.temperature = self.strategy.temperature(step, total)
        weight_list = tuple(_parameters_of(self.weight_optimizer))
        lr = float(self.weight_optimizer.param_groups[0]["lr"])
        if self.strategy.searches_architecture:
            context = StepContext(
                model=model,
                loss=self.loss,
                arch_parameters=tuple(_parameters_of(cast(torch.optim.Optimizer, self.arch_optimizer))),
                weights=weight_list,
                arch_optimizer=cast(torch.optim.Optimizer, self.arch_optimizer),
                weight_optimizer=self.weight_optimizer,
                step=step,
                total_steps=total,
            )
            valid_loss = self.strategy.architecture_step(context, train, valid)
        else:
            with torch.no_grad():
                valid_loss = self.loss(model(valid[0]), valid[1])
        train_loss = self._weight_step(train, weight_list)
        self.steps_done = step + 1
        if self.scheduler is not None and self.steps_done % self.steps_per_epoch == 0:
            self.scheduler.step()
        record = StepRecord(
            step=self.steps_done,
            epoch=epoch,
            train_loss=float(train_loss),
            valid_loss=float(valid_loss),
            lr=lr,
            temperature=self.temperature,
        )
        self.history.append(record)
        return record

    def _weight_step(self, train: Batch, parameters: Sequence[torch.nn.Parameter]) -> torch.Tensor:
        loss = self.loss(self.model(train[0]), train[1])
        trainable = [parameter for parameter in parameters if parameter.requires_grad]
        if not loss.requires_grad:
            raise NasError("the training loss does not depend on the weights (is the forward under torch.no_grad?)")
        # Gradients of the weights alone: the alphas' gradients are left as they are (the weight step
        # neither reads nor writes them), which also spares computing them.
        gradients = torch.autograd.grad(loss, trainable, allow_unused=True)
        for parameter, gradient in zip(trainable, gradients, strict=True):
            parameter.grad = gradient
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(trainable, self.grad_clip)
        self.weight_optimizer.step()
        return loss.detach()

    def _on_device(self, batch: Batch) -> Batch:
        device = next((parameter.device for parameter in self.model.parameters()), torch.device("cpu"))
        return batch[0].to(device), batch[1].to(device)

    def _show_progress(self) -> bool:
        if self.progress is not None:
            return self.progress
        stream = self.stream if self.stream is not None else sys.stderr
        return stream.isatty()

    def _progress_line(self, record: StepRecord) -> str:
        line = (
            f"search step {record.step}/{self.total_steps} epoch {record.epoch + 1}/{self.epochs} "
            f"train {record.train_loss:.4f} valid {record.valid_loss:.4f} lr {record.lr:.4g}"
        )
        if record.temperature is not None:
            line += f" tau {record.temperature:.3g}"
        shown = self.describe(self.model) if self.describe is not None else None
        return line if shown is None else f"{line} | {shown}"

    # -- checkpoints -----------------------------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write a checkpoint folder: ``model.safetensors`` (weights, alphas, buffers),
        ``search.safetensors`` (the optimizers' tensors, torch's random state) and ``search.json``
        (the rest: step, temperature, schedule, settings, history). The folder is written aside and
        renamed into place, so a reader sees the whole checkpoint or none; an existing checkpoint
        there is replaced, any other non-empty folder is refused.

        >>> import pathlib, tempfile, torch
        >>> import fluxion.layers as fl
        >>> from fluxion import nas
        >>> data = (torch.randn(4, 2), torch.randint(0, 2, (4,)))
        >>> search = Search(fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU())), data, data, epochs=2)
        >>> _ = search.run(1)
        >>> folder = pathlib.Path(tempfile.mkdtemp()) / "checkpoint"
        >>> search.save(folder)
        >>> sorted(path.name for path in folder.iterdir())
        ['model.safetensors', 'search.json', 'search.safetensors']
        """
        tensors: dict[str, torch.Tensor] = {}
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "fluxion": fluxion.__version__,
            "settings": self._settings(),
            "steps_done": self.steps_done,
            "temperature": self.temperature,
            "weight_optimizer": _optimizer_state(self.weight_optimizer, self.model, "weight_optimizer", tensors),
            "arch_optimizer": None
            if self.arch_optimizer is None
            else _optimizer_state(self.arch_optimizer, self.model, "arch_optimizer", tensors),
            "scheduler": None if self.scheduler is None else _encode(self.scheduler.state_dict(), "scheduler", tensors),
            "rng": _encode(_random_state(), "rng", tensors),
            "history": [asdict(record) for record in self.history],
        }
        text = json.dumps(state, indent=1) + "\n"

        def write(temporary: Path) -> None:
            try:
                save_weights(self.model, temporary / MODEL_FILE)
                save_weights(tensors, temporary / TENSORS_FILE)
            except WeightsError as error:
                raise NasError(f"cannot save the search to {os.fspath(folder)!r}: {error}") from None
            write_text_atomically(temporary / STATE_FILE, text, error=NasError)

        _write_folder(Path(folder), write)

    def resume(self, folder: str | os.PathLike[str]) -> None:
        """Restore a checkpoint written by :meth:`save` into this search (built as the saved one was):
        model, optimizers, schedule, step, temperature, history and torch's random state. Everything is
        checked first (files, settings, every key and shape of the model and of the optimizers); on any
        mismatch a ``NasError`` names it and nothing changes.

        >>> import pathlib, tempfile, torch
        >>> import fluxion.layers as fl
        >>> from fluxion import nas
        >>> data = (torch.randn(4, 2), torch.randint(0, 2, (4,)))
        >>> search = Search(fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU())), data, data, epochs=3)
        >>> _ = search.run(2)
        >>> folder = pathlib.Path(tempfile.mkdtemp()) / "checkpoint"
        >>> search.save(folder)
        >>> fresh = Search(fl.Chain(fl.Linear(2, 2), nas.Choice(a=fl.ReLU())), data, data, epochs=3)
        >>> fresh.resume(folder)
        >>> fresh.steps_done, torch.equal(fresh.model.Linear.weight, search.model.Linear.weight)
        (2, True)
        >>> other = Search(fl.Chain(fl.Linear(2, 3), nas.Choice(a=fl.ReLU())), data, data, epochs=3)
        >>> other.resume(folder)
        Traceback (most recent call last):
        ...
        fluxion.errors.NasError: checkpoint '...' belongs to another model: shapes differ: Linear.weight ...
        """
        path = Path(folder)
        where = f"checkpoint {os.fspath(folder)!r}"
        state, tensors = _read_checkpoint(path, where)
        _check_settings(where, state.get("settings"), self._settings())
        _check_model(self.model, path / MODEL_FILE, where)
        steps_done = state.get("steps_done")
        if isinstance(steps_done, bool) or not isinstance(steps_done, int) or not 0 <= steps_done <= self.total_steps:
            raise NasError(f"{where}: {STATE_FILE}: 'steps_done' is {steps_done!r}, not a step of this run")
        weight_state = _decoded_optimizer(state, "weight_optimizer", self.weight_optimizer, self.model, tensors, where)
        arch_state = None
        if self.arch_optimizer is not None:
            arch_state = _decoded_optimizer(state, "arch_optimizer", self.arch_optimizer, self.model, tensors, where)
        scheduler_state = _decode(state.get("scheduler"), tensors, f"{where}: scheduler")
        if (scheduler_state is None) != (self.scheduler is None) or (
            scheduler_state is not None and not isinstance(scheduler_state, dict)
        ):
            raise NasError(f"{where}: the learning-rate schedule does not fit this search (cosine={self.cosine})")
        random = _decode(state.get("rng"), tensors, f"{where}: rng")
        cpu_state = cast(dict[str, object], random).get("cpu") if isinstance(random, dict) else None
        if not isinstance(cpu_state, torch.Tensor) or cpu_state.dtype != torch.uint8:
            raise NasError(f"{where}: {TENSORS_FILE} has no random state of torch's CPU generator")
        if cpu_state.shape != torch.get_rng_state().shape:  # torch.set_rng_state would refuse it at the end
            raise NasError(
                f"{where}: {TENSORS_FILE}: the CPU generator's random state has shape {tuple(cpu_state.shape)}, "
                f"torch's is {tuple(torch.get_rng_state().shape)}"
            )
        history = _history(state.get("history"), where)
        temperature = state.get("temperature")
        if temperature is not None and not isinstance(temperature, int | float):
            raise NasError(f"{where}: {STATE_FILE}: 'temperature' is {temperature!r}, not a number")
        try:
            load_weights(self.model, path / MODEL_FILE)
        except WeightsError as error:
            raise NasError(f"{where} does not load into the model: {error}") from None
        # Everything below was checked above: it cannot fail half-way.
        self.weight_optimizer.load_state_dict(weight_state)
        if self.arch_optimizer is not None and arch_state is not None:
            self.arch_optimizer.load_state_dict(arch_state)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(cast(dict[str, Any], scheduler_state))
        self.steps_done = steps_done
        self.history = history
        self.temperature = None if temperature is None else float(temperature)
        if self.temperature is not None:
            set_mode(self.model, self.strategy.mode, tau=self.temperature)
        _restore_random_state(cast(dict[str, Any], random))

    def _settings(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.settings(),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "train_size": self.train_batches.size,
            "valid_size": self.valid_batches.size,
            "cosine": self.cosine,
            "min_lr": self.min_lr,
            "grad_clip": self.grad_clip,
            "weight_optimizer": type(self.weight_optimizer).__name__,
            "arch_optimizer": None if self.arch_optimizer is None else type(self.arch_optimizer).__name__,
        }


# -- checks --------------------------------------------------------------------------------------


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NasError(f"{name} is a whole number above 0, got {value!r}")


def _checked_tensors(name: str, data: tuple[object, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(data) != 2 or not all(isinstance(item, torch.Tensor) for item in data):
        kinds = ", ".join(type(item).__name__ for item in data)
        raise NasError(f"{name} data: expected a pair of tensors (inputs, targets), got ({kinds})")
    inputs, targets = cast(tuple[torch.Tensor, torch.Tensor], data)
    if inputs.dim() == 0 or targets.dim() == 0:
        raise NasError(
            f"{name} data: inputs and targets need a first (sample) dimension; got shapes "
            f"{tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    if len(inputs) != len(targets):
        raise NasError(
            f"{name} data: {len(inputs)} inputs but {len(targets)} targets "
            f"(shapes {tuple(inputs.shape)} and {tuple(targets.shape)})"
        )
    return inputs, targets


def _dataset_length(name: str, data: torch.utils.data.Dataset[Any]) -> int:
    try:
        return len(cast(Any, data))
    except TypeError:
        raise NasError(f"{name} data: the Dataset has no len(); give a map-style Dataset") from None


def _as_tensor(name: str, index: int, what: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, int | float | bool):
        return torch.tensor(value)
    raise NasError(f"{name} data: the {what} of item {index} is a {type(value).__name__}, not a tensor or a number")


def _stacked(name: str, indices: Sequence[int], values: list[torch.Tensor], what: str) -> torch.Tensor:
    first = values[0].shape
    for index, value in zip(indices, values, strict=True):
        if value.shape != first:
            raise NasError(
                f"{name} data: {what} differ in shape: item {indices[0]} has {tuple(first)}, "
                f"item {index} has {tuple(value.shape)}"
            )
    return torch.stack(values)


def _check_same_shapes(train: Batches, valid: Batches) -> None:
    train_shapes, valid_shapes = train.sample_shapes(), valid.sample_shapes()
    for what, one, other in zip(("input", "target"), train_shapes, valid_shapes, strict=True):
        if one != other:
            raise NasError(
                f"train and valid data differ in the shape of one {what}: {one} and {other} "
                "(the two splits feed the same model)"
            )


def _parameter_addresses(model: torch.nn.Module) -> dict[int, str]:
    addresses: dict[int, str] = {}
    for name, parameter in model.named_parameters():
        addresses.setdefault(id(parameter), name)
    return addresses


def _parameters_of(optimizer: torch.optim.Optimizer) -> list[torch.nn.Parameter]:
    return [parameter for group in optimizer.param_groups for parameter in group["params"]]


def _check_optimizer(optimizer: object, role: str, addresses: Mapping[int, str], architecture: set[int]) -> None:
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise NasError(f"the {role} optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    for parameter in _parameters_of(optimizer):
        address = addresses.get(id(parameter))
        if address is None:
            raise NasError(
                f"the {role} optimizer holds a tensor of shape {tuple(parameter.shape)} that is not a parameter "
                "of the model"
            )
        if role == "weight" and id(parameter) in architecture:
            raise NasError(
                f"the weight optimizer holds the architecture parameter {address!r}: it would get the weights' "
                "steps and weight decay; build it over fluxion.nas.weights(model)"
            )
        if role == "architecture" and id(parameter) not in architecture:
            raise NasError(
                f"the architecture optimizer holds the weight {address!r}; build it over "
                "fluxion.nas.arch_parameters(model)"
            )


def _check_settings(where: str, saved: object, current: Mapping[str, Any]) -> None:
    if not isinstance(saved, dict):
        raise NasError(f"{where}: {STATE_FILE} has no 'settings'")
    found = cast(dict[str, Any], saved)
    for key, value in current.items():
        if key not in found:
            raise NasError(f"{where}: {STATE_FILE} has no setting {key!r}")
        if found[key] != value:
            raise NasError(
                f"{where} was written by a search with {key}={found[key]!r}, this one has {key}={value!r}: "
                "build the search as the saved one was to continue its run"
            )


def _check_model(model: torch.nn.Module, path: Path, where: str) -> None:
    """Keys and shapes of the checkpoint's model against ``model``, every difference named."""
    try:
        with safe_open(os.fspath(path), framework="pt") as file:  # pyright: ignore[reportUnknownVariableType]
            handle = cast(Any, file)
            saved = {cast(str, key): tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
            metadata = cast(dict[str, str], handle.metadata() or {})
    except Exception as error:  # safetensors raises its own error types for a damaged file
        raise NasError(f"{where}: {MODEL_FILE} cannot be read: {error}") from None
    aliases = cast(dict[str, str], json.loads(metadata.get(ALIASES_METADATA, "{}")))
    for key, kept in aliases.items():
        if kept in saved:
            saved[key] = saved[kept]
    try:
        slots = model_slots(model)
    except WeightsError as error:
        raise NasError(f"the model cannot be checked against {where}: {error}") from None
    current = {key: tuple(slot.tensor.shape) for key, slot in slots.items()}
    problems: list[str] = []
    missing = [key for key in current if key not in saved]
    unexpected = [key for key in saved if key not in current]
    if missing:
        problems.append(f"not in the checkpoint: {_listed(missing)}")
    if unexpected:
        problems.append(f"not in the model: {_listed(unexpected)}")
    shapes = [
        f"{key} (model {current[key]}, checkpoint {saved[key]})"
        for key in current
        if key in saved and current[key] != saved[key]
    ]
    if shapes:
        problems.append(f"shapes differ: {_listed(shapes)}")
    if problems:
        raise NasError(f"{where} belongs to another model: " + "; ".join(problems))


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:8])
    return shown + (f" and {len(items) - 8} more" if len(items) > 8 else "")


# -- checkpoint contents -------------------------------------------------------------------------


def _encode(value: object, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` as JSON: tensors go to ``tensors`` under ``key`` (and a reference stays), tuples and
    dicts with keys that are not strings keep their kind."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach()
        return {"tensor": key}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        items = cast(tuple[object, ...], value)
        return {"tuple": [_encode(item, f"{key}.{index}", tensors) for index, item in enumerate(items)]}
    if isinstance(value, list):
        return [_encode(item, f"{key}.{index}", tensors) for index, item in enumerate(cast(list[object], value))]
    if isinstance(value, dict):
        entries = cast(dict[object, object], value)
        return {
            "dict": [
                [_encode(name, f"{key}.key", tensors), _encode(item, f"{key}.{name}", tensors)]
                for name, item in entries.items()
            ]
        }
    raise NasError(f"cannot save {key!r}: a {type(value).__name__} has no place in a checkpoint (JSON or tensors)")


def _decode(value: object, tensors: Mapping[str, torch.Tensor], where: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode(item, tensors, where) for item in cast(list[object], value)]
    if isinstance(value, dict):
        entry = cast(dict[str, object], value)
        if set(entry) == {"tensor"} and isinstance(entry["tensor"], str):
            if entry["tensor"] not in tensors:
                raise NasError(f"{where}: {TENSORS_FILE} has no tensor {entry['tensor']!r}")
            return tensors[entry["tensor"]]
        if set(entry) == {"tuple"} and isinstance(entry["tuple"], list):
            return tuple(_decode(item, tensors, where) for item in cast(list[object], entry["tuple"]))
        if set(entry) == {"dict"} and isinstance(entry["dict"], list):
            pairs = cast(list[object], entry["dict"])
            if all(isinstance(pair, list) and len(cast(list[object], pair)) == 2 for pair in pairs):
                return {
                    _decode(name, tensors, where): _decode(item, tensors, where)
                    for name, item in cast(list[list[object]], pairs)
                }
    raise NasError(f"{where}: {STATE_FILE} holds {value!r} where a saved value was expected")


def _optimizer_state(
    optimizer: torch.optim.Optimizer, model: torch.nn.Module, key: str, tensors: dict[str, torch.Tensor]
) -> dict[str, Any]:
    addresses = _parameter_addresses(model)
    return {
        "class": type(optimizer).__name__,
        "addresses": [[addresses.get(id(p), "?") for p in group["params"]] for group in optimizer.param_groups],
        "state": _encode(optimizer.state_dict(), key, tensors),
    }


def _decoded_optimizer(
    state: Mapping[str, Any],
    key: str,
    optimizer: torch.optim.Optimizer,
    model: torch.nn.Module,
    tensors: Mapping[str, torch.Tensor],
    where: str,
) -> dict[str, Any]:
    """The saved state of one optimizer, checked against ``optimizer`` (class, parameters by address, shapes)."""
    where = f"{where}: {key}"
    saved = state.get(key)
    if not isinstance(saved, dict):
        raise NasError(f"{where}: {STATE_FILE} has no state for it")
    entry = cast(dict[str, Any], saved)
    if entry.get("class") != type(optimizer).__name__:
        raise NasError(f"{where} is a {entry.get('class')!r}, this search's is a {type(optimizer).__name__!r}")
    addresses = _parameter_addresses(model)
    current = [[addresses.get(id(p), "?") for p in group["params"]] for group in optimizer.param_groups]
    if entry.get("addresses") != current:
        raise NasError(f"{where} holds other parameters: {_first_difference(entry.get('addresses'), current)}")
    decoded = _decode(entry.get("state"), tensors, where)
    if not isinstance(decoded, dict) or not {"state", "param_groups"} <= set(cast(dict[str, Any], decoded)):
        raise NasError(f"{where}: {STATE_FILE} has no optimizer state dict")
    result = cast(dict[str, Any], decoded)
    groups = result["param_groups"]
    if not isinstance(groups, list) or len(cast(list[Any], groups)) != len(optimizer.param_groups):
        raise NasError(f"{where}: the saved parameter groups do not match this optimizer's")
    for saved_group, group in zip(cast(list[Any], groups), optimizer.param_groups, strict=True):
        if not isinstance(saved_group, dict) or len(cast(dict[str, Any], saved_group).get("params", ())) != len(
            group["params"]
        ):
            raise NasError(f"{where}: the saved parameter groups do not match this optimizer's")
    parameters = _parameters_of(optimizer)
    per_parameter = result["state"]
    if not isinstance(per_parameter, dict):
        raise NasError(f"{where}: {STATE_FILE} has no per-parameter state")
    for index, values in cast(dict[Any, Any], per_parameter).items():
        if not isinstance(index, int) or not 0 <= index < len(parameters) or not isinstance(values, dict):
            raise NasError(f"{where}: a saved state belongs to no parameter ({index!r})")
        parameter = parameters[index]
        for name, value in cast(dict[str, Any], values).items():
            if isinstance(value, torch.Tensor) and value.dim() == parameter.dim() and value.shape != parameter.shape:
                raise NasError(
                    f"{where}: {name!r} of {addresses.get(id(parameter), '?')!r} has shape "
                    f"{tuple(value.shape)}, the parameter {tuple(parameter.shape)}"
                )
    return result


def _first_difference(saved: object, current: list[list[str]]) -> str:
    if not isinstance(saved, list):
        return "the checkpoint lists none"
    saved_flat = [name for group in cast(list[Any], saved) for name in cast(list[str], group)]
    current_flat = [name for group in current for name in group]
    for position, (one, other) in enumerate(zip(saved_flat, current_flat, strict=False)):
        if one != other:
            return f"parameter {position} is {one!r} in the checkpoint, {other!r} here"
    if len(saved_flat) != len(current_flat):
        return f"{len(saved_flat)} parameters in the checkpoint, {len(current_flat)} here"
    return "the parameter groups are split differently"


def _history(value: object, where: str) -> list[StepRecord]:
    if not isinstance(value, list):
        raise NasError(f"{where}: {STATE_FILE} has no 'history'")
    records: list[StepRecord] = []
    for entry in cast(list[object], value):
        try:
            records.append(StepRecord(**cast(dict[str, Any], entry)))
        except TypeError:
            raise NasError(f"{where}: {STATE_FILE}: a history entry is not a step record: {entry!r}") from None
    return records


def _random_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, value in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda.{index}"] = value
    return state


def _restore_random_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(cast(torch.Tensor, state["cpu"]))
    cuda = [value for name, value in sorted(state.items()) if name.startswith("cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cast(Iterable[torch.Tensor], cuda))


def _read_checkpoint(folder: Path, where: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not folder.is_dir():
        raise NasError(f"{where} is not a folder" if folder.exists() else f"{where} does not exist")
    missing = [name for name in (MODEL_FILE, STATE_FILE, TENSORS_FILE) if not (folder / name).is_file()]
    if missing:
        raise NasError(f"{where} is missing {', '.join(missing)} (not a whole search checkpoint)")
    for name in (MODEL_FILE, STATE_FILE, TENSORS_FILE):
        kind = special_kind(folder / name)
        if kind is not None:
            raise NasError(f"{where}: {name} is {kind}, not a regular file")
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise NasError(f"{where}: {STATE_FILE} cannot be read: {error}") from None
    if not isinstance(state, dict) or cast(dict[str, Any], state).get("format") != CHECKPOINT_FORMAT:
        raise NasError(f"{where}: {STATE_FILE} is not a search checkpoint (no format {CHECKPOINT_FORMAT!r})")
    try:
        with safe_open(os.fspath(folder / TENSORS_FILE), framework="pt") as file:  # pyright: ignore[reportUnknownVariableType]
            handle = cast(Any, file)
            tensors = {cast(str, key): cast(torch.Tensor, handle.get_tensor(key)) for key in handle.keys()}  # noqa: SIM118
            metadata = cast(dict[str, str], handle.metadata() or {})
        aliases = cast(dict[str, str], json.loads(metadata.get(ALIASES_METADATA, "{}")))
    except Exception as error:  # safetensors raises its own error types for a damaged file
        raise NasError(f"{where}: {TENSORS_FILE} cannot be read: {error}") from None
    for key, kept in aliases.items():  # tensors saved once for several keys (fluxion.weights.save)
        if kept in tensors:
            tensors[key] = tensors[kept]
    return cast(dict[str, Any], state), tensors


def _write_folder(folder: Path, write: Callable[[Path], None]) -> None:
    """Fill a new folder with ``write`` beside ``folder``, then rename it into place (replacing a
    checkpoint already there)."""
    if folder.is_symlink():
        folder = Path(os.path.realpath(folder))
    parent = folder.parent
    if not parent.is_dir():
        raise NasError(f"cannot write {os.fspath(folder)!r}: folder {os.fspath(parent)!r} does not exist")
    if folder.exists():
        if not folder.is_dir():
            raise NasError(f"cannot write the checkpoint {os.fspath(folder)!r}: it is a file, not a folder")
        if any(folder.iterdir()) and not (folder / STATE_FILE).is_file():
            raise NasError(
                f"cannot write the checkpoint {os.fspath(folder)!r}: it is a folder that holds something else "
                "than a search checkpoint (it would be replaced)"
            )
    token = secrets.token_hex(4)
    temporary = parent / f".{folder.name}.{token}.partial"
    old = parent / f".{folder.name}.{token}.old"
    try:
        temporary.mkdir()
        write(temporary)
        if folder.exists():
            os.replace(folder, old)
            try:
                os.replace(temporary, folder)
            except OSError:
                os.replace(old, folder)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, folder)
    except OSError as problem:
        raise NasError(f"cannot write the checkpoint {os.fspath(folder)!r}: {problem.strerror or problem}") from None
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _mixed_seed(seed: int, *parts: object) -> int:
    """A generator seed from ``seed`` and ``parts`` (the split, the epoch, the pass), stable across runs."""
    text = ":".join(str(part) for part in (seed, *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") & (2**63 - 1)
