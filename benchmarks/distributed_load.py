"""Loading a ~1 GiB checkpoint into a model on two ranks: sharded on meta, against whole on each rank.

What it measures
    The peak resident memory of each rank (and the wall time) while a checkpoint of about 1 GiB
    (float32; the transformer-shaped tree of ``load_weights.py``: an Embedding, blocks of
    LayerNorms and Linears, a head) goes into a model, three ways, each on two gloo ranks
    launched with ``torchrun`` (fresh processes for every run):

    * ``(a)`` whole on each rank, the usual way: the tree built normally on every rank (its
      parameters allocated and initialised), then ``fluxion.weights.load(model, path)``;
    * ``(b)`` whole on each rank, built on ``meta``: ``fluxion.weights.load`` hands each rank the
      memory-mapped tensors of the file, then every weight is read once (its pages become resident);
    * ``(c)`` fluxion.distributed: the tree built on ``meta``, ``fluxion.distributed.shard(model,
      block and embedding and head nodes)`` (FSDP2), then ``fluxion.distributed.load(model, path)``: each
      rank reads only the rows of each tensor its shard holds, straight into the shard's memory.

How it measures
    The parent generates the checkpoint once in a temporary folder (in a child process) and reads
    it once, so that it is in the page cache: warm-cache figures. Each measurement runs in fresh
    processes (``torchrun --standalone --nproc_per_node 2`` of this script with ``--child``),
    ``--repeats`` times, the methods alternating; the figures are medians over repetitions of each
    rank's figure. In each rank, after the imports and the process group's start, the kernel's
    peak-RSS mark is reset (``/proc/self/clear_refs``); the figure is the peak RSS (``VmHWM``) above
    the RSS at that moment, as a multiple of the checkpoint's size; the absolute peak RSS is shown
    too (it includes the ~0.3 GiB of a process that has imported torch). Every run checks its
    values: the sum of squares of every parameter (summed over ranks for (c)) must equal the
    checkpoint's.

Goal (issue 20)
    (c) <= 0.6 x the checkpoint size per rank; the unsharded way costs >= 1 x per rank.

Run ``python benchmarks/distributed_load.py`` (``--quick`` for a ~0.3 GiB checkpoint, the smallest
this model shape makes, one repetition; ``--help`` for options). The figure has a fixed part (what
sharding itself costs: FSDP's modules and state, about 55 MiB per rank here), so small checkpoints
show a larger multiple: 0.67 x at 0.3 GiB, 0.56 x at 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.tensor import DTensor

import fluxion.layers as fl
import fluxion.weights
from fluxion import distributed
from load_weights import build, config_for, param_bytes
from process_memory import reset_peak, status_kib

MIB = 2**20
GIB = 2**30
DIM = 1024
GOAL = 0.6
METHODS = {
    "a": "(a) whole per rank, built + fluxion.weights.load",
    "b": "(b) whole per rank, meta + fluxion.weights.load",
    "c": "(c) sharded on meta + fluxion.distributed.load",
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def sum_of_squares(tensor: torch.Tensor) -> float:
    """In float64, a million elements at a time: the check itself must not hold a copy of the tensor."""
    flat = tensor.detach().reshape(-1)
    return sum(float(torch.dot(part.double(), part.double())) for part in flat.split(2**20))


def squares(model: torch.nn.Module) -> float:
    """The sum of squares of this process's part of every parameter (each tensor once)."""
    total = 0.0
    seen: set[int] = set()
    with torch.no_grad():
        for parameter in model.parameters():
            if id(parameter) in seen:
                continue
            seen.add(id(parameter))
            local = parameter.to_local() if isinstance(parameter, DTensor) else parameter
            total += sum_of_squares(local)
    return total


def make(path: str, blocks: int) -> None:
    torch.manual_seed(0)
    model = build(DIM, blocks)
    tensors = {key: tensor.detach().contiguous() for key, tensor in model.state_dict().items()}
    save_file(tensors, path)
    total = sum(sum_of_squares(tensor) for tensor in tensors.values())
    Path(path + ".json").write_text(json.dumps({"squares": total}))


