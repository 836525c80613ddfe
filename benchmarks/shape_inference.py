"""Symbolic shape inference against one forward pass on ``meta`` tensors.

What it measures
    ``fluxion.shapes.infer`` over two trees, with symbolic sizes, against the baseline: one forward
    pass of the same model on ``meta`` tensors with concrete sizes (what a user would otherwise run
    to learn the shapes, without any of the report):

    * ``mlp 1000``  -- a generated network of 1000 nodes: 20 Chains of 10 residual blocks of LayerNorm,
      Linear, GeLU, Linear, input ``(B, T, 64)``;
    * ``resnet-50`` -- a ResNet-50-sized tree (bottleneck blocks 3-4-6-3, 53 convolutions with
      their batch norms), input ``(B, 3, H, W)``;
    * ``resnet-50/r`` -- the same with its strided layers stated as ratios (``downsample=2``): the
      report reads ``H/32`` and carries constraints ("H must be divisible by 32"), which costs the
      symbolic work of reading every size under them.

How it measures
    Built on the ``meta`` device. Each repetition times both in turn; the figure is the median over
    repetitions. sympy's cache is cleared before every inference, so no repetition reuses what an
    earlier one simplified (a warm figure, with the cache kept, is printed too). The first
    inference of the process (which imports sympy) is reported apart.

Goal (issue "Shapes"): ResNet-50-sized inference under 100 ms.

Run ``python benchmarks/shape_inference.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import fluxion.layers as fl
from fluxion import shapes


def mlp(blocks: int = 20, dim: int = 64) -> fl.Chain:
    def block() -> fl.Chain:
        return fl.Chain(
            *[
                fl.Residual(fl.LayerNorm(dim), fl.Linear(dim, 2 * dim), fl.GeLU(), fl.Linear(2 * dim, dim))
                for _ in range(10)
            ]
        )

    return fl.Chain(*[block() for _ in range(blocks)], head=fl.Linear(dim, 10))


def strided(inputs: int, outputs: int, kernel: int, stride: int, ratio: bool) -> fl.Conv2d:
    """A strided convolution, stated by its stride and padding, or by its ratio (``downsample=``)."""
    if ratio and stride > 1:
        return fl.Conv2d(inputs, outputs, kernel, downsample=stride, bias=False)
    return fl.Conv2d(inputs, outputs, kernel, stride=stride, padding=(kernel - 1) // 2, bias=False)


def bottleneck(inputs: int, width: int, stride: int, ratio: bool = False) -> fl.Chain:
    outputs = 4 * width
    main = fl.Chain(
        fl.Conv2d(inputs, width, 1, bias=False),
        fl.BatchNorm2d(width),
        fl.ReLU(),
        strided(width, width, 3, stride, ratio),
        fl.BatchNorm2d(width),
        fl.ReLU(),
        fl.Conv2d(width, outputs, 1, bias=False),
        fl.BatchNorm2d(outputs),
    )
    shortcut: torch.nn.Module = (
        fl.Chain(strided(inputs, outputs, 1, stride, ratio), fl.BatchNorm2d(outputs))
        if stride != 1 or inputs != outputs
        else fl.Identity()
    )
    return fl.Chain(fl.Sum(main, shortcut), fl.ReLU())


def resnet50(ratio: bool = False) -> fl.Chain:
    """``ratio``: strided layers say ``downsample=2``, so inference reads H/2... and says H must be divisible by 32."""
    stages: list[fl.Chain] = []
    inputs = 64
    for width, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        blocks = [
            bottleneck(inputs if i == 0 else 4 * width, width, stride if i == 0 else 1, ratio) for i in range(count)
        ]
        stages.append(fl.Chain(*blocks))
        inputs = 4 * width
    return fl.Chain(
        strided(3, 64, 7, 2, ratio),
        fl.BatchNorm2d(64),
        fl.ReLU(),
        fl.MaxPool2d(3, downsample=2) if ratio else fl.MaxPool2d(3, stride=2, padding=1),
        *stages,
        fl.AdaptiveAvgPool2d(1),
        fl.Flatten(),
        fl.Linear(2048, 1000),
    )


def median_seconds(run: Callable[[], object], repeats: int, before: Callable[[], object] = lambda: None) -> float:
    times: list[float] = []
    for _ in range(repeats):
        before()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    arguments = parser.parse_args()
    repeats = 3 if arguments.quick else 15
    torch.set_num_threads(1)
    with torch.device("meta"):
        cases = {
            "mlp 1000": (mlp(), ("B", "T", 64), (8, 128, 64)),
            "resnet-50": (resnet50(), ("B", 3, "H", "W"), (8, 3, 224, 224)),
            "resnet-50/r": (resnet50(ratio=True), ("B", 3, "H", "W"), (8, 3, 224, 224)),
        }
    start = time.perf_counter()
    shapes.infer(*cases["mlp 1000"][:2])  # type: ignore[arg-type]
    print(f"first inference (imports sympy): {1000 * (time.perf_counter() - start):.0f} ms\n")
    from sympy.core.cache import clear_cache  # pyright: ignore[reportMissingTypeStubs]

    print(f"{'model':<11} {'nodes':>6} {'symbolic infer':>15} {'(warm)':>9} {'meta forward':>13} {'ratio':>7}   goal")
    for name, (model, symbolic, concrete) in cases.items():
        nodes = sum(1 for _ in model.modules())
        report = shapes.infer(model, symbolic)
        inferred = median_seconds(
            lambda model=model, symbolic=symbolic: shapes.infer(model, symbolic), repeats, before=clear_cache
        )
        warm = median_seconds(lambda model=model, symbolic=symbolic: shapes.infer(model, symbolic), repeats)
        meta_input = torch.empty(concrete, device="meta")
        with torch.no_grad():
            forward = median_seconds(lambda model=model, x=meta_input: model(x), repeats)
        goal = ("< 100 ms " + ("ok" if inferred < 0.1 else "MISSED")) if name.startswith("resnet-50") else ""
        print(
            f"{name:<11} {nodes:>6} {1000 * inferred:>12.1f} ms {1000 * warm:>6.1f} ms {1000 * forward:>10.1f} ms "
            f"{inferred / forward:>6.2f}x   {goal}"
        )
        print(f"{'':<11} output {report.output!r}, {len(report.constraints)} constraints")


if __name__ == "__main__":
    main()
