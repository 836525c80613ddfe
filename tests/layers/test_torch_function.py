"""TorchFunction: torch's values, the rule by meta evaluation (numbers only), names refused."""

from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.errors import LayerError, ShapeError
from fluxion.layers.torch_function import tensor_functions
from tests.layers.helpers import randn


@pytest.mark.parametrize(
    ("name", "kwargs", "shapes_in"),
    [
        ("flatten", {"start_dim": 1}, [(2, 3, 4)]),
        ("topk", {"k": 2, "dim": -1}, [(3, 5)]),
        ("transpose", {"dim0": 0, "dim1": 1}, [(3, 5)]),
        ("cdist", {}, [(2, 3, 4), (2, 5, 4)]),
        ("softmax", {"dim": -1}, [(2, 3)]),
        ("split", {"split_size_or_sections": 2, "dim": 1}, [(2, 5)]),
    ],
)
def test_values_and_shapes_match_torch(name: str, kwargs: dict[str, Any], shapes_in: list[tuple[int, ...]]) -> None:
    inputs = [randn(*shape, seed=seed) for seed, shape in enumerate(shapes_in)]
    output = fl.TorchFunction(name, **kwargs)(*inputs)
    expected = getattr(torch, name)(*inputs, **kwargs)
    leaves = torch.utils._pytree.tree_leaves
    for mine, theirs in zip(leaves(output), leaves(expected), strict=True):
        torch.testing.assert_close(mine, theirs)
    inferred = shapes.infer(fl.TorchFunction(name, **kwargs), *shapes_in).output
    if isinstance(expected, torch.Tensor):
        assert inferred == dims.Shape(expected.shape)
    else:
        assert inferred == tuple(dims.Shape(item.shape) for item in expected)


def test_the_rule_needs_numbers_and_says_so() -> None:
    with pytest.raises(ShapeError, match=r"TorchFunction\('flatten'\) gives a size that follows no one symbol"):
        shapes.infer(fl.TorchFunction("flatten"), ("B", 3))
    with pytest.raises(ShapeError, match=r"TorchFunction\('topk'\) fails for these shapes: .*"):
        shapes.infer(fl.TorchFunction("topk", k=9), (2, 3))
    with pytest.raises(ShapeError, match=r"TorchFunction\('flatten'\) fails for these shapes: .*nope"):
        shapes.infer(fl.TorchFunction("flatten", nope=1), (2, 3))


@pytest.mark.parametrize("name", ["load", "save", "manual_seed", "set_default_dtype", "os", "nope", "__import__", ""])
def test_names_that_are_not_torch_functions_of_tensors_are_refused(name: str) -> None:
    with pytest.raises(LayerError, match="TorchFunction: name must be one of torch's functions of tensors"):
        fl.TorchFunction(name)
    assert name not in tensor_functions()


def test_a_close_name_is_suggested_and_the_repr_shows_the_call() -> None:
    with pytest.raises(LayerError, match=r"got 'flaten' \(closest: flatten"):
        fl.TorchFunction("flaten")
    assert repr(fl.TorchFunction("topk", k=2, dim=-1)) == "TorchFunction('topk', k=2, dim=-1)"


def test_keyword_arguments_as_one_mapping_as_a_spec_writes_them() -> None:
    x = randn(2, 5)
    both = fl.TorchFunction("topk", {"k": 3}, dim=-1)
    assert both.kwargs == {"k": 3, "dim": -1}
    torch.testing.assert_close(both(x)[0], torch.topk(x, 3, dim=-1).values)
    with pytest.raises(LayerError, match="TorchFunction: kwargs must be a mapping of keyword arguments, got 3"):
        fl.TorchFunction("topk", 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kwargs", "shape", "expected"),
    [
        ("topk", {"k": 3}, ("B", 10), "((B, 3), (B, 3))"),
        ("cumsum", {"dim": 1}, ("B", "T", 4), "(B, T, 4)"),
        ("mean", {"dim": 1}, ("B", "T", 4), "(B, 4)"),
        ("transpose", {"dim0": 1, "dim1": 2}, ("B", "T", 4), "(B, 4, T)"),
    ],
)
def test_symbolic_sizes_that_are_symbols_are_read_back(
    name: str, kwargs: dict[str, Any], shape: tuple[Any, ...], expected: str
) -> None:
    report = shapes.infer(fl.Chain(fl.TorchFunction(name, **kwargs)), shape)
    assert repr(report.output) == expected
    # read back at other sizes, the symbolic output is what the function really gives
    sizes = {symbol: 5 + index for index, symbol in enumerate(shape) if isinstance(symbol, str)}
    output = fl.TorchFunction(name, **kwargs)(torch.zeros([sizes.get(size, size) for size in shape]))
    real = tuple(dims.Shape(item.shape) for item in output) if isinstance(output, tuple) else dims.Shape(output.shape)
    assert dims.substitute_shape(report.output, sizes) == real


def test_a_size_that_is_an_expression_is_refused() -> None:
    with pytest.raises(ShapeError, match="no symbolic shape rule for sizes that are expressions"):
        fl.TorchFunction("relu").output_shape(dims.Shape([dims.dim("H") * 2]))
