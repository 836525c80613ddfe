"""Constructor arguments between JSON and Python: checked and converted on the way in (with errors
that name the place and what was expected), written back as JSON on the way out."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, Literal

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion.errors import SpecError
from fluxion.spec.arguments import (
    arguments_in,
    arguments_out,
    call,
    convert,
    describe,
    describe_signature,
    to_json,
)
from fluxion.tree.module import CHILD


class Pick(fl.Module):
    """A layer with a parameter before ``*indices``, a keyword-only one and ``**options``."""

    def __init__(self, dim: int, *indices: int, keep: bool = False, **options: Any) -> None:
        super().__init__()
        self.dim, self.indices, self.keep, self.options = dim, indices, keep, options


class Loose(fl.Module):
    """A layer whose annotations name a class that does not exist: they cannot be checked."""

    def __init__(self, size: Missing = 3) -> None:  # noqa: F821  # pyright: ignore[reportUndefinedVariable]
        super().__init__()
        self.size = size


class Mode(enum.Enum):
    FAST = "fast"


def spec_error(call_it: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        call_it()
    return caught.value


# -- arguments_in ---------------------------------------------------------------------------------


def test_a_misspelled_argument_names_the_closest_one_and_the_signature() -> None:
    error = spec_error(lambda: arguments_in(fl.Conv2d, {"kernel": 3}, ["children", 2]))
    assert error.path == "children[2].kernel"
    assert "Conv2d has no argument 'kernel' (did you mean kernel_size?)" in error.reason
    assert "its signature: Conv2d(in_channels: int | None = None" in error.reason


def test_an_argument_nothing_resembles_gets_no_suggestion() -> None:
    error = spec_error(lambda: arguments_in(fl.Dropout, {"zzz": 1}, []))
    assert (
        error.reason == "Dropout has no argument 'zzz'; its signature: Dropout(p: float = 0.5, inplace: bool = False)"
    )


def test_device_is_a_build_option_never_a_spec_argument() -> None:
    error = spec_error(lambda: arguments_in(fl.Linear, {"device": "cpu"}, ["head"]))
    assert error.path == "head.device"
    assert "Linear has no argument 'device';" in error.reason
    assert "did you mean" not in error.reason
    assert "device" not in error.reason.split("its signature:")[1]


def test_keyword_arguments_collected_by_double_star_are_not_spec_arguments() -> None:
    for name in ("options", "anything"):
        error = spec_error(lambda name=name: arguments_in(Pick, {"dim": 0, name: 1}, []))
        assert f"Pick has no argument {name!r}" in error.reason


def test_values_are_converted_to_what_the_constructor_takes() -> None:
    converted = arguments_in(
        fl.Conv2d, {"out_channels": 8, "kernel_size": [3, 1], "padding": "same", "dtype": "bfloat16"}, []
    )
    assert converted == {"out_channels": 8, "kernel_size": (3, 1), "padding": "same", "dtype": torch.bfloat16}
    assert arguments_in(fl.Dropout, {"p": 0}, []) == {"p": 0.0}
    assert type(arguments_in(fl.Dropout, {"p": 0}, [])["p"]) is float


@pytest.mark.parametrize(
    ("cls", "given", "path", "expected"),
    [
        (fl.Linear, {"out_features": True}, "n.out_features", "expected an int or null, got true"),
        (fl.Linear, {"out_features": 2.0}, "n.out_features", "expected an int or null, got 2.0"),
        (fl.Linear, {"bias": 1}, "n.bias", "expected a boolean, got 1"),
        (fl.Dropout, {"p": True}, "n.p", "expected a number, got true"),
        (fl.Dropout, {"p": "0.5"}, "n.p", 'expected a number, got "0.5"'),
        (fl.Linear, {"dtype": "floaty"}, "n.dtype", 'expected a dtype name (such as "float32") or null, got "floaty"'),
        (fl.Linear, {"dtype": "Tensor"}, "n.dtype", 'got "Tensor"'),
        (fl.Conv2d, {"kernel_size": [3, 3, 3]}, "n.kernel_size", "got [3, 3, 3]"),
        (fl.Reshape, {"shape": 4}, "n.shape", "Reshape takes shape as a list (*shape), got 4"),
        (fl.Reshape, {"shape": [2, "x"]}, "n.shape[1]", 'expected an int, got "x"'),
    ],
)
def test_a_value_of_the_wrong_type_names_its_place_and_what_was_expected(
    cls: type, given: dict[str, Any], path: str, expected: str
) -> None:
    error = spec_error(lambda: arguments_in(cls, given, ["n"]))
    assert error.path == path
    assert expected in error.reason


def test_a_missing_required_argument_is_named_at_the_node() -> None:
    error = spec_error(lambda: arguments_in(fl.Embedding, {"embedding_dim": 4}, ["children", 0]))
    assert error.path == "children[0]"
    assert error.reason.startswith("Embedding needs argument 'num_embeddings'; its signature: Embedding(")


def test_parameters_given_by_the_nodes_children_are_not_required() -> None:
    assert arguments_in(fl.Matmul, {}, [], children=2) == {}
    error = spec_error(lambda: arguments_in(fl.Matmul, {}, [], children=1))
    assert "Matmul needs argument 'other'" in error.reason


def test_annotations_that_do_not_resolve_leave_the_check_to_the_constructor() -> None:
    assert arguments_in(Loose, {"size": "anything"}, []) == {"size": "anything"}
    assert describe_signature(Loose) == "Loose(size = 3)"


# -- convert and describe ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [
        ([1, 2], tuple[int, int], (1, 2)),
        ([1, 2, 3], tuple[int, ...], (1, 2, 3)),
        ([], tuple[int, ...], ()),
        ([1, 2], list[int], [1, 2]),
        ([1, 2.5], Sequence[float], (1.0, 2.5)),
        ([[1, 2], [3, 4]], tuple[tuple[int, int], ...], ((1, 2), (3, 4))),
        ([1, "a"], tuple[int, str], (1, "a")),
        (None, int | None, None),
        ("same", Literal["same", "valid"], "same"),
        ({"a": 1}, dict[str, int], {"a": 1}),
        ("float16", torch.dtype, torch.float16),
        ({"x": [1]}, Any, {"x": [1]}),
    ],
)
def test_convert_gives_the_python_value(value: Any, hint: Any, expected: Any) -> None:
    result = convert(value, hint, [])
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (True, int),
        (1, bool),
        (1.0, Literal[1]),
        (True, Literal[1]),
        ("x", Literal["same", "valid"]),
        ([1, 2, 3], tuple[int, int]),
        ([1, True], tuple[int, ...]),
        ((1, 2), tuple[int, int]),  # JSON has lists, not tuples
        ([1], dict[str, int]),
        ("cpu", torch.device),
        ([0.0], torch.Tensor),
        ({}, torch.nn.Module),
        ("relu", fl.ReLU),
        (float("nan"), int),
    ],
)
def test_convert_refuses_what_does_not_fit_the_annotation(value: Any, hint: Any) -> None:
    error = spec_error(lambda: convert(value, hint, ["blocks", 0, "arg"]))
    assert error.path == "blocks[0].arg"
    assert error.reason.startswith(f"expected {describe(hint)}, got ")


def test_a_long_value_is_shortened_in_the_message() -> None:
    error = spec_error(lambda: convert("x" * 500, int, ["a"]))
    assert error.reason == 'expected an int, got "' + "x" * 56 + "..."


def test_a_value_json_cannot_write_is_shown_as_python_writes_it() -> None:
    error = spec_error(lambda: convert(b"raw", int, ["a"]))
    assert error.reason == "expected an int, got b'raw'"


@pytest.mark.parametrize(
    ("hint", "words"),
    [
        (int, "an int"),
        (float | None, "a number or null"),
        (int | str | None, "an int, a string or null"),
        (bool, "a boolean"),
        (tuple[int, int], "a list of 2 ints"),
        (tuple[int, ...], "a list of ints"),
        (list[float], "a list of numbers"),
        (Sequence[int], "a list of ints"),
        (tuple[int, str], "a list of 2 values (an int, a string)"),
        (tuple[tuple[int, int], ...], "a list of list of 2 ints"),
        (list[Any], "a list of values"),
        (tuple, "a list of values"),
        (list, "a list of values"),
        (Literal["same", "valid"], 'one of "same", "valid"'),
        (torch.dtype, 'a dtype name (such as "float32")'),
        (Any, "a value"),
        (torch.nn.Module, "a Module"),
    ],
)
def test_describe_puts_an_annotation_in_words(hint: Any, words: str) -> None:
    assert describe(hint) == words


def test_describe_signature_shows_what_a_spec_may_give() -> None:
    assert describe_signature(fl.Reshape) == "Reshape(*shape: int)"
    assert describe_signature(Pick) == "Pick(dim: int, *indices: int, keep: bool = False)"
    assert "device" not in describe_signature(fl.Conv2d)


# -- call -------------------------------------------------------------------------------------------


def test_call_passes_star_arguments_and_what_comes_before_them_by_position() -> None:
    assert call(Pick, {"dim": 1, "indices": (0, 2), "keep": True}) == ((1, 0, 2), {"keep": True})
    assert call(Pick, {"dim": 1}) == ((), {"dim": 1})
    module = Pick(*call(Pick, {"dim": 1, "indices": (0, 2)})[0])
    assert (module.dim, module.indices) == (1, (0, 2))


def test_arguments_in_then_call_constructs_the_layer() -> None:
    arguments = arguments_in(fl.Permute, {"dims": [0, 2, 1]}, [])
    args, kwargs = call(fl.Permute, arguments)
    assert fl.Permute(*args, **kwargs)(torch.zeros(2, 3, 4)).shape == (2, 4, 3)


# -- arguments_out and to_json ----------------------------------------------------------------------


def test_arguments_out_leaves_out_defaults_device_and_private_arguments() -> None:
    assert arguments_out(fl.Linear, (4, 2), {"bias": True, "device": "cpu"}) == {"in_features": 4, "out_features": 2}
    weight = torch.zeros(3, 2)
    assert arguments_out(fl.Embedding, (3, 2), {"_weight": weight, "_freeze": True}) == {
        "num_embeddings": 3,
        "embedding_dim": 2,
    }


def test_a_value_equal_to_the_default_but_of_another_type_is_written() -> None:
    assert arguments_out(fl.Linear, (4, 2), {"bias": 1}) == {"in_features": 4, "out_features": 2, "bias": 1}
    assert arguments_out(fl.Dropout, (), {"p": 0.5}) == {}


def test_arguments_out_writes_children_as_children_not_arguments() -> None:
    assert arguments_out(fl.Concatenate, (CHILD, CHILD), {"dim": 1}) == {"dim": 1}
    assert arguments_out(fl.Chain, (CHILD,), {"head": CHILD}) == {}


def test_arguments_a_constructor_does_not_take_are_a_spec_error() -> None:
    error = spec_error(lambda: arguments_out(fl.Dropout, (), {"rate": 0.1}))
    assert error.reason.startswith("Dropout was constructed with arguments it does not take:")


def test_arguments_out_writes_json_values_in_the_signatures_order_of_names() -> None:
    written = arguments_out(fl.Conv2d, (3, 8), {"dtype": torch.float16, "kernel_size": (3, 3), "stride": [2, 2]})
    assert written == {
        "in_channels": 3,
        "out_channels": 8,
        "kernel_size": [3, 3],
        "stride": [2, 2],
        "dtype": "float16",
    }


def test_to_json_writes_what_json_can_hold() -> None:
    assert to_json({1: (2, (3,)), "b": None}, "w") == {"1": [2, [3]], "b": None}
    assert to_json(Mode.FAST, "w") == "fast"
    assert to_json(torch.int64, "w") == "int64"
    assert to_json(-0.5, "w") == -0.5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("inf"), "Linear.scale is inf, which JSON cannot hold"),
        (float("nan"), "Linear.scale is nan, which JSON cannot hold"),
        ([1.0, float("-inf")], "Linear.scale[1] is -inf, which JSON cannot hold"),
        ({"k": torch.zeros(1)}, "Linear.scale.k is a Tensor, which a spec cannot hold"),
        (torch.device("cpu"), "Linear.scale is a device, which a spec cannot hold"),
    ],
)
def test_to_json_names_the_value_it_cannot_write(value: Any, expected: str) -> None:
    assert spec_error(lambda: to_json(value, "Linear.scale")).reason == expected


sizes = st.integers(-(2**63), 2**63 - 1)
values = st.none() | sizes | st.tuples(sizes, sizes)


@given(values)
def test_a_value_written_then_read_is_the_same_value(value: int | tuple[int, int] | None) -> None:
    assert convert(to_json(value, "x"), int | tuple[int, int] | None, []) == value


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4))
def test_numbers_written_then_read_are_the_same_numbers(numbers: list[float]) -> None:
    assert convert(to_json(tuple(numbers), "x"), tuple[float, ...], []) == tuple(numbers)
