"""TorchArc's graph section: inputs, positional and keyword arguments in the forward's order, the
nested list of a merge, calls in any order, outputs; each mistake one error at its place."""

from typing import Any

import pytest
import torch

from fluxion import spec
from fluxion.spec import SpecError
from fluxion.spec.torcharc import UnusedModuleWarning
from fluxion.spec.torcharc.graph import wire

HEADS = {
    "left": {"Linear": {"in_features": 4, "out_features": 3}},
    "right": {"Linear": {"in_features": 5, "out_features": 2}},
    "merge": {"MergeConcat": None},
    "tail": {"Linear": {"in_features": 5, "out_features": 1}},
}


def two_heads(calls: dict[str, Any]) -> dict[str, Any]:
    return {"modules": HEADS, "graph": {"input": ["a", "b"], "modules": calls, "output": "tail"}}


def by_hand(model: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    merged = torch.cat([model.left(a), model.right(b)], dim=1)
    return model.tail(merged)


def test_a_nested_list_gives_a_merge_its_values_in_order() -> None:
    model = spec.loads(two_heads({"left": ["a"], "right": ["b"], "merge": [["left", "right"]], "tail": ["merge"]}))
    a, b = torch.randn(2, 4), torch.randn(2, 5)
    assert torch.equal(model(a, b), by_hand(model, a, b))
    assert model.sources("merge") == ("left", "right")


def test_calls_may_come_in_any_order_and_keys_follow_the_order_they_run_in() -> None:
    model = spec.loads(two_heads({"tail": ["merge"], "merge": [["left", "right"]], "right": ["b"], "left": ["a"]}))
    a, b = torch.randn(2, 4), torch.randn(2, 5)
    assert torch.equal(model(a, b), by_hand(model, a, b))
    assert [key.split(".")[0] for key in model.state_dict()][::2] == ["right", "left", "tail"]


def test_keyword_values_go_in_the_forwards_parameter_order() -> None:
    attention = {"MultiheadAttention": {"embed_dim": 8, "num_heads": 2, "batch_first": True}}
    document = {
        "modules": {"attn": attention},
        "graph": {
            "input": ["q", "kv", "v"],
            "modules": {"attn": {"value": "v", "query": "q", "key": "kv"}},
            "output": "attn",
        },
    }
    model = spec.loads(document)
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    out, _ = model(q, k, v)
    assert torch.equal(out, model.attn(q, k, v)[0])
    assert next(iter(model.state_dict())) == "attn.in_proj_weight"


def test_a_list_output_returns_a_tuple() -> None:
    document = {
        "modules": HEADS,
        "graph": {"input": ["a", "b"], "modules": {"left": ["a"], "right": ["b"]}, "output": ["left", "right"]},
    }
    with pytest.warns(UnusedModuleWarning) as warned:
        model = spec.loads(document)
    assert sorted(str(warning.message).split("'")[1] for warning in warned) == ["merge", "tail"]
    a, b = torch.randn(2, 4), torch.randn(2, 5)
    left, right = model(a, b)
    assert torch.equal(left, model.left(a))
    assert torch.equal(right, model.right(b))


def test_self_attention_takes_one_value_as_query_key_and_value() -> None:
    document = {
        "modules": {
            "attn": {"MultiheadAttention": {"embed_dim": 8, "num_heads": 2, "batch_first": True}},
            "out": {"Get": {"key": 0}},
        },
        "graph": {
            "input": "x",
            "modules": {"attn": {"query": "x", "key": "x", "value": "x"}, "out": ["attn"]},
            "output": "out",
        },
    }
    model = spec.loads(document, inputs={"x": ["B", 5, 8]})
    plain = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    plain.load_state_dict(model.attn.state_dict())
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(model(x), plain(x, x, x)[0])
    assert model.sources("attn") == ("x", "x", "x")
    assert model.arguments == {"attn": ("x", "x", "x")}
    assert list(model.state_dict()) == [f"attn.{key}" for key in plain.state_dict()]


def test_a_merge_may_take_one_value_twice() -> None:
    calls = {"left": ["a"], "right": ["b"], "merge": [["left", "left"]], "tail": ["merge"]}
    modules = {**HEADS, "tail": {"Linear": {"in_features": 6, "out_features": 1}}}
    document = {"modules": modules, "graph": {"input": ["a", "b"], "modules": calls, "output": ["tail", "right"]}}
    model = spec.loads(document)
    a, b = torch.randn(2, 4), torch.randn(2, 5)
    h = model.left(a)
    tail, right = model(a, b)
    torch.testing.assert_close(tail, model.tail(torch.cat([h, h], dim=1)))
    torch.testing.assert_close(right, model.right(b))
    assert model.edges == ("a -> left", "b -> right", "left -> merge", "merge -> tail")
    again = spec.loads(spec.dump(model))
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again(a, b)[0], tail)


