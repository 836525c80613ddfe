"""Shape rules of the shaping and attention layers, checked against torch's own forward.

Each case is a random layer configuration and random input shapes whose sizes are numbers or
expressions ``coef * symbol + offset``. With numbers, ``shapes.infer`` must give the forward's output
shape, or a ShapeError at the layer's address exactly when the forward fails (a mask with
``is_causal=True`` aside: see ``KERNEL_DEPENDENT``). With symbols, the inferred shape, evaluated at
random values of the symbols, must be the forward's output shape at those values whenever the
recorded constraints hold there; a ShapeError must mean that the forward fails too, or say that the
symbols leave the answer open.
"""

import functools
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.dims import Dim, Shape

SYMBOLS = ("H", "W", "T")

Spec = int | tuple[int, str, int]
"""One size: a number, or ``(coef, symbol, offset)`` for ``coef * symbol + offset``."""

UNDECIDED = re.compile(r"cannot tell|needs a number")
"""The errors a rule gives when the symbols leave the answer open (torch may still succeed)."""

KERNEL_DEPENDENT = re.compile(r"is_causal=True expects no mask|expects as many values as keys")
"""Refusals that follow torch's documented contract where one of its kernels is laxer.

torch documents that a mask with ``is_causal=True`` is an error, and its math kernel says so; its
CPU flash kernel, picked for some shapes (4-D, equal head dims...), applies both without a word.
The same kernel reads only as many values as there are keys when the value sequence is longer
(plain 3-D ``scaled_dot_product_attention`` refuses it).
"""

BROADCAST_ISSUE = re.compile(r"needs sizes that broadcast")
"""``dims.broadcast`` refuses symbolic sizes that always differ when neither can be 1."""

TORCH_ERRORS = (RuntimeError, IndexError, ValueError, TypeError)  # fl.ChainError is a RuntimeError


@dataclass
class Case:
    """A layer (built fresh for each use) and the shapes of its positional and named inputs."""

    layer: Callable[[], torch.nn.Module]
    inputs: list[list[Spec]]
    named: dict[str, list[Spec]] = field(default_factory=dict[str, list[Spec]])


# -- sizes: numbers and symbols ---------------------------------------------------------------------


def symbolic(spec: Spec) -> Dim:
    if isinstance(spec, int):
        return spec
    coef, name, offset = spec
    return dims.normal(coef * dims.dim(name) + offset)


def number(spec: Spec, values: Mapping[str, int]) -> int:
    if isinstance(spec, int):
        return spec
    coef, name, offset = spec
    return coef * values[name] + offset


def scaled(spec: Spec, factor: int) -> Spec:
    """``factor`` times a size (a size that ``factor`` divides whatever the symbols' values)."""
    if isinstance(spec, int):
        return spec * factor
    if factor == 0:
        return 0
    coef, name, offset = spec
    return (coef * factor, name, offset * factor)


def shape_of(output: object) -> Any:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    assert isinstance(output, tuple | list)
    return tuple(shape_of(item) for item in output)


# -- running both ways ------------------------------------------------------------------------------


def run_forward(case: Case, values: Mapping[str, int]) -> Any:
    """The forward's output shape(s) at ``values``, or None when the forward fails."""
    layer = case.layer().eval()
    inputs = [torch.zeros([number(spec, values) for spec in specs]) for specs in case.inputs]
    named = {name: torch.zeros([number(spec, values) for spec in specs]) for name, specs in case.named.items()}
    try:
        with torch.no_grad():
            return shape_of(layer(*inputs, **named))
    except TORCH_ERRORS:
        return None


def run_infer(case: Case, sizes: Callable[[Spec], Dim]) -> shapes.ShapeReport | shapes.ShapeError:
    """Inference on the layer in a Chain (or at the root, when it has named inputs), or its error."""
    layer = case.layer()
    model = layer if case.named else fl.Chain(layer)
    inputs = [[sizes(spec) for spec in specs] for specs in case.inputs]
    named = {name: [sizes(spec) for spec in specs] for name, specs in case.named.items()}
    try:
        return shapes.infer(model, *inputs, **named)
    except shapes.ShapeError as error:
        return error


def constructible(case: Case) -> bool:
    """Whether the layer can be built: arguments no forward could take are refused at construction
    (tests/integration/test_rules_match_forward.py checks those)."""
    try:
        case.layer()
    except fl.LayerError:
        return False
    return True


