"""``fluxion.nas.Choice``: each mode against the computation written by hand, candidates called
through ``__call__`` (hooks fire), architecture weights that follow the candidates through surgery,
the shape rule, and choices that survive specs and safetensors files."""

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import nas, shapes, spec, weights
from fluxion.errors import FluxionError, NasError, ShapeError, TreeError

WIDTH = 4


def candidate_factories(width: int) -> dict[str, Callable[[], torch.nn.Module]]:
    return {
        "linear": lambda: fl.Linear(width, width),
        "tanh": fl.Tanh,
        "sigmoid": fl.Sigmoid,
        "block": lambda: fl.Chain(fl.Linear(width, width), fl.ReLU(), fl.Linear(width, width, bias=False)),
        "skip": fl.Identity,
    }


def choice_of(kinds: list[str], width: int = WIDTH, **options: object) -> nas.Choice:
    factories = candidate_factories(width)
    return nas.Choice(**{f"{kind}_{index}": factories[kind]() for index, kind in enumerate(kinds)}, **options)  # pyright: ignore[reportArgumentType]


@contextmanager
def counting_calls(choice: nas.Choice) -> Iterator[dict[str, int]]:
    """How many times each candidate's forward hooks fired while the block ran."""
    counts = dict.fromkeys(choice.candidates, 0)
    handles = []
    for name in choice.candidates:

        def hook(module: torch.nn.Module, inputs: object, output: object, name: str = name) -> None:
            counts[name] += 1

        handles.append(choice[name].register_forward_hook(hook))
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def set_alphas(choice: nas.Choice, values: list[float]) -> None:
    with torch.no_grad():
        choice.alphas.copy_(torch.tensor(values))


def by_hand(choice: nas.Choice, x: torch.Tensor) -> torch.Tensor:
    """DARTS's mixed operation written out: sum(softmax(alphas)[i] * candidate_i(x))."""
    probabilities = torch.softmax(choice.alphas, dim=0)
    return sum(
        (probabilities[index] * choice[name](x) for index, name in enumerate(choice.candidates)),
        start=torch.zeros(()),
    )


# -- softmax ---------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kinds=st.lists(st.sampled_from(["linear", "tanh", "sigmoid", "block", "skip"]), min_size=1, max_size=5),
    width=st.integers(1, 6),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_softmax_mode_is_the_weighted_sum_and_both_get_the_same_gradients(
    kinds: list[str], width: int, batch: int, seed: int
) -> None:
    torch.manual_seed(seed)
    choice = choice_of(kinds, width)
    set_alphas(choice, torch.randn(len(kinds)).mul(2).tolist())
    x = torch.randn(batch, width)
    upstream = torch.randn(batch, width)
    ours = choice(x)
    expected = by_hand(choice, x)
    assert torch.allclose(ours, expected, rtol=1e-6, atol=1e-7)
    parameters = list(choice.parameters())
    got = torch.autograd.grad((ours * upstream).sum(), parameters)
    wanted = torch.autograd.grad((expected * upstream).sum(), parameters)
    for one, two in zip(got, wanted, strict=True):
        assert torch.allclose(one, two, rtol=1e-5, atol=1e-7)
    alphas_gradient = got[next(index for index, p in enumerate(parameters) if p is choice.alphas)]
    if len(set(kinds)) > 1:
        assert alphas_gradient.abs().sum() > 0


def test_softmax_mode_calls_every_candidate_once_through_call() -> None:
    choice = choice_of(["linear", "tanh", "block"])
    with counting_calls(choice) as counts:
        choice(torch.randn(2, WIDTH))
    assert counts == dict.fromkeys(choice.candidates, 1)


def test_probabilities_are_the_softmax_of_the_alphas_detached() -> None:
    choice = choice_of(["linear", "tanh", "skip"])
    set_alphas(choice, [0.5, -1.0, 2.0])
    probabilities = choice.probabilities()
    assert torch.allclose(probabilities, torch.softmax(torch.tensor([0.5, -1.0, 2.0]), dim=0))
    assert not probabilities.requires_grad


# -- fixed -----------------------------------------------------------------------------------------


