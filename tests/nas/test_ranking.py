"""Ranking rules (``fluxion.nas.ranking``): softmax (DARTS) and raw weight (Archai) pick the same
candidate within a choice but can rank edges differently, so finalize keeps other edges; ``none``
is never chosen; ties keep the earlier candidate and edge."""

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import nas
from fluxion.errors import NasError
from fluxion.nas.operations import Zero
from fluxion.nas.ranking import NEVER, RANKS, best_candidate, check_rank, scores, strongest

# Over the candidates [none, x, y]: raw weights rank edge A first (3.0 > 2.0); softmax ranks B first,
# since y's weight close to x's takes half of A's probability mass (e^3 / (1 + e^3 + e^2.9) = 0.512)
# while B's y is nothing (e^2 / (1 + e^2 + e^-5) = 0.880).
EDGE_A = [0.0, 3.0, 2.9]
EDGE_B = [0.0, 2.0, -5.0]


def edge(alphas: list[float]) -> nas.Choice:
    choice = nas.Choice(none=Zero(), x=fl.Linear(3, 3), y=fl.Tanh())
    with torch.no_grad():
        choice.alphas.copy_(torch.tensor(alphas))
    return choice


def test_the_numbers_of_the_two_edges() -> None:
    assert scores(torch.tensor(EDGE_A), "raw") == pytest.approx(EDGE_A)
    softmax_a = scores(torch.tensor(EDGE_A), "softmax")
    softmax_b = scores(torch.tensor(EDGE_B), "softmax")
    assert softmax_a[1] == pytest.approx(math.exp(3) / (1 + math.exp(3) + math.exp(2.9)), rel=1e-6)
    assert softmax_b[1] == pytest.approx(math.exp(2) / (1 + math.exp(2) + math.exp(-5)), rel=1e-6)
    assert sum(softmax_a) == pytest.approx(1.0)
    assert best_candidate(edge(EDGE_A), "raw") == ("x", 3.0)
    assert best_candidate(edge(EDGE_B), "raw") == ("x", 2.0)
    assert best_candidate(edge(EDGE_A), "softmax")[1] == pytest.approx(0.5116, abs=1e-4)
    assert best_candidate(edge(EDGE_B), "softmax")[1] == pytest.approx(0.8801, abs=1e-4)


def two_edges_into_one_join() -> fl.Graph:
    return fl.Graph(
        {"edge_a": edge(EDGE_A), "edge_b": edge(EDGE_B), "state_2": nas.InputChoice(keep=1)},
        edges=["x -> edge_a -> state_2", "x -> edge_b -> state_2"],
        inputs=("x",),
    )


def test_the_two_rules_keep_different_edges_from_the_same_weights() -> None:
    supernet = two_edges_into_one_join()
    raw = nas.finalize(supernet, rank="raw")
    softmax = nas.finalize(supernet, rank="softmax")
    assert raw.choices == softmax.choices == {"edge_a": "x", "edge_b": "x"}  # the same candidate in each choice
    assert raw.joins["state_2"] == nas.Join(kept=("edge_a",), dropped=("edge_b",))
    assert softmax.joins["state_2"] == nas.Join(kept=("edge_b",), dropped=("edge_a",))
    assert [name for name, _ in raw.model.named_children()] == ["edge_a", "state_2"]
    assert [name for name, _ in softmax.model.named_children()] == ["edge_b", "state_2"]
    x = torch.randn(2, 3)
    assert torch.equal(raw.model(x), supernet.edge_a.x(x))  # the join of one input passes it on
    assert torch.equal(softmax.model(x), supernet.edge_b.x(x))
    assert raw.address_map["edge_b"] is None
    assert softmax.address_map["edge_a"] is None


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=8))
def test_both_rules_choose_the_same_candidate_within_a_choice(values: list[float]) -> None:
    choice = nas.Choice(**{"none": fl.Identity(), **{f"op_{i}": fl.Identity() for i in range(len(values) - 1)}})
    with torch.no_grad():
        choice.alphas.copy_(torch.tensor(values))
    raw_name, raw_score = best_candidate(choice, "raw")
    softmax_name, softmax_score = best_candidate(choice, "softmax")
    float32 = torch.tensor(values).tolist()  # the rules compare float32 values
    expected = max(range(1, len(values)), key=lambda index: (float32[index], -index))
    assert raw_name == f"op_{expected - 1}"
    assert raw_score == float32[expected]
    # softmax keeps the order (rounding may only merge neighbours into a tie, which keeps the earlier)
    probabilities = scores(choice.alphas, "softmax")
    assert probabilities[expected] == max(probabilities[1:]) == softmax_score
    assert softmax_name == f"op_{probabilities.index(softmax_score, 1) - 1}"
    if len(set(probabilities[1:])) == len(values) - 1:
        assert softmax_name == raw_name


