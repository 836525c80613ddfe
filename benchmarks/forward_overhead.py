"""Forward-call overhead of a fluxion Chain against the same layers in ``torch.nn.Sequential``.

What it measures
    The time of one forward call through 100 x (Linear(64, 64) + ReLU), under ``torch.no_grad()``,
    built three ways and nested identically in each library:

    * ``flat``     -- one container of 200 children;
    * ``two deep`` -- a root holding 10 containers of 10 (Linear, ReLU) pairs each;
    * ``100 deep`` -- 100 levels, each holding Linear, ReLU and the next level's container.

    The containers are ``fluxion.layers.Chain``, ``torch.nn.Sequential`` (the baseline) and, when it
    is installed, Refiners' ``refiners.fluxion.layers.Chain``. The three models share the same
    weights; their outputs are checked to be equal before anything is timed. Each configuration
    runs at batch 1 (where Python overhead dominates) and batch 64.

How it measures
    One thread (``torch.set_num_threads(1)``), garbage collection paused while timing. Each
    repetition times a block of forward calls of every model in turn, in a rotating order, so
    that machine noise and drift hit all of them alike; the figure reported is the median over
    repetitions of the time per forward call.

Goals (docs/architecture.md, "The promises every part keeps": a Chain's forward costs close to the same layers in
``torch.nn.Sequential``; no per-call work proportional to tree size beyond calling each node once)
    fluxion / Sequential <= 1.05 flat, <= 1.10 two deep, <= 1.5 a hundred deep.

Run ``python benchmarks/forward_overhead.py`` (``--quick`` for a short run, ``--help`` for options).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

import fluxion.layers as fl

try:
    import refiners.fluxion.layers as rl
except ImportError:  # Refiners is an optional baseline
    rl = None

DIM = 64
PAIRS = 100
GOALS = {"flat": 1.05, "two deep": 1.10, "100 deep": 1.5}

Container = Callable[[Sequence[torch.nn.Module]], torch.nn.Module]


def nest(kind: str, layers: list[torch.nn.Module], container: Container) -> torch.nn.Module:
    """Arrange ``layers`` (Linear, ReLU, Linear, ReLU, ...) in containers the way ``kind`` says."""
    if kind == "flat":
        return container(layers)
    if kind == "two deep":
        per_group = 20  # 10 (Linear, ReLU) pairs
        groups = [container(layers[i : i + per_group]) for i in range(0, len(layers), per_group)]
        return container(groups)
    if kind == "100 deep":
        node = container(layers[-2:])
        for i in range(len(layers) - 4, -1, -2):
            node = container([layers[i], layers[i + 1], node])
        return node
    raise ValueError(kind)


def build_models(kind: str) -> dict[str, torch.nn.Module]:
    """The same 100 (Linear, ReLU) pairs, with the same weights, in each library's containers."""
    reference = [torch.nn.Linear(DIM, DIM) for _ in range(PAIRS)]

    def layers(linear: Callable[[], torch.nn.Module], relu: Callable[[], torch.nn.Module]) -> list[Any]:
        out: list[torch.nn.Module] = []
        for ref in reference:
            lin = linear()
            lin.load_state_dict(ref.state_dict())
            out += [lin, relu()]
        return out

    models: dict[str, torch.nn.Module] = {
        "Sequential": nest(
            kind,
            layers(lambda: torch.nn.Linear(DIM, DIM), torch.nn.ReLU),
            lambda children: torch.nn.Sequential(*children),
        ),
        "fluxion": nest(kind, layers(lambda: fl.Linear(DIM, DIM), fl.ReLU), lambda children: fl.Chain(*children)),
    }
    if rl is not None:
        models["refiners"] = nest(
            kind, layers(lambda: rl.Linear(DIM, DIM), rl.ReLU), lambda children: rl.Chain(*children)
        )
    for model in models.values():
        model.eval()
    return models


def check_equal(models: dict[str, torch.nn.Module], x: torch.Tensor) -> None:
    expected = models["Sequential"](x)
    for name, model in models.items():
        if not torch.equal(model(x), expected):
            raise SystemExit(f"{name}: output differs from torch.nn.Sequential; the comparison is void")


def time_block(model: torch.nn.Module, x: torch.Tensor, calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        model(x)
    return (time.perf_counter_ns() - start) / calls


def measure(models: dict[str, torch.nn.Module], x: torch.Tensor, repeats: int, calls: int) -> dict[str, float]:
    """Median time per forward call (ns) for each model, runs interleaved across models."""
    names = list(models)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm up
        time_block(models[name], x, calls)
    gc.collect()
    gc.disable()
    try:
        for rep in range(repeats):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(time_block(models[name], x, calls))
    finally:
        gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


def fmt_time(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.1f} us"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions, for a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions per model (default 61)")
    parser.add_argument("--calls", type=int, default=None, help="forward calls per timed block (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64], help="batch sizes (default 1 64)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (9 if args.quick else 61)
    calls = args.calls or (3 if args.quick else 10)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))

    print(
        f"forward overhead: {PAIRS} x (Linear({DIM}, {DIM}) + ReLU), torch {torch.__version__}, "
        f"{args.threads} thread(s), no_grad, median of {repeats} interleaved blocks of {calls} calls"
    )
    if rl is None:
        print("refiners is not installed (import refiners failed): its column is skipped")
    header = (
        f"{'nesting':<10} {'batch':>5} {'Sequential':>11} {'fluxion':>11} {'refiners':>11} "
        f"{'flx/Seq':>8} {'ref/Seq':>8} {'goal flx/Seq':>13} {'':>4}"
    )
    print()
    print(header)
    print("-" * len(header))
    failures: list[str] = []
    with torch.no_grad():
        for kind, goal in GOALS.items():
            models = build_models(kind)
            for batch in args.batches:
                x = torch.randn(batch, DIM)
                check_equal(models, x)
                times = measure(models, x, repeats, calls)
                base = times["Sequential"]
                ratio = times["fluxion"] / base
                ref_time = fmt_time(times["refiners"]) if "refiners" in times else "-"
                ref_ratio = f"{times['refiners'] / base:.2f}" if "refiners" in times else "-"
                verdict = "ok" if ratio <= goal else "MISS"
                if verdict == "MISS":
                    failures.append(f"{kind} batch {batch}: {ratio:.2f} > {goal}")
                print(
                    f"{kind:<10} {batch:>5} {fmt_time(base):>11} {fmt_time(times['fluxion']):>11} "
                    f"{ref_time:>11} {ratio:>8.2f} {ref_ratio:>8} {f'<= {goal:.2f}':>13} {verdict:>4}"
                )
    print()
    print("outputs of all models checked equal (torch.equal) before timing")
    if failures:
        print("goals missed: " + "; ".join(failures))
    else:
        print("all fluxion/Sequential goals met")


if __name__ == "__main__":
    main()
