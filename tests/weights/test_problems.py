"""The report of a checkpoint that does not fit: counts, families of keys folded into one line,
suggestions for unexpected keys, reasons for mismatches, and a bound on how much is shown."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from fluxion.weights.problems import Problems


def body(problems: Problems) -> list[str]:
    """The report's lines after the first, without their indentation."""
    return [line.strip() for line in problems.describe("model.safetensors").splitlines()[1:]]


def test_nothing_wrong_is_empty() -> None:
    assert Problems().empty
    assert Problems(candidates=["a.weight"], mapped={"x": "y"}).empty
    assert not Problems(missing=["a"]).empty
    assert not Problems(unexpected=["a"]).empty
    assert not Problems(mismatched=[("a", "why")]).empty


def test_the_first_line_names_the_checkpoint_and_counts_each_kind_present() -> None:
    problems = Problems(missing=["a", "b"], mismatched=[("c", "why")])
    assert problems.describe("ckpt.pt").splitlines()[0] == "ckpt.pt does not fit the model: 2 missing, 1 mismatched"
    everything = Problems(missing=["a"], unexpected=["b", "c", "d"], mismatched=[("e", "x")])
    assert everything.describe("x").splitlines()[0] == "x does not fit the model: 1 missing, 3 unexpected, 1 mismatched"


def test_sections_come_in_order_with_their_counts() -> None:
    problems = Problems(
        missing=["m"], unexpected=["u"], mismatched=[("w", "model has shape (2,), checkpoint 'w' has (3,)")]
    )
    assert body(problems) == [
        "missing from the checkpoint (1):",
        "m",
        "unexpected in the checkpoint (1):",
        "u",
        "mismatched (1):",
        "w: model has shape (2,), checkpoint 'w' has (3,)",
    ]


def test_keys_that_differ_only_by_numbers_are_one_line_in_natural_order() -> None:
    keys = [f"blocks.{i}.norm.weight" for i in (10, 2, 1, 0)] + ["head.weight"]
    assert body(Problems(missing=keys)) == [
        "missing from the checkpoint (5):",
        "blocks.*.norm.weight  (4 keys: blocks.0.norm.weight ... blocks.10.norm.weight)",
        "head.weight",
    ]


def test_a_number_shared_by_the_whole_family_is_kept() -> None:
    keys = [f"stage.1.block.{i}.conv2.weight" for i in range(3)]
    assert body(Problems(missing=keys))[1].startswith("stage.1.block.*.conv2.weight  (3 keys:")
    grid = [f"layer.{i}.{j}.w" for i in range(2) for j in range(3)]
    assert body(Problems(missing=grid))[1] == "layer.*.*.w  (6 keys: layer.0.0.w ... layer.1.2.w)"


def test_unexpected_keys_get_the_nearest_missing_key_as_a_suggestion() -> None:
    problems = Problems(missing=["head.weight", "head.bias"], unexpected=["haed.weight"], candidates=["other"])
    assert "haed.weight  (did you mean head.weight?)" in body(problems)


def test_without_missing_keys_suggestions_come_from_the_models_keys() -> None:
    problems = Problems(unexpected=["encoder.fc.wieght", "zzz"], candidates=["encoder.fc.weight", "encoder.fc.bias"])
    assert body(problems)[1:] == ["encoder.fc.wieght  (did you mean encoder.fc.weight?)", "zzz"]


def test_a_mapped_key_shows_where_it_went_and_is_suggested_from_there() -> None:
    problems = Problems(
        unexpected=["transformer.h.0.attn.weight"],
        mapped={"transformer.h.0.attn.weight": "blocks.0.atn.weight"},
        candidates=["blocks.0.attn.weight", "blocks.0.mlp.weight"],
    )
    assert body(problems)[1] == (
        "transformer.h.0.attn.weight (mapped to blocks.0.atn.weight)  (did you mean blocks.0.attn.weight?)"
    )


def test_a_family_of_mismatches_gives_one_example_reason() -> None:
    mismatched = [(f"b.{i}.w", f"model has shape ({i},), checkpoint has (9,)") for i in (2, 0, 1)]
    assert (
        body(Problems(mismatched=mismatched))[1]
        == "b.*.w  (3 keys: b.0.w ... b.2.w): e.g. model has shape (0,), checkpoint has (9,)"
    )


def test_at_most_twelve_groups_are_shown_and_the_rest_counted() -> None:
    keys = [f"key_{letter}" for letter in "abcdefghijklmn"] + [f"k{i}x" for i in range(3)]
    lines = body(Problems(missing=keys))
    assert lines[0] == "missing from the checkpoint (17):"
    assert len(lines) == 1 + 12 + 1
    assert lines[1] == "k*x  (3 keys: k0x ... k2x)"
    assert lines[-1] == "... and 3 more keys in 3 more groups"


NAMES = st.sampled_from(["blocks.#.norm.weight", "layer#.bias", "head.weight", "h.#.attn.#.w", "embed"])


@given(st.lists(st.tuples(NAMES, st.lists(st.integers(0, 30), min_size=2, max_size=2)), max_size=40))
def test_every_key_is_counted_once_in_the_lines_shown(draws: list[tuple[str, list[int]]]) -> None:
    keys = sorted(
        {template.replace("#", str(numbers[0]), 1).replace("#", str(numbers[1])) for template, numbers in draws}
    )
    if not keys:
        return
    lines = body(Problems(missing=keys))
    assert lines[0] == f"missing from the checkpoint ({len(keys)}):"
    counted = 0
    for line in lines[1:]:
        family = re.fullmatch(r"(\S+)  \((\d+) keys: (\S+) \.\.\. (\S+)\)", line)
        if family:
            pattern = re.escape(family[1]).replace(r"\*", r"\d+")
            members = [key for key in keys if re.fullmatch(pattern, key)]
            assert len(members) == int(family[2])
            members.sort(key=lambda key: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)])
            assert (family[3], family[4]) == (members[0], members[-1])
            counted += len(members)
        else:
            assert line in keys
            counted += 1
    assert counted == len(keys)
