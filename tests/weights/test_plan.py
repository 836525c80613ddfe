"""Planning a load: which checkpoint tensor fills which model tensor, how (in place or a new tensor,
which dtype and device), or every reason it cannot; planning never changes the model."""

from __future__ import annotations

import json

import pytest
import torch

import fluxion.layers as fl
from fluxion.errors import WeightsError
from fluxion.weights.checkpoint import Checkpoint, open_checkpoint
from fluxion.weights.mapping import KeyMapping, Rule
from fluxion.weights.plan import ALIASES_METADATA, Plan, make_plan, model_slots, unwritable_reason
from tests.weights.helpers import same_state, state_snapshot


def encoder_decoder() -> fl.Chain:
    return fl.Chain(enc=fl.Linear(2, 3), dec=fl.Linear(3, 2))


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def plan(model: torch.nn.Module, tensors: dict[str, torch.Tensor], **options: object) -> Plan:
    mapping = options.pop("mapping", KeyMapping())
    assert isinstance(mapping, KeyMapping)
    return make_plan(model, open_checkpoint(tensors), mapping, **options)  # pyright: ignore[reportArgumentType]


def refusal(model: torch.nn.Module, tensors: dict[str, torch.Tensor] | Checkpoint, **options: object) -> WeightsError:
    checkpoint = tensors if isinstance(tensors, Checkpoint) else open_checkpoint(tensors)
    mapping = options.pop("mapping", KeyMapping())
    assert isinstance(mapping, KeyMapping)
    before = state_snapshot(model)
    with pytest.raises(WeightsError) as caught:
        make_plan(model, checkpoint, mapping, **options)  # pyright: ignore[reportArgumentType]
    assert same_state(model, before)
    return caught.value


def sources(result: Plan) -> dict[str, str]:
    return {assignment.target.key: assignment.source for assignment in result.assignments}


# -- model_slots -------------------------------------------------------------------------------------


def test_slots_are_parameters_and_persistent_buffers_by_state_dict_key() -> None:
    model = fl.Chain(fl.Linear(2, 2, bias=False), fl.BatchNorm1d(2))
    model.register_buffer("scratch", torch.zeros(1), persistent=False)
    model.register_buffer("absent", None)
    slots = model_slots(model)
    assert list(slots) == list(model.state_dict())
    assert [slots[key].is_parameter for key in slots] == [True, True, True, False, False, False]
    assert slots["BatchNorm1d.running_mean"].name == "running_mean"
    assert slots["BatchNorm1d.running_mean"].module is model.BatchNorm1d


def test_tied_parameters_are_a_slot_under_each_key() -> None:
    model = fl.Chain(a=fl.Linear(2, 2, bias=False), b=fl.Linear(2, 2, bias=False))
    model.b.weight = model.a.weight
    slots = model_slots(model)
    assert list(slots) == ["a.weight", "b.weight"]
    assert slots["a.weight"].tensor is slots["b.weight"].tensor is model.a.weight


def test_a_slot_reads_the_tensor_the_module_holds_now() -> None:
    linear = fl.Linear(2, 2)
    slot = model_slots(linear)["weight"]
    linear.weight = torch.nn.Parameter(torch.ones(2, 2))
    assert slot.tensor is linear.weight


def test_a_lazy_module_has_no_slots_yet() -> None:
    with pytest.raises(WeightsError, match=r"^lazy\.weight is not initialised yet \(a lazy module\): run one forward"):
        model_slots(fl.Chain(lazy=torch.nn.LazyLinear(3)))


# -- matching ---------------------------------------------------------------------------------------


def test_every_tensor_of_a_fitting_checkpoint_is_assigned_in_place() -> None:
    model = encoder_decoder()
    before = state_snapshot(model)
    result = plan(model, state_of(encoder_decoder()))
    assert sources(result) == {key: key for key in model.state_dict()}
    assert all(assignment.in_place for assignment in result.assignments)
    assert {(assignment.dtype, assignment.device) for assignment in result.assignments} == {
        (torch.float32, torch.device("cpu"))
    }
    assert (result.missing, result.unexpected) == ([], [])
    assert same_state(model, before)  # planning copies nothing


