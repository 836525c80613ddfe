"""fluxion.shapes.infer on whole models, checked against real forward passes at every node.

Three small networks built from fluxion layers: a ResNet-style network (basic blocks as
``Residual``, strided blocks as ``Sum(main, 1x1 shortcut)``, a bottleneck), a stack of pre-norm
transformer blocks (``Embedding``, ``Residual(LayerNorm, MultiHeadAttention)``, MLP residuals) and
a U-Net with ``SetContext``/``UseContext`` skips, plus one block whose two paths downsample by 4
in different steps. Each is inferred with symbolic sizes; for random values of the symbols, every
node's recorded input and output shapes, evaluated at those values, must equal what forward hooks
see on every module during a real forward pass, and what inference with the same numbers reports.
The U-Net's constraints must hold exactly for the sizes it works with: for any other size the
forward fails, and so does inference with those numbers.
"""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import shapes
from fluxion.dims import Shape
from fluxion.shapes.report import format_value
from tests.shapes.helpers import evaluate, number

EXAMPLES = settings(max_examples=20, deadline=None)

UNET_DEPTH = 3
MULTIPLE = 2**UNET_DEPTH
"""The U-Net halves its input ``UNET_DEPTH`` times: it works for sizes divisible by this."""

VOCABULARY = 50

Captured = tuple[Any, ...] | None
"""A value seen during a forward pass, as sizes: a tensor's shape, a tuple of them, or None."""


# -- evaluating a report at numbers, and what a real forward pass gives ------------------------------


def sizes_of(value: object) -> Captured:
    """What a forward pass gave, in the same terms as ``evaluate``."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    assert isinstance(value, tuple | list), f"unexpected value in a forward pass: {type(value).__name__}"
    return tuple(sizes_of(item) for item in value)


@contextmanager
def recording(model: torch.nn.Module) -> Iterator[dict[str, list[tuple[Captured, Captured]]]]:
    """Forward hooks on every module: ``address -> [(input sizes, output sizes)]``, one per call."""
    calls: dict[str, list[tuple[Captured, Captured]]] = {}

    def hook_for(address: str) -> Any:
        def hook(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
            calls.setdefault(address, []).append((sizes_of(args), sizes_of(output)))

        return hook

    handles = [module.register_forward_hook(hook_for(address)) for address, module in model.named_modules()]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def check_every_node(model: torch.nn.Module, report: shapes.ShapeReport, values: Mapping[str, int], x: Any) -> None:
    """The symbolic report at ``values``, a real forward pass on ``x`` and inference with the same
    numbers agree on every node's inputs and output."""
    with recording(model) as calls, torch.no_grad():
        model(x)
    addresses = [address for address, _ in model.named_modules()]
    assert set(calls) == set(addresses), f"modules never called: {set(addresses) - set(calls)}"
    numeric = shapes.infer(model, tuple(x.shape))
    assert list(report) == list(numeric) == addresses
    for address in addresses:
        [(inputs, output)] = calls[address]
        node = report[address]
        assert evaluate(node.output, values) == output, f"output of {address!r} at {dict(values)}"
        assert evaluate(node.inputs, values) == inputs, f"inputs of {address!r} at {dict(values)}"
        assert evaluate(numeric[address].output, {}) == output, f"numeric output of {address!r}"
        assert evaluate(numeric[address].inputs, {}) == inputs, f"numeric inputs of {address!r}"


def holds(constraint: shapes.Constraint, values: Mapping[str, int]) -> bool:
    return number(constraint.first, values) == number(constraint.second, values)


# -- the models --------------------------------------------------------------------------------------


def basic_block(inputs: int, outputs: int, stride: int) -> fl.Chain:
    """Two 3x3 convolutions; a ``Residual`` when shapes are kept, else a ``Sum`` with a 1x1 conv shortcut."""
    main = [
        fl.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
        fl.BatchNorm2d(outputs),
        fl.ReLU(),
        fl.Conv2d(outputs, outputs, 3, padding=1, bias=False),
        fl.BatchNorm2d(outputs),
    ]
    if stride == 1 and inputs == outputs:
        return fl.Chain(fl.Residual(*main), fl.ReLU())
    shortcut = fl.Chain(fl.Conv2d(inputs, outputs, 1, stride=stride, bias=False), fl.BatchNorm2d(outputs))
    return fl.Chain(fl.Sum(fl.Chain(*main), shortcut), fl.ReLU())


