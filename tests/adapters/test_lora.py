"""``fluxion.adapters.lora`` over whole models: injection, training, merging, saving, loading, targeting, bad use."""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor

import fluxion.layers as fl
from fluxion.adapters import AdapterError, Conv2dLora, LinearLora, Lora, base_address, lora
from fluxion.weights import WeightsWarning
from fluxion.weights import save as save_weights

Snapshot = tuple[list[tuple[str, torch.nn.Module]], dict[str, Tensor], str]

PEFT_MAPPING = [
    (r"^base_model\.model\.", ""),
    (r"\.lora_A\.weight$", ".down.weight"),
    (r"\.lora_B\.weight$", ".up.weight"),
]
"""PEFT's key layout (``base_model.model.{address}.lora_A.weight`` / ``lora_B.weight``) as fluxion's."""


# -- helpers -----------------------------------------------------------------------------------


def build() -> fl.Chain:
    """Two Conv2d (one strided, dilated and circular), a BatchNorm, a fluxion Linear and a plain torch Linear.

    In eval mode, so that a forward pass leaves the BatchNorm's running statistics alone.
    """
    torch.manual_seed(0)
    return fl.Chain(
        stem=fl.Conv2d(2, 4, 3, padding=1),
        norm=fl.BatchNorm2d(4),
        act=fl.ReLU(),
        reduce=fl.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, padding_mode="circular"),
        flat=fl.Flatten(),
        head=fl.Chain(fl.Linear(64, 8), fl.LayerNorm(8), fl.ReLU(), torch.nn.Linear(8, 3)),
    ).eval()


ADAPTED = ["stem", "reduce", "head.Linear_1", "head.Linear_2"]
"""The base addresses of every layer ``build()`` has that a LoRA adapts."""


def inputs(seed: int = 1) -> Tensor:
    return torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(seed))


def random_init(std: float = 0.3) -> Callable[[Tensor, Tensor], None]:
    """A LoRA init that makes both ``down`` and ``up`` non-zero, so the LoRA changes the outputs."""

    def init(down: Tensor, up: Tensor) -> None:
        down.normal_(std=std)
        up.normal_(std=std)

    return init


def train(model: torch.nn.Module, steps: int = 3, name: str | None = None) -> None:
    """A few Adam steps on the LoRA parameters towards a fixed random target."""
    optimizer = torch.optim.Adam(lora.trainable_parameters(model, name=name), lr=0.05)
    x = inputs()
    goal = torch.randn(3, 3, generator=torch.Generator().manual_seed(2))
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), goal).backward()
        optimizer.step()


def snapshot(model: torch.nn.Module) -> Snapshot:
    """Every module (by identity), every tensor (by value) and the printed tree."""
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    return list(model.named_modules()), state, repr(model)


def assert_unchanged(model: torch.nn.Module, before: Snapshot) -> None:
    modules, state, text = before
    now = list(model.named_modules())
    assert [name for name, _ in now] == [name for name, _ in modules]
    assert all(a is b for (_, a), (_, b) in zip(now, modules, strict=True))
    current = model.state_dict()
    assert list(current) == list(state)
    for key, value in state.items():
        tensor = current[key]
        assert (tensor.shape, tensor.dtype, tensor.device) == (value.shape, value.dtype, value.device), key
        if not value.is_meta:
            assert torch.equal(tensor, value), key
    assert repr(model) == text


# -- a fresh LoRA, and training it -------------------------------------------------------------


@pytest.mark.parametrize("init", ["kaiming", "gaussian"])
def test_fresh_lora_leaves_outputs_unchanged(init: str) -> None:
    model = build()
    x = inputs()
    before = model(x)
    injected = lora.inject(model, rank=2, init=init)  # pyright: ignore[reportArgumentType]
    assert [base_address(adapter) for adapter in injected] == ADAPTED
    assert [type(adapter) for adapter in injected] == [Conv2dLora, Conv2dLora, LinearLora, LinearLora]
    assert all(adapter.injected for adapter in injected)
    assert all(adapter.down_weight.abs().sum() > 0 for adapter in injected)  # only up starts at zero
    assert all(torch.count_nonzero(adapter.up_weight) == 0 for adapter in injected)
    assert torch.equal(model(x), before)