def child(method: str, path: str, blocks: int, out: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    base = rss_bytes()
    peak_reset = reset_peak()
    start = time.perf_counter()
    if method == "a":
        model = build(DIM, blocks)
        fluxion.weights.load(model, path)
    elif method == "b":
        with torch.device("meta"):
            model = build(DIM, blocks)
        fluxion.weights.load(model, path)
    else:
        with torch.device("meta"):
            model = build(DIM, blocks)
        distributed.shard(model, (fl.Embedding, fl.Residual, fl.Linear))
        distributed.load(model, path, progress=False)
    local = squares(model)  # reads every byte once (the pages of (b) become resident here)
    seconds = time.perf_counter() - start
    peak = status_kib("VmHWM") * 1024
    total = torch.tensor([local], dtype=torch.float64)
    if method == "c":
        dist.all_reduce(total)
    result = {
        "rank": rank,
        "seconds": seconds,
        "peak_above_base": peak - base,
        "peak": peak,
        "squares": float(total.item()),
        "peak_reset": peak_reset,
    }
    Path(out, f"{method}-{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


def run(method: str, path: str, blocks: int, folder: Path) -> list[dict[str, Any]]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        __file__,
        "--child",
        method,
        "--path",
        path,
        "--blocks",
        str(blocks),
        "--out",
        str(folder),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL)
    return [json.loads((folder / f"{method}-{rank}.json").read_text()) for rank in range(2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="checkpoint size to aim for (default 1024)")
    parser.add_argument("--quick", action="store_true", help="a ~0.3 GiB checkpoint, one repetition")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--blocks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments.child, arguments.path, arguments.blocks, arguments.out)
        return
    size_mib = 300 if arguments.quick else arguments.size_mib
    repeats = 1 if arguments.quick else arguments.repeats
    blocks = config_for(size_mib, DIM)
    size = param_bytes(DIM, blocks)
    with tempfile.TemporaryDirectory(prefix="fluxion-distributed-load-") as temporary:
        folder = Path(temporary)
        path = str(folder / "model.safetensors")
        here = str(Path(__file__).parent)
        maker = f"import sys; sys.path.insert(0, {here!r}); import distributed_load as d; d.make({path!r}, {blocks})"
        subprocess.run([sys.executable, "-c", maker], check=True)
        expected = json.loads(Path(path + ".json").read_text())["squares"]
        Path(path).read_bytes()  # into the page cache: warm-cache figures
        print(f"checkpoint: {size / GIB:.3f} GiB float32 ({blocks} blocks of width {DIM}), 2 ranks (gloo, CPU)")
        results: dict[str, list[list[dict[str, Any]]]] = {method: [] for method in METHODS}
        for repeat in range(repeats):
            order = list(METHODS) if repeat % 2 == 0 else list(reversed(METHODS))
            for method in order:
                ranks = run(method, path, blocks, folder)
                for result in ranks:
                    if abs(result["squares"] - expected) > 1e-6 * expected and method != "c":
                        raise SystemExit(f"{METHODS[method]}: rank {result['rank']} loaded other values")
                if abs(ranks[0]["squares"] - expected) > 1e-6 * expected:
                    raise SystemExit(f"{METHODS[method]}: the ranks together loaded other values")
                results[method].append(ranks)
        if not all(result["peak_reset"] for runs in results.values() for ranks in runs for result in ranks):
            print("note: /proc/self/clear_refs was refused; peaks include the start-up transient")
        print(f"{'method':52} {'rank':>4} {'peak above start':>17} {'x ckpt':>7} {'peak RSS':>9} {'time s':>7}")
        medians: dict[str, float] = {}
        for method, label in METHODS.items():
            for rank in range(2):
                above = statistics.median(ranks[rank]["peak_above_base"] for ranks in results[method])
                peak = statistics.median(ranks[rank]["peak"] for ranks in results[method])
                seconds = statistics.median(ranks[rank]["seconds"] for ranks in results[method])
                medians[f"{method}{rank}"] = above / size
                print(
                    f"{label:52} {rank:>4} {above / MIB:>13.0f} MiB {above / size:>7.3f} "
                    f"{peak / MIB:>5.0f} MiB {seconds:>7.2f}"
                )
        worst_sharded = max(medians["c0"], medians["c1"])
        best_whole = min(medians[f"{method}{rank}"] for method in "ab" for rank in range(2))
        print(f"sharded peak per rank: {worst_sharded:.3f} x checkpoint (goal <= {GOAL}); ", end="")
        print(f"whole per rank: >= {best_whole:.3f} x; ratio sharded / whole: {worst_sharded / best_whole:.3f}")
        print("goal met" if worst_sharded <= GOAL else "goal NOT met")


if __name__ == "__main__":
    main()