def test_a_value_given_twice_among_others_keeps_every_place() -> None:
    modules = {"dot": {"MergeDot": None}, "stack": {"MergeStack": {"dim": 1}}}
    calls = {"dot": ["x", "x"], "stack": [["y", "x", "y"]]}
    document = {"modules": modules, "graph": {"input": ["x", "y"], "modules": calls, "output": ["dot", "stack"]}}
    model = spec.loads(document)
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    dot, stack = model(x, y)
    torch.testing.assert_close(dot, torch.linalg.vecdot(x, x))
    torch.testing.assert_close(stack, torch.stack([y, x, y], dim=1))
    assert model.arguments == {"dot": ("x", "x"), "stack": ("y", "x", "y")}


def _wire(graph: Any) -> None:
    kinds = {
        "left": "Linear",
        "right": "Linear",
        "merge": "Cat",
        "tail": "Linear",
        "attn": "torch.nn.MultiheadAttention",
    }
    torcharc = {
        "left": "Linear",
        "right": "Linear",
        "merge": "MergeConcat",
        "tail": "Linear",
        "attn": "MultiheadAttention",
    }
    from fluxion.spec.torcharc.classes import extra_classes

    wire(graph, kinds, torcharc, extra_classes({"torch.nn.MultiheadAttention"}))


def graph(calls: Any, output: Any = "tail", inputs: Any = ("a", "b")) -> dict[str, Any]:
    return {"input": list(inputs), "modules": calls, "output": output}


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        (
            graph({"left": ["a"], "tail": ["lft"]}),
            "graph.modules.tail[0]",
            "'lft' is neither an input nor a call of the graph (closest: left)",
        ),
        (
            graph({"left": ["a"], "merge": [["left", "rihgt"]], "tail": ["merge"]}),
            "graph.modules.merge[0][1]",
            "(closest: right)",
        ),
        (
            graph({"left": ["a"], "merge": [["left", "right"]], "tail": ["merge"]}),
            "graph.modules.merge[0][1]",
            "'right' is a module the graph does not call",
        ),
        (
            graph({"lefty": ["a"], "tail": ["lefty"]}),
            "graph.modules.lefty",
            "no module 'lefty' in modules (closest: left)",
        ),
        (graph({"left": ["a"], "tail": ["left"]}, output="tial"), "graph.output", "(closest: tail)"),
        (graph({"left": ["a"], "tail": ["left"]}, output={"y": "tial"}), "graph.output.y", "(closest: tail)"),
        (
            graph({"left": ["tail"], "tail": ["left"]}),
            "graph.modules.left",
            "the graph has a cycle: left <- tail <- left",
        ),
        (graph({"left": ["a"], "right": ["b"], "tail": ["left"]}), "graph.modules.right", "reaches no output"),
        (graph({"left": "a", "tail": ["left"]}), "graph.modules.left", "a call's arguments are a list"),
        (
            graph({"left": [["a"]], "tail": ["left"]}),
            "graph.modules.left[0]",
            "a list of values is an argument of TorchArc's Merge",
        ),
        (graph({"left": [["a", ["b"]]], "tail": ["left"]}), "graph.modules.left[0]", "Merge"),
        (graph({"left": ["a"], "tail": {"inptu": "left"}}), "graph.modules.tail.inptu", "(closest: input)"),
        (graph({"attn": {"query": "a", "value": "b"}, "tail": ["attn"]}), "graph.modules.attn", "give key too"),
        (graph({"left": ["a"], "tail": ["left"]}, inputs=["a", "a"]), "graph.input[1]", "named twice"),
        (graph({"left": ["a"], "tail": ["left"]}, inputs=["left"]), "graph.input[0]", "both an input and a module"),
        (graph({"left~x~y": ["a"], "tail": ["left~x~y"]}), 'graph.modules["left~x~y"]', "name~suffix"),
        ({**graph({"left": ["a"], "tail": ["left"]}), "outputs": "tail"}, "graph.outputs", "(closest: output)"),
        ({"input": "a", "modules": {"left": ["a"]}}, "graph", "graph needs output"),
    ],
)
def test_a_graph_mistake_is_one_error_at_its_place(section: Any, path: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        _wire(section)
    assert caught.value.path == path
    assert message in caught.value.reason


def test_a_list_output_of_one_name_returns_a_tuple_of_one_as_torcharc_does() -> None:
    document = {
        "modules": {"output": {"Linear": {"in_features": 4, "out_features": 3}}},
        "graph": {"input": "x", "modules": {"output": ["x"]}, "output": ["output"]},
    }
    model = spec.loads(document)
    x = torch.randn(2, 4)
    result = model(x)
    assert isinstance(result, tuple)
    assert len(result) == 1
    assert torch.equal(result[0], model["output"](x))
    assert list(model.state_dict()) == ["output.weight", "output.bias"]  # the packing node holds nothing
    assert "output_1" in dict(model.named_children())  # named around the module called output
    assert spec.loads(spec.dump(model))(x)[0].shape == (2, 3)
