"""Spec load + build on ``meta`` + shape inference, against building the same tree in Python.

What it measures
    ``fluxion.spec.load(..., device="meta")``: reading the spec (jsonnet evaluated), building every
    node, inferring every shape and filling in the sizes left out, for

    * ``generated 1000`` -- a generated spec of about 1000 nodes: 200 residual blocks (LayerNorm,
      Linear, GeLU, Linear) whose sizes are all inferred, input ``(B, T, 64)``;
    * ``resnet-50``      -- ``examples/resnet.jsonnet`` at depth 50 (torchvision's layout, every
      block a Graph), input ``(B, 3, 224, 224)``.

    The baseline is the same tree written in Python (the same classes, every size given) built on
    ``meta`` and run through ``fluxion.shapes.infer``: what the spec adds is reading it and
    checking its arguments. When narchi is installed, its time for a ResNet-50 file is printed too.

How it measures
    Median of the repetitions (these machines are noisy), each run from scratch.

Goal (issue "Specs"): ResNet-50 under 200 ms.

Run ``python benchmarks/spec_build.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import fluxion.layers as fl
from fluxion import shapes, spec

ROOT = Path(__file__).resolve().parent.parent


def generated_spec(blocks: int = 200, dim: int = 64) -> dict[str, Any]:
    block = {
        "type": "Residual",
        "children": [
            {"type": "LayerNorm"},
            {"type": "Linear", "out_features": 2 * dim},
            {"type": "GeLU"},
            {"type": "Linear", "out_features": dim},
        ],
    }
    groups = [{"type": "Chain", "children": [block] * 10} for _ in range(blocks // 10)]
    return {
        "type": "Chain",
        "inputs": {"x": ["B", "T", dim]},
        "children": [*groups, {"type": "Linear", "id": "head", "out_features": 10}],
    }


def generated_python(blocks: int = 200, dim: int = 64) -> fl.Chain:
    def block() -> fl.Residual:
        return fl.Residual(fl.LayerNorm(dim), fl.Linear(dim, 2 * dim), fl.GeLU(), fl.Linear(2 * dim, dim))

    return fl.Chain(*[fl.Chain(*[block() for _ in range(10)]) for _ in range(blocks // 10)], head=fl.Linear(dim, 10))


def resnet50_python() -> fl.Chain:
    def conv(inputs: int, outputs: int, kernel: int, stride: int = 1) -> fl.Conv2d:
        return fl.Conv2d(inputs, outputs, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)

    def block(inputs: int, planes: int, stride: int) -> fl.Graph:
        nodes: dict[str, torch.nn.Module] = {
            "conv1": conv(inputs, planes, 1),
            "bn1": fl.BatchNorm2d(planes),
            "relu": fl.ReLU(),
            "conv2": conv(planes, planes, 3, stride),
            "bn2": fl.BatchNorm2d(planes),
            "relu2": fl.ReLU(),
            "conv3": conv(planes, 4 * planes, 1),
            "bn3": fl.BatchNorm2d(4 * planes),
        }
        main = "input -> conv1 -> bn1 -> relu -> conv2 -> bn2 -> relu2 -> conv3 -> bn3 -> add -> relu_out"
        shortcut = "input -> add"
        if stride != 1 or inputs != 4 * planes:
            nodes["downsample"] = fl.Chain(conv(inputs, 4 * planes, 1, stride), fl.BatchNorm2d(4 * planes))
            shortcut = "input -> downsample -> add"
        nodes |= {"add": fl.Add(), "relu_out": fl.ReLU()}
        return fl.Graph(nodes, edges=[main, shortcut])

    layers: dict[str, fl.Chain] = {}
    inputs = 64
    for index, (planes, count) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True)):
        blocks = {}
        for number in range(count):
            blocks[str(number)] = block(inputs, planes, 2 if number == 0 and index > 0 else 1)
            inputs = 4 * planes
        layers[f"layer{index + 1}"] = fl.Chain(**blocks)
    return fl.Chain(
        conv1=conv(3, 64, 7, 2),
        bn1=fl.BatchNorm2d(64),
        relu=fl.ReLU(),
        maxpool=fl.MaxPool2d(3, stride=2, padding=1),
        **layers,
        avgpool=fl.AdaptiveAvgPool2d(1),
        flatten=fl.Flatten(),
        fc=fl.Linear(2048, 1000),
    )


def median_ms(action: Callable[[], object], repeats: int) -> float:
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def python_baseline(build: Callable[[], fl.Chain], shape: tuple[Any, ...]) -> Callable[[], object]:
    def run() -> object:
        with torch.device("meta"):
            model = build()
        return shapes.infer(model, shape)

    return run


def narchi_time(repeats: int) -> str:
    try:
        import narchi  # pyright: ignore  # optional, for comparison only
    except ImportError:
        return "narchi not installed"
    return f"narchi installed ({getattr(narchi, '__version__', '?')}): no ResNet-50 narchi file is timed here"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    repeats = 3 if parser.parse_args().quick else 11
    document = generated_spec()
    resnet = ROOT / "examples" / "resnet.jsonnet"
    spec.load(resnet, tla={"depth": 50}, device="meta")  # imports and caches: not what is measured

    rows = [
        (
            "generated 1000",
            lambda: spec.loads(document, device="meta"),
            python_baseline(generated_python, ("B", "T", 64)),
            None,
        ),
        (
            "resnet-50",
            lambda: spec.load(resnet, tla={"depth": 50}, device="meta"),
            python_baseline(resnet50_python, ("B", 3, 224, 224)),
            200.0,
        ),
    ]
    print(f"{'spec':<16}{'nodes':>6}{'load+build+infer':>18}{'python+infer':>14}{'ratio':>8}   goal")
    for name, load, baseline, goal in rows:
        nodes = sum(1 for _ in load().modules())
        spec_ms = median_ms(load, repeats)
        base_ms = median_ms(baseline, repeats)
        verdict = "" if goal is None else f"< {goal:.0f} ms {'ok' if spec_ms < goal else 'MISSED'}"
        print(f"{name:<16}{nodes:>6}{spec_ms:>15.1f} ms{base_ms:>11.1f} ms{spec_ms / base_ms:>7.2f}x   {verdict}")
    print(narchi_time(repeats))


if __name__ == "__main__":
    main()
