"""Graph: data flow against hand-written Chains, validation, shapes, repr, surgery, copies, adapters, compile."""

import copy
import functools
import pickle
from typing import Any

import pytest
import torch
import torch._dynamo
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor
from torch._dynamo.utils import counters

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.adapters import lora
from tests.conftest import COMPILE_MARKS
from tests.shapes.helpers import evaluate
from tests.tree.tree_checks import check_tree, snapshot


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def residual_graph() -> fl.Graph:
    torch.manual_seed(0)
    return fl.Graph(
        {"fc1": fl.Linear(8, 8), "act": fl.ReLU(), "fc2": fl.Linear(8, 8), "add": fl.Add()},
        edges=["input -> fc1 -> act -> fc2 -> add", "input -> add"],
    )


def two_input_graph() -> fl.Graph:
    torch.manual_seed(0)
    return fl.Graph(
        {"query": fl.Linear(4, 8), "key": fl.Linear(6, 8), "mul": fl.Multiply(), "out": fl.Linear(8, 2)},
        edges=["x -> query -> mul -> out", "y -> key -> mul"],
        inputs=("x", "y"),
    )


def leaf_copy(module: torch.nn.Module) -> Any:
    """A detached leaf sharing ``module``'s weights, to build the same model a second way."""
    assert isinstance(module, fl.Module)
    return module.structural_copy()


# -- data flow -----------------------------------------------------------------------------------


def test_a_residual_block_as_a_graph_equals_residual_and_sum() -> None:
    graph = residual_graph()
    fc1, act, fc2 = (leaf_copy(graph[name]) for name in ("fc1", "act", "fc2"))
    residual = fl.Residual(fc1, act, fc2)
    summed = fl.Sum(fl.Identity(), fl.Chain(leaf_copy(fc1), leaf_copy(act), leaf_copy(fc2)))
    x = randn(3, 8)
    torch.testing.assert_close(graph(x), residual(x))
    torch.testing.assert_close(graph(x), summed(x))
    assert [name for name, _ in graph.named_children()] == ["fc1", "act", "fc2", "add"]
    assert graph.fc2.address == "fc2"


def test_addresses_are_paths_of_node_ids() -> None:
    model = fl.Chain(layer2=fl.Chain(**{"0": residual_graph()}))
    graph = model["layer2.0"]
    assert isinstance(graph, fl.Graph)
    assert graph.fc1.address == "layer2.0.fc1"
    assert "layer2.0.fc1.weight" in model.state_dict()
    check_tree(model)


def test_two_inputs_by_position_by_keyword_and_mixed() -> None:
    graph = two_input_graph()
    x, y = randn(5, 4), randn(5, 6, seed=1)
    expected = graph.out(graph.query(x) * graph.key(y))
    torch.testing.assert_close(graph(x, y), expected)
    torch.testing.assert_close(graph(x=x, y=y), expected)
    torch.testing.assert_close(graph(y=y, x=x), expected)
    torch.testing.assert_close(graph(x, y=y), expected)
    assert graph.inputs == ("x", "y")


def test_several_outputs_are_a_tuple_in_the_order_given() -> None:
    torch.manual_seed(0)
    graph = fl.Graph(
        {"fc": fl.Linear(4, 4), "act": fl.Tanh(), "head": fl.Linear(4, 2)},
        edges=["input -> fc -> act -> head"],
        outputs=("head", "fc", "input"),
    )
    x = randn(3, 4)
    head, hidden, given_back = graph(x)
    torch.testing.assert_close(hidden, graph.fc(x))
    torch.testing.assert_close(head, graph.head(torch.tanh(graph.fc(x))))
    assert given_back is x
    assert graph.outputs == ("head", "fc", "input")


def test_a_tuple_on_a_single_edge_is_splatted_and_several_edges_are_not() -> None:
    graph = fl.Graph(
        {"split": fl.Chunk(2, dim=-1), "mul": fl.Multiply(), "pair": fl.Lambda(lambda *args: len(args))},
        edges=["input -> split -> mul", "split -> pair", "mul -> pair"],
    )
    x = randn(3, 4)
    assert graph(x) == 2  # pair got (split's tuple, mul's tensor): two arguments, nothing splatted
    inner = fl.Graph({"mul": fl.Multiply()}, edges=["input -> mul"])  # one edge carrying a tuple
    a, b = x.chunk(2, dim=-1)
    torch.testing.assert_close(inner((a, b)), a * b)


def test_a_graph_in_a_chain_passes_its_tuple_on_like_any_child() -> None:
    graph = fl.Graph(
        {"neg": fl.Lambda(torch.neg), "exp": fl.Lambda(torch.exp)},
        edges=["input -> neg", "input -> exp"],
        outputs=("neg", "exp"),
    )
    model = fl.Chain(graph, fl.Add())
    x = randn(4)
    torch.testing.assert_close(model(x), x.exp() - x)


