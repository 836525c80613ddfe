"""Ctrl-C held during a commit (``fluxion.interrupts``): the block runs to its end, then the interrupt is
delivered once to the handler that was in place, which is put back whatever happens."""

import signal
import sys
import threading
from collections.abc import Iterator

import pytest

from fluxion.interrupts import interrupts_held

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to the process is POSIX")


@pytest.fixture
def received() -> Iterator[list[int]]:
    """SIGINTs reach a recording handler during the test (Python's own is put back after)."""
    calls: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: calls.append(number))
    try:
        yield calls
    finally:
        signal.signal(signal.SIGINT, previous)


def test_without_an_interrupt_the_block_just_runs(received: list[int]) -> None:
    handler = signal.getsignal(signal.SIGINT)
    steps: list[str] = []
    with interrupts_held():
        steps.append("commit")
    assert steps == ["commit"]
    assert received == []
    assert signal.getsignal(signal.SIGINT) is handler


def test_an_interrupt_waits_for_the_end_of_the_block_and_comes_once(received: list[int]) -> None:
    handler = signal.getsignal(signal.SIGINT)
    steps: list[str] = []
    with interrupts_held():
        steps.append("first write")
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        steps.append("last write")
        assert received == []  # nothing reached the handler yet
    assert steps == ["first write", "last write"]
    assert received == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is handler


def test_pythons_handler_raises_keyboard_interrupt_after_the_block() -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    steps: list[str] = []

    def commit() -> None:
        with interrupts_held():
            signal.raise_signal(signal.SIGINT)
            steps.append("commit finished")

    with pytest.raises(KeyboardInterrupt):
        commit()
    assert steps == ["commit finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_handler_is_put_back_and_still_called_when_the_block_fails(received: list[int]) -> None:
    handler = signal.getsignal(signal.SIGINT)

    def failing_commit() -> None:
        with interrupts_held():
            signal.raise_signal(signal.SIGINT)
            raise ValueError("write failed")

    with pytest.raises(ValueError, match="write failed"):
        failing_commit()
    assert received == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is handler


def test_nested_holds_deliver_at_the_end_of_the_outer_one(received: list[int]) -> None:
    with interrupts_held():
        with interrupts_held():
            signal.raise_signal(signal.SIGINT)
        assert received == []  # the inner block delivered it to the outer one, which still holds it
    assert received == [signal.SIGINT]


def test_an_ignored_interrupt_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_held():
            signal.raise_signal(signal.SIGINT)
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_the_block_runs_as_it_is(received: list[int]) -> None:
    handler = signal.getsignal(signal.SIGINT)
    seen: list[object] = []

    def commit() -> None:
        with interrupts_held():
            seen.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=commit)
    worker.start()
    worker.join(timeout=10)
    assert seen == [handler]  # the handler was not swapped (only the main thread may)