def check_numbers(case: Case, values: Mapping[str, int]) -> None:
    if not constructible(case):
        return
    expected = run_forward(case, values)
    report = run_infer(case, lambda spec: number(spec, values))
    if isinstance(report, shapes.ShapeError):
        if KERNEL_DEPENDENT.search(str(report)):
            return
        assert expected is None, f"torch gives {expected}, the rule says: {report}"
        if not case.named:
            name = type(case.layer()).__name__
            assert report.address is not None
            assert report.address == name or report.address.startswith(f"{name}."), report
        return
    assert expected is not None, f"torch fails, the rule gives {report.output}"
    assert dims.substitute_shape(report.output, values) == expected
    assert report.constraints == ()


def check_symbols(case: Case, values: Mapping[str, int]) -> None:
    if not constructible(case):
        return
    expected = run_forward(case, values)
    report = run_infer(case, symbolic)
    if isinstance(report, shapes.ShapeError):
        # Impossible for all values (torch fails here too), or left open by the symbols.
        message = str(report)
        allowed = expected is None or any(
            pattern.search(message) for pattern in (UNDECIDED, KERNEL_DEPENDENT, BROADCAST_ISSUE)
        )
        assert allowed, f"torch gives {expected}, the rule says: {report}"
        return
    if not all(dims.substitute(c.first, values) == dims.substitute(c.second, values) for c in report.constraints):
        return  # outside the sizes the rule describes
    assert expected is not None, f"torch fails, the rule gives {report.output} ({report.constraints})"
    assert dims.substitute_shape(report.output, values) == expected


# -- strategies -------------------------------------------------------------------------------------

values_strategy = st.fixed_dictionaries({name: st.integers(1, 4) for name in SYMBOLS})
numbers = st.sampled_from([1, 2, 3, 4, 5, 0])
symbols = st.tuples(st.integers(1, 2), st.sampled_from(SYMBOLS), st.integers(0, 2))
specs = st.one_of(numbers, symbols)
up_to_four = st.integers(1, 4)
up_to_three = st.integers(1, 3)


def rarely(draw: st.DrawFn, odds: int = 10) -> bool:
    """True once in about ``odds`` draws (at the far end of the range: hypothesis favours small values)."""
    return draw(st.integers(1, odds)) == odds


def shapes_of(rank: st.SearchStrategy[int], sizes: st.SearchStrategy[Spec] = specs) -> st.SearchStrategy[list[Spec]]:
    return rank.flatmap(lambda n: st.lists(sizes, min_size=n, max_size=n))


@st.composite
def with_dims(
    draw: st.DrawFn,
    make: Callable[..., torch.nn.Module],
    names: Sequence[str],
    ranks: st.SearchStrategy[int] = up_to_four,
    sizes: st.SearchStrategy[Spec] = specs,
    insert: bool = False,
    options: Mapping[str, st.SearchStrategy[Any]] | None = None,
) -> Case:
    """A layer taking dims ``names`` (mostly in range for the input, 1 in 10 just outside) and ``options``."""
    shape = [] if rarely(draw) else draw(shapes_of(ranks, sizes))  # scalars too, rarely
    span = max(len(shape), 1) + insert
    inside, outside = st.integers(-span, span - 1), st.sampled_from([-span - 1, span])
    arguments = {name: draw(outside if rarely(draw) else inside) for name in names}
    arguments |= {name: draw(strategy) for name, strategy in (options or {}).items()}
    return Case(functools.partial(make, **arguments), [shape])


@st.composite
def unflatten_cases(draw: st.DrawFn) -> Case:
    shape = [] if rarely(draw) else draw(shapes_of(up_to_three))
    span = max(len(shape), 1)
    dim = draw(st.sampled_from([-span - 1, span]) if rarely(draw) else st.integers(-span, span - 1))
    sizes = tuple(
        draw(st.lists(st.sampled_from([2, -1, 3, 1, 4, 2, -1, 0, -2]), min_size=0 if rarely(draw) else 1, max_size=3))
    )
    if shape and -len(shape) <= dim < len(shape) and min(sizes, default=0) >= -1 and not rarely(draw, 4):
        known = math.prod(size for size in sizes if size != -1)
        shape[dim] = scaled(draw(specs), known) if -1 in sizes else known
    return Case(functools.partial(fl.Unflatten, dim, sizes), [shape])


