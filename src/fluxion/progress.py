"""Progress on a terminal, for long work: one line, redrawn in place, at most ten times a second.

``Progress`` is a bar for work of known size (the bytes of a checkpoint being loaded);
``Ticker`` shows the time elapsed for work that says nothing of how far it is (Graphviz's ``dot``
rendering a big diagram). Both draw only when their stream (stderr by default) is a terminal,
so logs and pipes stay clean; ``enabled=True``/``False`` forces it either way.

>>> import io
>>> with Progress(total=100, label="loading", stream=io.StringIO()) as progress:
...     progress.advance(60)
...     progress.advance(40)
>>> progress.done
100
>>> with Ticker("rendering", stream=io.StringIO()) as ticker:
...     ticker.tick()
>>> ticker.drawn
False
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self, TextIO

_MIB = 2**20
_REDRAW_EVERY = 0.1  # seconds: a line redrawn faster only flickers


class _Line:
    """One line on ``stream``, redrawn in place; ``enabled=None`` draws when it is a terminal."""

    def __init__(self, label: str, stream: TextIO | None, enabled: bool | None) -> None:
        self.label = label
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._started = time.perf_counter()
        self._last_draw: float | None = None

    def _due(self, now: float) -> bool:
        """Whether the line may be redrawn now (enabled, and not drawn in the last tenth of a second)."""
        return self._enabled and (self._last_draw is None or now - self._last_draw >= _REDRAW_EVERY)

    def _write(self, text: str, now: float, end: str = "") -> None:
        self._last_draw = now
        self._stream.write(f"\r{text}{end}")
        self._stream.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._close(time.perf_counter())

    def _close(self, now: float) -> None:
        raise NotImplementedError


class Progress(_Line):
    """Counts bytes done out of ``total`` and redraws a bar with the amount and the throughput.

    Units are bytes, printed in MiB. The last line is drawn when the ``with`` block ends.

    >>> import io
    >>> stream = io.StringIO()
    >>> with Progress(total=2 * 2**20, label="weights", stream=stream, enabled=True) as progress:
    ...     progress.advance(2**20)
    ...     progress.advance(2**20)
    >>> stream.getvalue().rstrip().rsplit("\\r", 1)[-1].startswith("weights [")
    True
    """

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        super().__init__(label, stream, enabled)
        self.total = max(total, 0)
        self.done = 0

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
        if self._due(now):
            self._write(self._text(now), now)

    def _text(self, now: float) -> str:
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * 30)
        bar = "#" * filled + "." * (30 - filled)
        rate = self.done / _MIB / max(now - self._started, 1e-9)
        amount = f"{self.done / _MIB:.0f}/{self.total / _MIB:.0f} MiB {rate:.0f} MiB/s"
        return f"{self.label} [{bar}] {fraction:4.0%} {amount}"

    def _close(self, now: float) -> None:
        if self._enabled:
            self._write(self._text(now), now, end="\n")


class Ticker(_Line):
    """Redraws ``label … 3.2 s`` while work goes on, once the work has taken ``delay`` seconds.

    Quick work draws nothing at all; once drawn, the line is ended with the final time when the
    ``with`` block ends.

    >>> import io
    >>> stream = io.StringIO()
    >>> with Ticker("rendering model.svg", stream=stream, enabled=True, delay=0) as ticker:
    ...     ticker.tick()
    >>> ticker.drawn, stream.getvalue().startswith("\\rrendering model.svg … ")
    (True, True)
    """

    def __init__(
        self, label: str, *, stream: TextIO | None = None, enabled: bool | None = None, delay: float = 0.5
    ) -> None:
        super().__init__(label, stream, enabled)
        self._delay = delay

    @property
    def drawn(self) -> bool:
        """Whether the line has been drawn (the work has taken ``delay`` seconds and it is enabled).

        >>> import io
        >>> ticker = Ticker("x", stream=io.StringIO(), enabled=True, delay=3600)
        >>> ticker.tick()
        >>> ticker.drawn
        False
        """
        return self._last_draw is not None

    def tick(self) -> None:
        """Redraw the line if it is enabled, the delay has passed and the last draw is 0.1 s old.

        >>> import io
        >>> stream = io.StringIO()
        >>> Ticker("x", stream=stream, enabled=False, delay=0).tick()
        >>> stream.getvalue()
        ''
        """
        now = time.perf_counter()
        if now - self._started >= self._delay and self._due(now):
            self._write(self._text(now), now)

    def _text(self, now: float) -> str:
        return f"{self.label} … {now - self._started:.1f} s"

    def _close(self, now: float) -> None:
        if self.drawn:
            self._write(self._text(now), now, end="\n")
