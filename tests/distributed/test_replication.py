"""fluxion.distributed.replicate (DDP) on two gloo ranks: averaged gradients, the tree's own keys."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
import torch
from safetensors import safe_open
from torch.nn.parallel import DistributedDataParallel

import fluxion.layers as fl
from fluxion import distributed
from fluxion.distributed.ranks import rank
from tests.distributed.helpers import Cluster, outcome

LEARNING_RATE = 0.1


def build() -> fl.Chain:
    return fl.Chain(blocks=fl.Chain(fl.Linear(5, 7), fl.ReLU(), fl.Linear(7, 7)), head=fl.Linear(7, 3))


def seeded(seed: int = 0) -> fl.Chain:
    torch.manual_seed(seed)
    return build()


def batch(seed: int) -> torch.Tensor:
    return torch.randn(4, 5, generator=torch.Generator().manual_seed(seed))


def train_replicated() -> dict[str, Any]:
    plain = seeded()
    tree = copy.deepcopy(plain)
    names = [name for name, _ in tree.named_modules()]
    replicated = distributed.replicate(tree)
    batches = [batch(1), batch(2)]

    replicated(batches[rank()]).square().sum().backward()
    grads = {name: parameter.grad.clone() for name, parameter in tree.named_parameters() if parameter.grad is not None}
    torch.optim.SGD(replicated.parameters(), lr=LEARNING_RATE).step()

    per_batch: list[dict[str, torch.Tensor]] = []
    for each in batches:
        plain.zero_grad()
        plain(each).square().sum().backward()
        per_batch.append({name: parameter.grad.clone() for name, parameter in plain.named_parameters()})
    mean = {name: (per_batch[0][name] + per_batch[1][name]) / 2 for name in per_batch[0]}
    for name, parameter in plain.named_parameters():
        parameter.grad = mean[name]
    torch.optim.SGD(plain.parameters(), lr=LEARNING_RATE).step()
    return {
        "wrapper": type(replicated).__name__,
        "is the tree": replicated.module is tree,
        "names": names,
        "names after": [name for name, _ in tree.named_modules()],
        "grads": grads,
        "mean grads": mean,
        "own batch grads": per_batch[rank()],
        "params": {name: parameter.detach().clone() for name, parameter in tree.named_parameters()},
        "expected params": {name: parameter.detach().clone() for name, parameter in plain.named_parameters()},
    }


def test_replicate_wraps_in_ddp_and_averages_gradients_across_ranks(cluster: Cluster) -> None:
    results = cluster.run(train_replicated)
    for result in results:
        assert result["wrapper"] == DistributedDataParallel.__name__
        assert result["is the tree"]
        assert result["names after"] == result["names"]
        assert list(result["grads"]) == list(result["mean grads"])
        for name, expected in result["mean grads"].items():
            torch.testing.assert_close(result["grads"][name], expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(result["params"][name], result["expected params"][name], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(result["grads"]["head.weight"], result["own batch grads"]["head.weight"])
    for name in results[0]["params"]:
        assert torch.equal(results[0]["params"][name], results[1]["params"][name]), name


def save_and_load_replicated(folder: str) -> dict[str, Any]:
    tree = seeded()
    replicated = distributed.replicate(tree)
    checkpoint = os.path.join(folder, "replicated")
    distributed.save(replicated, checkpoint)
    single = os.path.join(folder, f"model-{rank()}.safetensors")
    distributed.consolidate(checkpoint, single)
    with safe_open(single, framework="pt") as file:
        saved = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 (safe_open is no dict)

    other = seeded(seed=1)
    other_replicated = distributed.replicate(other)
    before = other(batch(1)).detach()
    result = distributed.load(other_replicated, checkpoint)
    return {
        "tree keys": list(tree.state_dict()),
        "wrapper keys": list(replicated.state_dict()),
        "saved": saved,
        "values": {key: value.detach().clone() for key, value in tree.state_dict().items()},
        "loaded": sorted(result.loaded),
        "before": before,
        "expected": tree(batch(1)).detach(),
        "after": other_replicated(batch(1)).detach(),
        "loaded values": {key: value.detach().clone() for key, value in other.state_dict().items()},
    }


def test_save_and_load_speak_the_trees_keys_through_the_ddp_wrapper(cluster: Cluster, tmp_path: Any) -> None:
    results = cluster.run(save_and_load_replicated, str(tmp_path))
    for result in results:
        assert all(key.startswith("module.") for key in result["wrapper keys"])
        assert sorted(result["saved"]) == sorted(result["tree keys"])
        assert result["loaded"] == sorted(result["tree keys"])
        for key, value in result["values"].items():
            assert torch.equal(result["saved"][key], value), key
            assert torch.equal(result["loaded values"][key], value), key
        assert not torch.allclose(result["before"], result["expected"])
        assert torch.equal(result["after"], result["expected"])


def replicate_refused(case: str) -> tuple[str, str]:
    model = seeded()
    if case == "sharded":
        distributed.shard(model, "blocks")
        return outcome(lambda: distributed.replicate(model))
    if case == "replicated":
        return outcome(lambda: distributed.replicate(distributed.replicate(model)))
    if case == "shard a DDP wrapper":
        return outcome(lambda: distributed.shard(distributed.replicate(model)))
    raise AssertionError(case)


def test_a_sharded_tree_cannot_also_be_replicated(cluster: Cluster) -> None:
    results = cluster.run(replicate_refused, "sharded")
    assert results[0] == results[1]
    kind, message = results[0]
    assert kind == "DistributedError"
    assert "sharded" in message
    assert "replicated" in message


@pytest.mark.parametrize("case", ["replicated", "shard a DDP wrapper"])
def test_a_replicated_model_cannot_be_replicated_again_or_sharded(cluster: Cluster, case: str) -> None:
    results = cluster.run(replicate_refused, case)
    assert results[0] == results[1]
    kind, _ = results[0]
    assert kind == "DistributedError"


def test_without_a_process_group_replicate_says_how_to_start_one() -> None:
    with pytest.raises(distributed.DistributedError, match="torchrun"):
        distributed.replicate(build())
