"""Every registered layer's shape rule refuses what its forward refuses, and otherwise gives its shape.

A differential test over the whole spec registry: for each registered class, random specs (a node
with random but plausible constructor arguments, edge values among them: 0, negative sizes, nan,
dims out of range, odd modes) are loaded through ``fluxion.spec.loads`` with random concrete input
shapes (mostly ones that fit the arguments, some that do not). Whenever the load and
``shapes.infer`` accept, the real forward must run without error and give exactly the inferred
output shape(s); so whenever the forward fails, the load or the inference must have refused.

Arguments are drawn from each constructor's signature and annotations (``generic_arguments``), with
small tables of per-layer strategies where that is not enough (``ALWAYS``, ``ARGUMENTS``,
``ARGUMENT_SETS``), and inputs from a per-layer table of plausible shapes (``INPUTS``); Chains get
simple children. Each run draws both training and eval mode. The default run is quick; for a long one set
``FLUXION_RULE_EXAMPLES`` (examples per layer), e.g.
``FLUXION_RULE_EXAMPLES=300 .venv/bin/pytest -q tests/integration/test_rules_match_forward.py``.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import types
import typing
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import shapes, spec
from fluxion.layers.reduction import MANY_DIMS, ONE_DIM
from fluxion.spec import SpecError, registry
from tests.shapes.helpers import evaluate

EXAMPLES = int(os.environ.get("FLUXION_RULE_EXAMPLES", "10"))
"""Examples per registered layer (a few seconds for the whole registry by default)."""

InputKind = Literal["float", "index", "size"]


@dataclass(frozen=True)
class Input:
    """One input: a float tensor, an integer tensor of zeros (indices, masks), or a size (a tuple of ints)."""

    shape: tuple[int, ...]
    kind: InputKind = "float"

    def value(self) -> Any:
        if self.kind == "size":
            return self.shape
        dtype = torch.long if self.kind == "index" else torch.float32
        return torch.zeros(self.shape, dtype=dtype)


@dataclass(frozen=True)
class Case:
    """A spec document, the inputs it is loaded and called with, and the mode it runs in."""

    document: dict[str, Any]
    inputs: tuple[Input, ...]
    training: bool
    named: bool = False  # inputs by name (a Graph at the root)


# -- values ------------------------------------------------------------------------------------------

NAN, INF = math.nan, math.inf
SIZES = st.sampled_from([1, 2, 3, 4, 5, 6, 8, 0])
"""Input sizes: small, 0 at the far end (hypothesis favours the first values)."""
DIMS = st.integers(-6, 5)


def rarely(draw: st.DrawFn, odds: int = 8) -> bool:
    """True once in about ``odds`` draws."""
    return draw(st.integers(1, odds)) == odds


@st.composite
def mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any], unusual: st.SearchStrategy[Any], odds: int = 6) -> Any:
    """A value of ``usual``, or once in about ``odds`` draws one of ``unusual`` (the edge values)."""
    return draw(unusual) if rarely(draw, odds) else draw(usual)


COUNTS = mostly(st.sampled_from([1, 2, 3, 4, 5, 8]), st.sampled_from([0, -1, 16]))
"""Constructor sizes and counts: plausible, and at the edges 0, a negative one and a large one."""
FLOATS = mostly(st.sampled_from([0.0, 0.5, 0.1, 1.0, 2.0, 1e-5]), st.sampled_from([-0.5, 1.5, NAN, INF, -INF]))
"""Constructor floats: plausible, and at the edges a negative one, above 1, nan and infinities."""


def axes_of(count: int, values: st.SearchStrategy[Any] = COUNTS) -> st.SearchStrategy[Any]:
    """A per-axis argument: an int or a list of ``count``, and at the edges a list of another length."""
    return mostly(st.one_of(values, st.lists(values, min_size=count, max_size=count)), st.lists(values, max_size=4))


def sized(value: Any, fallback: int = 3) -> int:
    """``value`` when it is a plausible size (a non-negative int), else ``fallback``."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 16 else fallback


def fit(draw: st.DrawFn, wanted: Any) -> int:
    """An input size: mostly ``wanted`` (when it is a plausible size), sometimes any size."""
    if isinstance(wanted, int) and not isinstance(wanted, bool) and 0 <= wanted <= 16 and not rarely(draw):
        return wanted
    return draw(SIZES)


def shape(draw: st.DrawFn, rank: int) -> list[int]:
    return [draw(SIZES) for _ in range(rank)]


def ranks(draw: st.DrawFn, usual: Sequence[int], low: int = 0, high: int = 5) -> int:
    """A rank among ``usual``, or (rarely) any rank from ``low`` to ``high``."""
    return draw(st.integers(low, high)) if rarely(draw) else draw(st.sampled_from(list(usual)))


def spoiled(draw: st.DrawFn, sizes: list[int]) -> list[int]:
    """``sizes``, or rarely one of them replaced by another size."""
    if sizes and rarely(draw):
        sizes = list(sizes)
        sizes[draw(st.integers(0, len(sizes) - 1))] = draw(SIZES)
    return sizes


def one(sizes: Sequence[int], kind: InputKind = "float") -> tuple[Input, ...]:
    return (Input(tuple(sizes), kind),)


# -- arguments from the signature ---------------------------------------------------------------------

SKIPPED = {"self", "device", "dtype", "_weight", "_freeze", "callback", "func"}
STRINGS = st.sampled_from(["none", "tanh", "nearest", "bilinear", "same", "valid", "x", ""])


