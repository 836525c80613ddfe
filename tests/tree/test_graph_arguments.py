"""Graph argument lists: one value in several argument slots of a node or call (attn(x, x, x)),
through forward, shape inference, repr, data flow, copies and surgery."""

import copy
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import inspect, shapes

from .tree_checks import check_tree


def attention_graph() -> fl.Graph:
    return fl.Graph(
        {"attn": torch.nn.MultiheadAttention(8, 2, batch_first=True), "out": fl.Get(0)},
        edges=["x -> attn -> out"],
        inputs=("x",),
        arguments={"attn": ["x", "x", "x"]},
    )


def test_self_attention_takes_one_value_as_query_key_and_value() -> None:
    graph = attention_graph()
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(graph(x), graph.attn(x, x, x)[0])
    assert graph.sources("attn") == ("x", "x", "x")
    assert graph.child_note("attn") == "← x, x, x"
    assert "attn: MultiheadAttention" in repr(graph)
    assert "← x, x, x" in repr(graph)
    check_tree(graph)


def test_the_edges_into_a_listed_node_may_be_left_out() -> None:
    written = fl.Graph(
        {"mul": fl.Multiply(), "fc": fl.Linear(3, 3)}, ["x -> mul -> fc"], ("x",), None, {"mul": ["x", "x"]}
    )
    implied = fl.Graph({"mul": fl.Multiply(), "fc": fl.Linear(3, 3)}, ["mul -> fc"], ("x",), None, {"mul": ["x", "x"]})
    implied.load_state_dict(written.state_dict())
    x = torch.randn(2, 3)
    torch.testing.assert_close(written(x), written.fc(x * x))
    torch.testing.assert_close(implied(x), written(x))
    assert implied.edges == ("mul -> fc",)


def test_a_list_of_one_value_is_an_edge_and_spreads_a_tuple_as_one_edge_does() -> None:
    graph = fl.Graph(
        {"split": fl.Chunk(2, dim=-1), "add": fl.Add()}, edges=["input -> split"], arguments={"add": ["split"]}
    )
    x = torch.randn(2, 4)
    torch.testing.assert_close(graph(x), x[:, :2] + x[:, 2:])


def test_a_list_mixes_inputs_nodes_and_calls_in_any_order() -> None:
    graph = fl.Graph(
        {"fc": fl.Linear(4, 4), "cat": fl.Cat(dim=-1)},
        edges=["x -> fc", "fc -> fc~again"],
        inputs=("x",),
        arguments={"cat": ["fc~again", "x", "fc", "fc~again"]},
    )
    x = torch.randn(2, 4)
    once = graph.fc(x)
    twice = graph.fc(once)
    torch.testing.assert_close(graph(x), torch.cat([twice, x, once, twice], dim=-1))
    report = shapes.infer(graph, ("B", 4))
    assert str(report.output) == "(B, 16)"


def test_a_further_call_takes_its_own_list() -> None:
    graph = fl.Graph(
        {"mul": fl.Multiply(), "add": fl.Add()},
        edges=["mul -> mul~again -> add", "input -> add"],
        arguments={"mul": ["input", "input"], "mul~again": ["mul", "input", "mul"]},
    )
    x = torch.randn(3)
    torch.testing.assert_close(graph(x), (x * x) * x * (x * x) + x)
    assert graph.calls("mul") == ("mul", "mul~again")
    assert graph.child_note("mul") == "← input, input; ~again ← mul, input, mul"


def test_shape_inference_sees_each_slot() -> None:
    graph = fl.Graph({"cat": fl.Cat(dim=-1)}, edges=[], inputs=("x", "y"), arguments={"cat": ["x", "y", "x"]})
    assert str(shapes.infer(graph, ("B", 2), y=("B", 3)).output) == "(B, 7)"


def test_data_flow_draws_an_edge_per_slot() -> None:
    graph = fl.Graph({"fc": fl.Linear(3, 3), "mul": fl.Multiply()}, ["input -> fc"], arguments={"mul": ["fc", "fc"]})
    flow = inspect.data_flow(graph)
    assert flow.sources("mul") == ["fc", "fc"]
    assert inspect.dot_source(graph).count("fc -> mul") == 2


def test_copies_keep_the_lists() -> None:
    graph = attention_graph()
    for copied in (copy.deepcopy(graph), pickle.loads(pickle.dumps(graph)), graph.structural_copy(), graph[:]):
        assert isinstance(copied, fl.Graph)
        assert copied.arguments == {"attn": ("x", "x", "x")}
    graph.arguments["attn"] = ("y",)  # a copy: the graph is unchanged
    assert graph.arguments == {"attn": ("x", "x", "x")}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mul": ["x", "y"]}, "an edge leads from 'z' into 'mul', whose arguments are listed as x, y"),
        ({"mul": ["x", "inptu", "z"]}, "'inptu', which is unknown; did you mean 'input'?"),
        ({"x": ["z"], "mul": ["z"]}, "'x', which is not a node; inputs take no arguments"),
        ({"mull": ["x", "z"]}, "'mull', which is not a node"),
        ({"mul": []}, "the arguments of 'mul' are empty"),
        ({"mul": "xz"}, "the arguments of 'mul' is a sequence of strings"),
        ({"mul": ["x", "mu~2", "z"]}, "a call of node 'mu', which is not a node; did you mean 'mul~2'?"),
        ({"mul": ["z"], "mul~": ["x"]}, "a further call of a node is written node~suffix"),
        ({"mul": ["mul", "x", "y", "z", "input"]}, "the edges make a cycle: mul -> mul"),
        (["mul"], "arguments maps a node (or call) to its argument list"),
    ],
)
def test_a_wrong_list_is_one_graph_error(arguments: object, message: str) -> None:
    with pytest.raises(fl.GraphError) as caught:
        fl.Graph({"mul": fl.Multiply()}, ["z -> mul"], ("x", "y", "z", "input"), "mul", arguments)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_renaming_a_node_renames_it_in_the_lists() -> None:
    graph = fl.Graph(
        {"fc": fl.Linear(2, 2), "mul": fl.Multiply()},
        edges=["input -> fc -> fc~again"],
        arguments={"mul": ["fc", "fc~again", "fc"]},
    )
    graph.replace("fc", fl.Linear(2, 2), name="proj")
    assert graph.arguments == {"mul": ("proj", "proj~again", "proj")}
    assert graph.edges == ("input -> proj -> proj~again",)
    x = torch.randn(1, 2)
    once = graph.proj(x)
    torch.testing.assert_close(graph(x), once * graph.proj(once) * once)