def test_arguments_follow_the_order_edges_first_appear_and_repeated_edges_count_once() -> None:
    graph = fl.Graph(
        {"a": fl.Identity(), "b": fl.Lambda(torch.neg), "sub": fl.Lambda(torch.sub)},
        edges=["input -> b -> sub", "input -> a -> sub", "input -> b"],
    )
    assert graph.sources("sub") == ("b", "a")
    x = randn(3)
    torch.testing.assert_close(graph(x), -x - x)
    assert graph.edges == ("input -> b -> sub", "input -> a -> sub", "input -> b")


def test_nodes_run_in_node_order_wherever_the_edges_leave_it_free() -> None:
    ran: list[str] = []

    def record(name: str) -> fl.Lambda:
        def step(*args: Tensor) -> Tensor:
            ran.append(name)
            return args[0]

        return fl.Lambda(step)

    graph = fl.Graph(
        {"late": record("late"), "early": record("early"), "c": record("c"), "join": fl.Add()},
        edges=["input -> c -> late -> join", "input -> early -> join"],
    )
    graph(randn(2))
    assert ran == ["early", "c", "late"]


def test_nested_graphs() -> None:
    inner = residual_graph()
    outer = fl.Graph(
        {"block": inner, "head": fl.Linear(8, 2)}, edges=["features -> block -> head"], inputs=["features"]
    )
    x = randn(2, 8)
    torch.testing.assert_close(outer(x), outer.head(inner(x)))
    assert outer["block.fc1"].address == "block.fc1"


def test_a_return_node_ends_the_graph_with_its_input() -> None:
    graph = fl.Graph(
        {"neg": fl.Lambda(torch.neg), "stop": fl.Return(), "exp": fl.Lambda(torch.exp)}, ["input -> neg -> stop -> exp"]
    )
    x = randn(3)
    torch.testing.assert_close(graph(x), -x)
    assert shapes.infer(graph, (3,)).output == dims.Shape([3])


# -- calling with wrong inputs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1,), {}, "got no value for its input 'y'; its inputs are: x, y"),
        ((1, 2, 3), {}, "takes 2 inputs \\(x, y\\), got 3 by position"),
        ((1,), {"z": 2}, "has no input 'z'; its inputs are: x, y"),
        ((1,), {"x": 2}, "got its input 'x' both by position and by name"),
        ((), {}, "got no value for its input 'x'"),
    ],
)
def test_wrong_inputs_are_reported_as_a_failed_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    graph = two_input_graph()
    with pytest.raises(fl.ChainError, match=message) as caught:
        graph(*args, **kwargs)
    assert isinstance(caught.value.__cause__, fl.GraphError)
    with pytest.raises(shapes.ShapeError, match=message):
        shapes.infer(graph, *[(2, 4)] * len(args), **dict.fromkeys(kwargs, (2, 4)))


def test_a_failing_node_is_named_by_its_address() -> None:
    model = fl.Chain(block=two_input_graph())
    with pytest.raises(fl.ChainError) as caught:
        model(randn(2, 4), randn(2, 5))
    assert caught.value.address == "block.key"
    assert "key: Linear(in_features=6, out_features=8, bias=True)  ← y  ◀── failed here" in str(caught.value)


def context_graphs() -> fl.Chain:
    """A Graph that stores a side value in the context, and one that reads it back without edges into it."""
    torch.manual_seed(0)
    store = fl.Graph(
        {"scale": fl.Linear(4, 1), "keep": fl.SetContext("net", "scale"), "fc": fl.Linear(4, 4)},
        edges=["input -> scale -> keep", "input -> fc"],
    )
    use = fl.Graph(
        {"scale": fl.UseContext("net", "scale"), "mul": fl.Multiply()}, edges=["input -> mul", "scale -> mul"]
    )
    return fl.Chain(store=store, use=use)


def test_a_set_context_may_end_a_path_and_a_use_context_may_start_one() -> None:
    model = context_graphs()
    x = randn(3, 4)
    store = model.store
    assert store.outputs == ("fc",)
    assert model.use.sources("scale") == ()
    assert torch.allclose(model(x), store.fc(x) * store.scale(x))
    report = shapes.infer(model, ("B", 4))
    assert report.output == dims.Shape(["B", 4])
    assert report["store.keep"].output == dims.Shape(["B", 1])
    assert report["use.scale"].output == dims.Shape(["B", 1])


@pytest.mark.parametrize(
    ("address", "replacement", "message"),
    [
        ("store.keep", fl.ReLU(), "the value of node 'scale' reaches no output"),
        ("use.scale", fl.Linear(4, 1), "node 'scale' cannot be reached from the inputs"),
    ],
)
def test_a_replacement_must_keep_the_context_exceptions(address: str, replacement: Any, message: str) -> None:
    model = context_graphs()
    before = snapshot(model)
    with pytest.raises(fl.GraphError, match=message):
        model[address] = replacement
    assert snapshot(model) == before
    model[address] = type(model[address])("net", "scale")  # the same kind of node is fine


# -- validation ----------------------------------------------------------------------------------


def pair() -> dict[str, torch.nn.Module]:
    return {"a": fl.ReLU(), "b": fl.Tanh()}