def strategy_for(hint: Any, optional: bool = True) -> st.SearchStrategy[Any] | None:
    """JSON values for an annotation (tuples as lists), edge values included; None for what a spec
    cannot give. Without ``optional``, an optional annotation gives no null."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        members = [strategy_for(argument) for argument in arguments if optional or argument is not type(None)]
        usable = [member for member in members if member is not None]
        return st.one_of(usable) if usable else None
    if origin is Literal:
        return mostly(st.sampled_from(arguments), st.just("odd"))
    if hint is type(None):
        return st.none()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return COUNTS
    if hint is float:
        return FLOATS
    if hint is str:
        return STRINGS
    if hint is torch.Size or origin in (tuple, list):
        found = strategy_for(arguments[0]) if arguments else None
        item = COUNTS if found is None else found
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            return axes_of(len(arguments), item)
        return st.lists(item, min_size=1, max_size=3)
    return None


def signature_of(cls: type) -> tuple[inspect.Signature, dict[str, Any]]:
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:
        hints = {}
    return inspect.signature(cls), hints


@st.composite
def generic_arguments(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """Arguments for ``name``'s constructor from its annotations (``ARGUMENTS`` where given): each
    required one and those in ``ALWAYS``, and about a third of the others."""
    cls = fl.__dict__[name]
    signature, hints = signature_of(cls)
    overrides = ARGUMENTS.get(name, {})
    arguments: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        key = parameter.name
        if key in SKIPPED or parameter.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL and key not in overrides:
            continue
        wanted = parameter.default is inspect.Parameter.empty or key in ALWAYS.get(name, ())
        if not wanted and not rarely(draw, 3) and not rarely(draw, 20):  # (and once in 20: leave a needed one out)
            continue
        if wanted and rarely(draw, 30):
            continue
        strategy = overrides[key] if key in overrides else strategy_for(hints.get(key, Any), optional=not wanted)
        if strategy is not None:
            arguments[key] = draw(strategy)
    return arguments


def or_none(strategy: st.SearchStrategy[Any] = COUNTS) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def permutations(draw: st.DrawFn) -> list[int]:
    """The dims of a permutation, some counted from the end; rarely one left out, repeated or out of range."""
    order = [
        index - count if draw(st.booleans()) else index
        for count in [draw(st.integers(1, 4))]
        for index in draw(st.permutations(range(count)))
    ]
    if rarely(draw):
        spoil = draw(st.sampled_from(["drop", "repeat", "outside"]))
        if spoil == "drop":
            order.pop()
        elif spoil == "repeat":
            order[-1] = order[0]
        else:
            order.append(len(order))
    return order


@st.composite
def paddings(draw: st.DrawFn) -> list[int]:
    """Pairs of paddings for 1 to 3 dims (some negative, rarely); rarely an odd count or more dims."""
    count = draw(st.integers(1, 3)) if not rarely(draw) else draw(st.integers(0, 4))
    values = mostly(st.sampled_from([0, 1, 2, 3]), st.sampled_from([-1, -2, 5]))
    pad = [draw(values) for _ in range(2 * count)]
    return pad[:-1] if pad and rarely(draw) else pad


@st.composite
def upsample_arguments(draw: st.DrawFn) -> dict[str, Any]:
    """A size or a scale factor (rarely both or neither), a mode, and the options that go with it."""
    arguments: dict[str, Any] = {}
    given = (
        draw(st.sampled_from(["size", "scale_factor"]))
        if not rarely(draw)
        else draw(st.sampled_from(["both", "neither"]))
    )
    factors = mostly(st.sampled_from([2.0, 0.5, 1.5, 3.0, 0.7, 1.0]), st.sampled_from([0.0, -1.0, NAN, INF]))
    if given in ("size", "both"):
        arguments["size"] = draw(st.one_of(COUNTS, st.lists(COUNTS, min_size=1, max_size=3)))
    if given in ("scale_factor", "both"):
        arguments["scale_factor"] = draw(st.one_of(factors, st.lists(factors, min_size=1, max_size=3)))
    arguments["mode"] = draw(MODES)
    if rarely(draw, 3):
        arguments["align_corners"] = draw(st.booleans())
    if rarely(draw, 4):
        arguments["recompute_scale_factor"] = draw(st.booleans())
    return arguments


MODES = mostly(
    st.sampled_from(["nearest", "bilinear", "linear", "bicubic", "trilinear", "area", "nearest-exact"]), st.just("x")
)
ALWAYS: dict[str, tuple[str, ...]] = {
    "Linear": ("out_features",),
    "Conv1d": ("out_channels", "kernel_size"),
    "Conv2d": ("out_channels", "kernel_size"),
    "Conv3d": ("out_channels", "kernel_size"),
    "ConvTranspose2d": ("out_channels", "kernel_size"),
    "GroupNorm": ("num_groups",),
    "LSTM": ("hidden_size",),
    "GRU": ("hidden_size",),
    "RNN": ("hidden_size",),
    "Unflatten": ("unflattened_size",),
    "Permute": ("dims",),
    "Reshape": ("shape",),
}
"""Arguments that are left out only rarely: those a layer cannot do without, though they have a default."""
ARGUMENTS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "Softmax": {"dim": DIMS},
    "GeLU": {"approximate": mostly(st.sampled_from(["none", "tanh"]), st.just("x"))},
    "Dropout": {"p": mostly(st.sampled_from([0.0, 0.5, 1.0, 0.1]), st.sampled_from([NAN, -0.1, 1.5]))},
    "Flatten": {"start_dim": DIMS, "end_dim": DIMS},
    "Unflatten": {
        "dim": DIMS,
        "unflattened_size": mostly(
            st.lists(st.sampled_from([2, -1, 3, 1, 4]), min_size=1, max_size=3),
            st.lists(st.sampled_from([-1, 0, -2]), max_size=3),
        ),
    },
    "Reshape": {"shape": st.lists(mostly(st.sampled_from([2, -1, 3, 1, 4]), st.sampled_from([0, -2])), max_size=3)},
    "Permute": {"dims": permutations()},
    "Transpose": {"dim0": DIMS, "dim1": DIMS},
    "Squeeze": {"dim": DIMS},
    "Unsqueeze": {"dim": DIMS},
    "Slicing": {
        "dim": DIMS,
        "start": or_none(st.integers(-6, 6)),
        "end": or_none(st.integers(-6, 6)),
        "step": mostly(st.sampled_from([1, 2, 3]), st.sampled_from([0, -1])),
    },
    "Chunk": {"chunks": COUNTS, "dim": DIMS},
    "Unbind": {"dim": DIMS},
    "Cat": {"dim": mostly(st.integers(-2, 1), DIMS)},
    "Embedding": {"padding_idx": or_none(st.integers(-5, 5)), "max_norm": or_none(FLOATS)},
    "Pad": {"pad": paddings(), "value": FLOATS},
    "Interpolate": {"mode": MODES},
    "AdaptiveAvgPool2d": {"output_size": st.one_of(COUNTS, st.lists(or_none(), min_size=2, max_size=2))},
    "AdaptiveMaxPool2d": {"output_size": st.one_of(COUNTS, st.lists(or_none(), min_size=2, max_size=2))},
    "AdaptiveAvgPool1d": {"output_size": st.one_of(COUNTS, st.lists(or_none(), min_size=1, max_size=2))},
    "AdaptiveMaxPool1d": {"output_size": st.one_of(COUNTS, st.lists(or_none(), min_size=1, max_size=2))},
    "LogSoftmax": {"dim": DIMS},
    "LSTM": {"num_layers": st.sampled_from([1, 2, 0]), "proj_size": mostly(st.sampled_from([0, 1, 2]), st.just(-1))},
    "GRU": {"num_layers": st.sampled_from([1, 2, 0])},
    "RNN": {"num_layers": st.sampled_from([1, 2, 0])},
    "ScaledDotProductAttention": {"num_heads": mostly(st.sampled_from([1, 2, 3]), st.just(0))},
    "MultiHeadAttention": {"num_heads": mostly(st.sampled_from([1, 2, 3]), st.just(0))},
    "SelfAttention": {"num_heads": mostly(st.sampled_from([1, 2, 3]), st.just(0))},
    "OptionalInputs": {"count": st.sampled_from([1, 2, 3, 0]), "required": st.sampled_from([0, 1, 2, 3])},
    "PixelShuffle": {"upscale_factor": mostly(st.sampled_from([1, 2, 3]), st.sampled_from([0, -1]))},
    "Get": {"key": mostly(st.integers(-3, 3), st.sampled_from(["x", 9]))},
    "Narrow": {
        "dim": mostly(st.integers(-2, 1), DIMS),
        "start": mostly(st.integers(0, 2), st.integers(-6, 6)),
        "length": mostly(st.integers(0, 2), st.sampled_from([-1, 5])),
    },
    "IndexSelect": {
        "dim": mostly(st.integers(-2, 1), DIMS),
        "index": st.lists(mostly(st.integers(0, 2), st.sampled_from([-1, 5])), max_size=4),
    },
    "Reduce": {
        "name": mostly(st.sampled_from([*MANY_DIMS, *ONE_DIM]), st.sampled_from(["cumsum", "x"])),
        "dim": st.one_of(st.none(), DIMS, st.lists(DIMS, max_size=3)),
        "keepdim": st.booleans(),
    },
    "Split": {
        "split_size_or_sections": st.one_of(COUNTS, st.lists(mostly(st.integers(0, 4), st.just(-1)), max_size=3)),
        "dim": DIMS,
    },
    "Stack": {"dim": DIMS},
}
for _name, _axes in (("Conv1d", 1), ("Conv2d", 2), ("Conv3d", 3), ("ConvTranspose2d", 2)):
    _paddings = axes_of(_axes, mostly(st.sampled_from([0, 1, 2]), st.just(-1)))
    ARGUMENTS[_name] = {
        "kernel_size": axes_of(_axes),
        "stride": axes_of(_axes),
        "padding": _paddings
        if _name == "ConvTranspose2d"
        else mostly(_paddings, st.sampled_from(["same", "valid", "x"]), odds=3),
        "output_padding": axes_of(_axes, mostly(st.sampled_from([0, 1]), st.just(-1))),
        "dilation": axes_of(_axes, mostly(st.sampled_from([1, 2]), st.sampled_from([0, -1]))),
        "groups": mostly(st.sampled_from([1, 2, 3]), st.sampled_from([0, -1])),
        "downsample": or_none(st.sampled_from([1, 2, 4])),
        "output_size": or_none(st.sampled_from([1, 2, 4])),
    }
POOLS = {
    **{f"{kind}Pool{n}d": n for kind in ("Max", "Avg") for n in (1, 2, 3)},
    **{f"Adaptive{kind}Pool{n}d": n for kind in ("Avg", "Max") for n in (1, 2)},
}
"""The pools and how many spatial dims each takes."""


for _name, _axes in [(name, axes) for name, axes in POOLS.items() if not name.startswith("Adaptive")]:
    ARGUMENTS[_name] = {
        "kernel_size": axes_of(_axes),
        "stride": or_none(mostly(axes_of(_axes), st.just([]))),
        "padding": axes_of(_axes, mostly(st.sampled_from([0, 1]), st.sampled_from([-1, 2]))),
        "dilation": axes_of(_axes, mostly(st.sampled_from([1, 2]), st.just(0))),
        "divisor_override": or_none(mostly(st.sampled_from([1, 2]), st.sampled_from([0, -1]))),
        "downsample": or_none(st.sampled_from([1, 2, 4])),
        "output_size": or_none(st.sampled_from([1, 2, 4])),
    }


@st.composite
def torch_function_arguments(draw: st.DrawFn) -> dict[str, Any]:
    """A torch function and keywords it takes (rarely ones it does not, or a name that is none)."""
    name, kwargs = draw(
        st.sampled_from(
            [
                ("flatten", {"start_dim": draw(DIMS)}),
                ("softmax", {"dim": draw(DIMS)}),
                ("topk", {"k": draw(st.integers(0, 3)), "dim": draw(DIMS)}),
                ("transpose", {"dim0": draw(DIMS), "dim1": draw(DIMS)}),
                ("sum", {"dim": draw(DIMS)}),
                ("cumsum", {"dim": draw(DIMS)}),
            ]
        )
    )
    if rarely(draw):
        kwargs = {**kwargs, "nope": 1}
    if rarely(draw):
        name = "load"
    return {"name": name, "kwargs": kwargs}


ARGUMENT_SETS: dict[str, Callable[[], st.SearchStrategy[dict[str, Any]]]] = {
    "Upsample": upsample_arguments,
    "TorchFunction": torch_function_arguments,
}
"""Layers whose arguments go together (drawn as a whole)."""


# -- plausible inputs for the drawn arguments ---------------------------------------------------------


def floats(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    """One float tensor of any rank up to 4 (element-wise layers, shaping layers)."""
    return one(shape(draw, draw(st.integers(0, 4))))


def linear(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    rank = ranks(draw, [2, 3, 1])
    return one([*shape(draw, max(rank - 1, 0)), fit(draw, arguments.get("in_features"))][-rank:] if rank else [])


def per_axis_value(value: Any, axes: int) -> list[Any]:
    if isinstance(value, list):
        items = list(value)
        return items if len(items) == axes else [3] * axes
    return [value] * axes


def convolution(axes: int) -> Callable[[st.DrawFn, Mapping[str, Any]], tuple[Input, ...]]:
    def make(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
        groups = sized(arguments.get("groups", 1), 1) or 1
        channels = arguments.get("in_channels")
        channels = fit(draw, channels if channels is not None else groups * draw(st.integers(0, 3)))
        kernels = per_axis_value(arguments.get("kernel_size", 3), axes)
        spatial = [draw(st.sampled_from([sized(kernel) + extra for extra in (0, 1, 2, 5, -1)])) for kernel in kernels]
        rank = ranks(draw, [axes + 2, axes + 1])
        sizes = [*shape(draw, max(rank - axes - 1, 0)), channels, *(max(size, 0) for size in spatial)]
        return one(spoiled(draw, sizes[-rank:] if rank else []))

    return make


def batch_norm(rank_choices: Sequence[int]) -> Callable[[st.DrawFn, Mapping[str, Any]], tuple[Input, ...]]:
    def make(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
        rank = ranks(draw, rank_choices)
        sizes = shape(draw, rank)
        if rank >= 2:
            sizes[1] = fit(draw, arguments.get("num_features"))
        return one(sizes)

    return make


def group_norm(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    rank = ranks(draw, [2, 3, 4])
    sizes = shape(draw, rank)
    if rank >= 2:
        channels = arguments.get("num_channels")
        sizes[1] = fit(draw, channels if channels is not None else sized(arguments.get("num_groups")) * draw(SIZES))
    return one(sizes)


def normalized(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    given = arguments.get("normalized_shape")
    tail = [given] if isinstance(given, int) else list(given) if isinstance(given, list) else [draw(SIZES)]
    sizes = [*shape(draw, draw(st.integers(0, 2))), *(fit(draw, size) for size in tail)]
    return one(spoiled(draw, sizes))


def pool(axes: int) -> Callable[[st.DrawFn, Mapping[str, Any]], tuple[Input, ...]]:
    def make(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
        rank = ranks(draw, [axes + 2, axes + 1])
        spatial = [draw(st.sampled_from([1, 2, 4, 5, 7, 8, 0])) for _ in range(axes)]
        return one([draw(SIZES), draw(SIZES), *spatial][-rank:] if rank else [])

    return make


def resize(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    """An input of the rank that the mode takes and the per-dim size or factors fit, mostly."""
    listed = [value for value in (arguments.get("size"), arguments.get("scale_factor")) if isinstance(value, list)]
    mode = arguments.get("mode", "nearest")
    usual = {"linear": [3], "bilinear": [4], "bicubic": [4], "trilinear": [5]}.get(mode, [3, 4, 5])
    rank = ranks(draw, [len(listed[0]) + 2] if listed else usual, high=6)
    return one(shape(draw, rank))


def interpolate(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    rank = ranks(draw, [4, 3, 5], high=6)
    size = shape(draw, max(rank - 2, 0) if not rarely(draw) else draw(st.integers(0, 4)))
    return (Input(tuple(shape(draw, rank))), Input(tuple(size), "size"))


def pixel_shuffle(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    factor = sized(arguments.get("upscale_factor"), 2)
    rank = ranks(draw, [4, 3])
    sizes = shape(draw, rank)
    if rank >= 3:
        sizes[-3] = factor * factor * draw(SIZES)
    return one(spoiled(draw, sizes))


def recurrent(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    rank = ranks(draw, [3, 2])
    sizes = [*shape(draw, max(rank - 1, 0)), fit(draw, arguments.get("input_size"))][-rank:] if rank else []
    inputs = one(sizes)
    if draw(st.booleans()) and rank in (2, 3) and "proj_size" not in arguments:  # an initial state h_0
        layers = sized(arguments.get("num_layers", 1), 1) * (2 if arguments.get("bidirectional") else 1)
        batch = [] if rank == 2 else [sizes[0] if arguments.get("batch_first") else sizes[1]]
        state = spoiled(draw, [layers, *batch, fit(draw, arguments.get("hidden_size"))])
        inputs = (*inputs, Input(tuple(state)))
    return inputs


def sequence(
    features: str, positions: str | None = None
) -> Callable[[st.DrawFn, Mapping[str, Any]], tuple[Input, ...]]:
    """``(*batch, T, features)``: the last dim fits ``features``, dim -2 (mostly) fits ``positions``."""

    def make(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
        rank = ranks(draw, [3, 2])
        length = fit(draw, arguments.get(positions)) if positions else draw(SIZES)
        sizes = [*shape(draw, max(rank - 2, 0)), length, fit(draw, arguments.get(features))]
        return one(sizes[-rank:] if rank else [])

    return make


def token_types(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    (embedded,) = sequence("embedding_dim")(draw, arguments)
    if not draw(st.booleans()):
        return (embedded,)
    ids = spoiled(draw, list(embedded.shape[:-1]))
    return (embedded, Input(tuple(ids), "index"))


def attention_inputs(draw: st.DrawFn, heads: int, features: Sequence[int], mask: bool) -> tuple[Input, ...]:
    batch = shape(draw, draw(st.integers(0, 2)))
    queries, keys = draw(SIZES), draw(SIZES)
    inputs = [
        Input(tuple(spoiled(draw, [*batch, keys if position else queries, size])))
        for position, size in enumerate(features)
    ]
    if mask:
        scores = [*batch, heads, queries, keys]
        inputs.append(
            Input(tuple(spoiled(draw, [1 if draw(st.booleans()) else s for s in scores[draw(st.integers(0, 3)) :]])))
        )
    return tuple(inputs)


def scaled_dot_product(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    heads = sized(arguments.get("num_heads", 1), 1) or 1
    features = heads * draw(SIZES)
    value = heads * draw(SIZES)
    return attention_inputs(draw, heads, [features, features, value], mask=draw(st.booleans()))


def multi_head(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    heads = sized(arguments.get("num_heads", 1), 1) or 1
    embed = arguments.get("embed_dim")
    embed = fit(draw, embed if embed is not None else heads * draw(SIZES))
    key = fit(draw, arguments.get("key_dim") or embed)
    value = fit(draw, arguments.get("value_dim") or key)
    count = draw(st.integers(1, 4))
    inputs = attention_inputs(draw, heads, [embed, key, value], mask=count == 4)
    return inputs[:count]


def self_attention(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    heads = sized(arguments.get("num_heads", 1), 1) or 1
    embed = arguments.get("embed_dim")
    embed = fit(draw, embed if embed is not None else heads * draw(SIZES))
    query, *_, mask = attention_inputs(draw, heads, [embed], mask=True)
    return (query, mask) if draw(st.booleans()) else (query,)


def merged(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    """Two or three tensors whose shapes mostly broadcast (suffixes of one shape, some sizes 1)."""
    base = shape(draw, draw(st.integers(0, 4)))
    inputs: list[Input] = []
    for _ in range(draw(st.integers(2, 3)) if not rarely(draw) else draw(st.integers(0, 1))):
        own = base[draw(st.integers(0, len(base))) :] if draw(st.booleans()) else list(base)
        own = [1 if rarely(draw, 4) else size for size in own]
        inputs.append(Input(tuple(spoiled(draw, own))))
    return tuple(inputs)


def batch_matrices(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    """``(B, n, m)`` and ``(B, m, p)``, rarely with a size changed or another rank."""
    b, n, m, p = (draw(SIZES) for _ in range(4))
    first, second = [b, n, m], [b, m, p]
    if rarely(draw):
        first = first[draw(st.integers(0, 3)) :]
    return (Input(tuple(first)), Input(tuple(spoiled(draw, second))))


def modulated(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    """A feature ``(B, F, ...)`` and a conditioner ``(B, C)``, mostly of FiLM's sizes."""
    batch = draw(SIZES)
    feature = [batch, fit(draw, arguments.get("feature_dim")), *shape(draw, draw(st.integers(0, 2)))]
    conditioner = [batch, fit(draw, arguments.get("conditioner_dim"))]
    if rarely(draw):
        conditioner = [*shape(draw, draw(st.integers(0, 2))), conditioner[-1]]
    return (Input(tuple(spoiled(draw, feature))), Input(tuple(conditioner)))


