"""Fixtures shared across the test folders."""

from collections.abc import Iterator

import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

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
