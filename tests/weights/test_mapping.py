"""Key mappings: every accepted form, JSON files, tensor steps, and the errors of bad mappings."""

import json
import re
from pathlib import Path

import pytest
import torch

import fluxion.layers as fl
from fluxion.weights import KeyMapping, Rule, WeightsError, load
from tests.weights.helpers import same_state, small_model, state_snapshot


def foreign_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights as another library might name them."""
    renamed = {}
    for key, value in model.state_dict().items():
        key = key.replace("blocks.Chain_", "encoder.layer.").replace("Linear", "dense").replace("LayerNorm", "norm")
        renamed[key.replace("head.", "classifier.")] = value
    return renamed


RULES = [
    (r"^encoder\.layer\.(\d+)\.", r"blocks.Chain_\1."),
    (r"\.dense\.", ".Linear."),
    (r"\.norm\.", ".LayerNorm."),
    (r"^classifier\.", "head."),
]


def test_ordered_rules_a_dict_and_a_callable_all_load() -> None:
    torch.manual_seed(0)
    model = small_model()
    state = foreign_state(model)
    rules = KeyMapping(RULES)
    renames = {key: rules(key) for key in state}
    for mapping in (RULES, KeyMapping(RULES), renames, rules.__call__):
        fresh = small_model()
        load(fresh, state, mapping=mapping)
        assert same_state(fresh, state_snapshot(model))


def test_json_round_trip(tmp_path: Path) -> None:
    mapping = KeyMapping(
        [*RULES, Rule(r"qkv", ("q", "k", "v"), transpose=True, split_dim=1), (r"\.unused$", None)],
        rename={"exact.key": "other.key", "dropped.key": None},
    )
    mapping.write(tmp_path / "mapping.json")
    again = KeyMapping.read(tmp_path / "mapping.json")
    assert again.to_json() == mapping.to_json()
    for key in ("encoder.layer.1.dense.weight", "exact.key", "dropped.key", "a.qkv.weight", "a.unused"):
        assert again.targets(key) == mapping.targets(key)


def test_a_function_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="cannot be saved as JSON"):
        KeyMapping(function=str.upper).write(tmp_path / "m.json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json", "is not readable JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"rules": {}}', "'rules' must be a list"),
        ('{"rules": [{"pattern": "a"}]}', r"rules\[0\] needs 'pattern' and 'replace'"),
        (
            '{"rules": [{"pattern": "(", "replace": "b"}]}',
            r"rules\[0\]: mapping rule pattern '\(' is not a valid regex",
        ),
        ('{"rules": [{"pattern": "a", "replace": []}]}', r"rules\[0\]\.replace must be a string"),
        ('{"rules": [{"pattern": "a", "replace": "b", "transpose": "yes"}]}', "'transpose' must be true/false"),
        ('{"rename": {"a": 1}}', "'rename' must map keys to a key or null"),
        ('{"renames": {}}', "unknown mapping fields"),
        ('{"fluxion_mapping": 9}', "format version 9 is not supported"),
    ],
)
def test_malformed_mapping_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "mapping.json"
    path.write_text(text)
    with pytest.raises(WeightsError, match=expected) as caught:
        KeyMapping.read(path)
    assert str(path) in str(caught.value)


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        load(small_model(), {}, mapping=tmp_path / "nope.json")


def test_bad_group_reference_names_the_rule() -> None:
    with pytest.raises(WeightsError, match=r"mapping rule '\^a' -> '\\\\2'"):
        KeyMapping([(r"^a", r"\2")]).targets("a.weight")


def test_transpose_and_split_feed_separate_projections() -> None:
    torch.manual_seed(0)
    fused = torch.randn(4, 12)  # stored (in, out) like a Conv1D, q|k|v along out
    bias = torch.randn(12)
    model = fl.Chain(q=fl.Linear(4, 4), k=fl.Linear(4, 4), v=fl.Linear(4, 4))
    mapping = KeyMapping(
        [
            Rule(r"^attn\.c_attn\.weight$", ("q.weight", "k.weight", "v.weight"), transpose=True),
            Rule(r"^attn\.c_attn\.bias$", ("q.bias", "k.bias", "v.bias")),
        ]
    )
    load(model, {"attn.c_attn.weight": fused, "attn.c_attn.bias": bias}, mapping=mapping)
    x = torch.randn(2, 4)
    expected = x @ fused + bias
    assert torch.allclose(torch.cat([model.q(x), model.k(x), model.v(x)], dim=-1), expected, atol=1e-6)


def test_a_split_that_does_not_divide_is_a_mismatch() -> None:
    model = fl.Chain(q=fl.Linear(4, 4, bias=False), k=fl.Linear(4, 4, bias=False))
    before = state_snapshot(model)
    with pytest.raises(WeightsError, match="cannot split shape \\(7, 4\\) into 2 equal parts"):
        load(model, {"qk.weight": torch.zeros(7, 4)}, mapping=[Rule(r"^qk\.", ("q.", "k."))])
    assert same_state(model, before)


def test_two_keys_mapping_to_one_address_is_an_error() -> None:
    with pytest.raises(WeightsError, match="both 'a' and 'b' map to it"):
        load(
            fl.Linear(2, 2, bias=False),
            {"a": torch.zeros(2, 2), "b": torch.zeros(2, 2)},
            mapping={"a": "weight", "b": "weight"},
        )


def test_mapped_unexpected_keys_show_both_names() -> None:
    with pytest.raises(WeightsError, match=r"old\.weight \(mapped to new\.weight\)"):
        load(
            fl.Linear(2, 2, bias=False),
            {"weight": torch.zeros(2, 2), "old.weight": torch.zeros(1)},
            mapping=[(r"^old", "new")],
        )


def test_coerce_rejects_nonsense() -> None:
    with pytest.raises(WeightsError, match="must be a Rule or a \\(pattern, replacement\\) pair"):
        KeyMapping.coerce([("only-one",)])  # type: ignore[list-item]
    assert json.loads(json.dumps(KeyMapping(RULES).to_json()))["fluxion_mapping"] == 1


def test_the_json_mapping_shown_in_the_guide_is_valid() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "weights.md").read_text()
    (block,) = re.findall(r"```json\n(.*?)```", guide, re.DOTALL)
    mapping = KeyMapping.from_json(json.loads(block))
    (target,) = mapping.targets("attn.c_proj.weight")
    assert target.key == "output.weight"
    assert target.shape((8, 4)) == (4, 8)
    assert [t.key for t in mapping.targets("attn.c_attn.bias")][1] == "projections.key.bias"


def test_a_dict_is_renames_or_the_content_of_a_mapping_file() -> None:
    assert KeyMapping.coerce({"fc.weight": "head.weight", "extra": None}).rename == {
        "fc.weight": "head.weight",
        "extra": None,
    }
    document = {"rules": [{"pattern": "^c_attn[.]", "replace": ["q.", "k.", "v."], "transpose": True}]}
    targets = KeyMapping.coerce(document).targets("c_attn.weight")
    assert [target.key for target in targets] == ["q.weight", "k.weight", "v.weight"]
    with pytest.raises(WeightsError, match=r"rules\[0\] needs 'pattern' and 'replace'"):
        KeyMapping.coerce({"rules": [{"pattern": "^a"}]})
    with pytest.raises(WeightsError, match=r"a dict of renames .* 'fc\.weight' maps to 3"):
        KeyMapping.coerce({"fc.weight": 3})