def several(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    count = sized(arguments.get("count", 1), 1)
    given = draw(st.integers(0, count + 1))
    return tuple(Input(tuple(shape(draw, draw(st.integers(0, 3))))) for _ in range(given))


def indices(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    return one(shape(draw, draw(st.integers(0, 3))), "index")


def image(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    return one(shape(draw, ranks(draw, [4, 3])))


def permuted(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    rank = len(arguments.get("dims", ())) if not rarely(draw) else draw(st.integers(0, 4))
    return one(shape(draw, rank))


def reshaped_size(draw: st.DrawFn, sizes: Sequence[Any]) -> int:
    """A size that ``sizes`` (with one -1 for any multiple) unflatten, mostly."""
    if rarely(draw) or not all(isinstance(size, int) for size in sizes):
        return draw(SIZES)
    known = math.prod(size for size in sizes if size != -1)
    return known * draw(SIZES) if -1 in sizes else known


def unflattened(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    sizes = shape(draw, draw(st.integers(1, 3)) if not rarely(draw) else 0)
    dim = arguments.get("dim", 0)
    if sizes and isinstance(dim, int) and -len(sizes) <= dim < len(sizes):
        sizes[dim] = reshaped_size(draw, arguments.get("unflattened_size", ()))
    return one(sizes)


def reshaped(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    return one([draw(SIZES), reshaped_size(draw, arguments.get("shape", ()))][: draw(st.integers(1, 2))])


def padded(draw: st.DrawFn, arguments: Mapping[str, Any]) -> tuple[Input, ...]:
    count = len(arguments.get("pad", ())) // 2
    rank = ranks(draw, [count + 1, count + 2, count])
    widest = max((abs(size) for size in arguments.get("pad", ())), default=0)
    sizes = [draw(st.sampled_from([widest + 1, widest + 2, widest, 1, 0])) for _ in range(rank)]
    return one(spoiled(draw, sizes))


INPUTS: dict[str, Callable[[st.DrawFn, Mapping[str, Any]], tuple[Input, ...]]] = {
    "Linear": linear,
    "Embedding": indices,
    "PaddingMask": indices,
    "Conv1d": convolution(1),
    "Conv2d": convolution(2),
    "Conv3d": convolution(3),
    "ConvTranspose2d": convolution(2),
    "BatchNorm1d": batch_norm([2, 3]),
    "BatchNorm2d": batch_norm([4]),
    "GroupNorm": group_norm,
    "LayerNorm": normalized,
    "RMSNorm": normalized,
    **{name: pool(axes) for name, axes in POOLS.items()},
    "Upsample": resize,
    "Interpolate": interpolate,
    "PixelShuffle": pixel_shuffle,
    "LSTM": recurrent,
    "GRU": recurrent,
    "RNN": recurrent,
    "ClassToken": sequence("dim"),
    "PositionEmbedding": sequence("dim", "num_positions"),
    "SequencePositionEmbedding": sequence("embedding_dim", "num_positions"),
    "TokenTypeEmbedding": token_types,
    "ScaledDotProductAttention": scaled_dot_product,
    "MultiHeadAttention": multi_head,
    "SelfAttention": self_attention,
    "Add": merged,
    "Multiply": merged,
    "Cat": merged,
    "Mean": merged,
    "Stack": merged,
    "VecDot": merged,
    "BatchMatmul": batch_matrices,
    "FiLM": modulated,
    "OptionalInputs": several,
    "Tokens2d": image,
    "Permute": permuted,
    "Unflatten": unflattened,
    "Reshape": reshaped,
    "Pad": padded,
}


# -- containers: simple children ----------------------------------------------------------------------

leaves = st.one_of(
    st.builds(dict, type=st.sampled_from(["Identity", "ReLU", "Tanh", "Flatten"])),
    st.builds(dict, type=st.just("Linear"), out_features=COUNTS),
    st.builds(dict, type=st.just("LayerNorm")),
    st.builds(dict, type=st.just("Transpose"), dim0=st.just(-1), dim1=st.sampled_from([-2, 0])),
    st.builds(dict, type=st.just("Unsqueeze"), dim=st.sampled_from([0, -1])),
    st.builds(dict, type=st.just("Softmax"), dim=DIMS),
)


@st.composite
def container(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], tuple[Input, ...]]:
    node: dict[str, Any] = {"type": name}
    count = 2 if name == "Matmul" and not rarely(draw) else draw(st.integers(0, 3))
    node["children"] = [draw(leaves) for _ in range(count)]
    if name == "Concatenate" and draw(st.booleans()):
        node["dim"] = draw(DIMS)
    if name == "Tokens2d":
        return node, image(draw, {})
    inputs = count if name == "Distribute" and not rarely(draw) else 1
    return node, tuple(Input(tuple(shape(draw, draw(st.integers(0, 4))))) for _ in range(max(inputs, 1)))


@st.composite
def context_case(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Input, ...]]:
    """A Chain that stores its input, runs a leaf, and reads a context value (mostly the one stored)."""
    stored = {"type": "SetContext", "context": "c", "key": "k"}
    read = {"type": "UseContext", "context": "c", "key": draw(st.sampled_from(["k", "k", "other"]))}
    children = [stored, draw(leaves), read] if not rarely(draw) else [read, stored]
    node = {"type": "Chain", "children": children}
    return node, one(shape(draw, draw(st.integers(0, 3))))


@st.composite
def graph_case(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Input, ...]]:
    """A Graph with a leaf on one path and a merge of both paths (or of the two inputs)."""
    two = draw(st.booleans())
    merge = draw(st.sampled_from(["Add", "Multiply", "Cat"]))
    leaf = {**draw(leaves), "id": "leaf"}
    node: dict[str, Any] = {
        "type": "Graph",
        "nodes": [leaf, {"type": merge, "id": "merge"}],
        "edges": ["x -> leaf -> merge", "y -> merge" if two else "x -> merge"],
    }
    base = shape(draw, draw(st.integers(0, 3)))
    inputs = (Input(tuple(base)), Input(tuple(spoiled(draw, base))))
    return node, inputs if two else inputs[:1]


CONTAINERS = {"Chain", "Passthrough", "Residual", "Sum", "Parallel", "Distribute", "Concatenate", "Matmul", "Tokens2d"}
CONTEXT = {"SetContext", "UseContext"}


# -- cases --------------------------------------------------------------------------------------------


@st.composite
def cases(draw: st.DrawFn, name: str) -> Case:
    training = draw(st.booleans())
    if name == "Graph":
        node, inputs = draw(graph_case())
        names = ("x", "y")[: len(inputs)]
        node["inputs"] = list(names)
        return Case(node, inputs, training, named=True)
    if name in CONTAINERS:
        node, inputs = draw(container(name))
        if name == "Tokens2d" and node["children"] and draw(st.booleans()):
            node["children"] = [{"type": "Linear", "out_features": draw(COUNTS)}]
    elif name in CONTEXT:
        node, inputs = draw(context_case())
    else:
        arguments = draw(ARGUMENT_SETS[name]() if name in ARGUMENT_SETS else generic_arguments(name))
        node = {"type": name, **arguments}
        inputs = INPUTS.get(name, floats)(draw, arguments)
    return Case({"type": "Chain", "children": [node]}, inputs, training)


# -- the check ----------------------------------------------------------------------------------------


def shape_of(value: object) -> Any:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    assert isinstance(value, tuple | list), f"an output that is neither a tensor nor a tuple: {value!r}"
    return tuple(shape_of(item) for item in value)


def check(case: Case) -> None:
    """Load and infer; when both accept, the forward must run and give the inferred shapes."""
    given = [list(value.shape) for value in case.inputs]
    names = [str(name) for name in case.document.get("inputs", ())]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inputs: Any = dict(zip(names, given, strict=True)) if case.named else given
            model = spec.loads(case.document, inputs=inputs)
    except SpecError as error:
        event("refused by a shape rule" if "shapes do not fit" in error.reason else "refused by the arguments")
        return
    model.train(case.training)
    try:
        if case.named:
            report = shapes.infer(model, **dict(zip(names, given, strict=True)))
        else:
            report = shapes.infer(model, *given)
    except shapes.ShapeError:
        event("refused by a shape rule in eval mode")  # the load infers in training mode
        return
    expected = evaluate(report.output, {})
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            output = model(*(value.value() for value in case.inputs))
    except Exception as error:
        raise AssertionError(
            f"accepted with output {report.output}, but the forward fails: {type(error).__name__}: {error}"
        ) from error
    event("accepted and run")
    assert shape_of(output) == expected, f"the rule says {report.output}, the forward gives {shape_of(output)}"


LAYERS = [name for name in spec.registered() if registry.lookup(name) is getattr(fl, name, None)]
"""The built-in registered layers (a test elsewhere may register its own)."""


@pytest.mark.parametrize("name", LAYERS)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_an_accepted_spec_runs_with_the_inferred_shapes(name: str, data: st.DataObject) -> None:
    case = data.draw(cases(name), label="case")
    check(case)


def test_every_registered_layer_is_drawn() -> None:
    """Layers with children or several inputs need an entry of their own; the rest take the generic draw."""
    special = {"Graph", *CONTAINERS, *CONTEXT}
    for name in LAYERS:
        cls = registry.lookup(name)
        if issubclass(cls, fl.Chain) and name not in {"MultiHeadAttention", "SelfAttention", "FiLM"}:
            assert name in special, f"{name} has children: give it a case"


# -- the cases the issue names ------------------------------------------------------------------------


def load(node: dict[str, Any], *input_shapes: tuple[int, ...]) -> fl.Chain:
    return spec.loads({"type": "Chain", "children": [node]}, inputs=[list(shape) for shape in input_shapes])


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"type": "GeLU", "approximate": "x"}, "GeLU: approximate must be one of 'none', 'tanh', got 'x'"),
        (
            {"type": "Conv1d", "out_channels": 2, "kernel_size": 3, "dilation": 0},
            "Conv1d: dilation must be at least 1, got 0",
        ),
        ({"type": "Conv1d", "out_channels": 2, "kernel_size": 0}, "Conv1d: kernel_size must be at least 1, got 0"),
        (
            {"type": "Conv2d", "out_channels": 2, "kernel_size": [3, 0]},
            "Conv2d: kernel_size must be at least 1, got (3, 0)",
        ),
        ({"type": "Dropout", "p": math.nan}, "Dropout: p must be a probability from 0 to 1, got nan"),
        ({"type": "BatchNorm1d", "num_features": 0}, "BatchNorm1d: num_features must be at least 1, got 0"),
        ({"type": "GroupNorm", "num_groups": 0, "num_channels": 0}, "GroupNorm: num_groups must be at least 1, got 0"),
        (
            {"type": "GroupNorm", "num_groups": -1, "num_channels": 2},
            "GroupNorm: num_groups must be at least 1, got -1",
        ),
        ({"type": "Pad", "pad": [1, -1], "mode": "reflect"}, "Pad: pad in mode 'reflect' must be at least 0"),
    ],
)
def test_arguments_no_forward_takes_are_refused_when_built(node: dict[str, Any], message: str) -> None:
    """In a spec, a SpecError at the node's JSON path; from Python, a LayerError."""
    with pytest.raises(SpecError) as raised:
        load(node, (3, 2, 16))
    assert raised.value.path == "children[0]"
    assert message in str(raised.value)
    arguments = {
        key: tuple(value) if isinstance(value, list) else value for key, value in node.items() if key != "type"
    }
    with pytest.raises(fl.LayerError, match=re.escape(message)):
        getattr(fl, node["type"])(**arguments)


