"""Every other tool's format goes through one hook: recognised, then translated."""

import pytest

from fluxion.spec import dialects

TORCHARC = {
    "modules": {"head": {"Linear": {"in_features": 2, "out_features": 1}}},
    "graph": {"input": "x", "modules": {"head": ["x"]}, "output": "head"},
}
NARCHI = {
    "blocks": [{"_class": "Linear", "_id": "fc", "output_feats": 2}],
    "graph": ["x -> fc -> y"],
    "inputs": [{"_id": "x", "_shape": [3]}],
    "outputs": [{"_id": "y", "_shape": [2]}],
}


@pytest.mark.parametrize(
    ("data", "name"),
    [(TORCHARC, "TorchArc"), (NARCHI, "narchi"), ({"type": "Chain", "children": []}, None), ([1, 2], None)],
)
def test_each_format_is_recognised_as_its_own(data: object, name: str | None) -> None:
    dialect = dialects.dialect_of(data)
    assert (dialect.name if dialect else None) == name


def test_no_value_is_two_dialects_at_once() -> None:
    for data in (TORCHARC, NARCHI):
        assert sum(dialect.detects(data) for dialect in dialects.DIALECTS) == 1


def test_a_translation_is_the_dialects_and_none_for_fluxions_own_format() -> None:
    found = dialects.translation(TORCHARC, file="model.yaml")
    assert found is not None
    assert found.spec["type"] == "Graph"
    assert found.materialize_on_call
    narchi = dialects.translation(NARCHI)
    assert narchi is not None
    assert not narchi.materialize_on_call
    assert dialects.translation({"type": "ReLU"}) is None