def test_fixed_mode_is_the_chosen_candidate_exactly_and_gives_the_alphas_no_gradient() -> None:
    torch.manual_seed(0)
    choice = choice_of(["linear", "block", "tanh"])
    choice.choose("block_1")
    assert (choice.mode, choice.chosen) == ("fixed", "block_1")
    x = torch.randn(3, WIDTH)
    with counting_calls(choice) as counts:
        output = choice(x)
    assert counts == {"linear_0": 0, "block_1": 1, "tanh_2": 0}
    assert torch.equal(output, choice["block_1"](x))
    output.sum().backward()
    assert choice.alphas.grad is None
    assert choice["block_1"].Linear_1.weight.grad is not None
    assert choice["linear_0"].weight.grad is None


def test_fixed_mode_given_at_construction() -> None:
    choice = nas.Choice(a=fl.Tanh(), b=fl.Sigmoid(), mode="fixed", chosen="b")
    x = torch.randn(5)
    assert torch.equal(choice(x), torch.sigmoid(x))


# -- sample and gumbel -------------------------------------------------------------------------------


def test_sample_mode_runs_exactly_one_uniformly_drawn_candidate_and_ignores_the_alphas() -> None:
    torch.manual_seed(0)
    choice = choice_of(["linear", "tanh", "sigmoid"], mode="sample")
    set_alphas(choice, [100.0, 0.0, 0.0])  # no effect on a uniform draw
    x = torch.randn(2, WIDTH)
    ran = dict.fromkeys(choice.candidates, 0)
    for _ in range(300):
        with counting_calls(choice) as counts:
            output = choice(x)
        assert sum(counts.values()) == 1
        (name,) = [name for name, count in counts.items() if count == 1]
        assert torch.equal(output, choice[name](x))
        ran[name] += 1
    assert all(count >= 60 for count in ran.values()), ran  # 100 each on average
    for _ in range(10):
        output = choice(x)
        if output.requires_grad:  # the linear candidate
            output.sum().backward()
    assert choice.alphas.grad is None


def test_gumbel_mode_runs_exactly_one_candidate_and_gives_the_alphas_a_gradient() -> None:
    torch.manual_seed(0)
    choice = choice_of(["linear", "tanh", "block"], mode="gumbel", tau=0.5)
    x = torch.randn(2, WIDTH)
    for _ in range(10):
        with counting_calls(choice) as counts:
            output = choice(x)
        assert sum(counts.values()) == 1
        (name,) = [name for name, count in counts.items() if count == 1]
        assert torch.allclose(output, choice[name](x), rtol=1e-6, atol=1e-7)  # the straight-through weight is 1
        choice.alphas.grad = None
        output.square().sum().backward()
        assert choice.alphas.grad is not None
        assert choice.alphas.grad.abs().sum() > 0


def test_gumbel_mode_follows_the_alphas() -> None:
    torch.manual_seed(0)
    choice = choice_of(["tanh", "sigmoid", "skip"], mode="gumbel")
    set_alphas(choice, [0.0, 8.0, 0.0])
    picked = 0
    for _ in range(50):
        with counting_calls(choice) as counts:
            choice(torch.randn(2, WIDTH))
        picked += counts["sigmoid_1"]
    assert picked >= 45


def one_hot_candidates(count: int) -> dict[str, torch.nn.Module]:
    """Candidate i outputs the i-th unit vector, so that a weighted sum shows its weights."""
    return {f"unit_{i}": fl.Lambda(lambda x, i=i: torch.eye(count)[i] + 0 * x.sum()) for i in range(count)}


def test_gumbel_soft_mode_weights_every_candidate_by_a_sample_that_sums_to_one() -> None:
    torch.manual_seed(0)
    choice = nas.Choice(**one_hot_candidates(4), mode="gumbel_soft", tau=0.7)
    x = torch.randn(3)
    draws = []
    for _ in range(5):
        with counting_calls(choice) as counts:
            weights_drawn = choice(x)
        assert counts == dict.fromkeys(choice.candidates, 1)
        assert torch.allclose(weights_drawn.sum(), torch.tensor(1.0), atol=1e-6)
        assert bool((weights_drawn > 0).all())
        draws.append(weights_drawn.detach())
    assert not torch.equal(draws[0], draws[1])  # a new sample each call
    choice(x)[0].backward()
    assert choice.alphas.grad is not None
    assert choice.alphas.grad.abs().sum() > 0


