"""Cost of tree surgery on fluxion Chains, against Refiners' Chain.

What it measures
    The time of one operation of each kind:

    * ``insert``          -- ``chain.insert(middle, Linear)``;
    * ``pop``             -- ``chain.pop(middle)``;
    * ``replace``         -- ``chain.replace(middle_child, Linear)``: the middle child is a Linear, so
      no name changes (the replace back is timed too);
    * ``replace (ReLU)``  -- the same for the ReLU next to it: replacing it by a Linear (and back)
      renames the automatic names of the Linears after it;
    * ``replace (root)``  -- the same replace asked of the root of the deep tree, which must first
      find the parent (Refiners: ``root.ensure_find_parent(old).replace(old, new)``);
    * ``find_parent``     -- ``root.find_parent(child)`` of a middle child (the deepest leaf in the
      deep tree);
    * ``structural_copy`` -- ``root.structural_copy()`` of the whole tree;
    * ``slice``           -- ``chain[a:b]`` of the middle half of the Chain's children;

    on flat Chains of 100, 1,000 and 10,000 children (Linear(8, 8) alternating with ReLU, so that an
    insert or pop in the middle renames every automatic name after it: ``Linear_501`` becomes
    ``Linear_502``... the worst case for automatic naming), and on a tree 50 levels deep whose every
    level holds 100 such children plus, except the last, the next level's Chain. In the deep tree
    insert, pop, replace and slice act on the deepest Chain, which has the same 100 children as the
    flat Chain of 100: only the size of the tree around it differs.

How it measures
    One thread, garbage collection paused while timing (and run, untimed, between repetitions).
    The structure is the same at every repetition: an insert is followed by the pop of the same
    module, a replace by the reverse replace, each timed separately. Each repetition runs the
    fluxion and the Refiners operation in alternating order; the figure is the median. Operations
    slow enough to blow the time budget are run fewer times; one whose single run takes longer
    than ``--max-single`` seconds is run once, and one predicted (from the smaller sizes) to take
    longer than ``--skip-above`` seconds is skipped; the output says which.

Goals (docs/architecture.md, "The promises every part keeps": surgery on a large Chain costs about what the change
touches, not the whole tree)
    * at least 10x faster than Refiners at 1,000 children, for every operation;
    * per-operation cost that does not grow with the size of the whole tree: the 50-deep tree
      (about 5,000 nodes) costs about what the flat Chain of 100 costs (<= 2x) for insert, pop,
      replace and slice; find_parent may grow with the depth (it walks up the parents) but not
      with the number of nodes; from 1,000 to 10,000 children, find_parent and a same-class
      replace (which renames nothing) stay flat (<= 1.5x), insert, pop and a replace that renames
      at most follow the number of names they change (<= 15x);
    * structural_copy (and slice) linear in the number of nodes: 1,000 -> 10,000 grows <= 15x.

Run ``python benchmarks/surgery.py`` (``--quick`` for a short run, ``--help`` for options).
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch

import fluxion.layers as fl

try:
    import refiners.fluxion.layers as rl
except ImportError:  # Refiners is an optional baseline
    rl = None

FLAT_SIZES = (100, 1000, 10000)
DEPTH = 50
WIDTH = 100
FIND_PARENT_CALLS = 20  # find_parent is sub-microsecond: time it in small batches

OPERATIONS = (
    "insert",
    "pop",
    "replace",
    "replace (ReLU)",
    "replace (root)",
    "find_parent",
    "structural_copy",
    "slice",
)
# Operations whose cost may follow the number of nodes or of renamed children (1,000 -> 10,000).
LINEAR_OPS = {"insert": 15.0, "pop": 15.0, "replace (ReLU)": 15.0, "structural_copy": 15.0, "slice": 15.0}
CONSTANT_OPS = {"replace": 1.5, "find_parent": 1.5}
DEEP_VS_FLAT_GOAL = 2.0


def leaves(lib: ModuleType, count: int) -> list[Any]:
    return [lib.Linear(8, 8) if i % 2 == 0 else lib.ReLU() for i in range(count)]


@dataclass
class Case:
    """One tree of one library, and the Chain inside it that the operations act on."""

    lib: str
    root: Any
    target: Any
    spare: Any  # the module that is inserted / swapped in
    linear_type: type

    @property
    def middle(self) -> int:
        return len(self.target) // 2


def build(lib_name: str, config: str) -> Case:
    lib = fl if lib_name == "fluxion" else rl
    assert lib is not None
    if config.startswith("flat"):
        root = lib.Chain(*leaves(lib, int(config.split()[1])))
        return Case(lib_name, root, root, lib.Linear(8, 8), lib.Linear)
    node = lib.Chain(*leaves(lib, WIDTH))
    deepest = node
    for _ in range(DEPTH - 1):
        node = lib.Chain(*leaves(lib, WIDTH), node)
    return Case(lib_name, node, deepest, lib.Linear(8, 8), lib.Linear)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter_ns()
    result = fn()
    return time.perf_counter_ns() - start, result


def run_step(case: Case, operation: str) -> list[float]:
    """Run one repetition of ``operation``, leaving the tree as it was; the timings in ns."""
    root, target, spare, middle = case.root, case.target, case.spare, case.middle
    if operation == "insert":
        elapsed, _ = timed(lambda: target.insert(middle, spare))
        popped = target.pop(middle)
        assert popped is spare
        return [elapsed]
    if operation == "pop":
        target.insert(middle, spare)
        elapsed, popped = timed(lambda: target.pop(middle))
        assert popped is spare
        return [elapsed]
    if operation in ("replace", "replace (ReLU)"):
        # The middle child is a Linear: replacing it by a Linear renames nothing. Its neighbour is a
        # ReLU: replacing it by a Linear (and back) renames the automatic names after it.
        old = target[middle if operation == "replace" else middle + 1]
        assert isinstance(old, case.linear_type) == (operation == "replace")
        forward = timed(lambda: target.replace(old, spare))[0]
        back = timed(lambda: target.replace(spare, old))[0]
        return [forward, back]
    if operation == "replace (root)":
        old = target[middle]
        if case.lib == "fluxion":
            forward = lambda: root.replace(old, spare)  # noqa: E731
            back = lambda: root.replace(spare, old)  # noqa: E731
        else:
            forward = lambda: root.ensure_find_parent(old).replace(old, spare)  # noqa: E731
            back = lambda: root.ensure_find_parent(spare).replace(spare, old)  # noqa: E731
        return [timed(forward)[0], timed(back)[0]]
    if operation == "find_parent":
        child = target[middle]

        def batch() -> Any:
            for _ in range(FIND_PARENT_CALLS):
                found = root.find_parent(child)
            return found

        elapsed, found = timed(batch)
        assert found is target
        return [elapsed / FIND_PARENT_CALLS]
    if operation == "structural_copy":
        elapsed, copy = timed(root.structural_copy)
        assert len(copy) == len(root)
        del copy
        return [elapsed]
    if operation == "slice":
        start = len(target) // 4
        stop = start + len(target) // 2
        elapsed, part = timed(lambda: target[start:stop])
        assert len(part) == stop - start
        del part
        return [elapsed]
    raise ValueError(operation)


@dataclass
class Result:
    ns: float | None = None  # median time per operation
    runs: int = 0
    note: str = ""  # why a figure is capped or missing


@dataclass
class Settings:
    budget_s: float  # time to spend per (configuration, operation, library)
    min_runs: int
    max_runs: int
    max_single_s: float
    skip_above_s: float
    notes: list[str] = field(default_factory=list)


def predict(history: dict[int, float], size: int) -> float | None:
    """Extrapolate the time of an operation at ``size`` children from the two largest sizes done."""
    done = sorted(history)
    if len(done) < 2:
        return None
    (n1, t1), (n2, t2) = (done[-2], history[done[-2]]), (done[-1], history[done[-1]])
    exponent = max(1.0, math.log(t2 / t1) / math.log(n2 / n1))
    return t2 * (size / n2) ** exponent


def measure(
    config: str, operation: str, cases: dict[str, Case], settings: Settings, history: dict[str, dict[int, float]]
) -> dict[str, Result]:
    """Median time of ``operation`` per library, the libraries' repetitions interleaved."""
    results = {name: Result() for name in cases}
    runs: dict[str, int] = {}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    size = int(config.split()[1]) if config.startswith("flat") else None
    gc.collect()
    gc.disable()
    try:
        for name, case in cases.items():
            if size is not None:
                guess = predict(history.get(name, {}), size)
                if guess is not None and guess > settings.skip_above_s * 1e9:
                    results[name].note = f"skipped: predicted {guess / 1e9:.0f} s for one run"
                    continue
            first = run_step(case, operation)  # warm-up; also the estimate
            gc.collect()
            single = sum(first) / len(first)
            if single > settings.max_single_s * 1e9:
                samples[name] = first
                runs[name] = 1
                results[name].note = f"1 run only: one run took {single / 1e9:.1f} s"
                continue
            wanted = int(settings.budget_s * 1e9 / max(sum(first), 1.0))
            runs[name] = min(settings.max_runs, max(settings.min_runs, wanted))
        names = list(runs)
        for rep in range(max((runs[n] for n in names if not results[n].note), default=0)):
            order = names if rep % 2 == 0 else names[::-1]
            for name in order:
                if results[name].note or rep >= runs[name]:
                    continue
                samples[name].extend(run_step(cases[name], operation))
                gc.collect(0)
    finally:
        gc.enable()
        gc.collect()
    for name in runs:
        results[name].ns = statistics.median(samples[name])
        results[name].runs = runs[name]
        if size is not None:
            history.setdefault(name, {})[size] = results[name].ns
    return results


