"""Shape rules of the spatial layers (convolutions, pools, norms, resampling) against torch's forward.

Each test draws a random layer configuration and a random input shape. With numbers, the rule
(through ``shapes.infer``) must give the forward's output shape, and refuse with a ShapeError exactly
when the forward fails (where torch skips its checks for empty tensors, the rules still refuse what
fails on non-empty ones). Then some of the sizes become symbols (``H``, or ``2*H + 1``...): the rule's
expressions, evaluated at the drawn values, must give the forward's shape there, with every recorded
constraint holding; a rule that refuses the symbolic shape refuses for every value, so the forward
must fail at the drawn ones too.
"""

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes
from tests.shapes.helpers import evaluate, number

EXAMPLES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SizeSpec = tuple[int, int] | None
"""How one dim is made symbolic: ``(coef, offset)`` for ``coef * S + offset``, or None for a number."""


@dataclass(frozen=True)
class Builder:
    """Builds a fresh layer for each use (a layer belongs to one Chain); its repr shows the configuration."""

    factory: Callable[..., torch.nn.Module]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict[str, Any])
    training: bool = True

    def __call__(self) -> torch.nn.Module:
        return self.factory(*self.args, **self.kwargs).train(self.training)


# -- running the forward and the rule -----------------------------------------------------------------


