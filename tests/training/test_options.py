"""What the training specs share (``fluxion.training.options``): suggestions, close addresses, the
``type`` split off a copy, keyword arguments checked against a signature."""

from typing import Any

import pytest

from fluxion.training import TrainingError
from fluxion.training.options import check_arguments, close_addresses, did_you_mean, split_type


def test_suggestions_ignore_case_and_say_nothing_when_nothing_is_close() -> None:
    assert did_you_mean("adamw", ["AdamW", "Adam"]) == " (did you mean 'AdamW'?)"
    assert did_you_mean("zzzz", ["AdamW"]) == ""


def test_close_addresses_prefer_a_match_ignoring_case_then_close_spellings_then_the_first_ones() -> None:
    addresses = [f"block{index}.weight" for index in range(10)]
    assert close_addresses("Block1.*", addresses) == " (close: 'block1.weight')"
    assert close_addresses("block1.wieght", addresses).startswith(" (close: 'block1.weight'")
    assert close_addresses("x", addresses) == "; the parameters are: " + ", ".join(addresses[:8]) + "..."


def test_the_type_is_split_off_a_copy() -> None:
    spec = {"type": "Adam", "lr": 0.1}
    kind, arguments = split_type(spec, "optimizer")
    arguments["lr"] = 1.0
    assert (kind, spec) == ("Adam", {"type": "Adam", "lr": 0.1})
    with pytest.raises(TrainingError, match="an optimizer spec is an object") as caught:
        split_type(["Adam"], "optimizer", ("optimizer",))  # pyright: ignore[reportArgumentType]
    assert caught.value.path == ("optimizer",)


def test_arguments_are_checked_against_the_signature() -> None:
    def function(tensor: Any, std: float = 1.0, **more: Any) -> None: ...

    def strict(tensor: Any, std: float = 1.0, name: str = "x") -> None: ...

    check_arguments({"std": 0.5, "anything": 1}, function, "f", skip=("tensor",))  # **more takes the rest
    check_arguments({"name": "1e-3"}, strict, "f")  # a string where a string is expected
    with pytest.raises(TrainingError, match="f takes no argument 'tensor'"):
        check_arguments({"tensor": 1}, strict, "f", skip=("tensor",))
    with pytest.raises(TrainingError, match="f: std takes a number, got 'wide'") as caught:
        check_arguments({"std": "wide"}, strict, "f", ("init",))
    assert caught.value.path == ("init", "std")
