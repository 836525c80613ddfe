"""fluxion.distributed.ranks without a process group: one process is rank 0 of 1, and agreed() is the step.

What several ranks agree on is checked on two gloo ranks by the other tests of this folder.
"""

from __future__ import annotations

import pytest
import torch

import fluxion.layers as fl
from fluxion import distributed
from fluxion.distributed.ranks import agreed, device_of_mesh, rank, require_process_group, running, world_size
from fluxion.errors import AdapterError, DistributedError, FluxionError, SpecError, WeightsError


@pytest.fixture(autouse=True)
def no_process_group() -> None:
    if running():
        pytest.skip("a process group is running in this process")


def test_one_process_is_rank_0_of_1() -> None:
    assert running() is False
    assert rank() == 0
    assert world_size() == 1
    assert (distributed.rank(), distributed.world_size()) == (0, 1)


def test_agreed_returns_what_the_step_returns() -> None:
    value = object()
    assert agreed(lambda: value) is value
    assert agreed(lambda: None) is None


def test_agreed_runs_the_step_once() -> None:
    calls: list[int] = []
    agreed(lambda: calls.append(1))
    assert calls == [1]


@pytest.mark.parametrize("kind", [WeightsError, SpecError, AdapterError, DistributedError, FluxionError])
def test_a_fluxion_error_keeps_its_class_and_message(kind: type[FluxionError]) -> None:
    original = kind("model.safetensors: 'head.weight' is missing")

    def step() -> None:
        raise original

    with pytest.raises(kind) as raised:
        agreed(step)
    assert type(raised.value) is kind
    assert str(raised.value) == "model.safetensors: 'head.weight' is missing"  # no "rank 0: " alone
    assert raised.value.__cause__ is original


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (KeyError("head.weight"), "KeyError: 'head.weight'"),
        (RuntimeError("shape mismatch"), "RuntimeError: shape mismatch"),
        (ZeroDivisionError("division by zero"), "ZeroDivisionError: division by zero"),
    ],
)
def test_any_other_error_becomes_a_distributed_error_naming_its_type(error: Exception, message: str) -> None:
    def step() -> None:
        raise error

    with pytest.raises(DistributedError) as raised:
        agreed(step)
    assert str(raised.value) == message
    assert raised.value.__cause__ is error


def test_a_fluxion_error_whose_constructor_takes_more_becomes_a_distributed_error() -> None:
    class LocatedError(WeightsError):
        def __init__(self, message: str, where: str) -> None:
            super().__init__(f"{where}: {message}")

    def step() -> None:
        raise LocatedError("truncated", "model.safetensors")

    with pytest.raises(DistributedError, match=r"^model\.safetensors: truncated$") as raised:
        agreed(step)
    assert isinstance(raised.value.__cause__, LocatedError)


def test_keyboard_interrupt_is_not_caught() -> None:
    def step() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        agreed(step)


def test_require_process_group_says_how_to_start_one() -> None:
    with pytest.raises(DistributedError) as raised:
        require_process_group("fluxion.distributed.load")
    message = str(raised.value)
    assert "no process group is running" in message
    assert "fluxion.distributed.load needs one" in message
    assert "torchrun" in message
    assert "torch.distributed.init_process_group" in message


def test_entry_points_that_need_a_group_say_so() -> None:

    with pytest.raises(DistributedError, match="no process group is running"):
        distributed.shard(fl.Chain(fl.Linear(2, 2)))


def test_device_of_a_cpu_mesh_is_the_cpu() -> None:
    assert device_of_mesh("cpu") == torch.device("cpu")


def test_device_of_a_mesh_type_without_current_device_is_the_type() -> None:
    assert device_of_mesh("meta") == torch.device("meta")