def test_a_low_temperature_makes_gumbel_soft_nearly_one_hot() -> None:
    torch.manual_seed(0)
    choice = nas.Choice(**one_hot_candidates(3), mode="gumbel_soft", tau=0.01)
    assert choice(torch.zeros(1)).max() > 0.99


# -- modes ----------------------------------------------------------------------------------------


def test_set_mode_sets_mode_chosen_and_tau() -> None:
    choice = choice_of(["tanh", "sigmoid"])
    assert (choice.mode, choice.chosen, choice.tau) == ("softmax", None, 1.0)
    choice.set_mode("gumbel", tau=0.25)
    assert (choice.mode, choice.chosen, choice.tau) == ("gumbel", None, 0.25)
    choice.set_mode("fixed", chosen="tanh_0")
    assert (choice.mode, choice.chosen, choice.tau) == ("fixed", "tanh_0", 0.25)
    choice.set_mode("sample")
    assert (choice.mode, choice.chosen) == ("sample", None)  # chosen belongs to fixed mode only
    assert "mode='sample'" in repr(choice)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mode": "greedy"}, "unknown mode 'greedy'; modes: softmax, gumbel, gumbel_soft, sample, fixed"),
        ({"mode": "fixed"}, "mode 'fixed' needs the candidate it keeps"),
        ({"mode": "fixed", "chosen": "pool"}, "'pool' is not a candidate; candidates: tanh_0, sigmoid_1"),
        ({"mode": "gumbel", "tau": 0.0}, "tau is a temperature above 0, got 0.0"),
        ({"mode": "gumbel", "tau": -1.0}, "tau is a temperature above 0"),
    ],
)
def test_a_bad_mode_is_a_nas_error_naming_the_choice_and_nothing_changes(
    arguments: dict[str, object], message: str
) -> None:
    model = fl.Chain(cells=fl.Chain(edge_3=choice_of(["tanh", "sigmoid"], mode="gumbel", tau=0.5)))
    choice = model.cells.edge_3
    with pytest.raises(NasError, match=r"Choice at 'cells\.edge_3'") as caught:
        choice.set_mode(**arguments)  # pyright: ignore[reportArgumentType]
    assert message in str(caught.value)
    assert (choice.mode, choice.chosen, choice.tau) == ("gumbel", None, 0.5)


def test_the_constructor_checks_its_mode_too() -> None:
    with pytest.raises(NasError, match="unknown mode"):
        nas.Choice(a=fl.Tanh(), mode="best")  # pyright: ignore[reportArgumentType]
    with pytest.raises(NasError, match="'c' is not a candidate"):
        nas.Choice(a=fl.Tanh(), b=fl.ReLU(), mode="fixed", chosen="c")


# -- naming and surgery ----------------------------------------------------------------------------


def test_positional_candidates_take_class_names_that_stay_theirs() -> None:
    choice = nas.Choice(fl.Linear(2, 2), fl.Linear(2, 2), [fl.Identity()], skip=fl.Identity())
    assert choice.candidates == ("Linear_1", "Linear_2", "Identity", "skip")
    assert tuple(choice.alphas.shape) == (4,)
    del choice.Linear_1
    assert choice.candidates == ("Linear_2", "Identity", "skip")  # no renaming to Linear
    assert [name for name, _ in choice.named_children()] == ["Linear_2", "Identity", "skip"]


def alphas_by_name(choice: nas.Choice) -> dict[str, float]:
    return dict(zip(choice.candidates, choice.alphas.tolist(), strict=True))


