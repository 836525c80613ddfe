"""``fluxion export``: a spec written normalised, from a spec file or from a Python factory."""

import json
import os
import sys
from pathlib import Path

import pytest

from fluxion import spec
from tests.cli.helpers import ROOT, fails, run


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


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_an_unwritable_folder(capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        fails(run(capsys, "export", str(mlp), "-o", str(folder / "x.json")), 1, "cannot write")
    finally:
        folder.chmod(0o700)


def test_a_factory_that_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_factories.py").write_text(
        "def build():\n    raise RuntimeError('no model today\\nsecond line')\n"
    )
    (tmp_path / "broken_module.py").write_text("raise ValueError('bad module')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    fails(run(capsys, "export", "broken_factories:build", "-o", "-"), 1, "RuntimeError: no model today")
    fails(run(capsys, "export", "broken_module:build", "-o", "-"), 1, "ValueError: bad module")
