"""fluxion.distributed.shard on two gloo ranks: what it wraps, and the tree that stays the tree.

Each test runs module-level steps on both ranks (``cluster.run``) and checks their results here,
against the same model built and run in this one process. ``build`` is seeded by the caller, so
every rank and this process start from the same weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor

import fluxion.layers as fl
from fluxion import distributed, shapes, spec, weights
from fluxion.adapters import lora
from fluxion.distributed import reshard
from fluxion.distributed.ranks import rank
from fluxion.errors import DistributedError, TreeError
from fluxion.tree import is_wrapped
from tests.distributed.helpers import Cluster, outcome

LEARNING_RATE = 0.1


def build() -> fl.Chain:
    return fl.Chain(
        blocks=fl.Chain(fl.Chain(fl.Linear(5, 7), fl.ReLU()), fl.Chain(fl.Linear(7, 7), fl.ReLU())),
        head=fl.Linear(7, 3),
    )


def seeded() -> fl.Chain:
    torch.manual_seed(0)
    return build()


def batch(seed: int) -> torch.Tensor:
    return torch.randn(4, 5, generator=torch.Generator().manual_seed(seed))


def whole(tensor: torch.Tensor) -> torch.Tensor:
    """The whole value of a parameter or gradient, sharded or not, as a plain tensor."""
    return (tensor.full_tensor() if isinstance(tensor, DTensor) else tensor).detach().clone()


def tree_error(action: Callable[[], object]) -> tuple[bool, str]:
    """Whether ``action`` raised a fluxion ``TreeError`` (or a subclass), and the message of what it raised."""
    try:
        action()
    except Exception as error:
        return isinstance(error, TreeError), f"{type(error).__name__}: {error}"
    return False, "nothing raised"


def tree_state(model: torch.nn.Module) -> dict[str, Any]:
    """What surgery would change: names, keys, wrapped nodes, repr and the values (gathered whole)."""
    reshard(model)
    return {
        "names": [name for name, _ in model.named_modules()],
        "keys": list(model.state_dict()),
        "wrapped": [name for name, node in model.named_modules() if is_wrapped(node)],
        "repr": repr(model),
        "values": {name: whole(tensor) for name, tensor in model.named_parameters()},
    }


def same_state(before: dict[str, Any], after: dict[str, Any]) -> bool:
    values, values_after = before["values"], after["values"]
    described = all(before[key] == after[key] for key in before if key != "values")
    return (
        described
        and list(values) == list(values_after)
        and all(torch.equal(values[k], values_after[k]) for k in values)
    )


# --- what is wrapped


def wrap_blocks() -> tuple[tuple[str, ...], list[str], list[str]]:
    model = seeded()
    names, keys = [name for name, _ in model.named_modules()], list(model.state_dict())
    report = distributed.shard(model, fl.Chain)
    assert [name for name, _ in model.named_modules()] == names
    assert list(model.state_dict()) == keys
    return report.wrapped, names, keys


def test_shard_wraps_the_selected_nodes_innermost_first_and_the_root_last(cluster: Cluster) -> None:
    results = cluster.run(wrap_blocks)
    assert results[0] == results[1]
    wrapped, _, _ = results[0]
    assert wrapped == ("blocks.Chain_1", "blocks.Chain_2", "blocks", "")


def wrapped_by(selector: str) -> tuple[tuple[str, ...], list[str]]:
    selectors: dict[str, Any] = {
        "type": fl.Linear,
        "globs": ["blocks.Chain_2", "head"],
        "predicate": lambda node: isinstance(node, fl.Linear) and node.out_features == 7,
        "parameterless too": ["blocks.*"],
        "none": None,
    }
    model = seeded()
    report = distributed.shard(model, selectors[selector])
    return report.wrapped, [name for name, node in model.named_modules() if is_wrapped(node)]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("type", ("blocks.Chain_1.Linear", "blocks.Chain_2.Linear", "head", "")),
        ("globs", ("blocks.Chain_2", "head", "")),
        ("predicate", ("blocks.Chain_1.Linear", "blocks.Chain_2.Linear", "")),
        # The ReLUs match too, but hold nothing to shard.
        (
            "parameterless too",
            ("blocks.Chain_1.Linear", "blocks.Chain_2.Linear", "blocks.Chain_1", "blocks.Chain_2", ""),
        ),
        ("none", ("",)),
    ],
)
def test_shard_selects_by_type_glob_list_and_predicate(
    cluster: Cluster, selector: str, expected: tuple[str, ...]
) -> None:
    results = cluster.run(wrapped_by, selector)
    assert results[0] == results[1]
    wrapped, nodes_wrapped = results[0]
    assert wrapped == expected
    assert sorted(nodes_wrapped) == sorted(expected)


def refused_selection(selector: str) -> tuple[str, str, list[str]]:
    selectors: dict[str, Any] = {
        "no match": "decoder.*",
        "no match in a list": ["head", "decoder"],
        "only parameterless": fl.ReLU,
        "predicate matching nothing": lambda node: False,
    }
    model = seeded()
    kind, message = outcome(lambda: distributed.shard(model, selectors[selector]))
    return kind, message, [name for name, node in model.named_modules() if is_wrapped(node)]


@pytest.mark.parametrize(
    ("selector", "words"),
    [
        ("no match", ["decoder.*"]),
        ("no match in a list", ["decoder"]),
        ("only parameterless", ["blocks.Chain_1.ReLU", "parameters"]),
        ("predicate matching nothing", []),
    ],
)
def test_a_selection_that_wraps_nothing_is_the_same_error_on_both_ranks(
    cluster: Cluster, selector: str, words: list[str]
) -> None:
    results = cluster.run(refused_selection, selector)
    assert results[0] == results[1]
    kind, message, wrapped = results[0]
    assert kind == "DistributedError"
    assert all(word in message for word in words), message
    assert wrapped == []


def shard_twice() -> tuple[tuple[str, str], list[str]]:
    model = seeded()
    distributed.shard(model, "blocks")
    before = [name for name, node in model.named_modules() if is_wrapped(node)]
    refused = outcome(lambda: distributed.shard(model, fl.Linear))
    assert [name for name, node in model.named_modules() if is_wrapped(node)] == before
    return refused, before


def test_sharding_twice_is_refused(cluster: Cluster) -> None:
    results = cluster.run(shard_twice)
    assert results[0] == results[1]
    (kind, message), wrapped = results[0]
    assert kind == "DistributedError"
    assert "sharded already" in message
    assert wrapped == ["", "blocks"]


class Tied(fl.Chain):
    """An embedding whose weight the output head shares (tied embeddings)."""

    def __init__(self) -> None:
        super().__init__(embed=fl.Embedding(6, 4), body=fl.Chain(fl.Linear(4, 4)), head=fl.Linear(4, 6, bias=False))
        self.head.weight = self.embed.weight


def shard_tied(selector: str) -> tuple[tuple[str, str], list[str], tuple[str, ...]]:
    torch.manual_seed(0)
    model = Tied()
    refused = outcome(lambda: distributed.shard(model, selector))
    wrapped_after_refusal = [name for name, node in model.named_modules() if is_wrapped(node)]
    # The root holds both keys: the tied pair may stay in its group while the body is wrapped.
    fine = Tied()
    report = distributed.shard(fine, "body")
    return refused, wrapped_after_refusal, report.wrapped


@pytest.mark.parametrize("selector", ["head", "embed"])
def test_a_tied_parameter_split_across_groups_is_refused_naming_both_keys(cluster: Cluster, selector: str) -> None:
    results = cluster.run(shard_tied, selector)
    assert results[0] == results[1]
    (kind, message), wrapped_after_refusal, fine = results[0]
    assert kind == "DistributedError"
    assert "embed.weight" in message, message
    assert "head.weight" in message, message
    assert wrapped_after_refusal == []
    assert fine == ("body", "")


# --- the tree stays the tree


def views(model: torch.nn.Module) -> dict[str, Any]:
    """Everything that names or describes the tree, as plain data."""
    report = shapes.infer(model, ("B", 5))
    return {
        "names": [name for name, _ in model.named_modules()],
        "keys": list(model.state_dict()),
        "children": {name: [child for child, _ in node.named_children()] for name, node in model.named_modules()},
        "repr": repr(model),
        "shapes": str(report),
        "output shape": str(report.output),
        "spec": spec.dump(model),
    }


def sharded_views(on_meta: bool) -> dict[str, Any]:
    if on_meta:
        with torch.device("meta"):
            model = seeded()
    else:
        model = seeded()
    distributed.shard(model, fl.Chain)
    shown = views(model)
    if not on_meta:
        model(batch(1))  # the root keeps its parameters whole after forward: the views stay the same
        after = views(model)
        assert after == shown, [key for key in shown if after[key] != shown[key]]
    shown["classes"] = sorted({type(node).__name__ for node in model.modules()})
    # A Chain built around the tree names it automatically, by the class it was built as.
    shown["automatic names"] = [name for name, _ in fl.Chain(model, fl.ReLU(), fl.Chain()).named_children()]
    return shown


@pytest.mark.parametrize("on_meta", [False, True], ids=["built", "on meta"])
def test_addresses_keys_names_repr_shapes_and_spec_are_those_of_the_unsharded_tree(
    cluster: Cluster, on_meta: bool
) -> None:
    results = cluster.run(sharded_views, on_meta)
    assert results[0] == results[1]
    shown = results[0]
    assert "FSDPChain" in shown.pop("classes")  # the nodes really are wrapped
    assert shown.pop("automatic names") == ["Chain_1", "ReLU", "Chain_2"]
    assert shown == views(seeded())
    for shown_as in ("repr", "shapes", "spec"):
        assert "FSDP" not in str(shown[shown_as]), shown_as


def failing_forward() -> tuple[str, str]:
    model = seeded()
    distributed.shard(model, fl.Chain)
    return outcome(lambda: model(torch.zeros(2, 4)))


def test_a_failing_forward_names_the_node_by_its_own_class(cluster: Cluster) -> None:
    results = cluster.run(failing_forward)
    assert results[0] == results[1]
    kind, message = results[0]
    assert kind == "ChainError"
    assert "Linear at 'blocks.Chain_1.Linear' failed" in message
    assert "FSDP" not in message


# --- forward, backward and an optimizer step


def train_sharded(same_batch: bool) -> dict[str, Any]:
    """One SGD step of the sharded model, and of the plain model on the mean gradient of the ranks' batches."""
    plain = seeded()
    model = copy.deepcopy(plain)
    distributed.shard(model, fl.Chain)
    batches = [batch(1), batch(1 if same_batch else 2)]
    mine = batches[rank()]

    output = model(mine)
    output.square().sum().backward()
    grads = {name: whole(parameter.grad) for name, parameter in model.named_parameters() if parameter.grad is not None}
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    optimizer.step()

    expected_output = plain(mine).detach()
    per_batch = []
    for each in batches:
        plain.zero_grad()
        plain(each).square().sum().backward()
        per_batch.append({name: whole(parameter.grad) for name, parameter in plain.named_parameters()})
    expected_grads = {name: sum(grads[name] for grads in per_batch) / len(per_batch) for name in per_batch[0]}
    for name, parameter in plain.named_parameters():
        parameter.grad = expected_grads[name]
    torch.optim.SGD(plain.parameters(), lr=LEARNING_RATE).step()
    reshard(model)
    return {
        "output": output.detach(),
        "expected output": expected_output,
        "grads": grads,
        "expected grads": expected_grads,
        "params": {name: whole(parameter) for name, parameter in model.named_parameters()},
        "expected params": {name: whole(parameter) for name, parameter in plain.named_parameters()},
        "plain grads of rank 0's batch": per_batch[0],
    }