def test_a_strict_plan_refuses_missing_unexpected_and_mismatched_keys_all_at_once() -> None:
    tensors = state_of(encoder_decoder())
    del tensors["dec.bias"]
    tensors["dec.weigth"] = tensors.pop("dec.weight")
    tensors["enc.weight"] = torch.zeros(3, 5)
    error = refusal(encoder_decoder(), tensors)
    assert error.missing == ("dec.weight", "dec.bias")
    assert error.unexpected == ("dec.weigth",)
    assert error.mismatched == ("enc.weight",)
    message = str(error)
    assert message.startswith("state dict does not fit the model: 2 missing, 1 unexpected, 1 mismatched")
    assert "dec.weigth  (did you mean dec.weight?)" in message
    assert "enc.weight: model has shape (3, 2), checkpoint 'enc.weight' has (3, 5)" in message


def test_a_plan_that_is_not_strict_lists_what_is_left_out() -> None:
    tensors = state_of(encoder_decoder())
    del tensors["dec.bias"]
    tensors["extra.weight"] = torch.zeros(1)
    result = plan(encoder_decoder(), tensors, strict=False)
    assert result.missing == ["dec.bias"]
    assert result.unexpected == ["extra.weight"]
    assert sorted(sources(result)) == ["dec.weight", "enc.bias", "enc.weight"]


def test_a_shape_or_kind_mismatch_is_refused_even_when_not_strict() -> None:
    tensors = state_of(encoder_decoder())
    tensors["enc.weight"] = tensors["enc.weight"].to(torch.int64)
    del tensors["dec.bias"]
    error = refusal(encoder_decoder(), tensors, strict=False)
    assert (error.missing, error.unexpected, error.mismatched) == ((), (), ("enc.weight",))
    assert "model holds torch.float32, checkpoint 'enc.weight' holds torch.int64" in str(error)
    assert "missing" not in str(error)


@pytest.mark.parametrize(
    ("model_dtype", "checkpoint_dtype", "fits"),
    [
        (torch.float32, torch.float16, True),
        (torch.float16, torch.bfloat16, True),
        (torch.float32, torch.int32, False),
        (torch.int64, torch.int8, True),
        (torch.int64, torch.bool, False),
        (torch.float32, torch.complex64, False),
    ],
)
def test_a_checkpoint_tensor_fits_a_model_tensor_of_the_same_kind(
    model_dtype: torch.dtype, checkpoint_dtype: torch.dtype, fits: bool
) -> None:
    model = torch.nn.Module()
    model.register_buffer("table", torch.zeros(2, dtype=model_dtype))
    tensors = {"table": torch.zeros(2, dtype=checkpoint_dtype)}
    if fits:
        assert plan(model, tensors).assignments[0].dtype == model_dtype
    else:
        assert refusal(model, tensors).mismatched == ("table",)


def test_two_checkpoint_keys_for_one_model_tensor_are_refused() -> None:
    tensors = {"weight": torch.zeros(2, 2), "w": torch.zeros(2, 2), "bias": torch.zeros(2)}
    error = refusal(fl.Linear(2, 2), tensors, mapping=KeyMapping(rename={"w": "weight"}))
    assert error.mismatched == ("weight",)
    assert "weight: both 'weight' and 'w' map to it" in str(error)