INVALID: list[Any] = [
    pytest.param(pair(), ["input -> a ->  -> b"], {}, "edge 'input -> a ->  -> b' has an empty segment", id="empty"),
    pytest.param(pair(), ["input -> a", "b"], {}, "edge 'b' has no '->'", id="no-arrow"),
    pytest.param(
        pair(),
        ["input -> a -> c"],
        {},
        "edge 'input -> a -> c' names 'c', which is unknown; inputs: input; nodes: a, b",
        id="unknown-target",
    ),
    pytest.param(
        pair(), ["x -> a -> b"], {}, "names 'x', which is unknown; inputs: input; nodes: a, b", id="unknown-source"
    ),
    pytest.param(
        pair(),
        ["input -> a -> b -> input"],
        {},
        "edge 'input -> a -> b -> input' leads into the input 'input'",
        id="into-input",
    ),
    pytest.param(pair(), ["input -> a -> b -> a"], {}, "the edges make a cycle: a -> b -> a", id="cycle"),
    pytest.param({"a": fl.ReLU()}, ["input -> a -> a"], {}, "the edges make a cycle: a -> a", id="self-loop"),
    pytest.param(
        {"a": fl.ReLU(), "b": fl.Tanh(), "c": fl.SiLU(), "d": fl.Add()},
        ["input -> a -> d", "b -> c -> d", "c -> b"],
        {},
        "the edges make a cycle: b -> c -> b",
        id="cycle-off-the-inputs",
    ),
    pytest.param(
        pair(), ["input -> b", "a -> b"], {}, "node 'a' cannot be reached from the inputs \\(input\\)", id="unreachable"
    ),
    pytest.param(
        {"a": fl.ReLU(), "b": fl.Tanh(), "c": fl.SiLU()},
        ["input -> a -> b", "a -> c"],
        {"outputs": ["b"]},
        "the value of node 'c' reaches no output \\(b\\)",
        id="dead-end",
    ),
    pytest.param(
        pair(), ["input -> a", "input -> b"], {}, "nodes a, b have no outgoing edge; say which", id="two-ends"
    ),
    pytest.param(
        pair(),
        ["input -> a -> b"],
        {"outputs": ["c"]},
        "output 'c' is not known; inputs: input; nodes: a, b",
        id="unknown-output",
    ),
    pytest.param(pair(), ["input -> a -> b"], {"outputs": ["b", "b"]}, "output 'b' is listed twice", id="output-twice"),
    pytest.param(
        {"a": fl.ReLU(), "b": fl.Tanh(), "c": fl.Add()},
        ["input -> a -> c", "b -> c"],
        {},
        r"node 'b' cannot be reached from the inputs \(input\); .* \(or from a UseContext",
        id="only-a-use-context-may-start-a-path",
    ),
    pytest.param(
        {"a": fl.ReLU(), "b": fl.SetContext("net", "b"), "c": fl.Tanh()},
        ["input -> a -> b -> c", "input -> c"],
        {"outputs": ["a"]},
        r"the value of node 'c' reaches no output \(a\)",
        id="only-a-set-context-may-end-a-path",
    ),
    pytest.param(pair(), ["input -> a -> b"], {"outputs": []}, "outputs is empty", id="no-output"),
    pytest.param(pair(), ["x -> a -> b"], {"inputs": ["x", "x"]}, "input 'x' is named twice", id="duplicate-input"),
    pytest.param(pair(), ["a -> b"], {"inputs": ["a"]}, "'a' is both an input and a node id", id="input-clash"),
    pytest.param({**pair(), "c": fl.SiLU()}, ["input -> a -> b"], {}, "node 'c' is in no edge", id="node-in-no-edge"),
    pytest.param(pair(), ["x -> a -> b"], {"inputs": ["x", "y"]}, "input 'y' is in no edge", id="unused-input"),
    pytest.param(pair(), ["input -> a -> b"], {"inputs": []}, "needs at least one input", id="no-input"),
    pytest.param(pair(), ["in put -> a -> b"], {"inputs": ["in put"]}, "input name 'in put' must be", id="space"),
    pytest.param({"a.b": fl.ReLU()}, ["input -> a.b"], {}, "node name 'a.b' must be", id="dot"),
    pytest.param(pair(), "input -> a -> b", {}, "edges is a sequence of strings", id="edges-string"),
    pytest.param(
        pair(), ["input -> a -> b"], {"inputs": "input"}, "inputs is a sequence of strings", id="inputs-string"
    ),
    pytest.param(pair(), ["input -> a", 3], {}, "an edge is a string 'a -> b', got 3", id="edge-not-a-string"),
    pytest.param(
        [fl.ReLU()], ["input -> a"], {}, "nodes is a mapping from node id to module, got list", id="nodes-list"
    ),
]