def assert_close(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert list(got) == list(expected)
    for name in expected:
        assert torch.allclose(got[name], expected[name], rtol=1e-5, atol=1e-6), name


@pytest.mark.parametrize("same_batch", [True, False], ids=["same batch", "a batch per rank"])
def test_sharded_forward_backward_and_sgd_step_equal_the_unsharded_model(cluster: Cluster, same_batch: bool) -> None:
    results = cluster.run(train_sharded, same_batch)
    for result in results:
        torch.testing.assert_close(result["output"], result["expected output"], rtol=0, atol=1e-6)
        assert_close(result["grads"], result["expected grads"])
        assert_close(result["params"], result["expected params"])
    assert_close(results[0]["grads"], results[1]["grads"])
    assert_close(results[0]["params"], results[1]["params"])
    if same_batch:  # averaging over ranks that saw the same batch gives the single-process gradient
        assert_close(results[0]["grads"], results[0]["plain grads of rank 0's batch"])
    else:
        assert not torch.equal(results[0]["output"], results[1]["output"])
        differs = results[0]["grads"]["head.weight"] - results[0]["plain grads of rank 0's batch"]["head.weight"]
        assert differs.abs().max() > 1e-3  # so the mean above is not the one batch's gradient


# --- options that pass through to fully_shard


def mixed_precision() -> tuple[torch.dtype, torch.dtype, torch.dtype]:
    model = seeded()
    distributed.shard(model, fl.Chain, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16))
    output = model(batch(1))
    reshard(model)
    return output.dtype, model.head.weight.dtype, model.blocks.Chain_1.Linear.weight.dtype


