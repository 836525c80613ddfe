"""Bounds on evaluating a jsonnet spec: time, memory and stack, enforced in a child process.

jsonnet is a programming language: a spec from a stranger can loop for ever (``std.range(0, 1e9)``),
fill the memory (``std.repeat('x', 200000000)``) or overflow the stack (``std.parseJson`` of
50,000 nested brackets) and so kill the process that evaluates it. With :class:`Limits` (the
default of ``fluxion.spec.load``, ``loads`` and ``read``, and of the ``fluxion`` command), jsonnet
runs in a small child process (Python with ``_jsonnet`` only, no torch) with its address space
and CPU time bounded by ``setrlimit``, jsonnet's own ``max_stack``, and a wall-clock timeout in
this process. Whatever kills the child becomes a ``SpecError`` that names the limit and how to
raise it. Plain JSON runs no code and is parsed in this process.

>>> from fluxion.spec.sandbox import Job
>>> evaluate(Job("<text>", "std.range(1, 3)"), Limits())
'[\\n   1,\\n   2,\\n   3\\n]\\n'
>>> evaluate(Job("<text>", "std.range(0, 1e9)"), Limits(time=1, memory=200 * 2**20))
Traceback (most recent call last):
fluxion.errors.SpecError: <text>: evaluating the spec needs more than the memory limit (200.0 MiB)...
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from fluxion.errors import SpecError
from fluxion.spec import sandbox

_TRUSTED = "if the spec is trusted"


@dataclass(frozen=True)
class Limits:
    """How much reading and building a spec may take before it is stopped with a ``SpecError``.

    ``time`` is seconds of wall-clock time (and of CPU time), ``memory`` bytes of address space of
    the evaluating process, ``stack`` jsonnet's bound on nested calls (its ``max_stack``); ``None``
    leaves time or memory unbounded. The spec's own jsonnet is evaluated within ``time``, and so
    are all the files its ``"spec"`` nodes name, together (``import``ed files count towards the
    evaluation that imports them). ``nodes`` bounds the nodes one build makes, counting a file
    each time a node names it, so a few small files that name each other many times cannot make
    the build grow without end. Pass ``limits=None`` to evaluate in this process, unbounded, as
    fast as possible (for files you trust): the child adds about 25 ms per evaluation.

    >>> Limits().time, Limits().memory == 2**30, Limits().stack, Limits().nodes
    (10.0, True, 500, 20000)
    >>> Limits(time=0)
    Traceback (most recent call last):
    fluxion.errors.SpecError: Limits(time=0): time is a number of seconds above 0 (at most 1e6), or None
    """

    time: float | None = 10.0
    memory: int | None = 2**30
    stack: int = sandbox.DEFAULT_MAX_STACK
    nodes: int | None = 20_000

    def __post_init__(self) -> None:
        checks = (
            ("time", self.time, float, _LONGEST, "a number of seconds above 0 (at most 1e6), or None"),
            ("memory", self.memory, int, 2**63 - 1, "a number of bytes above 0, or None"),
            ("stack", self.stack, int, 2**31 - 1, "a number of nested calls above 0 (below 2**31)"),
            ("nodes", self.nodes, int, 2**63 - 1, "a number of nodes above 0, or None"),
        )
        for name, value, kind, largest, what in checks:
            if value is None and name != "stack":
                continue
            if not _within(value, largest, whole=kind is int):
                raise SpecError(f"Limits({name}={value!r}): {name} is {what}")


_LONGEST = 1e6


def _within(value: object, largest: float, *, whole: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
        return False
    return 0 < value <= largest


DEFAULT_LIMITS = Limits()
"""The limits specs are evaluated under unless told otherwise."""


def evaluate(job: sandbox.Job, limits: Limits | None) -> str:
    """The JSON text ``job`` evaluates to: in a bounded child process, or here when ``limits`` is None.

    jsonnet's own errors are a ``sandbox.JsonnetError``, as when evaluating here; a limit hit, or a
    child that dies for any other reason, is a ``SpecError`` at ``job.name``.

    >>> from fluxion.spec.sandbox import Job
    >>> evaluate(Job("<text>", "{n: 1}"), None)
    '{\\n   "n": 1\\n}\\n'
    """
    if limits is None:
        return sandbox.evaluate(job)
    import _jsonnet

    cpu = 0 if limits.time is None else math.ceil(limits.time) + 1
    command = [
        sys.executable,
        "-I",  # no PYTHON* variables, no user site, not the script's folder on the path
        "-S",  # no site: a quicker start; the child adds jsonnet's folder itself
        os.fspath(sandbox.__file__),
        os.path.dirname(os.path.abspath(_jsonnet.__file__ or "")),
        str(limits.memory or 0),
        str(cpu),
        str(limits.stack),
    ]
    try:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True
        )
    except OSError as error:
        raise SpecError(
            f"cannot start the process that evaluates jsonnet ({sys.executable}): {error.strerror or error}; "
            "limits=None evaluates in this process, without limits",
            file=job.name,
        ) from None
    try:
        out, err = process.communicate(job.to_bytes(), timeout=limits.time)
    except subprocess.TimeoutExpired:
        raise _limit_error(job.name, "time", limits) from None
    finally:
        if process.poll() is None:
            process.kill()
            with contextlib.suppress(Exception):
                process.communicate()
    return _answer(job.name, process.returncode, out, err, limits)


def _answer(name: str, code: int, out: bytes, err: bytes, limits: Limits) -> str:
    """The JSON text from the child's answer, or the error its answer or its death says."""
    status, _, rest = out.partition(b"\n")
    if code == 0 and status:
        text = rest.decode("utf-8", errors="replace")
        if status == sandbox.STATUS_VALUE.encode():
            return text
        if status == sandbox.STATUS_MEMORY.encode():
            raise _limit_error(name, "memory", limits)
        raise sandbox.JsonnetError(status.decode(errors="replace"), text)
    stderr = err.decode("utf-8", errors="replace")
    if code == -signal.SIGXCPU:
        raise _limit_error(name, "time", limits)
    if code in (-signal.SIGSEGV, -signal.SIGBUS):
        raise SpecError(
            "evaluating the spec overflowed jsonnet's stack: the spec nests too deeply "
            "(std.parseJson of deeply nested text does this)",
            file=name,
        )
    lowered = stderr.lower()
    # "memory allocation error", MemoryError, a library that cannot be mapped in (a limit too small
    # to start at all), the OOM killer
    if "memory" in lowered or "failed to map segment" in lowered or code == -signal.SIGKILL:
        raise _limit_error(name, "memory", limits)
    how = (
        f"signal {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals() else f"exit code {code}"
    )
    last = stderr.strip().splitlines()[-1:] or ["no message"]
    raise SpecError(f"the process that evaluates jsonnet failed ({how}): {last[0]}", file=name)


