"""Graph specs with named outputs and nodes called again: built, run, dumped and loaded back."""

from typing import Any

import pytest
import torch

from fluxion import dims, shapes, spec


def stereo_spec(outputs: Any) -> dict[str, Any]:
    return {
        "type": "Graph",
        "inputs": {"left": ["B", 6], "right": ["B", 6]},
        "nodes": [
            {"type": "Linear", "id": "conv", "out_features": 4},
            {"type": "ReLU", "id": "act"},
            {"type": "Linear", "id": "l_mlp", "out_features": 2},
            {"type": "Linear", "id": "r_mlp", "out_features": 3},
        ],
        "edges": ["left -> conv -> act -> l_mlp", "right -> conv~right -> act~right -> r_mlp"],
        "outputs": outputs,
    }


def test_a_graph_spec_with_named_outputs_and_calls_builds_and_runs() -> None:
    torch.manual_seed(0)
    model = spec.loads(stereo_spec({"left": "l_mlp", "right": "r_mlp"}))
    assert list(model.state_dict()) == [
        "conv.weight",
        "conv.bias",
        "l_mlp.weight",
        "l_mlp.bias",
        "r_mlp.weight",
        "r_mlp.bias",
    ]
    left, right = torch.randn(2, 6), torch.randn(2, 6)
    out = model({"left": left, "right": right})
    assert list(out) == ["left", "right"]
    torch.testing.assert_close(out["right"], model.r_mlp(model.conv(right).relu()))
    assert shapes.infer(model, left=("B", 6), right=("B", 6)).output == {
        "left": dims.Shape(["B", 2]),
        "right": dims.Shape(["B", 3]),
    }


@pytest.mark.parametrize("outputs", [{"left": "l_mlp", "right": "r_mlp"}, ["l_mlp", "r_mlp"]])
def test_dump_and_load_give_the_same_graph(outputs: Any) -> None:
    data = stereo_spec(outputs)
    model = spec.loads(data)
    written = spec.dump(model, inputs={"left": ["B", 6], "right": ["B", 6]})
    assert written["edges"] == data["edges"]
    assert written["outputs"] == outputs
    again = spec.loads(written)
    assert repr(again) == repr(model)
    again.load_state_dict(model.state_dict())
    left, right = torch.randn(2, 6), torch.randn(2, 6)
    first, second = model(left, right), again(left, right)
    if isinstance(first, dict):
        assert isinstance(second, dict)
        assert list(first) == list(second)
        for key in first:
            torch.testing.assert_close(first[key], second[key])
    else:
        torch.testing.assert_close(first, second)


def test_an_output_given_as_one_name_is_the_value() -> None:
    model = spec.loads(
        {"type": "Graph", "nodes": {"act": {"type": "ReLU"}}, "edges": ["input -> act"], "outputs": "act"}
    )
    x = torch.randn(3)
    torch.testing.assert_close(model(x), x.relu())
    assert spec.dump(model)["outputs"] == ["act"]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (3, 'a Graph\'s "outputs" is a name, a list of names'),
        ({"left": 3}, 'a Graph\'s "outputs" is a name, a list of names'),
        ({"left": "nope"}, "output 'nope' is not known"),
    ],
)
def test_bad_outputs_are_a_spec_error_at_the_graph(outputs: Any, message: str) -> None:
    with pytest.raises(spec.SpecError, match=message) as caught:
        spec.loads({"type": "Chain", "children": [stereo_spec(outputs)]})
    assert caught.value.path is not None
    assert caught.value.path.startswith("children[0]")


def test_a_call_of_an_unknown_node_is_a_spec_error_with_a_suggestion() -> None:
    data = stereo_spec(["l_mlp", "r_mlp"])
    data["edges"] = ["left -> conv -> act -> l_mlp", "right -> cnv~right -> act~right -> r_mlp"]
    with pytest.raises(spec.SpecError, match="did you mean 'conv~right'"):
        spec.loads(data)


def test_the_schema_takes_every_form_of_outputs() -> None:
    outputs = spec.schema()["$defs"]
    text = str(outputs)
    assert "names by key (a dict)" in text


def attention_spec(arguments: Any) -> dict[str, Any]:
    return {
        "type": "Graph",
        "inputs": {"x": ["B", 5, 8], "context": ["B", 7, 8]},
        "nodes": [
            {"type": "MultiHeadAttention", "id": "attn", "num_heads": 2},
            {"type": "MultiHeadAttention", "id": "cross", "num_heads": 2},
        ],
        "edges": ["x -> attn"],
        "outputs": "cross",
        "arguments": arguments,
    }


def test_a_graph_spec_gives_a_node_one_value_in_several_slots_and_dumps_it_back() -> None:
    arguments = {"attn": ["x", "x", "x"], "cross": ["attn", "context", "context"]}
    data = attention_spec(arguments)
    model = spec.loads(data)  # the sizes inferred at load, through each slot
    assert model.attn.embed_dim == 8
    x, context = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    torch.testing.assert_close(model(x, context), model.cross(model.attn(x, x, x), context, context))
    assert shapes.infer(model, ("B", 5, 8), context=("B", 7, 8)).output == dims.Shape(["B", 5, 8])
    written = spec.dump(model, inputs={"x": ["B", 5, 8], "context": ["B", 7, 8]})
    assert written["arguments"] == arguments
    assert written["edges"] == data["edges"]
    again = spec.loads(written)
    again.load_state_dict(model.state_dict())
    assert repr(again) == repr(model)
    torch.testing.assert_close(again(x, context), model(x, context))


def test_a_graph_without_argument_lists_dumps_none() -> None:
    assert "arguments" not in spec.dump(spec.loads(stereo_spec(["l_mlp", "r_mlp"])))


@pytest.mark.parametrize(
    ("arguments", "path", "message"),
    [
        (["x"], "arguments", 'a Graph\'s "arguments" is an object of argument lists by node id'),
        ({"attn": "x"}, "arguments.attn", "an argument list is a list of names"),
        ({"attn": ["x", 3]}, "arguments.attn", "an argument list is a list of names"),
        ({"attn": ["x", "xx", "x"], "cross": ["attn", "context"]}, "", "did you mean 'x'?"),
        ({"attn": ["context", "context"], "cross": ["attn", "context"]}, "", "an edge leads from 'x' into 'attn'"),
    ],
)
def test_a_wrong_argument_list_is_a_spec_error_at_its_place(arguments: Any, path: str, message: str) -> None:
    with pytest.raises(spec.SpecError, match=message) as caught:
        spec.loads({"type": "Chain", "children": [attention_spec(arguments)]})
    assert caught.value.path == "children[0]" + (f".{path}" if path else "")


def test_arguments_belong_to_a_graph_node() -> None:
    with pytest.raises(spec.SpecError, match='"arguments" belongs to a Graph node') as caught:
        spec.loads({"type": "Chain", "children": [{"type": "ReLU", "arguments": {"a": ["b"]}}]})
    assert caught.value.path == "children[0]"


def test_the_schema_describes_argument_lists() -> None:
    layer = spec.schema()["$defs"]["layer"]["properties"]
    assert layer["arguments"]["additionalProperties"]["items"] == {"type": "string"}
