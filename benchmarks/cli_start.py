"""How long the ``fluxion`` command takes to answer when it runs no command: help and usage errors.

What it measures
    The wall time of a fresh process, from start to exit, of:

    * ``fluxion --help``, ``fluxion validate --help``;
    * three usage errors: ``fluxion validate`` (no SPEC), ``fluxion show m.json --dpeth 1`` (an
      unknown option, answered with the closest one) and ``fluxion render m.json -o m.gif`` (a
      suffix render cannot write: found after parsing, by ``fluxion.cli.usage``);

    beside two baselines: ``python -c pass`` (starting Python itself) and ``python -c "import
    torch"`` (what every invocation paid before the parser stopped importing torch), and, for
    scale, ``fluxion validate examples/mlp.jsonnet``, a command that does its work (torch, sympy,
    the spec registry, a build on ``meta``).

How it measures
    Each command runs ``--runs`` times as a new process (the installed ``fluxion`` console script,
    or ``python -c "from fluxion.cli import main; ..."`` when it is not installed), the commands
    taking turns so that a slow moment of the machine touches all of them alike; the figure is the
    median (the fastest run is shown too). Output is thrown away; every exit code is checked (0 for
    help, 2 for a usage error). Warm cache: one untimed round runs first.

Goal (issue 21)
    help and usage errors under 0.3 s, with torch imported only by a command that needs it.

Run ``python benchmarks/cli_start.py`` (``--quick`` for 3 runs each; ``--runs N``), from the
repository's root. Run it when nothing else is busy: a figure of ~50 ms moves with the machine's load.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.3
"""Seconds within which help and usage errors should answer."""


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    exit_code: int
    quick: bool
    """Whether it is held to the goal: help and usage errors."""


def fluxion_command() -> tuple[list[str], str]:
    """How to start the command: the console script beside this Python, or Python running ``main``."""
    script = Path(sys.executable).parent / "fluxion"
    if script.exists():
        return [str(script)], str(script)
    run_main = "import sys; from fluxion.cli import main; sys.argv[0] = 'fluxion'; sys.exit(main())"
    return [sys.executable, "-c", run_main], f'{sys.executable} -c "...main()"'


def cases() -> list[Case]:
    fluxion, _ = fluxion_command()
    return [
        Case("python -c pass", [sys.executable, "-c", "pass"], 0, quick=False),
        Case('python -c "import torch"', [sys.executable, "-c", "import torch"], 0, quick=False),
        Case("fluxion --help", [*fluxion, "--help"], 0, quick=True),
        Case("fluxion validate --help", [*fluxion, "validate", "--help"], 0, quick=True),
        Case("fluxion validate (no SPEC)", [*fluxion, "validate"], 2, quick=True),
        Case("fluxion show m.json --dpeth 1", [*fluxion, "show", "m.json", "--dpeth", "1"], 2, quick=True),
        Case("fluxion render m.json -o m.gif", [*fluxion, "render", "m.json", "-o", "m.gif"], 2, quick=True),
        Case("fluxion validate examples/mlp.jsonnet", [*fluxion, "validate", "examples/mlp.jsonnet"], 0, quick=False),
    ]


def timed(case: Case) -> float:
    """Seconds one fresh process of ``case`` takes, start to exit."""
    start = time.perf_counter()
    done = subprocess.run(case.argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != case.exit_code:
        error = done.stderr.decode(errors="replace").strip()
        raise SystemExit(f"{case.name}: exit code {done.returncode}, expected {case.exit_code}\n{error}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11, help="fresh processes per command (default 11)")
    parser.add_argument("--quick", action="store_true", help="3 runs per command")
    options = parser.parse_args()
    runs = 3 if options.quick else max(1, options.runs)

    all_cases = cases()
    for case in all_cases:  # warm the file cache; not timed
        timed(case)
    times: dict[str, list[float]] = {case.name: [] for case in all_cases}
    for _ in range(runs):
        for case in all_cases:
            times[case.name].append(timed(case))

    medians = {name: statistics.median(values) for name, values in times.items()}
    python = medians["python -c pass"]
    torch_import = medians['python -c "import torch"']
    _, how = fluxion_command()
    print(f"fluxion started as: {how}")
    print(f"median of {runs} fresh processes each (fastest in brackets); goal for help and usage errors: < {GOAL} s\n")
    width = max(len(name) for name in times)
    print(f"{'command':<{width}}  {'median':>8}  {'fastest':>9}  {'/ python':>8}  {'/ import torch':>14}  goal")
    for case in all_cases:
        median = medians[case.name]
        goal = ("met" if median < GOAL else "MISSED") if case.quick else ""
        print(
            f"{case.name:<{width}}  {median * 1000:6.0f}ms  ({min(times[case.name]) * 1000:5.0f}ms)"
            f"  {median / python:7.1f}x  {median / torch_import:13.2f}x  {goal}"
        )
    slowest = max(medians[case.name] for case in all_cases if case.quick)
    print(
        f"\nslowest help or usage error: {slowest * 1000:.0f} ms, {slowest / torch_import:.2f}x of importing torch "
        f"({torch_import * 1000:.0f} ms), {slowest - python:.3f} s above starting Python"
    )


if __name__ == "__main__":
    main()
