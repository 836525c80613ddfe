"""Specs to trees and back: every built-in layer, containers, graphs, references, shares, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes, spec, weights
from fluxion.spec import SpecError

# One spec node per registered built-in class, with an input shape it takes.
LAYERS: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {
    "AdaptiveAvgPool1d": ({"output_size": 2}, ("B", 3, 8)),
    "AdaptiveAvgPool2d": ({"output_size": [2, 3]}, ("B", 3, 8, 8)),
    "AdaptiveMaxPool1d": ({"output_size": [3]}, ("B", 3, 8)),
    "AdaptiveMaxPool2d": ({"output_size": [None, 2], "return_indices": True}, ("B", 3, 8, 8)),
    "AvgPool1d": ({"kernel_size": 3, "stride": 2, "padding": 1}, ("B", 3, 9)),
    "AvgPool2d": ({"kernel_size": 2}, ("B", 3, 8, 8)),
    "AvgPool3d": ({"kernel_size": 2, "divisor_override": 3}, ("B", 3, 4, 4, 4)),
    "BatchNorm1d": ({}, ("B", 5)),
    "BatchNorm2d": ({"eps": 0.001}, ("B", 3, 4, 4)),
    "Chunk": ({"chunks": 2, "dim": -1}, ("B", 8)),
    "Conv1d": ({"out_channels": 4, "kernel_size": 3, "stride": 2}, ("B", 2, 16)),
    "Conv2d": ({"out_channels": 4, "kernel_size": [3, 1], "padding": "same", "bias": False}, ("B", 3, 8, 8)),
    "Conv3d": ({"out_channels": 2, "kernel_size": 1}, ("B", 1, 2, 3, 4)),
    "ConvTranspose2d": ({"out_channels": 2, "kernel_size": 2, "stride": 2}, ("B", 3, 4, 4)),
    "Dropout": ({"p": 0.25}, ("B", 4)),
    "Embedding": ({"num_embeddings": 10, "embedding_dim": 4}, ("B", "T")),
    "Flatten": ({}, ("B", 2, 3)),
    "GeLU": ({"approximate": "tanh"}, ("B", 4)),
    "GroupNorm": ({"num_groups": 2}, ("B", 4, 3)),
    "Identity": ({}, ("B", 4)),
    "LayerNorm": ({"eps": 1e-6}, ("B", "T", 8)),
    "LeakyReLU": ({"negative_slope": 0.2}, ("B", 4)),
    "Linear": ({"out_features": 3}, ("B", 5)),
    "LogSigmoid": ({}, ("B", 4)),
    "LogSoftmax": ({"dim": 1}, ("B", 4)),
    "MaxPool1d": ({"kernel_size": 2, "ceil_mode": True}, ("B", 3, 9)),
    "MaxPool2d": ({"kernel_size": 3, "stride": 2, "padding": 1}, ("B", 3, 9, 9)),
    "MaxPool3d": ({"kernel_size": [1, 2, 2], "dilation": 1}, ("B", 3, 2, 4, 4)),
    "MultiHeadAttention": ({"num_heads": 2, "is_causal": True}, ("B", "T", 8)),
    "SelfAttention": ({"num_heads": 2}, ("B", "T", 8)),
    "PaddingMask": ({}, ("B", "T")),
    "Permute": ({"dims": [0, 2, 1]}, ("B", 3, 4)),
    "PixelShuffle": ({"upscale_factor": 2}, ("B", 8, 3, 3)),
    "RMSNorm": ({}, ("B", 8)),
    "ReLU": ({}, ("B", 4)),
    "Reshape": ({"shape": [2, -1]}, ("B", 8)),
    "ScaledDotProductAttention": ({"num_heads": 2}, ("B", "T", 8)),
    "SiLU": ({}, ("B", 4)),
    "Sigmoid": ({}, ("B", 4)),
    "Slicing": ({"dim": 1, "start": 1, "end": 3}, ("B", 5)),
    "Softmax": ({"dim": 1}, ("B", 4)),
    "Squeeze": ({"dim": 1}, ("B", 1, 4)),
    "Tanh": ({}, ("B", 4)),
    "Transpose": ({"dim0": 1, "dim1": 2}, ("B", 3, 4)),
    "Unbind": ({"dim": 1}, ("B", 2, 4)),
    "Unflatten": ({"dim": 1, "unflattened_size": [2, 3]}, ("B", 6)),
    "Unsqueeze": ({"dim": 1}, ("B", 4)),
    "Upsample": ({"scale_factor": 2}, ("B", 3, 4, 4)),
    "Add": ({}, ("B", 4)),
    "Multiply": ({}, ("B", 4)),
    "Cat": ({"dim": -1}, ("B", 4)),
    "Return": ({}, ("B", 4)),
    "SequencePositionEmbedding": ({"num_positions": 8, "embedding_dim": 4}, ("B", "T", 4)),
    "TokenTypeEmbedding": ({"num_types": 2, "embedding_dim": 4}, ("B", "T", 4)),
    "OptionalInputs": ({"count": 1}, ("B", 4)),  # one input: its round trip compares no None
    "ClassToken": ({}, ("B", "T", 4)),
    "PositionEmbedding": ({}, ("B", 5, 4)),
    "Pad": ({"pad": [0, 1, 2, 0]}, ("B", 3, 4, 4)),
    "SinusoidalEmbedding": ({"dim": 6, "flip_sin_to_cos": True}, ("B",)),
    "Get": ({"key": -1}, (3, "B", 4)),
    "Narrow": ({"dim": 1, "start": -2, "length": 2}, ("B", 4)),
    "IndexSelect": ({"dim": 1, "index": [3, 0, 0]}, ("B", 4)),
    "Reduce": ({"name": "max", "dim": 1, "keepdim": True}, ("B", 4)),
    "TorchFunction": ({"name": "topk", "kwargs": {"k": 2, "dim": -1}}, (2, 5)),
    "Split": ({"split_size_or_sections": [1, 3], "dim": -1}, ("B", 4)),
    "Mean": ({}, ("B", 4)),
    "Stack": ({"dim": -1}, ("B", 4)),
    "Pack": ({}, ("B", 4)),
    "VecDot": ({}, ("B", 4)),
    "BatchMatmul": ({}, ("B", 3, 3)),
    "FiLM": ({}, ("B", 4)),  # both sizes inferred, and written back
}
CONTAINERS: dict[str, dict[str, Any]] = {
    "Chain": {},
    "Passthrough": {},
    "Residual": {},
    "Sum": {},
    "Parallel": {},
    "Distribute": {},
    "Concatenate": {"dim": -1},
    "Tokens2d": {},
}
NOT_STANDALONE = {"Graph", "Matmul", "SetContext", "UseContext", "Interpolate"}  # tests of their own below
SCHEMA = spec.schema()


def layer_spec(name: str) -> tuple[dict[str, Any], tuple[Any, ...]]:
    arguments, shape = LAYERS[name]
    if name == "ScaledDotProductAttention":  # three inputs: q, k, v from one tensor
        return {
            "type": "Chain",
            "children": [{"type": "Parallel", "children": [{"type": "Identity"}] * 3}, {"type": name, **arguments}],
        }, shape
    if name in ("Add", "Multiply", "Cat", "Mean", "Stack", "VecDot", "BatchMatmul", "FiLM"):  # two inputs
        return {
            "type": "Chain",
            "children": [
                {"type": "Parallel", "children": [{"type": "Identity"}, {"type": "Tanh"}]},
                {"type": name, **arguments},
            ],
        }, shape
    return {"type": "Chain", "children": [{"type": name, "id": "layer", **arguments}]}, shape


def concrete(shape: tuple[Any, ...]) -> tuple[int, ...]:
    sizes = {"B": 2, "T": 5, "H": 8, "W": 8}
    return tuple(sizes.get(size, size) if isinstance(size, str) else size for size in shape)


def same_tree(first: torch.nn.Module, second: torch.nn.Module) -> None:
    assert repr(first) == repr(second)
    assert [(k, v.shape, v.dtype) for k, v in first.state_dict().items()] == [
        (k, v.shape, v.dtype) for k, v in second.state_dict().items()
    ]
    assert [name for name, _ in first.named_modules()] == [name for name, _ in second.named_modules()]


def test_every_builtin_class_has_an_example() -> None:
    covered = set(LAYERS) | set(CONTAINERS) | NOT_STANDALONE | {"LSTM", "GRU", "RNN"}
    builtin = {name for name in spec.registered() if name in fl.__all__}  # not classes that docs or tests register
    assert builtin <= covered, builtin - covered


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_builtin_layer_round_trips_with_the_same_tree_and_shapes(name: str) -> None:
    node, shape = layer_spec(name)
    document = {**node, "inputs": {"x": list(shape)}}
    jsonschema.validate(document, SCHEMA)
    model = spec.loads(document)
    written = spec.dump(model, inputs={"x": list(shape)})
    jsonschema.validate(written, SCHEMA)
    again = spec.loads(json.loads(json.dumps(written)))
    same_tree(model, again)
    assert shapes.infer(model, shape).output == shapes.infer(again, shape).output
    again.load_state_dict(model.state_dict())
    model.eval(), again.eval()
    x = torch.randn(concrete(shape)) if name != "Embedding" else torch.randint(0, 10, concrete(shape))
    torch.manual_seed(0)
    first = model(x)
    torch.manual_seed(0)
    second = again(x)
    assert all(
        torch.equal(a, b)
        for a, b in zip(torch.utils._pytree.tree_leaves(first), torch.utils._pytree.tree_leaves(second), strict=True)
    )


def test_torch_classes_named_torch_nn_build_as_torch_leaves_and_round_trip() -> None:
    document = {
        "type": "Graph",
        "inputs": {"x": ["B", "T", 8]},
        "nodes": [
            {
                "type": "torch.nn.MultiheadAttention",
                "id": "attention",
                "embed_dim": 8,
                "num_heads": 2,
                "batch_first": True,
            },
            {"type": "Get", "id": "attended"},
            {"type": "torch.nn.TransformerEncoderLayer", "id": "block", "d_model": 8, "nhead": 2, "dropout": 0.0},
            {"type": "torch.nn.GELU", "id": "act", "approximate": "tanh"},
        ],
        "edges": ["x -> attention -> attended -> block -> act"],
        "arguments": {"attention": ["x", "x", "x"]},
        "outputs": "act",
    }
    jsonschema.validate(document, SCHEMA)
    model = spec.loads(document)
    assert type(model.get_submodule("attention")) is torch.nn.MultiheadAttention
    written = spec.dump(model, inputs={"x": ["B", "T", 8]})
    jsonschema.validate(written, SCHEMA)
    assert written["nodes"][2] == {
        "type": "torch.nn.TransformerEncoderLayer",
        "d_model": 8,
        "nhead": 2,
        "dropout": 0.0,
        "id": "block",
    }
    again = spec.loads(json.loads(json.dumps(written)))
    same_tree(model, again)
    again.load_state_dict(model.state_dict())
    model.eval(), again.eval()
    x = torch.randn(2, 5, 8)
    assert torch.equal(again(x), model(x))


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("torch.nn.MultiHeadAttention", "not one of torch.nn's module classes (closest: torch.nn.MultiheadAttention)"),
        ("torch.nn.Sequential", "torch.nn.Sequential is a container or a base class, not a leaf a spec builds"),
        ("torch.nn.functional", "not one of torch.nn's module classes"),
    ],
)
def test_a_torch_nn_name_that_is_no_module_class_is_refused_with_a_suggestion(kind: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        spec.loads({"type": "Chain", "children": [{"type": kind}]})
    assert caught.value.path == "children[0].type"
    assert message in caught.value.reason


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_containers_keep_children_ids_and_automatic_names(name: str) -> None:
    document = {
        "type": name,
        **CONTAINERS[name],
        "children": [
            {"type": "Linear", "in_features": 4, "out_features": 4},
            {"type": "Linear", "in_features": 4, "out_features": 4},
            {"type": "Linear", "id": "last", "in_features": 4, "out_features": 4},
        ],
    }
    model = spec.loads(document)
    assert [name for name, _ in model.named_children()] == ["Linear_1", "Linear_2", "last"]
    written = spec.dump(model)
    assert [child.get("id") for child in written["children"]] == [None, None, "last"]
    same_tree(model, spec.loads(written))


def test_a_jsonnet_file_with_variables_builds_and_infers_sizes(tmp_path: Path) -> None:
    (tmp_path / "mlp.jsonnet").write_text(
        """
        function(widths, classes=10) {
          type: 'Chain',
          inputs: {x: ['B', std.extVar('features')]},
          local head = {type: 'Linear', id: 'head', out_features: classes},
          children: [{type: 'Linear', out_features: w} for w in widths] + [head],
        }
        """
    )
    model = spec.load(tmp_path / "mlp.jsonnet", tla={"widths": [16, 8]}, ext_vars={"features": 5})
    assert [m.in_features for m in model.layers(fl.Linear)] == [5, 16, 8]
    assert model.head.out_features == 10
    assert model(torch.zeros(3, 5)).shape == (3, 10)


def test_a_spec_file_used_as_a_node_with_its_own_arguments(tmp_path: Path) -> None:
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "block.jsonnet").write_text(
        "function(width) {type: 'Residual', children: ["
        "{type: 'Linear', in_features: width, out_features: width}, {type: 'ReLU'}]}"
    )
    (tmp_path / "model.json").write_text(
        json.dumps(
            {
                "type": "Chain",
                "children": [
                    {"spec": "blocks/block.jsonnet", "args": {"width": 4}, "id": "first"},
                    {"spec": "blocks/block.jsonnet", "args": {"width": 4}, "id": "second"},
                ],
            }
        )
    )
    model = spec.load(tmp_path / "model.json")
    assert list(model.state_dict()) == [
        "first.Linear.weight",
        "first.Linear.bias",
        "second.Linear.weight",
        "second.Linear.bias",
    ]


def test_spec_files_naming_each_other_are_a_cycle_error(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"type": "Chain", "children": [{"spec": "b.json"}]}))
    (tmp_path / "b.json").write_text(json.dumps({"type": "Chain", "children": [{"spec": "a.json"}]}))
    with pytest.raises(SpecError, match=r"cycle: a\.json -> b\.json -> a\.json") as caught:
        spec.load(tmp_path / "a.json")
    assert caught.value.path == "children[0].spec"


def test_a_spec_cannot_read_a_file_outside_its_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"type": "ReLU"}))
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "model.json").write_text(
        json.dumps({"type": "Chain", "children": [{"spec": "../secret.json"}]})
    )
    with pytest.raises(SpecError, match="refused"):
        spec.load(tmp_path / "specs" / "model.json")
    (tmp_path / "specs" / "model.jsonnet").write_text("import '../secret.json'")
    with pytest.raises(SpecError, match="refused"):
        spec.load(tmp_path / "specs" / "model.jsonnet")


GRAPH = {
    "type": "Graph",
    "inputs": ["x"],
    "nodes": [
        {"type": "Linear", "id": "fc1", "in_features": 4, "out_features": 4},
        {"type": "ReLU", "id": "act"},
        {"type": "Linear", "id": "fc2", "in_features": 4, "out_features": 4},
        {"type": "Add", "id": "add"},
    ],
    "edges": ["x -> fc1 -> act -> fc2 -> add", "x -> add"],
}


def test_a_graph_spec_equals_the_hand_written_chain() -> None:
    graph = spec.loads(GRAPH)
    chain = fl.Residual(fl.Linear(4, 4), fl.ReLU(), fl.Linear(4, 4))
    renamed = {"fc1": "Linear_1", "fc2": "Linear_2"}
    chain.load_state_dict({renamed[key.split(".")[0]] + key[3:]: value for key, value in graph.state_dict().items()})
    x = torch.randn(3, 4)
    assert torch.allclose(graph(x), chain(x))
    assert list(graph.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    same_tree(graph, spec.loads(spec.dump(graph)))
    assert "← x" in repr(graph)


def test_a_graph_with_named_inputs_and_several_outputs() -> None:
    document = {
        "type": "Graph",
        "inputs": {"image": ["B", 8], "text": ["B", 6]},
        "nodes": {
            "a": {"type": "Linear", "out_features": 3},
            "b": {"type": "Linear", "out_features": 3},
            "sum": {"type": "Add"},
        },
        "edges": ["image -> a -> sum", "text -> b -> sum"],
        "outputs": ["sum", "a"],
    }
    model = spec.loads(document)
    total, first = model(image=torch.randn(2, 8), text=torch.randn(2, 6))
    assert total.shape == first.shape == (2, 3)
    assert model.b.in_features == 6


def test_shared_weights_are_one_tensor_and_round_trip() -> None:
    document = {
        "type": "Chain",
        "children": [
            {"type": "Embedding", "id": "embed", "num_embeddings": 10, "embedding_dim": 4},
            {
                "type": "Linear",
                "id": "head",
                "in_features": 4,
                "out_features": 10,
                "bias": False,
                "share": {"weight": "embed.weight"},
            },
        ],
    }
    model = spec.loads(document)
    assert model.head.weight is model.embed.weight
    written = spec.dump(model)
    assert written["children"][1]["share"] == {"weight": "embed.weight"}
    again = spec.loads(written)
    assert again.head.weight is again.embed.weight


def test_a_whole_node_shares_another_nodes_parameters() -> None:
    model = spec.loads(
        {
            "type": "Chain",
            "children": [
                {"type": "Linear", "id": "a", "in_features": 3, "out_features": 3},
                {"type": "Linear", "id": "b", "in_features": 3, "out_features": 3, "share": "a"},
            ],
        }
    )
    assert model.b.weight is model.a.weight
    assert model.b.bias is model.a.bias
    with pytest.raises(SpecError, match="share: 'weight' has shape"):
        spec.loads(
            {
                "type": "Chain",
                "children": [
                    {"type": "Linear", "id": "a", "in_features": 3, "out_features": 3},
                    {"type": "Linear", "id": "b", "in_features": 2, "out_features": 3, "share": "a"},
                ],
            }
        )


def test_building_on_meta_then_loading_weights(tmp_path: Path) -> None:
    source = spec.loads(
        {"type": "Chain", "inputs": {"x": ["B", 4]}, "children": [{"type": "Linear", "out_features": 2}]}
    )
    weights.save(source, tmp_path / "w.safetensors")
    model = spec.loads(
        {"type": "Chain", "inputs": {"x": ["B", 4]}, "children": [{"type": "Linear", "out_features": 2}]},
        device="meta",
        weights=tmp_path / "w.safetensors",
    )
    assert model.Linear.weight.device.type == "cpu"
    assert torch.equal(model.Linear.weight, source.Linear.weight)


def test_inputs_given_to_load_override_the_specs() -> None:
    node = {"type": "Chain", "inputs": {"x": ["B", 4]}, "children": [{"type": "Linear", "out_features": 2}]}
    assert spec.loads(node, inputs=[["B", 7]]).Linear.in_features == 7


def error_of(document: Any, **options: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        spec.loads(document, **options)
    return caught.value


def test_errors_name_the_json_path_and_what_was_expected() -> None:
    unknown = error_of({"type": "Chain", "children": [{"type": "ReLu"}]})
    assert (unknown.path, "closest registered: ReLU" in unknown.reason) == ("children[0].type", True)
    argument = error_of(
        {"type": "Chain", "children": [{"type": "ReLU"}, {"type": "Linear", "in_features": 2, "out_feature": 3}]}
    )
    assert argument.path == "children[1].out_feature"
    assert "did you mean out_features?" in argument.reason
    assert "Linear(in_features" in argument.reason
    wrong = error_of(
        {"type": "Chain", "children": [{"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": "3"}]}
    )
    assert wrong.path == "children[0].kernel_size"
    assert wrong.reason.startswith('expected an int, a list of 2 ints or null, got "3"')
    missing = error_of({"type": "Chain", "children": [{"type": "Embedding", "num_embeddings": 3}]})
    assert missing.path == "children[0]"
    assert "needs argument 'embedding_dim'" in missing.reason
    duplicate = error_of({"type": "Chain", "children": [{"type": "ReLU", "id": "a"}, {"type": "Tanh", "id": "a"}]})
    assert duplicate.path == "children[1].id"
    assert "duplicate" in duplicate.reason


def test_graph_errors_name_the_graph_and_the_problem() -> None:
    bad_edge = copy.deepcopy(GRAPH)
    bad_edge["edges"] = ["x -> fc1 -> act -> fc2 -> add", "x -> ad"]
    assert "ad" in error_of(bad_edge).reason
    cycle = copy.deepcopy(GRAPH)
    cycle["edges"] = ["x -> fc1 -> act -> fc2 -> add", "add -> fc1"]
    assert "cycle" in error_of(cycle).reason
    unreachable = copy.deepcopy(GRAPH)
    unreachable["nodes"].append({"type": "ReLU", "id": "lost"})
    unreachable["edges"].append("lost -> add")
    assert "lost" in error_of(unreachable).reason


def test_a_shape_mismatch_names_the_address_and_the_json_path(tmp_path: Path) -> None:
    file = tmp_path / "model.json"
    file.write_text(
        json.dumps(
            {
                "type": "Chain",
                "inputs": {"x": ["B", 8]},
                "children": [
                    {"type": "Linear", "out_features": 16},
                    {
                        "type": "Chain",
                        "id": "head",
                        "children": [{"type": "Linear", "in_features": 200, "out_features": 2}],
                    },
                ],
            }
        )
    )
    with pytest.raises(SpecError) as caught:
        spec.load(file)
    error = caught.value
    assert error.file == str(file.resolve())
    assert error.path == "children[1].children[0]"
    assert "Linear at 'head.Linear' got (B, 16): Linear expects last dim 200, got 16" in error.reason


def test_lazy_sizes_without_input_shapes_are_an_error() -> None:
    error = error_of({"type": "Chain", "children": [{"type": "Linear", "out_features": 2}]})
    assert "gives no input shapes" in error.reason


def test_user_classes_round_trip_once_registered() -> None:
    class Scaled(fl.Chain):
        def __init__(self, width: int, factor: float = 1.0) -> None:
            super().__init__(fl.Linear(width, width))
            self.factor = factor

    model = fl.Chain(Scaled(3, factor=2.0))
    with pytest.raises(SpecError, match="not registered"):
        spec.dump(model)
    spec.register(Scaled, name="TestScaled")
    written = spec.dump(model)
    assert written["children"] == [{"type": "TestScaled", "width": 3, "factor": 2.0}]
    same_tree(model, spec.loads(written))


def test_context_layers_round_trip() -> None:
    document = {
        "type": "Chain",
        "children": [
            {"type": "SetContext", "context": "skip", "key": "x"},
            {"type": "Linear", "in_features": 4, "out_features": 4},
            {"type": "Sum", "children": [{"type": "Identity"}, {"type": "UseContext", "context": "skip", "key": "x"}]},
        ],
    }
    model = spec.loads(document)
    same_tree(model, spec.loads(spec.dump(model)))
    assert model(torch.randn(2, 4)).shape == (2, 4)


def test_a_lambda_cannot_be_written() -> None:
    with pytest.raises(SpecError, match="not registered"):
        spec.dump(fl.Chain(fl.Lambda(torch.neg)))


def test_layers_with_several_inputs_round_trip() -> None:
    document = {
        "type": "Chain",
        "children": [
            {
                "type": "Matmul",
                "children": [
                    {"type": "Linear", "in_features": 4, "out_features": 3},
                    {"type": "Transpose", "dim0": -1, "dim1": -2},
                ],
            },
            {"type": "Interpolate", "mode": "bilinear", "align_corners": False},
        ],
    }
    model = spec.loads(document)
    same_tree(model, spec.loads(spec.dump(model)))


def test_registering_a_redefined_class_replaces_it_and_a_clash_is_an_error() -> None:
    def define() -> type[fl.Module]:
        class Redefined(fl.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x

        return Redefined

    first, second = define(), define()
    spec.register(first)
    assert spec.register(second) is second  # a re-run notebook cell
    assert type(spec.loads({"type": "Chain", "children": [{"type": "Redefined"}]})[0]) is second
    with pytest.raises(SpecError, match="cannot register Tanh as 'Redefined'"):
        spec.register(fl.Tanh, name="Redefined")


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("depth", [18, 50])
def test_the_resnet_example_round_trips_and_has_torchvisions_layout(depth: int) -> None:
    model = spec.load(EXAMPLES / "resnet.jsonnet", tla={"depth": depth}, device="meta")
    written = spec.dump(model, inputs={"image": ["B", 3, 224, 224]})
    jsonschema.validate(written, SCHEMA)
    again = spec.loads(json.loads(json.dumps(written)), device="meta")
    same_tree(model, again)
    keys = list(model.state_dict())
    assert keys[:2] == ["conv1.weight", "bn1.weight"]
    assert "layer2.0.downsample.0.weight" in keys
    assert keys[-2:] == ["fc.weight", "fc.bias"]
    parameters = sum(parameter.numel() for parameter in model.parameters())
    assert parameters == {18: 11_689_512, 50: 25_557_032}[depth]  # torchvision's resnet18 / resnet50
    report = shapes.infer(model, ("B", 3, "H", "W"))
    assert report.output == shapes.Shape(["B", 1000])


def test_a_share_in_an_included_file_names_addresses_in_that_file(tmp_path: Path) -> None:
    (tmp_path / "tied.json").write_text(
        json.dumps(
            {
                "type": "Chain",
                "children": [
                    {"type": "Linear", "id": "a", "in_features": 3, "out_features": 3},
                    {"type": "Linear", "id": "b", "in_features": 3, "out_features": 3, "share": "a"},
                ],
            }
        )
    )
    (tmp_path / "model.json").write_text(
        json.dumps(
            {"type": "Chain", "children": [{"spec": "tied.json", "id": "first"}, {"spec": "tied.json", "id": "second"}]}
        )
    )
    model = spec.load(tmp_path / "model.json")
    assert model.first.b.weight is model.first.a.weight
    assert model.second.b.weight is model.second.a.weight
    assert model.second.a.weight is not model.first.a.weight


def test_shares_of_shares_end_at_the_first_tensor() -> None:
    model = spec.loads(
        {
            "type": "Chain",
            "children": [
                {"type": "Linear", "id": "a", "in_features": 3, "out_features": 3},
                {"type": "Linear", "id": "b", "in_features": 3, "out_features": 3, "share": "a"},
                {"type": "Linear", "id": "c", "in_features": 3, "out_features": 3, "share": {"weight": "b.weight"}},
            ],
        }
    )
    assert model.c.weight is model.b.weight is model.a.weight
