"""LinearLora and Conv2dLora: scale, dropout, delta_weight, geometry, dtype and device, init, repr."""

from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.nn import functional

import fluxion.layers as fl
from fluxion.adapters import Adapter, AdapterError, Conv2dLora, LinearLora, lora
from fluxion.errors import AdapterStructureError


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def fill_randomly(down: Tensor, up: Tensor) -> None:
    generator = torch.Generator().manual_seed(3)
    down.copy_(torch.randn(down.shape, generator=generator, dtype=down.dtype))
    up.copy_(torch.randn(up.shape, generator=generator, dtype=up.dtype))


# -- scale -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rank", "scale", "alpha", "expected"),
    [
        (4, None, None, 1.0),
        (4, 0.25, None, 0.25),
        (4, None, 8.0, 2.0),
        (3, None, 1.0, 1 / 3),
        (16, None, 16.0, 1.0),
        (2, 0.0, None, 0.0),
    ],
)
def test_scale_is_given_directly_or_as_alpha_over_rank(
    rank: int, scale: float | None, alpha: float | None, expected: float
) -> None:
    linear = LinearLora(fl.Linear(16, 16), rank, scale=scale, alpha=alpha)
    assert (linear.rank, linear.scale.item()) == (rank, pytest.approx(expected))
    conv = Conv2dLora(fl.Conv2d(3, 8, 3), rank, scale=scale, alpha=alpha)
    assert (conv.rank, conv.scale.item()) == (rank, pytest.approx(expected))


def test_scale_multiplies_the_update_and_is_a_saved_buffer() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(6, 5))
    adapter = LinearLora(model.Linear, 2, alpha=1.0, init=fill_randomly).inject()
    x = randn(4, 6)
    base = adapter.target(x)
    update = model(x) - base
    adapter.set_scale(1.5)  # from 0.5: three times the update
    torch.testing.assert_close(model(x) - base, 3 * update)
    assert "Linear.scale" in dict(model.named_buffers())
    assert model.state_dict()["Linear.scale"].item() == 1.5


def test_both_scale_and_alpha_is_an_error() -> None:
    with pytest.raises(AdapterError, match=r"either as scale=0.5 or as alpha=4.0 .*not both"):
        LinearLora(fl.Linear(2, 2), 2, scale=0.5, alpha=4.0)


@pytest.mark.parametrize("rank", [0, -2, 1.5, True])
def test_rank_must_be_a_positive_integer(rank: object) -> None:
    with pytest.raises(AdapterError, match="rank must be a positive integer"):
        LinearLora(fl.Linear(2, 2), rank)  # pyright: ignore[reportArgumentType]
    with pytest.raises(AdapterError, match="rank must be a positive integer"):
        Conv2dLora(fl.Conv2d(2, 2, 1), rank)  # pyright: ignore[reportArgumentType]


# -- dropout -----------------------------------------------------------------------------------


def test_dropout_in_train_mode_applies_to_the_lora_branch_input_only() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(16, 8))
    adapter = LinearLora(model.Linear, 4, scale=0.5, dropout=0.5, init=fill_randomly).inject()
    x = randn(32, 16)
    model.train()

    torch.manual_seed(7)
    out = model(x)
    torch.manual_seed(7)
    dropped = functional.dropout(x, 0.5, training=True)
    assert not torch.equal(dropped, x)
    expected = adapter.target(x) + 0.5 * adapter.up(adapter.down(dropped))
    torch.testing.assert_close(out, expected)

    # the branch did see the dropped input (the target gets x itself: see `expected`)
    assert not torch.allclose(out, adapter.target(x) + 0.5 * adapter.up(adapter.down(x)))

    model.eval()
    torch.testing.assert_close(model(x), adapter.target(x) + 0.5 * adapter.up(adapter.down(x)))


def test_dropout_leaves_a_fresh_lora_unchanged_in_train_mode() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Conv2d(3, 4, 3, padding=1))
    x = randn(2, 3, 6, 6)
    before = model(x)
    Conv2dLora(model.Conv2d, 2, dropout=0.9).inject()
    model.train()
    assert torch.equal(model(x), before)


# -- delta_weight ------------------------------------------------------------------------------


