"""An elapsed-time line on a terminal, for work whose length is not known in advance.

``fluxion.progress.Progress`` counts bytes towards a known total; Graphviz's ``dot`` says nothing
about how far it is, so rendering shows how long it has been running instead. Like ``Progress``,
it draws only when its stream is a terminal, and only once the work has taken ``delay`` seconds.

>>> import io
>>> stream = io.StringIO()
>>> with Ticker("rendering model.svg", stream=stream, enabled=True, delay=0) as ticker:
...     ticker.tick()
>>> stream.getvalue().startswith("\\rrendering model.svg")
True
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Ticker:
    """Redraws ``label … 3.2 s`` on one line at most ten times a second while work goes on.

    ``enabled=None`` draws when ``stream`` (stderr by default) is a terminal; the line is cleared
    when the ``with`` block ends.

    >>> import io
    >>> with Ticker("working", stream=io.StringIO()) as ticker:
    ...     ticker.tick()
    >>> ticker.drawn
    False
    """

    def __init__(
        self, label: str, *, stream: TextIO | None = None, enabled: bool | None = None, delay: float = 0.5
    ) -> None:
        self.label = label
        self.drawn = False
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._delay = delay
        self._started = time.perf_counter()
        self._last_draw = -1.0

    def tick(self) -> None:
        """Redraw the line if it is enabled, the delay has passed and the last draw is 0.1 s old.

        >>> import io
        >>> ticker = Ticker("x", stream=io.StringIO(), enabled=True, delay=3600)
        >>> ticker.tick()
        >>> ticker.drawn
        False
        """
        now = time.perf_counter()
        elapsed = now - self._started
        if not self._enabled or elapsed < self._delay or now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self.drawn = True
        self._stream.write(f"\r{self.label} … {elapsed:.1f} s")
        self._stream.flush()

    def __enter__(self) -> Ticker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.drawn:
            elapsed = time.perf_counter() - self._started
            self._stream.write(f"\r{self.label} … {elapsed:.1f} s\n")
            self._stream.flush()