@st.composite
def reshape_cases(draw: st.DrawFn) -> Case:
    target = draw(st.lists(st.sampled_from([2, -1, 3, 1, 4, 2, -1, 0, -2]), max_size=3))
    shape = [draw(specs), *draw(shapes_of(st.integers(0, 3)))]
    if min(target, default=0) >= -1 and draw(st.booleans()):
        known = math.prod(size for size in target if size != -1)
        shape[1:] = [scaled(draw(specs), known) if -1 in target else known]
    return Case(functools.partial(fl.Reshape, *target), [shape])


@st.composite
def permute_cases(draw: st.DrawFn) -> Case:
    shape = draw(shapes_of(st.integers(0, 4)))
    order = [index - len(shape) if draw(st.booleans()) else index for index in draw(st.permutations(range(len(shape))))]
    spoil = draw(st.sampled_from(["drop", "repeat", "outside"])) if rarely(draw, 4) else "none"
    if spoil == "drop" and order:
        order.pop()
    elif spoil == "repeat" and order:
        order[-1] = order[0]
    elif spoil == "outside":
        order.append(len(order))
    return Case(functools.partial(fl.Permute, *order), [shape])


@st.composite
def attention_inputs(draw: st.DrawFn, heads: int, features: Sequence[Spec | None]) -> list[list[Spec]]:
    """Query, key and value shapes with broadcasting batch dims (mostly fitting), features as given."""
    batch = draw(shapes_of(st.integers(0, 2)))
    queries, keys = draw(specs), draw(specs)
    shapes_: list[list[Spec]] = []
    for position, size in enumerate(features):
        own = batch[draw(st.integers(0, len(batch))) :]
        own = [1 if rarely(draw, 4) else spec for spec in own]
        if rarely(draw):
            own = draw(shapes_of(st.integers(0, 2)))
        length = keys if position else queries
        if position == 2 and rarely(draw):
            length = draw(specs)
        last = size if size is not None else scaled(draw(specs), heads)
        if rarely(draw):
            last = draw(specs)
        shapes_.append([*own, length, last])
    if rarely(draw, 20):
        shapes_[0] = draw(shapes_of(st.integers(0, 1)))  # too small a rank
    return shapes_


@st.composite
def mask_for(draw: st.DrawFn, query: list[Spec], key: list[Spec], heads: int) -> list[Spec]:
    """A mask shape of rank 2 or more that mostly broadcasts to the attention scores."""
    batch = query[:-2] if len(query[:-2]) >= len(key[:-2]) else key[:-2]
    scores: list[Spec] = [*batch, heads, query[-2], key[-2]]
    mask = scores[draw(st.integers(0, len(scores) - 2)) :]
    mask = [1 if draw(st.booleans()) else spec for spec in mask]
    if rarely(draw):
        mask = [1, *mask]
    if rarely(draw):
        mask[draw(st.integers(0, len(mask) - 1))] = draw(specs)
    return mask


@st.composite
def attention_cases(draw: st.DrawFn) -> Case:
    heads = draw(st.integers(1, 3))
    causal = draw(st.booleans())
    query_features = scaled(draw(specs), heads)
    inputs = draw(attention_inputs(heads, [query_features, query_features, None]))
    if len(inputs[0]) >= 2 and draw(st.booleans()):
        inputs.append(draw(mask_for(inputs[0], inputs[1], heads)))
    return Case(functools.partial(fl.ScaledDotProductAttention, num_heads=heads, is_causal=causal), inputs)


@st.composite
def multi_head_cases(draw: st.DrawFn) -> Case:
    heads = draw(st.integers(1, 3))
    embed = heads * draw(st.integers(1, 3))
    key_dim = draw(st.none() | st.integers(1, 6))
    value_dim = draw(st.none() | st.integers(1, 6))
    causal = draw(st.booleans())
    key_features = embed if key_dim is None else key_dim
    value_features = key_features if value_dim is None else value_dim
    inputs = draw(attention_inputs(heads, [embed, key_features, value_features]))
    form = draw(st.sampled_from(["self", "cross", "all", "mask", "named mask"]))
    named: dict[str, list[Spec]] = {}
    if form in {"mask", "named mask"} and min(len(shape) for shape in inputs) >= 2:
        self_attention = form == "named mask"
        key = inputs[0] if self_attention else inputs[1]
        mask = draw(mask_for(inputs[0], key, heads))
        if self_attention:
            inputs, named = inputs[:1], {"mask": mask}
        else:
            inputs.append(mask)
    elif form == "self":
        inputs = inputs[:1]
    elif form == "cross":
        inputs = inputs[:2]
    make = functools.partial(
        fl.MultiHeadAttention, embed, num_heads=heads, key_dim=key_dim, value_dim=value_dim, is_causal=causal
    )
    return Case(make, inputs, named)


