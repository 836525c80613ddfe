"""``fluxion summary``: layers counted by type, and the largest activations ranked."""

import json
from pathlib import Path

import pytest

from tests.cli.helpers import EXAMPLES, ROOT, run


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


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_summarises(capsys: pytest.CaptureFixture[str], example: Path) -> None:
    result = run(capsys, "summary", str(example), "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)