def test_linear_delta_weight_is_the_effective_linear_map() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(7, 5, dtype=torch.float64))
    adapter = LinearLora(model.Linear, 3, alpha=2.0, init=fill_randomly).inject()
    delta = adapter.delta_weight()
    assert (delta.shape, delta.dtype) == ((5, 7), torch.float64)
    torch.testing.assert_close(delta, (2 / 3) * adapter.up.weight @ adapter.down.weight)
    x = randn(4, 2, 7, dtype=torch.float64)
    torch.testing.assert_close(model(x) - adapter.target(x), x @ delta.T)


def test_delta_weight_of_a_float32_lora_is_computed_in_float64() -> None:
    adapter = LinearLora(fl.Linear(6, 4), 2, init=fill_randomly)
    expected = adapter.up.weight.double() @ adapter.down.weight.double()
    assert adapter.delta_weight().dtype == torch.float64
    torch.testing.assert_close(adapter.delta_weight(), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("stride", "padding", "dilation", "padding_mode"),
    [(1, 0, 1, "zeros"), (2, 1, 1, "zeros"), (1, 2, 2, "circular"), (2, (1, 2), (1, 2), "reflect")],
)
def test_conv2d_delta_weight_is_the_effective_convolution(
    stride: int, padding: int | tuple[int, int], dilation: int | tuple[int, int], padding_mode: str
) -> None:
    torch.manual_seed(0)
    model = fl.Chain(
        fl.Conv2d(
            3, 4, 3, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode, dtype=torch.float64
        )
    )
    adapter = Conv2dLora(model.Conv2d, 2, scale=0.3, init=fill_randomly).inject()
    delta = adapter.delta_weight()
    assert delta.shape == (4, 3, 3, 3)
    reference = torch.nn.Conv2d(
        3, 4, 3, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode, bias=False
    ).double()
    with torch.no_grad():
        reference.weight.copy_(delta)
    x = randn(2, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(model(x) - adapter.target(x), reference(x))


# -- geometry, dtype and device ----------------------------------------------------------------


def test_linear_lora_shapes() -> None:
    adapter = LinearLora(torch.nn.Linear(10, 6), 3)
    assert isinstance(adapter.down, fl.Linear)
    assert isinstance(adapter.up, fl.Linear)
    assert (adapter.down.in_features, adapter.down.out_features, adapter.down.bias) == (10, 3, None)
    assert (adapter.up.in_features, adapter.up.out_features, adapter.up.bias) == (3, 6, None)
    assert adapter.down_weight.shape == (3, 10)
    assert adapter.up_weight.shape == (6, 3)


@pytest.mark.parametrize(
    ("kernel_size", "stride", "padding", "dilation", "padding_mode"),
    [
        (3, 1, 0, 1, "zeros"),
        ((3, 5), (2, 1), (1, 2), (2, 1), "circular"),
        (5, 1, "same", 2, "reflect"),
        (1, 3, 0, 1, "replicate"),
    ],
)
def test_conv2d_lora_down_copies_the_geometry_and_up_is_one_by_one(
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int],
    padding: int | str | tuple[int, int],
    dilation: int | tuple[int, int],
    padding_mode: str,
) -> None:
    conv = fl.Conv2d(3, 8, kernel_size, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode)
    model = fl.Chain(conv)
    adapter = Conv2dLora(conv, 2).inject()
    down, up = adapter.down, adapter.up
    assert isinstance(down, fl.Conv2d)
    assert isinstance(up, fl.Conv2d)
    assert (down.in_channels, down.out_channels, down.bias) == (3, 2, None)
    assert (down.kernel_size, down.stride, down.padding) == (conv.kernel_size, conv.stride, conv.padding)
    assert (down.dilation, down.padding_mode, down.groups) == (conv.dilation, conv.padding_mode, 1)
    assert (up.in_channels, up.out_channels, up.kernel_size, up.stride, up.bias) == (2, 8, (1, 1), (1, 1), None)
    assert (up.padding, up.dilation, up.padding_mode) == ((0, 0), (1, 1), "zeros")
    x = randn(1, 3, 12, 12)
    assert model(x).shape == conv(x).shape