@pytest.mark.parametrize("init", ["kaiming", "gaussian"])
def test_training_step_changes_outputs_and_only_lora_parameters(init: str) -> None:
    model = build()
    x = inputs()
    base_tensors = [(key, tensor, tensor.detach().clone()) for key, tensor in model.state_dict(keep_vars=True).items()]
    before = model(x)
    injected = lora.inject(model, rank=2, init=init)  # pyright: ignore[reportArgumentType]

    trainable = lora.trainable_parameters(model)
    lora_parameters = [p for adapter in injected for p in (adapter.down.weight, adapter.up.weight)]
    assert {id(p) for p in trainable} == {id(p) for p in lora_parameters}
    assert len(trainable) == len(lora_parameters) == 8
    assert all(p.requires_grad for p in trainable)
    base_parameters = [tensor for _, tensor, _ in base_tensors if isinstance(tensor, torch.nn.Parameter)]
    assert base_parameters
    assert not any(p.requires_grad for p in base_parameters)

    optimizer = torch.optim.SGD(trainable, lr=0.5)
    goal = torch.randn(3, 3, generator=torch.Generator().manual_seed(2))
    lora_before = [p.detach().clone() for p in lora_parameters]

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), goal).backward()
        optimizer.step()

    step()
    after = model(x)
    assert not torch.allclose(after, before)
    for adapter, old in zip(injected, lora_before[1::2], strict=True):
        assert not torch.equal(adapter.up.weight, old), base_address(adapter)
    for key, tensor, clone in base_tensors:
        assert torch.equal(tensor, clone), key
        assert tensor.grad is None, key

    step()  # with up no longer zero, down gets a gradient too
    for parameter, old in zip(lora_parameters, lora_before, strict=True):
        assert not torch.equal(parameter, old)
    for key, tensor, clone in base_tensors:
        assert torch.equal(tensor, clone), key

    # the base tensors are still the model's own, and ejecting gives the untouched model back
    lora.eject(model)
    state = model.state_dict(keep_vars=True)
    assert list(state) == [key for key, _, _ in base_tensors]
    assert all(state[key] is tensor for key, tensor, _ in base_tensors)
    assert torch.equal(model(x), before)


def test_trainable_parameters_by_name_freezes_the_other_loras() -> None:
    model = build()
    first = lora.inject(model, rank=2, targets="head.*", name="first")
    second = lora.inject(model, rank=3, targets="head.*", name="second")
    trainable = lora.trainable_parameters(model, name="second")
    assert {id(p) for p in trainable} == {id(p) for a in second for p in (a.down.weight, a.up.weight)}
    assert all(p.shape[0] == 3 or p.shape[1] == 3 for p in trainable)
    assert not any(p.requires_grad for a in first for p in (a.down.weight, a.up.weight))
    assert not any(p.requires_grad for a in second for p in a.target.parameters())
    assert sum(p.requires_grad for p in model.parameters()) == len(trainable) == 4


def test_set_scale_changes_the_update_and_zero_turns_it_off() -> None:
    model = build()
    x = inputs()
    base = model(x)
    lora.inject(model, rank=2, targets=torch.nn.Linear, init=random_init(), name="a")
    lora.inject(model, rank=2, targets=torch.nn.Conv2d, init=random_init(), name="b")
    full = model(x)
    lora.set_scale(model, 0.0, name="b")
    assert [a.scale.item() for a in lora.adapters(model)] == [0.0, 0.0, 1.0, 1.0]
    only_a = model(x)
    assert not torch.allclose(only_a, full)
    lora.set_scale(model, 0.0)
    torch.testing.assert_close(model(x), base)
    lora.set_scale(model, 1.0)
    torch.testing.assert_close(model(x), full)


# -- merge -------------------------------------------------------------------------------------


def test_merge_after_training_keeps_outputs_and_restores_the_tree() -> None:
    model = build()
    x = inputs()
    layers = [model[address] for address in ADAPTED]
    modules = [(name, module) for name, module in model.named_modules()]
    lora.inject(model, rank=2, alpha=4.0)
    train(model)
    adapted = model(x)
    merged = lora.merge(model)
    assert len(merged) == 4
    assert not any(adapter.injected for adapter in merged)
    assert lora.adapters(model) == []
    assert [model[address] for address in ADAPTED] == layers
    assert all(a is b for (_, a), (_, b) in zip(model.named_modules(), modules, strict=True))
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model(x), build()(x))  # the weights did change


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "padding_mode"),
    [
        (1, 0, 1, "zeros"),
        (2, 1, 1, "zeros"),
        (1, 2, 2, "circular"),
        (2, 3, 3, "reflect"),
        (1, "same", 2, "replicate"),
        (1, (1, 2), (2, 1), "circular"),
    ],
)
def test_merge_conv2d_with_any_geometry(
    stride: int, padding: int | str | tuple[int, int], dilation: int | tuple[int, int], padding_mode: str
) -> None:
    torch.manual_seed(0)
    conv = fl.Conv2d(3, 5, 3, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode)
    model = fl.Chain(conv, fl.ReLU(), fl.Conv2d(5, 2, 1))
    x = torch.randn(2, 3, 11, 11)
    base = model(x)
    lora.inject(model, rank=2, scale=0.7, init=random_init())
    adapted = model(x)
    assert not torch.allclose(adapted, base, atol=1e-3)
    lora.merge(model)
    assert model.Conv2d_1 is conv
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=1e-5)


