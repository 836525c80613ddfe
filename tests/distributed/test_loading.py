"""fluxion.distributed.load on two gloo ranks: every kind of checkpoint into a tree built on meta and
sharded, each rank holding exactly its block; a mapped foreign checkpoint (transformers' GPT-2);
values copied into a model that has them; damaged checkpoints refused the same way on both ranks
with both models left as they were.

The checkpoints are written here, in the test process; the steps run on both ranks and return
what they saw (plain values), which the tests check.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file
from torch.distributed.tensor import DTensor

import fluxion.layers as fl
from fluxion import distributed, spec, weights
from fluxion.errors import WeightsWarning
from fluxion.weights import KeyMapping, Rule
from tests.distributed import helpers
from tests.distributed.helpers import Cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GPT2_SPEC = EXAMPLES / "gpt2.jsonnet"
GPT2_MAPPING = EXAMPLES / "gpt2.mapping.json"
BLOCKS = ["blocks.Chain_1", "blocks.Chain_2"]
GPT2_TLA = {"depth": 2, "width": 16, "heads": 2, "vocab": 101, "positions": 16}  # odd vocab: uneven shards


def build() -> fl.Chain:
    """Sizes 7 and 3 split unevenly over two ranks (4 + 3 and 2 + 1 rows); BatchNorm brings buffers."""
    return fl.Chain(
        blocks=fl.Chain(
            fl.Chain(fl.Linear(5, 7), fl.BatchNorm1d(7), fl.ReLU()),
            fl.Chain(fl.Linear(7, 7), fl.ReLU()),
        ),
        head=fl.Linear(7, 3),
    )


def reference() -> fl.Chain:
    """The model every checkpoint here holds, the same in every process; eval mode (running stats)."""
    torch.manual_seed(0)
    model = build()
    norm = model["blocks.Chain_1.BatchNorm1d"]
    assert isinstance(norm, torch.nn.BatchNorm1d)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2.0)
        norm.num_batches_tracked.fill_(5)
    return model.eval()


def meta_model() -> fl.Chain:
    with torch.device("meta"):
        return build().eval()


def inputs() -> torch.Tensor:
    return torch.randn(4, 5, generator=torch.Generator().manual_seed(1))


def whole(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def block_of(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The block of ``full`` this rank should hold for ``like``: torch.chunk along dim 0 when sharded."""
    if not isinstance(like, DTensor) or full.dim() == 0:
        return full
    parts = torch.chunk(full, distributed.world_size(), dim=0)
    rank = distributed.rank()
    return parts[rank] if rank < len(parts) else full[:0]


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.state_dict(keep_vars=True))


def inspect_loaded(model: torch.nn.Module) -> dict[str, Any]:
    """What a test checks after a load: blocks against the reference's, shapes, meta-ness, forward."""
    expected = reference().state_dict()
    tensors = state(model)
    with torch.no_grad():
        output, expected_output = model(inputs()), reference()(inputs())
    return {
        "keys": sorted(tensors),
        "on_meta": sorted(key for key, tensor in tensors.items() if tensor.is_meta),
        "sharded": sorted(key for key, tensor in tensors.items() if isinstance(tensor, DTensor)),
        "blocks_equal": {
            key: torch.equal(local(tensor).detach(), block_of(expected[key], tensor)) for key, tensor in tensors.items()
        },
        "local_shapes": {key: tuple(local(tensor).shape) for key, tensor in tensors.items()},
        "whole_equal": {key: torch.equal(whole(tensor).detach(), expected[key]) for key, tensor in tensors.items()},
        "forward_difference": (output - expected_output).abs().max().item(),
    }


# ---- the checkpoints, written by the test process


def write_single_file(folder: Path) -> Path:
    path = folder / "model.safetensors"
    weights.save(reference(), path)
    return path


