"""fluxion.distributed.shard, unshard and reshard on trees that are not the plain case: plain torch
containers inside a Chain, a subtree sharded on its own, a node copy.deepcopy cannot copy, LoRA
frozen after sharding; and arguments of the wrong type.

The steps run on the session's two gloo ranks. Each bug found here is a strict xfail that says what
it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import distributed
from fluxion.adapters import lora
from fluxion.errors import DistributedError
from tests.distributed.helpers import Cluster


def outcome(action: Callable[[], object]) -> tuple[str, Any]:
    """What ``action`` returned (``("ok", value)``) or raised (class name and message)."""
    try:
        return "ok", action()
    except Exception as error:
        return type(error).__name__, str(error)


# ---- plain torch containers inside a Chain


def with_sequential() -> fl.Chain:
    torch.manual_seed(0)
    return fl.Chain(
        fl.Linear(4, 6), seq=torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    )


def shard_with_sequential(targets: Any) -> tuple[tuple[str, Any], list[str]]:
    model = with_sequential()
    report = outcome(lambda: distributed.shard(model, targets).wrapped)
    return report, [name for name, node in model.named_modules() if type(node).__name__.startswith("FSDP")]


def test_a_torch_sequential_and_its_layer_shard_innermost_first(cluster: Cluster) -> None:
    results = cluster.run(shard_with_sequential, ["seq", "seq.0"])
    assert results[0] == results[1]
    report, wrapped = results[0]
    assert report == ("ok", ("seq.0", "seq", ""))
    assert sorted(wrapped) == ["", "seq", "seq.0"]


def test_the_report_names_layers_inside_a_torch_sequential_by_their_addresses(cluster: Cluster) -> None:
    results = cluster.run(shard_with_sequential, torch.nn.Linear)
    assert results[0] == results[1]
    report, _ = results[0]
    assert report[0] == "ok"
    assert sorted(report[1]) == ["", "Linear", "seq.0", "seq.2"]
    assert report[1][-1] == ""


# ---- a subtree sharded on its own


def shard_subtree_with_a_tie_inside() -> tuple[str, Any]:
    torch.manual_seed(0)
    model = fl.Chain(
        body=fl.Chain(a=fl.Chain(fl.Linear(4, 4), fl.Linear(4, 4)), b=fl.Chain(fl.Linear(4, 4))),
        head=fl.Linear(4, 2),
    )
    a = model.body.a
    a.Linear_2.weight = a.Linear_1.weight  # tied inside 'a': one group holds both
    return outcome(lambda: distributed.shard(model.body, ["a"]).wrapped)


def test_a_subtree_with_a_tie_inside_a_wrapped_node_shards(cluster: Cluster) -> None:
    results = cluster.run(shard_subtree_with_a_tie_inside)
    assert results == [("ok", ("a", ""))] * 2


# ---- a node copy.deepcopy cannot copy (shard takes a meta copy for unshard)


class Locked(torch.nn.Module):
    """A plain module holding a lock, as modules with a cache or a worker thread do."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            return self.linear(x)


def shard_with_a_lock() -> tuple[str, Any]:
    model = fl.Chain(fl.Linear(2, 2), Locked())
    return outcome(lambda: distributed.shard(model, fl.Linear).wrapped)


def test_a_tree_holding_something_deepcopy_cannot_copy_is_sharded_or_refused_with_a_fluxion_error(
    cluster: Cluster,
) -> None:
    results = cluster.run(shard_with_a_lock)
    assert results[0] == results[1]
    assert results[0][0] in {"ok", "DistributedError"}, results[0]


# ---- unshard gives the tree as it is now


def unshard_after_freezing() -> tuple[dict[str, bool], dict[str, bool]]:
    torch.manual_seed(0)
    model = fl.Chain(fl.Chain(fl.Linear(4, 4), fl.ReLU()), head=fl.Linear(4, 2))
    lora.inject(model, rank=2, targets="head")
    distributed.shard(model, fl.Chain)
    lora.trainable_parameters(model)  # after sharding, as the guide's example does
    plain = distributed.unshard(model)
    return (
        {name: parameter.requires_grad for name, parameter in model.named_parameters()},
        {name: parameter.requires_grad for name, parameter in plain.named_parameters()},
    )


def test_unshard_keeps_which_parameters_are_frozen(cluster: Cluster) -> None:
    for sharded, plain in cluster.run(unshard_after_freezing):
        assert plain == sharded


# ---- arguments of the wrong type, in one process


@pytest.mark.parametrize("function", [distributed.unshard, distributed.reshard], ids=["unshard", "reshard"])
@pytest.mark.parametrize("model", [5, None], ids=["int", "none"])
def test_unshard_and_reshard_refuse_what_is_not_a_module_with_a_distributed_error(
    function: Callable[[Any], object], model: object
) -> None:
    with pytest.raises(DistributedError):
        function(model)
