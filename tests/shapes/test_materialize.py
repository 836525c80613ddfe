"""Lazy layers and ``fluxion.shapes.materialize``: sizes left out at construction, filled in from shapes.

A lazily built model, once materialized, must be indistinguishable from the one built with the
sizes given: same parameters and buffers (names, shapes, dtypes, devices, order), same repr, same
forward. Until then it refuses to run, and a failed ``materialize`` changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.layers.lazy import Inferable
from fluxion.shapes.materialize import materialize

EXAMPLES = settings(max_examples=200, deadline=None)


def cnn(lazy: bool) -> fl.Chain:
    """A small image classifier; ``lazy`` leaves every input-side size out."""

    def size(value: int) -> int | None:
        return None if lazy else value

    return fl.Chain(
        stem=fl.Chain(
            fl.Conv2d(size(3), 16, kernel_size=3, padding=1),
            fl.BatchNorm2d(size(16)),
            fl.ReLU(),
            fl.MaxPool2d(2),
        ),
        block=fl.Chain(
            fl.Conv2d(size(16), 32, kernel_size=3, stride=2, padding=1, groups=2, bias=False),
            fl.GroupNorm(4, size(32)),
            fl.SiLU(),
            fl.ConvTranspose2d(size(32), 8, kernel_size=2, stride=2),
        ),
        head=fl.Chain(
            fl.Flatten(),
            fl.Linear(size(8 * 16 * 16), 64),
            fl.LayerNorm(size(64)),
            fl.ReLU(),
            fl.Linear(size(64), 10),
        ),
    )


def sequence_model(lazy: bool) -> fl.Chain:
    """A 1D convolution over features, then per-step layers with RMSNorm; and a 3D convolution."""

    def size(value: int) -> int | None:
        return None if lazy else value

    return fl.Chain(
        fl.Conv1d(size(4), 8, kernel_size=3, padding="same"),
        fl.BatchNorm1d(size(8)),
        fl.Transpose(1, 2),
        fl.RMSNorm(size(8)),
        fl.Linear(size(8), 6),
        fl.Unsqueeze(1),
        fl.Unsqueeze(1),
        fl.Conv3d(size(1), 2, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
    )


def tensors(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, str]]:
    return [(name, tuple(value.shape), value.dtype, value.device.type) for name, value in model.state_dict().items()]


# -- materialize on real models ---------------------------------------------------------------------


def test_a_lazy_cnn_materializes_into_the_eager_one_and_runs() -> None:
    model, eager = cnn(lazy=True), cnn(lazy=False)
    assert model.state_dict() == {}
    report = materialize(model, ("B", 3, 32, 32))
    assert report.output == dims.Shape(["B", 10])
    assert report["head.Linear_1"].inputs == (dims.Shape(["B", 2048]),)
    assert tensors(model) == tensors(eager)
    assert repr(model) == repr(eager)
    # same forward once they hold the same values
    model.load_state_dict(eager.state_dict())
    image = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model.eval()(image), eager.eval()(image))
    assert model.train()(image).shape == (2, 10)


def test_a_lazy_sequence_model_materializes_with_the_sizes_it_needs() -> None:
    model, eager = sequence_model(lazy=True), sequence_model(lazy=False)
    assert materialize(model, ("B", 4, "T")).output == dims.Shape(["B", 2, 1, "T", 6])
    assert tensors(model) == tensors(eager)
    assert repr(model) == repr(eager)
    model.load_state_dict(eager.state_dict())
    steps = torch.randn(3, 4, 7)
    torch.testing.assert_close(model(steps), eager(steps))


def test_a_lazy_root_and_named_inputs() -> None:
    layer = fl.Linear(out_features=3)
    assert materialize(layer, (2, 5)).output == dims.Shape([2, 3])
    assert layer.in_features == 5
    assert layer(torch.zeros(2, 5)).shape == (2, 3)

    attention = fl.MultiHeadAttention(embed_dim=8, num_heads=2, key_dim=6)
    attention.replace("output", fl.Linear(out_features=8))  # a lazy child inside a Chain with its own rule
    materialize(attention, query=("B", "T", 8), key=("B", "S", 6))
    assert attention["output"].in_features == 8


def test_materialized_layers_draw_the_same_random_values_as_eager_ones() -> None:
    for build_lazy, build_eager, shape in [
        (lambda: fl.Linear(out_features=4), lambda: fl.Linear(6, 4), (2, 6)),
        (lambda: fl.Conv2d(out_channels=4, kernel_size=3), lambda: fl.Conv2d(3, 4, 3), (1, 3, 5, 5)),
        (lambda: fl.ConvTranspose2d(out_channels=4, kernel_size=2), lambda: fl.ConvTranspose2d(3, 4, 2), (1, 3, 5, 5)),
    ]:
        lazy = build_lazy()
        torch.manual_seed(0)
        materialize(lazy, shape)
        torch.manual_seed(0)
        eager = build_eager()
        for (name, value), expected in zip(lazy.state_dict().items(), eager.state_dict().values(), strict=True):
            assert torch.equal(value, expected), name


def test_materialize_twice_changes_nothing_more() -> None:
    model = cnn(lazy=True)
    materialize(model, ("B", 3, 32, 32))
    before = dict(model.named_parameters())
    report = materialize(model, (1, 3, 32, 32))
    assert report.output == dims.Shape([1, 10])
    assert all(after is before[name] for name, after in model.named_parameters())


def test_copies_of_a_lazy_model_materialize_on_their_own() -> None:
    model = cnn(lazy=True)
    copies = [copy.deepcopy(model), model.structural_copy()]
    for twin in copies:
        materialize(twin, (1, 3, 32, 32))
        assert tensors(twin) == tensors(cnn(lazy=False))
    assert model.state_dict() == {}
    assert model.head.Linear_1.lazy


def test_inference_on_a_lazy_model_changes_nothing() -> None:
    model = cnn(lazy=True)
    text = repr(model)
    lazy_report, eager_report = shapes.infer(model, ("B", 3, 32, 32)), shapes.infer(cnn(False), ("B", 3, 32, 32))
    assert [(address, lazy_report[address]) for address in lazy_report] == [
        (address, eager_report[address]) for address in eager_report
    ]
    assert repr(model) == text
    assert model.state_dict() == {}
    assert "Linear(in_features=?, out_features=64, bias=True)  → (B, 64)" in str(lazy_report)


# -- device and dtype -------------------------------------------------------------------------------


def test_materialize_on_meta_creates_meta_parameters() -> None:
    model = fl.Chain(fl.Conv2d(out_channels=8, kernel_size=3, device="meta"), fl.Flatten(), fl.Linear(out_features=10))
    with torch.device("meta"):
        model.append(fl.LayerNorm())  # the device context counts, as for an eager layer
    model.Linear.to("meta")  # and so does .to() before materialize
    materialize(model, ("B", 3, 6, 6))
    assert {(name, value.device.type) for name, value in model.state_dict().items() if "Linear" not in name} == {
        ("Conv2d.weight", "meta"),
        ("Conv2d.bias", "meta"),
        ("LayerNorm.weight", "meta"),
        ("LayerNorm.bias", "meta"),
    }
    assert model.Linear.weight.shape == (10, 128)
    assert model.Linear.device.type == "meta"


# -- a lazy layer's rule (its refusals and repr: tests/layers/test_lazy.py) ------------------------


def test_the_rule_of_a_lazy_layer_checks_what_it_can() -> None:
    with pytest.raises(shapes.ShapeError, match="Conv2d expects input channels divisible by groups=2, got 3"):
        shapes.infer(fl.Chain(fl.Conv2d(out_channels=4, kernel_size=1, groups=2)), ("B", 3, 4, 4))
    with pytest.raises(shapes.ShapeError, match="GroupNorm expects channels at dim 1 divisible by 4"):
        shapes.infer(fl.Chain(fl.GroupNorm(4)), ("B", 6, 5))
    with pytest.raises(shapes.ShapeError, match="BatchNorm2d expects a 4D input"):
        shapes.infer(fl.Chain(fl.BatchNorm2d()), ("B", 6, 5))
    with pytest.raises(shapes.ShapeError, match="Linear needs dimension -1"):
        shapes.infer(fl.Chain(fl.Linear(out_features=2)), ())


# -- failures change nothing ------------------------------------------------------------------------


def snapshot(model: torch.nn.Module) -> tuple[str, list[tuple[str, Any]], list[bool]]:
    layers = [module for module in model.modules() if isinstance(module, Inferable)]
    return repr(model), list(model.state_dict().items()), [layer.lazy for layer in layers]


def test_a_symbolic_input_side_size_fails_and_changes_nothing() -> None:
    model = cnn(lazy=True)
    before = snapshot(model)
    with pytest.raises(shapes.ShapeError) as caught:
        materialize(model, ("B", 3, "H", "W"))  # the convolutions could, the head's Linear cannot
    assert str(caught.value) == (
        "Linear at 'head.Linear_1' needs its in_features as a number, "
        "got 32*ceil((H - 1)/4)*ceil((W - 1)/4): give H and W as numbers"
    )
    assert caught.value.address == "head.Linear_1"
    assert snapshot(model) == before
    assert all(layer.lazy for layer in model.modules() if isinstance(layer, Inferable))


def test_every_problem_is_listed() -> None:
    model = fl.Chain(fl.Conv1d(out_channels=4, kernel_size=1), fl.Linear(out_features=2), fl.LayerNorm())
    with pytest.raises(shapes.ShapeError) as caught:
        materialize(model, ("B", "C", "T"))
    assert str(caught.value) == (
        "2 lazy layers cannot be materialized (nothing was changed):\n"
        "  - Conv1d at 'Conv1d' needs its in_channels as a number, got C: give C as a number\n"
        "  - Linear at 'Linear' needs its in_features as a number, got T: give T as a number"
    )
    assert caught.value.address == "Conv1d"
    assert model.LayerNorm.lazy
    assert model.Conv1d.lazy


def test_an_inference_failure_changes_nothing() -> None:
    model = fl.Chain(fl.Linear(out_features=8), fl.Linear(4, 2))
    with pytest.raises(shapes.ShapeError, match="Linear expects last dim 4, got 8"):
        materialize(model, ("B", 3))
    assert model.Linear_1.lazy
    assert model.state_dict().keys() == {"Linear_2.weight", "Linear_2.bias"}


def test_a_lazy_layer_that_inference_never_reaches_is_a_failure() -> None:
    class FirstOnly(fl.Chain):
        """Runs only its first child (its rule says so too)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self[0](x)

        def output_shape(self, *inputs: dims.ShapeValue) -> dims.ShapeValue:
            return dims.run(self[0], *inputs)

    model = FirstOnly(fl.Linear(out_features=3), spare=fl.Linear(out_features=5))
    with pytest.raises(shapes.ShapeError, match="Linear at 'spare' was not reached by shape inference"):
        materialize(model, (2, 4))
    assert model.Linear.lazy


