"""narchi's architecture files load as they are: detection, every block class, the ResNet-18 of
narchi's README (with torchvision's state_dict layout), references to other files, symbolic sizes,
and errors that name narchi's JSON path.

narchi's shapes leave out the batch; a real forward and fluxion's inferred shapes include it.
Where narchi's own arithmetic disagrees with what torch computes (it drops the fraction of a
symbolic size, ``1 + (H - 1)/2`` becoming ``H/2``, and takes a pool's stride to be 1 when it is not
given, where torch takes the kernel size), fluxion follows torch: those cases compare with narchi
only at sizes where both agree, and say so.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import sympy
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from fluxion.spec import SpecError
from fluxion.spec.narchi.architecture import is_narchi, translate
from fluxion.spec.narchi.blocks import leaf
from fluxion.spec.source import read
from tests.shapes.helpers import evaluate
from tests.spec.mutations import locations

HERE = Path(__file__).parent
RESNET = HERE / "resnet.jsonnet"
RESNET18 = {"num_blocks": [2, 2, 2, 2]}


def architecture(
    blocks: list[dict[str, Any]], graph: list[str], inputs: dict[str, list[Any]], outputs: list[str] = ("y",)
) -> dict[str, Any]:
    """A narchi architecture, its inputs as {id: shape without the batch}."""
    return {
        "_id": "test",
        "blocks": blocks,
        "graph": graph,
        "inputs": [{"_id": name, "_shape": shape} for name, shape in inputs.items()],
        "outputs": [{"_id": name, "_shape": ["<<auto>>"]} for name in outputs],
    }


def narchi_size(expression: int | str, values: dict[str, int]) -> Any:
    """A size as narchi writes it (``"H/2"``, ``"C*H*W"``) at the given values: a number, maybe a fraction."""
    return sympy.sympify(str(expression)).subs(values)


def recorded_outputs(model: torch.nn.Module, *inputs: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor a node returns in a real forward, by address."""
    found: dict[str, tuple[int, ...]] = {}
    handles = []
    for address, module in model.named_modules():

        def hook(_: Any, __: Any, output: Any, address: str = address) -> None:
            if isinstance(output, torch.Tensor):
                found[address] = tuple(output.shape)

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return found


def assert_report_matches_forward(
    model: torch.nn.Module, report: shapes.ShapeReport, values: dict[str, int], *inputs: torch.Tensor
) -> None:
    real = recorded_outputs(model, *inputs)
    assert real, "the forward recorded nothing"
    for address, shape in real.items():
        assert evaluate(report[address].output, values) == shape, address


# -- detection ------------------------------------------------------------------------------------


def test_narchi_files_are_detected() -> None:
    assert is_narchi(read(RESNET, ext_vars=RESNET18).data)
    assert is_narchi({"_class": "Linear", "output_feats": 3})
    assert is_narchi({"blocks": [], "graph": []})
    assert not is_narchi({"type": "Chain", "children": []})
    assert not is_narchi({"spec": "model.jsonnet"})
    assert not is_narchi([{"_class": "Linear"}])
    assert not is_narchi("Linear")


def test_translation_is_fluxion_spec() -> None:
    translated = translate(read(HERE / "line_recognizer.jsonnet", ext_vars={"num_symbols": 9}).data)
    assert translated["type"] == "Chain"
    assert translated["inputs"] == {"image": ["B", 3, 64, "W"]}
    assert [child["id"] for child in translated["children"]] == [
        "conv1",
        "conv2",
        "conv3",
        "conv4",
        "columns",
        "blstm",
        "fc",
    ]
    assert not is_narchi(translated)
    assert spec.loads(translated).fc.out_features == 9


# -- every block class, against a real forward and against narchi's own shapes --------------------------