@pytest.mark.parametrize(("nodes", "edges", "options", "message"), INVALID)
def test_invalid_graphs_are_refused_with_a_message_naming_the_problem(
    nodes: Any, edges: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(fl.GraphError, match=message):
        fl.Graph(nodes, edges, **options)


def test_graph_errors_are_tree_errors() -> None:
    assert issubclass(fl.GraphError, fl.TreeError)


def test_node_ids_follow_chain_naming_rules() -> None:
    with pytest.raises(fl.TreeError, match="would hide the Chain attribute"):
        fl.Graph({"edges": fl.ReLU()}, ["input -> edges"])


def test_an_input_may_be_an_output() -> None:
    graph = fl.Graph({"a": fl.ReLU()}, ["x -> a"], inputs=["x", "skip"], outputs=["a", "skip"])
    x = randn(3)
    out, skip = graph(x, x + 1)
    torch.testing.assert_close(skip, x + 1)
    torch.testing.assert_close(out, x.relu())


def test_a_graph_without_nodes_returns_its_inputs() -> None:
    graph = fl.Graph({}, [], inputs=["a", "b"], outputs=["b", "a"])
    assert graph(1, b=2) == (2, 1)
    assert shapes.infer(graph, ("B",), ("T",)).output == (dims.Shape(["B"]), dims.Shape(["T"]))[::-1]


def test_sources_of_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(
        fl.ChildNotFoundError, match="has no node or input 'zz'; inputs: input; nodes: fc1, act, fc2, add"
    ):
        residual_graph().sources("zz")


# -- shapes ----------------------------------------------------------------------------------------


def test_shape_inference_agrees_with_a_forward_and_records_every_node() -> None:
    graph = residual_graph()
    report = shapes.infer(graph, ("B", 8))
    assert report.output == dims.Shape(["B", 8])
    assert list(report) == ["", "fc1", "act", "fc2", "add"]
    assert report["add"].inputs == (dims.Shape(["B", 8]), dims.Shape(["B", 8]))
    assert evaluate(report.output, {"B": 3}) == tuple(graph(randn(3, 8)).shape)


def test_shape_inference_with_named_and_positional_inputs() -> None:
    graph = two_input_graph()
    expected = dims.Shape(["B", 2])
    assert shapes.infer(graph, ("B", 4), ("B", 6)).output == expected
    assert shapes.infer(graph, x=("B", 4), y=("B", 6)).output == expected
    assert shapes.infer(graph, ("B", 4), y=("B", 6)).output == expected
    with pytest.raises(shapes.ShapeError, match="Linear at 'key' got \\(B, 4\\)"):
        shapes.infer(graph, ("B", 4), y=("B", 4))


def test_shapes_of_several_outputs_and_splatted_tuples() -> None:
    graph = fl.Graph(
        {"split": fl.Chunk(2, dim=1), "cat": fl.Cat(dim=-1), "fc": fl.Linear(4, 6)},
        edges=["input -> split -> cat", "input -> fc"],
        outputs=("cat", "fc", "split"),
    )
    report = shapes.infer(graph, ("B", 4, 4))
    assert report.output == (
        dims.Shape(["B", 2, 8]),
        dims.Shape(["B", 4, 6]),
        (dims.Shape(["B", 2, 4]), dims.Shape(["B", 2, 4])),
    )
    real = graph(randn(3, 4, 4))
    assert evaluate(report.output, {"B": 3}) == (
        tuple(real[0].shape),
        tuple(real[1].shape),
        tuple(t.shape for t in real[2]),
    )


def test_a_graph_inside_a_chain_is_inferred_and_materialized() -> None:
    graph = fl.Graph(
        {"fc": fl.Linear(out_features=6), "norm": fl.LayerNorm(), "add": fl.Add()},
        edges=["input -> fc -> add", "fc -> norm -> add"],
    )
    model = fl.Chain(fl.Linear(4, 8), block=graph)
    report = shapes.materialize(model, ("B", 4))
    assert report["block.norm"].output == dims.Shape(["B", 6])
    assert model(randn(2, 4)).shape == (2, 6)


# -- repr ----------------------------------------------------------------------------------------


def test_repr_shows_where_each_node_takes_its_inputs_from() -> None:
    assert repr(residual_graph()) == "\n".join(
        [
            "(GRAPH) Graph(inputs=['input'], outputs=['add'])",
            "    ├── fc1: Linear(in_features=8, out_features=8, bias=True)  ← input",
            "    ├── act: ReLU()  ← fc1",
            "    ├── fc2: Linear(in_features=8, out_features=8, bias=True)  ← act",
            "    └── add: Add()  ← fc2, input",
        ]
    )


def test_the_shape_report_draws_the_flow_with_the_shapes() -> None:
    drawn = str(shapes.infer(fl.Chain(block=two_input_graph()), ("B", 4), ("B", 6)))
    assert "    ├── key: Linear(in_features=6, out_features=8, bias=True)  ← y  → (B, 8)" in drawn
    assert "    └── out: Linear(in_features=8, out_features=2, bias=True)  ← mul  → (B, 2)" in drawn


# -- surgery -------------------------------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    return torch.relu(x)


REWIRING_CHANGES: list[Any] = [
    pytest.param(
        lambda g: g.append(fl.ReLU()),
        ("input -> fc1 -> act -> fc2 -> add -> ReLU", "input -> add"),
        "fc1 act fc2 add ReLU",
        lambda g, x: relu(x + g.fc2(relu(g.fc1(x)))),
        id="append",
    ),
    pytest.param(
        lambda g: setattr(g, "extra", fl.ReLU()),
        ("input -> fc1 -> act -> fc2 -> add -> extra", "input -> add"),
        "fc1 act fc2 add extra",
        lambda g, x: relu(x + g.fc2(relu(g.fc1(x)))),
        id="new-attribute",
    ),
    pytest.param(
        lambda g: g.insert(0, fl.Tanh(), name="squash"),
        ("input -> squash -> fc1 -> act -> fc2 -> add", "input -> add"),
        "squash fc1 act fc2 add",
        lambda g, x: x + g.fc2(relu(g.fc1(torch.tanh(x)))),
        id="insert",
    ),
    pytest.param(
        lambda g: g.insert_before_type(fl.ReLU, fl.Tanh()),
        ("input -> fc1 -> Tanh -> act -> fc2 -> add", "input -> add"),
        "fc1 Tanh act fc2 add",
        lambda g, x: x + g.fc2(relu(torch.tanh(g.fc1(x)))),
        id="insert-before-type",
    ),
    pytest.param(
        lambda g: g.insert_after_type(fl.ReLU, fl.Tanh()),
        ("input -> fc1 -> act -> Tanh -> fc2 -> add", "input -> add"),
        "fc1 act Tanh fc2 add",
        lambda g, x: x + g.fc2(torch.tanh(relu(g.fc1(x)))),
        id="insert-after-type",
    ),
    pytest.param(
        lambda g: g.insert_on_edge("input", "add", fl.Tanh()),
        ("input -> fc1 -> act -> fc2 -> add", "input -> Tanh -> add"),
        "fc1 act fc2 Tanh add",
        lambda g, x: torch.tanh(x) + g.fc2(relu(g.fc1(x))),
        id="insert-on-edge",
    ),
    pytest.param(
        lambda g: g.remove("act"),
        ("input -> fc1 -> fc2 -> add", "input -> add"),
        "fc1 fc2 add",
        lambda g, x: x + g.fc2(g.fc1(x)),
        id="remove",
    ),
    pytest.param(
        lambda g: g.remove(g.act),
        ("input -> fc1 -> fc2 -> add", "input -> add"),
        "fc1 fc2 add",
        None,
        id="remove-module",
    ),
    pytest.param(
        lambda g: g.__delitem__("act"),
        ("input -> fc1 -> fc2 -> add", "input -> add"),
        "fc1 fc2 add",
        None,
        id="del-item",
    ),
    pytest.param(
        lambda g: delattr(g, "act"), ("input -> fc1 -> fc2 -> add", "input -> add"), "fc1 fc2 add", None, id="del-attr"
    ),
    pytest.param(
        lambda g: g.pop(0),
        ("input -> act -> fc2 -> add", "input -> add"),
        "act fc2 add",
        lambda g, x: x + g.fc2(relu(x)),
        id="pop-first",
    ),
    pytest.param(
        lambda g: g.replace("act", fl.Tanh(), name="squash"),
        ("input -> fc1 -> squash -> fc2 -> add", "input -> add"),
        "fc1 squash fc2 add",
        lambda g, x: x + g.fc2(torch.tanh(g.fc1(x))),
        id="rename",
    ),
]
"""Chain's changes on ``residual_graph()``: the edges and nodes after, and what the graph computes then.
A new node stands before the node it feeds (after the one it reads, when appended)."""


@pytest.mark.parametrize(("change", "edges", "nodes", "expected"), REWIRING_CHANGES)
def test_chain_surgery_on_a_graph_rewires_its_edges(
    change: Any, edges: tuple[str, ...], nodes: str, expected: Any
) -> None:
    graph = residual_graph()
    x = randn(2, 8)
    change(graph)
    assert graph.edges == edges
    assert list(dict(graph.named_children())) == nodes.split()
    if expected is not None:
        torch.testing.assert_close(graph(x), expected(graph, x))
    check_tree(graph)
    assert graph.explicit_names == set(nodes.split())  # node ids never change by themselves


REFUSED_CHANGES: list[Any] = [
    pytest.param(lambda g: g.pop(), "node 'add' takes 2 inputs", id="pop-a-node-of-two-inputs"),
    pytest.param(lambda g: g.insert(3, fl.ReLU()), "say which with insert_on_edge", id="insert-before-two-inputs"),
    pytest.param(lambda g: g.insert_on_edge("fc1", "add", fl.ReLU()), "there is no edge fc1 -> add", id="no-edge"),
    pytest.param(lambda g: g.insert(0, fl.ReLU(), name="act"), "the id 'act' is taken", id="taken-id"),
    pytest.param(lambda g: g.append(fl.ReLU(), name="input"), "the id 'input' is taken", id="an-input's-id"),
    pytest.param(lambda g: g.append(fl.ReLU(), name="a b"), "must be a non-empty string without spaces", id="bad-id"),
    pytest.param(lambda g: g.replace("act", fl.ReLU(), name="fc1"), "the id 'fc1' is taken", id="rename-to-a-taken-id"),
    pytest.param(lambda g: g.append(g.fc1), "already has a parent", id="a-node-already-in-the-graph"),
    pytest.param(lambda g: g[1:], "a slice of a Graph's nodes has no edges", id="slice"),
]


@pytest.mark.parametrize(("change", "message"), REFUSED_CHANGES)
def test_a_change_the_wiring_cannot_say_is_refused_and_changes_nothing(change: Any, message: str) -> None:
    graph = residual_graph()
    before, edges = snapshot(graph), graph.edges
    with pytest.raises(fl.TreeError, match=message):
        change(graph)
    assert snapshot(graph) == before
    assert graph.edges == edges
    check_tree(graph)
    x = randn(2, 8)
    torch.testing.assert_close(graph(x), x + graph.fc2(relu(graph.fc1(x))))


def test_removing_a_node_whose_reader_takes_its_input_too_gives_the_reader_that_input_twice() -> None:
    graph = fl.Graph({"a": fl.ReLU(), "add": fl.Add()}, edges=["input -> a -> add", "input -> add"])
    graph.remove("a")
    assert graph.edges == ("input -> add",)
    assert graph.arguments == {"add": ("input", "input")}
    x = randn(2, 3)
    torch.testing.assert_close(graph(x), x + x)


def test_removing_a_node_that_would_merge_two_outputs_is_refused() -> None:
    two = fl.Graph({"a": fl.ReLU()}, edges=["input -> a"], outputs=("a", "input"))
    with pytest.raises(fl.GraphError, match="outputs 'a' and 'input' would both be 'input'"):
        two.pop()
    with pytest.raises(fl.GraphError, match="returns several values"):
        two.append(fl.ReLU())
    assert two.edges == ("input -> a",)


def test_removing_a_graph_node_from_the_root_rewires_the_graph() -> None:
    model = fl.Chain(block=residual_graph())
    model.remove("block.act")
    assert model.block.edges == ("input -> fc1 -> fc2 -> add", "input -> add")
    with pytest.raises(fl.GraphError):
        model.remove("block.add")
    check_tree(model)


def test_the_output_moves_with_the_node_removed_or_appended() -> None:
    graph = fl.Graph({"a": fl.ReLU(), "b": fl.Tanh()}, edges=["input -> a -> b"])
    graph.pop()
    assert (graph.edges, graph.outputs) == (("input -> a",), ("a",))
    graph.pop()
    assert (graph.edges, graph.outputs, len(graph)) == ((), ("input",), 0)
    x = randn(3)
    torch.testing.assert_close(graph(x), x)
    graph.append(fl.Tanh())
    assert (graph.edges, graph.outputs) == (("input -> Tanh",), ("Tanh",))
    torch.testing.assert_close(graph(x), torch.tanh(x))


def test_a_context_node_removed_or_put_on_an_edge_is_checked_like_a_new_graph() -> None:
    graph = fl.Graph({"mask": fl.UseContext("c", "m"), "add": fl.Add()}, edges=["input -> add", "mask -> add"])
    with pytest.raises(fl.GraphError, match="node 'mask' takes no inputs"):
        graph.remove("mask")
    graph.insert_on_edge("mask", "add", fl.Lambda(torch.neg), name="negate")
    graph.set_context("c", {"m": torch.ones(2)})
    torch.testing.assert_close(graph(torch.ones(2)), torch.zeros(2))


def _step(layer: torch.nn.Module) -> tuple[str, float]:
    """What a ``Lambda`` of a partial arithmetic function does: its operation and operand."""
    function = layer.func  # type: ignore[union-attr]
    return function.func.__name__, function.keywords["other"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["insert", "append", "pop", "remove", "after"]), st.integers(0, 6)), max_size=8)
)
def test_on_a_path_a_graphs_surgery_is_the_chains(steps: list[tuple[str, int]]) -> None:
    """A Chain is a Graph whose edges make one path: the same changes give the same layers and outputs."""
    layers = [fl.Lambda(functools.partial(torch.add, other=float(n))) for n in range(3)]
    chain = fl.Chain(*[leaf_copy(layer) for layer in layers])
    graph = fl.Graph({f"n{n}": layer for n, layer in enumerate(layers)}, edges=["input -> n0 -> n1 -> n2"])
    made = 3
    for kind, number in steps:
        size = len(chain)
        for tree in (chain, graph):
            new = fl.Lambda(functools.partial(torch.mul, other=float(made + 2)))
            if kind == "insert":
                tree.insert(number % (size + 1), new)
            elif kind == "append":
                tree.append(new)
            elif kind == "pop" and size:
                tree.pop(number % size)
            elif kind == "remove" and size:
                tree.remove(tree[number % size])
            elif kind == "after" and size:
                tree.insert_after_type(fl.Lambda, new)
        made += 1
        assert [_step(child) for child in chain] == [_step(child) for child in graph]
        x = randn(4)
        torch.testing.assert_close(graph(x), chain(x))
        check_tree(graph)


