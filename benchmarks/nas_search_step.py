"""One DARTS search step on CPU: fluxion's supernet (``examples/darts.jsonnet``) against plain torch.

What it measures
    One first-order DARTS search step at batch 16 (3x32x32 images, 10 classes), both models in
    train mode, on the same random data:

    * architecture step: zero the gradients, cross-entropy on a validation batch, backward, Adam
      on the architecture weights (lr 3e-4, betas (0.5, 0.999), weight decay 1e-3);
    * weight step: zero the gradients, cross-entropy on a training batch, backward, gradient norm
      clipped to 5, SGD on the weights (lr 0.025, momentum 0.9, weight decay 3e-4).

    ``forward+backward`` (one loss and its backward, no optimizer) and ``forward`` (one loss,
    with autograd recording) are timed too: they say whether a difference lies in the model or
    in the optimizers.

The two models
    * fluxion: ``fluxion.spec.load("examples/darts.jsonnet")`` with its default arguments
      (channels 16, 8 cells, 4 nodes, 10 classes): a Graph of cells, each edge a ``Choice`` of the
      8 primitives in ``"softmax"`` mode, each edge with its own ``alphas`` of 8 entries, shared by
      every cell of its type (28 architecture tensors); ``fluxion.nas.weights`` and
      ``fluxion.nas.arch_parameters`` split the parameters.
    * torch: the same supernet written below with ``torch.nn`` modules only (Sequential,
      ModuleList, one small module per composite operation), the way a DARTS supernet is usually
      written: one (14, 8) ``alphas`` tensor per cell type, its softmax taken once per cell, each
      edge a ModuleList of the 8 primitives summed as ``w * op(x)`` (``none`` included), the pools
      followed by a non-affine BatchNorm, every BatchNorm in the cells non-affine, the stem's
      affine, reductions at cells 2 and 5.

    Both have 1,930,618 weights (DARTS's own count; asserted). The torch model takes fluxion's
    weights and architecture weights, in the same order, and the two outputs are checked to agree
    before anything is timed, and again after one search step of each: the operations, the
    gradients and the updates are the same (on this machine the logits are equal to the bit).

How it measures time
    One torch thread by default (``--threads``, as the other fluxion benchmarks), garbage
    collection paused while timing, two warm-up calls per model and row. Each repetition runs a block of
    calls of each model, the order alternating between repetitions (A B, B A, ...), so that machine
    noise and drift hit both alike; the figures are the medians over repetitions of the time per
    call, and the ratio is fluxion / torch.

How it measures peak memory
    Each model's step runs in fresh processes of its own (this script with ``--child``). A child
    builds its model, optimizers and data and runs two warm-up steps (gradients, optimizer
    state, oneDNN's first-call caches exist from then on); then it reads its resident memory,
    resets the kernel's peak mark (``/proc/self/clear_refs``, ``VmHWM``; ``ru_maxrss`` where that
    is refused, which the warm-up steps' peaks then bound from below), runs one step and reads the
    peak. The figure is the peak above the resident memory before the step: what the step needs
    (the activations autograd keeps, the gradients, the temporaries) on top of the model.

    tracemalloc cannot see it (torch allocates tensors in C through ``malloc``), and resident
    memory would not show it faithfully with glibc's defaults: a freed block under the dynamic
    mmap threshold stays in the heap, so memory freed after the warm-up would be counted before
    the step and the step's growth would read too low, by an amount that depends on history.
    The children therefore run with ``MALLOC_MMAP_THRESHOLD_`` fixed at 128 KiB (which also turns
    the dynamic threshold off): every block of 128 KiB or more -- each activation here is one --
    is mapped when allocated and unmapped when freed, so resident memory follows the bytes alive,
    to the page. Children of the two models alternate and the median is reported.

Goals (issue 19): fluxion / torch <= 1.05 for the time of the step, and <= 1.05 for its peak memory.

Run ``python benchmarks/nas_search_step.py`` (``--quick`` for a smoke run, ``--help`` for options).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from process_memory import reset_peak, status_kib

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "examples" / "darts.jsonnet"

BATCH = 16
IMAGE = 32
CLASSES = 10
CHANNELS = 16
CELLS = 8
NODES = 4
STEM_MULTIPLIER = 3
PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
EDGES = sum(2 + node for node in range(NODES))  # 14
DARTS_WEIGHTS = 1_930_618  # DARTS's model_search.Network(16, 10, 8), alphas left out
GOALS = {"time": 1.05, "memory": 1.05}
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
MIB = 2**20


# -- the plain-torch supernet ----------------------------------------------------------------------


class Zero(nn.Module):
    """DARTS's ``none``: zeros of the (strided) input's size, kept in the autograd graph."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves height and width: two 1x1 stride-2 convolutions, the second one pixel off, concatenated."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def relu_conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, affine=False))