def test_merge_stacked_loras_one_name_at_a_time() -> None:
    model = build()
    x = inputs()
    lora.inject(model, rank=2, init=random_init(), name="a")
    lora.inject(model, rank=3, alpha=1.5, init=random_init(), name="b")
    adapted = model(x)
    lora.merge(model, name="a")
    assert [(a.name, base_address(a)) for a in lora.adapters(model)] == [("b", address) for address in ADAPTED]
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=1e-5)
    lora.set_scale(model, 0.0)  # what is left of the update is b's alone
    assert not torch.allclose(model(x), adapted, atol=1e-3)
    lora.set_scale(model, 0.5)
    halved = model(x)
    lora.merge(model, name="b")
    assert lora.adapters(model) == []
    torch.testing.assert_close(model(x), halved, atol=1e-5, rtol=1e-5)
    assert all(type(model[address]) in (fl.Conv2d, fl.Linear, torch.nn.Linear) for address in ADAPTED)


def test_merge_inner_lora_leaves_the_outer_one_in_place() -> None:
    model = build()
    x = inputs()
    outer = lora.inject(model, rank=2, init=random_init(), name="outer")
    lora.inject(model, rank=2, init=random_init(), name="inner")  # wraps the base layer inside `outer`
    adapted = model(x)
    lora.merge(model, name="inner")
    assert lora.adapters(model) == outer
    assert all(adapter.target is model[f"{base_address(adapter)}.target"] for adapter in outer)
    assert all(isinstance(adapter.target, torch.nn.Linear | torch.nn.Conv2d) for adapter in outer)
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=1e-5)


def test_merge_all_names_at_once() -> None:
    model = build()
    x = inputs()
    lora.inject(model, rank=2, init=random_init(), name="a")
    lora.inject(model, rank=1, init=random_init(), name="b", targets="head")
    adapted = model(x)
    assert len(lora.merge(model)) == 6
    assert lora.adapters(model) == []
    torch.testing.assert_close(model(x), adapted, atol=1e-5, rtol=1e-5)


def test_merge_refuses_a_tied_weight_and_changes_nothing() -> None:
    torch.manual_seed(0)
    first, second = fl.Linear(4, 4), fl.Linear(4, 4)
    second.weight = first.weight
    model = fl.Chain(first, fl.ReLU(), second, fl.Linear(4, 2))
    lora.inject(model, rank=2, targets="Linear_1", init=random_init())
    x = torch.randn(3, 4)
    adapted = model(x)
    before = snapshot(model)
    with pytest.raises(AdapterError, match=r"tied to Linear_2\.weight"):
        lora.merge(model)
    assert_unchanged(model, before)
    assert torch.equal(model(x), adapted)


def test_inject_refuses_layers_on_meta_and_changes_nothing() -> None:
    with torch.device("meta"):
        model = build()
    before = snapshot(model)
    with pytest.raises(AdapterError, match="stem is on the meta device: a LoRA injected there would lose"):
        lora.inject(model, rank=2)
    assert_unchanged(model, before)


def test_merge_refuses_loras_on_meta_and_changes_nothing() -> None:
    with torch.device("meta"):
        model = build()
    Conv2dLora(model.stem, rank=2).inject()  # an adapter on its own may go on meta (lora.load does this)
    LinearLora(model.head.Linear_1, rank=2).inject()
    before = snapshot(model)
    with pytest.raises(AdapterError, match="meta device"):
        lora.merge(model)
    assert_unchanged(model, before)


# -- save and load -----------------------------------------------------------------------------


def trained() -> fl.Chain:
    model = build()
    lora.inject(model, rank=2, alpha=3.0)
    train(model)
    return model


def test_save_then_load_into_a_fresh_model(tmp_path: Path) -> None:
    model = trained()
    x = inputs()
    path = tmp_path / "adapter.safetensors"
    lora.save(model, path)
    fresh = build()
    loaded = lora.load(fresh, path)
    assert sorted(base_address(adapter) or "" for adapter in loaded) == sorted(ADAPTED)  # in the file's key order
    assert lora.adapters(fresh) == [fresh[address] for address in ADAPTED]
    assert all(adapter.name == "lora" and adapter.rank == 2 and adapter.scale.item() == 1.5 for adapter in loaded)
    assert torch.equal(fresh(x), model(x))
    assert repr(fresh) == repr(model)
    expected = lora.state_dict(model)
    assert all(torch.equal(tensor, expected[key]) for key, tensor in lora.state_dict(fresh).items())