# (block, narchi input shape, the output shape narchi computes, sizes where narchi agrees with torch)
BLOCKS: list[Any] = [
    pytest.param({"_class": "Identity"}, [4, "H"], [4, "H"], {"H": 5}, id="Identity"),
    pytest.param({"_class": "ReLU", "inplace": False}, [4, "H"], [4, "H"], {"H": 5}, id="ReLU"),
    pytest.param({"_class": "LeakyReLU", "negative_slope": 0.2}, [4, "H"], [4, "H"], {"H": 5}, id="LeakyReLU"),
    pytest.param({"_class": "Sigmoid"}, ["T", 3], ["T", 3], {"T": 2}, id="Sigmoid"),
    pytest.param({"_class": "Tanh"}, ["T", 3], ["T", 3], {"T": 2}, id="Tanh"),
    pytest.param({"_class": "Softmax", "dim": -1}, ["T", 3], ["T", 3], {"T": 2}, id="Softmax"),
    pytest.param({"_class": "Softmax"}, [3], [3], {}, id="Softmax-default"),
    pytest.param({"_class": "Dropout", "p": 0.3}, ["T", 3], ["T", 3], {"T": 2}, id="Dropout"),
    pytest.param({"_class": "BatchNorm2d"}, [3, "H", "W"], [3, "H", "W"], {"H": 4, "W": 5}, id="BatchNorm2d"),
    pytest.param({"_class": "Linear", "output_feats": 5}, ["T", 8], ["T", 5], {"T": 3}, id="Linear"),
    pytest.param({"_class": "Linear", "output_size": 5}, [8], [5], {}, id="Linear-former-name"),
    pytest.param(
        {"_class": "AdaptiveAvgPool2d", "output_feats": [2, 3]},
        [3, "H", "W"],
        [3, 2, 3],
        {"H": 6, "W": 7},
        id="AdaptiveAvgPool2d",
    ),
    pytest.param(
        {"_class": "Conv1d", "output_feats": 6, "kernel_size": 3, "stride": 2, "padding": 1},
        [4, "L"],
        [6, "L/2"],
        {"L": 10},
        id="Conv1d",  # narchi's L/2 is torch's floor((L-1)/2)+1 for even L
    ),
    pytest.param(
        {"_class": "Conv2d", "output_feats": 8, "kernel_size": 3, "padding": 1, "bias": False},
        [3, "H", "W"],
        [8, "H", "W"],
        {"H": 5, "W": 7},
        id="Conv2d",
    ),
    pytest.param(
        {"_class": "Conv3d", "output_feats": 2, "kernel_size": 3},
        [1, "D", "H", "W"],
        [2, "D-2", "H-2", "W-2"],
        {"D": 4, "H": 5, "W": 6},
        id="Conv3d",
    ),
    pytest.param(
        {"_class": "MaxPool2d", "kernel_size": 2, "stride": 2},
        [3, "H", "W"],
        [3, "H/2", "W/2"],
        {"H": 8, "W": 6},
        id="MaxPool2d",
    ),
    pytest.param(
        {"_class": "AvgPool2d", "kernel_size": 3, "stride": 1, "padding": 1},
        [3, "H", "W"],
        [3, "H", "W"],
        {"H": 5, "W": 4},
        id="AvgPool2d",
    ),
    pytest.param(
        {"_class": "Reshape", "reshape_spec": "flatten"},
        [3, "H", "W"],
        ["3*H*W"],
        {"H": 2, "W": 5},
        id="Reshape-flatten",
    ),
    pytest.param({"_class": "Reshape", "reshape_spec": [1, 0]}, ["T", 4], [4, "T"], {"T": 3}, id="Reshape-permute"),
    pytest.param(
        {"_class": "Reshape", "reshape_spec": [2, [0, 1]]}, [3, 8, "W"], ["W", 24], {"W": 5}, id="Reshape-columns"
    ),
    pytest.param(
        {"_class": "Reshape", "reshape_spec": [[3, 2], [0, 1]]},
        ["H", 8, "W", 2],
        ["2*W", "8*H"],
        {"H": 3, "W": 5},
        id="Reshape-two-flattens",
    ),
    pytest.param(
        {"_class": "Reshape", "reshape_spec": [{"0": [3, 48, "<<auto>>"]}]},
        [4608],
        [3, 48, 32],
        {},
        id="Reshape-unflatten",
    ),
    pytest.param(
        {"_class": "Reshape", "reshape_spec": [1, {"0": [2, "<<auto>>"]}]},
        ["T", 5],
        [5, 2, "T/2"],
        {"T": 6},
        id="Reshape-permute-unflatten",
    ),
    pytest.param({"_class": "Reshape", "reshape_spec": [0, 1]}, ["T", 5], ["T", 5], {"T": 6}, id="Reshape-identity"),
    pytest.param({"_class": "LSTM", "output_feats": 6, "bidirectional": True}, ["T", 4], ["T", 6], {"T": 3}, id="LSTM"),
    pytest.param(
        {"_class": "GRU", "output_feats": 5, "num_layers": 2, "dropout": 0.1}, ["T", 4], ["T", 5], {"T": 3}, id="GRU"
    ),
    pytest.param({"_class": "RNN", "output_feats": 3, "nonlinearity": "relu"}, ["T", 4], ["T", 3], {"T": 3}, id="RNN"),
    pytest.param(
        {"_class": "Sequential", "blocks": [{"_class": "Linear", "output_feats": 4}, {"_class": "ReLU"}]},
        [6],
        [4],
        {},
        id="Sequential",
    ),
]