@pytest.mark.parametrize("lora_type", [LinearLora, Conv2dLora])
def test_lora_tensors_follow_the_targets_dtype(lora_type: type[LinearLora] | type[Conv2dLora]) -> None:
    target = (
        fl.Linear(4, 4, dtype=torch.float64) if lora_type is LinearLora else fl.Conv2d(4, 4, 3, dtype=torch.float64)
    )
    model = fl.Chain(target)
    adapter = lora_type(target, 2, alpha=1.0).inject()
    assert adapter.down_weight.dtype == adapter.up_weight.dtype == torch.float64
    assert adapter.scale.dtype == torch.float32  # a scalar: it does not change the output's dtype
    x = randn(3, 4, dtype=torch.float64) if lora_type is LinearLora else randn(1, 4, 5, 5, dtype=torch.float64)
    assert model(x).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_lora_tensors_follow_a_half_precision_target(dtype: torch.dtype) -> None:
    adapter = LinearLora(fl.Linear(4, 4, dtype=dtype), 2, alpha=3.0)
    assert adapter.down_weight.dtype == adapter.up_weight.dtype == dtype
    # the scale stays float32, so alpha / rank keeps its precision
    assert adapter.scale.dtype == torch.float32
    assert LinearLora(fl.Linear(4, 4, dtype=dtype), 3, alpha=1.0).scale.item() == pytest.approx(1 / 3, rel=1e-7)
    model = fl.Chain(fl.Linear(4, 4, dtype=dtype))
    LinearLora(model.Linear, 2, init=lambda down, up: up.normal_()).inject()
    assert model(torch.randn(2, 4, dtype=dtype)).dtype == dtype


def test_lora_tensors_follow_the_targets_device() -> None:
    target = fl.Conv2d(4, 4, 3, device="meta")
    adapter = Conv2dLora(target, 2, init=fill_randomly)  # no values on meta: init is skipped
    assert {t.device.type for t in (adapter.down_weight, adapter.up_weight, adapter.scale)} == {"meta"}
    assert "scale=?" in repr(adapter)


def test_unknown_init_is_an_error_on_meta_too() -> None:
    with pytest.raises(AdapterError, match="init must be"):
        LinearLora(fl.Linear(4, 4, device="meta"), 2, init="xavier")  # pyright: ignore[reportArgumentType]


# -- stacking and targets ----------------------------------------------------------------------


def test_stacked_loras_find_their_base_layer() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(6, 4))
    linear = model.Linear
    inner = LinearLora(linear, 1, init=fill_randomly, name="inner").inject()
    outer = LinearLora(model.Linear, 3, init=fill_randomly, name="outer").inject()
    assert outer.target is inner
    assert inner.target is linear
    assert outer.base is linear
    assert inner.base is linear
    assert outer.down_weight.shape == (3, 6)
    assert outer.up_weight.shape == (4, 3)
    x = randn(2, 6)
    expected = linear(x) + inner.up(inner.down(x)) + outer.up(outer.down(x))
    torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize(
    ("make", "target", "message"),
    [
        (LinearLora, lambda: fl.Conv2d(2, 2, 1), "must be a Linear"),
        (Conv2dLora, lambda: fl.Linear(2, 2), "must be a Conv2d"),
        (Conv2dLora, lambda: fl.Conv1d(2, 2, 1), "must be a Conv2d"),
        (LinearLora, lambda: fl.Chain(fl.Linear(2, 2)), "must be a Linear"),
        (Conv2dLora, lambda: fl.Conv2d(4, 4, 3, groups=2), "must be a Conv2d with groups=1 .* got Conv2d"),
        (Conv2dLora, lambda: LinearLora(fl.Linear(2, 2), 1), "must be a Conv2d"),
    ],
)
def test_lora_on_the_wrong_kind_of_layer(
    make: type[LinearLora] | type[Conv2dLora], target: Callable[[], torch.nn.Module], message: str
) -> None:
    with pytest.raises(AdapterError, match=message):
        make(target(), 1)


def test_init_function_receives_down_and_up_weights() -> None:
    seen: list[tuple[int, ...]] = []

    def init(down: Tensor, up: Tensor) -> None:
        seen.extend([tuple(down.shape), tuple(up.shape)])
        down.fill_(2.0)
        up.fill_(3.0)

    adapter = Conv2dLora(fl.Conv2d(3, 5, 3), 2, init=init)
    assert seen == [(2, 3, 3, 3), (5, 2, 1, 1)]
    assert torch.all(adapter.down_weight == 2.0)
    assert torch.all(adapter.up_weight == 3.0)


