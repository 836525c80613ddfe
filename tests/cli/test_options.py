"""The command line's values (``NAME=VALUE``, input shapes, limits): what is accepted, and what is a usage error."""

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluxion.cli.options import (
    assignment,
    assumption,
    by_name,
    byte_size,
    ext_var_value,
    ext_vars_object,
    input_shape,
    positive_count,
    seconds,
    tla_value,
)
from fluxion.errors import UsageError
from tests.cli.helpers import fails, run


def test_deep_tla_is_a_usage_error(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    fails(run(capsys, "validate", str(mlp), "--tla", "x=" + "[" * 3000 + "]" * 3000), 2, "--tla x", "too deeply")


def test_tla_deep_enough_for_python_but_not_for_specs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.jsonnet"
    path.write_text("function(x) {type: 'ReLU', description: std.toString(x)}")
    fails(run(capsys, "validate", str(path), "--tla", "x=" + "[" * 600 + "]" * 600), 1)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--input", "x=B," + "9" * 30], ["--input x", "2**63"]),
        (["--input", "x=B,²"], ["--input x"]),
        (["--input", "x=B,-3"], ["--input x"]),
        (["--ext-var", "no-name"], ["NAME=VALUE"]),
        (["--tla", "=1"], ["NAME=VALUE"]),
        (["--time-limit", "0"], ["--time-limit"]),
        (["--time-limit", "nan"], ["--time-limit"]),
        (["--memory-limit", "lots"], ["--memory-limit"]),
        (["--stack-limit", str(2**31)], ["--stack-limit"]),
        (["--ext-var", "x=" + "[" * 3000 + "]" * 3000], ["--ext-var x", "too deeply"]),
        (["--ext-vars", "[2, 2]"], ["--ext-vars", "JSON object", "got a list"]),
        (["--ext-vars", "{num_blocks: [2}"], ["--ext-vars", "is neither JSON", "nor YAML"]),
        (["--ext-vars", "{day: 2024-01-31}"], ["--ext-vars", "not JSON's kind"]),
        (["--ext-vars", "{ratio: .nan}"], ["--ext-vars", "not JSON's kind"]),
        (["--ext-vars", "{1: 2}"], ["--ext-vars", "identifier"]),
        (["--ext-vars", "num_blocks"], ["--ext-vars", "JSON object", "got a string"]),
        (["--ext-var", "v=[1,]"], ["--ext-var v", "starts as JSON but is not JSON", "Expecting value"]),
        (["--ext-var", "v={a: 1}"], ["--ext-var v", "starts as JSON but is not JSON", "property name"]),
        (["--tla", "widths=[64, 32"], ["--tla widths", "starts as JSON but is not JSON", "delimiter"]),
        (["--ext-vars", '{"not a name": 2}'], ["--ext-vars", "identifier"]),
        (["--assume", "H%32"], ["--assume", "NAME%N==0"]),
        (["--assume", "H%1==0"], ["--assume", "2 or more"]),
    ],
)
def test_bad_values_are_usage_errors(
    capsys: pytest.CaptureFixture[str], mlp: Path, arguments: list[str], words: list[str]
) -> None:
    fails(run(capsys, "validate", str(mlp), *arguments), 2, *words)


# -- the parsers themselves


def test_assignment_splits_at_the_first_equals_and_strips_the_name_only() -> None:
    assert assignment(" depth =50") == ("depth", "50")
    assert assignment("expr=a=b") == ("expr", "a=b")
    assert assignment("empty=") == ("empty", "")
    assert assignment("padded= 1 ") == ("padded", " 1 ")


@pytest.mark.parametrize("text", ["depth", "=1", "1x=2", "a-b=3", "a.b=4", " =5"])
def test_assignment_needs_an_identifier_and_an_equals_sign(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        assignment(text)
    assert str(raised.value) == f"expected NAME=VALUE with NAME an identifier, got {text!r}"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("depth=50", 50),
        ("scale=-0.25", -0.25),
        ("bias=true", True),
        ("bias=false", False),
        ("nothing=null", None),
        ("widths=[64, 32]", [64, 32]),
        ('config={"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
        ('id="50"', "50"),
        ("act=gelu", "gelu"),
        ("text=", ""),
        ("spaced=  [1, 2] ", [1, 2]),
        ('bracket="[1, 2"', "[1, 2"),
        ("closed=1, 2]", "1, 2]"),
        ("python=True", "True"),
    ],
)
def test_a_tla_is_json_when_it_is_json_else_text(text: str, value: object) -> None:
    name, read = tla_value(text)
    assert name == text.partition("=")[0]
    assert read == value
    assert type(read) is type(value)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


def _read_or_refused(read: Callable[[str], tuple[str, object]], text: str) -> tuple[str, object]:
    try:
        return read(text)
    except argparse.ArgumentTypeError as error:
        return ("refused", str(error).partition(":")[2])


