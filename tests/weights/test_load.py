"""fluxion.weights.load: round trips, meta loading, conversions, prefixes, and all-or-nothing failures."""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import fluxion.layers as fl
from fluxion.weights import PickleCheckpointWarning, WeightsError, WeightsWarning, load, save
from tests.weights.helpers import mapped_files, meta_small_model, same_state, small_model, state_snapshot


@pytest.fixture
def trained(tmp_path: Path) -> tuple[fl.Chain, Path]:
    torch.manual_seed(0)
    model = small_model()
    path = tmp_path / "model.safetensors"
    save(model, path)
    return model, path


def test_round_trip_gives_the_same_outputs(trained: tuple[fl.Chain, Path]) -> None:
    model, path = trained
    fresh = small_model()
    result = load(fresh, path)
    x = torch.randn(5, 4)
    assert torch.equal(fresh(x), model(x))
    assert set(result.loaded) == set(model.state_dict())
    assert result.missing == result.unexpected == ()


def test_loading_copies_in_place_so_optimizers_keep_their_parameters(trained: tuple[fl.Chain, Path]) -> None:
    _, path = trained
    fresh = small_model()
    parameters = list(fresh.parameters())
    load(fresh, path)
    assert all(a is b for a, b in zip(parameters, fresh.parameters(), strict=True))


def test_a_subtree_saves_and_loads_by_prefix(trained: tuple[fl.Chain, Path], tmp_path: Path) -> None:
    model, path = trained
    fresh = small_model()
    load(fresh, path)
    save(fresh, tmp_path / "again.safetensors")
    again = small_model()
    load(again["head"], tmp_path / "again.safetensors", prefix="head")
    assert same_state(fresh, state_snapshot(model))
    assert torch.equal(again["head"].weight, model["head"].weight)


def test_meta_tree_gets_memory_mapped_tensors(trained: tuple[fl.Chain, Path]) -> None:
    model, path = trained
    fresh = meta_small_model()
    load(fresh, path)
    assert not any(t.is_meta for t in fresh.state_dict().values())
    assert same_state(fresh, state_snapshot(model))
    if sys.platform == "linux":
        assert str(path) in mapped_files(fresh["head"].weight)
    assert isinstance(fresh["head"].weight, torch.nn.Parameter)
    assert fresh["head"].weight.requires_grad


def test_transposed_and_split_tensors_stay_views_of_the_mapped_file(tmp_path: Path) -> None:
    """A fused (in, 3 * out) projection stored as Conv1D does loads as three Linear weights that
    are views of the file (nothing held twice), and the model computes what the fused one does."""
    fused = torch.randn(4, 12)
    path = tmp_path / "fused.safetensors"
    save_file({"c_attn.weight": fused, "kernel": torch.randn(3, 2, 5, 5)}, str(path))
    with torch.device("meta"):
        model = fl.Chain(
            q=fl.Linear(4, 4, bias=False),
            k=fl.Linear(4, 4, bias=False),
            v=fl.Linear(4, 4, bias=False),
            conv=fl.Conv2d(2, 3, 5, bias=False),
        )
    mapping = {
        "rules": [
            {"pattern": r"^c_attn\.weight$", "replace": ["q.weight", "k.weight", "v.weight"], "transpose": True},
            {"pattern": "^kernel$", "replace": "conv.weight"},
        ]
    }
    load(model, path, mapping=mapping)
    for index, name in enumerate("qkv"):
        weight = model[name].weight
        assert torch.equal(weight, fused[:, 4 * index : 4 * index + 4].T)
        assert not weight.is_contiguous()
        if sys.platform == "linux":
            assert str(path) in mapped_files(weight)
    x = torch.randn(2, 4)
    assert torch.allclose(torch.cat([model[name](x) for name in "qkv"], dim=-1), x @ fused, atol=1e-6)
    assert model["conv"].weight.is_contiguous()


