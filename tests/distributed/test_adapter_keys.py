"""fluxion.distributed.adapter_keys: the state_dict keys of LoRAs' own tensors, what an adapter checkpoint holds."""

from __future__ import annotations

import contextlib

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion.adapters import AdapterError, lora
from fluxion.distributed.adapter_keys import adapter_keys, through_adapters
from tests.tree.test_wrapping import wrap

OWN_PARTS = ("down.weight", "up.weight", "scale")


def build() -> fl.Chain:
    torch.manual_seed(0)
    return fl.Chain(
        stem=fl.Conv2d(3, 4, kernel_size=3),
        blocks=fl.Chain(fl.Chain(fl.Linear(4, 4), fl.ReLU()), fl.Chain(fl.Linear(4, 4), fl.ReLU())),
        norm=fl.LayerNorm(4),
        head=fl.Linear(4, 2),
    )


def own_keys(model: torch.nn.Module) -> set[str]:
    """The keys whose tensors are a LoRA's own (its down and up layers' parameters, its scale), found by identity."""
    own: set[int] = set()
    for adapter in lora.adapters(model):
        own.update(id(tensor) for tensor in (*adapter.down.parameters(), *adapter.up.parameters(), adapter.scale))
    return {key for key, tensor in model.state_dict(keep_vars=True).items() if id(tensor) in own}


def test_a_model_without_adapters_has_no_adapter_keys() -> None:
    assert adapter_keys(build()) == set()


def test_the_keys_of_one_lora_are_its_down_up_and_scale() -> None:
    model = build()
    lora.inject(model, rank=2, targets="head")
    assert adapter_keys(model) == {"head.down.weight", "head.up.weight", "head.scale"}
    assert adapter_keys(model) == set(lora.state_dict(model))


def test_linear_and_conv_loras_everywhere() -> None:
    model = build()
    adapters = lora.inject(model, rank=1)
    assert {adapter.address for adapter in adapters} == {
        "stem",
        "blocks.Chain_1.Linear",
        "blocks.Chain_2.Linear",
        "head",
    }
    keys = adapter_keys(model)
    assert keys == {f"{adapter.address}.{part}" for adapter in adapters for part in OWN_PARTS}
    assert keys == own_keys(model)
    assert keys <= set(model.state_dict())
    assert not any(".target." in key for key in keys)


def test_stacked_loras_each_have_their_keys_under_their_own_address() -> None:
    model = fl.Chain(head=fl.Linear(2, 2))
    lora.inject(model, rank=1, name="a")
    lora.inject(model, rank=1, name="b")
    assert adapter_keys(model) == {
        "head.down.weight",
        "head.up.weight",
        "head.scale",
        "head.target.down.weight",
        "head.target.up.weight",
        "head.target.scale",
    }
    assert adapter_keys(model) == own_keys(model)
    assert set(model.state_dict()) - adapter_keys(model) == {"head.target.target.weight", "head.target.target.bias"}


def test_after_eject_no_key_is_an_adapter_key() -> None:
    model = build()
    lora.inject(model, rank=1, targets="blocks.*")
    lora.eject(model)
    assert adapter_keys(model) == set()


def test_the_keys_are_the_same_when_the_tree_is_wrapped() -> None:
    model = build()
    lora.inject(model, rank=1, targets=["blocks.*", "head"])
    keys = adapter_keys(model)
    for node in (*model.blocks.children(), model.blocks, model.head, model):
        wrap(node)
    assert adapter_keys(model) == keys
    assert keys <= set(model.state_dict())


INJECTIONS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["head", "stem", "blocks.*", "*.Linear", fl.Linear, fl.Conv2d, ("head", "stem")]),
    ),
    max_size=4,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(injections=INJECTIONS, eject=st.sampled_from([None, "a", "b"]))
def test_adapter_keys_are_exactly_the_keys_of_the_loras_own_tensors(
    injections: list[tuple[str, object]], eject: str | None
) -> None:
    model = build()
    base = set(model.state_dict())
    for name, targets in injections:
        with contextlib.suppress(AdapterError):  # a layer that has a LoRA of that name already
            lora.inject(model, rank=1, targets=targets, name=name)
    if eject is not None and lora.adapters(model, name=eject):
        lora.eject(model, name=eject)
    keys = adapter_keys(model)
    assert keys == own_keys(model)
    assert len(keys) == len(OWN_PARTS) * len(lora.adapters(model))
    assert keys <= set(model.state_dict())
    assert all(key.endswith(OWN_PARTS) for key in keys)
    if lora.adapters(model):
        lora.eject(model)
    assert set(model.state_dict()) == base
    assert adapter_keys(model) == set()


def test_the_keys_of_a_subtree_are_named_as_its_state_dict_names_them() -> None:
    model = build()
    lora.inject(model, rank=1, targets="blocks.*")
    assert adapter_keys(model.blocks) == own_keys(model.blocks)


def test_the_keys_of_a_tree_inside_a_plain_module_are_named_as_its_state_dict_names_them() -> None:
    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = build()

    holder = Holder()
    lora.inject(holder.net, rank=1, targets="head")
    assert adapter_keys(holder) == {"net.head.down.weight", "net.head.up.weight", "net.head.scale"}


def test_through_adapters_maps_the_wrapped_layers_keys_to_where_they_are_now() -> None:
    model = fl.Chain(blocks=fl.Chain(fl.Linear(2, 2), fl.BatchNorm1d(2)), head=fl.Linear(2, 3))
    plain_keys = list(model.state_dict())
    lora.inject(model, rank=1)
    moved = through_adapters(model)
    assert moved == {
        "blocks.Linear.weight": "blocks.Linear.target.weight",
        "blocks.Linear.bias": "blocks.Linear.target.bias",
        "head.weight": "head.target.weight",
        "head.bias": "head.target.bias",
    }
    now = set(model.state_dict())
    assert {moved.get(key, key) for key in plain_keys} <= now  # every plain key has its place
    assert set(moved.values()).isdisjoint(adapter_keys(model))


def test_through_adapters_of_a_model_without_adapters_is_empty() -> None:
    assert through_adapters(fl.Chain(fl.Linear(2, 2))) == {}
