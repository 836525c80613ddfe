"""Graph with named outputs (a dict returned) and named inputs given as one dict."""

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

import fluxion.layers as fl
from fluxion import dims, shapes


def randn(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def heads(outputs: Any = None) -> fl.Graph:
    torch.manual_seed(0)
    return fl.Graph(
        {"trunk": fl.Linear(4, 8), "head_mean": fl.Linear(8, 3), "head_std": fl.Linear(8, 3)},
        edges=["x -> trunk -> head_mean", "trunk -> head_std"],
        inputs=("x",),
        outputs={"mean": "head_mean", "std": "head_std"} if outputs is None else outputs,
    )


def fusion() -> fl.Graph:
    torch.manual_seed(0)
    return fl.Graph(
        {"image_proj": fl.Linear(6, 4), "text_proj": fl.Linear(5, 4), "add": fl.Add()},
        edges=["image -> image_proj -> add", "text -> text_proj -> add"],
        inputs=("image", "text"),
    )


# -- named outputs ------------------------------------------------------------------------------


def test_named_outputs_return_a_dict_in_the_order_given() -> None:
    graph = heads({"std": "head_std", "mean": "head_mean", "features": "trunk"})
    x = randn(2, 4)
    out = graph(x)
    assert isinstance(out, dict)
    assert list(out) == ["std", "mean", "features"]
    features = graph.trunk(x)
    torch.testing.assert_close(out["features"], features)
    torch.testing.assert_close(out["mean"], graph.head_mean(features))
    torch.testing.assert_close(out["std"], graph.head_std(features))
    assert graph.outputs == ("head_std", "head_mean", "trunk")
    assert graph.output_keys == ("std", "mean", "features")


def test_one_named_output_is_still_a_dict_and_a_list_still_a_tuple() -> None:
    def graph(outputs: Any) -> fl.Graph:
        return fl.Graph(
            {"fc": fl.Linear(4, 2), "act": fl.ReLU()}, edges=["x -> fc -> act"], inputs=("x",), outputs=outputs
        )

    x = randn(2, 4)
    assert list(graph({"out": "act"})(x)) == ["out"]
    tupled = graph(["fc", "act"])
    assert isinstance(tupled(x), tuple)
    assert tupled.output_keys is None
    single = graph("act")
    assert isinstance(single(x), Tensor)
    assert single.outputs == ("act",)


def test_an_input_may_be_a_named_output() -> None:
    graph = fl.Graph({"act": fl.ReLU()}, edges=["x -> act"], inputs=("x",), outputs={"raw": "x", "act": "act"})
    x = randn(3)
    out = graph(x)
    assert out["raw"] is x
    torch.testing.assert_close(out["act"], x.relu())


def test_named_outputs_shapes_and_repr() -> None:
    graph = heads()
    report = shapes.infer(graph, ("B", 4))
    assert report.output == {"mean": dims.Shape(["B", 3]), "std": dims.Shape(["B", 3])}
    assert isinstance(report.output, dims.ShapeMap)
    assert repr(report.output) == "{mean: (B, 3), std: (B, 3)}"
    assert str(report).splitlines()[0].endswith("→ {mean: (B, 3), std: (B, 3)}")
    assert "outputs={'mean': 'head_mean', 'std': 'head_std'}" in repr(graph)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"mean": "nope"}, "output 'nope' is not known"),
        ({"a": "head_mean", "b": "head_mean"}, "output 'head_mean' is listed twice"),
        ({"a": 1}, "outputs by key map strings to names"),
        ({}, "outputs is empty"),
    ],
)
def test_bad_named_outputs_are_refused(outputs: Any, message: str) -> None:
    with pytest.raises(fl.GraphError, match=message):
        heads(outputs)