def test_gaussian_init_draws_down_with_std_one_over_rank() -> None:
    torch.manual_seed(0)
    adapter = LinearLora(fl.Linear(4000, 2), 4, init="gaussian")
    assert adapter.down_weight.std().item() == pytest.approx(0.25, rel=0.05)
    assert adapter.down_weight.mean().item() == pytest.approx(0.0, abs=0.01)
    assert torch.count_nonzero(adapter.up_weight) == 0


def test_kaiming_init_draws_down_like_a_torch_linear() -> None:
    torch.manual_seed(0)
    adapter = LinearLora(fl.Linear(400, 2), 8)
    bound = 1 / 400**0.5  # kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert adapter.down_weight.abs().max().item() <= bound
    assert adapter.down_weight.abs().max().item() > 0.9 * bound
    assert torch.count_nonzero(adapter.up_weight) == 0


# -- repr --------------------------------------------------------------------------------------


def test_extra_repr() -> None:
    model = fl.Chain(fl.Linear(4, 4))
    adapter = LinearLora(model.Linear, 2, alpha=1.0, name="style")
    assert adapter.extra_repr() == "name='style', rank=2, scale=0.5, not injected"
    adapter.inject()
    assert adapter.extra_repr() == "name='style', rank=2, scale=0.5"
    assert "Linear: (LORA) LinearLora(name='style', rank=2, scale=0.5)" in repr(model)
    adapter.set_scale(0.125)
    assert adapter.extra_repr() == "name='style', rank=2, scale=0.125"
    conv = Conv2dLora(fl.Conv2d(2, 2, 3), 3)
    assert conv.extra_repr() == "name='lora', rank=3, scale=1, not injected"


def test_a_lazy_target_is_refused_until_materialized() -> None:
    from fluxion import shapes

    model = fl.Chain(fl.Linear(out_features=4))
    with pytest.raises(AdapterError, match=r"the target Linear is lazy .* call fluxion\.shapes\.materialize"):
        LinearLora(model.Linear, 2)
    shapes.materialize(model, ("B", 3))
    assert LinearLora(model.Linear, 2).inject().rank == 2


# -- surgery on a LoRA --------------------------------------------------------------------------


def injected_lora() -> tuple[fl.Chain, LinearLora, Tensor, Tensor]:
    model = fl.Chain(fl.Linear(8, 4), fl.ReLU())
    adapter = LinearLora(model.Linear, rank=2, init=fill_randomly).inject()
    x = randn(3, 8)
    return model, adapter, x, model(x)


@pytest.mark.parametrize(
    "action",
    [
        lambda model, adapter: setattr(adapter, "target", fl.Linear(8, 8)),
        lambda model, adapter: adapter.replace("target", fl.Linear(6, 4)),
        lambda model, adapter: model.replace("Linear.target", fl.Linear(8, 5)),
        lambda model, adapter: model.__setitem__("Linear.target", torch.nn.Linear(4, 8)),
        lambda model, adapter: setattr(adapter, "target", fl.Conv2d(8, 4, 1)),
        lambda model, adapter: setattr(adapter, "target", fl.ReLU()),
    ],
)
def test_a_target_the_lora_does_not_fit_is_refused(action: Callable[[fl.Chain, LinearLora], object]) -> None:
    model, adapter, x, expected = injected_lora()
    target = adapter.target
    with pytest.raises(fl.TreeError, match="LinearLora on Linear at 'Linear': cannot wrap") as raised:
        action(model, adapter)
    assert isinstance(raised.value, AdapterError)
    assert "fit in_features=8, out_features=4" in str(raised.value) or "it adapts a Linear" in str(raised.value)
    assert adapter.target is target
    torch.testing.assert_close(model(x), expected)


def test_a_target_of_the_same_size_is_accepted() -> None:
    model, adapter, x, _ = injected_lora()
    adapter.target = torch.nn.Linear(8, 4)
    assert model(x).shape == (3, 4)
    adapter.eject()
    assert isinstance(model.Linear, torch.nn.Linear)


