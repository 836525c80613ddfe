"""Constructor arguments a layer can never run with are a LayerError when it is built, whatever their type."""

import re
from collections.abc import Callable

import pytest

import fluxion.layers as fl
from fluxion.layers import checks


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: fl.Linear(2, "3"), "out_features must be an int or a tuple of ints, got '3'"),
        (lambda: fl.Dropout(p="x"), "p must be a probability from 0 to 1, got 'x'"),
        (lambda: fl.Conv2d(2, 2, 1.5), "kernel_size must be an int or a tuple of 2, got 1.5"),
        (lambda: fl.Conv1d(2, 2, 3, stride="2"), "stride must be an int or a tuple of 1, got '2'"),
        (lambda: fl.MaxPool2d(1.5), "kernel_size must be an int or a tuple of 1 or 2, got 1.5"),
        (lambda: fl.LSTM(3, "x"), "LSTM refused its arguments"),
    ],
)
def test_arguments_of_the_wrong_type_are_a_layer_error(build: Callable[[], object], words: str) -> None:
    with pytest.raises(fl.LayerError, match=re.escape(words)):
        build()


@pytest.mark.parametrize("value", [True, 2.0, "2", None, (), (1, "2")])
def test_at_least_takes_ints_and_tuples_of_ints_only(value: object) -> None:
    if value is None:
        checks.at_least("Layer", "size", value, 1)  # None means "left out"
        return
    with pytest.raises(fl.LayerError, match="size must be an int or a tuple of ints"):
        checks.at_least("Layer", "size", value, 1)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400, "1", True])
def test_numbers_that_are_not_finite_real_numbers_are_refused(value: object) -> None:
    with pytest.raises(fl.LayerError):
        checks.positive_number("Upsample", "scale_factor", value)  # pyright: ignore[reportArgumentType]
