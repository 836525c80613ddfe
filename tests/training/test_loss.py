"""Losses from specs (``fluxion.training.loss``): torch's loss with the arguments given, tensors made
only where the loss takes a tensor, one error per mistake, specs unchanged."""

import copy
from typing import Any

import pytest
import torch

from fluxion.training import TrainingError, build_loss
from fluxion.training.loss import LOSSES, tensor_arguments


def test_a_tensor_argument_is_made_a_tensor_and_the_loss_equals_torchs() -> None:
    built = build_loss({"type": "BCEWithLogitsLoss", "reduction": "sum", "pos_weight": 10.0})
    by_hand = torch.nn.BCEWithLogitsLoss(reduction="sum", pos_weight=torch.tensor(10.0))
    torch.manual_seed(0)
    logits, targets = torch.randn(6, 3), torch.randint(0, 2, (6, 3)).float()
    assert type(built) is torch.nn.BCEWithLogitsLoss
    assert torch.equal(built(logits, targets), by_hand(logits, targets))


def test_a_list_of_class_weights_becomes_a_float_tensor_and_integers_stay_integers() -> None:
    built = build_loss({"type": "CrossEntropyLoss", "weight": [1, 2, 3], "ignore_index": -1, "label_smoothing": 0.1})
    assert isinstance(built, torch.nn.CrossEntropyLoss)
    assert built.weight is not None
    assert built.weight.dtype == torch.get_default_dtype()
    assert built.ignore_index == -1
    assert isinstance(built.ignore_index, int)
    by_hand = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0]), ignore_index=-1, label_smoothing=0.1)
    torch.manual_seed(0)
    logits, targets = torch.randn(8, 3), torch.tensor([0, 1, 2, -1, 2, 1, 0, 0])
    assert torch.equal(built(logits, targets), by_hand(logits, targets))


def test_numbers_that_are_not_tensor_arguments_are_passed_as_written() -> None:
    huber = build_loss({"type": "HuberLoss", "delta": 2.0})  # TorchArc made delta a tensor, which torch refuses
    assert isinstance(huber, torch.nn.HuberLoss)
    assert huber.delta == 2.0
    assert tensor_arguments(torch.nn.NLLLoss) == ("weight",)
    assert tensor_arguments(torch.nn.MSELoss) == ()


def test_a_tensor_given_from_python_is_kept() -> None:
    weight = torch.tensor([0.5, 2.0])
    loss = build_loss({"type": "NLLLoss", "weight": weight})
    assert isinstance(loss, torch.nn.NLLLoss)
    assert loss.weight is not None
    assert torch.equal(loss.weight, weight)


def test_every_loss_torch_has_is_known_and_nothing_is_added_to_torch_nn() -> None:
    assert {"MSELoss", "L1Loss", "CrossEntropyLoss", "BCEWithLogitsLoss", "HuberLoss", "CTCLoss"} <= set(LOSSES)
    names = dict(vars(torch.nn))
    spec = {"type": "BCEWithLogitsLoss", "pos_weight": [1.0, 4.0], "weight": 2}
    kept = copy.deepcopy(spec)
    build_loss(spec)
    assert spec == kept
    assert dict(vars(torch.nn)) == names


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"type": "CrossEntropy"}, ("type",), "unknown loss 'CrossEntropy' (did you mean 'CrossEntropyLoss'?)"),
        ({"type": "MSELoss", "reductoin": "sum"}, ("reductoin",), "did you mean 'reduction'?"),
        ({"type": "BCEWithLogitsLoss", "pos_weight": "ten"}, ("pos_weight",), "takes a number or a list of numbers"),
        ({"type": "HuberLoss", "delta": "2e0"}, ("delta",), "write 2.0e0"),
        (
            {"type": "AdaptiveLogSoftmaxWithLoss", "in_features": 4, "n_classes": 3, "cutoffs": [5]},
            (),
            "AdaptiveLogSoftmaxWithLoss: cutoffs should be",
        ),
        ("MSELoss", (), 'a loss spec is an object with a "type"'),
    ],
)
def test_a_bad_spec_is_one_error_naming_where(spec: Any, path: tuple[str, ...], message: str) -> None:
    with pytest.raises(TrainingError) as caught:
        build_loss(spec)
    assert message in str(caught.value)
    assert caught.value.path == path
