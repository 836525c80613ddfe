"""Add, Multiply and Cat: torch's results, exact shape rules, and refusals of wrong counts and shapes."""

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

import fluxion.layers as fl
from fluxion import dims, shapes
from tests.shapes.helpers import evaluate


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


MERGES: list[Any] = [
    pytest.param(fl.Add(), lambda *xs: sum(xs[1:], xs[0]), id="Add"),
    pytest.param(fl.Multiply(), lambda *xs: torch.stack(torch.broadcast_tensors(*xs)).prod(0), id="Multiply"),
]


@pytest.mark.parametrize(("layer", "reference"), MERGES)
@pytest.mark.parametrize(
    "input_shapes",
    [((2, 3), (2, 3)), ((2, 1, 4), (3, 1), (4,)), ((5,), (2, 5), (1, 1, 5), (2, 5))],
    ids=["same", "broadcast", "four"],
)
def test_elementwise_merges_match_torch_and_their_rule(
    layer: torch.nn.Module, reference: Callable[..., Tensor], input_shapes: tuple[tuple[int, ...], ...]
) -> None:
    inputs = [randn(*shape, seed=seed) for seed, shape in enumerate(input_shapes)]
    output = layer(*inputs)
    torch.testing.assert_close(output, reference(*inputs))
    assert shapes.infer(layer, *input_shapes).output == dims.Shape(output.shape)


def test_cat_matches_torch_cat_along_its_dim() -> None:
    a, b, c = randn(2, 3, 4), randn(2, 1, 4, seed=1), randn(2, 5, 4, seed=2)
    torch.testing.assert_close(fl.Cat(dim=1)(a, b, c), torch.cat([a, b, c], dim=1))
    torch.testing.assert_close(fl.Cat()(a, a), torch.cat([a, a], dim=-1))
    assert fl.Cat(dim=1).dim == 1
    assert repr(fl.Cat(dim=-2)) == "Cat(dim=-2)"
    assert repr(fl.Add()) == "Add()"


def test_symbolic_rules() -> None:
    assert shapes.infer(fl.Add(), ("B", 1, "D"), ("T", 1)).output == dims.Shape(["B", "T", "D"])
    assert shapes.infer(fl.Multiply(), ("B", "D"), ("D",)).output == dims.Shape(["B", "D"])
    report = shapes.infer(fl.Cat(dim=1), ("B", "C", "H"), ("B", 3, "H"), ("B", "C", "H"))
    assert report.output == dims.Shape(["B", 2 * dims.dim("C") + 3, "H"])
    values = {"B": 2, "C": 4, "H": 5}
    real = fl.Cat(dim=1)(torch.zeros(2, 4, 5), torch.zeros(2, 3, 5), torch.zeros(2, 4, 5))
    assert evaluate(report.output, values) == tuple(real.shape)


def test_sizes_that_may_differ_become_constraints() -> None:
    report = shapes.infer(fl.Add(), ("B", "T"), ("B", "S"))
    assert len(report.constraints) == 1
    assert "Add" in str(report.constraints[0])


MERGE_TYPES = [fl.Add, fl.Multiply, fl.Cat, fl.Mean, fl.Stack]


@pytest.mark.parametrize("kind", MERGE_TYPES)
def test_fewer_than_two_inputs_are_refused_at_run_time_and_in_the_rule(kind: type[fl.Module]) -> None:
    layer, name = kind(), kind.__name__
    with pytest.raises(fl.LayerError, match=f"{name} merges two inputs or more, got 1"):
        layer(torch.zeros(2))
    with pytest.raises(fl.LayerError, match="got 0"):
        layer()
    with pytest.raises(dims.ShapeError, match=f"{name} merges two tensors or more, got \\(2,\\)"):
        layer.output_shape(dims.Shape([2]))
    with pytest.raises(shapes.ShapeError, match=f"{name} merges two tensors or more"):
        shapes.infer(fl.Chain(kind()), (3, 2))


