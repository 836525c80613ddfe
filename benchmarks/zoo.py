"""Real architectures as specs: ResNet-50 and GPT-2 (124M) against Hugging Face ``transformers``.

What it measures, for each model at full size with random weights
    * ``build+infer``: ``fluxion.spec.load(spec, tla=..., device="meta")`` (jsonnet evaluated, every
      node built, every shape inferred and the sizes left out filled in) followed by
      ``fluxion.shapes.infer`` with symbolic batch (and sequence) dims. ``cold`` is the first call
      in a fresh Python process (after ``import fluxion``: it includes the first use of jsonnet and
      sympy), ``warm`` the median of the later calls.
    * ``load``: reading the checkpoint that the reference model's ``save_pretrained`` wrote into
      the tree built on ``meta``, through the key mapping next to the spec
      (``fluxion.weights.load(model, file, mapping=...)``); then ``load+read``, the load followed by
      a first read of every tensor (memory-mapped pages are read from disk at their first use).
      The reference is ``transformers``' own ``from_pretrained(folder)`` (then the same read).
      ``peak`` is the peak resident memory above the resident memory before the load (in a fresh
      process per measurement: the kernel's ``VmHWM`` after resetting it through
      ``/proc/self/clear_refs``, or ``ru_maxrss`` where that is refused); the checkpoint's size is
      printed beside it. Checkpoint pages that the load touches count as resident (they are file
      pages of the page cache, shared, but in RSS).
    * ``forward``: the fluxion model (weights loaded through the mapping) against the reference
      model (the same weights), on the same input, CPU, ``torch.inference_mode()``, eval mode,
      batch 1 and 8: the median of the repeats, the two models alternating, after warm-up runs
      (GPT-2's reference is called with ``use_cache=False``: it would otherwise also build the
      key/value cache for generation, which the fluxion model does not keep).
      The ratio is fluxion / reference (below 1: fluxion is faster). The largest difference
      between the two outputs is printed too (GPT-2: logits; ResNet: logits).

    ResNet-50 is ``examples/resnet.jsonnet`` at depth 50 against ``ResNetForImageClassification``
    from ``ResNetConfig(depths=[3, 4, 6, 3], layer_type="bottleneck", ...)``; its weights load only
    when ``examples/resnet.mapping.json`` exists (otherwise the load rows are skipped and the
    fluxion model keeps its random weights for the timing). GPT-2 is ``examples/gpt2.jsonnet``
    against ``GPT2LMHeadModel`` from ``GPT2Config(n_layer=12, n_embd=768, n_head=12,
    vocab_size=50257)``, on ``--sequence`` tokens (64 by default).

Goals (issue "real architectures"): forward within 5% of the reference (ratio <= 1.05);
build+infer under 1 s. Figures are printed, not asserted.

Run ``python benchmarks/zoo.py`` (``--quick`` for fewer repeats, ``--models gpt2`` for one model,
``--help`` for the options). It needs ``transformers``; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from process_memory import reset_peak, status_kib

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MIB = 2**20


@dataclass(frozen=True)
class Zoo:
    """One architecture: its spec, the reference model and the inputs to time."""

    name: str
    spec: Path
    mapping: Path
    tla: dict[str, Any]
    symbolic: tuple[Any, ...]
    reference_class: str
    config: dict[str, Any] = field(default_factory=dict[str, Any])
    reference_options: dict[str, Any] = field(default_factory=dict[str, Any])
    """Keywords for each call of the reference model (GPT-2: no key/value cache, as fluxion keeps none)."""

    def reference(self) -> torch.nn.Module:
        import transformers

        if self.name == "gpt2":
            config: Any = transformers.GPT2Config(**self.config)
        else:
            config = transformers.ResNetConfig(**self.config)
        return getattr(transformers, self.reference_class)(config).eval()

    def example(self, batch: int, sequence: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(batch)
        if self.name == "gpt2":
            return torch.randint(0, self.tla["vocab"], (batch, sequence), generator=generator)
        return torch.randn(batch, 3, 224, 224, generator=generator)


ZOO = {
    "resnet50": Zoo(
        "resnet50",
        EXAMPLES / "resnet.jsonnet",
        EXAMPLES / "resnet.mapping.json",
        {"depth": 50},
        ("B", 3, 224, 224),
        "ResNetForImageClassification",
        {
            "num_channels": 3,
            "embedding_size": 64,
            "hidden_sizes": [256, 512, 1024, 2048],
            "depths": [3, 4, 6, 3],
            "layer_type": "bottleneck",
            "hidden_act": "relu",
            "num_labels": 1000,
        },
    ),
    "gpt2": Zoo(
        "gpt2",
        EXAMPLES / "gpt2.jsonnet",
        EXAMPLES / "gpt2.mapping.json",
        {"depth": 12, "width": 768, "heads": 12, "vocab": 50257, "positions": 1024},
        ("B", "T"),
        "GPT2LMHeadModel",
        {
            "n_layer": 12,
            "n_embd": 768,
            "n_head": 12,
            "vocab_size": 50257,
            "n_positions": 1024,
            "bos_token_id": 50256,
            "eos_token_id": 50256,
        },
        {"use_cache": False},
    ),
}


# -- children: one fresh process per measurement of build time and memory ------------------------


def read_all(model: torch.nn.Module) -> float:
    """A first read of every tensor (what makes memory-mapped pages resident)."""
    with torch.no_grad():
        return float(sum(float(t.float().abs().sum()) for t in [*model.parameters(), *model.buffers()]))


def child_build(zoo: Zoo, repeats: int) -> dict[str, Any]:
    from fluxion import shapes, spec

    times: list[float] = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        model = spec.load(zoo.spec, tla=zoo.tla, device="meta")
        shapes.infer(model, zoo.symbolic)
        times.append(time.perf_counter() - start)
    nodes = sum(1 for _ in model.modules())  # pyright: ignore[reportPossiblyUnboundVariable]
    return {"cold": times[0], "warm": statistics.median(times[1:]), "nodes": nodes}


def child_load(zoo: Zoo, method: str, folder: str) -> dict[str, Any]:
    import transformers

    from fluxion import spec, weights

    transformers.logging.set_verbosity_error()
    if method == "fluxion":
        model = spec.load(zoo.spec, tla=zoo.tla, device="meta")
    rss_before = status_kib("VmRSS")
    peak_reset = reset_peak()
    start = time.perf_counter()
    if method == "fluxion":
        weights.load(model, Path(folder) / "model.safetensors", mapping=zoo.mapping)  # pyright: ignore[reportPossiblyUnboundVariable]
    else:
        model = getattr(transformers, zoo.reference_class).from_pretrained(folder).eval()
    loaded = time.perf_counter() - start
    read_all(model)
    read = time.perf_counter() - start
    peak_kib = status_kib("VmHWM") if peak_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "load": loaded,
        "load_read": read,
        "peak": (peak_kib - rss_before) * 1024,
        "peak_source": "VmHWM after clear_refs" if peak_reset else "ru_maxrss",
    }


def run_child(*arguments: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *arguments], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"child {arguments} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the parent ----------------------------------------------------------------------------------


def median_pair(
    first: Callable[[], object], second: Callable[[], object], repeats: int, warmup: int
) -> tuple[float, float]:
    """Median seconds of each, run alternately (so that drifts of the machine hit both alike)."""
    for _ in range(warmup):
        first()
        second()
    a: list[float] = []
    b: list[float] = []
    for index in range(repeats):
        order = ((first, a), (second, b)) if index % 2 == 0 else ((second, b), (first, a))
        for action, times in order:
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def logits(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.logits


def measure(zoo: Zoo, repeats: int, sequence: int, folder: Path) -> None:
    from fluxion import spec

    print(f"\n== {zoo.name}: {zoo.spec.relative_to(ROOT)} {zoo.tla} vs transformers {zoo.reference_class}")
    build = run_child("build", zoo.name, str(max(3, repeats)))
    print(
        f"build+infer on meta ({build['nodes']} nodes, input {zoo.symbolic}): "
        f"cold {build['cold'] * 1000:.0f} ms, warm {build['warm'] * 1000:.0f} ms   (goal < 1000 ms)"
    )

    reference = zoo.reference()
    reference.save_pretrained(folder)
    checkpoint = folder / "model.safetensors"
    size = checkpoint.stat().st_size
    has_mapping = zoo.mapping.exists()
    if has_mapping:
        rows = [(method, run_child("load", zoo.name, method, str(folder))) for method in ("fluxion", "transformers")]
        print(f"weights: {checkpoint.name} {size / MIB:.0f} MiB (peak: {rows[0][1]['peak_source']})")
        for method, row in rows:
            label = "fluxion meta load+mapping" if method == "fluxion" else "transformers from_pretrained"
            print(
                f"  {label:<30} load {row['load'] * 1000:7.0f} ms   load+read {row['load_read'] * 1000:7.0f} ms"
                f"   peak {row['peak'] / MIB:6.0f} MiB ({row['peak'] / size:.2f}x the checkpoint)"
            )
        model = spec.load(zoo.spec, tla=zoo.tla, device="meta", weights=checkpoint, mapping=zoo.mapping)
    else:
        print(f"weights: {zoo.mapping.relative_to(ROOT)} not found: no load measured, fluxion keeps random weights")
        model = spec.load(zoo.spec, tla=zoo.tla)
    model.eval()

    print(f"forward (CPU, {torch.get_num_threads()} threads, inference_mode, median of {repeats}):")
    for batch in (1, 8):
        example = zoo.example(batch, sequence)
        with torch.inference_mode():
            ours = logits(model(example))
            theirs = logits(reference(example, **zoo.reference_options))
            difference = (ours - theirs).abs().max().item() if has_mapping else float("nan")
            fluxion_s, reference_s = median_pair(
                lambda example=example: model(example),
                lambda example=example: reference(example, **zoo.reference_options),
                repeats,
                warmup=1 if batch > 1 else 2,
            )
        shape = str(tuple(example.shape))
        print(
            f"  batch {batch} {shape:<18} fluxion {fluxion_s * 1000:8.1f} ms   "
            f"transformers {reference_s * 1000:8.1f} ms   ratio {fluxion_s / reference_s:5.3f}   "
            f"max |diff| {difference:.2e}   (goal ratio <= 1.05)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--models", nargs="+", choices=sorted(ZOO), default=["resnet50", "gpt2"])
    parser.add_argument("--sequence", type=int, default=64, help="GPT-2 tokens per sequence (default 64)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads for the forward timings (default: torch's)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        kind, name, *rest = arguments.child
        zoo = ZOO[name]
        result = child_build(zoo, int(rest[0])) if kind == "build" else child_load(zoo, rest[0], rest[1])
        print(json.dumps(result))
        return

    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    repeats = 3 if arguments.quick else 9
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {os.cpu_count()} CPUs")
    for name in arguments.models:
        with tempfile.TemporaryDirectory() as folder:
            measure(ZOO[name], repeats, arguments.sequence, Path(folder))


if __name__ == "__main__":
    main()