def test_a_failure_while_creating_parameters_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    model = fl.Chain(fl.Linear(out_features=3), fl.Linear(out_features=2))
    original = fl.Linear.reset_parameters

    def failing(self: fl.Linear) -> None:
        if self.out_features == 2:
            raise RuntimeError("out of memory")
        original(self)

    monkeypatch.setattr(fl.Linear, "reset_parameters", failing)
    with pytest.raises(shapes.ShapeError, match="Linear at 'Linear_2' cannot be built with in_features=3: Runtime"):
        materialize(model, (1, 4))
    assert model.Linear_1.lazy
    assert model.state_dict() == {}


# -- property: lazy then materialized equals eager --------------------------------------------------


@dataclass
class Case:
    """A layer kind with its options; ``size`` is the input-side size left out of the lazy build."""

    build: Callable[..., torch.nn.Module]
    name: str
    size: int
    options: dict[str, Any]
    input: tuple[int, ...]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["Linear", "Conv", "ConvTranspose2d", "LayerNorm", "RMSNorm", "GroupNorm", "Batch"]))
    small = st.integers(1, 4)
    batch = draw(st.integers(2, 3))
    if kind == "Linear":
        size = draw(small)
        options = {"out_features": draw(small), "bias": draw(st.booleans())}
        leading = draw(st.lists(st.integers(1, 3), max_size=2))
        return Case(fl.Linear, "in_features", size, options, (batch, *leading, size))
    if kind in ("Conv", "ConvTranspose2d"):
        spatial = 2 if kind == "ConvTranspose2d" else draw(st.integers(1, 3))
        groups = draw(st.integers(1, 3))
        size = groups * draw(small)
        kernel = draw(st.integers(1, 3))
        stride = draw(st.integers(1, 2))
        options = {
            "out_channels": groups * draw(small),
            "kernel_size": kernel,
            "stride": stride,
            "groups": groups,
            "bias": draw(st.booleans()),
        }
        if kind == "Conv":
            build = {1: fl.Conv1d, 2: fl.Conv2d, 3: fl.Conv3d}[spatial]
            options["padding"] = draw(st.sampled_from(["same", 0, 1])) if stride == 1 else draw(st.sampled_from([0, 1]))
            options["padding_mode"] = draw(st.sampled_from(["zeros", "circular"]))
        else:
            build = fl.ConvTranspose2d
        return Case(build, "in_channels", size, options, (batch, size, *[kernel + 2] * spatial))
    if kind in ("LayerNorm", "RMSNorm"):
        size = draw(st.integers(2, 5))
        options: dict[str, Any] = {"elementwise_affine": draw(st.booleans())}
        if kind == "LayerNorm":
            options["bias"] = draw(st.booleans())
        return Case(getattr(fl, kind), "normalized_shape", size, options, (batch, draw(small), size))
    if kind == "GroupNorm":
        groups = draw(small)
        size = groups * draw(small)
        options = {"num_groups": groups, "affine": draw(st.booleans()), "bias": draw(st.booleans())}
        return Case(fl.GroupNorm, "num_channels", size, options, (batch, size, draw(st.integers(2, 3))))
    spatial = draw(st.sampled_from([1, 2]))
    size = draw(small)
    options = {
        "affine": draw(st.booleans()),
        "track_running_stats": draw(st.booleans()),
        "momentum": draw(st.sampled_from([0.1, None])),
        "bias": draw(st.booleans()),
    }
    build = fl.BatchNorm1d if spatial == 1 else fl.BatchNorm2d
    return Case(build, "num_features", size, options, (batch, size, *[draw(st.integers(1, 3))] * spatial))


