"""Fixtures shared across the test folders."""

import os
import signal
from collections.abc import Iterator

import pytest
import torch
import torch._dynamo
from hypothesis import settings
from torch._dynamo.utils import counters

# CI runs each property test on the same examples every time (a failure there is reproducible, and
# never a one-off draw); everywhere else hypothesis explores new examples on each run.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("FLUXION_CI"):
    settings.load_profile("ci")

COMPILE_MARKS = [
    pytest.mark.usefixtures("fresh_dynamo"),
    # torch's own dynamo import path still calls torch.jit.script_method; not ours to fix
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]
"""``pytestmark`` for a module of torch.compile tests."""


@pytest.fixture
def fresh_dynamo() -> Iterator[None]:
    """Dynamo's caches and counters emptied before and after the test."""
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail (instead of hanging for ever) when the test takes more than 20 seconds: for tests of
    FIFOs and runaway specs, where the bug would be a process that never returns."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("the test blocked for 20 seconds")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(20)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
