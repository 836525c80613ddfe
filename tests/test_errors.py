"""Errors (``fluxion.errors``): every family is a FluxionError and the builtin error it stands for, each
part re-exports its own, and messages say where (a spec's file, line, column and JSON path)."""

import inspect
import pickle
from pathlib import Path

import pytest

import fluxion
import fluxion.layers as fl
from fluxion import adapters, dims, errors, shapes, spec, training, weights

EXCEPTIONS = [
    value
    for value in vars(errors).values()
    if inspect.isclass(value)
    and issubclass(value, Exception)
    and not issubclass(value, Warning)
    and value.__module__ == errors.__name__
]
WARNINGS = [errors.WeightsWarning, errors.PickleCheckpointWarning]


def test_every_exception_fluxion_defines_is_a_fluxion_error() -> None:
    assert len(EXCEPTIONS) >= 16
    for kind in EXCEPTIONS:
        assert issubclass(kind, fluxion.FluxionError), kind
    assert fluxion.FluxionError is errors.FluxionError


def test_warnings_are_user_warnings_not_errors() -> None:
    for kind in WARNINGS:
        assert issubclass(kind, UserWarning)
        assert not issubclass(kind, fluxion.FluxionError)


@pytest.mark.parametrize(
    ("kind", "bases"),
    [
        (errors.TreeError, (ValueError,)),
        (errors.ChildNotFoundError, (errors.TreeError, KeyError)),
        (errors.ChildIndexError, (errors.TreeError, IndexError)),
        (errors.ChainError, (RuntimeError,)),
        (errors.ContextError, (KeyError,)),
        (errors.GraphError, (errors.TreeError,)),
        (errors.LayerError, (ValueError,)),
        (errors.ShapeError, (ValueError,)),
        (errors.WeightsError, (ValueError,)),
        (errors.ConversionError, (errors.WeightsError,)),
        (errors.AdapterError, (ValueError,)),
        (errors.AdapterStructureError, (errors.AdapterError, errors.TreeError)),
        (errors.TrainingError, (ValueError,)),
        (errors.SpecError, (ValueError,)),
        (errors.NasError, (ValueError,)),
        (errors.UsageError, (errors.CliError,)),
    ],
)
def test_each_family_is_also_the_builtin_error_code_catches_already(
    kind: type[Exception], bases: tuple[type[Exception], ...]
) -> None:
    for base in bases:
        assert issubclass(kind, base)


def test_the_families_are_distinct() -> None:
    families = [
        errors.TreeError,
        errors.LayerError,
        errors.ShapeError,
        errors.WeightsError,
        errors.AdapterError,
        errors.TrainingError,
        errors.SpecError,
        errors.NasError,
        errors.CliError,
    ]
    for family in families:
        others = [other for other in families if other is not family]
        assert not any(issubclass(family, other) for other in others), family


def test_each_part_re_exports_its_own_family() -> None:
    assert fl.TreeError is errors.TreeError
    assert fl.ChainError is errors.ChainError
    assert fl.LayerError is errors.LayerError
    assert fl.ContextError is errors.ContextError
    assert fl.GraphError is errors.GraphError
    assert dims.ShapeError is errors.ShapeError
    assert shapes.ShapeError is errors.ShapeError
    assert weights.WeightsError is errors.WeightsError
    assert weights.ConversionError is errors.ConversionError
    assert adapters.AdapterError is errors.AdapterError
    assert spec.SpecError is errors.SpecError
    assert training.TrainingError is errors.TrainingError


def test_key_errors_are_not_quoted() -> None:
    # KeyError's own str() would show "'no child x'", quotes and all
    assert str(errors.ChildNotFoundError("Chain has no child 'x'")) == "Chain has no child 'x'"
    assert str(errors.ContextError("context 'net' has no value 'x'")) == "context 'net' has no value 'x'"
    assert str(errors.ChildNotFoundError()) == ""
    assert str(errors.ContextError()) == ""