@pytest.mark.parametrize(("block", "narchi_in", "narchi_out", "values"), BLOCKS)
def test_block_class(
    block: dict[str, Any], narchi_in: list[Any], narchi_out: list[Any], values: dict[str, int]
) -> None:
    variables = ["<<variable:" + size + ">>" if isinstance(size, str) else size for size in narchi_in]
    model = spec.load(architecture([{**block, "_id": "b"}], ["x -> b -> y"], {"x": variables}))
    symbolic = ("B", *narchi_in)
    report = shapes.infer(model, symbolic)
    at = {"B": 2, **values}
    expected = [2, *(int(narchi_size(size, values)) for size in narchi_out)]
    assert list(evaluate(report.output, at)) == expected  # narchi's shape, the batch in front
    real = torch.randn(evaluate(dims.Shape(symbolic), at))
    assert_report_matches_forward(model, report, at, real)
    assert tuple(model.eval()(real).shape) == tuple(expected)


def test_embedding_takes_indices() -> None:
    block = {"_class": "Embedding", "_id": "embed", "num_embeddings": 10, "output_feats": 4}
    model = spec.load(architecture([block], ["tokens -> embed -> y"], {"tokens": ["<<variable:L>>"]}))
    assert shapes.infer(model, ("B", "L")).output == dims.Shape(["B", "L", 4])
    assert model(torch.randint(0, 10, (2, 7))).shape == (2, 7, 4)


def test_group_with_add_and_concatenate() -> None:
    group = {
        "_class": "Group",
        "_id": "block",
        "blocks": [
            {"_class": "Identity", "_id": "split"},
            {"_class": "Conv2d", "_id": "left", "output_feats": 4, "kernel_size": 1},
            {"_class": "Conv2d", "_id": "right", "output_feats": 2, "kernel_size": 3, "padding": 1},
            {"_class": "Concatenate", "_id": "cat", "dim": 0},  # narchi's dim 0: the channels
            {"_class": "Conv2d", "_id": "mix", "output_feats": 3, "kernel_size": 1},
            {"_class": "Add", "_id": "add"},
        ],
        "graph": ["split -> left -> cat", "split -> right -> cat", "cat -> mix -> add", "split -> add"],
        "input": "split",
        "output": "add",
    }
    model = spec.load(architecture([group], ["x -> block -> y"], {"x": [3, "<<variable:H>>", "<<variable:W>>"]}))
    graph = model.block
    assert isinstance(graph, fl.Graph)
    assert graph.sources("cat") == ("left", "right")  # in the order of the graph's paths, as narchi's
    report = shapes.infer(model, ("B", 3, "H", "W"))
    assert report["block.cat"].output == dims.Shape(["B", 6, "H", "W"])
    assert report.output == dims.Shape(["B", 3, "H", "W"])
    assert_report_matches_forward(model, report, {"B": 2, "H": 5, "W": 4}, torch.randn(2, 3, 5, 4))