def bottleneck_block(inputs: int, width: int, stride: int) -> fl.Chain:
    """1x1, strided 3x3, 1x1 to ``4 * width`` channels, plus a 1x1 conv shortcut (as in ResNet-50)."""
    outputs = 4 * width
    main = fl.Chain(
        fl.Conv2d(inputs, width, 1, bias=False),
        fl.BatchNorm2d(width),
        fl.ReLU(),
        fl.Conv2d(width, width, 3, stride=stride, padding=1, bias=False),
        fl.BatchNorm2d(width),
        fl.ReLU(),
        fl.Conv2d(width, outputs, 1, bias=False),
        fl.BatchNorm2d(outputs),
    )
    shortcut = fl.Chain(fl.Conv2d(inputs, outputs, 1, stride=stride, bias=False), fl.BatchNorm2d(outputs))
    return fl.Chain(fl.Sum(main, shortcut), fl.ReLU())


def resnet() -> fl.Chain:
    """Stem, three stages (the last a bottleneck), global pooling and a classifier head; ``(B, 3, H, W)``."""
    return fl.Chain(
        stem=fl.Chain(
            fl.Conv2d(3, 8, 7, stride=2, padding=3, bias=False),
            fl.BatchNorm2d(8),
            fl.ReLU(),
            fl.MaxPool2d(3, stride=2, padding=1),
        ),
        stage1=fl.Chain(block0=basic_block(8, 8, 1), block1=basic_block(8, 8, 1)),
        stage2=fl.Chain(block0=basic_block(8, 16, 2), block1=basic_block(16, 16, 1)),
        stage3=fl.Chain(block0=bottleneck_block(16, 8, 2)),
        pool=fl.AdaptiveAvgPool2d(1),
        flatten=fl.Flatten(),
        head=fl.Linear(32, 10),
    )


def transformer(dim: int = 16, heads: int = 4, depth: int = 2) -> fl.Chain:
    """Token embedding, ``depth`` pre-norm blocks (causal self-attention, MLP), final norm and head; ``(B, T)``."""
    blocks = {
        f"block{index}": fl.Chain(
            attention=fl.Residual(fl.LayerNorm(dim), fl.MultiHeadAttention(dim, heads, is_causal=index % 2 == 0)),
            mlp=fl.Residual(fl.LayerNorm(dim), fl.Linear(dim, 4 * dim), fl.GeLU(), fl.Linear(4 * dim, dim)),
        )
        for index in range(depth)
    }
    return fl.Chain(
        embedding=fl.Embedding(VOCABULARY, dim),
        **blocks,
        norm=fl.LayerNorm(dim),
        head=fl.Linear(dim, VOCABULARY),
    )


def unet(depth: int = UNET_DEPTH, base: int = 4) -> fl.Chain:
    """Down levels (conv, skip stored, 2x2 max pool), a bottleneck, up levels (2x up-sampling by
    transposed convolution or ``Upsample``, the skip concatenated, conv); ``(B, 3, H, W)``."""
    channels = [base * 2**level for level in range(depth)]
    down: dict[str, fl.Chain] = {}
    previous = 3
    for level, width in enumerate(channels):
        down[f"level{level}"] = fl.Chain(
            fl.Conv2d(previous, width, 3, padding=1),
            fl.ReLU(),
            fl.SetContext("unet", f"skip{level}"),
            fl.MaxPool2d(2),
        )
        previous = width
    bottom = fl.Chain(fl.Conv2d(previous, 2 * previous, 3, padding=1), fl.ReLU())
    previous *= 2
    up: dict[str, fl.Chain] = {}
    for level in reversed(range(depth)):
        width = channels[level]
        upsample: torch.nn.Module = (
            fl.ConvTranspose2d(previous, width, 2, stride=2)
            if level % 2 == 0
            else fl.Chain(fl.Upsample(scale_factor=2), fl.Conv2d(previous, width, 1))
        )
        up[f"level{level}"] = fl.Chain(
            upsample,
            fl.Concatenate(fl.Identity(), fl.UseContext("unet", f"skip{level}"), dim=1),
            fl.Conv2d(2 * width, width, 3, padding=1),
            fl.ReLU(),
        )
        previous = width
    return fl.Chain(down=fl.Chain(**down), bottom=bottom, up=fl.Chain(**up), head=fl.Conv2d(previous, 2, 1))


