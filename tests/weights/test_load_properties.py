"""Property-based tests: on random trees, save/load round trips exactly, and any damaged checkpoint is
refused with exactly the damaged keys named, leaving the model bit-for-bit as it was; so does a
load that fails at any tensor for any reason (no data, sparse, a failure or an interrupt mid-commit)
is all or nothing, except a failure nobody foresaw in an in-place copy, which names what it wrote."""

import copy
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion.weights import WeightsError, load, save
from tests.tree.test_chain_properties import trees
from tests.weights.helpers import (
    Exploding,
    Interrupting,
    Signalling,
    assert_each_as_before_or_loaded,
    assert_exactly_as_before,
    exact_snapshot,
    same_state,
    state_snapshot,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def perturbed_twin(tree: fl.Chain) -> fl.Chain:
    twin = copy.deepcopy(tree)
    with torch.no_grad():
        for parameter in twin.parameters():
            parameter.add_(torch.randn_like(parameter))
    return twin


@SETTINGS
@given(tree=trees(), on_meta=st.booleans())
def test_save_then_load_restores_every_tensor_and_output(
    tree: fl.Chain, on_meta: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = Path(tmp_path_factory.mktemp("round")) / "tree.safetensors"
    save(tree, path)
    twin = perturbed_twin(tree).to("meta") if on_meta else perturbed_twin(tree)
    result = load(twin, path)
    assert same_state(twin, state_snapshot(tree))
    assert sorted(result.loaded) == sorted(tree.state_dict())
    x = torch.randn(2, 3)
    assert torch.equal(twin(x), tree(x))


@SETTINGS
@given(tree=trees(), data=st.data())
def test_damaged_checkpoints_name_exactly_the_damage_and_change_nothing(tree: fl.Chain, data: st.DataObject) -> None:
    state = {key: value.clone() for key, value in tree.state_dict().items()}
    if not state:
        return
    keys = sorted(state)
    damage = data.draw(st.sampled_from(["drop", "rename", "reshape", "extra"]), label="damage")
    key = data.draw(st.sampled_from(keys), label="key")
    expected: dict[str, tuple[str, ...]] = {"missing": (), "unexpected": (), "mismatched": ()}
    if damage == "drop":
        del state[key]
        expected["missing"] = (key,)
    elif damage == "rename":
        state[key + "_typo"] = state.pop(key)
        expected["missing"], expected["unexpected"] = (key,), (key + "_typo",)
    elif damage == "reshape":
        state[key] = torch.zeros(*state[key].shape, 2)
        expected["mismatched"] = (key,)
    else:
        state["stray.weight"] = torch.zeros(1)
        expected["unexpected"] = ("stray.weight",)
    victim = perturbed_twin(tree)
    before = state_snapshot(victim)
    with pytest.raises(WeightsError) as caught:
        load(victim, state)
    error = caught.value
    assert (error.missing, error.unexpected, error.mismatched) == tuple(expected.values())
    assert same_state(victim, before)


FAILURES = ["meta", "sparse", "exploding", "interrupting", "signalling"]


def broken(tensor: torch.Tensor, failure: str) -> torch.Tensor:
    if failure == "meta":
        return torch.empty_like(tensor, device="meta")
    if failure == "sparse":
        return tensor.to_sparse()
    kinds = {"exploding": Exploding, "interrupting": Interrupting, "signalling": Signalling}
    return tensor.as_subclass(kinds[failure])


@SETTINGS
@given(tree=trees(), data=st.data())
def test_a_load_failing_at_any_tensor_is_all_or_nothing_unless_a_copy_itself_fails(
    tree: fl.Chain, data: st.DataObject
) -> None:
    """Whatever the checks can find changes nothing; Ctrl-C lands before the commit (nothing
    changes) or after it (everything loaded); an error raised by an in-place copy itself leaves
    each tensor as it was or loaded."""
    state = {key: value.clone() for key, value in perturbed_twin(tree).state_dict().items()}
    if not state:
        return
    key = data.draw(st.sampled_from(sorted(state)), label="key")
    failure = data.draw(st.sampled_from(FAILURES), label="failure")
    on_meta = data.draw(st.booleans(), label="on_meta")
    state[key] = broken(state[key], failure)
    victim = copy.deepcopy(tree).to("meta") if on_meta else copy.deepcopy(tree)
    before = exact_snapshot(victim)
    interrupted = failure in ("interrupting", "signalling")
    with pytest.raises(KeyboardInterrupt if interrupted else WeightsError) as caught:
        load(victim, state)
    if failure == "signalling" and not on_meta:
        assert same_state(victim, {key: value.as_subclass(torch.Tensor) for key, value in state.items()})
    elif failure in ("exploding", "interrupting") and not on_meta and "left as it was" not in str(caught.value):
        # raised by the copy itself (a real Ctrl-C waits for the commit): what was written is named
        assert_each_as_before_or_loaded(victim, before, state)
    else:
        assert_exactly_as_before(victim, before)