def test_replacing_a_node_under_its_id_keeps_the_graph_working() -> None:
    graph = residual_graph()
    x = randn(2, 8)
    graph["act"] = fl.Tanh()
    assert graph.sources("fc2") == ("act",)
    torch.testing.assert_close(graph(x), x + graph.fc2(torch.tanh(graph.fc1(x))))
    graph.fc1 = fl.Linear(8, 8)
    graph.replace("fc2", fl.Identity())
    torch.testing.assert_close(graph(x), x + torch.tanh(graph.fc1(x)))
    model = fl.Chain(block=graph)
    model.replace("block.add", fl.Multiply())
    torch.testing.assert_close(model(x), x * torch.tanh(graph.fc1(x)))
    check_tree(model)


def test_surgery_inside_a_node_is_ordinary_chain_surgery() -> None:
    graph = fl.Graph({"mlp": fl.Chain(fl.Linear(4, 4)), "add": fl.Add()}, ["input -> mlp -> add", "input -> add"])
    graph.mlp.append(fl.ReLU())
    x = randn(2, 4)
    torch.testing.assert_close(graph(x), x + graph.mlp.Linear(x).relu())


def test_a_graphs_nodes_take_the_same_checks() -> None:
    graph = fl.Graph(
        {"fc": fl.Linear(2, 2), "act": fl.ReLU(), "add": fl.Add()}, edges=["input -> fc -> act -> add", "input -> add"]
    )
    before = snapshot(graph)
    for value in (None, 3, torch.zeros(1)):
        with pytest.raises(fl.TreeError, match="'act'"):
            graph.act = value
    with pytest.raises(fl.GraphError, match="node 'add' takes 2 inputs"):
        del graph.add
    assert snapshot(graph) == before
    graph.act = fl.Tanh()
    assert graph(torch.zeros(1, 2)).shape == (1, 2)
    check_tree(graph)


