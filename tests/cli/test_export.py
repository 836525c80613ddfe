"""``fluxion export``: a spec written normalised, from a spec file or from a Python factory."""

import json
import os
import sys
from pathlib import Path

import pytest

from fluxion import spec
from fluxion.cli.usage import is_factory
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


# -- what names a factory, and factories that give no model

FACTORIES = """\
import fluxion.layers as fl

not_a_function = 3


def returns_a_number():
    return 42


def plain_torch():
    import torch

    return torch.nn.Sequential(torch.nn.Linear(4, 2))


def pair():
    return fl.Graph(
        nodes={"a": fl.Linear(out_features=3), "b": fl.Linear(out_features=3), "add": fl.Add()},
        edges=["left -> a -> add", "right -> b -> add"],
        inputs=["left", "right"],
    )


class Builders:
    @staticmethod
    def small():
        return fl.Chain(fl.Linear(2, 2))
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of factories, importable from the working folder: its name."""
    (tmp_path / "cli_factories.py").write_text(FACTORIES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cli_factories", raising=False)
    return "cli_factories"


def test_a_file_that_looks_like_a_factory_is_read_as_a_spec(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models:build").write_text('{"type": "Chain", "children": [{"type": "ReLU"}]}')
    assert not is_factory("models:build")
    result = run(capsys, "export", "models:build", "-o", "-")
    assert (result.code, json.loads(result.out)["children"]) == (0, [{"type": "ReLU"}])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "not_a_function",
            "cli_factories:not_a_function is not callable: a factory is a function that returns a model",
        ),
        ("returns_a_number", "cli_factories:returns_a_number() returned int, not a torch module"),
        ("Builders.large", "'cli_factories' has no 'Builders.large'"),
    ],
)
def test_a_factory_that_gives_no_model(
    capsys: pytest.CaptureFixture[str], factories: str, name: str, message: str
) -> None:
    fails(run(capsys, "export", f"{factories}:{name}", "-o", "-"), 1, message)


def test_a_missing_module_is_named(capsys: pytest.CaptureFixture[str], factories: str) -> None:
    fails(run(capsys, "export", "cli_no_such_module:build", "-o", "-"), 1, "cannot import 'cli_no_such_module'")


def test_a_factory_s_class_must_be_registered(capsys: pytest.CaptureFixture[str], factories: str) -> None:
    fails(
        run(capsys, "export", f"{factories}:plain_torch", "-o", "-"),
        1,
        "the root is a Sequential, which is not registered: call fluxion.spec.register(Sequential)",
    )


def test_a_nested_factory_and_a_graph_with_inputs_by_name(
    capsys: pytest.CaptureFixture[str], factories: str, tmp_path: Path
) -> None:
    result = run(capsys, "export", f"{factories}:Builders.small", "-o", "small.json")
    assert (result.code, result.out) == (0, "small.json: Chain spec written\n")
    written = json.loads((tmp_path / "small.json").read_text())
    assert written["children"] == [{"type": "Linear", "in_features": 2, "out_features": 2}]
    assert "inputs" not in written

    # given out of order: a Graph takes its inputs by name
    result = run(capsys, "export", f"{factories}:pair", "--input", "right=B,5", "--input", "left=B,4", "-o", "-")
    assert result.code == 0, result.err
    written = json.loads(result.out)
    assert written["inputs"] == {"right": ["B", 5], "left": ["B", 4]}
    in_features = {node["id"]: node.get("in_features") for node in written["nodes"]}
    assert (in_features["a"], in_features["b"]) == (4, 5)


@pytest.mark.parametrize("option", ["--ext-var", "--ext-code", "--tla", "-J"])
def test_a_factory_takes_no_spec_options(capsys: pytest.CaptureFixture[str], factories: str, option: str) -> None:
    value = "lib" if option == "-J" else "a=1"
    fails(
        run(capsys, "export", f"{factories}:Builders.small", option, value, "-o", "-"),
        2,
        "--ext-var, --ext-code, --tla and -J read spec files; a factory takes no arguments",
    )


def test_a_file_whose_sizes_wait_for_the_first_call_needs_input_shapes_to_export(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # a TorchArc file loads without shapes (its first call sizes it); a spec of it would not load
    film, target = str(ROOT / "tests" / "spec" / "torcharc" / "film.yaml"), tmp_path / "film.json"
    refused = run(capsys, "export", film, "-o", str(target))
    fails(refused, 2, "still leave sizes to be inferred: give the input shapes (--input NAME=DIMS)")
    assert not target.exists()
    given = ["--input", "image=B,3,32,32", "--input", "gyro=B,2"]
    assert run(capsys, "export", film, *given, "-o", str(target)).code == 0
    assert spec.load(target).state.in_features == 2
