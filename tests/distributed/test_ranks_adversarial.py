"""fluxion.distributed.ranks.agreed on two gloo ranks with an error that cannot travel: a fluxion
error class defined inside a function (pickle cannot name it).

Each bug found here is a strict xfail that says what it is.
"""

from __future__ import annotations

import pytest

from fluxion import distributed
from fluxion.distributed.ranks import agreed
from fluxion.errors import WeightsError
from tests.distributed import helpers
from tests.distributed.helpers import Cluster

HANG_TIMEOUT = 10.0
"""How long a test waits for a rank that is expected to hang before it counts the step as hung."""


def local_error_on_rank_1() -> tuple[str, str]:
    class MappingError(WeightsError):  # a user's error, made where it is used (a notebook cell, a closure)
        pass

    def step() -> None:
        if distributed.rank() == 1:
            raise MappingError("the mapping refused 'head.weight'")

    try:
        agreed(step)
    except Exception as error:
        return type(error).__name__, str(error)
    return "no error", ""


def test_an_error_class_pickle_cannot_name_still_stops_every_rank(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helpers, "TIMEOUT", HANG_TIMEOUT)
    results = cluster.run(local_error_on_rank_1)
    assert results[0] == results[1]
    assert "the mapping refused 'head.weight'" in results[0][1]