def test_load_a_state_dict_directly() -> None:
    model = trained()
    x = inputs()
    fresh = build()
    lora.load(fresh, lora.state_dict(model), name="style")
    assert [adapter.name for adapter in lora.adapters(fresh)] == ["style"] * 4
    assert torch.equal(fresh(x), model(x))
    # the fresh model holds copies: training one model does not move the other
    with torch.no_grad():
        fresh.head.Linear_1.up.weight.add_(1.0)
    assert not torch.equal(fresh.head.Linear_1.up.weight, model.head.Linear_1.up.weight)


def test_load_into_existing_loras_of_that_name_reuses_them(tmp_path: Path) -> None:
    model = trained()
    x = inputs()
    path = tmp_path / "adapter.safetensors"
    lora.save(model, path)
    fresh = build()
    present = lora.inject(fresh, rank=2, targets=["stem", "head.Linear_2"])
    modules_before = {name for name, _ in fresh.named_modules()}
    loaded = lora.load(fresh, path)
    at = {base_address(adapter): adapter for adapter in loaded}
    assert at["stem"] is present[0]
    assert at["head.Linear_2"] is present[1]
    assert lora.adapters(fresh) == [at[address] for address in ADAPTED]
    assert not any(isinstance(adapter.target, Lora) for adapter in loaded)  # nothing stacked twice
    assert modules_before < {name for name, _ in fresh.named_modules()}
    assert torch.equal(fresh(x), model(x))
    assert lora.load(fresh, path) == loaded  # and again: still the same four
    assert torch.equal(fresh(x), model(x))


def test_load_a_peft_layout_with_mapping_and_scale() -> None:
    model = trained()
    x = inputs()
    peft = {
        f"base_model.model.{key}".replace(".down.weight", ".lora_A.weight").replace(".up.weight", ".lora_B.weight"): t
        for key, t in lora.state_dict(model).items()
        if not key.endswith(".scale")
    }
    assert "base_model.model.head.Linear_1.lora_A.weight" in peft
    fresh = build()
    loaded = lora.load(fresh, peft, mapping=PEFT_MAPPING, scale=1.5)
    assert sorted((base_address(a) or "", a.rank, a.scale.item()) for a in loaded) == [
        (a, 2, 1.5) for a in sorted(ADAPTED)
    ]
    torch.testing.assert_close(fresh(x), model(x), atol=0, rtol=0)


def test_load_a_file_without_scale_needs_the_scale_argument(tmp_path: Path) -> None:
    model = trained()
    path = tmp_path / "no_scale.safetensors"
    save_weights({k: v for k, v in lora.state_dict(model).items() if not k.endswith(".scale")}, path)
    fresh = build()
    before = snapshot(fresh)
    with pytest.raises(AdapterError, match=r"no scale in the file; pass scale="):
        lora.load(fresh, path)
    assert_unchanged(fresh, before)
    lora.load(fresh, path, scale=1.5)
    torch.testing.assert_close(fresh(inputs()), model(inputs()), atol=0, rtol=0)


def test_load_into_a_meta_model_gives_the_loras_the_files_values(tmp_path: Path) -> None:
    model = trained()
    path = tmp_path / "adapter.safetensors"
    lora.save(model, path)
    with torch.device("meta"):
        fresh = build()
    with pytest.warns(WeightsWarning, match="still on the meta device"):  # the base layers: not in the file
        loaded = lora.load(fresh, path)
    assert len(loaded) == 4
    expected = lora.state_dict(model)
    got = lora.state_dict(fresh)
    assert list(got) == list(expected)
    for key, tensor in got.items():
        assert not tensor.is_meta, key
        assert torch.equal(tensor, expected[key]), key
    assert all(adapter.target.weight.is_meta for adapter in loaded)


def test_load_a_peft_layout_into_a_meta_model_uses_the_scale_argument() -> None:
    state = lora.state_dict(trained())
    with torch.device("meta"):
        fresh = build()
    tensors = {key: value for key, value in state.items() if not key.endswith(".scale")}
    with pytest.warns(WeightsWarning):
        loaded = lora.load(fresh, tensors, scale=0.5)
    assert [adapter.scale.is_meta for adapter in loaded] == [False] * 4
    assert [adapter.scale.item() for adapter in loaded] == [0.5] * 4


def test_load_scale_argument_applies_to_existing_loras() -> None:
    state = lora.state_dict(trained())
    fresh = build()
    lora.inject(fresh, rank=2)  # scale 1
    tensors = {key: value for key, value in state.items() if not key.endswith(".scale")}
    loaded = lora.load(fresh, tensors, scale=0.5)
    assert [adapter.scale.item() for adapter in loaded] == [0.5] * 4


