"""YAML files (TorchArc's) read with PyYAML's safe loader: anchors, aliases, merge keys, null values;
1e-3 is a number; a key given twice and a syntax error are SpecErrors with the line."""

from pathlib import Path

import pytest

from fluxion.spec import SpecError
from fluxion.spec.source import read, read_yaml


def test_anchors_aliases_merge_keys_and_nulls_read_as_torcharc_reads_them() -> None:
    data = read_yaml(
        "width: &width 64\nleft: &left {Linear: {out_features: *width}}\nright: {<<: *left, extra: 1}\nact:\n  ReLU:\n"
    )
    assert data["left"] == {"Linear": {"out_features": 64}}
    assert data["right"] == {"Linear": {"out_features": 64}, "extra": 1}
    assert data["act"] == {"ReLU": None}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 0.001),
        ("-2E+2", -200.0),
        ("1.0e-3", 0.001),
        ("3", 3),
        ("1_000", 1000),
        ("e3", "e3"),
        ("'1e-3'", "1e-3"),
    ],
)
def test_a_number_in_exponent_form_is_a_number(text: str, value: object) -> None:
    assert read_yaml(f"eps: {text}") == {"eps": value}


def test_a_merged_key_may_be_given_again_but_a_key_written_twice_is_refused() -> None:
    assert read_yaml("base: &b {a: 1}\nover: {<<: *b, a: 2}")["over"] == {"a": 2}
    with pytest.raises(SpecError) as caught:
        read_yaml("modules:\n  head: {ReLU: null}\n  head: {Tanh: null}\n", "model.yaml")
    assert (caught.value.line, caught.value.reason) == (3, "key 'head' is given twice")


def test_a_syntax_error_names_its_line_and_column() -> None:
    with pytest.raises(SpecError) as caught:
        read_yaml("modules:\n  head: [1, 2\n", "model.yaml")
    assert caught.value.file == "model.yaml"
    assert caught.value.line == 3


def test_only_plain_values_are_built(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        read_yaml("x: !!python/object/apply:os.system ['true']")


def test_yaml_and_yml_files_are_yaml_and_take_no_jsonnet_variables(tmp_path: Path) -> None:
    for suffix in (".yaml", ".yml"):
        path = tmp_path / f"model{suffix}"
        path.write_text("modules: {}\n")
        assert read(path).data == {"modules": {}}
        assert read(str(path)).file == path
    with pytest.raises(SpecError, match="need a jsonnet file"):
        read(tmp_path / "model.yaml", ext_vars={"a": 1})
    with pytest.raises(SpecError, match="no such spec file"):
        read("missing.yaml")
