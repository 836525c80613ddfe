"""A terminal progress bar for long work (loading large checkpoints, rendering big diagrams).

It draws only when its stream is a terminal, so logs and pipes stay clean.

>>> import io
>>> with Progress(total=100, label="loading", stream=io.StringIO()) as progress:
...     progress.advance(60)
...     progress.advance(40)
>>> progress.done
100
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

_MIB = 2**20


class Progress:
    """Counts bytes done out of ``total`` and redraws one line, at most ten times a second.

    Units are bytes, printed in MiB with a throughput. ``enabled=None`` draws when ``stream`` is a
    terminal; ``True``/``False`` force it.

    >>> import io
    >>> stream = io.StringIO()
    >>> with Progress(total=2 * 2**20, label="weights", stream=stream, enabled=True) as progress:
    ...     progress.advance(2**20)
    ...     progress.advance(2**20)
    >>> stream.getvalue().rstrip().rsplit("\\r", 1)[-1].startswith("weights [")
    True
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._started = time.perf_counter()
        self._last_draw = 0.0

    def advance(self, amount: int) -> None:
        """Record ``amount`` more units of work done, redrawing if enough time has passed.

        >>> import io
        >>> progress = Progress(total=10, label="x", stream=io.StringIO())
        >>> progress.advance(3)
        >>> progress.done
        3
        """
        self.done += amount
        now = time.perf_counter()
        if self._enabled and now - self._last_draw >= 0.1:
            self._last_draw = now
            self._draw(now)

    def _draw(self, now: float, end: str = "") -> None:
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * 30)
        bar = "#" * filled + "." * (30 - filled)
        rate = self.done / _MIB / max(now - self._started, 1e-9)
        amount = f"{self.done / _MIB:.0f}/{self.total / _MIB:.0f} MiB {rate:.0f} MiB/s"
        self._stream.write(f"\r{self.label} [{bar}] {fraction:4.0%} {amount}{end}")
        self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._enabled:
            self._draw(time.perf_counter(), end="\n")
