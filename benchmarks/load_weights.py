"""Loading a large safetensors checkpoint: fluxion's meta-device load against load_file + load_state_dict.

What it measures
    The wall time and the peak resident memory of loading a generated checkpoint of about 1 GiB
    (float32; a transformer-shaped fluxion tree: an Embedding, blocks of LayerNorms and Linears of
    several sizes, a head; about 500 tensors from 3 KiB to 96 MiB), two ways:

    * ``(a)`` the plain baseline: the tree built normally (parameters allocated and initialised on
      the CPU), then ``safetensors.torch.load_file(path)`` and ``model.load_state_dict(sd,
      strict=True)``;
    * ``(b)`` fluxion: the same tree built under ``with torch.device("meta")``, then
      ``fluxion.weights.load(model, path)``, which hands the memory-mapped tensors of the file to
      the tree instead of copying them.

    Because (b) maps the file lazily, its load alone costs almost nothing: the bytes are read at
    their first use. Each method is therefore also timed as "load + read": the load followed by a
    first read of every weight (the norm of every parameter, under ``torch.no_grad()``), which is
    when the pages of a memory-mapped tensor become resident. Building the tree is timed apart
    (column ``build s``) and is not part of either figure.

How it measures
    The parent generates the checkpoint in a temporary folder (in a child process, so that its own
    memory stays small) and reads the file once, so that it is in the page cache for every run:
    these are warm-cache figures, cold-cache reads from disk are not measured. Each measurement
    runs in a fresh Python process (this script with ``--child a`` or ``--child b``), alternating
    a and b, ``--repeats`` times each; the figures are medians. In the child, after the imports,
    the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``); the peak memory reported is
    the peak RSS (``VmHWM``, read after the first read of every weight) above the RSS right after
    the imports. So the baseline's own parameters count (it needs the model and the loaded state
    dict), and so do the mapped file pages of (b) once read. Every child checks the norms of all
    its parameters against the generated weights. The temporary folder is deleted at the end.

    The baseline's ``load_state_dict`` copies with torch's intra-op threads (OpenMP); when another
    process competes for the cores its time grows several-fold (a busy loop on a 2-core machine
    made it 5x slower), while (b), which copies nothing, does not move. Run on an idle machine, or
    compare with ``--threads 1``.

Goals (the weights-loading issue: a meta-device load is no slower than the plain torch path and
holds the weights once in memory)
    (b) / (a) time <= 1.0, for the load and for load + read; (b) peak <= 1.15 x the checkpoint
    size (the baseline needs about 2 x).

Run ``python benchmarks/load_weights.py`` (``--quick`` for a ~128 MiB checkpoint, ``--help`` for options).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import fluxion.layers as fl
import fluxion.weights
from process_memory import reset_peak, status_kib

MIB = 2**20
GIB = 2**30
VOCAB = 32768
GOAL_TIME = 1.0
GOAL_PEAK = 1.15
METHODS = {"a": "(a) load_file+load_state_dict", "b": "(b) fluxion meta load"}


# -- the model -----------------------------------------------------------------------------------


def build(dim: int, blocks: int, vocab: int = VOCAB) -> fl.Chain:
    """A transformer-shaped tree: embedding, ``blocks`` x (attention-like + MLP residuals), head."""

    def block() -> fl.Chain:
        return fl.Chain(
            fl.Residual(
                fl.LayerNorm(dim),
                fl.Parallel(fl.Linear(dim, dim), fl.Linear(dim, dim), fl.Linear(dim, dim)),
                fl.Lambda(lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v)),
                fl.Linear(dim, dim),
            ),
            fl.Residual(fl.LayerNorm(dim), fl.Linear(dim, 4 * dim), fl.GeLU(), fl.Linear(4 * dim, dim)),
        )

    return fl.Chain(
        fl.Embedding(vocab, dim),
        fl.Chain(block() for _ in range(blocks)),
        fl.LayerNorm(dim),
        fl.Linear(dim, vocab),
    )


def param_bytes(dim: int, blocks: int, vocab: int = VOCAB) -> int:
    """Size in bytes of ``build(dim, blocks, vocab)``'s float32 parameters, without building it."""
    per_block = 12 * dim * dim + 13 * dim  # 4 x Linear(d, d), Linear(d, 4d), Linear(4d, d), 2 x LayerNorm
    return 4 * (vocab * dim + blocks * per_block + 2 * dim + dim * vocab + vocab)