def test_load_scale_argument_overrides_the_files_scale_and_returns_tree_order() -> None:
    model = trained()
    loaded = lora.load(build(), lora.state_dict(model), scale=3.0)
    assert [base_address(adapter) for adapter in loaded] == ADAPTED
    assert [adapter.scale.item() for adapter in loaded] == [3.0] * 4


# -- bad use: a clear AdapterError, and nothing changes ----------------------------------------


def test_loading_a_rank_zero_lora_names_the_address() -> None:
    model = build()
    before = snapshot(model)
    tensors = {"head.Linear_1.down.weight": torch.zeros(0, 64), "head.Linear_1.up.weight": torch.zeros(8, 0)}
    with pytest.raises(AdapterError, match=r"'head\.Linear_1': down\.weight has shape \(0, 64\)"):
        lora.load(model, tensors, scale=1.0)
    assert_unchanged(model, before)


def test_lora_functions_refuse_to_wrap_the_model_itself() -> None:
    linear = fl.Linear(4, 4)
    with pytest.raises(AdapterError, match="the model itself is a Linear"):
        lora.inject(linear, rank=1)
    with pytest.raises(AdapterError, match="the model itself is a Linear"):
        lora.load(linear, {"down.weight": torch.zeros(1, 4), "up.weight": torch.zeros(4, 1)}, scale=1.0)
    assert linear.parent is None


def test_injecting_an_adapter_twice() -> None:
    model = build()
    adapter = lora.inject(model, rank=2, targets="stem")[0]
    before = snapshot(model)
    with pytest.raises(AdapterError, match="already injected"):
        adapter.inject()
    assert_unchanged(model, before)


def test_ejecting_an_adapter_that_is_not_injected() -> None:
    model = build()
    adapter = LinearLora(model.head.Linear_1, rank=2)
    before = snapshot(model)
    with pytest.raises(AdapterError, match="not injected"):
        adapter.eject()
    assert_unchanged(model, before)
    lora.inject(model, rank=2)
    before = snapshot(model)
    with pytest.raises(AdapterError, match="not injected"):
        adapter.eject()
    assert_unchanged(model, before)


def test_glob_matching_nothing_lists_nearby_addresses() -> None:
    model = build()
    before = snapshot(model)
    with pytest.raises(AdapterError, match=r"no node matches 'head\.Linaer_1'; nearby addresses: head\.Linear_1"):
        lora.inject(model, rank=2, targets="head.Linaer_1")
    assert_unchanged(model, before)
    # one glob of a list matching nothing is enough to refuse the whole list
    with pytest.raises(AdapterError, match=r"'redcue'.*reduce"):
        lora.inject(model, rank=2, targets=["stem", "redcue"])
    assert_unchanged(model, before)


def test_type_matching_nothing_lists_the_types_present() -> None:
    model = build()
    before = snapshot(model)
    with pytest.raises(AdapterError, match=r"no node of type Embedding in the model; types present: .*BatchNorm2d"):
        lora.inject(model, rank=2, targets=fl.Embedding)
    assert_unchanged(model, before)


@pytest.mark.parametrize(
    ("model", "targets"),
    [
        pytest.param(fl.Chain(fl.Linear(4, 4), fl.LayerNorm(4), fl.LayerNorm(4)), fl.LayerNorm, id="layer-norms"),
        pytest.param(fl.Chain(fl.Linear(4, 4), norm=fl.LayerNorm(4)), "norm", id="glob-on-a-layer-norm"),
        pytest.param(fl.Chain(fl.Conv2d(4, 4, 3, groups=2), fl.ReLU()), None, id="grouped-conv-default"),
        pytest.param(fl.Chain(block=fl.Chain(fl.Conv2d(4, 4, 3, groups=4), fl.LayerNorm(4))), "block", id="chain"),
        pytest.param(fl.Chain(fl.Linear(4, 4), fl.ReLU()), lambda m: isinstance(m, fl.ReLU), id="predicate"),
    ],
)
def test_a_selection_with_nothing_adaptable(model: fl.Chain, targets: object) -> None:
    before = snapshot(model)
    options = {} if targets is None else {"targets": targets}
    with pytest.raises(AdapterError, match=r"none of them is a layer a LoRA .* can adapt"):
        lora.inject(model, rank=2, **options)  # pyright: ignore[reportArgumentType]
    assert_unchanged(model, before)


def test_injecting_the_same_name_twice_on_a_layer() -> None:
    model = build()
    lora.inject(model, rank=2, targets="head.*")
    before = snapshot(model)
    with pytest.raises(AdapterError, match=r"head\.Linear_1 already has a LoRA named 'lora'"):
        lora.inject(model, rank=2)  # stem and reduce would be new, but nothing is injected
    assert_unchanged(model, before)
    assert len(lora.inject(model, rank=2, name="other")) == 4