@given(st.text())
def test_an_ext_var_is_read_by_the_rule_a_tla_is_read_by(value: str) -> None:
    read = _read_or_refused(ext_var_value, "x=" + value)
    assert read == _read_or_refused(tla_value, "x=" + value)
    assert type(read) is type(_read_or_refused(tla_value, "x=" + value))


@given(st.text())
def test_only_text_that_starts_as_json_and_is_not_json_is_refused(value: str) -> None:
    name, read = _read_or_refused(tla_value, "x=" + value)
    if name == "refused":
        assert value.lstrip().startswith(("[", "{"))
        assert str(read).startswith(" '")  # after "--tla x:", the value itself
    else:
        assert read == value or read == json.loads(value)


def test_a_value_that_starts_as_json_and_is_not_is_one_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "model.jsonnet"
    path.write_text("{type: 'Chain', inputs: {x: ['B', std.length(std.extVar('v'))]}, children: [{type: 'ReLU'}]}")
    result = run(capsys, "validate", str(path), "--ext-var", "v=[1,]")
    fails(result, 2, "--ext-var v: '[1,]' starts as JSON but is not JSON (Expecting value", "v='\"[1,]\"'")
    assert result.out == ""
    # what the message says to write for the string is that string
    result = run(capsys, "validate", str(path), "--ext-var", 'v="[1,]"', "--format", "json")
    assert (result.code, json.loads(result.out)["inputs"]) == (0, {"x": ["B", 4]}), result.err


@given(JSON_VALUES)
def test_an_ext_var_given_as_json_is_that_value(value: object) -> None:
    assert ext_var_value("x=" + json.dumps(value)) == ("x", value)
    assert ext_vars_object(json.dumps({"x": value})) == [("x", value)]


@pytest.mark.parametrize(
    ("text", "value"),
    [("n=3", 3), ("depths=[2, 2, 2, 2]", [2, 2, 2, 2]), ('n="3"', "3"), ("act=gelu", "gelu"), ("on=true", True)],
)
def test_an_ext_var_is_json_when_it_is_json_else_text(text: str, value: object) -> None:
    assert ext_var_value(text) == (text.partition("=")[0], value)


def test_ext_vars_is_a_json_object_of_variables_in_order() -> None:
    text = '{"num_blocks": [2, 2, 2, 2], "act": "relu", "width": 64.5, "norm": null}'
    assert ext_vars_object(text) == [("num_blocks", [2, 2, 2, 2]), ("act", "relu"), ("width", 64.5), ("norm", None)]
    assert ext_vars_object("{}") == []
    for text, kind in [
        ("[1]", "a list"),
        ('"x"', "a string"),
        ("3", "a number"),
        ("true", "a boolean"),
        ("null", "null"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"got {kind}$"):
            ext_vars_object(text)
    with pytest.raises(argparse.ArgumentTypeError, match="not JSON's kind"):
        ext_vars_object('{"x": .nan}')
    # JSON's NaN is no JSON, so YAML reads it, as a plain string
    assert ext_vars_object('{"x": NaN}') == [("x", "NaN")]


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("{num_symbols: 68}", [("num_symbols", 68)]),
        (
            "{depths: [2, 2], act: gelu, scale: 0.5, lr: 1e-3, bias: true, norm: null}",
            [("depths", [2, 2]), ("act", "gelu"), ("scale", 0.5), ("lr", 0.001), ("bias", True), ("norm", None)],
        ),
        ("{nested: {size: 9, 'quoted key': x}}", [("nested", {"size": 9, "quoted key": "x"})]),
        ("{}", []),
    ],
)
def test_ext_vars_reads_yaml_flow_style_when_it_is_not_json(text: str, pairs: list[tuple[str, object]]) -> None:
    assert ext_vars_object(text) == pairs


def test_ext_vars_in_yaml_flow_style_reach_jsonnet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.jsonnet"
    path.write_text(
        "{type: 'Chain', inputs: {x: ['B', std.extVar('num_symbols')]}, children: [{type: std.extVar('act')}]}"
    )
    # narchi's spelling, as its jsonargparse reads the value
    result = run(capsys, "validate", str(path), "--ext_vars", "{num_symbols: 68, act: ReLU}", "--format", "json")
    assert (result.code, json.loads(result.out)["inputs"]) == (0, {"x": ["B", 68]}), result.err
    fails(run(capsys, "validate", str(path), "--ext-vars", "[68]"), 2, "--ext-vars", "got a list")


@pytest.mark.parametrize(
    ("text", "read"),
    [("H%32==0", ("H", 32)), ("H%32=0", ("H", 32)), (" W % 8 == 0 ", ("W", 8)), ("T_in%2==0", ("T_in", 2))],
)
def test_assumptions_accepted(text: str, read: tuple[str, int]) -> None:
    assert assumption(text) == read