def config_for(size_mib: int, dim: int) -> int:
    """The number of blocks that brings the tree closest to ``size_mib``."""
    fixed = param_bytes(dim, 0)
    per_block = param_bytes(dim, 1) - fixed
    return max(1, round((size_mib * MIB - fixed) / per_block))


# -- what a child process measures ---------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def read_all(model: torch.nn.Module) -> float:
    """Read every byte of every parameter once; the sum of their norms (a checksum)."""
    total = 0.0
    with torch.no_grad():
        for parameter in model.parameters():
            total += float(torch.linalg.vector_norm(parameter))
    return total


def child(method: str, path: str, dim: int, blocks: int) -> dict[str, Any]:
    base = rss_bytes()
    base_file = status_kib("RssFile") * 1024
    peak_reset = reset_peak()
    if method == "make":
        torch.manual_seed(0)
        model = build(dim, blocks)
        tensors = {key: tensor.detach().contiguous() for key, tensor in model.state_dict().items()}
        save_file(tensors, path)
        return {
            "checksum": read_all(model),
            "tensors": len(tensors),
            "nbytes": sum(t.numel() * t.element_size() for t in tensors.values()),
            "smallest": min(t.numel() * t.element_size() for t in tensors.values()),
            "largest": max(t.numel() * t.element_size() for t in tensors.values()),
        }
    start = time.perf_counter()
    if method == "a":
        model = build(dim, blocks)
        built = time.perf_counter()
        built_rss = rss_bytes()
        state_dict = load_file(path)
        model.load_state_dict(state_dict, strict=True)
    elif method == "b":
        with torch.device("meta"):
            model = build(dim, blocks)
        built = time.perf_counter()
        built_rss = rss_bytes()
        fluxion.weights.load(model, path, progress=False)
    else:
        raise ValueError(method)
    loaded = time.perf_counter()
    checksum = read_all(model)
    read = time.perf_counter()
    if any(p.is_meta or p.device.type != "cpu" for p in model.parameters()):
        raise SystemExit(f"{method}: parameters left off the CPU after the load")
    peak_kib = status_kib("VmHWM") if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "build": built - start,
        "load": loaded - built,
        "load+read": read - built,
        "built": built_rss - base,
        "peak": peak_kib * 1024 - base,
        "file": status_kib("RssFile") * 1024 - base_file,
        "peak_source": "VmHWM after clear_refs" if peak_reset else "ru_maxrss",
        "checksum": checksum,
        "threads": torch.get_num_threads(),
    }


# -- the parent ----------------------------------------------------------------------------------


def run_child(method: str, path: Path, dim: int, blocks: int, threads: int | None) -> dict[str, Any]:
    command = [sys.executable, os.path.abspath(__file__), "--child", method, "--path", str(path)]
    command += ["--dim", str(dim), "--blocks", str(blocks)]
    if threads is not None:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {method} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def warm_page_cache(path: Path) -> None:
    buffer = bytearray(16 * MIB)
    with open(path, "rb", buffering=0) as file:
        while file.readinto(buffer):
            pass