def test_a_target_replaced_through_a_stacked_adapter_must_still_fit() -> None:
    _, adapter, _, _ = injected_lora()
    outer = Adapter(adapter.target).inject()  # a plain adapter on the LoRA's target
    with pytest.raises(fl.TreeError, match="LinearLora on Adapter at 'Linear': cannot wrap"):
        outer.target = fl.Linear(8, 8)
    outer.target = fl.Linear(8, 4)  # the same size: fine
    outer.eject()
    assert adapter.target.address == "Linear.target"


def test_a_conv2d_lora_refuses_a_target_of_another_geometry() -> None:
    model = fl.Chain(fl.Conv2d(3, 8, kernel_size=3, padding=1))
    adapter = Conv2dLora(model.Conv2d, rank=2).inject()
    with pytest.raises(fl.TreeError, match=r"fit padding=\(1, 1\)"):
        adapter.target = fl.Conv2d(3, 8, kernel_size=3)
    with pytest.raises(fl.TreeError, match="fit out_channels=8, stride"):
        adapter.target = fl.Conv2d(3, 4, kernel_size=3, stride=2, padding=1)
    adapter.target = fl.Conv2d(3, 8, kernel_size=3, padding=1)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda adapter: adapter.remove("down"), "'down' is part of the LoRA"),
        (lambda adapter: adapter.pop(), "'up' is part of the LoRA"),
        (lambda adapter: delattr(adapter, "dropout"), "'dropout' is part of the LoRA"),
        (lambda adapter: adapter.replace("up", fl.Linear(2, 4, bias=False), name="out"), "'up' is part of the LoRA"),
        (lambda adapter: adapter.append(fl.ReLU()), "a LoRA's children are fixed .* ReLU cannot be added"),
        (lambda adapter: adapter.insert(0, fl.ReLU(), name="pre"), "a LoRA's children are fixed"),
        (
            lambda adapter: setattr(adapter, "down", fl.Linear(8, 3, bias=False)),
            r"a new 'down' must have a weight of shape \(2, 8\)",
        ),
        (
            lambda adapter: setattr(adapter, "up", fl.ReLU()),
            r"a new 'up' must have a weight of shape \(4, 2\) .* no weight",
        ),
        (lambda adapter: setattr(adapter, "down", None), "cannot set child 'down'"),
    ],
)
def test_a_loras_own_layers_are_fixed(action: Callable[[LinearLora], object], message: str) -> None:
    model, adapter, x, expected = injected_lora()
    layers = list(adapter.named_children())
    with pytest.raises(fl.TreeError, match=message):
        action(adapter)
    assert list(adapter.named_children()) == layers
    torch.testing.assert_close(model(x), expected)
    assert "down: Linear(in_features=8, out_features=2, bias=False)" in repr(model)
    adapter.eject()
    assert isinstance(model.Linear, fl.Linear)


def test_a_loras_layers_may_be_replaced_by_layers_of_the_same_shape() -> None:
    model, adapter, x, _ = injected_lora()
    adapter.dropout = fl.Dropout(0.5)
    adapter.up = fl.Linear(2, 4, bias=False)
    torch.nn.init.zeros_(adapter.up.weight)
    model.eval()
    torch.testing.assert_close(adapter(x), adapter.target(x))


class ShiftedLinear(torch.nn.Linear):
    """A Linear subclass that computes something else: a merge could not fold its shift in."""

    def forward(self, input: Tensor) -> Tensor:
        return super().forward(input) + 1.0


def with_buffer(layer: torch.nn.Module) -> torch.nn.Module:
    layer.register_buffer("offset", torch.ones(1))
    return layer


