"""``fluxion summary``: layers counted by type, and the largest activations ranked."""

import json
from pathlib import Path

import pytest

from tests.cli.helpers import CONVS, EXAMPLES, ROOT, fails, run, write_spec


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
        "assuming": [],
        "largest": [
            {"address": "fc", "type": "Linear", "shape": ["B", 16], "elements": "16*B", "evaluated": 16, "bytes": 64}
        ],
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_summarises(capsys: pytest.CaptureFixture[str], example: Path) -> None:
    result = run(capsys, "summary", str(example), "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)


# -- the values of symbols, --top, and specs without input shapes


def test_each_symbol_gets_1_unless_given(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    default = json.loads(run(capsys, "summary", str(mlp), "--format", "json").out)["activations"]
    assert default["symbols"] == {"B": 1}
    assert [(a["address"], a["evaluated"], a["bytes"]) for a in default["largest"]] == [
        ("fc", 16, 64),
        ("ReLU", 16, 64),
        ("head", 2, 8),
    ]
    given = json.loads(run(capsys, "summary", str(mlp), "--size", "B=64", "--format", "json").out)["activations"]
    assert given["symbols"] == {"B": 64}
    assert [(a["evaluated"], a["bytes"]) for a in given["largest"]] == [(1024, 4096), (1024, 4096), (128, 512)]


def test_top_limits_the_list_and_0_lists_none(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    lines = run(capsys, "summary", str(mlp), "--top", "0").out.splitlines()
    assert lines[-2:] == [
        "largest activations (B=1; --size NAME=N changes it)",
        "  address  type  shape  elements  at B=1  bytes",
    ]
    report = json.loads(run(capsys, "summary", str(mlp), "--top", "2", "--format", "json").out)
    assert [a["address"] for a in report["activations"]["largest"]] == ["fc", "ReLU"]


def test_without_input_shapes_the_activations_are_unknown(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "sized.json"
    path.write_text('{"type": "Chain", "children": [{"type": "Linear", "in_features": 4, "out_features": 2}]}')
    result = run(capsys, "summary", str(path))
    assert result.code == 0
    assert result.out.splitlines() == [
        "layers by type",
        "  type    count  parameters",
        "  Linear      1          10",
        "  total       1          10",
        "",
        "largest activations: unknown (no input shapes: give the spec inputs or pass --input NAME=DIMS)",
    ]
    report = json.loads(run(capsys, "summary", str(path), "--format", "json").out)
    assert (report["parameters"], report["activations"]) == (10, None)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--size", "B=0"], "--size B: expected a positive whole number, got '0'"),
        (["--size", "B=1.5"], "--size B: expected a positive whole number, got '1.5'"),
        (["--size", "B"], "expected NAME=VALUE with NAME an identifier, got 'B'"),
        (["--size", "B=2", "--size", "B=3"], "--size B is given twice"),
        (["--top", "-1"], "--top is a count, 0 or more, got '-1'"),
        (["--top", "many"], "--top is a count, 0 or more, got 'many'"),
    ],
)
def test_bad_sizes_and_tops_are_usage_errors(
    capsys: pytest.CaptureFixture[str], mlp: Path, arguments: list[str], message: str
) -> None:
    result = run(capsys, "summary", str(mlp), *arguments)
    assert result.code == 2
    assert message in result.err
    assert result.out == ""


def test_assume_is_applied_and_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(write_spec(tmp_path / "convs.json", CONVS))
    result = run(
        capsys, "summary", path, "--assume", "H%8==0", "--assume", "W%8==0", "--size", "H=64", "--size", "W=64"
    )
    assert result.code == 0, result.err
    assert "(B, 4, H/8, W/8)" in result.out
    assert result.out.endswith("assuming: H % 8 == 0\nassuming: W % 8 == 0\n")
    report = json.loads(run(capsys, "summary", path, "--assume", "H%8==0", "--format", "json").out)
    assert report["activations"]["assuming"] == ["H % 8 == 0"]
    fails(run(capsys, "summary", path, "--assume", "X%8==0"), 2, "--assume X")


def test_a_symbol_s_default_value_is_what_assume_says_it_divides_by(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = str(write_spec(tmp_path / "convs.json", CONVS))
    result = run(capsys, "summary", path, "--assume", "H%32==0", "--top", "1")
    assert result.code == 0, result.err
    # H=1 would break the assumption (and make H/2 a half): the first value that keeps it is 32
    header = "largest activations (B=1, H=32, W=1; --size NAME=N changes it)"
    table = result.out.splitlines()[result.out.splitlines().index(header) + 1 :]
    assert table[0].split() == ["address", "type", "shape", "elements", "at", "B=1,", "H=32,", "W=1", "bytes"]
    assert table[1].split()[-4:] == ["2*B*H*ceil(W/2)", "64", "256", "B"]
    report = json.loads(run(capsys, "summary", path, "--assume", "H%32==0", "--format", "json").out)["activations"]
    assert report["symbols"] == {"B": 1, "H": 32, "W": 1}
    assert all(isinstance(a["evaluated"], int) for a in report["largest"])
    given = json.loads(run(capsys, "summary", path, "--assume", "H%32==0", "--size", "H=64", "--format", "json").out)
    assert given["activations"]["symbols"] == {"B": 1, "H": 64, "W": 1}


def test_a_size_the_assumption_rules_out_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(write_spec(tmp_path / "convs.json", CONVS))
    result = run(capsys, "summary", path, "--assume", "H%32==0", "--size", "H=100")
    fails(result, 2, "--size H=100", "--assume H%32==0")
    assert result.out == ""
    # divisors combined: H divides by 6, so H=6 is the default and H=9 is refused
    combined = ["--assume", "H%2==0", "--assume", "H%3==0"]
    report = json.loads(run(capsys, "summary", path, *combined, "--format", "json").out)["activations"]
    assert (report["symbols"]["H"], report["assuming"]) == (6, ["H % 6 == 0"])
    fails(run(capsys, "summary", path, *combined, "--size", "H=9"), 2, "--size H=9", "--assume H%6==0")