def test_writing_to_a_mapped_weight_leaves_the_file_alone(trained: tuple[fl.Chain, Path]) -> None:
    model, path = trained
    fresh = meta_small_model()
    load(fresh, path)
    with torch.no_grad():
        fresh["head"].weight.add_(1.0)
    reloaded = small_model()
    load(reloaded, path)
    assert torch.equal(reloaded["head"].weight, model["head"].weight)


def test_dtype_and_device_options(trained: tuple[fl.Chain, Path]) -> None:
    model, path = trained
    fresh = meta_small_model()
    load(fresh, path, dtype=torch.float16, device="cpu")
    assert {t.dtype for t in fresh.state_dict().values()} == {torch.float16}
    assert torch.equal(fresh["head"].weight, model["head"].weight.half())
    cpu_model = small_model()
    load(cpu_model, path, dtype=torch.bfloat16)
    assert cpu_model["head"].weight.dtype == torch.bfloat16


def test_a_checkpoint_dtype_is_converted_to_the_model_dtype(tmp_path: Path) -> None:
    source = small_model().half()
    save(source, tmp_path / "half.safetensors")
    fresh = small_model()
    load(fresh, tmp_path / "half.safetensors")
    assert fresh["head"].weight.dtype == torch.float32
    assert torch.equal(fresh["head"].weight, source["head"].weight.float())


def test_integer_buffers_keep_their_kind(tmp_path: Path) -> None:
    model = fl.Chain(fl.BatchNorm2d(3))
    model.train()(torch.randn(4, 3, 2, 2))
    save(model, tmp_path / "bn.safetensors")
    fresh = fl.Chain(fl.BatchNorm2d(3))
    load(fresh, tmp_path / "bn.safetensors", dtype=torch.float16)
    assert fresh.BatchNorm2d.num_batches_tracked.dtype == torch.int64
    assert fresh.BatchNorm2d.num_batches_tracked.item() == 1
    assert fresh.BatchNorm2d.running_mean.dtype == torch.float16


def test_failed_load_lists_every_problem_and_changes_nothing(tmp_path: Path) -> None:
    torch.manual_seed(0)
    state = {key: value.clone() for key, value in small_model().state_dict().items()}
    state["Head.weight"] = state.pop("head.weight")  # a typo
    state["blocks.Chain_2.Linear.weight"] = torch.zeros(8, 5)  # a wrong shape
    state["blocks.Chain_1.LayerNorm.bias"] = torch.zeros(8, dtype=torch.int32)  # a wrong kind
    state["extra.weight"] = torch.zeros(1)
    save_file(state, tmp_path / "bad.safetensors")
    model = small_model()
    before = state_snapshot(model)
    with pytest.raises(WeightsError) as caught:
        load(model, tmp_path / "bad.safetensors")
    message = str(caught.value)
    assert "1 missing, 2 unexpected, 2 mismatched" in message
    assert "Head.weight  (did you mean head.weight?)" in message
    assert "blocks.Chain_2.Linear.weight: model has shape (8, 8), checkpoint" in message
    assert "model holds torch.float32" in message
    assert "torch.int32" in message
    assert caught.value.missing == ("head.weight",)
    assert set(caught.value.unexpected) == {"Head.weight", "extra.weight"}
    assert same_state(model, before)


def test_families_of_keys_are_folded(tmp_path: Path) -> None:
    model = fl.Chain(*[fl.Chain(fl.Linear(2, 2)) for _ in range(6)])
    with pytest.raises(WeightsError) as caught:
        load(model, {"Chain_1.Linear.weight": torch.zeros(2, 2)})
    message = str(caught.value)
    assert "11 missing" in message
    assert "Chain_*.Linear.bias  (6 keys: Chain_1.Linear.bias ... Chain_6.Linear.bias)" in message


def test_not_strict_loads_what_fits(trained: tuple[fl.Chain, Path]) -> None:
    model, _ = trained
    state = model.state_dict()
    partial = {"head.weight": state["head.weight"], "stray": torch.zeros(1)}
    fresh = small_model()
    result = load(fresh, partial, strict=False)
    assert result.loaded == ("head.weight",)
    assert "head.bias" in result.missing
    assert result.unexpected == ("stray",)
    assert torch.equal(fresh["head"].weight, model["head"].weight)