def test_a_mixed_precision_policy_passes_through(cluster: Cluster) -> None:
    results = cluster.run(mixed_precision)
    assert results[0] == results[1]
    output, head, block = results[0]
    assert output == torch.bfloat16
    assert (head, block) == (torch.float32, torch.float32)  # sharded parameters stay in float32


def after_forward(reshard_after_forward: bool) -> dict[str, bool]:
    model = seeded()
    distributed.shard(model, fl.Chain, reshard_after_forward=reshard_after_forward)
    model(batch(1))
    return {name: isinstance(parameter, DTensor) for name, parameter in model.named_parameters()}


def test_reshard_after_forward_passes_through(cluster: Cluster) -> None:
    resharding, keeping = cluster.run(after_forward, True), cluster.run(after_forward, False)
    assert resharding[0] == resharding[1]
    assert keeping[0] == keeping[1]
    # By default the blocks let their whole parameters go after forward (the root keeps its own).
    assert resharding[0]["blocks.Chain_1.Linear.weight"]
    assert resharding[0]["blocks.Chain_2.Linear.weight"]
    assert not any(keeping[0].values())


# --- surgery on a sharded tree


SURGERY: dict[str, Callable[[fl.Chain], object]] = {
    "append inside a wrapped Chain": lambda model: model.blocks.Chain_1.append(fl.ReLU()),
    "pop from a wrapped Chain": lambda model: model.blocks.Chain_1.pop(),
    "replace in a wrapped Chain": lambda model: model.blocks.Chain_1.replace("ReLU", fl.Tanh()),
    "pop a wrapped node": lambda model: model.blocks.pop(0),
    "replace a wrapped node": lambda model: model.blocks.replace("Chain_2", fl.Chain(fl.Linear(7, 7))),
    "insert at the wrapped root": lambda model: model.insert(1, fl.ReLU()),
    "remove a leaf of the wrapped root": lambda model: model.remove("head"),
    "insert_after_type": lambda model: model.blocks.Chain_2.insert_after_type(fl.Linear, fl.Dropout(0.1)),
}