@pytest.mark.parametrize(
    "text",
    ["H%32", "H%32==1", "H/32", "32%H==0", "H%x==0", "H%-2==0", "H%0==0", "H%1==0", "H%" + "9" * 40 + "==0", "Hé%2==0"],
)
def test_assumptions_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"^--assume: "):
        assumption(text)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_so_a_tla_keeps_them_as_text(constant: str) -> None:
    assert tla_value(f"x={constant}") == ("x", constant)
    with pytest.raises(argparse.ArgumentTypeError, match=f"--tla x: .* is not JSON \\({constant} is not JSON\\)"):
        tla_value(f"x=[1, {constant}]")  # a list, meant as JSON, with something JSON has not


def test_a_tla_nan_or_infinity_reaches_the_spec_as_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.jsonnet"
    path.write_text(
        "function(word) {type: 'Chain', inputs: {x: ['B', 2]}, "
        "children: [{type: 'Linear', out_features: std.length(word)}]}"
    )
    for word in ("NaN", "-Infinity"):
        result = run(capsys, "validate", str(path), "--tla", f"word={word}", "--format", "json")
        assert result.code == 0, result.err
        assert json.loads(result.out)["output"] == ["B", len(word)]


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("image=B,3,224,224", ("B", 3, 224, 224)),
        ("x=(B, T, 512)", ("B", "T", 512)),
        ("x=[ B , 8 ]", ("B", 8)),
        ("x= 0 ", (0,)),
        ("scalar=", ()),
        ("scalar=()", ()),
        ("scalar=[ ]", ()),
        (f"x={2**63 - 1}", (2**63 - 1,)),
        ("x=_private,H_2", ("_private", "H_2")),
    ],
)
def test_input_shapes_accepted(text: str, shape: tuple[int | str, ...]) -> None:
    assert input_shape(text) == (text.partition("=")[0], shape)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x=B,3.5", "--input x: a size is a number or a symbol name such as B, got '3.5' (as in x=B,3,224,224)"),
        ("x=B,,3", "--input x: a size is a number or a symbol name such as B, got ''"),
        ("x=B,-3", "--input x: a size is a number or a symbol name such as B, got '-3'"),
        ("x=B,3x", "--input x: a size is a number or a symbol name such as B, got '3x'"),
        ("x=B,٣", "--input x: a size is a number or a symbol name such as B, got '٣'"),
        ("x=[B,3", "--input x: a size is a number or a symbol name such as B, got '[B'"),
        (f"x={2**63}", f"--input x: a size is at most 2**63 - 1, got {2**63}"),
        ("x=" + "9" * 40, "--input x: a size is at most 2**63 - 1, got " + "9" * 30),
        ("3d=B", "expected NAME=VALUE with NAME an identifier, got '3d=B'"),
    ],
)
def test_input_shapes_refused(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        input_shape(text)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(("text", "value"), [("10", 10.0), ("0.001", 0.001), ("1e6", 1e6), (" 3 ", 3.0)])
def test_seconds_accepted(text: str, value: float) -> None:
    assert seconds(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "1e6.1", "1000001", "inf", "nan", "ten", ""])
def test_seconds_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        seconds(text)
    assert str(raised.value) == f"expected a number of seconds above 0 (at most 1e6), got {text!r}"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2048", 2048),
        ("512M", 512 * 2**20),
        ("512m", 512 * 2**20),
        ("2G", 2 * 2**30),
        ("1.5GiB", 3 * 2**29),
        ("64KB", 64 * 2**10),
        ("1 T", 2**40),
        (" 1G ", 2**30),
        ("0.5K", 512),
        ("8388607T", 8388607 * 2**40),
    ],
)
def test_byte_sizes_accepted(text: str, size: int) -> None:
    assert byte_size(text) == size


@pytest.mark.parametrize("text", ["0", "0.1", "lots", "1X", "-1G", "1e9", "G", "8388608T", ""])
def test_byte_sizes_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        byte_size(text)
    assert str(raised.value) == f"expected a size such as 512M or 2G, got {text!r}"


@pytest.mark.parametrize(("text", "count"), [("1", 1), ("500", 500), ("0002", 2), (str(2**31 - 1), 2**31 - 1)])
def test_positive_counts_accepted(text: str, count: int) -> None:
    assert positive_count(text) == count


@pytest.mark.parametrize("text", ["0", "-1", "+5", "1.0", "٣", str(2**31), "0" * 11 + "1", ""])
def test_positive_counts_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        positive_count(text)
    assert str(raised.value) == f"expected a whole number from 1 to 2147483647, got {text!r}"


def test_by_name_keeps_the_order_given_and_refuses_a_name_twice() -> None:
    assert list(by_name([("b", 1), ("a", 2), ("c", 3)], "--tla")) == ["b", "a", "c"]
    assert by_name(None, "--tla") == {}
    assert by_name([], "--input") == {}
    with pytest.raises(UsageError) as raised:
        by_name([("x", (1,)), ("y", (2,)), ("x", (1,))], "--input")
    assert str(raised.value) == "--input x is given twice"
    assert raised.value.exit_code == 2
