"""One pair of gloo ranks for every multi-process test of the session (see ``helpers.Cluster``)."""

from __future__ import annotations

import pytest

from tests.distributed.helpers import Cluster

_cluster: Cluster | None = None


@pytest.fixture
def cluster() -> Cluster:
    """The session's two ranks, started on first use and replaced if a test broke them."""
    global _cluster
    if _cluster is None or not _cluster.alive:
        _cluster = Cluster()
    return _cluster


def pytest_sessionfinish() -> None:
    if _cluster is not None and _cluster.alive:
        _cluster.close()