def fmt_mib(n: float) -> str:
    return f"{n / MIB:,.0f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~128 MiB checkpoint, for a smoke run")
    parser.add_argument("--size-mib", type=int, default=None, help="checkpoint size (default 1024, quick 128)")
    parser.add_argument("--dim", type=int, default=None, help="model width (default 768, quick 256)")
    parser.add_argument("--repeats", type=int, default=None, help="fresh processes per method (default 5, quick 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the children (default torch's)")
    parser.add_argument("--child", choices=["a", "b", "make"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--blocks", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        print(json.dumps(child(args.child, args.path, args.dim, args.blocks)))
        return

    repeats = args.repeats or (3 if args.quick else 5)
    size_mib = args.size_mib or (128 if args.quick else 1024)
    dim = args.dim or (256 if args.quick else 768)
    blocks = config_for(size_mib, dim)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fluxion-load-bench-") as folder:
        path = Path(folder) / "model.safetensors"
        made = run_child("make", path, dim, blocks, args.threads)
        warm_page_cache(path)
        nbytes = made["nbytes"]
        print(
            f"load weights: torch {torch.__version__}, {made['tensors']} float32 tensors "
            f"({made['smallest'] / 1024:,.0f} KiB to {made['largest'] / MIB:,.0f} MiB), "
            f"fluxion tree of dim {dim} x {blocks} blocks"
        )
        print(
            f"checkpoint: {nbytes / GIB:.2f} GiB ({fmt_mib(nbytes)} MiB of tensors, "
            f"{fmt_mib(path.stat().st_size)} MiB file), in the page cache (freshly written, read once): warm cache"
        )
        samples: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
        for rep in range(repeats):
            for method in ("a", "b") if rep % 2 == 0 else ("b", "a"):
                samples[method].append(run_child(method, path, dim, blocks, args.threads))
    elapsed = time.perf_counter() - started

    keys = ("build", "load", "load+read", "built", "peak", "file")
    medians = {
        method: {key: statistics.median(s[key] for s in runs) for key in keys} for method, runs in samples.items()
    }
    first = samples["b"][0]
    print(
        f"{repeats} fresh process(es) per method, alternating a/b, medians; {first['threads']} torch thread(s); "
        f"memory in MiB above the RSS right after the imports; peak = {first['peak_source']}, "
        "taken after the first read of all weights"
    )
    print()
    header = (
        f"{'method':<31} {'build s':>8} {'load s':>8} {'load+read s':>12} {'built MiB':>10} {'peak MiB':>9}"
        f" {'peak/ckpt':>10} {'file MiB':>9}"
    )
    print(header)
    print("-" * len(header))
    for method, label in METHODS.items():
        m = medians[method]
        print(
            f"{label:<31} {m['build']:>8.3f} {m['load']:>8.3f} {m['load+read']:>12.3f} {fmt_mib(m['built']):>10} "
            f"{fmt_mib(m['peak']):>9} {m['peak'] / nbytes:>10.2f} {fmt_mib(m['file']):>9}"
        )
    print(
        "build s / built MiB: building the tree (not part of load); file MiB: growth of file-backed RSS (mapped\n"
        "checkpoint pages, shared libraries) by the end."
    )
    print()

    a, b = medians["a"], medians["b"]
    checks = [
        ("b/a time, load", b["load"] / a["load"], GOAL_TIME),
        ("b/a time, load+read", b["load+read"] / a["load+read"], GOAL_TIME),
        ("b peak/ckpt", b["peak"] / nbytes, GOAL_PEAK),
    ]
    failures: list[str] = []
    for name, value, goal in checks:
        verdict = "ok" if value <= goal else "MISS"
        if verdict == "MISS":
            failures.append(f"{name} {value:.2f} > {goal}")
        print(f"{name:<20} {value:>6.2f}   (goal <= {goal:.2f})  {verdict}")
    print(f"{'a peak/ckpt':<20} {a['peak'] / nbytes:>6.2f}   (for reference; about 2 expected)")
    load_alone = (b["peak"] - b["built"]) / nbytes
    print(f"{'b (peak-built)/ckpt':<20} {load_alone:>6.2f}   (for reference: the load and first read alone)")
    print()

    wrong = [
        f"{method} run {i + 1}"
        for method, runs in samples.items()
        for i, run in enumerate(runs)
        if not math.isclose(run["checksum"], made["checksum"], rel_tol=1e-6)
    ]
    if wrong:
        raise SystemExit(f"loaded weights differ from the generated ones ({', '.join(wrong)}); the comparison is void")
    print("every run's parameter norms checked against the generated weights")
    print(f"total {elapsed:.0f} s; temporary checkpoint deleted")
    print("goals missed: " + "; ".join(failures) if failures else "all goals met")


if __name__ == "__main__":
    main()
