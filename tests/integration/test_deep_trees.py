"""Trees deeper than Python's recursion limit: every part walks them without recursion (repr, torch's
walks, copies, weights, specs), and a forward call or a shape inference too deep for the limit is one
TreeError that says which limit would do."""

import sys
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes, spec, weights
from fluxion.errors import SpecError

DEEP = 1200  # deeper than Python's default recursion limit (1000): only walks without recursion pass


def deep_tree(depth: int) -> fl.Chain:
    node: torch.nn.Module = fl.Linear(2, 2)
    for _ in range(depth):
        node = fl.Chain(node)
    assert isinstance(node, fl.Chain)
    return node


@pytest.fixture(scope="module")
def deep() -> fl.Chain:
    return deep_tree(DEEP)


def deepest_address(depth: int) -> str:
    return ".".join(["Chain"] * (depth - 1) + ["Linear"])


def test_default_recursion_limit() -> None:
    assert sys.getrecursionlimit() <= DEEP  # what the tests below rely on


def test_repr_of_a_deep_tree(deep: fl.Chain) -> None:
    lines = repr(deep).splitlines()
    assert len(lines) == DEEP + 1
    assert lines[-1].endswith("└── Linear(in_features=2, out_features=2, bias=True)")


def test_named_modules_parameters_and_state_dict_of_a_deep_tree(deep: fl.Chain) -> None:
    assert len(list(deep.named_modules())) == DEEP + 1
    assert len(list(deep.parameters())) == 2
    assert list(deep.state_dict()) == [f"{deepest_address(DEEP)}.weight", f"{deepest_address(DEEP)}.bias"]


def test_structural_copy_train_and_to_on_a_deep_tree(deep: fl.Chain) -> None:
    twin = deep.structural_copy()
    assert list(twin.state_dict()) == list(deep.state_dict())
    key = f"{deepest_address(DEEP)}.weight"
    assert twin.state_dict(keep_vars=True)[key] is deep.state_dict(keep_vars=True)[key]
    tree = deep_tree(DEEP)  # not the copy: it shares the parameters, which ``to`` would convert
    tree.eval()
    assert not any(module.training for module in tree.modules())
    tree.to(torch.float64)
    assert all(parameter.dtype == torch.float64 for parameter in tree.parameters())


def test_weights_save_and_load_of_a_deep_tree(deep: fl.Chain, tmp_path: Any) -> None:
    path = tmp_path / "deep.safetensors"
    weights.save(deep, path)
    twin = deep_tree(DEEP)
    weights.load(twin, path)
    torch.testing.assert_close(twin.state_dict(), deep.state_dict())


def test_spec_dump_of_a_tree_as_deep_as_a_spec_may_nest_loads_back() -> None:
    tree = deep_tree(90)  # two levels of JSON (a node, its children) a level of the tree
    document = spec.dump(tree)
    for _ in range(90):
        (document,) = document["children"]
    assert document == {"type": "Linear", "in_features": 2, "out_features": 2}
    assert list(spec.loads(spec.dump(tree)).state_dict()) == list(tree.state_dict())


def test_spec_dump_and_save_of_a_deeper_tree_are_one_spec_error(deep: fl.Chain, tmp_path: Any) -> None:
    for write in (lambda: spec.dump(deep), lambda: spec.save(deep, tmp_path / "deep.json")):
        with pytest.raises(SpecError, match="cannot dump this tree: its spec would nest more than 200 levels"):
            write()
    assert not list(tmp_path.iterdir())


def test_a_forward_call_too_deep_for_the_recursion_limit_is_one_tree_error(deep: fl.Chain) -> None:
    with pytest.raises(fl.TreeError, match=rf"forward call ran out of .* tree {DEEP} levels deep") as raised:
        deep(torch.zeros(1, 2))
    assert "sys.setrecursionlimit(" in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_shape_inference_too_deep_for_the_recursion_limit_is_one_tree_error(deep: fl.Chain) -> None:
    with pytest.raises(fl.TreeError, match=rf"shape inference ran out of .* tree {DEEP} levels deep"):
        shapes.infer(deep, ("B", 2))


def test_the_suggested_recursion_limit_is_enough() -> None:
    tree = deep_tree(400)
    with pytest.raises(fl.TreeError) as raised:
        tree(torch.zeros(1, 2))
    suggested = int(str(raised.value).split("sys.setrecursionlimit(")[1].split(")")[0])
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(suggested)
    try:
        assert tree(torch.zeros(1, 2)).shape == (1, 2)
        assert shapes.infer(tree, ("B", 2)).output == shapes.infer(fl.Linear(2, 2), ("B", 2)).output
    finally:
        sys.setrecursionlimit(limit)


def test_a_recursion_error_of_a_shallow_tree_is_described_as_a_failure() -> None:
    def forever(x: torch.Tensor) -> torch.Tensor:
        return forever(x)

    model = fl.Chain(fl.Chain(fl.Lambda(forever)))
    with pytest.raises(fl.ChainError, match=r"Lambda at 'Chain\.Lambda' failed: RecursionError"):
        model(torch.zeros(1))