def test_not_strict_still_refuses_shape_mismatches() -> None:
    model = small_model()
    before = state_snapshot(model)
    with pytest.raises(WeightsError, match="mismatched"):
        load(model, {"head.weight": torch.zeros(2, 2), "head.bias": torch.ones(3)}, strict=False)
    assert same_state(model, before)


def test_prefix_loads_a_subtree_checkpoint_into_a_subtree() -> None:
    head = fl.Linear(8, 3)
    model = small_model()
    result = load(model, head.state_dict(), prefix="head")
    assert result.loaded == ("head.weight", "head.bias")
    assert torch.equal(model["head"].weight, head.weight)


def test_prefix_takes_one_subtree_of_a_whole_checkpoint(trained: tuple[fl.Chain, Path]) -> None:
    model, path = trained
    head = fl.Linear(8, 3)
    load(head, path, prefix="head")
    assert torch.equal(head.weight, model["head"].weight)
    fresh = small_model()
    before = state_snapshot(fresh)
    load(fresh, path, prefix="blocks.Chain_2")
    changed = {key for key, value in fresh.state_dict().items() if not torch.equal(value, before[key])}
    assert changed
    assert all(key.startswith("blocks.Chain_2.") for key in changed)


def test_unknown_prefix_is_an_error(trained: tuple[fl.Chain, Path]) -> None:
    _, path = trained
    with pytest.raises(WeightsError, match="prefix 'tail' is neither an address in the model nor a key prefix"):
        load(small_model(), path, prefix="tail")


def test_tied_weights_load_from_either_key(tmp_path: Path) -> None:
    embedding = fl.Embedding(10, 4)
    head = fl.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    model = fl.Chain(embedding, head)
    save(model, tmp_path / "tied.safetensors")
    from safetensors import safe_open

    with safe_open(tmp_path / "tied.safetensors", "pt") as file:
        assert list(file.keys()) == ["Embedding.weight"]
    untied = fl.Chain(fl.Embedding(10, 4), fl.Linear(4, 10, bias=False))
    load(untied, tmp_path / "tied.safetensors")  # the alias recorded at save time fills Linear.weight
    assert torch.equal(untied.Linear.weight, embedding.weight)
    retied = fl.Chain(fl.Embedding(10, 4), fl.Linear(4, 10, bias=False))
    retied.Linear.weight = retied.Embedding.weight
    load(retied, {"Linear.weight": embedding.weight.detach()})
    assert retied.Linear.weight is retied.Embedding.weight
    assert torch.equal(retied.Embedding.weight, embedding.weight)


def test_tied_weights_stay_tied_on_a_meta_tree(tmp_path: Path) -> None:
    model = fl.Chain(fl.Embedding(10, 4), fl.Linear(4, 10, bias=False))
    model.Linear.weight = model.Embedding.weight
    save(model, tmp_path / "tied.safetensors")
    with torch.device("meta"):
        fresh = fl.Chain(fl.Embedding(10, 4), fl.Linear(4, 10, bias=False))
    fresh.Linear.weight = fresh.Embedding.weight
    load(fresh, tmp_path / "tied.safetensors")
    assert fresh.Linear.weight is fresh.Embedding.weight
    assert not fresh.Linear.weight.is_meta


