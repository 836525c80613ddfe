"""fluxion.distributed.load under failures on one rank only: a read failing mid-way, the commit
failing, staging failing before DCP's collective read; and tensors with no elements.

"A failed load changes nothing, and every rank raises the same error": each step runs on the
session's two gloo ranks with a failure injected on rank 1 alone. Each bug found here is a strict
xfail that says what it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.tensor import DTensor

import fluxion.layers as fl
from fluxion import distributed, weights
from fluxion.distributed import loading, safetensors_pieces
from fluxion.errors import FluxionError
from tests.distributed import helpers
from tests.distributed.helpers import Cluster

HANG_TIMEOUT = 10.0
"""How long a test waits for a rank that is expected to hang before it counts the step as hung."""


def build() -> fl.Chain:
    return fl.Chain(
        blocks=fl.Chain(fl.Chain(fl.Linear(5, 7), fl.ReLU()), fl.Chain(fl.Linear(7, 7), fl.ReLU())),
        head=fl.Linear(7, 3),
    )


def reference() -> fl.Chain:
    torch.manual_seed(0)
    return build()


def local_values(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    distributed.reshard(model)
    return {
        key: (tensor.to_local() if isinstance(tensor, DTensor) else tensor).detach().clone()
        for key, tensor in model.state_dict().items()
    }


def unchanged(before: dict[str, torch.Tensor], model: torch.nn.Module) -> bool:
    after = local_values(model)
    return all(
        tensor.is_meta if before[key].is_meta else torch.equal(tensor, before[key]) for key, tensor in after.items()
    )


def fail_on_call(number: int, original: Callable[..., Any], error: BaseException) -> Callable[..., Any]:
    """``original``, raising ``error`` on its ``number``-th call on rank 1 (and never on rank 0)."""
    calls = [0]

    def wrapped(*args: Any) -> Any:
        calls[0] += 1
        if distributed.rank() == 1 and calls[0] == number:
            raise error
        return original(*args)

    return wrapped


def sharded(meta: bool) -> fl.Chain:
    torch.manual_seed(5)  # other values than the checkpoint's
    if meta:
        with torch.device("meta"):
            model = build()
    else:
        model = build()
    distributed.shard(model, fl.Linear)
    return model


def outcome_and_unchanged(model: torch.nn.Module, load: Callable[[], object]) -> tuple[str, str, bool]:
    before = local_values(model)
    try:
        load()
        kind, message = "no error", ""
    except BaseException as error:  # recorded, checked by the test
        kind, message = type(error).__name__, str(error)
    return kind, message, unchanged(before, model)


# ---- a read failing on the 3rd tensor of rank 1


def read_fails_on_rank_1(file: str, meta: bool) -> tuple[str, str, bool]:
    model = sharded(meta)
    read = fail_on_call(3, safetensors_pieces.SafetensorsPieces.read, OSError(5, "Input/output error"))
    with mock.patch.object(safetensors_pieces.SafetensorsPieces, "read", lambda self, *args: read(self, *args)):  # pyright: ignore[reportUnknownLambdaType]
        return outcome_and_unchanged(model, lambda: distributed.load(model, file))


@pytest.mark.parametrize("meta", [True, False], ids=["meta", "with-values"])
def test_a_read_failing_on_one_rank_mid_way_stops_both_and_changes_nothing(
    cluster: Cluster, tmp_path: Path, meta: bool
) -> None:
    weights.save(reference(), tmp_path / "model.safetensors")
    results = cluster.run(read_fails_on_rank_1, str(tmp_path / "model.safetensors"), meta)
    assert results[0] == results[1]
    kind, message, untouched = results[0]
    assert kind == "WeightsError"
    assert message.startswith("rank 1: ")
    assert "Input/output error" in message
    assert untouched


# ---- the commit failing on rank 1 only (FSDP copying a new shard into memory it allocates: out of memory)


def commit_fails_on_rank_1(file: str) -> tuple[str, str, bool]:
    model = sharded(meta=True)
    failing = fail_on_call(3, loading._as_model_tensor, MemoryError("out of memory (injected)"))  # pyright: ignore[reportPrivateUsage]
    with mock.patch.object(loading, "_as_model_tensor", failing):
        return outcome_and_unchanged(model, lambda: distributed.load(model, file))


def test_a_commit_failing_on_one_rank_does_not_leave_the_other_rank_loaded(cluster: Cluster, tmp_path: Path) -> None:
    weights.save(reference(), tmp_path / "model.safetensors")
    results = cluster.run(commit_fails_on_rank_1, str(tmp_path / "model.safetensors"))
    assert results[0][0] == results[1][0] != "no error"
    assert results[0][2]
    assert results[1][2]


def test_a_commit_failing_in_one_process_undoes_the_replaced_tensors(tmp_path: Path) -> None:
    weights.save(reference(), tmp_path / "model.safetensors")
    with torch.device("meta"):
        model = build()
    original = loading._as_model_tensor  # pyright: ignore[reportPrivateUsage]
    calls = [0]

    def third_fails(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise MemoryError("out of memory (injected)")
        return original(*args)

    with (
        mock.patch.object(loading, "_as_model_tensor", third_fails),
        pytest.raises(FluxionError, match="out of memory"),
    ):
        distributed.load(model, tmp_path / "model.safetensors")
    assert all(tensor.is_meta for tensor in model.state_dict().values())


def test_a_commit_failing_after_an_in_place_copy_puts_the_copied_values_back(tmp_path: Path) -> None:
    weights.save(reference(), tmp_path / "model.safetensors")
    torch.manual_seed(5)
    model = build()  # values: the first tensors are copied in place
    with torch.device("meta"):
        model.head = fl.Linear(7, 3)  # on meta: replaced, after the others
    before = local_values(model)
    failing = mock.patch.object(loading, "_as_model_tensor", side_effect=MemoryError("out of memory (injected)"))
    with failing, pytest.raises(FluxionError, match="out of memory"):
        distributed.load(model, tmp_path / "model.safetensors")
    assert unchanged(before, model)


# ---- staging failing on rank 1 before DCP's collective read


def staging_fails_before_the_dcp_read(folder: str) -> tuple[str, str, bool]:
    model = sharded(meta=True)
    failing = fail_on_call(2, loading.local_box, MemoryError("out of memory (injected)"))
    with mock.patch.object(loading, "local_box", failing):
        return outcome_and_unchanged(model, lambda: distributed.load(model, folder))


def test_staging_failing_on_one_rank_before_a_dcp_read_stops_both(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DCP notes that it runs in one process
        dcp.save(reference().state_dict(), checkpoint_id=tmp_path / "dcp")
    monkeypatch.setattr(helpers, "TIMEOUT", HANG_TIMEOUT)
    results = cluster.run(staging_fails_before_the_dcp_read, str(tmp_path / "dcp"))
    assert results[0] == results[1]
    assert results[0][0] != "no error"
    assert results[0][2]


# ---- tensors with no elements


def load_zero_sized(file: str) -> tuple[str, str]:
    with torch.device("meta"):
        model = fl.Chain(fl.Linear(3, 0), fl.Linear(0, 2))
    distributed.shard(model, fl.Linear)
    try:
        distributed.load(model, file)
    except BaseException as error:  # recorded, checked by the test
        return type(error).__name__, str(error)
    return "no error", ""


def test_a_layer_with_no_elements_loads_sharded(cluster: Cluster, tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights.save(fl.Chain(fl.Linear(3, 0), fl.Linear(0, 2)), tmp_path / "model.safetensors")
    assert cluster.run(load_zero_sized, str(tmp_path / "model.safetensors")) == [("no error", "")] * 2
