"""``fluxion show``: the tree with shapes and parameter counts, the totals, and a checkpoint checked against it."""

import json
import os
from pathlib import Path

import pytest
import torch

from fluxion import spec, weights
from tests.cli.helpers import CONVS, EXAMPLES, ROOT, fails, run, write_spec


def test_show_draws_the_tree_with_shapes_parameters_and_totals(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    result = run(capsys, "show", str(mlp))
    assert result.code == 0
    assert result.out.splitlines() == [
        "(CHAIN) Chain()  → (B, 2)  178 params",
        "    ├── fc: Linear(in_features=8, out_features=16, bias=True)  → (B, 16)  144 params",
        "    ├── ReLU()  → (B, 16)",
        "    └── head: Linear(in_features=16, out_features=2, bias=True)  → (B, 2)  34 params",
        "",
        "input: x (B, 8)",
        "output: (B, 2)",
        "parameters: 178 in 4 tensors",
        "  float32: 178 (712 B)",
    ]


def test_show_depth_folds_and_json_lists_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    resnet = str(ROOT / "examples" / "resnet.jsonnet")
    text = run(capsys, "show", resnet, "--depth", "1").out
    assert "├── layer1: (CHAIN) Chain() … 2 children  → (B, 64, 56, 56)  147,968 params" in text
    assert "parameters: 11,689,512 (11.7M) in 62 tensors" in text
    assert "  float32: 11,689,512 (44.6 MiB, 46,758,048 bytes)" in text

    report = json.loads(run(capsys, "show", resnet, "--depth", "1", "--format", "json").out)
    assert set(report) == {
        "file",
        "inputs",
        "output",
        "constraints",
        "assuming",
        "nodes",
        "parameters",
        "buffers",
        "weights",
    }
    assert [node["address"] for node in report["nodes"]][:3] == ["", "conv1", "bn1"]
    layer1 = next(node for node in report["nodes"] if node["address"] == "layer1")
    assert layer1 == {
        "address": "layer1",
        "type": "Chain",
        "level": 1,
        "children": 2,
        "folded": True,
        "output": ["B", 64, 56, 56],
        "parameters": 147_968,
    }
    assert report["parameters"]["elements"] == 11_689_512
    assert report["parameters"]["by_dtype"] == {"float32": {"elements": 11_689_512, "bytes": 46_758_048}}
    assert report["buffers"]["by_dtype"]["int64"] == {"elements": 20, "bytes": 160}
    assert report["weights"] is None


def test_show_checks_a_checkpoint_without_loading_it(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path
) -> None:
    trained = spec.load(mlp)
    fits = tmp_path / "mlp.safetensors"
    weights.save(trained, fits)
    result = run(capsys, "show", str(mlp), "--weights", str(fits))
    assert result.code == 0
    assert result.out.splitlines()[-1] == f"weights {fits}: they fit (4 tensors, 712 B)"

    state = trained.state_dict()
    state["Head.bias"] = state.pop("head.bias")
    state["fc.weight"] = torch.zeros(16, 9)
    broken = tmp_path / "broken.safetensors"
    weights.save(state, broken)
    result = run(capsys, "show", str(mlp), "--weights", str(broken))
    assert result.code == 1
    assert f"weights {broken}: they do not fit" in result.out
    assert "1 missing, 1 unexpected, 1 mismatched" in result.out
    assert "Head.bias  (did you mean head.bias?)" in result.out
    assert "fc.weight: model has shape (16, 8), checkpoint 'fc.weight' has (16, 9)" in result.out

    report = json.loads(run(capsys, "show", str(mlp), "--weights", str(broken), "--format", "json").out)
    assert report["weights"]["matches"] is False
    assert (report["weights"]["missing"], report["weights"]["unexpected"]) == (["head.bias"], ["Head.bias"])
    assert report["weights"]["mismatched"] == ["fc.weight"]


def test_show_a_missing_checkpoint_is_an_error(capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path) -> None:
    result = run(capsys, "show", str(mlp), "--weights", str(tmp_path / "none.safetensors"))
    assert result.code == 1
    assert "none.safetensors" in result.err


@pytest.mark.parametrize("option", ["--weights", "--mapping"])
def test_show_refuses_a_fifo_without_blocking(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, option: str, deadline: None
) -> None:
    checkpoint = tmp_path / "model.safetensors"
    weights.save(spec.load(mlp), checkpoint)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    given = [option, str(fifo)] if option == "--weights" else ["--weights", str(checkpoint), option, str(fifo)]
    fails(run(capsys, "show", str(mlp), *given), 1, "FIFO")


def test_show_weights_that_are_a_folder(capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path) -> None:
    result = run(capsys, "show", str(mlp), "--weights", str(tmp_path))
    fails(result, 1)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_shows(capsys: pytest.CaptureFixture[str], example: Path) -> None:
    result = run(capsys, "show", str(example), "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)


# -- buffers, depth 0, and specs without input shapes

NORMED = {
    "type": "Chain",
    "inputs": {"x": ["B", 3, 8, 8]},
    "children": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3}, {"type": "BatchNorm2d"}],
}