# -- copies -------------------------------------------------------------------------------------


def test_structural_copy_shares_weights_and_copies_the_edges() -> None:
    graph = two_input_graph()
    twin = graph.structural_copy()
    assert isinstance(twin, fl.Graph)
    assert twin.query is not graph.query
    assert twin.query.weight is graph.query.weight
    assert (twin.inputs, twin.outputs, twin.edges) == (graph.inputs, graph.outputs, graph.edges)
    x, y = randn(2, 4), randn(2, 6, seed=1)
    torch.testing.assert_close(twin(x, y=y), graph(x, y=y))
    twin["mul"] = fl.Add()
    assert isinstance(graph.mul, fl.Multiply)
    twin.pop()
    assert twin.outputs == ("mul",)
    assert graph.outputs == ("out",)
    assert graph.edges == ("x -> query -> mul -> out", "y -> key -> mul")
    check_tree(twin)


def test_deepcopy_and_pickle_keep_a_working_graph() -> None:
    graph = two_input_graph()
    x, y = randn(2, 4), randn(2, 6, seed=1)
    for twin in (copy.deepcopy(graph), pickle.loads(pickle.dumps(graph))):
        torch.testing.assert_close(twin(x, y), graph(x, y))
        assert twin.query.weight is not graph.query.weight
        check_tree(twin)