def test_a_mapped_unexpected_key_is_reported_under_its_checkpoint_name() -> None:
    tensors = {"fc.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}
    error = refusal(fl.Chain(head=fl.Linear(2, 2)), tensors, mapping=KeyMapping([(r"^fc\.", "haed.")]))
    assert error.unexpected == ("fc.weight", "fc.bias")  # in the checkpoint's order
    assert "fc.bias (mapped to haed.bias)  (did you mean head.bias?)" in str(error)


def test_mapping_steps_are_planned_on_the_shapes_they_give() -> None:
    model = fl.Chain(q=fl.Linear(4, 2, bias=False), k=fl.Linear(4, 2, bias=False))
    mapping = KeyMapping([Rule(r"^qk\.weight$", ("q.weight", "k.weight"), transpose=True)])
    result = plan(model, {"qk.weight": torch.zeros(4, 4)}, mapping=mapping)
    assert sources(result) == {"q.weight": "qk.weight", "k.weight": "qk.weight"}
    error = refusal(model, {"qk.weight": torch.zeros(5, 4)}, mapping=mapping)
    assert error.mismatched == ("q.weight", "k.weight")


# -- where and how ----------------------------------------------------------------------------------


def test_a_meta_model_gets_new_tensors_on_the_cpu() -> None:
    with torch.device("meta"):
        model = encoder_decoder()
    result = plan(model, state_of(encoder_decoder()))
    assert {(assignment.device, assignment.in_place) for assignment in result.assignments} == {
        (torch.device("cpu"), False)
    }


def test_a_dtype_converts_floating_tensors_only_and_then_not_in_place() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.BatchNorm1d(2))
    result = plan(model, state_of(model), dtype=torch.bfloat16)
    by_key = {assignment.target.key: assignment for assignment in result.assignments}
    assert by_key["Linear.weight"].dtype == torch.bfloat16
    assert not by_key["Linear.weight"].in_place
    assert by_key["BatchNorm1d.num_batches_tracked"].dtype == torch.int64
    assert by_key["BatchNorm1d.num_batches_tracked"].in_place
    assert plan(model, state_of(model), dtype=torch.float32).assignments[0].in_place


@pytest.mark.parametrize(
    ("dtype", "message"),
    [
        ("float16", "dtype must be a floating-point torch.dtype (it converts floating tensors), got 'float16'"),
        (torch.int8, "got torch.int8"),
        (torch.bool, "got torch.bool"),
    ],
)
def test_a_dtype_that_is_not_floating_is_refused(dtype: object, message: str) -> None:
    assert message in str(refusal(fl.Linear(2, 2), state_of(fl.Linear(2, 2)), dtype=dtype))


def test_a_device_is_taken_in_its_canonical_form_or_refused() -> None:
    assert plan(fl.Linear(2, 2), state_of(fl.Linear(2, 2)), device="cpu").assignments[0].in_place
    for device in ("nonsense", 5.5, "cuda:x"):
        assert f"device {device!r} cannot be used here: " in str(
            refusal(fl.Linear(2, 2), state_of(fl.Linear(2, 2)), device=device)
        )


def test_an_unwritable_model_tensor_is_a_mismatch_found_while_planning() -> None:
    model = fl.Linear(3, 2)
    with torch.no_grad():
        model.bias = torch.nn.Parameter(torch.zeros(1).expand(2))
    error = refusal(model, state_of(fl.Linear(3, 2)))
    assert error.mismatched == ("bias",)
    assert "the model's tensor is expanded" in str(error)


def test_unwritable_reasons() -> None:
    assert unwritable_reason(torch.zeros(2, 3).t()) is None  # transposed: still one element per location
    assert unwritable_reason(torch.zeros(1).expand(1)) is None  # size 1: nothing is shared
    assert unwritable_reason(torch.zeros(2, 1).expand(2, 3)) is not None
    sparse = unwritable_reason(torch.eye(2).to_sparse())
    assert sparse is not None
    assert "not a dense tensor" in sparse
    with torch.inference_mode():
        frozen = torch.zeros(2)
        assert unwritable_reason(frozen) is None
    reason = unwritable_reason(frozen)
    assert reason is not None
    assert "created under torch.inference_mode()" in reason


# -- prefix -------------------------------------------------------------------------------------------


def test_a_prefix_that_names_a_subtree_loads_only_there() -> None:
    model = encoder_decoder()
    full = state_of(encoder_decoder())
    result = plan(model, {"weight": full["enc.weight"], "bias": full["enc.bias"]}, prefix="enc")
    assert sources(result) == {"enc.weight": "weight", "enc.bias": "bias"}
    result = plan(model, {"enc.weight": full["enc.weight"]}, prefix="enc.", strict=False)
    assert (sources(result), result.missing) == ({"enc.weight": "enc.weight"}, ["enc.bias"])