def forward_shape(layer: torch.nn.Module, shape: Sequence[int], *extra: Any) -> Any:
    """The forward's output shape (a tuple, or a tuple of them), or None when torch refuses."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # e.g. torch's note on padding="same" with even kernels
        try:
            output = layer(torch.zeros(tuple(shape)), *extra)
        except (RuntimeError, ValueError, NotImplementedError, TypeError, IndexError):
            return None
    if isinstance(output, tuple):
        return tuple(tuple(item.shape) for item in output)
    return tuple(output.shape)


def rule_report(layer: torch.nn.Module, *input_shapes: Sequence[dims.DimLike]) -> shapes.ShapeReport | None:
    """``shapes.infer`` on ``Chain(layer)``, or None when it refuses (on purpose, not by a crash)."""
    try:
        return shapes.infer(fl.Chain(layer), *input_shapes)
    except shapes.ShapeError as error:
        refusal = error
    assert "its shape rule failed" not in str(refusal), str(refusal)
    assert refusal.address == type(layer).__name__
    return None


def check(
    build: Builder, shape: Sequence[int], specs: Sequence[SizeSpec], *extra_shape: int, empty_refused: bool = False
) -> None:
    """The rule against the forward, with numbers and then with ``specs`` making some sizes symbolic.

    ``extra_shape`` is a second input given as a Shape of numbers (Interpolate's size). With
    ``empty_refused``, the rule may refuse what torch turns into an empty output.
    """
    extra = (tuple(extra_shape),) if extra_shape else ()
    try:
        build()
    except fl.LayerError:
        event("refused at construction")  # tests/integration/test_rules_match_forward.py checks those
        return
    expected = forward_shape(build(), shape, *extra)
    if empty_refused and expected is not None and 0 in expected[len(expected) - 2 :]:
        expected = None
    report = rule_report(build(), shape, *extra)
    event("numbers: torch fails" if expected is None else "numbers: torch succeeds")
    if report is None:
        check_refusal(build, shape, expected, *extra)
    else:
        assert expected is not None, f"torch refused {shape}, the rule gave {report.output}"
        assert evaluate(report.output, {}) == expected
        assert report.constraints == ()

    symbolic, values = symbolize(shape, specs)
    if not values:
        return
    report = rule_report(build(), symbolic, *extra)
    if report is None:
        event("symbols: refused")
        check_refusal(build, shape, expected, *extra)  # a refusal of symbols holds for every value
    elif expected is not None:  # where the forward fails, a rule for symbols cannot always tell
        event("symbols: compared" + (" (with constraints)" if report.constraints else ""))
        assert evaluate(report.output, values) == expected, f"{report.output} at {values}"
        for constraint in report.constraints:
            assert number(constraint.first, values) == number(constraint.second, values), str(constraint)


def check_refusal(build: Builder, shape: Sequence[int], expected: Any, *extra: Any) -> None:
    """The rule refused ``shape``: so must torch, except that torch skips some checks on empty
    tensors, where the rules refuse what fails on non-empty ones."""
    if expected is None:
        return
    assert 0 in shape, f"the rule refused {shape}, torch gave {expected}"
    non_empty = [size or 1 for size in shape]
    assert forward_shape(build(), non_empty, *extra) is None, f"the rule refused {shape}, torch gave {expected}"


def symbolize(shape: Sequence[int], specs: Sequence[SizeSpec]) -> tuple[list[dims.DimLike], dict[str, int]]:
    """``shape`` with each size that has a spec written ``coef * S + offset`` in its own symbol ``S``.

    The symbol's value is chosen so that the expression equals the size; a spec that cannot reach
    the size with a positive value leaves the number.
    """
    names = iter(("A", "B", "C", "D", "E", "F"))
    symbolic: list[dims.DimLike] = []
    values: dict[str, int] = {}
    for size, spec in zip(shape, specs, strict=True):
        name = next(names)
        if spec is None:
            symbolic.append(size)
            continue
        coef, offset = spec
        value, remainder = divmod(size - offset, coef)
        if value < 1 or remainder:
            symbolic.append(size)
            continue
        symbolic.append(coef * dims.dim(name) + offset if (coef, offset) != (1, 0) else name)
        values[name] = value
    return symbolic, values


def specs_for(rank: int) -> st.SearchStrategy[list[SizeSpec]]:
    """For each dim: a number, the plain symbol, or ``coef * S + offset``."""
    spec = st.one_of(
        st.none(),
        st.just((1, 0)),
        st.tuples(st.integers(1, 4), st.integers(0, 3)),
    )
    return st.lists(spec, min_size=rank, max_size=rank)


def pair_or_int(values: st.SearchStrategy[int]) -> st.SearchStrategy[int | tuple[int, int]]:
    return values | st.tuples(values, values)


def mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], odds: int = 7) -> st.SearchStrategy[Any]:
    """``common``, and one time in ``odds + 1`` ``rare`` (an edge case, a mismatch)."""
    return st.sampled_from([common] * odds + [rare]).flatmap(lambda strategy: strategy)


def sizes(high: int, count: int | None = None) -> st.SearchStrategy[Any]:
    """A size from 1 to ``high``, now and then 0 (or a list of ``count`` of them)."""
    size = mostly(st.integers(1, high), st.just(0), odds=15)
    return size if count is None else st.lists(size, min_size=count, max_size=count)


BATCH = st.sampled_from([[], [1], [2], [2], [0]])
"""No batch dim (an unbatched input), a batch dim, sometimes empty."""


# -- convolutions ------------------------------------------------------------------------------------

CONVS: dict[int, Callable[..., torch.nn.Module]] = {1: fl.Conv1d, 2: fl.Conv2d, 3: fl.Conv3d}


@st.composite
def conv_cases(draw: st.DrawFn) -> tuple[Builder, list[int], list[SizeSpec]]:
    spatial = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.sampled_from([1, 2]))
    in_channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = draw(st.lists(st.integers(1, 4), min_size=spatial, max_size=spatial))
    padding: Any = draw(
        st.sampled_from(["same", "valid"])
        | st.integers(0, 3)
        | st.lists(st.integers(0, 3), min_size=spatial, max_size=spatial).map(tuple)
    )
    options = {
        "stride": 1 if padding == "same" else draw(st.integers(1, 3) | st.just(tuple(range(1, spatial + 1)))),
        "padding": padding,
        "dilation": tuple(draw(st.lists(st.integers(1, 2), min_size=spatial, max_size=spatial))),
        "groups": groups,
        "padding_mode": draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"])),
    }
    build = Builder(CONVS[spatial], (in_channels, out_channels, tuple(kernel)), options)
    batch = draw(BATCH)
    channels = draw(mostly(st.just(in_channels), st.just(in_channels + 1)))
    shape = [
        *batch,
        channels,
        *draw(st.lists(st.integers(1, 10 if spatial < 3 else 6), min_size=spatial, max_size=spatial)),
    ]
    specs = draw(specs_for(len(shape)))
    specs[len(batch)] = None  # the channels stay a number, to be checked
    return build, shape, specs


@EXAMPLES
@given(case=conv_cases())
def test_conv_rules_match_torch(case: tuple[Builder, list[int], list[SizeSpec]]) -> None:
    check(*case)


@st.composite
def conv_transpose_cases(draw: st.DrawFn) -> tuple[Builder, list[int], list[SizeSpec]]:
    groups = draw(st.sampled_from([1, 2]))
    in_channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    options = {
        "kernel_size": draw(pair_or_int(st.integers(1, 4))),
        "stride": draw(pair_or_int(st.integers(1, 3))),
        "padding": draw(pair_or_int(st.integers(0, 2))),
        "dilation": draw(pair_or_int(st.integers(1, 3))),
        "output_padding": draw(mostly(st.just(0), pair_or_int(st.integers(0, 2)))),
        "groups": groups,
    }
    build = Builder(fl.ConvTranspose2d, (in_channels, out_channels), options)
    batch = draw(BATCH)
    channels = draw(mostly(st.just(in_channels), st.just(in_channels + 1)))
    shape = [*batch, channels, *draw(st.lists(st.integers(1, 8), min_size=2, max_size=2))]
    specs = draw(specs_for(len(shape)))
    specs[len(batch)] = None
    return build, shape, specs


@EXAMPLES
@given(case=conv_transpose_cases())
def test_conv_transpose_rule_matches_torch(case: tuple[Builder, list[int], list[SizeSpec]]) -> None:
    # torch's CPU kernels differ on an empty output (batch 1 refused, batch 2 or groups given one): refused
    check(*case, empty_refused=True)


# -- pools ---------------------------------------------------------------------------------------------


@st.composite
def pool_cases(draw: st.DrawFn) -> tuple[Builder, list[int], list[SizeSpec]]:
    kind = draw(st.sampled_from(["max", "avg", "adaptive-avg", "adaptive-max"]))
    spatial = draw(st.sampled_from([1, 2] if kind.startswith("adaptive") else [1, 2, 3]))

    def per_axis(values: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
        return values | st.lists(values, min_size=spatial, max_size=spatial).map(tuple)

    kernel = per_axis(st.integers(1, 4))
    stride = st.none() | per_axis(st.integers(1, 5))
    padding = mostly(per_axis(st.integers(0, 1)), per_axis(st.integers(0, 2)))
    build: Builder
    if kind == "max":
        options: dict[str, Any] = {
            "kernel_size": draw(kernel),
            "stride": draw(stride),
            "padding": draw(padding),
            "dilation": draw(per_axis(st.integers(1, 3))),
            "ceil_mode": draw(st.booleans()),
            "return_indices": draw(st.booleans()),
        }
        build = Builder({1: fl.MaxPool1d, 2: fl.MaxPool2d, 3: fl.MaxPool3d}[spatial], (), options)
    elif kind == "avg":
        options = {
            "kernel_size": draw(kernel),
            "stride": draw(stride),
            "padding": draw(padding),
            "ceil_mode": draw(st.booleans()),
            "count_include_pad": draw(st.booleans()),
        }
        build = Builder({1: fl.AvgPool1d, 2: fl.AvgPool2d, 3: fl.AvgPool3d}[spatial], (), options)
    else:
        target = (st.none() if spatial > 1 else st.nothing()) | sizes(4)
        output_size = draw(st.integers(1, 4) | st.lists(target, min_size=spatial, max_size=spatial).map(tuple))
        if kind == "adaptive-avg":
            build = Builder({1: fl.AdaptiveAvgPool1d, 2: fl.AdaptiveAvgPool2d}[spatial], (output_size,))
        else:
            layer = {1: fl.AdaptiveMaxPool1d, 2: fl.AdaptiveMaxPool2d}[spatial]
            build = Builder(layer, (output_size,), {"return_indices": draw(st.booleans())})
    shape = [*draw(BATCH), draw(sizes(3)), *draw(sizes(12, spatial))]
    return build, shape, draw(specs_for(len(shape)))


@EXAMPLES
@given(case=pool_cases())
def test_pool_rules_match_torch(case: tuple[Builder, list[int], list[SizeSpec]]) -> None:
    check(*case)


# -- norms ---------------------------------------------------------------------------------------------


@st.composite
def norm_cases(draw: st.DrawFn) -> tuple[Builder, list[int], list[SizeSpec]]:
    kind = draw(st.sampled_from(["layer", "rms", "group", "batch1d", "batch2d"]))
    build: Builder
    if kind in ("layer", "rms"):
        normalized = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2))
        layer_class = fl.LayerNorm if kind == "layer" else fl.RMSNorm
        build = Builder(layer_class, (normalized,), {"elementwise_affine": draw(st.booleans())})
        trailing = draw(mostly(st.just(normalized), st.sampled_from([normalized[1:], [n + 1 for n in normalized]])))
        shape = [*draw(st.lists(sizes(3), max_size=2)), *trailing]
        specs = draw(specs_for(len(shape)))
        specs[len(shape) - len(trailing) :] = [None] * len(trailing)  # checked against normalized_shape
        return build, shape, specs
    if kind == "group":
        groups, per_group, affine = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.booleans())
        build = Builder(fl.GroupNorm, (groups, groups * per_group), {"affine": affine})
        channels = draw(mostly(st.just(groups * per_group), st.integers(1, 7)))
        shape = [draw(sizes(2)), channels, *draw(st.lists(sizes(4), max_size=2))][
            : draw(mostly(st.just(4), st.just(1)))
        ]
    else:
        features, affine, stats = draw(st.integers(1, 3)), draw(st.booleans()), draw(st.booleans())
        layer_class = fl.BatchNorm1d if kind == "batch1d" else fl.BatchNorm2d
        options = {"affine": affine, "track_running_stats": stats}
        build = Builder(layer_class, (features,), options, training=draw(st.booleans()))
        rank = draw(mostly(st.sampled_from([2, 3] if kind == "batch1d" else [4]), st.integers(1, 5)))
        channels = draw(mostly(st.just(features), st.just(features + 1)))
        shape = [draw(sizes(3)), channels, *draw(st.lists(sizes(3), min_size=3, max_size=3))][:rank]
    specs = draw(specs_for(len(shape)))
    if len(shape) > 1:
        specs[1] = None  # the channels stay a number, to be checked
    return build, shape, specs


@EXAMPLES
@given(case=norm_cases())
def test_norm_rules_match_torch(case: tuple[Builder, list[int], list[SizeSpec]]) -> None:
    check(*case)


# -- resampling ----------------------------------------------------------------------------------------

RANKS = {
    "nearest": [3, 4, 5],
    "nearest-exact": [3, 4, 5],
    "area": [3, 4, 5],
    "linear": [3],
    "bilinear": [4],
    "bicubic": [4],
    "trilinear": [5],
}
DYADIC = [0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
"""Factors that scale any size exactly in floating point: the rule gives a formula for symbols."""


@st.composite
def resampling_input(draw: st.DrawFn) -> tuple[str, bool | None, list[int]]:
    """A mode, an align_corners and an input shape, mostly that the mode takes."""
    mode = draw(st.sampled_from(list(RANKS)))
    interpolating = mode in ("linear", "bilinear", "bicubic", "trilinear")
    align_corners = draw(mostly(st.sampled_from([None, False, True] if interpolating else [None]), st.just(True)))
    rank = draw(mostly(st.sampled_from(RANKS[mode]), st.integers(2, 5)))
    shape = [draw(sizes(2)), draw(sizes(2)), *draw(st.lists(sizes(9), min_size=rank - 2, max_size=rank - 2))]
    return mode, align_corners, shape


@st.composite
def upsample_cases(draw: st.DrawFn) -> tuple[Builder, list[int], list[SizeSpec]]:
    mode, align_corners, shape = draw(resampling_input())
    spatial = draw(mostly(st.just(max(len(shape) - 2, 1)), st.integers(1, 3)))
    if draw(st.booleans()):
        size = draw(sizes(6) | sizes(6, spatial).map(tuple))
        options: dict[str, Any] = {"size": size, "recompute_scale_factor": draw(mostly(st.none(), st.just(True)))}
    else:
        factor = mostly(st.sampled_from(DYADIC), st.floats(0.1, 3.5))
        scale = draw(factor | st.lists(factor, min_size=spatial, max_size=spatial).map(tuple))
        options = {"scale_factor": scale, "recompute_scale_factor": draw(st.sampled_from([None, False, True]))}
    specs = draw(specs_for(len(shape)))
    scales = options.get("scale_factor", ())
    if any(value not in DYADIC for value in (scales if isinstance(scales, tuple) else [scales])):
        specs = [None] * len(shape)  # other factors have no formula for symbols
    return Builder(fl.Upsample, (), {"mode": mode, "align_corners": align_corners, **options}), shape, specs


@EXAMPLES
@given(case=upsample_cases())
def test_upsample_rule_matches_torch(case: tuple[Builder, list[int], list[SizeSpec]]) -> None:
    check(*case)


@st.composite
def interpolate_cases(draw: st.DrawFn) -> tuple[Builder, list[int], list[SizeSpec], list[int]]:
    mode, align_corners, shape = draw(resampling_input())
    spatial = draw(mostly(st.just(max(len(shape) - 2, 1)), st.integers(1, 3)))
    target = draw(st.lists(sizes(6), min_size=spatial, max_size=spatial))
    return Builder(fl.Interpolate, (mode, align_corners)), shape, draw(specs_for(len(shape))), target


@EXAMPLES
@given(case=interpolate_cases())
def test_interpolate_rule_matches_torch(case: tuple[Builder, list[int], list[SizeSpec], list[int]]) -> None:
    build, shape, specs, target = case
    check(build, shape, specs, *target)


@st.composite
def pixel_shuffle_cases(draw: st.DrawFn) -> tuple[Builder, list[int], list[SizeSpec]]:
    factor = draw(st.integers(1, 3))
    channels = draw(mostly(sizes(3).map(lambda k: k * factor * factor), sizes(5)))
    rank = draw(mostly(st.integers(3, 5), st.integers(1, 2)))
    shape = [*draw(st.lists(sizes(2), min_size=2, max_size=2)), channels, *draw(sizes(4, 2))][-rank:]
    return Builder(fl.PixelShuffle, (factor,)), shape, draw(specs_for(len(shape)))


@EXAMPLES
@given(case=pixel_shuffle_cases())
def test_pixel_shuffle_rule_matches_torch(case: tuple[Builder, list[int], list[SizeSpec]]) -> None:
    check(*case)


@st.composite
def pad_cases(draw: st.DrawFn) -> tuple[Builder, list[int], list[SizeSpec]]:
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    count = draw(mostly(st.integers(1, 3), st.just(4)))
    low = -3 if mode == "constant" else 0
    pad = tuple(draw(st.lists(st.integers(low, 4), min_size=2 * count, max_size=2 * count)))
    rank = draw(mostly(st.sampled_from([count + 1, count + 2]), st.integers(max(count - 1, 0), 6)))
    shape = draw(st.lists(sizes(5), min_size=rank, max_size=rank))
    return Builder(fl.Pad, (pad, mode)), shape, draw(specs_for(len(shape)))


@EXAMPLES
@given(case=pad_cases())
def test_pad_rule_matches_torch(case: tuple[Builder, list[int], list[SizeSpec]]) -> None:
    check(*case)


# -- what the rules say --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "shape", "message"),
    [
        (partial(fl.Conv2d, 3, 8, 3), ("B", 4, "H", "W"), "Conv2d expects 3 input channels, got 4"),
        (partial(fl.Conv1d, 2, 4, 3), ("B", 2, "L", 5), "Conv1d expects a 2D (unbatched) or 3D (batched) input"),
        (partial(fl.Conv2d, 3, 8, 5), ("B", 3, 4, "W"), "Conv2d expects a padded size of at least 5 at dim -2, got 4"),
        (partial(fl.ConvTranspose2d, 4, 2, 3), ("B", 3, "H", "W"), "ConvTranspose2d expects 4 input channels, got 3"),
        (partial(fl.LayerNorm, 8), ("B", "T", 9), "LayerNorm expects last dim 8, got 9"),
        (
            partial(fl.LayerNorm, (4, 8)),
            ("B", 5, 8),
            "LayerNorm expects size 4 at dim -2 (normalized_shape (4, 8)), got 5",
        ),
        (partial(fl.RMSNorm, 8), ("B", 7), "RMSNorm expects last dim 8, got 7"),
        (partial(fl.GroupNorm, 2, 4), ("B", 6, "H"), "GroupNorm expects 4 channels at dim 1, got 6"),
        (partial(fl.BatchNorm1d, 3), ("B", 4), "BatchNorm1d expects 3 channels at dim 1, got 4"),
        (partial(fl.BatchNorm2d, 3), ("B", 3, "H"), "BatchNorm2d expects a 4D input"),
        (partial(fl.BatchNorm1d, 3), (1, 3), "BatchNorm1d expects more than 1 value per channel when training"),
        (
            partial(fl.Upsample, scale_factor=2, mode="bilinear"),
            ("B", 3, "L"),
            "Upsample with mode 'bilinear' expects a 4D",
        ),
        (
            partial(fl.Upsample, scale_factor=0.7),
            ("B", 3, "H", "W"),
            "torch rounds float(size) * 0.7 in floating point",
        ),
        (partial(fl.PixelShuffle, 2), ("B", 6, "H", "W"), "PixelShuffle expects channels at dim -3 divisible by 4"),
    ],
)
def test_mismatches_name_the_layer_and_what_it_expects(
    build: Callable[[], torch.nn.Module], shape: tuple[dims.DimLike, ...], message: str
) -> None:
    layer = build()
    name = type(layer).__name__
    with pytest.raises(shapes.ShapeError, match="^" + name) as raised:
        shapes.infer(fl.Chain(fl.Identity(), layer), shape)
    assert raised.value.address == name
    assert message in str(raised.value)


def test_symbolic_sizes_keep_torch_formulas() -> None:
    model = fl.Chain(fl.Conv2d(3, 8, 3, stride=2, padding=1), fl.PixelShuffle(2), fl.Upsample(scale_factor=1.5))
    report = shapes.infer(model, ("B", 3, "H", 64))
    assert repr(report["Conv2d"].output) == "(B, 8, ceil(H/2), 32)"
    assert repr(report.output) == "(B, 2, 3*ceil(H/2), 96)"
    # in ceil_mode, a last window that would start in the padding is dropped: a Min for symbols
    pool = shapes.infer(fl.Chain(fl.MaxPool2d(2, stride=3, ceil_mode=True)), ("B", 8, "H", 64))
    assert repr(pool.output) == "(B, 8, Min(floor(H/3) + 1, ceil(H/3)), 22)"


def test_pixel_shuffle_records_that_symbolic_channels_divide() -> None:
    report = shapes.infer(fl.Chain(fl.PixelShuffle(2)), ("B", "C", "H", "W"))
    assert repr(report.output) == "(B, C/4, 2*H, 2*W)"  # read under the constraint
    assert [str(constraint) for constraint in report.constraints] == [
        "C must be divisible by 4 (PixelShuffle expects channels at dim -3 divisible by 4 (upscale_factor 2 "
        "squared), at 'PixelShuffle')"
    ]
    exact = shapes.infer(fl.Chain(fl.PixelShuffle(2)), ("B", 4 * dims.dim("K"), "H", "W"))
    assert repr(exact.output) == "(B, K, 2*H, 2*W)"
    assert exact.constraints == ()


def test_interpolate_takes_its_size_as_a_shape() -> None:
    model = fl.Chain(fl.Interpolate(mode="bilinear"))
    assert repr(shapes.infer(model, ("B", 3, "H", "W"), ("H2", 7)).output) == "(B, 3, H2, 7)"
    skip = torch.zeros(1, 3, 5, 5)
    unreadable = fl.Chain(fl.Parallel(fl.Identity(), fl.Lambda(lambda _: skip.shape[-2:])), fl.Interpolate())
    with pytest.raises(shapes.ShapeError, match="expects its size as a Shape of the target sizes"):
        shapes.infer(unreadable, (1, 3, 4, 4))