# -- adapters ------------------------------------------------------------------------------------


def test_lora_on_graph_nodes_injects_and_ejects_back_to_the_same_tree() -> None:
    model = fl.Chain(block=two_input_graph(), head=fl.Linear(2, 2))
    x, y = randn(3, 4), randn(3, 6, seed=1)
    before, keys, tree = model(x, y), list(model.state_dict()), snapshot(model)

    def random_init(down: Tensor, up: Tensor) -> None:
        down.normal_(std=0.3)
        up.normal_(std=0.3)

    injected = lora.inject(model, rank=2, targets=fl.Linear, init=random_init)
    assert sorted(adapter.address for adapter in injected) == ["block.key", "block.out", "block.query", "head"]
    assert model["block.query.target"].address == "block.query.target"
    assert not torch.allclose(model(x, y), before)
    check_tree(model)
    assert "query: (LORA) LinearLora(name='lora', rank=2, scale=1)  ← x" in repr(model)
    assert shapes.infer(model, ("B", 4), ("B", 6)).output == dims.Shape(["B", 2])
    lora.eject(model)
    assert snapshot(model) == tree
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(model(x, y), before)
    check_tree(model)


# -- compile ---------------------------------------------------------------------------------------


class TestCompile:
    pytestmark = COMPILE_MARKS

    @pytest.mark.parametrize("by_name", [False, True], ids=["positional", "keywords"])
    def test_a_graph_compiles_without_graph_breaks(self, by_name: bool) -> None:
        torch.manual_seed(0)
        graph = fl.Graph(
            {
                "query": fl.Linear(4, 8),
                "key": fl.Linear(6, 8),
                "mul": fl.Multiply(),
                "split": fl.Chunk(2, dim=-1),
                "cat": fl.Cat(dim=0),
                "out": fl.Linear(8, 2),
                "add": fl.Add(),
            },
            edges=["x -> query -> mul -> out", "y -> key -> mul", "key -> split -> cat", "query -> add", "key -> add"],
            inputs=("x", "y"),
            outputs=("out", "cat", "add"),
        )
        x, y = randn(3, 4), randn(3, 6, seed=1)
        args, kwargs = ((x,), {"y": y}) if by_name else ((x, y), {})
        explanation = torch._dynamo.explain(graph)(*args, **kwargs)
        assert explanation.graph_break_count == 0, explanation.break_reasons
        assert explanation.graph_count == 1
        assert not counters["graph_break"], list(counters["graph_break"])
        assert not counters["unimplemented"], list(counters["unimplemented"])
        compiled = torch.compile(graph, fullgraph=True, backend="aot_eager")
        expected = graph(*args, **kwargs)
        torch.testing.assert_close(compiled(*args, **kwargs), expected)
        torch.testing.assert_close(compiled(*args, **kwargs), expected)

    def test_a_graph_inside_a_chain_compiles(self) -> None:
        torch.manual_seed(0)
        model = fl.Chain(fl.Linear(8, 8), block=residual_graph(), head=fl.Linear(8, 2))
        x = randn(3, 8)
        expected = model(x)
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(x), expected)
        assert not counters["graph_break"], list(counters["graph_break"])