def test_appending_a_named_candidate_keeps_the_alphas_tensor_and_values() -> None:
    choice = choice_of(["tanh", "sigmoid"])
    tensor, before = choice.alphas, alphas_by_name(choice)
    choice.append(fl.ReLU(), name="relu")
    assert choice.alphas is tensor
    assert choice.candidates == ("tanh_0", "sigmoid_1", "relu")
    after = alphas_by_name(choice)
    assert {name: after[name] for name in before} == before
    assert torch.equal(choice(torch.ones(2, WIDTH)), by_hand(choice, torch.ones(2, WIDTH)))


def test_removing_candidates_keeps_the_alphas_of_those_that_stay() -> None:
    choice = choice_of(["linear", "tanh", "sigmoid", "skip"])
    tensor, before = choice.alphas, alphas_by_name(choice)
    del choice.tanh_1
    choice.remove("linear_0")
    choice.pop()
    assert choice.candidates == ("sigmoid_2",)
    assert choice.alphas is tensor
    assert alphas_by_name(choice) == {"sigmoid_2": before["sigmoid_2"]}


def test_replacing_candidates_keeps_the_alphas_by_name() -> None:
    choice = choice_of(["linear", "tanh", "sigmoid"])
    tensor, before = choice.alphas, alphas_by_name(choice)
    choice["tanh_1"] = fl.ReLU()  # the same name: the same weight
    assert alphas_by_name(choice) == before
    choice.replace("linear_0", fl.SiLU(), name="silu")  # another name: a new weight, the others kept
    after = alphas_by_name(choice)
    assert set(after) == {"silu", "tanh_1", "sigmoid_2"}
    assert after["tanh_1"] == before["tanh_1"]
    assert after["sigmoid_2"] == before["sigmoid_2"]
    assert choice.alphas is tensor
    x = torch.randn(2, WIDTH)
    assert torch.allclose(choice(x), by_hand(choice, x))


def test_unnamed_candidates_are_refused_and_the_choice_is_unchanged() -> None:
    choice = choice_of(["tanh", "sigmoid"])
    before = choice.alphas.detach().clone()
    for change in (
        lambda: choice.append(fl.ReLU()),
        lambda: choice.insert(0, fl.ReLU()),
        lambda: choice.insert_before_type(fl.Sigmoid, fl.SiLU()),
    ):
        with pytest.raises(TreeError, match=re.escape("a candidate needs a name: append(module, name=...)")):
            change()
    assert choice.candidates == ("tanh_0", "sigmoid_1")
    assert [name for name, _ in choice.named_children()] == ["tanh_0", "sigmoid_1"]
    assert torch.equal(choice.alphas.detach(), before)


def test_removing_the_chosen_candidate_unfixes_the_choice_and_its_spec() -> None:
    choice = nas.Choice(a=fl.Tanh(), b=fl.Sigmoid(), mode="fixed", chosen="a")
    model = fl.Chain(edge=choice)
    del choice.a
    assert (choice.mode, choice.chosen) == ("softmax", None)
    written = spec.dump(model)
    assert written["children"][0] == {"type": "Choice", "id": "edge", "children": [{"type": "Sigmoid", "id": "b"}]}
    loaded = spec.loads(written)
    assert (loaded.edge.mode, loaded.edge.chosen) == ("softmax", None)


def test_replacing_the_chosen_candidate_under_its_name_keeps_it_chosen() -> None:
    choice = nas.Choice(a=fl.Tanh(), b=fl.Sigmoid(), mode="fixed", chosen="a")
    choice["a"] = fl.ReLU()
    assert (choice.mode, choice.chosen) == ("fixed", "a")
    assert torch.equal(choice(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))


# -- no candidates ---------------------------------------------------------------------------------


def empty_in_a_tree() -> fl.Chain:
    return fl.Chain(fl.Linear(3, 3), cells=fl.Chain(fl.ReLU(), edge_3=nas.Choice()))


def test_a_choice_without_candidates_fails_its_forward_naming_its_address() -> None:
    model = empty_in_a_tree()
    for run in (model, model.cells.edge_3):
        with pytest.raises(FluxionError, match=r"Choice at 'cells\.edge_3' has no candidates") as caught:
            run(torch.randn(2, 3))
        assert isinstance(caught.value.__cause__, NasError)  # the forward's failure report wraps the NasError


