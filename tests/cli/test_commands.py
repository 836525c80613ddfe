"""The commands run in-process through ``fluxion.cli.main``: output, JSON keys and exit codes."""

import json
import sys
from pathlib import Path

import pytest
import torch

from fluxion import spec, weights
from tests.cli.helpers import EXAMPLES, ROOT, run

MLP = {
    "type": "Chain",
    "inputs": {"x": ["B", 8]},
    "children": [
        {"type": "Linear", "id": "fc", "out_features": 16},
        {"type": "ReLU"},
        {"type": "Linear", "id": "head", "out_features": 2},
    ],
}


@pytest.fixture
def mlp(tmp_path: Path) -> Path:
    path = tmp_path / "mlp.json"
    path.write_text(json.dumps(MLP))
    return path


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# -- validate ------------------------------------------------------------------------------------


def test_validate_reports_shapes_and_parameters(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    result = run(capsys, "validate", str(mlp))
    assert result.code == 0
    assert result.out.splitlines() == [
        f"{mlp}: valid",
        "  input:  x (B, 8)",
        "  output: (B, 2)",
        "  parameters: 178",
    ]
    assert result.err == ""


def test_validate_json(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    result = run(capsys, "validate", str(mlp), "--input", "x=N,8", "--format", "json")
    assert result.code == 0
    assert json.loads(result.out) == {
        "valid": True,
        "file": str(mlp),
        "shapes_checked": True,
        "inputs": {"x": ["N", 8]},
        "output": ["N", 2],
        "constraints": [],
        "parameters": 178,
    }


def test_validate_reads_jsonnet_variables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(
        tmp_path / "net.jsonnet",
        """function(widths, act='ReLU') {
          type: 'Chain',
          inputs: {x: ['B', std.parseInt(std.extVar('features'))]},
          children: [{type: 'Linear', out_features: w} for w in widths] + [{type: act}]
                    + [{type: 'Linear', out_features: std.extVar('classes')}],
        }""",
    )
    argv = ["validate", path, "--tla", "widths=[8,4]", "--tla", "act=Tanh", "--ext-var", "features=3"]
    result = run(capsys, *argv, "--ext-code", "classes=2", "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["inputs"] == {"x": ["B", 3]}
    assert report["output"] == ["B", 2]
    assert report["parameters"] == (3 * 8 + 8) + (8 * 4 + 4) + (4 * 2 + 2)


def test_validate_without_input_shapes_says_shapes_were_not_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(
        tmp_path / "m.json", '{"type": "Chain", "children": [{"type": "Linear", "in_features": 2, "out_features": 2}]}'
    )
    result = run(capsys, "validate", path)
    assert result.code == 0
    assert "valid (shapes not checked: the spec gives no input shapes; pass --input NAME=DIMS)" in result.out


BROKEN = {
    "unknown type": (
        '{"type": "Chain", "children": [{"type": "Linnear", "out_features": 2}]}',
        "children[0].type: unknown type 'Linnear' (closest registered: Linear)",
    ),
    "bad argument": (
        '{"type": "Chain", "children": [{"type": "Conv2d", "out_channels": 8, "kernel_size": "3"}]}',
        'children[0].kernel_size: expected an int, a list of 2 ints or null, got "3"',
    ),
    "shape mismatch": (
        json.dumps(
            {
                "type": "Chain",
                "inputs": {"x": ["B", 8]},
                "children": [
                    {"type": "Linear", "out_features": 16},
                    {"type": "Linear", "in_features": 200, "out_features": 2},
                ],
            }
        ),
        "children[1]: shapes do not fit: Linear at 'Linear_2' got (B, 16): Linear expects last dim 200, got 16",
    ),
    "not JSON": ('{"type": "Chain",', "m.json:1:18: Expecting property name enclosed in double quotes"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validate_names_the_problem(capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str) -> None:
    text, expected = BROKEN[case]
    path = write(tmp_path / "m.json", text)
    result = run(capsys, "validate", path)
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith(f"fluxion validate: error: {path}")
    assert expected in result.err
    assert "Traceback" not in result.err


def test_validate_json_error_says_where(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", BROKEN["shape mismatch"][0])
    result = run(capsys, "validate", path, "--format", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["valid"] is False
    assert report["error"]["type"] == "SpecError"
    assert report["error"]["file"] == path
    assert report["error"]["path"] == "children[1]"
    assert report["error"]["address"] == "Linear_2"


def test_jsonnet_errors_have_line_and_column(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonnet", "{type: 'Chain', children: [{type: 'ReLU'}]\n")
    result = run(capsys, "validate", path)
    assert result.code == 1
    assert f"{path}:2:1: expected a comma before next field" in result.err


# -- usage errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate"], "the following arguments are required: SPEC"),
        (["validate", "m.json", "--tla", "depth"], "expected NAME=VALUE"),
        (["validate", "m.json", "--input", "x=B,3.5"], "a size is a number or a symbol name such as B, got '3.5'"),
        (["show", "m.json", "--depth", "-1"], "--depth is a number of levels, 0 or more"),
        (["render", "m.json"], "the following arguments are required: -o/--output"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_usage_exits_with_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    result = run(capsys, *argv)
    assert result.code == 2
    assert message in result.err


def test_usage_that_contradicts_the_spec_exits_with_2(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    result = run(capsys, "validate", str(mlp), "--input", "image=B,8")
    assert (result.code, result.err.strip()) == (2, "fluxion validate: error: --input image: the spec's inputs are x")
    result = run(capsys, "validate", str(mlp), "--tla", "a=1", "--tla", "a=2")
    assert (result.code, result.err.strip()) == (2, "fluxion validate: error: --tla a is given twice")
    result = run(capsys, "render", str(mlp), "-o", "m.gif")
    assert result.code == 2
    assert "the format is taken from the suffix: .svg, .pdf, .png or .dot" in result.err


@pytest.mark.parametrize("command", [None, "validate", "show", "render", "summary", "export"])
def test_help_explains_with_an_example(capsys: pytest.CaptureFixture[str], command: str | None) -> None:
    result = run(capsys, *([command] if command else []), "--help")
    assert result.code == 0
    assert "examples:\n  fluxion " in result.out


# -- show ----------------------------------------------------------------------------------------


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
    assert set(report) == {"file", "inputs", "output", "constraints", "nodes", "parameters", "buffers", "weights"}
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


# -- summary -------------------------------------------------------------------------------------


def test_summary_counts_layers_and_ranks_activations(capsys: pytest.CaptureFixture[str]) -> None:
    convnet = str(ROOT / "examples" / "convnet.jsonnet")
    result = run(capsys, "summary", convnet, "--size", "B=32", "--top", "3")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[:3] == ["layers by type", "  type         count  parameters", "  Conv2d           3      93,024"]
    assert "  total           15     113,962" in lines
    assert "largest activations (B=32; --size NAME=N changes it)" in lines
    table = lines[lines.index("largest activations (B=32; --size NAME=N changes it)") + 1 :]
    assert table[0].split() == ["address", "type", "shape", "elements", "at", "B=32", "bytes"]
    assert table[1].split() == [
        "block1.conv",
        "Conv2d",
        "(B,",
        "32,",
        "32,",
        "32)",
        "32768*B",
        "1,048,576",
        "4.0",
        "MiB",
    ]
    assert len(table) == 4


def test_summary_json(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    report = json.loads(run(capsys, "summary", str(mlp), "--format", "json", "--top", "1").out)
    assert report["layers"] == [
        {"type": "Linear", "count": 2, "parameters": 178},
        {"type": "ReLU", "count": 1, "parameters": 0},
    ]
    assert report["parameters"] == 178
    assert report["activations"] == {
        "symbols": {"B": 1},
        "largest": [
            {"address": "fc", "type": "Linear", "shape": ["B", 16], "elements": "16*B", "evaluated": 16, "bytes": 64}
        ],
    }


# -- export --------------------------------------------------------------------------------------


def test_export_a_spec_writes_it_normalised(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    output = tmp_path / "convnet.json"
    result = run(capsys, "export", str(ROOT / "examples" / "convnet.jsonnet"), "--tla", "classes=3", "-o", str(output))
    assert result.code == 0
    written = json.loads(output.read_text())
    assert written["inputs"] == {"image": ["B", 3, 32, 32]}
    assert written["children"][0]["children"][0] == {
        "type": "Conv2d",
        "id": "conv",
        "in_channels": 3,
        "out_channels": 32,
        "kernel_size": 3,
        "padding": 1,
        "bias": False,
    }
    again = spec.load(output, device="meta")
    assert again.classifier.fc.in_features == 2048
    assert again.classifier.fc.out_features == 3


def test_export_a_factory(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_models.py").write_text(
        "import fluxion.layers as fl\n\n"
        "def classifier():\n"
        "    return fl.Chain(fl.Conv2d(out_channels=4, kernel_size=3), fl.Flatten(), head=fl.Linear(out_features=2))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "my_models", raising=False)
    result = run(capsys, "export", "my_models:classifier", "--input", "image=B,3,8,8", "-o", "out.json")
    assert result.code == 0, result.err
    written = json.loads((tmp_path / "out.json").read_text())
    assert written["inputs"] == {"image": ["B", 3, 8, 8]}
    assert written["children"][2] == {"type": "Linear", "id": "head", "in_features": 144, "out_features": 2}

    result = run(capsys, "export", "my_models:regressor", "-o", "out.json")
    assert (result.code, result.err.strip()) == (1, "fluxion export: error: 'my_models' has no 'regressor'")
    result = run(capsys, "export", "my_models:classifier", "--tla", "a=1", "-o", "out.json")
    assert result.code == 2


# -- every example -------------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_validates_shows_and_summarises(capsys: pytest.CaptureFixture[str], example: Path) -> None:
    for command in ("validate", "show", "summary"):
        result = run(capsys, command, str(example), "--format", "json")
        assert result.code == 0, result.err
        assert json.loads(result.out)