@pytest.mark.parametrize(
    ("node", "shape", "message"),
    [
        ({"type": "Softmax", "dim": 5}, (3, 4), "Softmax expects an input with a dim 5, got rank 2"),
        ({"type": "Softmax", "dim": -2}, (), "Softmax expects an input with a dim -2, got rank 0"),
        (
            {"type": "Pad", "pad": [1, 1], "mode": "reflect"},
            (2, 3, 1),
            "Pad in mode 'reflect' expects a size above its padding (1, 1) at dim -1, got 1",
        ),
        (
            {"type": "Pad", "pad": [2, 2], "mode": "circular"},
            (2, 3, 1),
            "Pad in mode 'circular' expects a size of at least its padding (2, 2) at dim -1, got 1",
        ),
        (
            {"type": "Pad", "pad": [1, 1, 1, 1, 1, 1], "mode": "replicate"},
            (2, 3, 4),
            "Pad in mode 'replicate' pads the last 3 dims of a 4D or 5D input",
        ),
        ({"type": "Pad", "pad": [1, 1], "mode": "replicate"}, (4,), "pads the last 1 dim of a 2D or 3D input"),
        (
            {"type": "Pad", "pad": [1, 1], "mode": "replicate"},
            (2, 0, 3),
            "Pad in mode 'replicate' expects channels (dim -2) above 0",
        ),
        (
            {"type": "Conv1d", "out_channels": 2, "kernel_size": 3, "padding": 2, "padding_mode": "reflect"},
            (1, 2, 2),
            "Conv1d padding in mode 'reflect' expects a size above its padding (2, 2) at dim -1, got 2",
        ),
        (
            {"type": "Conv2d", "out_channels": 2, "kernel_size": 3, "padding": 2},
            (1, 2, 0, 5),
            "Conv2d expects non-empty spatial dims unless the batch or the channels are empty",
        ),
    ],
)
def test_inputs_a_forward_refuses_are_refused_by_the_rule(
    node: dict[str, Any], shape: tuple[int, ...], message: str
) -> None:
    """A ShapeError naming the node, which the spec turns into a SpecError at its JSON path."""
    with pytest.raises(SpecError) as raised:
        load(node, shape)
    assert raised.value.path == "children[0]"
    assert message in str(raised.value)
    arguments = {
        key: tuple(value) if isinstance(value, list) else value for key, value in node.items() if key != "type"
    }
    with pytest.raises(shapes.ShapeError) as inferred:
        shapes.infer(fl.Chain(getattr(fl, node["type"])(**arguments)), shape)
    assert inferred.value.address == node["type"]
    assert message in str(inferred.value)


