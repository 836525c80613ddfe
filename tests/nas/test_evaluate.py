"""fluxion.nas.evaluate: training a discrete network from scratch and reporting how it does.

A separable problem is learned; shared weights count once; the auxiliary head trains only with an
auxiliary weight; drop-path rises as DARTS's; the learning rate follows the cosine; a run is the
same for the same seed whatever ran before, and leaves torch's random state alone.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion.errors import NasError
from fluxion.nas.evaluate import EpochRecord, Evaluation, evaluate
from fluxion.nas.operations import DropPath


def separable(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(count, 4, generator=generator)
    return inputs, (inputs[:, 0] + inputs[:, 1] > 0).long()


TRAIN, TEST = separable(96, 1), separable(64, 2)


def network() -> fl.Chain:
    torch.manual_seed(0)
    return fl.Chain(fl.Linear(4, 16), fl.ReLU(), DropPath(), fl.Linear(16, 2))


class WithAuxiliaryHead(fl.Chain):
    """Returns (logits, aux_logits) in training, logits alone in eval (as DARTS's NetworkCIFAR)."""

    def __init__(self) -> None:
        super().__init__(body=fl.Linear(4, 8), head=fl.Linear(8, 2), auxiliary=fl.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> Any:
        features = torch.relu(self.body(x))
        if self.training:
            return self.head(features), self.auxiliary(features)
        return self.head(features)


def test_a_separable_problem_is_learned_to_high_accuracy() -> None:
    result = evaluate(network(), TRAIN, TEST, epochs=15, batch_size=16, lr=0.1, progress=False)
    assert isinstance(result, Evaluation)
    assert result.test_accuracy >= 0.95
    assert result.parameters == 4 * 16 + 16 + 16 * 2 + 2
    assert len(result.history) == 15
    assert all(isinstance(record, EpochRecord) for record in result.history)
    assert result.train_loss == result.history[-1].train_loss < result.history[0].train_loss
    assert result.test_accuracy == result.history[-1].test_accuracy


def test_shared_weights_count_once() -> None:
    torch.manual_seed(0)
    model = fl.Chain(
        first=fl.Linear(4, 4, bias=False), relu=fl.ReLU(), second=fl.Linear(4, 4, bias=False), head=fl.Linear(4, 2)
    )
    model.second.weight = model.first.weight
    result = evaluate(model, TRAIN, TEST, epochs=1, progress=False)
    assert result.parameters == 16 + 4 * 2 + 2


def test_the_auxiliary_head_trains_only_with_an_auxiliary_weight() -> None:
    torch.manual_seed(0)
    without = WithAuxiliaryHead()
    before = without.auxiliary.weight.detach().clone()
    evaluate(without, TRAIN, TEST, epochs=2, batch_size=32, progress=False)
    assert torch.equal(without.auxiliary.weight, before)  # no gradient: SGD leaves it (no decay either)

    torch.manual_seed(0)
    weighted = WithAuxiliaryHead()
    result = evaluate(weighted, TRAIN, TEST, epochs=2, batch_size=32, auxiliary_weight=0.4, progress=False)
    assert not torch.equal(weighted.auxiliary.weight, before)
    assert result.parameters == 4 * 8 + 8 + 2 * (8 * 2 + 2)  # the auxiliary head's weights are counted

    with pytest.raises(NasError, match=r"auxiliary_weight=0\.4 needs a model that returns \(logits, aux_logits\)"):
        evaluate(network(), TRAIN, TEST, epochs=1, auxiliary_weight=0.4, progress=False)


def test_drop_path_rises_linearly_over_the_epochs_as_dartss() -> None:
    model = network()
    result = evaluate(model, TRAIN, TEST, epochs=4, batch_size=48, drop_path=0.2, progress=False)
    assert [record.drop_path for record in result.history] == pytest.approx([0.0, 0.05, 0.1, 0.15])
    assert model.DropPath.p == pytest.approx(0.15)


def test_the_learning_rate_follows_the_cosine_to_min_lr() -> None:
    result = evaluate(network(), TRAIN, TEST, epochs=4, batch_size=48, lr=0.1, min_lr=0.01, progress=False)
    expected = [0.01 + 0.09 * (1 + math.cos(math.pi * epoch / 4)) / 2 for epoch in range(4)]
    assert [record.lr for record in result.history] == pytest.approx(expected)


def test_an_evaluation_depends_on_its_seed_only_and_leaves_torchs_random_state_alone() -> None:
    torch.manual_seed(7)
    state = torch.get_rng_state()
    first = evaluate(network(), TRAIN, TEST, epochs=2, batch_size=32, seed=3, drop_path=0.3, progress=False)
    torch.manual_seed(8)  # another state before the run changes nothing
    second = evaluate(network(), TRAIN, TEST, epochs=2, batch_size=32, seed=3, drop_path=0.3, progress=False)
    assert first == second
    other = evaluate(network(), TRAIN, TEST, epochs=2, batch_size=32, seed=4, drop_path=0.3, progress=False)
    assert other != first
    model = network()
    torch.manual_seed(7)
    evaluate(model, TRAIN, TEST, epochs=1, drop_path=0.3, progress=False)
    assert torch.equal(torch.get_rng_state(), state)


def test_datasets_evaluate_as_tensors_do() -> None:
    from_tensors = evaluate(network(), TRAIN, TEST, epochs=2, batch_size=32, progress=False)
    datasets = evaluate(
        network(),
        torch.utils.data.TensorDataset(*TRAIN),
        torch.utils.data.TensorDataset(*TEST),
        epochs=2,
        batch_size=32,
        progress=False,
    )
    assert from_tensors == datasets


def test_the_progress_line_shows_when_forced_on() -> None:
    stream = io.StringIO()
    evaluate(network(), TRAIN, TEST, epochs=2, batch_size=48, progress=True, stream=stream)
    last = stream.getvalue().rstrip("\n").split("\r")[-1]
    assert last.startswith("evaluate epoch 2/2 train ")
    assert " accuracy " in last
    quiet = io.StringIO()
    evaluate(network(), TRAIN, TEST, epochs=1, stream=quiet)  # not a terminal
    assert quiet.getvalue() == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": 0}, "epochs is a whole number above 0, got 0"),
        ({"epochs": 1, "drop_path": 1.0}, r"drop_path is a probability from 0 up to \(not including\) 1, got 1\.0"),
        ({"epochs": 1, "auxiliary_weight": -1.0}, "auxiliary_weight is a weight of 0 or more"),
        ({"epochs": 1, "batch_size": 0}, "batch_size is a whole number above 0"),
        ({"epochs": 1, "grad_clip": -1.0}, "grad_clip is a norm above 0"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(NasError, match=message):
        evaluate(network(), TRAIN, TEST, progress=False, **options)


def test_bad_data_and_models_are_refused() -> None:
    with pytest.raises(NasError, match="test data: 4 inputs but 3 targets"):
        evaluate(network(), TRAIN, (torch.randn(4, 4), torch.zeros(3, dtype=torch.long)), epochs=1)
    with pytest.raises(NasError, match="evaluate trains a torch module, got str"):
        evaluate("model", TRAIN, TEST, epochs=1)  # type: ignore[arg-type]
    with pytest.raises(NasError, match="the model has no weights to train"):
        evaluate(fl.Chain(fl.ReLU()), TRAIN, TEST, epochs=1)