def test_loading_weights_for_addresses_the_model_lacks() -> None:
    state = lora.state_dict(trained())
    state = {key.replace("head.Linear_1", "head.Linear_9"): value for key, value in state.items()}
    fresh = build()
    before = snapshot(fresh)
    with pytest.raises(AdapterError, match=r"no layer in the model at 'head\.Linear_9' \(nearby: head\.Linear_1"):
        lora.load(fresh, state)
    assert_unchanged(fresh, before)


def test_loading_weights_of_the_wrong_shape_rolls_back() -> None:
    state = lora.state_dict(trained())
    state["head.Linear_1.down.weight"] = torch.zeros(2, 65)  # in_features is 64
    fresh = build()
    before = snapshot(fresh)
    with pytest.raises(AdapterError, match=r"head\.Linear_1\.down\.weight: model has shape \(2, 64\).*\(2, 65\)"):
        lora.load(fresh, state)
    assert lora.adapters(fresh) == []
    assert_unchanged(fresh, before)


def test_loading_weights_of_the_wrong_shape_keeps_existing_loras_as_they_were() -> None:
    state = lora.state_dict(trained())
    state["head.Linear_2.up.weight"] = torch.zeros(4, 2)  # out_features is 3
    fresh = build()
    present = lora.inject(fresh, rank=2, targets="head.*", init=random_init())
    before = snapshot(fresh)
    with pytest.raises(AdapterError, match=r"head\.Linear_2\.up\.weight"):
        lora.load(fresh, state)
    assert lora.adapters(fresh) == present
    assert_unchanged(fresh, before)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rank": 0}, "rank must be a positive integer, got 0"),
        ({"rank": -1}, "rank must be a positive integer"),
        ({"rank": 2, "scale": 1.0, "alpha": 2.0}, "not both"),
        ({"rank": 2, "init": "xavier"}, "init must be 'kaiming', 'gaussian' or a function"),
        ({"rank": 2, "dropout": 1.5}, "dropout is a probability between 0 and 1, got 1.5"),
    ],
)
def test_bad_lora_options(options: dict[str, object], message: str) -> None:
    model = build()
    before = snapshot(model)
    with pytest.raises(AdapterError, match=message):
        lora.inject(model, **options)  # pyright: ignore[reportArgumentType]
    assert_unchanged(model, before)


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lora.eject, id="eject"),
        pytest.param(lora.merge, id="merge"),
        pytest.param(lambda model: lora.set_scale(model, 0.5), id="set_scale"),
        pytest.param(lora.trainable_parameters, id="trainable_parameters"),
        pytest.param(lora.state_dict, id="state_dict"),
    ],
)
def test_operations_on_a_model_without_lora(operation: Callable[[torch.nn.Module], object]) -> None:
    model = build()
    before = snapshot(model)
    requires_grad = [p.requires_grad for p in model.parameters()]
    with pytest.raises(AdapterError, match=r"the model has no LoRA$"):
        operation(model)
    assert_unchanged(model, before)
    assert [p.requires_grad for p in model.parameters()] == requires_grad


def test_operations_on_a_name_that_is_not_there_name_the_ones_that_are() -> None:
    model = build()
    lora.inject(model, rank=2, name="style")
    before = snapshot(model)
    with pytest.raises(AdapterError, match=r"no LoRA named 'lora' \(LoRA names present: style\)"):
        lora.merge(model, name="lora")
    assert_unchanged(model, before)


# -- targeting ---------------------------------------------------------------------------------


def transformer() -> fl.Chain:
    torch.manual_seed(0)

    def block() -> fl.Chain:
        return fl.Chain(
            attn=fl.Chain(q=fl.Linear(4, 4), k=fl.Linear(4, 4), norm=fl.LayerNorm(4)),
            mlp=fl.Chain(fc=fl.Linear(4, 4), act=fl.GeLU(), proj=torch.nn.Linear(4, 4)),
        )

    return fl.Chain(blocks=fl.Chain(block(), block()), attn_out=fl.Linear(4, 4), head=torch.nn.Linear(4, 2))


def addresses(targets: object, model: fl.Chain | None = None) -> list[str | None]:
    model = transformer() if model is None else model
    return [base_address(a) for a in lora.inject(model, rank=1, targets=targets)]  # pyright: ignore[reportArgumentType]


