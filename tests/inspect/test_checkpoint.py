"""``check_weights``: the dry run of ``weights.load``: same verdict, same report, nothing changed."""

from pathlib import Path

import pytest
import torch

import fluxion.layers as fl
from fluxion import weights
from fluxion.errors import WeightsError
from fluxion.inspect.checkpoint import WeightsCheck, check_weights


def mlp() -> fl.Chain:
    return fl.Chain(fc=fl.Linear(8, 16), act=fl.ReLU(), head=fl.Linear(16, 2))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "mlp.safetensors"
    weights.save(mlp(), path)
    return path


def test_a_fitting_checkpoint_matches_and_is_described(saved: Path) -> None:
    check = check_weights(mlp(), saved)
    expected_bytes = sum(tensor.numel() * tensor.element_size() for tensor in mlp().state_dict().values())
    assert check == WeightsCheck(str(saved), True, 4, expected_bytes)


def test_a_model_on_meta_is_checked_too(saved: Path) -> None:
    with torch.device("meta"):
        model = mlp()
    assert check_weights(model, saved).matches


def test_every_problem_is_listed_as_a_failed_load_would_and_nothing_is_loaded(tmp_path: Path) -> None:
    state = mlp().state_dict()
    state["Head.bias"] = state.pop("head.bias")
    state["fc.weight"] = torch.zeros(16, 9)
    path = tmp_path / "broken.safetensors"
    weights.save(state, path)
    model = mlp()
    before = {key: value.clone() for key, value in model.state_dict().items()}

    check = check_weights(model, path)

    assert not check.matches
    assert (check.missing, check.unexpected, check.mismatched) == (("head.bias",), ("Head.bias",), ("fc.weight",))
    with pytest.raises(WeightsError) as failed:
        weights.load(model, path)
    assert check.message == str(failed.value)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in before.items())


def test_a_mapping_lets_a_foreign_checkpoint_fit(tmp_path: Path) -> None:
    foreign = {f"model.{key}": value for key, value in mlp().state_dict().items()}
    path = tmp_path / "foreign.safetensors"
    weights.save(foreign, path)
    assert not check_weights(mlp(), path).matches
    assert check_weights(mlp(), path, [(r"^model\.", "")]).matches


@pytest.mark.parametrize("content", [None, b"not a safetensors file at all"], ids=["missing", "garbage"])
def test_a_file_that_cannot_be_read_is_a_weights_error_not_a_verdict(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "model.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=r"model\.safetensors"):
        check_weights(mlp(), path)


def test_a_mapping_that_is_wrong_is_a_weights_error(saved: Path) -> None:
    with pytest.raises(WeightsError, match="maps to 3"):
        check_weights(mlp(), saved, {"fc.weight": 3})  # pyright: ignore[reportArgumentType]