bound = st.none() | st.integers(-8, 8)

CASES: dict[str, st.SearchStrategy[Case]] = {
    "Flatten": with_dims(fl.Flatten, ["start_dim", "end_dim"]),
    "Unflatten": unflatten_cases(),
    "Reshape": reshape_cases(),
    "Permute": permute_cases(),
    "Transpose": with_dims(fl.Transpose, ["dim0", "dim1"]),
    "Squeeze": with_dims(fl.Squeeze, ["dim"], sizes=st.one_of(st.just(1), specs)),
    "Unsqueeze": with_dims(fl.Unsqueeze, ["dim"], insert=True),
    "Slicing": with_dims(
        fl.Slicing, ["dim"], up_to_three, options={"start": bound, "end": bound, "step": st.integers(1, 4)}
    ),
    "Chunk": with_dims(fl.Chunk, ["dim"], up_to_three, options={"chunks": st.sampled_from([1, 2, 2, 3, 3, 4, 5, 0])}),
    "Unbind": with_dims(fl.Unbind, ["dim"], up_to_three),
    "ScaledDotProductAttention": attention_cases(),
    "MultiHeadAttention": multi_head_cases(),
}

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("kind", sorted(CASES))
@SETTINGS
@given(data=st.data())
def test_rule_matches_torch_with_numbers(kind: str, data: st.DataObject) -> None:
    case = data.draw(CASES[kind], label="case")
    check_numbers(case, data.draw(values_strategy, label="values"))


@pytest.mark.parametrize("kind", sorted(CASES))
@SETTINGS
@given(data=st.data())
def test_rule_matches_torch_with_symbols(kind: str, data: st.DataObject) -> None:
    case = data.draw(CASES[kind], label="case")
    check_symbols(case, data.draw(values_strategy, label="values"))


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_layer_has_a_rule_of_its_own(kind: str) -> None:
    layer_class = getattr(fl, kind)
    assert "output_shape" in vars(layer_class)
    assert layer_class.output_shape is not None


# -- mismatches: a ShapeError naming the address and what was expected ------------------------------


