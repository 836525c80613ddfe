"""Two ranks for the multi-process tests: worker processes that stay up and run test steps on call.

Starting processes and a gloo group costs seconds, so one pair of workers (spawned, as torchrun's
processes are fresh interpreters) serves every test of the session. ``Cluster.run(step, *args)``
calls the module-level function ``step(*args)`` on every rank at once and returns each rank's
result, in rank order; a step that raises on any rank fails the test with that rank's traceback.
A step that hangs (a collective one rank never joins) fails after ``TIMEOUT`` seconds and the
workers are replaced.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import queue
import tempfile
import traceback
from collections.abc import Callable
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from typing import Any

WORLD_SIZE = 2
TIMEOUT = 180.0


def outcome(action: Callable[[], object]) -> tuple[str, str]:
    """What ``action`` raised (class name and message), or ``("ok", "")``: what a step returns
    about an error, so that the test compares both ranks' outcomes."""
    try:
        action()
    except Exception as error:
        return type(error).__name__, str(error)
    return "ok", ""


class StepError(AssertionError):
    """A step raised on some rank; the message holds every failing rank's traceback."""


def _serve(rank: int, store: str, tasks: Queue[Any], results: Queue[Any]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD_SIZE)
    while True:
        task = tasks.get()
        if task is None:
            break
        module_name, name, args = task
        try:
            step = getattr(importlib.import_module(module_name), name)
            results.put(("ok", step(*args)))
        except BaseException as error:  # reported to the test, which fails
            results.put(("error", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
    dist.barrier()
    dist.destroy_process_group()


class Cluster:
    """A pair of gloo ranks that run test steps (see the module docstring)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._folder = tempfile.mkdtemp(prefix="fluxion-cluster-")
        store = os.path.join(self._folder, "store")
        self._tasks: list[Queue[Any]] = [context.Queue() for _ in range(WORLD_SIZE)]
        self._results: list[Queue[Any]] = [context.Queue() for _ in range(WORLD_SIZE)]
        self._workers: list[SpawnProcess] = [
            context.Process(target=_serve, args=(rank, store, self._tasks[rank], self._results[rank]), daemon=True)
            for rank in range(WORLD_SIZE)
        ]
        for worker in self._workers:
            worker.start()

    def run(self, step: Callable[..., Any], *args: Any) -> list[Any]:
        """Call ``step(*args)`` on every rank; each rank's return value, in rank order."""
        for tasks in self._tasks:
            tasks.put((step.__module__, step.__qualname__, args))
        outcomes: list[tuple[str, Any]] = []
        for rank, results in enumerate(self._results):
            outcomes.append(self._outcome(rank, results, step.__qualname__))
        failures = [f"rank {rank}: {value}" for rank, (status, value) in enumerate(outcomes) if status == "error"]
        if failures:
            raise StepError("\n".join(failures))
        return [value for _, value in outcomes]

    def _outcome(self, rank: int, results: Queue[Any], name: str) -> tuple[str, Any]:
        """Rank ``rank``'s result, polling so that a dead worker fails the test at once."""
        waited = 0.0
        while waited < TIMEOUT:
            try:
                return results.get(timeout=1.0)
            except queue.Empty:
                waited += 1.0
                if not self._workers[rank].is_alive():
                    self.close(force=True)
                    raise StepError(f"rank {rank} died while running {name}") from None
        self.close(force=True)
        raise StepError(f"rank {rank} did not finish {name} within {TIMEOUT} s")

    @property
    def alive(self) -> bool:
        return all(worker.is_alive() for worker in self._workers)

    def close(self, *, force: bool = False) -> None:
        """Stop the workers (at once with ``force``: a hung collective never returns)."""
        for worker, tasks in zip(self._workers, self._tasks, strict=True):
            if worker.is_alive() and not force:
                tasks.put(None)
        for worker in self._workers:
            worker.join(timeout=None if not force else 1)
            if worker.is_alive():
                worker.kill()
                worker.join()
