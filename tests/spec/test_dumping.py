"""spec.dump: a tree written as a spec that loads back into the same tree, or a SpecError saying
why it cannot be written."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import spec
from fluxion.adapters import lora
from fluxion.spec import SpecError
from fluxion.tree.module import record_constructor_call


def test_a_chain_that_builds_its_children_is_refused_when_they_changed() -> None:
    with_lora = fl.Chain(fl.MultiHeadAttention(8, num_heads=2))
    lora.inject(with_lora, rank=2, targets="MultiHeadAttention.projections.*")
    with pytest.raises(SpecError, match="children changed since it was built"):
        spec.dump(with_lora)
    replaced = fl.Chain(fl.MultiHeadAttention(8, num_heads=2))
    replaced.MultiHeadAttention.replace(replaced.MultiHeadAttention.output, fl.Identity())
    with pytest.raises(SpecError, match="children changed since it was built"):
        spec.dump(replaced)
    plain = fl.Chain(fl.MultiHeadAttention(8, num_heads=2))
    assert spec.dump(plain)["children"] == [{"type": "MultiHeadAttention", "embed_dim": 8, "num_heads": 2}]


def test_a_tie_inside_a_chain_that_builds_its_children_is_refused() -> None:
    model = spec.loads(
        {
            "type": "Chain",
            "children": [
                {"type": "MultiHeadAttention", "id": "a", "embed_dim": 4},
                {"type": "MultiHeadAttention", "id": "b", "embed_dim": 4, "share": "a"},
            ],
        }
    )
    assert model.b["projections.query"].weight is model.a["projections.query"].weight
    with pytest.raises(SpecError, match=r"tied to 'a\.projections\.query\.weight'"):
        spec.dump(model)


def test_embedding_takes_its_dtype_by_name_and_round_trips() -> None:
    model = fl.Chain(fl.Embedding(4, 3, dtype=torch.float16))
    again = spec.loads(spec.dump(model))
    assert again.Embedding.weight.dtype == torch.float16


def test_a_module_given_by_position_does_not_shift_the_other_arguments() -> None:
    @spec.register(name="ReviewWrap")
    class Wrap(fl.Chain):
        def __init__(self, inner: torch.nn.Module, scale: int = 1) -> None:
            super().__init__(inner)
            self.scale = scale

    written = spec.dump(fl.Chain(Wrap(fl.Linear(2, 2), 3)))
    assert written["children"][0]["scale"] == 3
    assert "inner" not in written["children"][0]


def test_dumping_a_graph_keeps_its_input_order() -> None:
    graph = fl.Graph({"add": fl.Add()}, edges=["x -> add", "y -> add"], inputs=("x", "y"))
    written = spec.dump(graph, inputs={"y": ["B", 2], "x": ["B", 2]})
    assert list(written["inputs"]) == ["x", "y"]
    with pytest.raises(SpecError, match="the graph's inputs are x, y"):
        spec.dump(graph, inputs={"z": ["B", 2]})


def test_a_document_starts_with_the_format_version_and_names_only_explicit_ids() -> None:
    written = spec.dump(fl.Chain(fl.Linear(2, 2), fl.Linear(2, 2), head=fl.ReLU()))
    assert list(written) == ["fluxion", "type", "children"]
    assert written["fluxion"] == 1
    assert [child.get("id") for child in written["children"]] == [None, None, "head"]


def test_sizes_filled_in_by_inference_are_written_out() -> None:
    model = spec.loads(
        {
            "type": "Chain",
            "inputs": {"x": ["B", 3, 8, 8]},
            "children": [
                {"type": "Conv2d", "out_channels": 4, "kernel_size": 3},
                {"type": "GroupNorm", "num_groups": 2},
            ],
        }
    )
    assert spec.dump(model)["children"] == [
        {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3},
        {"type": "GroupNorm", "num_groups": 2, "num_channels": 4},
    ]


def test_tied_parameters_are_written_as_a_share_of_the_first_owner() -> None:
    model = fl.Chain(a=fl.Linear(2, 2), b=fl.Linear(2, 2))
    model.b.weight = model.a.weight
    written = spec.dump(model)
    assert written["children"][1]["share"] == {"weight": "a.weight"}
    again = spec.loads(written)
    assert again.b.weight is again.a.weight
    assert again.b.bias is not again.a.bias


def test_a_graph_is_written_with_its_wiring() -> None:
    graph = fl.Graph({"a": fl.Linear(2, 2), "add": fl.Add()}, edges=["x -> a -> add", "x -> add"], inputs=("x",))
    written = spec.dump(graph)
    assert written == {
        "fluxion": 1,
        "type": "Graph",
        "inputs": ["x"],
        "outputs": ["add"],
        "nodes": [{"type": "Linear", "in_features": 2, "out_features": 2, "id": "a"}, {"type": "Add", "id": "add"}],
        "edges": ["x -> a -> add", "x -> add"],
    }
    again = spec.loads(written)
    x = torch.randn(3, 2)
    again.load_state_dict(graph.state_dict())
    assert torch.equal(again(x), graph(x))


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (torch.nn.Linear(2, 2), "the root is a torch.nn.Linear built in Python: its constructor arguments are unknown"),
        (
            fl.Chain(fl.Chain(torch.nn.Sequential())),
            "the node at 'Chain.Sequential' is a Sequential, which is not registered: call fluxion.spec.register",
        ),
        (
            fl.Chain(inner=fl.Chain(torch.nn.GELU())),
            "the node at 'inner.GELU' is a torch.nn.GELU built in Python: its constructor arguments are unknown",
        ),
    ],
)
def test_an_unregistered_class_is_named_by_its_address(model: torch.nn.Module, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec.dump(model)
    assert str(caught.value).startswith(message)


def test_a_registered_torch_module_built_outside_fluxion_cannot_be_written() -> None:
    @spec.register(name="DumpPlainScale")
    class PlainScale(torch.nn.Module):
        def __init__(self, factor: float = 2.0) -> None:
            super().__init__()
            self.factor = factor

    with pytest.raises(SpecError, match="the node at 'PlainScale' is a PlainScale built outside fluxion"):
        spec.dump(fl.Chain(PlainScale()))
    built = spec.loads({"type": "Chain", "children": [{"type": "DumpPlainScale", "factor": 3.0}]})
    assert spec.dump(built)["children"] == [{"type": "DumpPlainScale", "factor": 3.0}]


def test_a_torch_class_a_spec_built_is_written_with_the_arguments_it_was_built_with() -> None:
    node = {"type": "torch.nn.MultiheadAttention", "id": "attention", "embed_dim": 8, "num_heads": 2}
    model = spec.loads({"type": "Chain", "children": [node, {"type": "torch.nn.GELU", "approximate": "tanh"}]})
    written = spec.dump(model)
    assert written["children"] == [node, {"type": "torch.nn.GELU", "approximate": "tanh"}]
    again = spec.loads(written)
    assert [(k, v.shape) for k, v in again.state_dict().items()] == [
        (k, v.shape) for k, v in model.state_dict().items()
    ]
    assert spec.dump(copy.deepcopy(model)) == written  # copies and pickles keep the call
    assert spec.dump(pickle.loads(pickle.dumps(model))) == written


def test_a_torch_class_built_in_python_is_refused_saying_how_to_write_it() -> None:
    with pytest.raises(SpecError) as caught:
        spec.dump(fl.Chain(attention=torch.nn.MultiheadAttention(8, 2)))
    message = str(caught.value)
    assert "the node at 'attention' is a torch.nn.MultiheadAttention built in Python" in message
    assert '{"type": "torch.nn.MultiheadAttention", ...its arguments}' in message
    assert "fluxion.spec.register" in message


@pytest.mark.parametrize(
    ("layer", "kwargs", "message"),
    [
        (
            torch.nn.TransformerEncoderLayer(8, 2, activation=torch.nn.functional.gelu),
            {"d_model": 8, "nhead": 2, "activation": torch.nn.functional.gelu},
            "TransformerEncoderLayer.activation is a builtin_function_or_method, which a spec cannot hold",
        ),
        (
            torch.nn.CrossEntropyLoss(weight=torch.ones(3)),
            {"weight": torch.ones(3)},
            "CrossEntropyLoss.weight is a Tensor, which a spec cannot hold",
        ),
    ],
)
def test_an_argument_a_spec_cannot_hold_is_refused_naming_it(
    layer: torch.nn.Module, kwargs: dict[str, object], message: str
) -> None:
    record_constructor_call(layer, (), kwargs)  # as a spec would, were these JSON values
    with pytest.raises(SpecError) as caught:
        spec.dump(fl.Chain(block=layer))
    assert str(caught.value) == f"the node at 'block' cannot be written: {message}"


def nested(depth: int) -> torch.nn.Module:
    node: torch.nn.Module = fl.ReLU()
    for _ in range(depth):
        node = fl.Chain(node)
    return node


def test_a_tree_too_deep_to_load_back_is_refused_without_recursion() -> None:
    assert spec.loads(spec.dump(nested(60))) is not None
    with pytest.raises(SpecError, match="cannot dump this tree: its spec would nest more than 200 levels"):
        spec.dump(nested(2000))


def test_inputs_of_a_chain_keep_the_order_given() -> None:
    written = spec.dump(fl.Chain(fl.Linear(2, 2)), inputs={"x": ("B", 2)})
    assert written["inputs"] == {"x": ["B", 2]}


LEAVES = st.sampled_from(
    [
        lambda: fl.Linear(4, 4),
        lambda: fl.LayerNorm(4),
        lambda: fl.ReLU(),
        lambda: fl.Dropout(0.1),
        lambda: fl.Linear(4, 4, bias=False),
    ]
)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> fl.Chain:
    children: list[torch.nn.Module] = []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 2 and draw(st.booleans()):
            children.append(draw(trees(depth + 1)))
        else:
            children.append(draw(LEAVES)())
    kind = draw(st.sampled_from([fl.Chain, fl.Residual, fl.Passthrough]))
    if draw(st.booleans()):
        return kind(**{f"part_{index}": child for index, child in enumerate(children)})
    return kind(*children)


@given(trees())
@settings(max_examples=40, deadline=None)
def test_a_dumped_tree_loads_back_into_the_same_tree(tree: fl.Chain) -> None:
    written = spec.dump(tree)
    again = spec.loads(written)
    assert repr(again) == repr(tree)
    assert [(key, value.shape) for key, value in again.state_dict().items()] == [
        (key, value.shape) for key, value in tree.state_dict().items()
    ]
    assert spec.dump(again) == written
    again.load_state_dict(tree.state_dict())
    tree.eval()
    again.eval()
    x = torch.randn(2, 4)
    assert torch.equal(again(x), tree(x))