IMAGE = ("B", 3, "H", "W")
TOKENS = ("B", "T")


@pytest.fixture(scope="module")
def resnet_model() -> fl.Chain:
    return resnet().eval()


@pytest.fixture(scope="module")
def transformer_model() -> fl.Chain:
    return transformer().eval()


@pytest.fixture(scope="module")
def unet_model() -> fl.Chain:
    return unet().eval()


# -- ResNet ------------------------------------------------------------------------------------------


@given(batch=st.integers(1, 3), height=st.integers(1, 64), width=st.integers(1, 64))
@EXAMPLES
def test_resnet_every_node_matches_a_real_forward(resnet_model: fl.Chain, batch: int, height: int, width: int) -> None:
    report = shapes.infer(resnet_model, IMAGE)
    assert report.output == Shape(["B", 10])
    assert report.constraints == ()  # main path and shortcut downsample alike: nothing to require
    values = {"B": batch, "H": height, "W": width}
    check_every_node(resnet_model, report, values, torch.randn(batch, 3, height, width))


def quartering_block() -> fl.Chain:
    """A block whose main path halves twice (two stride-2 convolutions) and whose shortcut quarters at
    once (a stride-4 1x1 convolution): both give ``floor((H - 1)/4) + 1`` rows, for every ``H``."""
    main = fl.Chain(
        fl.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
        fl.BatchNorm2d(8),
        fl.ReLU(),
        fl.Conv2d(8, 8, 3, stride=2, padding=1, bias=False),
        fl.BatchNorm2d(8),
    )
    shortcut = fl.Chain(fl.Conv2d(3, 8, 1, stride=4, bias=False), fl.BatchNorm2d(8))
    return fl.Chain(fl.Sum(main, shortcut), fl.ReLU())


@given(batch=st.integers(1, 3), height=st.integers(1, 64), width=st.integers(1, 64))
@EXAMPLES
def test_a_block_downsampling_in_two_steps_against_one_matches_a_real_forward(
    batch: int, height: int, width: int
) -> None:
    model = quartering_block().eval()
    report = shapes.infer(model, IMAGE)
    values = {"B": batch, "H": height, "W": width}
    assert all(holds(constraint, values) for constraint in report.constraints)
    check_every_node(model, report, values, torch.randn(batch, 3, height, width))


def test_a_block_downsampling_in_two_steps_against_one_needs_no_constraint() -> None:
    assert shapes.infer(quartering_block(), IMAGE).constraints == ()


# -- transformer ------------------------------------------------------------------------------------


@given(batch=st.integers(1, 3), length=st.integers(1, 16))
@EXAMPLES
def test_transformer_every_node_matches_a_real_forward(transformer_model: fl.Chain, batch: int, length: int) -> None:
    report = shapes.infer(transformer_model, TOKENS)
    assert report.output == Shape(["B", "T", VOCABULARY])
    assert report["block0.attention.MultiHeadAttention.projections"].output == (Shape(["B", "T", 16]),) * 3
    assert report.constraints == ()
    values = {"B": batch, "T": length}
    check_every_node(transformer_model, report, values, torch.randint(VOCABULARY, (batch, length)))


# -- U-Net -------------------------------------------------------------------------------------------


@given(batch=st.integers(1, 3), height=st.integers(1, 8), width=st.integers(1, 8))
@EXAMPLES
def test_unet_every_node_matches_a_real_forward_where_its_constraints_hold(
    unet_model: fl.Chain, batch: int, height: int, width: int
) -> None:
    report = shapes.infer(unet_model, IMAGE)
    values = {"B": batch, "H": MULTIPLE * height, "W": MULTIPLE * width}
    assert report.constraints
    assert all(holds(constraint, values) for constraint in report.constraints)
    assert evaluate(report.output, values) == (batch, 2, values["H"], values["W"])
    check_every_node(unet_model, report, values, torch.randn(batch, 3, values["H"], values["W"]))


