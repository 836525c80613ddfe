"""Review of ``fluxion validate`` of a folder (issue 21): a line per file and a total, every spec
checked even when one of them cannot be checked."""

import json
from pathlib import Path

import pytest

from fluxion.cli import main


def _write(path: Path, document: object) -> None:
    path.write_text(json.dumps(document))


def test_an_input_one_spec_of_a_folder_lacks_does_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    linear = [{"type": "Linear", "out_features": 2}]
    _write(tmp_path / "a.json", {"type": "Chain", "inputs": {"y": ["B", 4]}, "children": linear})
    _write(tmp_path / "b.json", {"type": "Chain", "inputs": {"x": ["B", 8]}, "children": linear})
    code = main(["validate", str(tmp_path), "--input", "x=B,8"])
    out = capsys.readouterr().out
    assert f"{tmp_path / 'b.json'}: valid" in out
    assert "2 checked:" in out
    assert code == 1


def test_a_key_mapping_without_its_version_field_is_not_taken_for_a_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fluxion.weights import KeyMapping

    _write(tmp_path / "keys.json", {"rename": {"old.weight": "new.weight"}, "rules": []})
    KeyMapping.read(tmp_path / "keys.json")  # a mapping fluxion itself reads
    _write(tmp_path / "m.json", {"type": "Chain", "children": [{"type": "ReLU"}]})
    assert main(["validate", str(tmp_path)]) == 0
    assert "1 checked: 1 valid" in capsys.readouterr().out