def test_a_graph_with_named_outputs_feeds_a_graph_with_named_inputs() -> None:
    torch.manual_seed(0)
    split = fl.Graph(
        {"a": fl.Linear(4, 6), "b": fl.Linear(4, 5)},
        edges=["x -> a", "x -> b"],
        inputs=("x",),
        outputs={"image": "a", "text": "b"},
    )
    model = fl.Chain(split=split, join=fusion())
    x = randn(2, 4)
    expected = model.join(image=split.a(x), text=split.b(x))
    torch.testing.assert_close(model(x), expected)
    assert shapes.infer(model, ("B", 4)).output == dims.Shape(["B", 4])


def test_surgery_keeps_the_output_keys() -> None:
    graph = heads()
    graph.insert_on_edge("trunk", "head_std", fl.ReLU(), name="act")
    graph.replace("head_mean", fl.Linear(8, 3), name="loc")
    assert graph.output_spec == {"mean": "loc", "std": "head_std"}
    graph.remove("act")
    assert list(graph(randn(2, 4))) == ["mean", "std"]


def test_named_outputs_compile_without_graph_breaks() -> None:
    graph = heads()
    compiled = torch.compile(graph, fullgraph=True, backend="eager")
    x = randn(2, 4)
    out = compiled(x)
    for key, value in graph(x).items():
        torch.testing.assert_close(out[key], value)


# -- one dict of named inputs ----------------------------------------------------------------


def test_one_dict_binds_the_named_inputs() -> None:
    graph = fusion()
    image, text = randn(2, 6), randn(2, 5, seed=1)
    expected = graph(image, text)
    torch.testing.assert_close(graph({"text": text, "image": image}), expected)
    torch.testing.assert_close(graph(text=text, image=image), expected)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"image": 1}, "with no 'text'; its inputs are: image, text"),
        ({"image": 1, "text": 2, "audio": 3}, "with unknown 'audio'"),
        ({"imag": 1}, "with no 'image', 'text' and unknown 'imag'"),
    ],
)
def test_a_dict_with_missing_or_unknown_keys_is_one_error(given: dict[str, Any], message: str) -> None:
    graph = fusion()
    with pytest.raises(fl.ChainError, match=message) as caught:
        graph(given)
    assert isinstance(caught.value.__cause__, fl.GraphError)


def test_a_graph_of_one_input_takes_a_dict_as_its_value() -> None:
    graph = fl.Graph({"pick": fl.Lambda(lambda d: d["a"] * 2)}, edges=["x -> pick"], inputs=("x",))
    torch.testing.assert_close(graph({"a": torch.ones(2)}), torch.full((2,), 2.0))
    # ...unless its keys are exactly the input's name: then it binds, as for several inputs
    doubled = fl.Graph({"twice": fl.Lambda(lambda t: t * 2)}, edges=["x -> twice"], inputs=("x",))
    torch.testing.assert_close(doubled({"x": torch.ones(2)}), torch.full((2,), 2.0))
    # and a keyword always passes the dict itself
    torch.testing.assert_close(graph(x={"a": torch.ones(2)}), torch.full((2,), 2.0))


def test_a_dict_of_shapes_binds_the_named_inputs_in_shape_inference() -> None:
    graph = fusion()
    shape_map = dims.ShapeMap({"text": dims.Shape(["B", 5]), "image": dims.Shape(["B", 6])})
    assert graph.output_shape(shape_map) == dims.Shape(["B", 4])
    with pytest.raises(shapes.ShapeError, match="with no 'text'"):
        graph.output_shape(dims.ShapeMap({"image": dims.Shape(["B", 6])}))


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(["mean", "std", "features"]), batch=st.integers(1, 4))
def test_named_outputs_are_the_tuple_outputs_by_key(order: list[str], batch: int) -> None:
    names = {"mean": "head_mean", "std": "head_std", "features": "trunk"}
    keyed = heads({key: names[key] for key in order})
    tupled = heads([names[key] for key in order])
    x = randn(batch, 4, seed=batch)
    out = keyed(x)
    assert list(out) == order
    for key, value in zip(order, tupled(x), strict=True):
        torch.testing.assert_close(out[key], value)
    assert shapes.infer(keyed, (batch, 4)).output == dict(
        zip(order, shapes.infer(tupled, (batch, 4)).output or (), strict=True)
    )