@pytest.mark.parametrize(
    ("model", "inputs", "address", "expected"),
    [
        (
            fl.Chain(fl.Linear(4, 6), fl.Reshape(4, -1)),
            [("B", 4)],
            "Reshape",
            "Reshape expects the number of elements per batch item to be divisible by 4 (shape (4, -1)), got 6",
        ),
        (
            fl.Chain(fl.Reshape(3, 4)),
            [("B", 2, 5)],
            "Reshape",
            "Reshape expects the number of elements per batch item to be 12 (shape (3, 4)), got 10",
        ),
        (
            fl.Chain(block=fl.Chain(fl.Unflatten(1, (2, 3)))),
            [("B", 7)],
            "block.Unflatten",
            "Unflatten expects the size of dim 1 to be 6 (sizes (2, 3)), got 7",
        ),
        (fl.Chain(fl.Permute(0, 2, 1)), [("B", 3)], "Permute", "Permute expects an input of rank 3"),
        (fl.Chain(fl.Permute(0, 0)), [("B", 3)], "Permute", "Permute expects each dim once, got (0, 0)"),
        (fl.Chain(fl.Flatten(2)), [("B", 3)], "Flatten", "Flatten expects an input with a dim 2, got rank 2"),
        (fl.Chain(fl.Flatten(-1, 0)), [("B", 3)], "Flatten", "Flatten expects start_dim (-1) not to come after"),
        (fl.Chain(fl.Transpose(0, 3)), [("B", 3)], "Transpose", "Transpose expects an input with a dim 3"),
        (fl.Chain(fl.Unsqueeze(4)), [("B", 3)], "Unsqueeze", "Unsqueeze expects an input of rank at least 4"),
        (fl.Chain(fl.Squeeze(1)), [("B", "T")], "Squeeze", "Squeeze cannot tell whether dim 1 (T) is 1"),
        (fl.Chain(fl.Unbind(1)), [("B", "T")], "Unbind", "Unbind needs a number for dim 1"),
        (
            fl.Chain(fl.Slicing(dim=1, start=2)),
            [("B", "T")],
            "Slicing",
            "Slicing (dim=1) cannot tell whether T >= 2",
        ),
        (
            fl.Chain(fl.ScaledDotProductAttention(num_heads=3)),
            [("B", "T", 8), ("B", "S", 8), ("B", "S", 8)],
            "ScaledDotProductAttention",
            "ScaledDotProductAttention expects the query's features to be divisible by num_heads=3, got 8",
        ),
        (
            fl.Chain(fl.ScaledDotProductAttention()),
            [("B", "T", 8), ("B", 5, 8), ("B", 4, 8)],
            "ScaledDotProductAttention",
            "ScaledDotProductAttention expects as many values as keys (5), got 4",
        ),
        (
            fl.Chain(fl.ScaledDotProductAttention(is_causal=True)),
            [("B", "T", 8), ("B", "T", 8), ("B", "T", 8), ("T", "T")],
            "ScaledDotProductAttention",
            "ScaledDotProductAttention with is_causal=True expects no mask",
        ),
        (
            fl.Chain(fl.ScaledDotProductAttention(num_heads=2)),
            [("B", 4, 8), ("B", 5, 8), ("B", 5, 8), ("B", 3, 4, 5)],
            "ScaledDotProductAttention",
            "expects a mask that broadcasts to the scores (B, 2, 4, 5) (..., heads, queries, keys) "
            "(at dim -3, size 1 or 2), got 3",
        ),
        (
            fl.Chain(encoder=fl.Chain(fl.MultiHeadAttention(8, num_heads=2, key_dim=6))),
            [("B", "T", 8), ("B", "S", 5)],
            "encoder.MultiHeadAttention.projections.key",
            "Linear expects last dim 6, got 5",
        ),
    ],
)
def test_mismatch_names_the_address_and_what_was_expected(
    model: fl.Chain, inputs: list[tuple[Any, ...]], address: str, expected: str
) -> None:
    with pytest.raises(shapes.ShapeError) as info:
        shapes.infer(model, *inputs)
    assert info.value.address == address
    assert expected in str(info.value)
    assert str(info.value).startswith(f"{type(model[address]).__name__} at {address!r} got ")


# -- symbolic results and constraints ---------------------------------------------------------------


def test_reshape_with_symbols_gives_an_exact_fraction_and_a_divisibility_constraint() -> None:
    model = fl.Chain(fl.Reshape(2, -1), fl.Flatten(), fl.Linear(12, 4))
    report = shapes.infer(model, ("B", "H", "W"))
    assert report["Reshape"].output == Shape(["B", 2, dims.dim("H") * dims.dim("W") / 2])
    assert report["Flatten"].output == Shape(["B", dims.dim("H") * dims.dim("W")])  # no floor to carry along
    assert [c.address for c in report.constraints] == ["Reshape", "Linear"]
    assert str(report.constraints[0]).startswith("H*W must be divisible by 2 (Reshape expects")


def test_divisions_the_symbols_decide_record_no_constraint() -> None:
    report = shapes.infer(fl.Chain(fl.Unflatten(1, (2, -1)), fl.Chunk(3, dim=2)), ("B", (dims.dim("T") * 6)))
    assert report.output == (Shape(["B", 2, "T"]),) * 3
    assert report.constraints == ()


def test_chunk_with_a_symbol_describes_even_chunks_only() -> None:
    report = shapes.infer(fl.Chain(fl.Chunk(3, dim=-1)), ("B", "H"))
    assert report.output == (Shape(["B", dims.dim("H") / 3]),) * 3
    assert str(report.constraints[0]).startswith("H must be divisible by 3 (Chunk needs a number for dim -1 unless")


def test_squeeze_and_slicing_decide_what_the_symbols_decide() -> None:
    t = dims.dim("T")
    model = fl.Chain(fl.Squeeze(1), fl.Slicing(dim=1, start=1, end=-1), fl.Slicing(dim=1, start=-2))
    assert shapes.infer(model, ("B", 2 * t + 3)).output == Shape(["B", 2])
    assert shapes.infer(fl.Chain(fl.Slicing(dim=0, start=2)), (dims.dim("H") + dims.dim("W"),)).output == Shape(
        [dims.dim("H") + dims.dim("W") - 2]
    )


