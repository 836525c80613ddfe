"""LoRA operations never half-apply, and every numeric LoRA argument is checked the same way.

``merge`` checks every selected LoRA (shapes, dtypes, devices, writable weights, a finite scale)
before it merges any, and undoes itself if something nobody foresaw fails part-way; ``load``,
``set_scale`` and ``trainable_parameters`` leave the model as it was when they refuse.
"""

import os
import signal
from collections.abc import Callable
from typing import Any

import numpy
import pytest
import torch
from torch import Tensor

import fluxion.layers as fl
from fluxion.adapters import AdapterError, Conv2dLora, LinearLora, Lora, lora
from tests.weights.helpers import Exact, Exploding, Interrupting, assert_exactly_as_before, exact_snapshot

Snapshot = tuple[list[tuple[str, torch.nn.Module]], Exact, str]


def build() -> fl.Chain:
    torch.manual_seed(0)
    return fl.Chain(first=fl.Linear(4, 4), act=fl.ReLU(), second=fl.Linear(4, 4), head=fl.Linear(4, 2))


def adapted() -> fl.Chain:
    """Three LoRAs with non-zero updates: merging any of them changes its layer's weight."""
    model = build()

    def init(down: Tensor, up: Tensor) -> None:
        down.normal_(std=0.5)
        up.normal_(std=0.5)

    lora.inject(model, rank=2, init=init)
    return model


def snapshot(model: torch.nn.Module) -> Snapshot:
    return list(model.named_modules()), exact_snapshot(model), repr(model)


def assert_unchanged(model: torch.nn.Module, before: Snapshot) -> None:
    modules, tensors, text = before
    now = list(model.named_modules())
    assert [name for name, _ in now] == [name for name, _ in modules]
    assert all(a is b for (_, a), (_, b) in zip(now, modules, strict=True))
    assert_exactly_as_before(model, tensors)
    assert repr(model) == text


def last(model: fl.Chain) -> Lora:
    """The LoRA merged last (the head's): every other LoRA would be merged before it fails."""
    adapter = model.head
    assert isinstance(adapter, Lora)
    return adapter


def expanded_weight(model: fl.Chain) -> None:
    last(model).base.weight = torch.nn.Parameter(torch.zeros(4).expand(2, 4))


def resized_weight(model: fl.Chain) -> None:
    last(model).base.weight = torch.nn.Parameter(torch.zeros(3, 4))


def integer_weight(model: fl.Chain) -> None:
    last(model).base.weight = torch.nn.Parameter(torch.zeros(2, 4, dtype=torch.int32), requires_grad=False)


def other_rank(model: fl.Chain) -> None:
    up = last(model).up
    assert isinstance(up, torch.nn.Linear)
    up.weight = torch.nn.Parameter(torch.zeros(2, 3))


def nan_scale(model: fl.Chain) -> None:
    with torch.no_grad():
        last(model).scale.fill_(float("nan"))


def vector_scale(model: fl.Chain) -> None:
    last(model).register_buffer("scale", torch.ones(2, 4))


class ShiftedLinear(torch.nn.Linear):
    """A Linear subclass that computes something else: a merge could not fold its shift in."""

    def forward(self, input: Tensor) -> Tensor:
        return super().forward(input) + 1.0


def put_part(name: str, part: torch.nn.Module) -> Callable[[fl.Chain], None]:
    """Put ``part`` in the head LoRA's ``_modules`` by hand, past the surgery checks (as a tree built
    another way could hold it)."""

    def damage(model: fl.Chain) -> None:
        torch.nn.init.normal_(part.weight)
        last(model)._modules[name] = part

    return damage


def no_up(model: fl.Chain) -> None:
    del last(model)._modules["up"]


def inference_weight(model: fl.Chain) -> None:
    with torch.inference_mode():
        weight = torch.nn.Parameter(torch.zeros(2, 4))
    last(model).base.weight = weight


