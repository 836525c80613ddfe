"""``outputs_made`` (summary's meta run) with inputs given by name, inside torch's parametrization
cache, and on an FSDP2 model: each given as torch would, and the model left working as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.nn.utils import parametrizations, parametrize

import fluxion.layers as fl
from fluxion import shapes
from fluxion.inspect.activations import largest_activations, outputs_made
from tests.inspect.helpers import made_on_cpu


def test_an_input_given_by_name_reaches_the_meta_run_by_name() -> None:
    attention = fl.MultiHeadAttention(16, num_heads=2)
    report = shapes.infer(attention, ("B", "T", 16), mask=("T", "T"))
    torch_made = made_on_cpu(attention, torch.randn(2, 5, 16), with_root=True, mask=torch.zeros(5, 5))
    assert "" not in torch_made  # the root hands on its output projection's tensor
    assert outputs_made(report) is not None
    assert {activation.address for activation in largest_activations(report, top=100)} == torch_made


def test_looking_inside_parametrize_cached_leaves_the_weights_real() -> None:
    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(4, 4), fl.ReLU())
    parametrizations.orthogonal(model.Linear)
    x = torch.randn(2, 4)
    expected = model(x)
    report = shapes.infer(model, ("B", 4))
    with parametrize.cached():
        largest_activations(report)
        assert model.Linear.weight.device.type == "cpu"
        assert torch.allclose(model(x), expected)  # a meta weight gives numbers silently wrong


@pytest.fixture
def one_rank(tmp_path: Path) -> Iterator[None]:
    """A gloo process group of one rank (this process), for one test."""
    if dist.is_initialized():
        pytest.skip("a process group is already running in this process")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("one_rank")
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_sharded_model_still_runs_after_its_activations_are_ranked() -> None:
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    model = fl.Chain(fl.Linear(4, 8), fl.Linear(8, 8), fl.ReLU())
    fully_shard(model[0])
    fully_shard(model)
    x = torch.randn(2, 4)
    expected = model(x).detach()
    largest_activations(shapes.infer(model, ("B", 4)))
    assert torch.allclose(model(x), expected)