@EXAMPLES
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")
@given(case=cases(), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_a_lazily_built_layer_materializes_into_the_eager_one(case: Case, dtype: torch.dtype) -> None:
    lazy = fl.Chain(case.build(**case.options, dtype=dtype))
    eager = fl.Chain(case.build(**{case.name: case.size}, **case.options, dtype=dtype))
    report = materialize(lazy, ("B", *case.input[1:]))
    assert report.output == shapes.infer(eager, ("B", *case.input[1:])).output
    assert tensors(lazy) == tensors(eager)
    assert repr(lazy) == repr(eager)
    assert [key for key in vars(lazy[0]) if key != "_fluxion_inferred"] == list(vars(eager[0]))
    assert lazy[0].__dict__["_fluxion_inferred"] == {case.name: getattr(eager[0], case.name)}  # for spec.dump
    lazy.load_state_dict(eager.state_dict())
    data = torch.randn(case.input, dtype=dtype)
    torch.testing.assert_close(lazy(data), eager(data))


# -- composite lazy layers and layers that run more than once ---------------------------------------


@pytest.mark.parametrize("cross", [False, True])
def test_a_lazy_multi_head_attention_materializes_into_the_eager_one(cross: bool) -> None:
    inputs = [("B", "T", 8), ("B", "S", 6)] if cross else [("B", "T", 8)]
    torch.manual_seed(0)
    lazy = fl.Chain(fl.MultiHeadAttention(num_heads=2, is_causal=not cross), fl.Linear(out_features=3))
    report = materialize(lazy, *inputs)
    torch.manual_seed(0)
    key_dim = 6 if cross else None
    eager = fl.Chain(fl.MultiHeadAttention(8, num_heads=2, key_dim=key_dim, is_causal=not cross), fl.Linear(8, 3))
    assert repr(lazy) == repr(eager)
    assert [(name, p.shape) for name, p in lazy.named_parameters()] == [
        (name, p.shape) for name, p in eager.named_parameters()
    ]
    assert report["MultiHeadAttention.projections.query"].output == dims.Shape(["B", "T", 8])  # children reported
    lazy.load_state_dict(eager.state_dict())
    tensors = [torch.randn(2, 5, 8)] + ([torch.randn(2, 7, 6)] if cross else [])
    assert torch.equal(lazy(*tensors), eager(*tensors))


def test_a_lazy_multi_head_attention_refuses_to_run_and_needs_divisible_features() -> None:
    attention = fl.MultiHeadAttention(num_heads=3)
    with pytest.raises(fl.ChainError, match=r"has no embed_dim yet: call fluxion\.shapes\.materialize"):
        attention(torch.randn(1, 2, 6))
    with pytest.raises(dims.ShapeError, match="divisible by num_heads=3"):
        materialize(attention, ("B", "T", 8))
    assert attention.lazy
    assert [name for name, _ in attention.named_children()] == ["attention"]
    with pytest.raises(dims.ShapeError, match="needs its embed_dim as a number, got E"):
        materialize(attention, ("B", "T", "E"))


class Twice(fl.Chain):
    """Runs its only child twice in a row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[0](self[0](x))

    def output_shape(self, x: dims.ShapeValue) -> dims.ShapeValue:
        return dims.run(self[0], dims.run(self[0], x))


def test_a_node_run_twice_keeps_both_calls_in_the_report() -> None:
    model = fl.Chain(Twice(fl.Linear(4, 4)))
    report = shapes.infer(model, ("B", 4))
    assert [call.output for call in report["Twice.Linear"].calls] == [dims.Shape(["B", 4])] * 2
    assert "(called 2 times)" in str(report)


def test_a_lazy_layer_run_twice_with_disagreeing_inputs_is_refused() -> None:
    model = fl.Chain(Twice(fl.Linear(out_features=4)))
    with pytest.raises(
        dims.ShapeError, match=r"runs 2 times with inputs that disagree: in_features=3 .* in_features=4"
    ):
        materialize(model, ("B", 3))
    assert model.Twice.Linear.lazy
    materialize(model, ("B", 4))  # both calls see 4 features
    assert model(torch.randn(2, 4)).shape == (2, 4)


def test_a_lazy_multi_head_attention_follows_dtype_changes_before_materialize() -> None:
    model = fl.Chain(fl.Linear(out_features=8), fl.MultiHeadAttention(num_heads=2)).to(torch.float64)
    materialize(model, ("B", "T", 4))
    assert model["MultiHeadAttention.projections.query"].weight.dtype == torch.float64
    assert model(torch.randn(2, 3, 4, dtype=torch.float64)).dtype == torch.float64


class OwnForward(fl.Chain):
    """A Chain subclass with its own forward and no rule: evaluated on meta."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[1](self[0](x))


def test_a_node_evaluated_on_meta_leaves_no_context_and_names_lazy_layers_inside() -> None:
    model = fl.Chain(OwnForward(fl.SetContext("ctx", "skip"), fl.Linear(4, 4)), fl.Linear(4, 2))
    shapes.infer(model, (2, 4))
    assert model.use_context("ctx") == {}
    lazy = fl.Chain(OwnForward(fl.Identity(), fl.Linear(out_features=4)))
    with pytest.raises(dims.ShapeError, match="has no shape rule, so the sizes left out inside it"):
        materialize(lazy, (2, 4))