def write_index(folder: Path) -> Path:
    """An index and two shard files, the way ``save_pretrained`` splits a large model."""
    shards = folder / "index"
    shards.mkdir()
    tensors = reference().state_dict()
    names = sorted(tensors)
    weight_map: dict[str, str] = {}
    for number, part in enumerate((names[::2], names[1::2]), start=1):
        file = f"model-{number:05d}-of-00002.safetensors"
        save_file({key: tensors[key].contiguous() for key in part}, shards / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    index = shards / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return index


def write_folder(folder: Path) -> Path:
    """A folder of two safetensors files and no index: every file in it is read."""
    files = folder / "files"
    files.mkdir()
    tensors = reference().state_dict()
    save_file({key: value for key, value in tensors.items() if key.startswith("blocks.")}, files / "blocks.safetensors")
    save_file({key: value for key, value in tensors.items() if key.startswith("head.")}, files / "head.safetensors")
    return files


def write_pt(folder: Path) -> Path:
    path = folder / "model.pt"
    torch.save(reference().state_dict(), path)
    return path


def save_reference_sharded(folder: str, name: str, native: bool = False) -> None:
    """Rank step: the reference, sharded by its Chains (a layout unlike the loads' ones), saved through
    ``distributed.save`` (DCP's Hugging Face layout) or, ``native``, DCP's own ``save`` and format."""
    model = reference()
    distributed.shard(model, fl.Chain)
    if native:
        dcp.save(model.state_dict(), checkpoint_id=Path(folder) / name)
    else:
        distributed.save(model, Path(folder) / name)


# ---- loading every kind of checkpoint into a meta-built sharded tree


def load_into_meta(source: str, targets: Any) -> dict[str, Any]:
    """Rank step: build on meta, shard by ``targets``, load ``source`` ("dict": the reference's state dict)."""
    model = meta_model()
    wrapped = distributed.shard(model, targets).wrapped
    given: Any = reference().state_dict() if source == "dict" else source
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeightsWarning)  # nothing may stay on meta
        result = distributed.load(model, given)
    return {
        **inspect_loaded(model),
        "wrapped": wrapped,
        "loaded": sorted(result.loaded),
        "missing": result.missing,
        "unexpected": result.unexpected,
        "still_meta": result.still_meta,
    }


def check_loaded(results: list[dict[str, Any]]) -> None:
    keys = sorted(reference().state_dict())
    for rank, found in enumerate(results):
        assert found["keys"] == keys
        assert found["loaded"] == keys
        assert (found["missing"], found["unexpected"], found["still_meta"], found["on_meta"]) == ((), (), (), [])
        assert all(found["blocks_equal"].values()), f"rank {rank}: {found['blocks_equal']}"
        assert all(found["whole_equal"].values()), f"rank {rank}: {found['whole_equal']}"
        assert found["forward_difference"] < 1e-6
        assert "blocks.Chain_1.Linear.weight" in found["sharded"]
        assert "blocks.Chain_1.BatchNorm1d.running_mean" not in found["sharded"]  # buffers are not sharded
    # torch.chunk's blocks: 7 rows are 4 + 3, 3 rows are 2 + 1
    shapes = [found["local_shapes"] for found in results]
    assert [s["blocks.Chain_1.Linear.weight"] for s in shapes] == [(4, 5), (3, 5)]
    assert [s["blocks.Chain_2.Linear.bias"] for s in shapes] == [(4,), (3,)]
    assert [s["head.weight"] for s in shapes] == [(2, 7), (1, 7)]
    assert [s["blocks.Chain_1.BatchNorm1d.num_batches_tracked"] for s in shapes] == [(), ()]


@pytest.mark.parametrize("kind", ["file", "index", "folder", "pt", "dict"])
def test_each_kind_of_checkpoint_loads_into_a_sharded_meta_model(cluster: Cluster, tmp_path: Path, kind: str) -> None:
    writers = {"file": write_single_file, "index": write_index, "folder": write_folder, "pt": write_pt}
    source = "dict" if kind == "dict" else str(writers[kind](tmp_path))

    results = cluster.run(load_into_meta, source, BLOCKS)

    assert results[0]["wrapped"] == ("blocks.Chain_1", "blocks.Chain_2", "")
    check_loaded(results)