BREAKS: dict[str, tuple[Callable[[fl.Chain], None], str]] = {
    "layer of another size": (resized_weight, r"its update has shape \(2, 4\) but its layer's weight has \(3, 4\)"),
    "expanded weight": (expanded_weight, "the model's tensor is expanded"),
    "integer weight": (integer_weight, "its layer's weight is torch.int32; only floating-point weights"),
    "up of another rank": (other_rank, r"up.weight \(2, 3\) does not follow down.weight \(2, 4\) \(rank 2\)"),
    "nan scale": (nan_scale, "its scale is nan, not a finite number"),
    "inference weight": (inference_weight, r"created under torch.inference_mode\(\)"),
    "up with a bias": (
        put_part("up", fl.Linear(2, 2, bias=True)),
        r"its 'up' \(Linear\) cannot be merged: it has a bias",
    ),
    "down of a subclass": (
        put_part("down", ShiftedLinear(4, 2, bias=False)),
        r"its 'down' \(ShiftedLinear\) cannot be merged: it is a ShiftedLinear, not a Linear",
    ),
    "dropout that computes": (
        put_part("dropout", fl.Linear(4, 4)),
        r"its 'dropout' \(Linear\) cannot be merged: it is a Linear, not a dropout or an identity",
    ),
    "no up": (no_up, "it has no 'up'"),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_merge_checks_every_lora_before_merging_any(case: str) -> None:
    model = adapted()
    damage, message = BREAKS[case]
    damage(model)
    before = snapshot(model)
    with pytest.raises(AdapterError, match=message) as caught:
        lora.merge(model)
    assert "cannot merge the LoRA at 'head'" in str(caught.value)
    assert_unchanged(model, before)
    assert len(lora.adapters(model)) == 3


def test_merge_refuses_a_scale_that_is_not_one_number() -> None:
    model = adapted()
    vector_scale(model)
    modules, tensors = list(model.named_modules()), exact_snapshot(model)
    with pytest.raises(AdapterError, match=r"its scale must be one number, got a tensor of shape \(2, 4\)"):
        lora.merge(model)
    assert all(a is b for (_, a), (_, b) in zip(model.named_modules(), modules, strict=True))
    assert_exactly_as_before(model, tensors)


def test_merge_after_a_refusal_still_works_once_the_problem_is_gone() -> None:
    model = adapted()
    x = torch.randn(3, 4)
    expected = model(x)
    nan_scale(model)
    with pytest.raises(AdapterError):
        lora.merge(model)
    lora.set_scale(model, 1.0, name="lora")
    expected = model(x)
    lora.merge(model)
    assert not lora.adapters(model)
    torch.testing.assert_close(model(x), expected)


def failing_update(adapter: Lora, failure: type[BaseException]) -> None:
    def delta_weight() -> Tensor:
        raise failure("out of memory")

    adapter.delta_weight = delta_weight  # pyright: ignore[reportAttributeAccessIssue]


def outputs(model: torch.nn.Module) -> Tensor:
    torch.manual_seed(1)
    return model(torch.randn(3, 4))


def test_a_failure_nobody_foresaw_leaves_a_model_that_computes_what_it_did() -> None:
    model = adapted()
    expected = outputs(model)
    failing_update(last(model), RuntimeError)
    with pytest.raises(AdapterError, match=r"merging the LoRAs failed \(RuntimeError: out of memory\)") as caught:
        lora.merge(model)
    assert "2 of the 3 LoRAs were merged first, the others are still injected" in str(caught.value)
    assert [type(model[name]).__name__ for name in ("first", "second", "head")] == ["Linear", "Linear", "LinearLora"]
    assert torch.allclose(outputs(model), expected, atol=1e-6)


def test_ctrl_c_during_a_merge_waits_for_it_to_finish() -> None:
    model = adapted()
    expected = outputs(model)
    second = model.second
    assert isinstance(second, Lora)
    update = second.delta_weight

    def interrupted_update() -> Tensor:
        os.kill(os.getpid(), signal.SIGINT)
        return update()

    second.delta_weight = interrupted_update  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(KeyboardInterrupt):
        lora.merge(model)
    assert not lora.adapters(model)  # every LoRA merged, then the interrupt
    assert torch.allclose(outputs(model), expected, atol=1e-6)


def test_a_failing_eject_during_merge_puts_the_weights_and_the_loras_back() -> None:
    model = adapted()
    first = model.first
    assert isinstance(first, Lora)

    def eject() -> None:
        raise RuntimeError("tree in use")

    first.eject = eject  # pyright: ignore[reportAttributeAccessIssue]  (the LoRAs are ejected last first)
    before = snapshot(model)
    with pytest.raises(AdapterError, match="tree in use"):
        lora.merge(model)
    assert_unchanged(model, before)


def test_set_scale_refuses_before_changing_any_scale() -> None:
    model = adapted()
    with torch.inference_mode():
        last(model).register_buffer("scale", torch.tensor(1.0))
    before = snapshot(model)
    with pytest.raises(AdapterError, match=r"cannot set the scale of the LoRA at 'head'.*inference_mode"):
        lora.set_scale(model, 0.5)
    assert_unchanged(model, before)


def test_trainable_parameters_refuses_before_freezing_anything() -> None:
    model = build()
    with torch.inference_mode():
        LinearLora(model.head, rank=1).inject()
    flags = [parameter.requires_grad for parameter in model.parameters()]
    with pytest.raises(AdapterError, match=r"at 'head' was created under torch.inference_mode\(\)"):
        lora.trainable_parameters(model)
    assert [parameter.requires_grad for parameter in model.parameters()] == flags


# -- load --------------------------------------------------------------------------------------


def lora_file() -> dict[str, Tensor]:
    return {key: value.clone() for key, value in lora.state_dict(adapted()).items()}


@pytest.mark.parametrize(
    ("key", "bad", "message"),
    [
        ("head.down.weight", torch.empty(2, 4, device="meta"), "'head.down.weight' is on the meta device"),
        ("head.up.weight", torch.ones(2, 2).to_sparse(), "'head.up.weight' is a sparse tensor"),
        ("head.scale", torch.tensor(float("inf")), "'head' has a scale of inf in the file"),
        ("head.scale", torch.tensor(1e300, dtype=torch.float64), "'head' has a scale of 1e[+]300 .* float32 holds"),
        ("head.up.weight", torch.ones(3, 2), r"head.up.weight: model has shape \(2, 2\)"),
    ],
)
def test_load_refuses_a_file_before_anything_changes(key: str, bad: Tensor, message: str) -> None:
    model = build()
    lora.inject(model, rank=2, targets="first")  # an existing LoRA of the same name, loaded into
    tensors = {**lora_file(), key: bad}
    before = snapshot(model)
    with pytest.raises(AdapterError, match=message):
        lora.load(model, tensors)
    assert_unchanged(model, before)


@pytest.mark.parametrize("failure", [Exploding, Interrupting])
def test_a_load_failing_part_way_ejects_what_it_injected_and_restores_what_it_overwrote(failure: type) -> None:
    model = build()
    lora.inject(model, rank=2, targets="first")
    tensors = lora_file()
    tensors["second.up.weight"] = tensors["second.up.weight"].as_subclass(failure)
    before = snapshot(model)
    with pytest.raises(AdapterError if failure is Exploding else KeyboardInterrupt):
        lora.load(model, tensors)
    assert_unchanged(model, before)


def test_a_bad_mapping_is_an_adapter_error() -> None:
    with pytest.raises(AdapterError, match="mapping must be a KeyMapping"):
        lora.load(build(), lora_file(), mapping=5)  # pyright: ignore[reportArgumentType]


# -- numeric arguments: one check, the same everywhere -----------------------------------------


def with_lora() -> fl.Chain:
    model = build()
    lora.inject(model, rank=1)
    return model


NAN = float("nan")
BAD_ARGUMENTS: list[tuple[str, Callable[[], object], str]] = [
    (
        "inject scale text",
        lambda: lora.inject(build(), rank=1, scale="x"),
        "lora.inject: scale is a finite number, got 'x'",
    ),
    (
        "inject alpha nan",
        lambda: lora.inject(build(), rank=1, alpha=NAN),
        "lora.inject: alpha is a finite number, got nan",
    ),
    ("inject alpha text", lambda: lora.inject(build(), rank=1, alpha="8"), "alpha is a finite number, got '8'"),
    ("inject scale inf", lambda: lora.inject(build(), rank=1, scale=float("inf")), "scale is a finite number, got inf"),
    ("inject scale bool", lambda: lora.inject(build(), rank=1, scale=True), "scale is a finite number, got True"),
    ("inject dropout text", lambda: lora.inject(build(), rank=1, dropout="0.1"), "dropout is a finite number"),
    ("inject dropout nan", lambda: lora.inject(build(), rank=1, dropout=NAN), "dropout is a finite number, got nan"),
    ("inject dropout 2", lambda: lora.inject(build(), rank=1, dropout=2), "dropout is a probability between 0 and 1"),
    ("inject rank text", lambda: lora.inject(build(), rank="2"), "rank must be a positive integer, got '2'"),
    ("layer scale nan", lambda: LinearLora(fl.Linear(2, 2), 1, scale=NAN), "LinearLora: scale is a finite number"),
    ("layer alpha text", lambda: LinearLora(fl.Linear(2, 2), 1, alpha="1"), "LinearLora: alpha is a finite number"),
    ("layer set_scale nan", lambda: LinearLora(fl.Linear(2, 2), 1).set_scale(NAN), "the scale is a finite number"),
    ("layer set_scale text", lambda: LinearLora(fl.Linear(2, 2), 1).set_scale("1"), "the scale is a finite number"),
    ("set_scale inf", lambda: lora.set_scale(with_lora(), float("inf")), "a LoRA scale is a finite number, got inf"),
    ("load scale nan", lambda: lora.load(build(), lora_file(), scale=NAN), "a LoRA scale is a finite number, got nan"),
    (
        "set_scale huge int",
        lambda: lora.set_scale(with_lora(), 10**400),
        "a LoRA scale is a finite number, got int 1000",
    ),
    ("inject alpha huge int", lambda: lora.inject(build(), rank=1, alpha=10**400), "alpha is a finite number, got int"),
    (
        "inject scale huge int",
        lambda: lora.inject(build(), rank=1, scale=-(10**400)),
        "scale is a finite number, got int",
    ),
    ("inject dropout huge int", lambda: lora.inject(build(), rank=1, dropout=10**400), "dropout is a finite number"),
    ("layer set_scale huge int", lambda: LinearLora(fl.Linear(2, 2), 1).set_scale(10**400), "the scale is a finite"),
    ("layer alpha huge int", lambda: LinearLora(fl.Linear(2, 2), 1, alpha=10**400), "LinearLora: alpha is a finite"),
    ("set_scale past float32", lambda: lora.set_scale(with_lora(), -1e39), "more than a float32 scale holds"),
    ("inject scale past float32", lambda: lora.inject(build(), rank=1, scale=1e39), "scale is 1e[+]39, more than"),
    ("inject alpha past float32", lambda: lora.inject(build(), rank=1, alpha=1e300), "alpha / rank is 1e[+]300"),
    ("load scale past float32", lambda: lora.load(build(), lora_file(), scale=1e39), "more than a float32 scale"),
    (
        "inject rank huge",
        lambda: lora.inject(build(), rank=10**20),
        r"rank 100000000000000000000 is more than the Linear at 'first', with a 4×4 weight, can use",
    ),
    ("inject rank past the layer", lambda: lora.inject(build(), rank=5), "give a rank of at most 4"),
    ("layer rank huge", lambda: LinearLora(fl.Linear(2, 3), 10**20), r"\(its update has rank at most 2\)"),
    ("layer rank huge conv", lambda: Conv2dLora(fl.Conv2d(2, 3, 3), 10**20), "a 3×18 weight"),
    ("inject rank numpy float", lambda: lora.inject(build(), rank=numpy.float64(2)), "rank must be a positive integer"),
    ("model not a module", lambda: lora.inject("model", rank=1), r"act on a torch module \(a model\), got str"),  # pyright: ignore[reportArgumentType]
    ("adapters of a list", lambda: lora.adapters([]), "act on a torch module"),  # pyright: ignore[reportArgumentType]
    ("merge name number", lambda: lora.merge(with_lora(), name=5), "a LoRA name is a non-empty string, got 5"),  # pyright: ignore[reportArgumentType]
    ("eject name empty", lambda: lora.eject(with_lora(), name=""), "a LoRA name is a non-empty string"),
]


@pytest.mark.parametrize(("case", "call", "message"), BAD_ARGUMENTS, ids=[case for case, _, _ in BAD_ARGUMENTS])
def test_bad_arguments_are_adapter_errors(case: str, call: Callable[[], object], message: str) -> None:
    with pytest.raises(AdapterError, match=message):
        call()


@pytest.mark.parametrize(
    "options",
    [{"rank": 1, "alpha": NAN}, {"rank": 1, "alpha": 10**400}, {"rank": 10**20}, {"rank": 3}],
    ids=["alpha nan", "alpha huge int", "rank huge", "rank past the last layer"],
)
def test_a_refused_inject_injects_nothing(options: dict[str, Any]) -> None:
    model = fl.Chain(first=fl.Linear(4, 4), head=fl.Linear(2, 2))  # rank 3 fits first, not head
    before = snapshot(model)
    with pytest.raises(AdapterError):
        lora.inject(model, **options)
    assert_unchanged(model, before)


def test_a_huge_scale_leaves_every_scale_as_it_was() -> None:
    model = adapted()
    before = snapshot(model)
    for scale in (10**400, 1e39):
        with pytest.raises(AdapterError, match="a LoRA scale is"):
            lora.set_scale(model, scale)
    assert_unchanged(model, before)


def test_a_numpy_integer_rank_is_an_int_rank() -> None:
    model = build()
    injected = lora.inject(model, rank=numpy.int64(2))  # pyright: ignore[reportArgumentType]
    assert [adapter.rank for adapter in injected] == [2, 2, 2]
    adapter = LinearLora(fl.Linear(4, 4), numpy.int32(3))  # pyright: ignore[reportArgumentType]
    assert adapter.rank == 3
    assert "rank=3" in repr(adapter)
