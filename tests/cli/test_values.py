"""Shapes and errors as JSON values (``--format json``): what programs reading the output rely on."""

import json
from pathlib import Path

import pytest

from fluxion import dims
from fluxion.cli.values import error_json, shape_json
from fluxion.errors import CliError, ShapeError, SpecError


def test_known_sizes_are_numbers_and_symbolic_sizes_are_text() -> None:
    height = dims.dim("H")
    value = shape_json(dims.Shape(["B", dims.dim(3), dims.floordiv(height, 2), height * 2 + 1]))
    assert value == ["B", 3, "floor(H/2)", "2*H + 1"]
    assert [type(size) for size in value] == [str, int, str, str]
    assert json.loads(json.dumps(value)) == value


def test_several_values_are_lists_of_shapes_and_no_value_is_null() -> None:
    assert shape_json(None) is None
    assert shape_json(dims.Shape([])) == []
    assert shape_json((dims.Shape(["B", 4]), None, (dims.Shape([1]), dims.Shape([])))) == [["B", 4], None, [[1], []]]


def test_an_error_with_no_place_gives_its_type_and_message_only() -> None:
    assert error_json(CliError("dot is not installed")) == {"type": "CliError", "message": "dot is not installed"}
    assert error_json(KeyError("x")) == {"type": "KeyError", "message": "'x'"}


def test_a_spec_error_says_the_file_line_column_and_json_path() -> None:
    error = SpecError("expected a comma", file="m.jsonnet", line=3, column=7)
    assert error_json(error) == {
        "type": "SpecError",
        "message": "m.jsonnet:3:7: expected a comma",
        "file": "m.jsonnet",
        "line": 3,
        "column": 7,
    }
    at_root = error_json(SpecError("expected an object", file=Path("folder") / "m.json", path=""))
    assert (at_root["file"], at_root["path"]) == (str(Path("folder") / "m.json"), "")
    assert "line" not in at_root


def spec_error_over(cause: ShapeError, *, chained: bool) -> SpecError:
    """The SpecError a spec's build raises over ``cause``: ``raise ... from cause``, or while handling it."""
    error = SpecError("shapes do not fit", file="m.json", path="children[1]")
    if chained:
        error.__cause__ = cause
    else:
        error.__context__ = cause
    return error


@pytest.mark.parametrize("chained", [True, False])
def test_the_address_comes_from_the_shape_error_behind_a_spec_error(chained: bool) -> None:
    error = spec_error_over(ShapeError("Linear expects last dim 200, got 16", address="head"), chained=chained)
    found = error_json(error)
    assert (found["file"], found["path"], found["address"]) == ("m.json", "children[1]", "head")
    assert found["message"] == "m.json: children[1]: shapes do not fit"
    assert "address" not in error_json(spec_error_over(ShapeError("no fit"), chained=chained))


def test_a_shape_error_names_its_own_address_but_not_its_path_of_shapes() -> None:
    error = ShapeError("Conv2d expects 3 channels, got 4", address="stem.conv", path=("(B, 4, H, W)",))
    assert error_json(error) == {
        "type": "ShapeError",
        "message": "Conv2d expects 3 channels, got 4",
        "address": "stem.conv",
    }
    assert "address" not in error_json(ShapeError("no address"))