def _limit_error(name: str, which: str, limits: Limits) -> SpecError:
    if which == "time":
        return SpecError(
            f"evaluating the spec takes longer than the time limit ({limits.time:g} s); {_TRUSTED}, "
            "raise it (Limits(time=...) in Python, --time-limit on the command line) or turn limits off "
            "(limits=None, --no-limits)",
            file=name,
        )
    if limits.memory is None:
        return SpecError(
            "evaluating the spec ran out of the memory the system gives it (no memory limit was set)", file=name
        )
    return SpecError(
        f"evaluating the spec needs more than the memory limit ({bytes_text(limits.memory)}); {_TRUSTED}, "
        "raise it (Limits(memory=...) in Python, --memory-limit on the command line) or turn limits off "
        "(limits=None, --no-limits)",
        file=name,
    )


def stack_hint(limits: Limits | None) -> str:
    """What to add to jsonnet's "max stack frames exceeded": the limit, and how to raise it.

    >>> stack_hint(Limits(stack=800))
    ' (the stack limit is 800 nested calls; if the spec is trusted, raise it: Limits(stack=...), --stack-limit)'
    """
    stack = sandbox.DEFAULT_MAX_STACK if limits is None else limits.stack
    return f" (the stack limit is {stack} nested calls; {_TRUSTED}, raise it: Limits(stack=...), --stack-limit)"


def bytes_text(size: int) -> str:
    """A size in bytes with a binary unit, for messages.

    >>> bytes_text(2**30), bytes_text(300 * 2**20), bytes_text(12)
    ('1.0 GiB', '300.0 MiB', '12 B')
    """
    for power, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if size >= 2**power:
            return f"{size / 2**power:.1f} {unit}"
    return f"{size} B"