def test_default_targets_are_every_linear_and_ungrouped_conv2d() -> None:
    model = fl.Chain(
        fl.Conv2d(4, 4, 3, padding=1),
        fl.Conv2d(4, 4, 3, padding=1, groups=2),
        torch.nn.Conv2d(4, 4, 1),
        fl.ConvTranspose2d(4, 4, 1),
        fl.Flatten(),
        fl.LayerNorm(16),
        torch.nn.Linear(16, 4),
        fl.Linear(4, 2),
    )
    injected = lora.inject(model, rank=1)
    assert [base_address(a) for a in injected] == ["Conv2d_1", "Conv2d_3", "Linear_1", "Linear_2"]
    assert [type(a) for a in injected] == [Conv2dLora, Conv2dLora, LinearLora, LinearLora]
    assert type(injected[1].target) is torch.nn.Conv2d
    assert type(injected[2].target) is torch.nn.Linear
    assert model(torch.randn(1, 4, 2, 2)).shape == (1, 2)


def test_targets_by_type() -> None:
    assert addresses(torch.nn.Linear) == [
        "blocks.Chain_1.attn.q",
        "blocks.Chain_1.attn.k",
        "blocks.Chain_1.mlp.fc",
        "blocks.Chain_1.mlp.proj",
        "blocks.Chain_2.attn.q",
        "blocks.Chain_2.attn.k",
        "blocks.Chain_2.mlp.fc",
        "blocks.Chain_2.mlp.proj",
        "attn_out",
        "head",
    ]
    assert addresses(fl.Linear) == [
        "blocks.Chain_1.attn.q",
        "blocks.Chain_1.attn.k",
        "blocks.Chain_1.mlp.fc",
        "blocks.Chain_2.attn.q",
        "blocks.Chain_2.attn.k",
        "blocks.Chain_2.mlp.fc",
        "attn_out",
    ]


def test_targets_by_glob_star_crosses_dots() -> None:
    attn = ["blocks.Chain_1.attn.q", "blocks.Chain_1.attn.k", "blocks.Chain_2.attn.q", "blocks.Chain_2.attn.k"]
    assert addresses("*.attn.*") == attn  # not attn_out, not attn.norm (not adaptable)
    assert addresses("*.q") == ["blocks.Chain_1.attn.q", "blocks.Chain_2.attn.q"]
    assert addresses("blocks.*.proj") == ["blocks.Chain_1.mlp.proj", "blocks.Chain_2.mlp.proj"]
    assert addresses("blocks.Chain_?.attn.k") == ["blocks.Chain_1.attn.k", "blocks.Chain_2.attn.k"]
    assert addresses("head") == ["head"]


def test_targets_by_list_of_globs() -> None:
    assert addresses(["head", "*.mlp.fc", "blocks.Chain_2.attn.q", "*.fc"]) == [
        "blocks.Chain_1.mlp.fc",
        "blocks.Chain_2.attn.q",
        "blocks.Chain_2.mlp.fc",
        "head",
    ]


def test_targets_by_predicate() -> None:
    def square(module: torch.nn.Module) -> bool:
        return isinstance(module, torch.nn.Linear) and module.out_features == module.in_features

    assert addresses(lambda m: isinstance(m, torch.nn.Linear) and m.out_features == 2) == ["head"]
    assert len(addresses(square)) == 9


def test_a_selected_chain_adapts_everything_adaptable_inside() -> None:
    assert addresses("blocks.Chain_2") == [
        "blocks.Chain_2.attn.q",
        "blocks.Chain_2.attn.k",
        "blocks.Chain_2.mlp.fc",
        "blocks.Chain_2.mlp.proj",
    ]
    assert addresses(fl.Chain, fl.Chain(block=fl.Chain(fl.Conv2d(2, 2, 1), fl.Conv2d(2, 2, 1, groups=2)))) == [
        "block.Conv2d_1"
    ]


def test_addresses_are_base_addresses_when_loras_are_present() -> None:
    model = transformer()
    first = lora.inject(model, rank=1, targets="*.attn.*", name="a")
    second = lora.inject(model, rank=1, targets="*.attn.*", name="b")
    assert [base_address(a) for a in first] == [base_address(b) for b in second]
    assert all(b.parent is a for a, b in zip(first, second, strict=True))  # b sits in a's target slot
    assert all(b.address == f"{a.address}.target" for a, b in zip(first, second, strict=True))
    assert list(lora.state_dict(model, name="a")) == list(lora.state_dict(model, name="b"))
    # a glob never selects a LoRA's own layers
    with pytest.raises(AdapterError, match="no node matches"):
        lora.inject(model, rank=1, targets="*.down")


def test_repr_walk_and_layers_show_the_loras() -> None:
    model = transformer()
    lora.inject(model, rank=1, targets="*.attn.*")
    lora.inject(model, rank=1, targets=["head", "*.mlp.*"], name="mlp")
    text = repr(model)  # the two blocks are alike and printed once (×2)
    assert text.count("(LORA)") == 2 + 2 + 1
    assert "q: (LORA) LinearLora(name='lora', rank=1, scale=1)" in text
    assert "fc: (LORA) LinearLora(name='mlp', rank=1, scale=1)" in text
    assert "head: (LORA) LinearLora(name='mlp', rank=1, scale=1)" in text
    assert [m.address for m, _ in model.walk(Lora)] == [a.address for a in lora.adapters(model)]
    assert [m.address for m in model.layers(LinearLora)][-1] == "head"
    assert len(list(model.layers(LinearLora))) == 9
    lora.eject(model)
    assert "(LORA)" not in repr(model)
    assert repr(model) == repr(transformer())