@pytest.mark.parametrize(
    ("node", "shape", "output"),
    [
        (
            {"type": "Conv1d", "out_channels": 2, "kernel_size": 1},
            (3, 0, 16),
            (3, 0, 16),
        ),  # torch: no channels in, none out
        ({"type": "Conv1d", "in_channels": 0, "out_channels": 2, "kernel_size": 3}, (3, 0, 16), (3, 0, 14)),
        ({"type": "GroupNorm", "num_groups": 1, "num_channels": 0}, (3, 0, 4), (3, 0, 4)),
        ({"type": "Pad", "pad": [2, -1]}, (3, 1), (3, 2)),
        ({"type": "Pad", "pad": [1, 1], "mode": "circular"}, (2, 3, 1), (2, 3, 3)),
        ({"type": "Pad", "pad": [0, -2]}, (3, 2), (3, 0)),  # torch leaves an empty dim
    ],
)
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")
def test_what_the_forward_takes_is_inferred_as_it_computes(
    node: dict[str, Any], shape: tuple[int, ...], output: tuple[int, ...]
) -> None:
    model = load(node, shape)
    assert shapes.infer(model, shape).output == output
    assert tuple(model(torch.zeros(shape)).shape) == output


def test_a_constant_pad_crops_no_more_than_the_size() -> None:
    """Negative paddings crop each side first: torch refuses a crop beyond the size even when the
    other side's padding would make up for it."""
    with pytest.raises(SpecError, match="expects a size its negative paddings can crop"):
        load({"type": "Pad", "pad": [4, -1]}, (3, 0))
    with pytest.raises(RuntimeError):
        torch.nn.functional.pad(torch.zeros(3, 0), (4, -1))
