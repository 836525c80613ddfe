"""Terminal progress: a bar for known amounts, a ticker for unknown lengths; quiet off a terminal."""

import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxion import progress
from fluxion.progress import Progress, Ticker


class Clock:
    """A ``time.perf_counter`` that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", fake)
    return fake


def lines(stream: io.StringIO) -> list[str]:
    """What each redraw wrote (the text between carriage returns)."""
    return [line for line in stream.getvalue().split("\r") if line]


def test_off_a_terminal_nothing_is_drawn_on_one_it_is() -> None:
    quiet, terminal = io.StringIO(), Terminal()
    for stream in (quiet, terminal):
        with Progress(total=10, label="loading", stream=stream) as bar:
            bar.advance(10)
        with Ticker("rendering", stream=stream, delay=0) as ticker:
            ticker.tick()
    assert quiet.getvalue() == ""
    assert [line.split(" ")[0] for line in lines(terminal)] == ["loading", "loading", "rendering", "rendering"]


def test_the_bar_counts_mib_caps_at_full_and_ends_its_line(clock: Clock) -> None:
    stream = io.StringIO()
    with Progress(total=4 * 2**20, label="weights", stream=stream, enabled=True) as bar:
        clock.now += 1
        bar.advance(2**20)
        clock.now += 1
        bar.advance(2**20)
        clock.now += 1
        bar.advance(8 * 2**20)  # more than announced
    drawn = lines(stream)
    assert drawn[0] == "weights [#######.......................]  25% 1/4 MiB 1 MiB/s"
    assert drawn[1] == "weights [###############...............]  50% 2/4 MiB 1 MiB/s"
    assert drawn[-1] == "weights [##############################] 100% 10/4 MiB 3 MiB/s\n"
    assert bar.done == 10 * 2**20


@pytest.mark.parametrize("total", [0, -5])
def test_nothing_to_do_is_all_done(total: int) -> None:
    stream = io.StringIO()
    with Progress(total=total, label="empty", stream=stream, enabled=True):
        pass
    assert "100%" in stream.getvalue()


def test_the_ticker_waits_for_its_delay_then_shows_the_time_and_ends_its_line(clock: Clock) -> None:
    stream = io.StringIO()
    with Ticker("rendering model.svg with dot", stream=stream, enabled=True, delay=0.5) as ticker:
        clock.now += 0.4
        ticker.tick()
        assert not ticker.drawn
        clock.now += 0.2
        ticker.tick()
        assert ticker.drawn
        clock.now += 2.0
    assert lines(stream) == ["rendering model.svg with dot … 0.6 s", "rendering model.svg with dot … 2.6 s\n"]


def test_quick_work_leaves_no_trace_even_when_enabled(clock: Clock) -> None:
    stream = io.StringIO()
    with Ticker("quick", stream=stream, enabled=True) as ticker:
        ticker.tick()
    assert stream.getvalue() == ""


def test_the_line_is_ended_when_the_work_fails(clock: Clock) -> None:
    stream = io.StringIO()

    def fail() -> None:
        with Ticker("work", stream=stream, enabled=True, delay=0) as ticker:
            ticker.tick()
            clock.now += 1
            raise RuntimeError("dot crashed")

    with pytest.raises(RuntimeError, match="dot crashed"):
        fail()
    assert stream.getvalue().endswith("work … 1.0 s\n")


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0, 0.3), st.integers(0, 2**20)), max_size=40))
def test_redraws_are_a_tenth_of_a_second_apart_and_the_last_line_is_the_total(
    steps: list[tuple[float, int]],
) -> None:
    clock = Clock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(progress.time, "perf_counter", clock)
        stream, times = io.StringIO(), list[float]()
        ticks = io.StringIO()
        with (
            Progress(total=2**24, label="x", stream=stream, enabled=True) as bar,
            Ticker("t", stream=ticks, enabled=True, delay=0) as ticker,
        ):
            for elapsed, amount in steps:
                clock.now += elapsed
                before = stream.getvalue().count("\r")
                bar.advance(amount)
                ticker.tick()
                if stream.getvalue().count("\r") > before:
                    times.append(clock.now)
    assert all(later - earlier >= 0.1 for earlier, later in itertools.pairwise(times))
    assert len(lines(ticks)) == (len(times) + 1 if times else 0)  # the same clock: drawn with the bar, then ended
    total = sum(amount for _, amount in steps)
    assert lines(stream)[-1].endswith("\n")
    assert f" {total / 2**20:.0f}/16 MiB " in lines(stream)[-1]