def dil_conv(c: int, kernel: int, stride: int, padding: int, dilation: int) -> list[nn.Module]:
    """ReLU, depthwise convolution, pointwise convolution, BatchNorm (as modules, to be put in a Sequential)."""
    return [
        nn.ReLU(),
        nn.Conv2d(c, c, kernel, stride=stride, padding=padding, dilation=dilation, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, affine=False),
    ]


def primitive(name: str, c: int, stride: int) -> nn.Module:
    """One candidate operation of an edge, as the search network has it (non-affine BatchNorms)."""
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride=stride, padding=1), nn.BatchNorm2d(c, affine=False))
    if name == "avg_pool_3x3":
        pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name.startswith("sep_conv_"):
        kernel = int(name[-1])
        return nn.Sequential(*dil_conv(c, kernel, stride, kernel // 2, 1), *dil_conv(c, kernel, 1, kernel // 2, 1))
    if name.startswith("dil_conv_"):
        kernel = int(name[-1])
        return nn.Sequential(*dil_conv(c, kernel, stride, kernel - 1, 2))
    raise ValueError(name)


class Edge(nn.Module):
    """Every primitive on one edge, summed weighted by one row of the softmaxed alphas."""

    def __init__(self, c: int, stride: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(primitive(name, c, stride) for name in PRIMITIVES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for weight, op in zip(weights.unbind(), self.ops, strict=True):
            term = weight * op(x)
            total = term if total is None else total + term
        assert total is not None
        return total


class Cell(nn.Module):
    """Two preprocessed inputs, NODES nodes each summing one edge from every earlier state, concatenated."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else relu_conv_bn(c_pp, c)
        self.preprocess1 = relu_conv_bn(c_p, c)
        self.edges = nn.ModuleList(
            Edge(c, 2 if reduction and j < 2 else 1) for node in range(NODES) for j in range(2 + node)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        rows = weights.unbind()
        k = 0
        for _ in range(NODES):
            total = self.edges[k](states[0], rows[k])
            for j in range(1, len(states)):
                total = total + self.edges[k + j](states[j], rows[k + j])
            k += len(states)
            states.append(total)
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """DARTS's search network in plain torch: stem, cells (reductions at cells//3 and 2*cells//3), classifier."""

    def __init__(self) -> None:
        super().__init__()
        c_stem = STEM_MULTIPLIER * CHANNELS
        self.stem = nn.Sequential(nn.Conv2d(3, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, CHANNELS
        cells: list[Cell] = []
        reduction_prev = False
        for index in range(CELLS):
            reduction = index in (CELLS // 3, 2 * CELLS // 3)
            if reduction:
                c *= 2
            cells.append(Cell(c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, NODES * c
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, CLASSES)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(EDGES, len(PRIMITIVES)))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(EDGES, len(PRIMITIVES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            alphas = self.alphas_reduce if cell.reduction else self.alphas_normal
            s0, s1 = s1, cell(s0, s1, torch.softmax(alphas, dim=-1))
        return self.classifier(torch.flatten(self.pool(s1), 1))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas_normal, self.alphas_reduce]

    def weights(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("alphas_")]


# -- the two models, their optimizers and the step ---------------------------------------------


class Search:
    """One model with DARTS's two optimizers, and the calls that are timed."""

    def __init__(self, model: nn.Module, weights: list[nn.Parameter], alphas: list[nn.Parameter]) -> None:
        self.model = model.train()
        self.weights = weights
        self.alphas = alphas
        self.weight_optimizer = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
        self.arch_optimizer = torch.optim.Adam(alphas, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        self.criterion = nn.CrossEntropyLoss()

    def zero_grad(self) -> None:
        self.arch_optimizer.zero_grad()
        self.weight_optimizer.zero_grad()

    def step(self, data: Data) -> None:
        """First-order DARTS: the architecture step on the validation batch, then the weight step."""
        self.zero_grad()
        self.criterion(self.model(data.x_valid), data.y_valid).backward()
        self.arch_optimizer.step()
        self.zero_grad()
        self.criterion(self.model(data.x_train), data.y_train).backward()
        nn.utils.clip_grad_norm_(self.weights, 5.0)
        self.weight_optimizer.step()

    def forward_backward(self, data: Data) -> None:
        self.zero_grad()
        self.criterion(self.model(data.x_train), data.y_train).backward()

    def forward(self, data: Data) -> None:
        self.criterion(self.model(data.x_train), data.y_train)


class Data:
    """A training and a validation batch of random images and labels, the same for both models."""

    def __init__(self, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x_train = torch.randn(BATCH, 3, IMAGE, IMAGE, generator=generator)
        self.y_train = torch.randint(0, CLASSES, (BATCH,), generator=generator)
        self.x_valid = torch.randn(BATCH, 3, IMAGE, IMAGE, generator=generator)
        self.y_valid = torch.randint(0, CLASSES, (BATCH,), generator=generator)


def build_fluxion() -> Search:
    from fluxion import nas, spec

    model = spec.load(SPEC)
    return Search(model, nas.weights(model), nas.arch_parameters(model))


def build_torch() -> Search:
    model = Supernet()
    return Search(model, model.weights(), model.arch_parameters())


def count(parameters: list[nn.Parameter]) -> int:
    return sum(p.numel() for p in parameters)


def copy_fluxion_into_torch(fluxion: Search, plain: Search) -> None:
    """Give the torch model fluxion's weights (same order, shapes checked) and architecture weights."""
    from fluxion import nas

    for source, target in zip(fluxion.weights, plain.weights, strict=True):
        if source.shape != target.shape:
            raise SystemExit(f"weights out of step: {tuple(source.shape)} against {tuple(target.shape)}")
    model = plain.model
    assert isinstance(model, Supernet)
    rows: dict[str, dict[int, torch.Tensor]] = {"normal": {}, "reduce": {}}
    for name, alphas in nas.named_arch_parameters(fluxion.model):
        cell, edge, _ = name.split(".")  # reduce_2.edge_13.alphas
        rows[cell.split("_")[0]][int(edge.removeprefix("edge_"))] = alphas
    with torch.no_grad():
        for source, target in zip(fluxion.weights, plain.weights, strict=True):
            target.copy_(source)
        for kind, target in (("normal", model.alphas_normal), ("reduce", model.alphas_reduce)):
            if sorted(rows[kind]) != list(range(EDGES)):
                raise SystemExit(f"fluxion's {kind} alphas: edges {sorted(rows[kind])}, expected 0 to {EDGES - 1}")
            target.copy_(torch.stack([rows[kind][k] for k in range(EDGES)]))


def check_same(fluxion: Search, plain: Search, data: Data) -> float:
    """The largest difference between the two models' logits (train mode, same weights and data)."""
    with torch.no_grad():
        ours = fluxion.model(data.x_train)
        theirs = plain.model(data.x_train)
    difference = float((ours - theirs).abs().max())
    if not torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5):
        raise SystemExit(f"fluxion and torch outputs differ (max |diff| {difference:.2e}); the comparison is void")
    return difference


# -- timing ---------------------------------------------------------------------------------------


def time_block(action: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        action()
    return (time.perf_counter() - start) / calls


def median_pair(
    first: Callable[[], None], second: Callable[[], None], repeats: int, calls: int, warmup: int
) -> tuple[float, float]:
    """Median seconds per call of each, blocks alternating A B, B A, ... after ``warmup`` calls of each."""
    for _ in range(warmup):
        first()
        second()
    a: list[float] = []
    b: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for rep in range(repeats):
            order = ((first, a), (second, b)) if rep % 2 == 0 else ((second, b), (first, a))
            for action, samples in order:
                samples.append(time_block(action, calls))
    finally:
        gc.enable()
    return statistics.median(a), statistics.median(b)


# -- memory: one fresh process per measurement ----------------------------------------------------


def child_memory(which: str, threads: int) -> dict[str, Any]:
    for name in ("fluxion.nas", "fluxion.spec"):  # in both children: "held" then leaves imports out
        importlib.import_module(name)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rss_start = status_kib("VmRSS")
    search = build_fluxion() if which == "fluxion" else build_torch()
    data = Data()
    for _ in range(2):
        search.step(data)
    gc.collect()
    rss_before = status_kib("VmRSS")
    peak_reset = reset_peak()
    search.step(data)
    peak = status_kib("VmHWM") if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "step": (peak - rss_before) * 1024,
        "held": (rss_before - rss_start) * 1024,
        "source": "VmHWM after clear_refs" if peak_reset else "ru_maxrss",
    }


def run_child(which: str, threads: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", which, "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **MALLOC_ENV},
    )
    if done.returncode:
        raise RuntimeError(f"child {which} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_memory(runs: int, threads: int) -> dict[str, dict[str, Any]]:
    """Median over ``runs`` fresh processes per model, alternating the models."""
    samples: dict[str, list[dict[str, Any]]] = {"fluxion": [], "torch": []}
    for run in range(runs):
        for which in ("fluxion", "torch") if run % 2 == 0 else ("torch", "fluxion"):
            samples[which].append(run_child(which, threads))
    return {
        which: {
            "step": statistics.median(row["step"] for row in rows),
            "held": statistics.median(row["held"] for row in rows),
            "source": rows[0]["source"],
        }
        for which, rows in samples.items()
    }


# -- report ---------------------------------------------------------------------------------------


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def verdict(ratio: float, goal: float) -> str:
    return "ok" if ratio <= goal else "MISS"


def rows_of(fluxion: Search, plain: Search, data: Data) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    yield "search step", lambda: fluxion.step(data), lambda: plain.step(data)
    yield "forward+backward", lambda: fluxion.forward_backward(data), lambda: plain.forward_backward(data)
    yield "forward", lambda: fluxion.forward(data), lambda: plain.forward(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions and one memory run, for a smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="timed blocks per model (default 11)")
    parser.add_argument("--calls", type=int, default=1, help="calls per timed block (default 1)")
    parser.add_argument("--memory-runs", type=int, default=None, help="fresh processes per model (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--child", choices=("fluxion", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child_memory(args.child, args.threads)))
        return
    repeats = args.repeats or (2 if args.quick else 11)
    warmup = 1 if args.quick else 2
    memory_runs = args.memory_runs or (1 if args.quick else 5)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fluxion = build_fluxion()
    plain = build_torch()
    for name, search in (("fluxion", fluxion), ("torch", plain)):
        weights = count(search.weights)
        assert weights == DARTS_WEIGHTS, f"{name} supernet has {weights:,} weights, DARTS's has {DARTS_WEIGHTS:,}"
    copy_fluxion_into_torch(fluxion, plain)
    data = Data()
    difference = check_same(fluxion, plain, data)
    fluxion.step(data)
    plain.step(data)
    stepped = check_same(fluxion, plain, data)  # the gradients and both optimizers' updates agree too

    print(
        f"DARTS search step: supernet C={CHANNELS}, {CELLS} cells, {NODES} nodes, batch {BATCH}x3x{IMAGE}x{IMAGE}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU"
    )
    print(
        f"weights: fluxion {count(fluxion.weights):,} ({len(fluxion.weights)} tensors), "
        f"torch {count(plain.weights):,} ({len(plain.weights)} tensors); architecture weights: "
        f"fluxion {count(fluxion.alphas)} in {len(fluxion.alphas)} tensors, torch {count(plain.alphas)} in "
        f"{len(plain.alphas)}"
    )
    print(f"same weights in both; logits max |diff| {difference:.1e}, {stepped:.1e} after one search step each")
    print(f"time: median of {repeats} alternating blocks of {args.calls} call(s), after {warmup} warm-up call(s) each")
    print()
    header = f"{'':<18} {'torch':>10} {'fluxion':>10} {'flx/torch':>10} {'goal':>8} {'':>4}"
    print(header)
    print("-" * len(header))
    failures: list[str] = []
    for label, ours, theirs in rows_of(fluxion, plain, data):
        fluxion_s, torch_s = median_pair(ours, theirs, repeats, args.calls, warmup)
        ratio = fluxion_s / torch_s
        goal = f"<= {GOALS['time']:.2f}" if label == "search step" else ""
        mark = verdict(ratio, GOALS["time"]) if goal else ""
        if mark == "MISS":
            failures.append(f"time {ratio:.3f} > {GOALS['time']}")
        print(f"{label:<18} {fmt_ms(torch_s):>10} {fmt_ms(fluxion_s):>10} {ratio:>10.3f} {goal:>8} {mark:>4}")

    memory = measure_memory(memory_runs, args.threads)
    ratio = memory["fluxion"]["step"] / memory["torch"]["step"]
    mark = verdict(ratio, GOALS["memory"])
    if mark == "MISS":
        failures.append(f"memory {ratio:.3f} > {GOALS['memory']}")
    print()
    print(
        f"peak memory of one step above the resident memory before it: median of {memory_runs} fresh process(es) "
        f"per model ({memory['fluxion']['source']}, MALLOC_MMAP_THRESHOLD_={MALLOC_ENV['MALLOC_MMAP_THRESHOLD_']})"
    )
    print(header)
    print("-" * len(header))
    step_t, step_f = memory["torch"]["step"] / MIB, memory["fluxion"]["step"] / MIB
    goal = f"<= {GOALS['memory']:.2f}"
    print(f"{'step peak':<18} {f'{step_t:.1f} MiB':>10} {f'{step_f:.1f} MiB':>10} {ratio:>10.3f} {goal:>8} {mark:>4}")
    held_t, held_f = memory["torch"]["held"] / MIB, memory["fluxion"]["held"] / MIB
    print(f"{'held between':<18} {f'{held_t:.1f} MiB':>10} {f'{held_f:.1f} MiB':>10} {held_f / held_t:>10.3f}")
    print("(held between: resident memory after building and two steps, above that after imports, before building)")
    print()
    if failures:
        print("goals missed: " + "; ".join(failures))
    else:
        print("all goals met")


if __name__ == "__main__":
    main()