def test_linear_group_is_a_chain_in_graph_order() -> None:
    group = {
        "_class": "Group",
        "_id": "g",
        "blocks": [{"_class": "ReLU", "_id": "act"}, {"_class": "Linear", "_id": "fc", "output_feats": 3}],
        "graph": ["fc -> act"],
        "input": "fc",
        "output": "act",
    }
    model = spec.load(architecture([group], ["x -> g -> y"], {"x": [5]}))
    assert type(model.g) is fl.Chain
    assert [name for name, _ in model.g.named_children()] == ["fc", "act"]


def test_pooling_stride_follows_torch() -> None:
    # narchi's shapes take a pool's missing stride to be 1 (3x3 windows: H - 2); torch's, and so
    # fluxion's, is the kernel size (floor(H / 3)), which is what narchi's own PyTorch modules compute
    pool = {"_class": "MaxPool2d", "_id": "pool", "kernel_size": 3}
    model = spec.load(architecture([pool], ["x -> pool -> y"], {"x": [2, "<<variable:H>>", 9]}))
    assert model.pool.stride == 3
    report = shapes.infer(model, ("B", 2, "H", 9))
    assert report.output == dims.Shape(["B", 2, dims.floordiv(dims.dim("H"), 3), 3])
    assert model(torch.randn(1, 2, 10, 9)).shape == (1, 2, 3, 3)


def test_multiple_inputs_and_outputs() -> None:
    model = spec.load(HERE / "multimodal.jsonnet", ext_vars={"vocabulary": 50})
    assert isinstance(model, fl.Graph)
    assert model.inputs == ("tokens", "image")
    assert model.outputs == ("category_prob", "quality_prob")
    report = shapes.infer(model, tokens=("B", "L"), image=("B", 3, "H", "W"))
    assert report.output == (dims.Shape(["B", 10]), dims.Shape(["B", 1]))
    assert report["text.2"].output == dims.Shape(["B", 64, 1, "L"])
    tokens, image = torch.randint(0, 50, (2, 7)), torch.randn(2, 3, 12, 16)
    assert_report_matches_forward(model, report, {"B": 2, "L": 7, "H": 12, "W": 16}, tokens, image)


def test_line_recognizer_shapes_are_narchis() -> None:
    # the shapes narchi's tests give for this architecture (its Laia example), batch left out
    narchi = {
        "conv1": [16, 32, "W/2"],
        "conv2": [16, 16, "W/4"],
        "conv3": [32, 16, "W/4"],
        "conv4": [32, 8, "W/8"],
        "columns": ["W/8", 256],
        "blstm": ["W/8", 512],
        "fc": ["W/8", 68],
    }
    model = spec.load(HERE / "line_recognizer.jsonnet", ext_vars={"num_symbols": 68})
    report = shapes.infer(model, ("B", 3, 64, "W"))
    assert report.output == dims.Shape(["B", dims.floordiv(dims.dim("W"), 8), 68])
    for width in (8, 96, 160):  # narchi's W/8 is torch's floor(W/8) for widths that 8 divides
        for address, shape in narchi.items():
            assert list(evaluate(report[address].output, {"B": 1, "W": width}))[1:] == [
                narchi_size(size, {"W": width}) for size in shape
            ]
    assert_report_matches_forward(model, report, {"B": 2, "W": 44}, torch.randn(2, 3, 64, 44))


# -- ResNet-18, as narchi's README describes it ---------------------------------------------------------


def torchvision_resnet18_keys() -> list[str]:
    """torchvision's ``resnet18().state_dict()`` keys, in order."""

    def conv(prefix: str) -> list[str]:
        return [f"{prefix}.weight"]

    def norm(prefix: str) -> list[str]:
        return [f"{prefix}.{name}" for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]

    keys = conv("conv1") + norm("bn1")
    for layer in range(1, 5):
        for block in range(2):
            prefix = f"layer{layer}.{block}"
            keys += conv(f"{prefix}.conv1") + norm(f"{prefix}.bn1") + conv(f"{prefix}.conv2") + norm(f"{prefix}.bn2")
            if layer > 1 and block == 0:
                keys += conv(f"{prefix}.downsample.0") + norm(f"{prefix}.downsample.1")
    return [*keys, "fc.weight", "fc.bias"]