def surgery_on_sharded(operation: str) -> tuple[tuple[bool, str], bool]:
    model = seeded()
    distributed.shard(model, "blocks.*")
    before = tree_state(model)
    refused = tree_error(lambda: SURGERY[operation](model))
    return refused, same_state(before, tree_state(model))


@pytest.mark.parametrize("operation", list(SURGERY))
def test_surgery_on_a_sharded_tree_is_refused_and_changes_nothing(cluster: Cluster, operation: str) -> None:
    results = cluster.run(surgery_on_sharded, operation)
    assert results[0] == results[1]
    (is_tree_error, message), unchanged = results[0]
    assert is_tree_error, message
    assert "do surgery before sharding" in message, message
    assert "fluxion.distributed.unshard" in message, message
    assert unchanged


def pop_wrapped_from_plain_parent() -> tuple[tuple[str, str], tuple[str, str], list[str]]:
    """With torch's own fully_shard on one node (the root left plain), its plain parent still refuses."""
    model = seeded()
    fully_shard(model.blocks.Chain_1)
    popped = outcome(lambda: model.blocks.pop(0))
    # A Chain out of any sharded part still takes surgery.
    plain_part = outcome(lambda: model.blocks.Chain_2.append(fl.Tanh()))
    return popped, plain_part, [name for name, _ in model.named_modules()]