def test_progress_is_drawn_when_asked(trained: tuple[fl.Chain, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, path = trained
    load(small_model(), path, progress=True)
    assert "loading model.safetensors [" in capsys.readouterr().err
    load(small_model(), path)
    assert capsys.readouterr().err == ""


def tied_pair() -> fl.Chain:
    model = fl.Chain(embed=fl.Embedding(10, 4), head=fl.Linear(4, 10, bias=False))
    model.head.weight = model.embed.weight
    return model


def test_an_alias_loaded_into_untied_slots_gives_each_its_own_memory(tmp_path: Path) -> None:
    save(tied_pair(), tmp_path / "tied.safetensors")
    with torch.device("meta"):
        untied = fl.Chain(embed=fl.Embedding(10, 4), head=fl.Linear(4, 10, bias=False))
    load(untied, tmp_path / "tied.safetensors")
    assert untied.head.weight is not untied.embed.weight
    with torch.no_grad():
        untied.embed.weight.add_(100.0)
    assert untied.head.weight.abs().max() < 100


def test_a_meta_tree_never_shares_the_callers_tensors() -> None:
    source = small_model()
    with torch.device("meta"):
        target = small_model()
    load(target, source.state_dict())
    with torch.no_grad():
        target["head"].weight.zero_()
    assert source["head"].weight.abs().sum() > 0


def test_a_tie_across_the_prefix_stays_tied() -> None:
    trained = tied_pair()
    with torch.device("meta"):
        fresh = tied_pair()
    load(fresh, {"weight": trained.embed.weight.detach()}, prefix="embed", dtype=torch.float16)
    assert fresh.head.weight is fresh.embed.weight
    assert fresh.head.weight.dtype == torch.float16


def test_every_key_of_a_tie_group_is_checked() -> None:
    model = tied_pair()
    before = state_snapshot(model)
    with pytest.raises(WeightsError, match=r"head\.weight: model has shape \(10, 4\)"):
        load(model, {"embed.weight": torch.zeros(10, 4), "head.weight": torch.zeros(7, 7)})
    assert same_state(model, before)


def test_unexpected_keys_are_reported_as_keys_with_their_mapped_names_in_the_message() -> None:
    model = small_model()
    head_checkpoint = {"weight": torch.zeros(3, 8), "bias": torch.zeros(3), "extra": torch.zeros(1)}
    result = load(model, head_checkpoint, prefix="head", strict=False)
    assert result.unexpected == ("extra",)
    with pytest.raises(WeightsError, match=r"extra \(mapped to head\.extra\)") as caught:
        load(model, head_checkpoint, prefix="head")
    assert caught.value.unexpected == ("extra",)


def test_an_explicit_device_index_still_copies_in_place() -> None:
    model = small_model()
    parameter = model["head"].weight
    load(model, state_snapshot(small_model()), device="cpu:0")
    assert model["head"].weight is parameter


def test_tensors_left_on_meta_are_reported() -> None:
    class WithScratch(fl.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scratch", torch.zeros(2), persistent=False)

    with torch.device("meta"):
        model = fl.Chain(fl.Linear(2, 2), WithScratch())
    state = {"Linear.weight": torch.eye(2), "Linear.bias": torch.zeros(2)}
    with pytest.warns(WeightsWarning, match="1 tensors are still on the meta device after loading"):
        result = load(model, state)
    assert result.still_meta == ("WithScratch.scratch",)


def test_the_pickle_warning_points_at_the_caller(tmp_path: Path) -> None:
    torch.save(small_model().state_dict(), tmp_path / "model.pt")
    with pytest.warns(PickleCheckpointWarning) as record:
        load(small_model(), tmp_path / "model.pt")
    assert record[0].filename == __file__


def test_a_split_source_advances_the_progress_bar_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    model = fl.Chain(q=fl.Linear(4, 4, bias=False), k=fl.Linear(4, 4, bias=False))
    load(model, {"qk.weight": torch.randn(8, 4)}, mapping=[(r"^qk\.", ("q.", "k."))], progress=True)
    assert "100%" in capsys.readouterr().err.rsplit("\r", 1)[-1]


def test_mismatches_in_many_blocks_are_folded() -> None:
    model = fl.Chain(*[fl.Chain(fl.Linear(4, 4)) for _ in range(20)])
    state = {key: torch.zeros(4, 5) if key.endswith("weight") else value for key, value in model.state_dict().items()}
    with pytest.raises(WeightsError) as caught:
        load(model, state)
    message = str(caught.value)
    assert "20 mismatched" in message
    assert (
        "Chain_*.Linear.weight  (20 keys: Chain_1.Linear.weight ... Chain_20.Linear.weight): e.g. model has" in message
    )