@pytest.fixture(scope="module")
def resnet18() -> fl.Chain:
    return spec.load(RESNET, ext_vars=RESNET18)


def test_resnet18_state_dict_is_torchvisions(resnet18: fl.Chain) -> None:
    state = resnet18.state_dict()
    assert list(state) == torchvision_resnet18_keys()
    assert len(state) == 122
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer2.0.conv1.weight"].shape == (128, 64, 3, 3)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.1.bn2.running_var"].shape == (512,)
    assert state["fc.weight"].shape == (1000, 512)
    assert sum(parameter.numel() for parameter in resnet18.parameters()) == 11_689_512  # torchvision's count


def test_resnet18_against_torchvision(resnet18: fl.Chain) -> None:
    models = pytest.importorskip("torchvision.models")
    reference = models.resnet18()
    assert list(resnet18.state_dict()) == list(reference.state_dict())
    resnet18.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(resnet18.eval()(x), reference.eval()(x))


# The shapes narchi's README diagram shows at each stage of ResNet-18, batch left out. narchi drops the
# fraction of a strided size (H/2 for torch's floor((H-1)/2) + 1), so they hold for sizes that 32 divides.
RESNET_STAGES = {
    "conv1": [64, "H/2", "W/2"],
    "bn1": [64, "H/2", "W/2"],
    "maxpool": [64, "H/4", "W/4"],
    "layer1": [64, "H/4", "W/4"],
    "layer2.0.conv1": [128, "H/8", "W/8"],
    "layer2.0.downsample": [128, "H/8", "W/8"],
    "layer2": [128, "H/8", "W/8"],
    "layer3": [256, "H/16", "W/16"],
    "layer4": [512, "H/32", "W/32"],
    "avgpool": [512, 1, 1],
    "flatten": [512],
    "fc": [1000],
}