def test_a_plain_parent_refuses_to_let_a_wrapped_child_go(cluster: Cluster) -> None:
    results = cluster.run(pop_wrapped_from_plain_parent)
    assert results[0] == results[1]
    (kind, message), plain_part, names = results[0]
    assert kind == "TreeError"
    assert "Chain at 'blocks.Chain_1'" in message
    assert "do surgery before sharding" in message
    assert plain_part == ("ok", "")
    assert "blocks.Chain_1.Linear" in names
    assert "blocks.Chain_2.Tanh" in names


def adapters_on_sharded() -> dict[str, Any]:
    model = seeded()
    distributed.shard(model, fl.Chain)
    before = tree_state(model)
    injected = outcome(lambda: lora.inject(model, rank=2))
    unchanged = same_state(before, tree_state(model))

    adapted = seeded()
    lora.inject(adapted, rank=2, targets="head")
    distributed.shard(adapted, fl.Chain)
    with_lora = tree_state(adapted)
    ejected = outcome(lambda: lora.eject(adapted))
    merged = outcome(lambda: lora.merge(adapted))
    return {
        "inject": injected,
        "unchanged": unchanged,
        "eject": ejected,
        "merge": merged,
        "adapted unchanged": same_state(with_lora, tree_state(adapted)),
    }


def test_adapters_cannot_be_injected_ejected_or_merged_on_a_sharded_tree(cluster: Cluster) -> None:
    results = cluster.run(adapters_on_sharded)
    assert results[0] == results[1]
    result = results[0]
    for action in ("inject", "eject", "merge"):
        kind, message = result[action]
        assert kind in {"AdapterError", "TreeError"}, (action, kind, message)
        assert "do surgery before sharding" in message, (action, message)
    assert result["unchanged"]
    assert result["adapted unchanged"]


# --- copies of a sharded tree


def structural_copies() -> tuple[tuple[str, str], tuple[str, str]]:
    model = seeded()
    distributed.shard(model, fl.Chain)
    return outcome(model.structural_copy), outcome(lambda: model.blocks[0:1])


def test_a_structural_copy_of_a_sharded_tree_is_refused(cluster: Cluster) -> None:
    results = cluster.run(structural_copies)
    assert results[0] == results[1]
    for kind, message in results[0]:
        assert kind == "TreeError", (kind, message)
        assert "fluxion.distributed.unshard" in message


def test_without_a_process_group_shard_says_how_to_start_one() -> None:
    with pytest.raises(DistributedError, match="torchrun"):
        distributed.shard(build(), fl.Chain)


# --- unshard