def test_none_is_never_chosen_even_when_its_weight_is_the_largest() -> None:
    for rank in RANKS:
        assert best_candidate(edge([10.0, -1.0, 0.5]), rank)[0] == "y"  # pyright: ignore[reportArgumentType]
    assert NEVER == ("none",)
    supernet = fl.Chain(act=edge([10.0, -1.0, 0.5]))
    assert nas.finalize(supernet).choices == {"act": "y"}
    assert type(nas.finalize(supernet).model.act) is fl.Tanh


def test_never_names_other_candidates_finalize_must_not_keep() -> None:
    choice = edge([0.0, 5.0, 1.0])
    assert best_candidate(choice, "raw", never=("none", "x")) == ("y", 1.0)
    assert nas.finalize(fl.Chain(e=choice), never=("none", "x")).choices == {"e": "y"}


def test_a_choice_of_none_only_is_a_nas_error_naming_it() -> None:
    supernet = fl.Chain(cells=fl.Chain(edge_3=nas.Choice(none=Zero())))
    message = "Choice at 'cells.edge_3': no candidate can be chosen: every candidate is one finalize never keeps (none)"
    for rank in RANKS:
        with pytest.raises(NasError, match=re.escape(message)):
            nas.finalize(supernet, rank=rank)  # pyright: ignore[reportArgumentType]


def test_a_choice_without_candidates_is_a_nas_error_naming_it() -> None:
    supernet = fl.Chain(cells=fl.Chain(edge_3=nas.Choice()))
    with pytest.raises(NasError, match=re.escape("Choice at 'cells.edge_3' has no candidates")):
        nas.finalize(supernet)


def test_ties_keep_the_earlier_candidate() -> None:
    for rank in RANKS:
        assert best_candidate(edge([0.0, 1.0, 1.0]), rank)[0] == "x"  # pyright: ignore[reportArgumentType]
    assert strongest([0.2, 0.9, 0.5, 0.9], 2) == [1, 3]
    assert strongest([0.5, 0.5, 0.5], 2) == [0, 1]
    assert strongest([1.0, 3.0, 2.0], 3) == [1, 2, 0]


def test_ties_between_edges_keep_the_earlier_edge() -> None:
    supernet = fl.Graph(
        {
            "edge_0": edge([0.0, 1.0, 0.0]),
            "edge_1": edge([0.0, 1.0, 0.0]),
            "edge_2": edge([0.0, 1.0, 0.0]),
            "state_2": nas.InputChoice(keep=2),
        },
        edges=["x -> edge_0 -> state_2", "x -> edge_1 -> state_2", "x -> edge_2 -> state_2"],
        inputs=("x",),
    )
    for rank in RANKS:
        join = nas.finalize(supernet, rank=rank).joins["state_2"]  # pyright: ignore[reportArgumentType]
        assert join == nas.Join(kept=("edge_0", "edge_1"), dropped=("edge_2",))


def test_a_fixed_choice_keeps_its_candidate_and_is_the_strongest_edge() -> None:
    choice = edge([0.0, 5.0, -5.0])
    choice.choose("y")
    assert best_candidate(choice, "softmax") == ("y", math.inf)
    assert best_candidate(choice, "raw") == ("y", math.inf)


def test_the_rule_is_checked() -> None:
    assert check_rank("softmax") == "softmax"
    with pytest.raises(NasError, match=re.escape("unknown ranking rule 'max'; rules: softmax, raw")):
        check_rank("max")
    with pytest.raises(NasError, match="unknown ranking rule 'max'"):
        nas.finalize(fl.Chain(e=edge(EDGE_A)), rank="max")  # pyright: ignore[reportArgumentType]


def test_nan_architecture_weights_are_a_nas_error_naming_the_choice() -> None:
    supernet = fl.Chain(cells=fl.Chain(edge_3=edge([0.0, math.nan, 1.0])))
    for rank in RANKS:
        with pytest.raises(NasError, match=re.escape("Choice at 'cells.edge_3': architecture weights")):
            nas.finalize(supernet, rank=rank)  # pyright: ignore[reportArgumentType]


def test_an_infinite_weight_ranks_under_the_raw_rule_but_gives_softmax_nothing_to_rank() -> None:
    supernet = fl.Chain(edge_3=edge([0.0, math.inf, 1.0]))
    assert nas.finalize(supernet, rank="raw").choices == {"edge_3": "x"}
    with pytest.raises(NasError, match="give NaN scores"):
        nas.finalize(supernet, rank="softmax")


def test_a_learning_join_whose_weights_are_nan_is_a_nas_error_naming_it() -> None:
    join = nas.InputChoice(keep=1, count=2, learn=True)
    with torch.no_grad():
        join.alphas.copy_(torch.tensor([math.nan, 0.0]))  # pyright: ignore[reportOptionalMemberAccess]
    supernet = fl.Chain(fl.Parallel(fl.Identity(), fl.Identity()), join=join)
    with pytest.raises(NasError, match=re.escape("InputChoice at 'join': architecture weights")):
        nas.finalize(supernet)