# -- review findings: each pins a behaviour a user relies on -------------------------------------


def test_loading_many_unknown_addresses_is_short_and_suggests_the_prefix_mapping() -> None:
    model = build()
    state = {f"model.{key}": value for key, value in lora.state_dict(trained()).items()}
    before = snapshot(model)
    with pytest.raises(AdapterError) as caught:
        lora.load(model, state)
    message = str(caught.value)
    assert message.count("(nearby:") == 4  # every unknown address shown: there are only 4
    assert "mapping=[(r'^model\\.', '')] strips it" in message
    assert_unchanged(model, before)
    many = {f"blocks.{i}.down.weight": torch.zeros(1, 2) for i in range(40)}
    with pytest.raises(AdapterError, match=r"and 35 more$"):
        lora.load(model, many, scale=1.0)
    # the suggested mapping does load the file
    assert len(lora.load(model, state, mapping=[(r"^model\.", "")])) == 4


def test_loading_a_file_that_covers_only_some_loras_of_that_name_is_refused() -> None:
    model = trained()
    partial = {key: value for key, value in lora.state_dict(model).items() if key.startswith("head.")}
    before = snapshot(model)
    with pytest.raises(AdapterError, match=r"LoRAs named 'lora' the file does not cover \('stem', 'reduce'\)"):
        lora.load(model, partial)
    assert_unchanged(model, before)
    assert len(lora.load(model, partial, name="other")) == 2  # under another name: a second set


def test_a_structural_copy_rescales_on_its_own() -> None:
    model = trained()
    scales = [adapter.scale.item() for adapter in lora.adapters(model)]
    twin = model.structural_copy()
    lora.set_scale(twin, 0.0)
    assert [adapter.scale.item() for adapter in lora.adapters(model)] == scales
    assert torch.equal(twin.stem.down.weight, model.stem.down.weight)


def test_merge_refuses_a_parametrized_weight() -> None:
    model = build()
    torch.nn.utils.parametrizations.weight_norm(model.head.Linear_1)
    lora.inject(model, rank=2, targets="head.Linear_1", init=random_init())
    before = snapshot(model)
    with pytest.raises(AdapterError, match="computed by a parametrization"):
        lora.merge(model)
    assert_unchanged(model, before)


def test_lora_in_another_adapters_own_layers_cannot_be_saved() -> None:
    from fluxion.adapters import Adapter

    model = build()
    side = Adapter(model.act, fl.Chain(fl.Linear(4, 4))).inject()
    LinearLora(side.Chain.Linear, rank=1).inject()
    with pytest.raises(AdapterError, match="adapts a layer of another adapter"):
        lora.state_dict(model)


def test_eject_with_a_lora_that_lost_its_target_changes_nothing() -> None:
    model = build()
    lora.inject(model, rank=2)
    broken = model.head.Linear_1
    # A tree broken by hand: surgery refuses to take an adapter's target out, so go under it, to torch.
    torch.nn.Module.__delattr__(broken, "target")
    before = snapshot(model)
    with pytest.raises(AdapterError, match=r"'head\.Linear_1' have lost their targets"):
        lora.eject(model)
    assert_unchanged(model, before)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: lora.inject(m, rank=1, name=""), "a LoRA name is a non-empty string"),
        (lambda m: lora.inject(m, rank=1, name=3), "a LoRA name is a non-empty string, got 3"),
        (lambda m: lora.set_scale(m, float("nan")), "a LoRA scale is a finite number, got nan"),
        (lambda m: lora.load(m, lora.state_dict(trained()), scale="x"), "a LoRA scale is a finite number"),
        (lambda m: lora.inject(m, rank=1, targets=m.stem), "targets is a Conv2d module, not a selection"),
        (
            lambda m: lora.inject(m, rank=1, targets=lambda x: x.in_features > 1),
            r"predicate failed on Chain \(the root\): ChildAttributeError: .*no child or attribute 'in_features'",
        ),
    ],
)
def test_bad_arguments_are_adapter_errors(call: Callable[[fl.Chain], object], message: str) -> None:
    model = build()
    if "set_scale" in message or "scale is" in message:
        lora.inject(model, rank=1)
    before = snapshot(model)
    with pytest.raises(AdapterError, match=message):
        call(model)
    assert_unchanged(model, before)