def test_unet_constraints_hold_exactly_for_multiples_of_two_to_the_depth(unet_model: fl.Chain) -> None:
    report = shapes.infer(unet_model, IMAGE)
    by_symbol = {
        name: [c for c in report.constraints if {str(s) for s in (c.first - c.second).free_symbols} == {name}]
        for name in ("H", "W")
    }
    assert len(by_symbol["H"]) + len(by_symbol["W"]) == len(report.constraints)
    assert all(c.address.startswith("up.level") and c.address.endswith(".Concatenate") for c in report.constraints)
    for name, constraints in by_symbol.items():
        assert constraints, f"no constraint on {name}"
        for size in range(1, 4 * MULTIPLE + 1):
            works = all(holds(constraint, {name: size}) for constraint in constraints)
            assert works == (size % MULTIPLE == 0), f"{name} = {size}"


def test_unet_constraints_say_the_sizes_must_be_divisible_by_two_to_the_depth(unet_model: fl.Chain) -> None:
    texts = [str(constraint) for constraint in shapes.infer(unet_model, IMAGE).constraints]
    for name in ("H", "W"):
        assert any(text.startswith(f"{name} must be divisible by {MULTIPLE} (") for text in texts), texts


def first_broken_level(height: int, width: int) -> int:
    """The up level whose concatenation fails first (they run deepest first): where a size is odd."""
    return next(level for level in reversed(range(UNET_DEPTH)) if (height >> level) % 2 or (width >> level) % 2)


@given(
    batch=st.integers(1, 2),
    height=st.integers(MULTIPLE, 6 * MULTIPLE),
    width=st.integers(MULTIPLE, 6 * MULTIPLE),
)
@EXAMPLES
def test_unet_sizes_that_break_a_constraint_fail_in_forward_and_in_inference(
    unet_model: fl.Chain, batch: int, height: int, width: int
) -> None:
    if height % MULTIPLE == 0 and width % MULTIPLE == 0:
        height += 1 + height % 3  # never a multiple of 8 after adding 1..3 to one
    report = shapes.infer(unet_model, IMAGE)
    values = {"B": batch, "H": height, "W": width}
    assert not all(holds(constraint, values) for constraint in report.constraints)
    address = f"up.level{first_broken_level(height, width)}.Concatenate"
    with pytest.raises(fl.ChainError, match="Sizes of tensors must match") as failed, torch.no_grad():
        unet_model(torch.randn(batch, 3, height, width))
    assert failed.value.address == address
    assert isinstance(failed.value.__cause__, RuntimeError)
    with pytest.raises(shapes.ShapeError, match="Concatenate needs equal sizes outside dim 1") as refused:
        shapes.infer(unet_model, (batch, 3, height, width))
    assert refused.value.address == address


@pytest.mark.parametrize("height", range(1, MULTIPLE))
def test_unet_inputs_too_small_to_halve_depth_times_fail_in_forward_and_in_inference(
    unet_model: fl.Chain, height: int
) -> None:
    with pytest.raises(fl.ChainError) as failed, torch.no_grad():
        unet_model(torch.randn(1, 3, height, MULTIPLE))
    with pytest.raises(shapes.ShapeError) as refused:
        shapes.infer(unet_model, (1, 3, height, MULTIPLE))
    assert refused.value.address == failed.value.address
    assert refused.value.address.endswith(".MaxPool2d")


# -- the drawing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("build", "symbols"), [(resnet, IMAGE), (transformer, TOKENS), (unet, IMAGE)])
def test_the_report_draws_one_line_per_node_with_its_output_then_the_constraints(
    build: Any, symbols: tuple[Any, ...]
) -> None:
    model = build()
    report = shapes.infer(model, symbols)
    lines = str(report).splitlines()
    assert len(lines) == len(report) + len(report.constraints)
    for line, address in zip(lines, report, strict=False):
        assert line.endswith(f"  → {format_value(report[address].output)}"), (address, line)
        assert "×" not in line  # no neighbouring subtrees folded into one line
    assert lines[len(report) :] == [f"constraint: {constraint}" for constraint in report.constraints]