def test_a_prefix_of_the_checkpoint_takes_that_part_of_it() -> None:
    full = state_of(encoder_decoder())
    result = plan(fl.Linear(2, 3), full, prefix="enc")
    assert sources(result) == {"weight": "enc.weight", "bias": "enc.bias"}
    assert result.unexpected == []  # the decoder's keys are outside the prefix, not unexpected


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("nothing", "prefix 'nothing' is neither an address in the model nor a key prefix in state dict"),
        (".", "prefix '.' is not an address"),
        ("", "prefix '' is not an address"),
        (3, "prefix must be an address (a string), got 3"),
    ],
)
def test_a_prefix_found_nowhere_is_refused(prefix: object, message: str) -> None:
    assert str(refusal(encoder_decoder(), state_of(encoder_decoder()), prefix=prefix)) == message


# -- ties and aliases -----------------------------------------------------------------------------------


def tied_pair() -> fl.Chain:
    model = fl.Chain(a=fl.Linear(2, 2, bias=False), b=fl.Linear(2, 2, bias=False))
    model.b.weight = model.a.weight
    return model


def test_tied_tensors_load_once_from_either_key() -> None:
    for key in ("a.weight", "b.weight"):
        (assignment,) = plan(tied_pair(), {key: torch.ones(2, 2)}).assignments
        assert assignment.source == key
        assert [slot.key for slot in assignment.slots] == ["a.weight", "b.weight"]


def test_every_key_of_a_tied_group_present_in_the_checkpoint_must_fit() -> None:
    error = refusal(tied_pair(), {"a.weight": torch.ones(3, 2), "b.weight": torch.ones(2, 2)})
    assert error.mismatched == ("a.weight",)


def aliased(aliases: str) -> Checkpoint:
    checkpoint = open_checkpoint({"a.weight": torch.ones(2, 2)})
    checkpoint.metadata = {ALIASES_METADATA: aliases}
    return checkpoint


def test_a_key_saved_as_an_alias_fills_an_untied_model_from_the_key_kept() -> None:
    untied = fl.Chain(a=fl.Linear(2, 2, bias=False), b=fl.Linear(2, 2, bias=False))
    result = make_plan(untied, aliased(json.dumps({"b.weight": "a.weight"})), KeyMapping())
    assert sources(result) == {"a.weight": "a.weight", "b.weight": "a.weight"}


@pytest.mark.parametrize("aliases", ["not json", "[1]", '{"b.weight": 5}', '{"b.weight": "gone.weight"}'])
def test_aliases_that_make_no_sense_are_ignored(aliases: str) -> None:
    untied = fl.Chain(a=fl.Linear(2, 2, bias=False), b=fl.Linear(2, 2, bias=False))
    assert refusal(untied, aliased(aliases)).missing == ("b.weight",)


def test_optional_keys_are_loaded_when_present_and_never_missing() -> None:
    model = fl.Chain(fl.Linear(2, 3), fl.Linear(3, 1))
    checkpoint = open_checkpoint({"Linear_1.weight": torch.ones(3, 2), "Linear_1.bias": torch.ones(3)})
    optional = frozenset({"Linear_2.weight", "Linear_2.bias"})
    found = make_plan(model, checkpoint, KeyMapping(), optional=optional)
    assert found.missing == []
    assert [assignment.target.key for assignment in found.assignments] == ["Linear_1.weight", "Linear_1.bias"]
    every = open_checkpoint({**dict(model.state_dict()), "Linear_2.bias": torch.zeros(1)})
    loaded = make_plan(model, every, KeyMapping(), optional=optional)
    assert [assignment.target.key for assignment in loaded.assignments][-1] == "Linear_2.bias"
    with pytest.raises(WeightsError, match="missing"):
        make_plan(model, checkpoint, KeyMapping(), optional=frozenset({"Linear_2.weight"}))