def test_errors_carry_their_details_for_programs() -> None:
    node = object()
    chain_error = errors.ChainError("Linear failed", address="encoder.Linear", node=node)
    assert (str(chain_error), chain_error.address, chain_error.node) == ("Linear failed", "encoder.Linear", node)
    shape = errors.ShapeError("bad", address="head", path=["(B, 4)", "(B, 8)"])
    assert (shape.address, shape.path) == ("head", ("(B, 4)", "(B, 8)"))
    assert (errors.ShapeError("bad").address, errors.ShapeError("bad").path) == (None, ())
    loaded = errors.WeightsError("m.safetensors: 2 problems", missing=("a",), mismatched=("b",))
    assert (loaded.missing, loaded.unexpected, loaded.mismatched) == (("a",), (), ("b",))
    assert (errors.CliError("x").exit_code, errors.UsageError("x").exit_code) == (1, 2)
    placed = errors.TrainingError("unknown option", path=["groups", 1, "lr"])
    assert (str(placed), placed.path, errors.TrainingError("x").path) == ("unknown option", ("groups", 1, "lr"), ())


# -- a spec error's message says where -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "expected an object"),
        ({"path": "blocks[0]"}, "blocks[0]: expected an object"),
        ({"path": ""}, "expected an object"),  # the root
        ({"file": "model.json"}, "model.json: expected an object"),
        ({"file": Path("specs/model.json"), "line": 3}, "specs/model.json:3: expected an object"),
        ({"file": "m.json", "line": 3, "column": 7, "path": "a.b"}, "m.json:3:7: a.b: expected an object"),
        ({"line": 3}, "line 3: expected an object"),
        ({"line": 3, "column": 7}, "line 3, column 7: expected an object"),
        ({"line": 3, "column": 7, "path": "x"}, "line 3, column 7: x: expected an object"),
        ({"file": "m.json", "column": 7}, "m.json: expected an object"),  # a column without a line says nothing
    ],
)
def test_a_spec_errors_message_names_the_file_line_column_and_path(fields: dict[str, object], message: str) -> None:
    error = errors.SpecError("expected an object", **fields)  # pyright: ignore[reportArgumentType]
    assert str(error) == message
    assert error.reason == "expected an object"


def test_a_spec_errors_place_may_be_filled_in_after_it_was_raised() -> None:
    error = errors.SpecError("unknown type 'Foo'", path="children[2]")
    assert str(error) == "children[2]: unknown type 'Foo'"
    error.file = "net.jsonnet"
    error.line = 12
    assert str(error) == "net.jsonnet:12: children[2]: unknown type 'Foo'"


def test_a_spec_error_keeps_its_place_through_pickling() -> None:
    error = errors.SpecError("bad", file=Path("m.json"), path="a[1]", line=2, column=5)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.SpecError
    assert (copy.reason, copy.file, copy.path, copy.line, copy.column) == ("bad", Path("m.json"), "a[1]", 2, 5)
    assert str(copy) == str(error) == "m.json:2:5: a[1]: bad"


def test_one_except_clause_catches_what_any_part_raises(tmp_path: Path) -> None:
    raised: list[type[Exception]] = []
    calls = [
        lambda: fl.Chain(**{"a.b": fl.ReLU()}),
        lambda: fl.Slicing(dim=1, step=0),
        lambda: shapes.infer(fl.Linear(4, 2), ("B", 3)),
        lambda: weights.load(fl.Chain(fl.Linear(2, 2)), tmp_path / "missing.safetensors"),
        lambda: spec.loads('{"type": "NoSuchLayer"}'),
        lambda: adapters.Adapter(fl.Linear(2, 2)).eject(),
        lambda: training.build_loss({"type": "NoSuchLoss"}),
    ]
    for call in calls:
        with pytest.raises(fluxion.FluxionError) as caught:
            call()
        raised.append(type(caught.value))
    assert len(set(raised)) == len(calls)  # each from its own part's family