@pytest.mark.parametrize("kind", MERGE_TYPES)
def test_inputs_that_are_not_one_tensor_are_refused_by_the_rule(kind: type[fl.Module]) -> None:
    layer = kind()
    with pytest.raises(dims.ShapeError, match="merges tensors, but one of its inputs is None"):
        layer.output_shape(dims.Shape([2]), None)
    pair = (dims.Shape([2]), dims.Shape([2]))
    with pytest.raises(dims.ShapeError, match="merges tensors"):
        layer.output_shape(dims.Shape([2]), pair)


def test_mismatched_shapes_are_shape_errors_naming_the_node() -> None:
    model = fl.Chain(fl.Parallel(fl.Linear(4, 3), fl.Linear(4, 5)), fl.Add())
    with pytest.raises(shapes.ShapeError, match="Add at 'Add' got \\(B, 3\\), \\(B, 5\\): Add needs sizes"):
        shapes.infer(model, ("B", 4))
    with pytest.raises(fl.ChainError):
        model(torch.zeros(2, 4))
    concatenated = fl.Chain(fl.Parallel(fl.Linear(4, 3), fl.Linear(4, 5)), fl.Cat(dim=0))
    with pytest.raises(shapes.ShapeError, match="Cat needs equal sizes outside dim 0"):
        shapes.infer(concatenated, (2, 4))
    with pytest.raises(shapes.ShapeError, match="Cat concatenates along dim 2"):
        shapes.infer(fl.Chain(fl.Parallel(fl.Identity(), fl.Identity()), fl.Cat(dim=2)), ("B", 4))


def test_merges_take_a_tuple_from_the_previous_child_in_a_chain() -> None:
    x = randn(3, 6)
    model = fl.Chain(fl.Chunk(3, dim=-1), fl.Multiply())
    a, b, c = x.chunk(3, dim=-1)
    torch.testing.assert_close(model(x), a * b * c)
    assert shapes.infer(model, ("B", 6)).output == dims.Shape(["B", 2])


def test_an_in_place_residual_add_gives_the_same_values_and_gradients() -> None:
    def block(inplace: bool) -> fl.Graph:
        torch.manual_seed(0)
        return fl.Graph(
            {"fc": fl.Linear(4, 4), "norm": fl.LayerNorm(4), "add": fl.Add(inplace=inplace), "act": fl.ReLU()},
            edges=["input -> fc -> norm -> add -> act", "input -> add"],
        )

    x = torch.randn(3, 4)
    plain, in_place = block(False), block(True)
    outputs = [model(x) for model in (plain, in_place)]
    torch.testing.assert_close(outputs[0], outputs[1])
    for output in outputs:
        output.square().sum().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), in_place.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    assert repr(in_place.add) == "Add(inplace=True)"
    first = torch.zeros(2)
    assert fl.Add(inplace=True)(first, torch.ones(2)) is first


# -- Mean, Stack, VecDot, BatchMatmul -------------------------------------------------------------


def rule_or_refusal(layer: torch.nn.Module, *input_shapes: tuple[int, ...]) -> Any:
    try:
        return shapes.infer(layer, *input_shapes).output
    except shapes.ShapeError:
        return shapes.ShapeError


def forward_or_refusal(layer: torch.nn.Module, *input_shapes: tuple[int, ...]) -> Any:
    try:
        return dims.Shape(layer(*(torch.zeros(shape) for shape in input_shapes)).shape)
    except (RuntimeError, IndexError, fl.LayerError):
        return shapes.ShapeError


@settings(max_examples=200, deadline=None)
@given(
    input_shapes=st.lists(st.lists(st.sampled_from([1, 2, 3]), max_size=3).map(tuple), min_size=2, max_size=3),
    dim=st.integers(-4, 3),
    kind=st.sampled_from(["Mean", "Stack", "VecDot", "BatchMatmul"]),
)
def test_new_merges_rules_give_the_forwards_shape_or_refuse_what_it_refuses(
    input_shapes: list[tuple[int, ...]], dim: int, kind: str
) -> None:
    if kind in ("VecDot", "BatchMatmul"):
        input_shapes = input_shapes[:2]
    layer = fl.Stack(dim) if kind == "Stack" else getattr(fl, kind)()
    assert rule_or_refusal(layer, *input_shapes) == forward_or_refusal(layer, *input_shapes)