def unshard_tied_and_modes() -> dict[str, Any]:
    torch.manual_seed(0)
    model = Tied()
    distributed.shard(model, "body", reshard_after_forward=False)
    tokens = torch.tensor([[1, 2, 3], [4, 5, 0]])
    output = model(tokens).detach()  # every group now holds whole parameters: unshard takes them back
    model.body.eval()
    plain = distributed.unshard(model)
    again = distributed.unshard(model)
    with torch.no_grad():
        plain.head.weight.add_(1.0)  # a plain copy of its own: neither the model nor another copy changes
    return {
        "tied": plain.head.weight is plain.embed.weight,
        "keys": list(plain.state_dict()) == list(Tied().state_dict()),
        "names": [name for name, _ in plain.named_modules()] == [name for name, _ in model.named_modules()],
        "classes": sorted({type(node).__name__ for node in plain.modules()}),
        "modes": [(name, node.training) for name, node in plain.named_modules()],
        "output": torch.equal(again(tokens), output),
        "model untouched": torch.equal(model(tokens), output),
        "wrapped": is_wrapped(model) and not any(is_wrapped(node) for node in plain.modules()),
        "surgery on the copy": outcome(lambda: plain.body.append(fl.ReLU())),
    }


def test_unshard_gives_a_plain_copy_with_tied_weights_and_modes(cluster: Cluster) -> None:
    results = cluster.run(unshard_tied_and_modes)
    assert results[0] == results[1]
    result = results[0]
    assert result.pop("modes") == [("", True), ("embed", True), ("body", False), ("body.Linear", False), ("head", True)]
    assert result.pop("classes") == ["Chain", "Embedding", "Linear", "Tied"]
    assert result.pop("surgery on the copy") == ("ok", "")
    assert all(result.values()), result


def unshard_unloaded_meta_model() -> tuple[str, str]:
    with torch.device("meta"):
        model = seeded()
    distributed.shard(model, fl.Chain)
    return outcome(lambda: distributed.unshard(model))


def test_unshard_of_a_model_still_on_meta_is_a_distributed_error(cluster: Cluster) -> None:
    results = cluster.run(unshard_unloaded_meta_model)
    assert results[0] == results[1]
    kind, message = results[0]
    assert kind == "DistributedError", (kind, message)
    assert "meta" in message


def single_process_weights_on_a_sharded_model(folder: str) -> dict[str, tuple[str, str]]:
    model = seeded()
    lora.inject(model, rank=2)
    distributed.shard(model, fl.Chain)
    before = tree_state(model)
    results = {
        "weights.save": outcome(lambda: weights.save(model, f"{folder}/model-{distributed.rank()}.safetensors")),
        "lora.save": outcome(lambda: lora.save(model, f"{folder}/lora-{distributed.rank()}.safetensors")),
        "weights.load": outcome(lambda: weights.load(model, {"head.weight": torch.zeros(3, 7)}, strict=False)),
    }
    assert same_state(before, tree_state(model))
    return results


def test_single_process_weight_functions_refuse_a_sharded_model_and_point_to_distributed(
    cluster: Cluster, tmp_path: Path
) -> None:
    results = cluster.run(single_process_weights_on_a_sharded_model, str(tmp_path))
    assert results[0] == results[1]
    found = results[0]
    assert found["weights.save"][0] == "WeightsError"
    assert (
        "sharded across processes (a DTensor); save a sharded model with fluxion.distributed.save"
        in (found["weights.save"][1])
    )
    assert found["lora.save"][0] == "AdapterError"
    assert "fluxion.distributed.save" in found["lora.save"][1]
    assert found["weights.load"][0] == "WeightsError"
    assert "load into a sharded model with fluxion.distributed.load" in found["weights.load"][1]
    assert not list(tmp_path.iterdir())  # nothing written


def shard_with_a_scalar_parameter() -> tuple[tuple[str, str], list[str]]:
    model = seeded()
    model.head.register_parameter("gain", torch.nn.Parameter(torch.tensor(2.0)))
    refused = outcome(lambda: distributed.shard(model, fl.Chain))
    return refused, [address for address, node in model.named_modules() if is_wrapped(node)]


def test_a_scalar_parameter_is_refused_before_anything_is_wrapped(cluster: Cluster) -> None:
    results = cluster.run(shard_with_a_scalar_parameter)
    assert results[0] == results[1]
    (error, message), wrapped = results[0]
    assert error == "DistributedError"
    assert message.startswith("head.gain is a 0-dimensional parameter, which fully_shard cannot shard")
    assert wrapped == []