def test_multi_head_attention_records_its_children_in_the_data_flow_of_forward() -> None:
    attention = fl.MultiHeadAttention(embed_dim=8, num_heads=2, key_dim=6, value_dim=4)
    report = shapes.infer(fl.Chain(attention), ("B", "T", 8), ("B", "S", 6), ("B", "S", 4), ("T", "S"))
    assert report.output == Shape(["B", "T", 8])
    projected = (Shape(["B", "T", 8]), Shape(["B", "S", 8]), Shape(["B", "S", 8]))
    assert report["MultiHeadAttention.projections"].output == projected
    assert report["MultiHeadAttention.attention"].inputs[3] == Shape(["T", "S"])
    assert list(report) == [  # tree order
        "",
        "MultiHeadAttention",
        "MultiHeadAttention.projections",
        "MultiHeadAttention.projections.query",
        "MultiHeadAttention.projections.key",
        "MultiHeadAttention.projections.value",
        "MultiHeadAttention.attention",
        "MultiHeadAttention.output",
    ]


def test_multi_head_attention_takes_named_inputs_at_the_root() -> None:
    attention = fl.MultiHeadAttention(embed_dim=8, num_heads=2)
    report = shapes.infer(attention, ("B", "T", 8), mask=("T", "T"))
    assert report.output == Shape(["B", "T", 8])
    assert report["attention"].inputs == (Shape(["B", "T", 8]),) * 3 + (Shape(["T", "T"]),)
    with pytest.raises(shapes.ShapeError, match="expects inputs named query, key, value, mask, got 'masks'"):
        shapes.infer(attention, ("B", "T", 8), masks=("T", "T"))


@pytest.mark.parametrize(
    ("make", "inputs", "exact"),
    [
        (lambda: fl.Reshape(2, -1), [(2, "H", "W")], True),
        (lambda: fl.Unflatten(1, (3, -1)), [("B", "H")], True),
        (lambda: fl.Chunk(2, dim=1), [("B", "T")], False),  # torch also cuts odd sizes, unevenly
        (lambda: fl.ScaledDotProductAttention(num_heads=2), [(2, 3, "H"), (2, 4, "H"), (1, 4, "W")], True),
    ],
)
def test_constraints_hold_where_torch_agrees(
    make: Callable[[], torch.nn.Module], inputs: list[tuple[str | int, ...]], exact: bool
) -> None:
    """At each point of a grid: the rule's constraints hold, and its shape is torch's; exact constraints fail
    exactly where torch does."""
    report = shapes.infer(fl.Chain(make()), *inputs)
    assert report.constraints
    names = sorted({size for shape in inputs for size in shape if isinstance(size, str)})
    for point in itertools.product(range(1, 7), repeat=len(names)):
        values = dict(zip(names, point, strict=True))
        holds = all(dims.substitute(c.first, values) == dims.substitute(c.second, values) for c in report.constraints)
        sizes = [[values[size] if isinstance(size, str) else size for size in shape] for shape in inputs]
        expected = run_forward(Case(make, [list(shape) for shape in sizes]), {})
        if holds:
            assert dims.substitute_shape(report.output, values) == expected, values
        elif exact:
            assert expected is None, values


def test_symbolic_sizes_that_may_be_one_broadcast() -> None:
    h = dims.dim("H")
    model = fl.Chain(fl.ScaledDotProductAttention())
    report = shapes.infer(model, (h + 1, 4, 8), (h, 5, 8), (h, 5, 8))  # torch: fine when H is 1
    assert report.output == Shape([2, 4, 8])  # read under the constraint
    assert {(c.first, c.second) for c in report.constraints} == {(h, 1)}


def test_a_mask_size_that_differs_from_the_scores_must_be_one() -> None:
    h = dims.dim("H")
    inputs = [("B", h + 1, 8), ("B", 5, 8), ("B", 5, 8), (h, 5)]  # the mask's H is never the H + 1 queries
    report = shapes.infer(fl.Chain(fl.ScaledDotProductAttention()), *inputs)
    assert [(c.first, c.second) for c in report.constraints] == [(1, h)]