def fmt_time(ns: float | None) -> str:
    if ns is None:
        return "-"
    if ns >= 1e9:
        return f"{ns / 1e9:.2f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} us"
    return f"{ns:.0f} ns"


def label(config: str, operation: str) -> str:
    if operation == "find_parent" and config.startswith("deep"):
        return "find_parent (deepest leaf)"
    if operation in ("insert", "pop", "replace", "replace (ReLU)", "slice") and config.startswith("deep"):
        return f"{operation}, deepest Chain"
    return operation


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short budgets, for a smoke run")
    parser.add_argument("--budget", type=float, default=None, help="seconds per operation and library (default 1.0)")
    parser.add_argument(
        "--max-single",
        type=float,
        default=None,
        help="run an operation once only when one run takes longer than this (s, default 3)",
    )
    parser.add_argument(
        "--skip-above",
        type=float,
        default=None,
        help="skip an operation predicted to take longer than this for one run (s, default 60)",
    )
    parser.add_argument("--no-refiners", action="store_true", help="time fluxion only")
    args = parser.parse_args(argv)
    settings = Settings(
        budget_s=args.budget or (0.15 if args.quick else 1.0),
        min_runs=3 if args.quick else 7,
        max_runs=100 if args.quick else 400,
        max_single_s=args.max_single or (1.0 if args.quick else 3.0),
        skip_above_s=args.skip_above or (5.0 if args.quick else 60.0),
    )
    torch.set_num_threads(1)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    libraries = ["fluxion"]
    if rl is None:
        print("refiners is not installed (import refiners failed): its column is skipped")
    elif not args.no_refiners:
        libraries.append("refiners")

    configs = [f"flat {n}" for n in FLAT_SIZES] + [f"deep {DEPTH}"]
    print(
        f"surgery: flat Chains of {', '.join(map(str, FLAT_SIZES))} children (Linear(8, 8) / ReLU "
        f"alternating) and a tree {DEPTH} deep x {WIDTH} children per level; torch {torch.__version__}, "
        "1 thread, median per operation"
    )
    table: dict[tuple[str, str], dict[str, Result]] = {}
    history: dict[str, dict[str, dict[int, float]]] = {}
    nodes: dict[str, int] = {}
    for config in configs:
        cases = {name: build(name, config) for name in libraries}
        nodes[config] = sum(1 for _ in cases["fluxion"].root.modules())
        for operation in OPERATIONS:
            if operation == "replace (root)" and not config.startswith("deep"):
                continue
            table[config, operation] = measure(config, operation, cases, settings, history.setdefault(operation, {}))
        del cases
        gc.collect()

    # -- fluxion against Refiners ----------------------------------------------------------------
    print()
    header = f"{'tree':<10} {'operation':<30} {'fluxion':>10} {'refiners':>10} {'speedup':>8} {'goal (at 1000)':>15}"
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    misses: list[str] = []
    for (config, operation), results in table.items():
        flx = results["fluxion"]
        ref = results.get("refiners")
        speedup = ""
        goal = ""
        ref_text = "-" if ref is None else fmt_time(ref.ns)
        if ref is not None and ref.note:
            mark = "*" * (len(notes) + 1)
            notes.append(f"{mark} refiners, {config}, {operation}: {ref.note}")
            ref_text += mark
        if ref is not None and ref.ns is not None and flx.ns:
            ratio = ref.ns / flx.ns
            speedup = f"{ratio:.1f}x"
            if config == "flat 1000":
                ok = ratio >= 10
                goal = ">= 10x " + ("ok" if ok else "MISS")
                if not ok:
                    misses.append(f"{operation} {ratio:.1f}x")
        elif ref is not None and ref.ns is None and config == "flat 1000":
            goal = "n/a"
        print(
            f"{config:<10} {label(config, operation):<30} {fmt_time(flx.ns):>10} {ref_text:>10} {speedup:>8} {goal:>15}"
        )
    for note in notes:
        print(note)
    if "refiners" in libraries:
        print(
            "speedup = refiners / fluxion. "
            + (
                "goal missed at 1000 children: " + ", ".join(misses)
                if misses
                else "goal met at 1000 children for every operation"
            )
        )
        print(
            "note: Refiners' structural_copy shares its leaf objects; fluxion's gives each leaf a new "
            "module object (sharing the tensors), so that every node has exactly one parent"
        )

    # -- fluxion scaling -------------------------------------------------------------------------
    print()
    print(
        f"fluxion scaling: growth from 1000 to 10000 children, and the {DEPTH}-deep tree "
        f"({nodes[configs[-1]]} nodes) against the flat Chain of 100 ({nodes['flat 100']} nodes)"
    )
    header = (
        f"{'operation':<16} {'flat 100':>9} {'flat 1000':>10} {'flat 10000':>11} {'growth':>7} "
        f"{'goal':>7} {'':>4} {'deep ' + str(DEPTH):>9} {'deep/100':>9} {'goal':>7} {'':>4}"
    )
    print(header)
    print("-" * len(header))

    def flx(config: str, operation: str) -> float | None:
        result = table.get((config, operation))
        return None if result is None else result["fluxion"].ns

    for operation in OPERATIONS:
        if operation == "replace (root)":
            continue
        f100, f1k, f10k, deep = (flx(c, operation) for c in configs)
        if not (f100 and f1k and f10k and deep):
            print(f"{operation:<16} (not measured)")
            continue
        growth = f10k / f1k
        limit = LINEAR_OPS.get(operation) or CONSTANT_OPS[operation]
        grow_verdict = "ok" if growth <= limit else "MISS"
        if operation == "structural_copy":
            deep_goal, deep_verdict = "linear", ""
        elif operation == "find_parent":
            deep_goal, deep_verdict = "depth", ""
        else:
            deep_goal = f"<= {DEEP_VS_FLAT_GOAL:.0f}x"
            deep_verdict = "ok" if deep / f100 <= DEEP_VS_FLAT_GOAL else "MISS"
        print(
            f"{operation:<16} {fmt_time(f100):>9} {fmt_time(f1k):>10} {fmt_time(f10k):>11} "
            f"{growth:>6.1f}x {'<= ' + format(limit, 'g') + 'x':>7} {grow_verdict:>4} {fmt_time(deep):>9} "
            f"{deep / f100:>8.1f}x {deep_goal:>7} {deep_verdict:>4}"
        )
    per_node = {c: (flx(c, "structural_copy") or 0.0) / nodes[c] for c in configs}
    print(
        "structural_copy per node: " + ", ".join(f"{c} {fmt_time(t)} ({nodes[c]} nodes)" for c, t in per_node.items())
    )
    deep_root = flx(configs[-1], "replace (root)")
    deep_direct = flx(configs[-1], "replace")
    if deep_root and deep_direct:
        print(
            f"replace asked of the root of the deep tree: {fmt_time(deep_root)} "
            f"({deep_root / deep_direct:.1f}x the replace asked of the deepest Chain; "
            f"the difference is finding the parent {DEPTH} levels down)"
        )
    print(
        "growth goals: find_parent and replace (a same-class replace renames nothing) flat, "
        "insert/pop at most the renamed children, structural_copy/slice linear; "
        "deep goals: 'depth' = may follow the depth, 'linear' = follows the node count"
    )


if __name__ == "__main__":
    main()