def test_resnet18_shapes(resnet18: fl.Chain) -> None:
    report = shapes.infer(resnet18, ("B", 3, "H", "W"))
    assert report.output == dims.Shape(["B", 1000])
    height = dims.Shape(["B", report["layer4"].output[2]])  # torch's ceil(H/32); narchi writes H/32
    assert [evaluate(height, {"B": 1, "H": h})[1] for h in range(1, 80)] == [(h - 1) // 32 + 1 for h in range(1, 80)]
    assert "floor" in dims.show(height[1]) or "ceil" in dims.show(height[1])
    for height, width in ((224, 224), (64, 96), (320, 32)):
        at = {"B": 1, "H": height, "W": width}
        for address, shape in RESNET_STAGES.items():
            narchi = [narchi_size(size, at) for size in shape]
            assert list(evaluate(report[address].output, at)) == [1, *narchi], address
    odd = {"B": 1, "H": 225, "W": 225}
    assert evaluate(report["conv1"].output, odd) == (1, 64, 113, 113)  # torch; narchi's H/2 would be 112.5
    assert_report_matches_forward(resnet18, report, {"B": 2, "H": 50, "W": 37}, torch.randn(2, 3, 50, 37))


def test_resnet34_from_the_same_file() -> None:
    model = spec.load(RESNET, ext_vars={"num_blocks": [3, 4, 6, 3]}, device="meta")
    assert [name for name, _ in model.layer3.named_children()] == [str(n) for n in range(6)]
    assert sum(parameter.numel() for parameter in model.parameters()) == 21_797_672  # torchvision's count


# -- references to other files, external variables, symbols, sharing ----------------------------------


def test_module_blocks_load_other_files_with_their_ext_vars() -> None:
    model = spec.load(HERE / "classifier.jsonnet", ext_vars={"classes": 5})
    assert list(model.state_dict()) == [
        "encoder.mlp.0.weight",
        "encoder.mlp.0.bias",
        "encoder.mlp.2.weight",
        "encoder.mlp.2.bias",
        "encoder.residual.linear.weight",
        "encoder.residual.linear.bias",
        "head.weight",
        "head.bias",
    ]
    assert model.encoder.mlp[0].in_features == 20  # inferred across the file boundary
    report = shapes.infer(model, ("B", 20))
    assert report.output == dims.Shape(["B", 5])
    assert_report_matches_forward(model, report, {"B": 3}, torch.randn(3, 20))


def test_module_block_cycle_and_missing_file(tmp_path: Path) -> None:
    loop = architecture(
        [{"_class": "Module", "_id": "again", "_path": "loop.jsonnet"}], ["x -> again -> y"], {"x": [3]}
    )
    (tmp_path / "loop.jsonnet").write_text(json.dumps(loop))
    with pytest.raises(SpecError, match="cycle"):
        spec.load(tmp_path / "loop.jsonnet")
    missing = architecture(
        [{"_class": "Module", "_id": "part", "_path": "nowhere.jsonnet"}], ["x -> part -> y"], {"x": [3]}
    )
    with pytest.raises(SpecError, match=r"nowhere\.jsonnet"):
        spec.load(missing, search_paths=[tmp_path])


def test_variables_become_symbols_and_auto_is_inferred() -> None:
    blocks = [
        {"_class": "Conv2d", "_id": "conv", "output_feats": 4, "kernel_size": 3, "padding": "<<auto>>"},
        {"_class": "BatchNorm2d", "_id": "norm", "num_features": "<<auto>>"},
    ]
    model = spec.load(architecture(blocks, ["x -> conv -> norm -> y"], {"x": [2, "<<variable:Height>>", 6]}))
    assert spec.dump(model)["children"][1]["num_features"] == 4
    assert shapes.infer(model, ("B", 2, "Height", 6)).output == dims.Shape(["B", 4, dims.dim("Height") - 2, 4])


def test_batch_symbol_avoids_the_files_names() -> None:
    translated = translate(architecture([{"_class": "ReLU", "_id": "r"}], ["x -> r -> y"], {"x": ["<<variable:B>>"]}))
    assert translated["inputs"] == {"x": ["batch", "B"]}


def test_id_share_ties_parameters() -> None:
    blocks = [
        {"_class": "Linear", "_id": "first", "output_feats": 4},
        {"_class": "ReLU", "_id": "act"},
        {
            "_class": "Sequential",
            "_id": "more",
            "blocks": [{"_class": "Linear", "output_feats": 4, "_id_share": "first"}],
        },
    ]
    model = spec.load(architecture(blocks, ["x -> first -> act -> more -> y"], {"x": [4]}))
    assert model.more[0].weight is model.first.weight
    # a label that is no block's _id is a group label (tests/spec/test_narchi_sharing.py): alone, it ties nothing
    blocks[2]["blocks"][0]["_id_share"] = "second"
    model = spec.load(architecture(blocks, ["x -> first -> act -> more -> y"], {"x": [4]}))
    assert model.more[0].weight is not model.first.weight


def test_descriptions_and_names_are_kept_or_dropped() -> None:
    block = {"_class": "ReLU", "_id": "act", "_name": "Activation", "_description": "rectifier"}
    translated = translate(architecture([block], ["x -> act -> y"], {"x": [3]}))
    assert translated["children"] == [{"type": "ReLU", "id": "act", "description": "rectifier"}]


def test_dims_softmax_keeps_torchs_concatenate_shifts_narchis() -> None:
    assert leaf("Softmax", {"_class": "Softmax", "dim": 1}, [])["dim"] == 1  # passed to torch as narchi does
    assert leaf("Concatenate", {"_class": "Concatenate", "dim": 0}, [])["dim"] == 1  # narchi's 0: after the batch
    assert leaf("Concatenate", {"_class": "Concatenate", "dim": -1}, [])["dim"] == -1


def test_classes_registered_with_fluxion_pass_through() -> None:
    blocks = [{"_class": "LayerNorm", "_id": "norm"}, {"_class": "GeLU", "_id": "act"}]
    model = spec.load(architecture(blocks, ["x -> norm -> act -> y"], {"x": ["<<variable:T>>", 8]}))
    assert isinstance(model.act, fl.GeLU)
    assert model.norm.normalized_shape == (8,)
    with pytest.raises(SpecError, match=r"unknown narchi class 'Residual'"):
        spec.load(architecture([{"_class": "Residual", "_id": "r"}], ["x -> r -> y"], {"x": [8]}))


def test_recurrent_blocks_output_the_sequence_unless_asked() -> None:
    lstm = {"_class": "LSTM", "_id": "rnn", "output_feats": 8, "output_state": True}
    model = spec.load(architecture([lstm], ["x -> rnn -> y"], {"x": ["<<variable:T>>", 3]}))
    assert model.rnn.return_state
    assert model.rnn.batch_first
    output, (h, c) = model(torch.randn(2, 5, 3))
    assert (output.shape, h.shape, c.shape) == ((2, 5, 8), (1, 2, 8), (1, 2, 8))


# -- errors ---------------------------------------------------------------------------------------


def resnet_data() -> dict[str, Any]:
    return read(RESNET, ext_vars=RESNET18).data


def test_unknown_class_names_the_closest(tmp_path: Path) -> None:
    data = resnet_data()
    data["blocks"][3]["_class"] = "Maxpool2D"
    with pytest.raises(SpecError) as caught:
        spec.load(data)
    assert caught.value.path == "blocks[3]._class"
    assert "unknown narchi class 'Maxpool2D' (closest: MaxPool2d" in caught.value.reason
    assert "narchi classes read: AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d" in caught.value.reason
    file = tmp_path / "broken.json"
    file.write_text(json.dumps(data))
    with pytest.raises(SpecError, match=r"broken\.json: blocks\[3\]\._class: unknown narchi class"):
        spec.load(file)


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        (lambda d: d["blocks"][0].update(kernel_size="7"), "blocks[0].kernel_size", "expected an int"),
        (lambda d: d["blocks"][0].update(output_feats=6.5), "blocks[0].output_feats", "expected an int"),
        (lambda d: d["blocks"][0].update(kernal_size=7), "blocks[0].kernal_size", "did you mean kernel_size"),
        (lambda d: d["blocks"][0].pop("output_feats"), "blocks[0]", "Conv2d needs output_feats"),
        (lambda d: d["blocks"][0].update(output_feats="<<variable:C>>"), "blocks[0].output_feats", "symbolic sizes"),
        (lambda d: d["blocks"][4]["blocks"][1].pop("output"), "blocks[4].blocks[1]", "output is missing"),
        (lambda d: d["blocks"][4]["blocks"][1].update(input="nothing"), "blocks[4].blocks[1].input", "got 'nothing'"),
        (
            lambda d: d["blocks"][4]["blocks"][0]["blocks"][2].pop("_id"),
            "blocks[4].blocks[0].blocks[2]",
            "needs an _id",
        ),
        (
            lambda d: d["blocks"][4]["blocks"][0]["graph"].append("relu2 -> nowhere"),
            "blocks[4].blocks[0].graph",
            "nowhere",
        ),
        (lambda d: d["blocks"][4]["blocks"][0]["graph"].append("conv2 -> conv1"), "blocks[4].blocks[0].graph", "cycle"),
        (
            lambda d: d["blocks"].append({"_class": "CRF", "_id": "crf"}),
            "blocks[11]._class",
            "no fluxion equivalent",
        ),
        (lambda d: d["blocks"][9].update(reshape_spec=[0, 0]), "blocks[9].reshape_spec", "each input dim once"),
        (
            lambda d: d["blocks"][9].update(reshape_spec=[{"0": ["<<auto>>", "<<auto>>"]}]),
            'blocks[9].reshape_spec[0]["0"]',
            "at most one",
        ),
        (lambda d: d["blocks"][2].update(blocks=[]), "blocks[2].blocks", "belongs to a Sequential or a Group"),
        (lambda d: d["blocks"][1].update(_path="x.jsonnet"), "blocks[1]._path", "belongs to a Module"),
        (lambda d: d["blocks"][1].update(_id="conv1"), "blocks[1]._id", "duplicate _id 'conv1'"),
        (lambda d: d["blocks"][1].update(_id="image"), "blocks[1]._id", "both a block id and an input"),
        (lambda d: d["inputs"][0]["_shape"].append("<<auto>>"), "inputs[0]._shape[3]", "an input size"),
        (lambda d: d["inputs"][0].update(_shape=[]), "inputs[0]._shape", "a list of sizes"),
        (lambda d: d["outputs"][0].update(_id="probabilities"), "outputs[0]._id", "in no path"),
        (lambda d: d["graph"].append("logits -> fc"), "graph[2]", "must end its path"),
        (lambda d: d.update(extra=1), "extra", "not a key of a narchi architecture"),
        (lambda d: d.pop("graph"), None, "graph is missing"),
    ],
)
def test_errors_name_narchis_json_path(change: Any, path: str | None, message: str) -> None:
    data = resnet_data()
    change(data)
    with pytest.raises(SpecError) as caught:
        spec.load(data, device="meta")
    assert caught.value.path == path
    assert message in caught.value.reason


