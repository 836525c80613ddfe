"""``fluxion.nas.Genotype``: DARTS's form as JSON, read and written back unchanged, compared through
its canonical order, every bad entry a NasError that names it, files that round trip."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxion.errors import NasError
from fluxion.nas import Genotype

# DARTS_V2 (the published DARTS cell), from quark0/darts's genotypes.py
DARTS_V2: dict[str, Any] = {
    "normal": [
        ["sep_conv_3x3", 0],
        ["sep_conv_3x3", 1],
        ["sep_conv_3x3", 0],
        ["sep_conv_3x3", 1],
        ["sep_conv_3x3", 1],
        ["skip_connect", 0],
        ["skip_connect", 0],
        ["dil_conv_3x3", 2],
    ],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [
        ["max_pool_3x3", 0],
        ["max_pool_3x3", 1],
        ["skip_connect", 2],
        ["max_pool_3x3", 1],
        ["max_pool_3x3", 0],
        ["skip_connect", 2],
        ["skip_connect", 2],
        ["max_pool_3x3", 1],
    ],
    "reduce_concat": [2, 3, 4, 5],
}

PRIMITIVES = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]


def test_darts_v2_reads_and_writes_back_unchanged() -> None:
    kept = copy.deepcopy(DARTS_V2)
    genotype = Genotype.parse(DARTS_V2, primitives=PRIMITIVES)
    assert kept == DARTS_V2  # the caller's data is not changed
    assert genotype.to_json() == DARTS_V2
    assert list(genotype.to_json()) == ["normal", "normal_concat", "reduce", "reduce_concat"]
    assert json.loads(json.dumps(genotype.to_json())) == DARTS_V2
    assert genotype.cells["normal"][7] == ("dil_conv_3x3", 2)
    assert genotype.concats["reduce"] == (2, 3, 4, 5)
    assert genotype.nodes("normal") == genotype.nodes("reduce") == 4
    assert Genotype.parse(genotype.to_json()) == genotype
    assert hash(Genotype.parse(genotype.to_json())) == hash(genotype)


def test_tuples_read_as_lists() -> None:
    as_tuples = {
        "normal": tuple((operation, state) for operation, state in DARTS_V2["normal"]),
        "normal_concat": (2, 3, 4, 5),
    }
    assert Genotype.parse(as_tuples).to_json() == {key: DARTS_V2[key] for key in ("normal", "normal_concat")}


def test_str_shows_each_node() -> None:
    genotype = Genotype.parse({"normal": [["a", 0], ["b", 1], ["c", 2], ["a", 0]], "normal_concat": [2, 3]})
    assert str(genotype) == "normal: a(0) + b(1) | c(2) + a(0) -> concat [2, 3]"


def test_canonical_orders_each_nodes_edges_by_input() -> None:
    genotype = Genotype.parse(DARTS_V2)
    canonical = genotype.canonical()
    assert canonical.cells["normal"] == (
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("sep_conv_3x3", 1),  # node 2's two edges swap
        ("skip_connect", 0),
        ("dil_conv_3x3", 2),
    )
    assert canonical != genotype
    assert canonical.canonical() == canonical
    assert canonical.concats == genotype.concats


@settings(max_examples=50, deadline=None)
@given(data=st.data(), nodes=st.integers(1, 5))
def test_genotypes_differing_only_in_the_order_of_a_nodes_edges_are_canonically_equal(
    data: st.DataObject, nodes: int
) -> None:
    pairs: list[list[Any]] = []
    for node in range(nodes):
        for _ in range(2):
            pairs.append([data.draw(st.sampled_from(PRIMITIVES[1:])), data.draw(st.integers(0, node + 1))])
    concat = data.draw(st.lists(st.integers(0, nodes + 1), min_size=1, max_size=nodes + 2, unique=True))
    swapped = [pair for node in range(nodes) for pair in reversed(pairs[2 * node : 2 * node + 2])]
    first = Genotype.parse({"normal": pairs, "normal_concat": concat}, primitives=PRIMITIVES)
    second = Genotype.parse({"normal": swapped, "normal_concat": concat}, primitives=PRIMITIVES)
    assert first.canonical() == second.canonical()
    assert Genotype.parse(first.to_json()) == first
    other = [*pairs[:-1], [pairs[-1][0], (pairs[-1][1] + 1) % (nodes + 1)]]  # the last edge reads another state
    changed = Genotype.parse({"normal": other, "normal_concat": concat})
    assert changed.canonical() != first.canonical()


def with_change(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DARTS_V2)
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([["sep_conv_3x3", 0]], "genotype: expected an object of cell types, got list"),
        ({}, "genotype: no cell type"),
        ({1: [], "normal": []}, "genotype: keys are cell types (strings), got 1"),
        (with_change(normal="sep_conv_3x3"), "genotype: 'normal' is a list of [operation, input] pairs, got str"),
        (with_change(normal=[]), "genotype: 'normal' has 0 pairs; a cell has two per intermediate node"),
        (
            with_change(normal=DARTS_V2["normal"][:7]),
            "genotype: 'normal' has 7 pairs; a cell has two per intermediate node",
        ),
        (
            with_change(reduce=[*DARTS_V2["reduce"][:2], ["skip_connect"], ["max_pool_3x3", 1]]),
            "genotype: reduce[2] is an [operation, input] pair, got ['skip_connect']",
        ),
        (
            with_change(normal=[[3, 0], *DARTS_V2["normal"][1:]]),
            "genotype: normal[0]: the operation is a name, got 3",
        ),
        (
            with_change(normal=[["sep_conv_3x3", "0"], *DARTS_V2["normal"][1:]]),
            "genotype: normal[0]: the input is a state number, got '0'",
        ),
        (
            with_change(normal=[["sep_conv_3x3", True], *DARTS_V2["normal"][1:]]),
            "genotype: normal[0]: the input is a state number, got True",
        ),
        (
            with_change(normal=[*DARTS_V2["normal"][:3], ["none", 1], *DARTS_V2["normal"][4:]]),
            "genotype: normal[3] chooses 'none': a discrete cell has no 'none' edges",
        ),
        (
            with_change(normal=[*DARTS_V2["normal"][:2], ["sep_conv_3x3", 3], *DARTS_V2["normal"][3:]]),
            "genotype: normal[2] reads state 3, but node 1 (state 3) can read states 0..2",
        ),
        (
            with_change(reduce=[["max_pool_3x3", -1], *DARTS_V2["reduce"][1:]]),
            "genotype: reduce[0] reads state -1, but node 0 (state 2) can read states 0..1",
        ),
        ({"normal": DARTS_V2["normal"]}, "genotype: 'normal' has no 'normal_concat'"),
        (with_change(normal_concat=[]), "genotype: 'normal_concat' is a non-empty list of states, got []"),
        (with_change(normal_concat=5), "genotype: 'normal_concat' is a non-empty list of states, got 5"),
        (with_change(reduce_concat=[2, 3, 6]), "genotype: 'reduce_concat' names state 6; the cell has states 0..5"),
        (with_change(reduce_concat=[2, "3"]), "genotype: 'reduce_concat' names state '3'"),
        (with_change(extra_concat=[2]), "genotype: 'extra_concat' belongs to no cell type"),
    ],
)
def test_every_bad_entry_is_a_nas_error_naming_it(data: object, message: str) -> None:
    with pytest.raises(NasError, match=re.escape(message)):
        Genotype.parse(data)


def test_primitives_check_the_operations() -> None:
    data = with_change(normal=[*DARTS_V2["normal"][:5], ["conv_9x9", 0], *DARTS_V2["normal"][6:]])
    Genotype.parse(data)  # without primitives, any name
    message = "genotype: normal[5]: unknown operation 'conv_9x9'; operations: none, max_pool_3x3"
    with pytest.raises(NasError, match=re.escape(message)):
        Genotype.parse(data, primitives=PRIMITIVES)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    genotype = Genotype.parse(DARTS_V2)
    path = tmp_path / "genotype.json"
    genotype.save(path)
    assert json.loads(path.read_text()) == DARTS_V2
    assert Genotype.load(path) == genotype
    assert Genotype.load(str(path)).to_json() == DARTS_V2


def test_a_bad_file_is_a_nas_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(NasError, match=re.escape(f"genotype file {str(missing)!r} cannot be read")):
        Genotype.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"normal": [')
    with pytest.raises(NasError, match=re.escape(f"genotype file {str(broken)!r} cannot be read")):
        Genotype.load(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(with_change(normal_concat=[9])))
    with pytest.raises(NasError, match=re.escape("'normal_concat' names state 9")):
        Genotype.load(wrong)
