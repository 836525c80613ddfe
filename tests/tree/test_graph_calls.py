"""Graph nodes called more than once (``node~suffix`` in edges): shared weights, shapes, repr, surgery."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.inspect import data_flow


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def stereo() -> fl.Graph:
    torch.manual_seed(0)
    return fl.Graph(
        {"conv": fl.Linear(4, 4), "l_mlp": fl.Linear(4, 2), "r_mlp": fl.Linear(4, 3)},
        edges=["left -> conv -> l_mlp", "right -> conv~right -> r_mlp"],
        inputs=("left", "right"),
        outputs=("l_mlp", "r_mlp"),
    )


def test_a_call_runs_the_same_module_on_its_own_inputs() -> None:
    graph = stereo()
    left, right = randn(2, 4), randn(5, 4, seed=1)
    out_left, out_right = graph(left, right)
    torch.testing.assert_close(out_left, graph.l_mlp(graph.conv(left)))
    torch.testing.assert_close(out_right, graph.r_mlp(graph.conv(right)))
    assert list(graph.state_dict()) == [
        "conv.weight",
        "conv.bias",
        "l_mlp.weight",
        "l_mlp.bias",
        "r_mlp.weight",
        "r_mlp.bias",
    ]
    assert graph.calls("conv") == ("conv", "conv~right")
    assert graph.sources("conv~right") == ("right",)
    assert graph.sources("r_mlp") == ("conv~right",)


def test_both_calls_train_the_one_weight() -> None:
    graph = stereo()
    left, right = graph(randn(2, 4), randn(2, 4, seed=1))
    (left.sum() + right.sum()).backward()
    only_left = stereo()
    only_left(randn(2, 4), randn(2, 4, seed=1))[0].sum().backward()
    grad = graph.conv.weight.grad
    assert grad is not None
    assert only_left.conv.weight.grad is not None
    assert not torch.allclose(grad, only_left.conv.weight.grad)


def test_a_node_called_only_through_suffixes() -> None:
    torch.manual_seed(0)
    graph = fl.Graph(
        {"embed": fl.Linear(3, 3), "add": fl.Add()},
        edges=["src -> embed~src -> add", "tgt -> embed~tgt -> add"],
        inputs=("src", "tgt"),
    )
    a, b = randn(2, 3), randn(2, 3, seed=1)
    torch.testing.assert_close(graph(a, b), graph.embed(a) + graph.embed(b))
    assert graph.calls("embed") == ("embed~src", "embed~tgt")
    assert graph.sources("embed") == ()


def test_a_call_reads_another_call_and_may_be_an_output() -> None:
    torch.manual_seed(0)
    graph = fl.Graph({"fc": fl.Linear(3, 3)}, edges=["x -> fc -> fc~2 -> fc~3"], inputs=("x",), outputs=("fc", "fc~3"))
    x = randn(2, 3)
    once, thrice = graph(x)
    torch.testing.assert_close(once, graph.fc(x))
    torch.testing.assert_close(thrice, graph.fc(graph.fc(graph.fc(x))))


def test_the_report_records_each_call_and_draws_them() -> None:
    report = shapes.infer(stereo(), left=("B", 4), right=("N", 4))
    assert [call.output for call in report["conv"].calls] == [dims.Shape(["B", 4]), dims.Shape(["N", 4])]
    assert report.output == (dims.Shape(["B", 2]), dims.Shape(["N", 3]))
    drawn = str(report)
    assert "conv: Linear(in_features=4, out_features=4, bias=True)  ← left; ~right ← right" in drawn
    assert "→ (B, 4) then (N, 4)  (called 2 times)" in drawn


def test_sizes_left_out_are_inferred_at_the_first_call() -> None:
    graph = fl.Graph(
        {"conv": fl.Linear(out_features=4), "mlp": fl.Linear(out_features=2)},
        edges=["left -> conv -> mlp", "right -> conv~right -> mlp~right"],
        inputs=("left", "right"),
        outputs={"left": "mlp", "right": "mlp~right"},
    )
    shapes.materialize(graph, left=("B", 6), right=("B", 6))
    assert graph.conv.in_features == 6
    assert graph.mlp.in_features == 4
    with pytest.raises(shapes.ShapeError, match="conv"):
        shapes.infer(graph, left=("B", 6), right=("B", 5))


def test_the_data_flow_draws_a_box_per_call() -> None:
    graph = stereo()
    flow = data_flow(graph, report=shapes.infer(graph, left=("B", 4), right=("N", 4)))
    assert flow.node("conv").shape == "(B, 4)"
    again = flow.node("conv~right")
    assert (again.title, again.shape) == ("conv~right: Linear", "(N, 4)")
    assert flow.sources("conv~right") == ["/input/right"]
    assert flow.sources("r_mlp") == ["conv~right"]


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        (["x -> cnv~a"], "names 'cnv~a', a call of node 'cnv', which is not a node; did you mean 'conv~a'?"),
        (["x -> conv~"], "a further call of a node is written node~suffix"),
        (["x -> conv~a~b"], "a further call of a node is written node~suffix"),
    ],
)
def test_a_call_of_no_node_is_refused(edges: list[str], message: str) -> None:
    with pytest.raises(fl.GraphError, match=message):
        fl.Graph({"conv": fl.Linear(2, 2)}, edges=edges, inputs=("x",))


def test_ids_with_the_call_mark_are_refused() -> None:
    with pytest.raises(fl.GraphError, match="without spaces, dots, '->' or '~'"):
        fl.Graph({"a~b": fl.ReLU()}, edges=["input -> a~b"])


def test_a_cycle_through_calls_is_refused() -> None:
    with pytest.raises(fl.GraphError, match="cycle"):
        fl.Graph({"fc": fl.Linear(2, 2), "add": fl.Add()}, edges=["x -> fc -> add -> fc~2 -> add"], inputs=("x",))


# -- surgery -------------------------------------------------------------------------------------


def test_removing_a_node_takes_its_calls_with_it() -> None:
    graph = stereo()
    graph.remove("conv")
    assert graph.edges == ("left -> l_mlp", "right -> r_mlp")
    left, right = randn(2, 4), randn(2, 4, seed=1)
    _out_left, out_right = graph(left, right)
    torch.testing.assert_close(out_right, graph.r_mlp(right))


def test_removing_a_called_node_whose_call_has_several_inputs_is_refused() -> None:
    graph = fl.Graph(
        {"add": fl.Add(), "act": fl.ReLU()},
        edges=["x -> act -> add", "x -> add -> add~2", "act -> add~2"],
        inputs=("x",),
    )
    before = graph.edges
    with pytest.raises(fl.GraphError, match="node 'add' takes 2 inputs"):
        graph.remove("add")
    assert graph.edges == before


def test_inserting_before_or_after_a_node_called_several_times_is_refused() -> None:
    graph = stereo()
    with pytest.raises(fl.GraphError, match="'conv' is called 2 times \\(conv, conv~right\\)"):
        graph.insert(0, fl.ReLU())
    with pytest.raises(fl.GraphError, match="insert_on_edge"):
        graph.insert_after_type(fl.Linear, fl.ReLU())
    graph.insert_on_edge("conv~right", "r_mlp", fl.ReLU(), name="act")
    graph.insert_on_edge("right", "conv~right", fl.Tanh(), name="squash")
    assert graph.edges == ("left -> conv -> l_mlp", "right -> squash -> conv~right -> act -> r_mlp")
    right = randn(2, 4)
    torch.testing.assert_close(graph(randn(2, 4), right)[1], graph.r_mlp(graph.conv(right.tanh()).relu()))


def test_renaming_a_node_renames_its_calls() -> None:
    graph = stereo()
    graph.replace("conv", fl.Linear(4, 4), name="encoder")
    assert graph.edges == ("left -> encoder -> l_mlp", "right -> encoder~right -> r_mlp")
    assert graph.calls("encoder") == ("encoder", "encoder~right")
    appended = fl.Graph({"fc": fl.Linear(2, 2)}, edges=["x -> fc -> fc~2"], inputs=("x",))
    appended.append(fl.ReLU(), name="act")
    assert appended.edges == ("x -> fc -> fc~2 -> act",)


# -- against the composition by hand ----------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(calls=st.integers(1, 4), width=st.integers(1, 5), seed=st.integers(0, 100))
def test_a_chain_of_calls_equals_the_shared_module_applied_again(calls: int, width: int, seed: int) -> None:
    torch.manual_seed(seed)
    names = ["fc", *(f"fc~{n}" for n in range(2, calls + 1))]
    graph = fl.Graph(
        {"fc": fl.Linear(width, width), "act": fl.Tanh()}, edges=[" -> ".join(["x", *names, "act"])], inputs=("x",)
    )
    x = randn(3, width, seed=seed)
    expected = x
    for _ in range(calls):
        expected = graph.fc(expected)
    torch.testing.assert_close(graph(x), expected.tanh())
    assert len(list(graph.parameters())) == 2
    assert len(shapes.infer(graph, ("B", width))["fc"].calls) == calls
    assert graph.calls("fc") == tuple(names)