def random_weights(layer: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return layer


# (which part, a replacement of the same weight shape, why it is refused or None when it is fine)
LINEAR_PARTS: list[tuple[str, Callable[[], torch.nn.Module], str | None]] = [
    ("up", lambda: fl.Linear(2, 4, bias=True), "it has a bias"),
    ("down", lambda: torch.nn.Linear(8, 2, bias=True), "it has a bias"),
    ("up", lambda: ShiftedLinear(2, 4, bias=False), "it is a ShiftedLinear, not a Linear"),
    ("up", lambda: with_buffer(fl.Linear(2, 4, bias=False)), r"holds tensors besides its weight \(offset\)"),
    ("up", lambda: torch.nn.LazyLinear(4, bias=False), r"a weight of no shape yet \(lazy\)"),
    ("dropout", lambda: fl.Linear(8, 8), "it is a Linear, not a dropout or an identity"),
    ("dropout", lambda: fl.LayerNorm(8), "not a dropout or an identity"),
    ("dropout", lambda: with_buffer(fl.Dropout(0.1)), r"it holds tensors \(offset\)"),
    ("up", lambda: fl.Linear(2, 4, bias=False), None),
    ("down", lambda: torch.nn.Linear(8, 2, bias=False), None),
    ("dropout", lambda: fl.Identity(), None),
    ("dropout", lambda: torch.nn.Dropout(0.3), None),
]


@pytest.mark.parametrize(("part", "make", "refusal"), LINEAR_PARTS)
def test_a_replaced_part_is_refused_unless_a_merge_keeps_the_outputs(
    part: str, make: Callable[[], torch.nn.Module], refusal: str | None
) -> None:
    model, adapter, x, _ = injected_lora()
    new = make()
    if not is_lazy_layer(new):
        random_weights(new)
    if refusal is None:
        setattr(adapter, part, new)
        assert getattr(adapter, part) is new
    else:
        with pytest.raises(AdapterStructureError, match=f"cannot be its '{part}': {refusal}|{refusal}"):
            setattr(adapter, part, new)
        assert getattr(adapter, part) is not new
    model.eval()
    adapted = model(x)
    lora.merge(model)
    assert isinstance(model.Linear, fl.Linear)
    torch.testing.assert_close(model(x), adapted)


def is_lazy_layer(layer: torch.nn.Module) -> bool:
    return any(torch.nn.parameter.is_lazy(parameter) for parameter in layer.parameters())


# (which part, a replacement of the same weight shape, why it is refused or None when it is fine)
CONV_PARTS: list[tuple[str, Callable[[], torch.nn.Module], str | None]] = [
    ("down", lambda: fl.Conv2d(3, 2, 3, stride=2, padding=1, bias=False), r"its layer's geometry .* stride=\(2, 2\)"),
    ("down", lambda: fl.Conv2d(3, 2, 3, padding=1, dilation=2, bias=False), r"dilation=\(2, 2\)"),
    ("down", lambda: fl.Conv2d(3, 2, 3, padding=1, padding_mode="reflect", bias=False), "padding_mode='reflect'"),
    ("up", lambda: fl.Conv2d(2, 8, 1, padding=1, bias=False), r"a plain 1×1 convolution .* padding=\(1, 1\)"),
    ("up", lambda: fl.Conv2d(2, 8, 1, stride=2, bias=False), r"stride=\(2, 2\)"),
    ("up", lambda: fl.Conv2d(2, 8, 1, bias=True), "it has a bias"),
    ("up", lambda: fl.Linear(2, 8, bias=False), r"must have a weight of shape \(8, 2, 1, 1\)"),
    ("dropout", lambda: fl.Conv2d(3, 3, 1), "not a dropout or an identity"),
    ("down", lambda: torch.nn.Conv2d(3, 2, 3, padding=1, bias=False), None),
    ("up", lambda: fl.Conv2d(2, 8, 1, padding="same", bias=False), None),
    ("dropout", lambda: torch.nn.Dropout2d(0.2), None),
]


@pytest.mark.parametrize(("part", "make", "refusal"), CONV_PARTS)
def test_a_replaced_conv2d_part_is_refused_unless_a_merge_keeps_the_outputs(
    part: str, make: Callable[[], torch.nn.Module], refusal: str | None
) -> None:
    model = fl.Chain(fl.Conv2d(3, 8, kernel_size=3, padding=1))
    adapter = Conv2dLora(model.Conv2d, rank=2, init=fill_randomly).inject()
    x = randn(2, 3, 6, 6)
    new = random_weights(make())
    if refusal is None:
        setattr(adapter, part, new)
    else:
        with pytest.raises(AdapterStructureError, match=refusal):
            setattr(adapter, part, new)
    model.eval()
    adapted = model(x)
    lora.merge(model)
    assert isinstance(model.Conv2d, fl.Conv2d)
    torch.testing.assert_close(model(x), adapted)
