"""TorchArc files: fluxion's load with every size inferred from input shapes, against TorchArc's build
and the first forward that materializes its Lazy modules.

What it measures
    For four TorchArc format-2 files written for this benchmark (``benchmarks/torcharc/*.yaml``):

    * ``mlp``             -- Flatten, then LazyLinear 512, 256, 10 and LogSoftmax, input ``(B, 1, 28, 28)``;
    * ``conv``            -- a compact stack of LazyBatchNorm2d, LazyConv2d (16, 32, 64), ReLU, Dropout,
      then a lazy classifier, input ``(B, 3, 32, 32)``;
    * ``film``            -- image and state towers joined by MergeFiLM twice, then a lazy head,
      inputs ``(B, 3, 32, 32)`` and ``(B, 6)``;
    * ``text_classifier`` -- Embedding(10000, 128), self-attention (MultiheadAttention called with
      ``{query: x, key: x, value: x}``), Get, a TransformerEncoderLayer, Reduce mean, a lazy head,
      input ``(B, T)``.

    fluxion: ``spec.load(file, inputs={...})`` with symbolic shapes (``B``, ``T``): reading the YAML,
    translating it, building every module, inferring every shape and creating the parameters of
    every lazy layer. The model is complete: no forward has run.

    TorchArc 2.x: ``torcharc.build(file)`` and the forward on a batch of 2 (under ``no_grad``) that
    TorchArc needs before its Lazy modules have parameters.

    Both create the same parameters (their counts are printed) on the CPU, with torch's
    initialisation. The ratio is fluxion / TorchArc; the goal (issue 18) is <= 1.0 for each file.

How it measures
    The two are run in turn within each repetition (interleaved, so that a noisy machine slows both
    alike), after one untimed warm-up of each; the medians are printed.

Running it
    ``python benchmarks/torcharc.py`` (``--quick`` for a short run) prints fluxion's figures alone
    when TorchArc is not importable. TorchArc 2.1.2 declares Python >= 3.12; to compare on 3.11, put
    it in a scratch venv that shares this project's packages::

        python -m venv /tmp/tavenv
        /tmp/tavenv/bin/pip install --no-deps --ignore-requires-python torcharc==2.1.2
        echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/tavenv/lib/python3.11/site-packages/zz_main.pth
        PYTHONPATH=src /tmp/tavenv/bin/python benchmarks/torcharc.py

    (TorchArc needs pydantic 2 and PyYAML, which this project's venv has; ``PYTHONPATH=src`` because
    an editable install's path hook is not read through a ``.pth`` of another venv.) Importing
    TorchArc adds its classes to ``torch.nn``; fluxion translates TorchArc's own names first, so
    its models are the same either way.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType

import torch

from fluxion import spec

SPECS = Path(__file__).resolve().parent / "torcharc"

CASES: dict[str, dict[str, list[int | str]]] = {
    "mlp": {"image": ["B", 1, 28, 28]},
    "conv": {"image": ["B", 3, 32, 32]},
    "film": {"image": ["B", 3, 32, 32], "gyro": ["B", 6]},
    "text_classifier": {"tokens": ["B", "T"]},
}
"""Each file's inputs, by name, with symbolic sizes (what fluxion is given)."""

BATCH = {"B": 2, "T": 16}
"""The sizes of the batch TorchArc's first forward runs on."""


def torcharc_module() -> ModuleType | None:
    """TorchArc, or None; this file's folder is left off the path, where ``torcharc`` is this file."""
    here = Path(__file__).resolve().parent
    saved = sys.path[:]
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    try:
        return importlib.import_module("torcharc")
    except ImportError:
        return None
    finally:
        sys.path[:] = saved


def batch(name: str) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for key, shape in CASES[name].items():
        sizes = [BATCH[size] if isinstance(size, str) else size for size in shape]
        tensors[key] = torch.randint(0, 10000, sizes) if key == "tokens" else torch.randn(sizes)
    return tensors


def fluxion_load(name: str) -> Callable[[], torch.nn.Module]:
    path = SPECS / f"{name}.yaml"
    return lambda: spec.load(path, inputs=CASES[name])


def torcharc_build(torcharc: ModuleType, name: str) -> Callable[[], torch.nn.Module]:
    path = SPECS / f"{name}.yaml"

    def run() -> torch.nn.Module:
        model: torch.nn.Module = torcharc.build(path)
        with torch.no_grad():
            model(**batch(name))
        return model

    return run


def timed_ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def parameter_count(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def measure(name: str, torcharc: ModuleType | None, repeats: int) -> tuple[float, float | None, int, int | None]:
    ours = fluxion_load(name)
    theirs = None if torcharc is None else torcharc_build(torcharc, name)
    ours_count = parameter_count(ours())  # warm-up: imports, first-call caches
    theirs_count = None if theirs is None else parameter_count(theirs())
    ours_times: list[float] = []
    theirs_times: list[float] = []
    for _ in range(repeats):
        ours_times.append(timed_ms(ours))
        if theirs is not None:
            theirs_times.append(timed_ms(theirs))
    theirs_ms = statistics.median(theirs_times) if theirs_times else None
    return statistics.median(ours_times), theirs_ms, ours_count, theirs_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    repeats = 5 if parser.parse_args().quick else 21
    warnings.filterwarnings("ignore")  # torch's notes on Lazy modules and nested tensors
    torcharc = torcharc_module()
    version = "not importable: fluxion's column only" if torcharc is None else metadata.version("torcharc")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, TorchArc {version}; medians of {repeats}")
    print(f"{'spec':<17}{'parameters':>11}{'fluxion load':>15}{'TorchArc build+fwd':>21}{'ratio':>8}   goal <= 1.0")
    for name in CASES:
        ours_ms, theirs_ms, count, theirs_count = measure(name, torcharc, repeats)
        if theirs_ms is None:
            print(f"{name:<17}{count:>11}{ours_ms:>12.1f} ms{'-':>21}{'-':>8}")
            continue
        same = "" if theirs_count == count else f"   (TorchArc's model has {theirs_count} parameters)"
        verdict = "ok" if ours_ms <= theirs_ms else "MISSED"
        ratio = ours_ms / theirs_ms
        print(f"{name:<17}{count:>11}{ours_ms:>12.1f} ms{theirs_ms:>18.1f} ms{ratio:>7.2f}x   {verdict}{same}")


if __name__ == "__main__":
    main()