def test_recurrent_errors() -> None:
    def load(block: dict[str, Any]) -> Any:
        return spec.load(architecture([{**block, "_id": "rnn"}], ["x -> rnn -> y"], {"x": ["<<variable:T>>", 3]}))

    with pytest.raises(SpecError, match=r"blocks\[0\]\.output_feats: a bidirectional LSTM has an even output_feats"):
        load({"_class": "LSTM", "output_feats": 7, "bidirectional": True})
    with pytest.raises(SpecError, match="batch_first can only be true"):
        load({"_class": "GRU", "output_feats": 4, "batch_first": False})
    with pytest.raises(SpecError, match="GRU needs output_feats"):
        load({"_class": "GRU"})
    with pytest.raises(SpecError, match=r"blocks\[0\]\.hidden_size: hidden_size 3 disagrees"):
        load({"_class": "RNN", "output_feats": 4, "hidden_size": 3})
    assert load({"_class": "RNN", "output_feats": 4, "hidden_size": 4}).rnn.hidden_size == 4  # as narchi writes it


def test_shape_errors_name_the_block() -> None:
    blocks = [
        {"_class": "Conv2d", "_id": "conv", "output_feats": 4, "kernel_size": 3},
        {"_class": "Linear", "_id": "fc", "in_features": 3, "output_feats": 2},
    ]
    with pytest.raises(SpecError, match=r"Linear at 'fc' got .*expects last dim 3"):
        spec.load(architecture(blocks, ["x -> conv -> fc -> y"], {"x": [3, 8, 8]}))