# -- random graphs -------------------------------------------------------------------------------

WIDTH = 4


@st.composite
def random_graphs(draw: st.DrawFn) -> tuple[fl.Graph, dict[str, tuple[str, list[str]]], list[str], list[str]]:
    """A random DAG of Add, Linear and ReLU nodes of one width, its wiring, inputs and outputs."""
    declared = ["x", "y"][: draw(st.integers(1, 2))]
    wiring: dict[str, tuple[str, list[str]]] = {}
    for index in range(draw(st.integers(1, 7))):
        earlier = [*declared, *wiring]
        kind = draw(st.sampled_from(["Add", "Linear", "ReLU"] if len(earlier) > 1 else ["Linear", "ReLU"]))
        count = draw(st.integers(2, min(3, len(earlier)))) if kind == "Add" else 1
        sources = draw(st.lists(st.sampled_from(earlier), min_size=count, max_size=count, unique=True))
        wiring[f"n{index}"] = (kind, sources)
    used = {source for _, sources in wiring.values() for source in sources}
    inputs = [name for name in declared if name in used]
    outputs = [name for name in wiring if name not in used]
    make = {"Add": fl.Add, "Linear": lambda: fl.Linear(WIDTH, WIDTH), "ReLU": fl.ReLU}
    nodes = {name: make[kind]() for name, (kind, _) in wiring.items()}
    edges = [f"{source} -> {name}" for name, (_, sources) in wiring.items() for source in sources]
    return fl.Graph(nodes, draw(st.permutations(edges)), inputs=inputs, outputs=outputs), wiring, inputs, outputs


@settings(max_examples=60, deadline=None)
@given(random_graphs())
def test_random_graphs_run_like_their_wiring_and_infer_their_real_shapes(
    built: tuple[fl.Graph, dict[str, tuple[str, list[str]]], list[str], list[str]],
) -> None:
    graph, wiring, inputs, outputs = built
    values: dict[str, Tensor] = {name: randn(3, WIDTH, seed=seed) for seed, name in enumerate(inputs)}
    for name, (_, sources) in wiring.items():
        assert sorted(graph.sources(name)) == sorted(sources)
        values[name] = graph[name](*(values[source] for source in graph.sources(name)))
    expected = [values[name] for name in outputs]
    got = graph(*(values[name] for name in inputs))
    got_list = [got] if len(outputs) == 1 else list(got)
    for real, wanted in zip(got_list, expected, strict=True):
        torch.testing.assert_close(real, wanted)
    report = shapes.infer(graph, *[("B", WIDTH)] * len(inputs))
    real_shapes = tuple(tuple(value.shape) for value in got_list)
    assert evaluate(report.output, {"B": 3}) == (real_shapes[0] if len(outputs) == 1 else real_shapes)
    assert set(report) == {"", *wiring}


def test_a_use_context_runs_after_the_set_context_of_the_same_graph_it_reads() -> None:
    torch.manual_seed(0)
    graph = fl.Graph(
        {
            "store": fl.SetContext("net", "h"),
            "use": fl.UseContext("net", "h"),
            "fc": fl.Linear(4, 4),
            "mul": fl.Multiply(),
        },
        edges=["input -> fc -> store", "input -> mul", "use -> mul"],
    )
    x = randn(2, 4)
    # a value stored under the same key earlier in the tree must not be the one read
    model = fl.Chain(fl.SetContext("net", "h"), graph)
    assert torch.allclose(model(x), x * graph.fc(x))
    assert shapes.infer(model, ("B", 4)).output == dims.Shape(["B", 4])


def test_replacing_a_context_node_plans_the_order_again() -> None:
    torch.manual_seed(0)
    graph = fl.Graph(
        {
            "store": fl.SetContext("net", "h"),
            "use": fl.UseContext("net", "other"),
            "fc": fl.Linear(4, 4),
            "mul": fl.Multiply(),
        },
        edges=["input -> fc -> store", "input -> mul", "use -> mul"],
    )
    model = fl.Chain(fl.SetContext("net", "h"), fl.SetContext("net", "other"), graph)
    x = randn(2, 4)
    assert torch.allclose(model(x), x * x)  # reads the value stored before the graph
    graph["use"] = fl.UseContext("net", "h")
    assert torch.allclose(model(x), x * graph.fc(x))  # now reads the graph's own, after it is stored
