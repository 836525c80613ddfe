"""Holding Ctrl-C back while a change to a model is committed, so it lands whole or not at all.

A load or a merge checks everything it can before it writes; the writes themselves then run to
the end. An interrupt (SIGINT) that arrives meanwhile is kept and delivered as soon as the block
ends, to whatever handler was in place (Python's raises ``KeyboardInterrupt``). Signals reach
only the main thread, so elsewhere the block runs as it is.

>>> with interrupts_held():
...     done = "every write of the commit"
>>> done
'every write of the commit'
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Generator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def interrupts_held() -> Generator[None]:
    """Run the block with SIGINT held back, then deliver it (once) if it came.

    >>> import os, signal
    >>> try:
    ...     with interrupts_held():
    ...         os.kill(os.getpid(), signal.SIGINT)
    ...         finished = True
    ... except KeyboardInterrupt:
    ...     print("interrupted after the block; finished:", finished)
    interrupted after the block; finished: True
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield  # no Python handler to hold back: SIG_IGN, SIG_DFL, or not the main thread
        return
    arrived: list[FrameType | None] = []
    signal.signal(signal.SIGINT, lambda _number, frame: arrived.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if arrived:
            previous(signal.SIGINT, arrived[0])