# -- mutated narchi files: SpecError or a model, nothing else ----------------------------------------------

SEEDS = [
    read(RESNET, ext_vars={"num_blocks": [1, 1, 1, 1]}).data,
    read(HERE / "line_recognizer.jsonnet", ext_vars={"num_symbols": 5}).data,
    read(HERE / "multimodal.jsonnet", ext_vars={"vocabulary": 20}).data,
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 300)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["<<auto>>", "<<variable:H>>", "<<variable:2*H>>", "flatten", "Conv2d", "Group", "x -> y"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    document: Any = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        place = draw(st.sampled_from(locations(document)[1:]))
        parent = document
        for key in place[:-1]:
            parent = parent[key]
        last = place[-1]
        action = draw(st.sampled_from(["drop", "replace", "rename"]))
        if action == "drop":
            del parent[last]
        elif action == "replace" or isinstance(parent, list):
            parent[last] = draw(json_values)
        else:
            parent[draw(st.sampled_from(["_class", "_id", "blocks", "graph", "input", "output", "dim", "x"]))] = (
                parent.pop(last)
            )
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_narchi_files_raise_only_spec_errors(document: Any) -> None:
    with contextlib.suppress(SpecError):
        model = spec.load(document, device="meta")
        assert isinstance(model, fl.Chain)