def test_buffers_are_totalled_by_dtype(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "normed.json"
    path.write_text(json.dumps(NORMED))
    lines = run(capsys, "show", str(path)).out.splitlines()
    assert lines[lines.index("parameters: 120 in 4 tensors") :] == [
        "parameters: 120 in 4 tensors",
        "  float32: 120 (480 B)",
        "buffers: 9 in 3 tensors",
        "  float32: 8 (32 B)",
        "  int64: 1 (8 B)",
    ]
    report = json.loads(run(capsys, "show", str(path), "--format", "json").out)
    assert report["buffers"] == {
        "elements": 9,
        "tensors": 3,
        "bytes": 40,
        "by_dtype": {"float32": {"elements": 8, "bytes": 32}, "int64": {"elements": 1, "bytes": 8}},
    }


def test_depth_0_folds_the_root(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    lines = run(capsys, "show", str(mlp), "--depth", "0").out.splitlines()
    assert lines[:2] == ["(CHAIN) Chain() … 3 children  → (B, 2)  178 params", ""]
    nodes = json.loads(run(capsys, "show", str(mlp), "--depth", "0", "--format", "json").out)["nodes"]
    assert nodes == [
        {
            "address": "",
            "type": "Chain",
            "level": 0,
            "children": 3,
            "folded": True,
            "output": ["B", 2],
            "parameters": 178,
        }
    ]


def test_every_node_is_listed_without_depth(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    nodes = json.loads(run(capsys, "show", str(mlp), "--format", "json").out)["nodes"]
    assert [(node["address"], node["level"], node["folded"], node["output"]) for node in nodes] == [
        ("", 0, False, ["B", 2]),
        ("fc", 1, False, ["B", 16]),
        ("ReLU", 1, False, ["B", 16]),
        ("head", 1, False, ["B", 2]),
    ]


def test_without_input_shapes_the_tree_and_counts_are_shown(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "sized.json"
    path.write_text('{"type": "Chain", "children": [{"type": "Linear", "in_features": 4, "out_features": 2}]}')
    result = run(capsys, "show", str(path))
    assert result.code == 0
    assert result.out.splitlines() == [
        "(CHAIN) Chain()  10 params",
        "    └── Linear(in_features=4, out_features=2, bias=True)  10 params",
        "",
        "parameters: 10 in 2 tensors",
        "  float32: 10 (40 B)",
    ]
    report = json.loads(run(capsys, "show", str(path), "--format", "json").out)
    assert (report["inputs"], report["output"], report["constraints"]) == (None, None, [])
    assert [node["output"] for node in report["nodes"]] == [None, None]

    with_input = json.loads(run(capsys, "show", str(path), "--input", "x=N,4", "--format", "json").out)
    assert (with_input["inputs"], with_input["output"]) == ({"x": ["N", 4]}, ["N", 2])


def test_assume_is_applied_and_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(write_spec(tmp_path / "convs.json", CONVS))
    text = run(capsys, "show", path, "--assume", "H%8==0").out
    assert "output: (B, 4, H/8, ceil(W/8))\nassuming: H % 8 == 0\n" in text
    report = json.loads(run(capsys, "show", path, "--assume", "W%8==0", "--format", "json").out)
    assert (report["output"], report["assuming"]) == (["B", 4, "ceil(H/8)", "W/8"], ["W % 8 == 0"])
    fails(run(capsys, "show", path, "--assume", "H%8!=0"), 2, "error: --assume: ")