def test_the_folder_save_writes_loads_into_a_model_sharded_another_way(cluster: Cluster, tmp_path: Path) -> None:
    cluster.run(save_reference_sharded, str(tmp_path), "checkpoint")
    assert sorted(path.name for path in (tmp_path / "checkpoint").glob("*.safetensors")) == [
        "shard-00001-model-00001-of-00001.safetensors",
        "shard-00002-model-00001-of-00001.safetensors",
    ]

    results = cluster.run(load_into_meta, str(tmp_path / "checkpoint"), fl.Linear)

    assert results[0]["wrapped"] == ("blocks.Chain_1.Linear", "blocks.Chain_2.Linear", "head", "")
    check_loaded(results)


def test_a_folder_in_dcps_own_format_loads_too(cluster: Cluster, tmp_path: Path) -> None:
    cluster.run(save_reference_sharded, str(tmp_path), "checkpoint", True)
    assert (tmp_path / "checkpoint" / ".metadata").is_file()

    results = cluster.run(load_into_meta, str(tmp_path / "checkpoint"), fl.Linear)

    assert results[0]["wrapped"] == ("blocks.Chain_1.Linear", "blocks.Chain_2.Linear", "head", "")
    check_loaded(results)


def test_an_unsharded_model_in_a_process_group_loads_whole(cluster: Cluster, tmp_path: Path) -> None:
    results = cluster.run(load_whole, str(write_single_file(tmp_path)))

    assert results == [True, True]


def load_whole(source: str) -> bool:
    model = meta_model()
    distributed.load(model, source)
    expected = reference().state_dict()
    return all(torch.equal(tensor, expected[key]) for key, tensor in model.state_dict().items())


def load_converted(source: str) -> dict[str, Any]:
    """Rank step: a bfloat16 checkpoint into the float32 sharded meta model, beside fluxion.weights.load's result."""
    model = meta_model()
    distributed.shard(model, BLOCKS)
    distributed.load(model, source)
    plain = build()
    weights.load(plain, source)
    expected = plain.state_dict()
    return {
        "dtypes": sorted({str(tensor.dtype) for tensor in state(model).values()}),
        "equal": all(torch.equal(whole(tensor).detach(), expected[key]) for key, tensor in state(model).items()),
    }


def test_a_checkpoint_in_another_dtype_is_converted_as_fluxion_weights_load_converts_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    tensors = {
        key: value.to(torch.bfloat16) if value.is_floating_point() else value
        for key, value in reference().state_dict().items()
    }
    weights.save(tensors, tmp_path / "half.safetensors")

    results = cluster.run(load_converted, str(tmp_path / "half.safetensors"))

    assert results == [{"dtypes": ["torch.float32", "torch.int64"], "equal": True}] * 2


# ---- a foreign checkpoint through a key mapping: transformers' GPT-2


def gpt2_step(folder: str, ids: list[list[int]]) -> dict[str, Any]:
    """Rank step: fluxion's GPT-2 built on meta, each block and the root sharded, loaded through the mapping."""
    file = Path(folder) / "model.safetensors"
    model = spec.load(GPT2_SPEC, tla=GPT2_TLA, device="meta")
    wrapped = distributed.shard(model, ["transformer.h.0", "transformer.h.1"]).wrapped
    result = distributed.load(model, file, mapping=GPT2_MAPPING)
    plain = spec.load(GPT2_SPEC, tla=GPT2_TLA, device="meta")
    weights.load(plain, file, mapping=GPT2_MAPPING)
    expected = plain.state_dict()
    tensors = state(model)
    # read before the forward: FSDP leaves the root's parameters unsharded after it
    vocab_rows = tuple(local(model.transformer.wte.weight).shape)
    with torch.no_grad():
        logits = model.eval()(torch.tensor(ids))
    return {
        "wrapped": wrapped,
        "still_meta": result.still_meta,
        "on_meta": [key for key, tensor in tensors.items() if tensor.is_meta],
        "tied": model.lm_head.weight is model.transformer.wte.weight,
        "blocks_equal": {
            key: torch.equal(local(tensor).detach(), block_of(expected[key], tensor)) for key, tensor in tensors.items()
        },
        "vocab_rows": vocab_rows,
        "logits": logits.tolist(),
    }


