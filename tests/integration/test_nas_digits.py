"""examples/nas_digits.py on its smallest setting (``--quick``): search, finalize and evaluate on
scikit-learn's digits, every figure it prints checked against the files it saves and against the
networks those files build."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from fluxion import nas, spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "nas_digits.py"
SPEC = ROOT / "examples" / "darts.jsonnet"
QUICK = {"channels": 4, "cells": 3, "nodes": 2, "in_channels": 1, "image_size": 8, "classes": 10}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("nas_digits")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", "--seed", "3", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, out


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, f"{pattern!r} not in:\n{text}"
    return int(found.group(1).replace(",", ""))


def weight_count(model: torch.nn.Module) -> int:
    return sum(value.numel() for value in nas.weights(model))


def test_it_prints_the_supernet_counts_of_the_spec(run: tuple[str, Path]) -> None:
    output, _ = run
    supernet = spec.load(SPEC, tla=QUICK, device="meta")
    assert number(r"supernet .*: ([\d,]+) weights", output) == weight_count(supernet) == 26_742
    # 2 cell types x 5 edges (nodes of 2 and 3 inputs) x 8 primitives
    assert number(r"weights, ([\d,]+) architecture parameters", output) == 80
    assert "search epoch 1/1: train loss" in output


def test_the_genotype_it_prints_is_the_one_it_saves(run: tuple[str, Path]) -> None:
    output, out = run
    line = next(line for line in output.splitlines() if line.startswith("genotype: "))
    printed = nas.Genotype.parse(json.loads(line.removeprefix("genotype: ")), primitives=nas.PRIMITIVES)
    assert printed.nodes("normal") == printed.nodes("reduce") == 2
    assert printed == nas.Genotype.load(out / "finalized" / "genotype.json")
    results = json.loads((out / "results.json").read_text())
    assert nas.Genotype.parse(results["genotype"]) == printed


def test_the_finalized_child_loads_with_the_weights_it_inherited(run: tuple[str, Path]) -> None:
    output, out = run
    folder = out / "finalized"
    assert sorted(path.name for path in folder.iterdir()) == [
        "address_map.json",
        "genotype.json",
        "model.json",
        "model.safetensors",
    ]
    child = spec.load(folder / "model.json", weights=folder / "model.safetensors")
    inherited = number(r"the finalized child inherits ([\d,]+) of the supernet's", output)
    assert weight_count(child) == inherited
    assert nas.arch_parameters(child) == []
    assert child.eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_the_evaluated_network_is_the_genotype_s_and_its_accuracy_is_reported(run: tuple[str, Path]) -> None:
    output, out = run
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    settings = results["settings"]
    folder = out / "evaluated"
    network = spec.load(folder / "model.json", weights=folder / "model.safetensors")
    built = spec.load(
        SPEC,
        tla={
            **QUICK,
            "channels": settings["eval_channels"],
            "cells": settings["eval_cells"],
            "genotype": results["genotype"],
        },
        device="meta",
    )
    assert repr(network) == repr(built)
    printed = number(r"evaluation network .*: ([\d,]+) weights", output)
    assert printed == weight_count(network) == results["evaluation_weights"]
    accuracy = re.search(r"^test accuracy: (\d+\.\d\d)% \((\d+) images", output, re.MULTILINE)
    assert accuracy is not None
    assert float(accuracy.group(1)) == pytest.approx(100 * results["test_accuracy"], abs=0.005)
    assert 0 <= results["test_accuracy"] <= 1
    assert int(accuracy.group(2)) == 48  # a fifth of the quick run's 240 images
    assert network.eval()(torch.randn(3, 1, 8, 8)).shape == (3, 10)