def test_inserting_on_an_edge_of_a_list_feeds_each_of_its_slots() -> None:
    for edges in (["x -> attn -> out"], ["attn -> out"]):
        graph = fl.Graph(
            {"attn": torch.nn.MultiheadAttention(8, 2, batch_first=True), "out": fl.Get(0)},
            edges=edges,
            inputs=("x",),
            arguments={"attn": ["x", "x", "x"]},
        )
        graph.insert_on_edge("x", "attn", fl.LayerNorm(8), name="norm")
        assert graph.arguments == {"attn": ("norm", "norm", "norm")}
        assert graph.sources("norm") == ("x",)
        x = torch.randn(2, 5, 8)
        normed = graph.norm(x)
        torch.testing.assert_close(graph(x), graph.attn(normed, normed, normed)[0])
        check_tree(graph)


def test_inserting_before_a_node_that_reads_one_value_in_several_slots() -> None:
    graph = attention_graph()
    graph.insert(0, fl.LayerNorm(8), name="norm")
    assert graph.sources("attn") == ("norm", "norm", "norm")
    assert list(graph.state_dict())[:2] == ["norm.weight", "norm.bias"]


def test_inserting_after_a_value_read_by_a_list_reroutes_every_slot() -> None:
    graph = fl.Graph({"fc": fl.Linear(3, 3), "mul": fl.Multiply()}, ["input -> fc"], arguments={"mul": ["fc", "fc"]})
    graph.insert_after_type(fl.Linear, fl.ReLU())
    assert graph.arguments == {"mul": ("ReLU", "ReLU")}
    assert graph.edges == ("input -> fc -> ReLU",)
    x = torch.randn(2, 3)
    torch.testing.assert_close(graph(x), graph.fc(x).relu() ** 2)


def test_removing_a_node_gives_each_of_its_slots_its_input() -> None:
    graph = fl.Graph(
        {"act": fl.ReLU(), "cat": fl.Cat(dim=-1)},
        edges=["input -> act"],
        arguments={"cat": ["act", "input", "act"]},
    )
    graph.remove("act")
    assert graph.arguments == {"cat": ("input", "input", "input")}
    x = torch.randn(2, 3)
    torch.testing.assert_close(graph(x), torch.cat([x, x, x], dim=-1))


def test_removing_a_listed_node_of_one_value_gives_its_readers_that_value() -> None:
    graph = fl.Graph(
        {"act": fl.ReLU(), "mul": fl.Multiply(), "fc": fl.Linear(3, 3)},
        edges=["mul -> fc"],
        arguments={"act": ["input"], "mul": ["act", "act"]},
    )
    graph.remove("act")
    assert graph.arguments == {"mul": ("input", "input")}
    x = torch.randn(2, 3)
    torch.testing.assert_close(graph(x), graph.fc(x * x))


def test_a_failed_change_leaves_the_lists_as_they_were() -> None:
    graph = attention_graph()
    with pytest.raises(fl.GraphError, match="is taken"):
        graph.insert_on_edge("x", "attn", fl.ReLU(), name="out")
    assert graph.arguments == {"attn": ("x", "x", "x")}
    assert graph.edges == ("x -> attn -> out",)


@settings(max_examples=40, deadline=None)
@given(picks=st.lists(st.sampled_from(["x", "y", "fc"]), min_size=2, max_size=5))
def test_a_cat_of_any_list_is_the_cat_of_those_values(picks: list[str]) -> None:
    graph = fl.Graph(
        {"fc": fl.Linear(2, 2), "cat": fl.Cat(dim=-1)},
        edges=["x -> fc", *(["y -> cat"] if "y" in picks else [])],
        inputs=("x", "y"),
        outputs=("cat", "fc", "y"),
        arguments={"cat": picks},
    )
    x, y = torch.randn(3, 2), torch.randn(3, 2)
    values = {"x": x, "y": y, "fc": graph.fc(x)}
    torch.testing.assert_close(graph(x, y)[0], torch.cat([values[name] for name in picks], dim=-1))
    assert graph.sources("cat") == tuple(picks)
    assert str(shapes.infer(graph, ("B", 2), y=("B", 2))["cat"].output) == f"(B, {2 * len(picks)})"