def test_a_mapped_gpt2_checkpoint_from_transformers_loads_into_a_sharded_fluxion_gpt2(
    cluster: Cluster, tmp_path: Path
) -> None:
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=GPT2_TLA["depth"],
        n_embd=GPT2_TLA["width"],
        n_head=GPT2_TLA["heads"],
        vocab_size=GPT2_TLA["vocab"],
        n_positions=GPT2_TLA["positions"],
        bos_token_id=0,
        eos_token_id=0,
    )
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # LayerNorms away from ones and zeros, so that they matter
        for module in hf.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
    hf.save_pretrained(tmp_path)
    ids = torch.randint(0, GPT2_TLA["vocab"], (2, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = hf(ids, use_cache=False).logits
        unsharded = spec.load(GPT2_SPEC, tla=GPT2_TLA, device="meta")
        weights.load(unsharded, tmp_path / "model.safetensors", mapping=GPT2_MAPPING)
        unsharded_logits = unsharded.eval()(ids)

    results = cluster.run(gpt2_step, str(tmp_path), ids.tolist())

    assert results[0]["wrapped"] == ("transformer.h.0", "transformer.h.1", "")
    assert [found["vocab_rows"] for found in results] == [(51, 16), (50, 16)]
    for rank, found in enumerate(results):
        assert found["tied"]
        assert (found["still_meta"], found["on_meta"]) == ((), [])
        assert all(found["blocks_equal"].values()), f"rank {rank}: {found['blocks_equal']}"
        logits = torch.tensor(found["logits"])
        torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(logits, unsharded_logits, atol=1e-6, rtol=0)


# ---- a model that has values: copied in place


def load_in_place(source: str) -> dict[str, Any]:
    """Rank step: a sharded model with other values and an optimizer; load, then one step of both."""
    torch.manual_seed(1)
    model = build().eval()
    distributed.shard(model, BLOCKS)
    parameters = dict(model.named_parameters())
    storage = {key: local(parameter).data_ptr() for key, parameter in parameters.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    distributed.load(model, source)

    after = dict(model.named_parameters())
    same_objects = all(after[key] is parameter for key, parameter in parameters.items())
    held = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
    loaded = inspect_loaded(model)

    expected = reference()
    expected_optimizer = torch.optim.SGD(expected.parameters(), lr=0.1)
    for net, opt in ((model, optimizer), (expected, expected_optimizer)):
        net(inputs()).square().sum().backward()
        opt.step()
    trained = {key: whole(tensor).detach() for key, tensor in model.named_parameters()}
    return {
        **loaded,
        "same_objects": same_objects,
        "optimizer_holds_them": held == {id(parameter) for parameter in after.values()},
        "same_storage": all(local(after[key]).data_ptr() == pointer for key, pointer in storage.items()),
        "trained_difference": max(
            (trained[key] - tensor).abs().max().item() for key, tensor in expected.named_parameters()
        ),
    }


def test_a_sharded_model_with_values_gets_them_copied_in_place(cluster: Cluster, tmp_path: Path) -> None:
    results = cluster.run(load_in_place, str(write_single_file(tmp_path)))

    for rank, found in enumerate(results):
        assert (found["same_objects"], found["optimizer_holds_them"], found["same_storage"]) == (True, True, True)
        assert all(found["blocks_equal"].values()), f"rank {rank}: {found['blocks_equal']}"
        assert found["forward_difference"] < 1e-6
        assert found["trained_difference"] < 1e-6  # the optimizer stepped the loaded parameters


# ---- strict=False, prefix, progress


def load_partly(folder: str) -> dict[str, Any]:
    model = meta_model()
    distributed.shard(model, BLOCKS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = distributed.load(model, Path(folder) / "partial.safetensors", strict=False)
    return {
        **inspect_loaded_part(model),
        "loaded": sorted(result.loaded),
        "missing": result.missing,
        "unexpected": result.unexpected,
        "still_meta": result.still_meta,
        "warned": [str(warning.message) for warning in caught if issubclass(warning.category, WeightsWarning)],
    }


def inspect_loaded_part(model: torch.nn.Module) -> dict[str, Any]:
    expected = reference().state_dict()
    tensors = state(model)
    return {
        "on_meta": sorted(key for key, tensor in tensors.items() if tensor.is_meta),
        "blocks_equal": {
            key: torch.equal(local(tensor).detach(), block_of(expected[key], tensor))
            for key, tensor in tensors.items()
            if not tensor.is_meta
        },
    }


def test_strict_false_returns_what_is_missing_and_unexpected(cluster: Cluster, tmp_path: Path) -> None:
    tensors = reference().state_dict()
    del tensors["head.bias"]
    tensors["extra.weight"] = torch.ones(2)
    weights.save(tensors, tmp_path / "partial.safetensors")

    results = cluster.run(load_partly, str(tmp_path))

    assert results[0] == results[1]
    for found in results:
        assert found["loaded"] == sorted(set(tensors) - {"extra.weight"})
        assert (found["missing"], found["unexpected"]) == (("head.bias",), ("extra.weight",))
        assert found["still_meta"] == ("head.bias",)
        assert found["on_meta"] == ["head.bias"]
        assert len(found["warned"]) == 1
        assert "head.bias" in found["warned"][0]
        assert all(found["blocks_equal"].values())


def load_with_prefix(folder: str) -> dict[str, Any]:
    model = meta_model()
    distributed.shard(model, BLOCKS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsWarning)  # the head stays on meta: that is the point
        result = distributed.load(model, Path(folder) / "blocks.safetensors", prefix="blocks")
    return {**inspect_loaded_part(model), "loaded": sorted(result.loaded), "still_meta": result.still_meta}


def test_prefix_loads_a_checkpoint_of_one_subtree(cluster: Cluster, tmp_path: Path) -> None:
    tensors = reference().state_dict()
    part = {key.removeprefix("blocks."): value for key, value in tensors.items() if key.startswith("blocks.")}
    weights.save(part, tmp_path / "blocks.safetensors")

    results = cluster.run(load_with_prefix, str(tmp_path))

    for found in results:
        assert found["loaded"] == sorted(f"blocks.{key}" for key in part)
        assert found["on_meta"] == ["head.bias", "head.weight"]
        assert sorted(found["still_meta"]) == ["head.bias", "head.weight"]
        assert all(found["blocks_equal"].values())


def load_quietly(source: str, progress: bool) -> tuple[str, str]:
    model = meta_model()
    distributed.shard(model, BLOCKS)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        distributed.load(model, source, progress=progress)
    return out.getvalue(), err.getvalue()


def test_progress_false_prints_nothing_and_true_draws_on_rank_0_only(cluster: Cluster, tmp_path: Path) -> None:
    source = str(write_single_file(tmp_path))

    assert cluster.run(load_quietly, source, False) == [("", ""), ("", "")]
    (out_0, err_0), (out_1, err_1) = cluster.run(load_quietly, source, True)
    assert (out_0, out_1, err_1) == ("", "", "")
    assert err_0.startswith("\rloading model.safetensors [")
    assert err_0.endswith("\n")
    assert "100%" in err_0.rsplit("\r", 1)[-1]


# ---- damaged checkpoints: the same error on both ranks, both models untouched


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """Every tensor's whole value (None on meta), to compare after a failed load."""
    return {key: None if tensor.is_meta else whole(tensor).detach().clone() for key, tensor in state(model).items()}


def untouched(model: torch.nn.Module, before: dict[str, torch.Tensor | None], objects: dict[str, Any]) -> bool:
    now = state(model)
    if set(now) != set(before) or any(now[key] is not objects[key] for key in now):
        return False
    for key, tensor in now.items():
        old = before[key]
        if (old is None) != tensor.is_meta or (old is not None and not torch.equal(whole(tensor).detach(), old)):
            return False
    return True


def failing_load(source: str, mapping: Any, strict: bool) -> dict[str, Any]:
    """Rank step: try ``source`` on a meta model and on one with values; the errors and whether they changed."""
    torch.manual_seed(2)
    models = {"meta": meta_model(), "values": build().eval()}
    outcome: dict[str, Any] = {}
    for name, model in models.items():
        distributed.shard(model, BLOCKS)
        before, objects = snapshot(model), state(model)
        try:
            distributed.load(model, source, mapping=resolve_mapping(mapping), strict=strict)
        except BaseException as error:  # recorded, checked by the test (torch's CheckpointException is one)
            outcome[name] = (type(error).__name__, str(error), untouched(model, before, objects))
        else:
            outcome[name] = ("no error", "", untouched(model, before, objects))
    return outcome


def resolve_mapping(mapping: Any) -> Any:
    """Mappings that fail in the rank: a function that raises, or a rule that transposes a bias."""
    if mapping == "raising function":

        def rename(key: str) -> str:
            if key == "head.bias":
                raise ValueError("no head here")
            return key

        return KeyMapping(function=rename)
    if mapping == "transposed bias":
        return KeyMapping(rules=[Rule(r"^head\.bias$", "head.bias", transpose=True)])
    return mapping


def damage(tmp_path: Path, kind: str, cluster: Cluster) -> tuple[str, Any, bool]:
    """Write the damaged checkpoint ``kind``; the source, the mapping and strict to load it with."""
    good = reference().state_dict()
    path = tmp_path / "model.safetensors"
    if kind == "shape mismatch":
        weights.save(good | {"head.weight": torch.zeros(3, 8)}, path)
    elif kind == "missing key":
        weights.save({key: value for key, value in good.items() if key != "head.bias"}, path)
    elif kind == "unexpected key":
        weights.save(good | {"head.scale": torch.ones(3)}, path)
    elif kind == "truncated file":
        weights.save(good, path)
        path.write_bytes(path.read_bytes()[:-7])
    elif kind == "corrupted header":
        weights.save(good, path)
        data = bytearray(path.read_bytes())
        data[8:12] = b"\xff\x00{!"
        path.write_bytes(bytes(data))
    elif kind in ("missing piece", "missing last piece"):
        cluster.run(save_reference_sharded, str(tmp_path), "checkpoint")
        number = 1 if kind == "missing piece" else 2
        (tmp_path / "checkpoint" / f"shard-{number:05d}-model-00001-of-00001.safetensors").unlink()
        return str(tmp_path / "checkpoint"), None, True
    elif kind == "missing dcp file":
        cluster.run(save_reference_sharded, str(tmp_path), "checkpoint", True)
        (tmp_path / "checkpoint" / "__1_0.distcp").unlink()
        return str(tmp_path / "checkpoint"), None, True
    else:
        weights.save(good, path)
        return str(path), kind, True
    return str(path), None, True


DAMAGE = {
    "shape mismatch": ("WeightsError", "head.weight: model has shape (3, 7), checkpoint 'head.weight' has (3, 8)"),
    "missing key": (
        "WeightsError",
        "does not fit the model: 1 missing\n  missing from the checkpoint (1):\n    head.bias",
    ),
    "unexpected key": ("WeightsError", "1 unexpected\n  unexpected in the checkpoint (1):\n    head.scale"),
    "truncated file": ("WeightsError", "the file is truncated or damaged"),
    "corrupted header": ("WeightsError", "not a valid safetensors file (its header is not JSON"),
    "missing piece": ("WeightsError", "a piece is missing"),
    "missing last piece": ("WeightsError", "a piece is missing"),
    "missing dcp file": ("WeightsError", "__1_0.distcp"),
    "raising function": ("WeightsError", "the mapping function failed on 'head.bias': ValueError: no head here"),
    "transposed bias": ("WeightsError", "cannot transpose a tensor of shape (3,)"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_checkpoint_raises_the_same_error_on_both_ranks_and_changes_nothing(
    cluster: Cluster, tmp_path: Path, kind: str
) -> None:
    source, mapping, strict = damage(tmp_path, kind, cluster)

    results = cluster.run(failing_load, source, mapping, strict)

    kind_name, fragment = DAMAGE[kind]
    assert results[0] == results[1]  # the same class and message on both ranks, for both models
    for found in results:
        for model in ("meta", "values"):
            error, message, unchanged = found[model]
            assert error == kind_name
            assert fragment in message
            assert not message.startswith("rank ")  # every rank found it: no rank named
            assert unchanged


def load_per_rank(sources: list[str]) -> dict[str, Any]:
    """Rank step: each rank loads its own ``sources[rank]`` (as a mistaken script would)."""
    return failing_load(sources[distributed.rank()], None, True)


def test_a_problem_on_one_rank_only_stops_both_with_that_rank_named(cluster: Cluster, tmp_path: Path) -> None:
    good = str(write_single_file(tmp_path))
    absent = str(tmp_path / "elsewhere" / "model.safetensors")

    results = cluster.run(load_per_rank, [good, absent])

    assert results[0] == results[1]
    for found in results:
        for model in ("meta", "values"):
            error, message, unchanged = found[model]
            assert error == "WeightsError"
            assert message == f"rank 1: checkpoint {absent!r} does not exist"
            assert unchanged
    # the ranks are still in step: the next load works
    check_loaded(cluster.run(load_into_meta, good, BLOCKS))


def test_ranks_given_checkpoints_of_different_kinds_are_stopped_not_left_waiting(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helpers, "TIMEOUT", 8.0)  # a hang shows in seconds, not minutes
    cluster.run(save_reference_sharded, str(tmp_path), "native", True)
    file = write_single_file(tmp_path)

    results = cluster.run(load_per_rank, [str(tmp_path / "native"), str(file)])

    assert results[0] == results[1]
    error, message, unchanged = results[0]["meta"]
    assert error == "DistributedError"
    assert unchanged
    assert message.startswith("the ranks were given different checkpoints: rank 0 a folder in DCP's format, ")
    assert "rank 1 safetensors or a state dict, " in message


def test_a_damaged_file_on_one_rank_only_stops_both(cluster: Cluster, tmp_path: Path) -> None:
    """Rank 1's copy of the file ends early: its header claims bytes the file does not have."""
    good = write_single_file(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(good, other / "model.safetensors")
    cut = other / "model.safetensors"
    cut.write_bytes(cut.read_bytes()[:-3])

    results = cluster.run(load_per_rank, [str(good), str(cut)])

    assert results[0] == results[1]
    error, message, unchanged = results[0]["meta"]
    assert error == "WeightsError"
    assert unchanged
    assert message.startswith(f"rank 1: {cut}: tensor ")
    assert "the file is truncated or damaged" in message


# ---- shards of nothing


class Scale(torch.nn.Module):
    """A leaf with a one-element parameter: on two ranks, rank 1's shard of it is empty."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([2.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def build_narrow() -> fl.Chain:
    return fl.Chain(narrow=fl.Chain(fl.Linear(4, 1), Scale()), head=fl.Linear(1, 3))


def narrow_reference() -> fl.Chain:
    torch.manual_seed(0)
    return build_narrow()


def load_narrow(source: str) -> dict[str, Any]:
    """Rank step: tensors of one row (rank 1 holds none of them) load into a meta model and run."""
    expected = narrow_reference()
    with torch.device("meta"):
        model = build_narrow()
    distributed.shard(model, "narrow")
    distributed.load(model, source)
    tensors = state(model)
    with torch.no_grad():
        difference = (model(torch.ones(2, 4)) - expected(torch.ones(2, 4))).abs().max().item()
    return {
        "local_shapes": {key: tuple(local(tensor).shape) for key, tensor in tensors.items()},
        "whole_equal": all(torch.equal(whole(t).detach(), expected.state_dict()[k]) for k, t in tensors.items()),
        "forward_difference": difference,
    }


def test_a_rank_whose_shards_are_empty_loads_too(cluster: Cluster, tmp_path: Path) -> None:
    weights.save(narrow_reference(), tmp_path / "model.safetensors")

    results = cluster.run(load_narrow, str(tmp_path / "model.safetensors"))

    assert results[0]["local_shapes"]["narrow.Linear.weight"] == (1, 4)
    assert results[1]["local_shapes"]["narrow.Linear.weight"] == (0, 4)
    assert results[1]["local_shapes"]["narrow.Scale.scale"] == (0,)
    for found in results:
        assert found["whole_equal"]
        assert found["forward_difference"] == 0.0
