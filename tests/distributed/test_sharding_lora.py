"""LoRA under fluxion.distributed.shard on two gloo ranks: train, unshard, eject, adapter checkpoints.

The LoRAs are injected before sharding (surgery on a sharded tree is refused); each test checks
both ranks against the same model trained in one process on the same data.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest
import torch
from safetensors import safe_open
from torch.distributed.tensor import DTensor

import fluxion.layers as fl
from fluxion import distributed, weights
from fluxion.adapters import lora
from fluxion.adapters.lora_layers import LinearLora
from fluxion.distributed import reshard
from fluxion.distributed.adapter_keys import adapter_keys
from fluxion.tree import is_wrapped
from tests.distributed.helpers import Cluster, outcome

RANK = 2
STEPS = 3
LEARNING_RATE = 0.05


def build() -> fl.Chain:
    return fl.Chain(
        blocks=fl.Chain(fl.Chain(fl.Linear(5, 7), fl.ReLU()), fl.Chain(fl.Linear(7, 7), fl.ReLU())),
        head=fl.Linear(7, 3),
    )


def both_nonzero(down: torch.Tensor, up: torch.Tensor) -> None:
    """An init where the LoRAs already change the output (the default starts ``up`` at zero)."""
    down.normal_(std=0.3)
    up.normal_(std=0.3)


def adapted() -> fl.Chain:
    torch.manual_seed(0)
    model = build()
    lora.inject(model, rank=RANK, init=both_nonzero)
    return model


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    return [(torch.randn(6, 5, generator=generator), torch.randn(6, 3, generator=generator)) for _ in range(STEPS)]


def train(model: torch.nn.Module) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    for inputs, targets in batches():
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()


def whole_values(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    reshard(model)
    return {
        name: (tensor.full_tensor() if isinstance(tensor, DTensor) else tensor).detach().clone()
        for name, tensor in model.state_dict().items()
    }


def probe() -> torch.Tensor:
    return torch.randn(4, 5, generator=torch.Generator().manual_seed(9))


def train_sharded_lora() -> dict[str, Any]:
    model = adapted()
    reference = copy.deepcopy(model)
    before = whole_values(model)
    distributed.shard(model, fl.Chain)
    trainable = lora.trainable_parameters(model)
    requiring_grad = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    train(model)

    lora.trainable_parameters(reference)
    train(reference)

    sharded_output = model(probe()).detach()
    plain = distributed.unshard(model)
    plain_output = plain(probe()).detach()
    plain_classes = sorted({type(node).__name__ for node in plain.modules()})
    plain_tensor_types = sorted({type(tensor).__name__ for tensor in [*plain.parameters(), *plain.buffers()]})
    lora.eject(plain)
    original = build()
    return {
        "lora keys": sorted(adapter_keys(model)),
        "trainable": len(trainable),
        "requiring grad": requiring_grad,
        "before": before,
        "after": whole_values(model),
        "reference after": whole_values(reference),
        "sharded output": sharded_output,
        "reference output": reference(probe()).detach(),
        "plain output": plain_output,
        "plain classes": plain_classes,
        "plain tensor types": plain_tensor_types,
        "ejected names": [name for name, _ in plain.named_modules()],
        "original names": [name for name, _ in original.named_modules()],
        "ejected values": whole_values(plain),
    }


def test_lora_trains_under_sharding_unshards_and_ejects_cleanly(cluster: Cluster) -> None:
    results = cluster.run(train_sharded_lora)
    for result in results:
        lora_keys = set(result["lora keys"])
        lora_parameters = {key for key in lora_keys if not key.endswith(".scale")}
        assert sorted(result["requiring grad"]) == sorted(lora_parameters)
        assert result["trainable"] == len(lora_parameters) == 6

        before, after = result["before"], result["after"]
        for key in before:
            if key in lora_parameters:
                assert not torch.equal(before[key], after[key]), f"{key} did not train"
            else:
                assert torch.equal(before[key], after[key]), f"{key} changed, but it is frozen"
        for key, value in result["reference after"].items():
            assert torch.allclose(after[key], value, rtol=1e-5, atol=1e-6), key
        torch.testing.assert_close(result["sharded output"], result["reference output"], rtol=1e-5, atol=1e-6)

        assert not any(name.startswith("FSDP") for name in result["plain classes"]), result["plain classes"]
        assert result["plain tensor types"] == ["Parameter", "Tensor"]  # LoRA scale is a plain buffer
        torch.testing.assert_close(result["plain output"], result["sharded output"], rtol=0, atol=0)

        assert result["ejected names"] == result["original names"]
        base = {key.replace(".target.", "."): value for key, value in before.items() if key not in lora_keys}
        assert list(result["ejected values"]) == list(base)
        for key, value in base.items():
            assert torch.equal(result["ejected values"][key], value), key
    for key in results[0]["after"]:
        assert torch.equal(results[0]["after"][key], results[1]["after"][key]), key
    assert torch.equal(results[0]["plain output"], results[1]["plain output"])


def save_and_load_adapters(folder: str) -> dict[str, Any]:
    model = adapted()
    distributed.shard(model, fl.Chain)
    lora.trainable_parameters(model)
    train(model)
    checkpoint = os.path.join(folder, "adapters")
    distributed.save(model, checkpoint, adapters_only=True)
    single = os.path.join(folder, f"adapters-{distributed.rank()}.safetensors")
    distributed.consolidate(checkpoint, single)
    with safe_open(single, framework="pt") as file:
        saved_keys = sorted(file.keys())

    torch.manual_seed(0)
    fresh = build()  # the same base weights; the LoRAs start elsewhere
    lora.inject(fresh, rank=RANK)
    distributed.shard(fresh, fl.Chain)
    untrained = fresh(probe()).detach()
    result = distributed.load(fresh, checkpoint, adapters_only=True)
    return {
        "adapter keys": sorted(adapter_keys(model)),
        "saved keys": saved_keys,
        "loaded": sorted(result.loaded),
        "trained output": model(probe()).detach(),
        "untrained output": untrained,
        "loaded output": fresh(probe()).detach(),
        "trained values": whole_values(model),
        "loaded values": whole_values(fresh),
    }


def test_adapter_checkpoints_save_and_load_from_a_sharded_model(cluster: Cluster, tmp_path: Any) -> None:
    results = cluster.run(save_and_load_adapters, str(tmp_path))
    for result in results:
        assert result["saved keys"] == result["adapter keys"]
        assert all(".down." in key or ".up." in key or key.endswith(".scale") for key in result["saved keys"])
        assert result["loaded"] == result["adapter keys"]
        assert not torch.allclose(result["untrained output"], result["trained output"])
        torch.testing.assert_close(result["loaded output"], result["trained output"], rtol=0, atol=0)
        for key, value in result["trained values"].items():
            assert torch.equal(result["loaded values"][key], value), key
    assert results[0]["saved keys"] == results[1]["saved keys"]
    assert torch.equal(results[0]["loaded output"], results[1]["loaded output"])


def refused_adapter_checkpoints(folder: str) -> dict[str, Any]:
    full = os.path.join(folder, "full")
    adapters = os.path.join(folder, "adapters")
    model = adapted()
    distributed.shard(model, fl.Chain)
    distributed.save(model, full)
    distributed.save(model, adapters, adapters_only=True)

    without = build()
    distributed.shard(without, fl.Chain)
    same_rank = build()
    lora.inject(same_rank, rank=RANK)
    distributed.shard(same_rank, fl.Chain)
    other_rank = build()
    lora.inject(other_rank, rank=RANK + 1)
    distributed.shard(other_rank, fl.Chain)
    before = [whole_values(same_rank), whole_values(other_rank)]
    return {
        "save without adapters": outcome(
            lambda: distributed.save(without, os.path.join(folder, "none"), adapters_only=True)
        ),
        "nothing written": not os.path.exists(os.path.join(folder, "none")),
        "load into a model without adapters": outcome(lambda: distributed.load(without, adapters, adapters_only=True)),
        "load a full checkpoint": outcome(lambda: distributed.load(same_rank, full, adapters_only=True)),
        "load LoRAs of another rank": outcome(lambda: distributed.load(other_rank, adapters, adapters_only=True)),
        "unchanged": all(
            torch.equal(value, whole_values(model)[key])
            for model, values in zip([same_rank, other_rank], before, strict=True)
            for key, value in values.items()
        ),
    }


def test_adapter_checkpoints_that_do_not_fit_are_the_same_error_on_both_ranks(cluster: Cluster, tmp_path: Any) -> None:
    results = cluster.run(refused_adapter_checkpoints, str(tmp_path))
    assert results[0] == results[1]
    result = results[0]
    assert result["nothing written"]
    assert result["unchanged"]
    assert result["save without adapters"] == (
        "DistributedError",
        "adapters_only: the model has no LoRA adapters to save",
    )
    kind, message = result["load into a model without adapters"]
    assert kind == "DistributedError"
    assert "no LoRA adapters" in message
    kind, message = result["load a full checkpoint"]
    assert kind == "WeightsError"
    assert "not an adapter checkpoint" in message
    assert "blocks.Chain_1.Linear.target.weight" in message
    kind, message = result["load LoRAs of another rank"]
    assert kind == "WeightsError"
    assert "head.down.weight" in message, message


def shard_by_adapter(selection: str) -> tuple[tuple[str, str], list[str]]:
    selections: dict[str, Any] = {"type": LinearLora, "address": ["head"]}
    model = adapted()
    refused = outcome(lambda: distributed.shard(model, selections[selection]))
    return refused, [address for address, node in model.named_modules() if is_wrapped(node)]


@pytest.mark.parametrize(
    ("selection", "wrapped"),
    [("type", ["", "blocks.Chain_1.Linear", "blocks.Chain_2.Linear", "head"]), ("address", ["", "head"])],
)
def test_selecting_an_injected_lora_wraps_the_lora(cluster: Cluster, selection: str, wrapped: list[str]) -> None:
    results = cluster.run(shard_by_adapter, selection)
    assert results[0] == results[1]
    assert results[0] == (("ok", ""), wrapped)


def meta_lora_then_base_checkpoint(folder: str) -> dict[str, Any]:
    """The meta way: LoRA from its file (lora.load gives it values), shard, then the base checkpoint
    of the model without adapters, looked through the adapters."""
    reference = adapted()
    if distributed.rank() == 0:
        torch.manual_seed(0)
        base = build()
        weights.save(base, f"{folder}/base.safetensors")
        lora.save(reference, f"{folder}/lora.safetensors")
    torch.distributed.barrier()  # every rank waits for rank 0's files
    with torch.device("meta"):
        model = build()
    lora.load(model, f"{folder}/lora.safetensors")
    distributed.shard(model, fl.Chain)
    result = distributed.load(model, f"{folder}/base.safetensors")  # strict: every base tensor
    with torch.no_grad():
        same = torch.equal(model(probe()), reference(probe()))
    still_meta = [name for name, tensor in model.named_parameters() if tensor.is_meta]
    return {"same": same, "loaded": sorted(result.loaded), "missing": result.missing, "still_meta": still_meta}


def test_a_base_checkpoint_loads_through_the_adapters_of_a_meta_model(cluster: Cluster, tmp_path: Any) -> None:
    results = cluster.run(meta_lora_then_base_checkpoint, str(tmp_path))
    assert results[0] == results[1]
    found = results[0]
    assert found["same"]
    assert found["missing"] == ()
    assert found["still_meta"] == []
    assert "head.target.weight" in found["loaded"]
    assert not any(key.endswith(("down.weight", "up.weight")) for key in found["loaded"])