def test_a_choice_without_candidates_fails_shape_inference_naming_its_address() -> None:
    with pytest.raises(ShapeError, match=r"Choice at 'cells\.edge_3' has no candidates"):
        shapes.infer(empty_in_a_tree(), ("B", 3))


# -- shapes ----------------------------------------------------------------------------------------


def test_candidates_of_one_shape_give_it() -> None:
    model = fl.Chain(fl.Linear(3, 4), edge=choice_of(["linear", "tanh", "block"]))
    report = shapes.infer(model, ("B", 3))
    assert str(report.output) == "(B, 4)"


def test_candidates_that_disagree_are_a_shape_error_naming_both_and_the_choice() -> None:
    model = fl.Chain(cells=fl.Chain(edge_3=nas.Choice(same=fl.Linear(3, 2), wide=fl.Linear(3, 4))))
    with pytest.raises(ShapeError) as caught:
        shapes.infer(model, ("B", 3))
    message = str(caught.value)
    assert "Choice at 'cells.edge_3': candidates 'same' and 'wide' give different output shapes" in message
    assert "(B, 2) and (B, 4)" in message


def test_in_fixed_mode_only_the_chosen_candidates_shape_counts() -> None:
    model = fl.Chain(edge=nas.Choice(same=fl.Linear(3, 2), wide=fl.Linear(3, 4), mode="fixed", chosen="wide"))
    assert str(shapes.infer(model, ("B", 3)).output) == "(B, 4)"


# -- specs and weights files ---------------------------------------------------------------------


def supernet_in_every_mode() -> fl.Chain:
    def candidates() -> dict[str, torch.nn.Module]:
        return {"fc": fl.Linear(WIDTH, WIDTH), "act": fl.Tanh(), "skip": fl.Identity()}

    first, second = nas.Choice(**candidates()), nas.Choice(**candidates())
    second.alphas = first.alphas  # one tensor for two edges, as DARTS's cells share theirs
    return fl.Chain(
        cells=fl.Chain(edge_0=first, edge_3=second),
        fixed=nas.Choice(**candidates(), mode="fixed", chosen="act"),
        gumbel=nas.Choice(**candidates(), mode="gumbel", tau=0.3),
        soft=nas.Choice(**candidates(), mode="gumbel_soft", tau=2.5),
        sampled=nas.Choice(**candidates(), mode="sample"),
    )


def described(model: torch.nn.Module) -> list[tuple[str, tuple[str, ...], str, str | None, float]]:
    return [
        (address, choice.candidates, choice.mode, choice.chosen, choice.tau)
        for address, choice in nas.choices(model)
        if isinstance(choice, nas.Choice)
    ]


def test_a_spec_round_trip_keeps_candidates_modes_and_shared_alphas() -> None:
    model = supernet_in_every_mode()
    written = spec.dump(model)
    second_edge = written["children"][0]["children"][1]
    assert second_edge["share"] == {"alphas": "cells.edge_0.alphas"}
    loaded = spec.loads(json.dumps(written))
    assert described(loaded) == described(model)
    assert described(model)[1:] == [
        ("cells.edge_3", ("fc", "act", "skip"), "softmax", None, 1.0),
        ("fixed", ("fc", "act", "skip"), "fixed", "act", 1.0),
        ("gumbel", ("fc", "act", "skip"), "gumbel", None, 0.3),
        ("soft", ("fc", "act", "skip"), "gumbel_soft", None, 2.5),
        ("sampled", ("fc", "act", "skip"), "sample", None, 1.0),
    ]
    assert loaded.cells.edge_3.alphas is loaded.cells.edge_0.alphas
    assert len(nas.arch_parameters(loaded)) == len(nas.arch_parameters(model)) == 5
    assert spec.dump(loaded) == written


def test_a_hand_written_share_ties_the_alphas_of_two_choices() -> None:
    def edge(identifier: str) -> dict[str, object]:
        return {
            "type": "Choice",
            "id": identifier,
            "children": [{"type": "Tanh", "id": "a"}, {"type": "ReLU", "id": "b"}],
        }

    model = spec.loads(
        {"type": "Chain", "children": [edge("first"), {**edge("second"), "share": {"alphas": "first.alphas"}}]}
    )
    assert model.second.alphas is model.first.alphas
    assert [name for name, _ in nas.named_arch_parameters(model)] == ["first.alphas"]