@settings(max_examples=100, deadline=None)
@given(b=st.integers(0, 3), n=st.integers(0, 3), m=st.integers(0, 3), p=st.integers(0, 3), spoil=st.integers(0, 4))
def test_batch_matmul_rule_on_rank_3_inputs(b: int, n: int, m: int, p: int, spoil: int) -> None:
    second = [b, m, p]
    if spoil < 2:
        second[spoil] += 1
    layer = fl.BatchMatmul()
    assert rule_or_refusal(layer, (b, n, m), tuple(second)) == forward_or_refusal(layer, (b, n, m), tuple(second))


def test_new_merges_match_torch() -> None:
    a, b, c = randn(2, 3), randn(2, 3, seed=1), randn(2, 3, seed=2)
    torch.testing.assert_close(fl.Mean()(a, b, c), torch.stack([a, b, c], dim=1).mean(dim=1))  # TorchArc's MergeMean
    torch.testing.assert_close(fl.Add()(a, b, c), torch.stack([a, b, c], dim=1).sum(dim=1))  # MergeSum
    torch.testing.assert_close(fl.Multiply()(a, b, c), torch.stack([a, b, c], dim=1).prod(dim=1))  # MergeProd
    torch.testing.assert_close(fl.Stack(dim=1)(a, b), torch.stack([a, b], dim=1))
    torch.testing.assert_close(fl.Stack(dim=-1)(a, b), torch.stack([a, b], dim=-1))
    x, y = randn(2, 3, 5), randn(3, 5, seed=1)
    torch.testing.assert_close(fl.VecDot()(x, y), torch.linalg.vecdot(x, y))
    p, q = randn(4, 2, 3), randn(4, 3, 5, seed=1)
    torch.testing.assert_close(fl.BatchMatmul()(p, q), torch.bmm(p, q))


def test_new_merges_symbolic_rules() -> None:
    assert shapes.infer(fl.Stack(1), ("B", "F"), ("B", "F"), ("B", "F")).output == dims.Shape(["B", 3, "F"])
    report = shapes.infer(fl.Stack(0), ("B", "F"), ("B", "G"))
    assert report.output == dims.Shape([2, "B", "F"])
    assert [str(constraint).split(" (")[0] for constraint in report.constraints] == ["F = G"]
    assert shapes.infer(fl.Mean(), ("B", 1), (1, "F")).output == dims.Shape(["B", "F"])
    assert shapes.infer(fl.VecDot(), (2, "T", "F"), ("T", "F")).output == dims.Shape([2, "T"])
    assert shapes.infer(fl.BatchMatmul(), ("B", "N", "M"), ("B", "M", "P")).output == dims.Shape(["B", "N", "P"])
    with pytest.raises(shapes.ShapeError, match="BatchMatmul expects two inputs of rank 3"):
        shapes.infer(fl.BatchMatmul(), ("N", "M"), ("M", "P"))
    with pytest.raises(shapes.ShapeError, match=r"BatchMatmul expects the second input's dim 1 to be 4, got 5"):
        shapes.infer(fl.BatchMatmul(), ("B", 3, 4), ("B", 5, 6))
    with pytest.raises(shapes.ShapeError, match="Stack expects inputs of the same shape"):
        shapes.infer(fl.Stack(1), ("B", 3), ("B",))
    with pytest.raises(shapes.ShapeError, match="VecDot takes two tensors"):
        shapes.infer(fl.VecDot(), ("B", 3), ("B", 3), ("B", 3))
    with pytest.raises(fl.LayerError, match=r"Stack: dim must be an int, got 1\.5"):
        fl.Stack(1.5)  # type: ignore[arg-type]
    with pytest.raises(fl.LayerError, match="Mean merges two inputs or more, got 1"):
        fl.Mean()(randn(2))
    assert repr(fl.Stack(dim=2)) == "Stack(dim=2)"


def test_pack_returns_its_inputs_as_one_tuple_and_its_rule_says_so() -> None:
    first, second = torch.randn(2, 3), torch.randn(4)
    packed = fl.Pack()(first, second)
    assert isinstance(packed, tuple)
    assert packed[0] is first
    assert packed[1] is second
    assert fl.Pack().output_shape(dims.Shape(["B", 3]), None) == (dims.Shape(["B", 3]), None)