def test_safetensors_keep_the_alphas_and_a_shared_tensor_once(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = supernet_in_every_mode()
    with torch.no_grad():
        for alphas in nas.arch_parameters(model):
            alphas.copy_(torch.randn_like(alphas))
    path = tmp_path / "supernet.safetensors"
    weights.save(model, path)
    stored = safetensors.torch.load_file(path)
    assert "cells.edge_0.alphas" in stored
    assert "cells.edge_3.alphas" not in stored
    fresh = supernet_in_every_mode()
    weights.load(fresh, path)
    assert fresh.cells.edge_3.alphas is fresh.cells.edge_0.alphas
    for (name, value), (other, loaded) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert name == other
        assert torch.equal(value, loaded), name
    untied = supernet_in_every_mode()
    untied.cells.edge_3.alphas = torch.nn.Parameter(torch.zeros(3))
    weights.load(untied, path)  # the alias fills the second edge from the first one's tensor
    assert torch.equal(untied.cells.edge_3.alphas, model.cells.edge_0.alphas)


def test_a_replaced_candidate_keeps_its_alpha_through_a_spec_and_weights_round_trip(tmp_path: Path) -> None:
    # alphas follow the children's order (Chain.children_changed), which a spec writes
    choice = nas.Choice(a=fl.Tanh(), b=fl.Sigmoid(), c=fl.ReLU())
    model = fl.Chain(edge=choice)
    choice.replace("a", fl.SiLU(), name="silu")
    set_alphas(choice, [float(index) for index in range(3)])
    weights.save(model, tmp_path / "supernet.safetensors")
    loaded = spec.loads(spec.dump(model))
    weights.load(loaded, tmp_path / "supernet.safetensors")
    assert alphas_by_name(loaded.edge) == alphas_by_name(choice)


@pytest.mark.parametrize("mode", ["softmax", "sample", "gumbel", "gumbel_soft"])
def test_a_key_error_inside_a_candidate_is_its_own_not_a_missing_candidate(mode: str) -> None:
    def lookup(x: torch.Tensor) -> torch.Tensor:
        return {"present": x}["absent"]

    choice = nas.Choice(lookup=fl.Lambda(lookup), mode=mode)  # pyright: ignore[reportArgumentType]
    with pytest.raises(FluxionError) as caught:
        fl.Chain(edge=choice)(torch.ones(2))
    assert "is gone" not in str(caught.value)
    assert "KeyError: 'absent'" in str(caught.value)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: nas.Choice(3), "candidates are modules, got int"),
        (lambda: nas.Choice(["a"]), "candidates are modules, got str"),
        (lambda: nas.Choice(a=fl.ReLU(), tau="x"), "tau is a temperature above 0, got 'x'"),
    ],
)
def test_arguments_of_the_wrong_type_are_nas_errors(build: Any, message: str) -> None:
    with pytest.raises(nas.NasError, match=re.escape(message)):
        build()


def test_a_candidate_inserted_first_takes_the_first_alpha_and_the_others_keep_theirs() -> None:
    choice = nas.Choice(a=fl.Tanh(), b=fl.Sigmoid())
    before = alphas_by_name(choice)
    choice.insert(0, fl.ReLU(), name="c")
    assert choice.candidates == ("c", "a", "b") == tuple(name for name, _ in choice.named_children())
    after = alphas_by_name(choice)
    assert (after["a"], after["b"]) == (before["a"], before["b"])


def test_a_choice_whose_shared_alphas_were_resized_by_another_says_so() -> None:
    first, second = nas.Choice(a=fl.Tanh(), b=fl.ReLU()), nas.Choice(a=fl.Tanh(), b=fl.ReLU())
    second.alphas = first.alphas
    model = fl.Chain(first=first, second=second)
    del first.a
    with pytest.raises(FluxionError, match=r"alphas hold 1 weights for 2 candidates"):
        model(torch.ones(2))
