"""A load that fails on anything it can check leaves the model exactly as it was.

Tensors the load cannot use (no data, sparse, quantized, nested, another kind of number) and model
tensors it cannot write (inference tensors, expanded parameters) are found before anything is
written. Ctrl-C during the commit waits for it to end; a failure nobody foresaw is undone where no
backup is needed (replaced tensors) and names the tensors it had already copied in place.
"""

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import fluxion.layers as fl
from fluxion.weights import PickleCheckpointWarning, WeightsError, load, open_checkpoint
from tests.weights.helpers import (
    Exploding,
    Interrupting,
    Signalling,
    assert_each_as_before_or_loaded,
    assert_exactly_as_before,
    exact_snapshot,
    same_state,
)

# Sparse CSR, quantized and nested tensors warn that their APIs are in beta or deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:.*(beta|deprecated|prototype).*:UserWarning")


def model() -> fl.Chain:
    torch.manual_seed(0)
    return fl.Chain(fl.Linear(4, 4), fl.LayerNorm(4), head=fl.Linear(4, 2))


def meta_model() -> fl.Chain:
    with torch.device("meta"):
        return model()


def checkpoint_for(target: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Fresh values for every tensor of ``target`` (different from the model's own)."""
    return {key: torch.randn(tensor.shape).to(tensor.dtype) for key, tensor in target.state_dict().items()}


def with_last(bad: torch.Tensor, key: str = "head.weight") -> dict[str, torch.Tensor]:
    """A checkpoint whose other tensors fit (and would be written first) and whose ``key`` is ``bad``."""
    tensors = checkpoint_for(model())
    tensors[key] = bad
    return tensors


BAD_SOURCES: dict[str, Callable[[], torch.Tensor]] = {
    "meta": lambda: torch.empty(2, 4, device="meta"),
    "sparse COO": lambda: torch.ones(2, 4).to_sparse(),
    "sparse CSR": lambda: torch.ones(2, 4).to_sparse_csr(),
    "complex": lambda: torch.ones(2, 4, dtype=torch.complex64),
    "integer": lambda: torch.ones(2, 4, dtype=torch.int64),
    "wrong shape": lambda: torch.ones(4, 2),
}
EXPECTED = {
    "meta": "is on the meta device (it has no data)",
    "sparse COO": "is a sparse tensor (torch.sparse_coo)",
    "sparse CSR": "is a sparse tensor (torch.sparse_csr)",
    "complex": "model holds torch.float32, checkpoint 'head.weight' holds torch.complex64",
    "integer": "model holds torch.float32, checkpoint 'head.weight' holds torch.int64",
    "wrong shape": "model has shape (2, 4)",
}


@pytest.mark.parametrize("build", [model, meta_model], ids=["in place", "meta model"])
@pytest.mark.parametrize("kind", list(BAD_SOURCES))
def test_an_unusable_checkpoint_tensor_is_refused_before_anything_is_written(
    kind: str, build: Callable[[], fl.Chain]
) -> None:
    target = build()
    before = exact_snapshot(target)
    with pytest.raises(WeightsError, match=r"head\.weight") as caught:
        load(target, with_last(BAD_SOURCES[kind]()))
    assert EXPECTED[kind] in str(caught.value)
    assert caught.value.mismatched == ("head.weight",)
    assert_exactly_as_before(target, before)


def test_the_issue_example_a_meta_tensor_in_a_dict_leaves_linear_weight_alone() -> None:
    target = fl.Chain(fl.Linear(4, 4), head=fl.Linear(4, 2))
    tensors = {key: torch.randn(value.shape) for key, value in target.state_dict().items()}
    tensors["head.weight"] = torch.empty(2, 4, device="meta")
    before = exact_snapshot(target)
    with pytest.raises(WeightsError, match=r"'head\.weight' is on the meta device"):
        load(target, tensors)
    assert_exactly_as_before(target, before)


def test_a_quantized_or_nested_tensor_is_refused_even_where_its_kind_matches() -> None:
    holder = fl.Chain(fl.Linear(2, 2))
    holder.Linear.register_buffer("codes", torch.zeros(3, dtype=torch.int8))
    tensors = checkpoint_for(holder)
    tensors["Linear.codes"] = torch.quantize_per_tensor(torch.zeros(3), 0.1, 0, torch.qint8)
    before = exact_snapshot(holder)
    with pytest.raises(WeightsError, match=r"Linear.codes: checkpoint 'Linear.codes' is a quantized tensor"):
        load(holder, tensors)
    tensors["Linear.codes"] = torch.nested.nested_tensor([torch.zeros(1), torch.zeros(2)]).to(torch.int8)
    with pytest.raises(WeightsError, match="is a nested tensor"):
        load(holder, tensors)
    assert_exactly_as_before(holder, before)


def test_a_pickled_checkpoint_with_sparse_or_meta_tensors_is_refused(tmp_path: Path) -> None:
    target = model()
    before = exact_snapshot(target)
    for name, bad in (("sparse", torch.ones(2, 4).to_sparse()), ("meta", torch.empty(2, 4, device="meta"))):
        path = tmp_path / f"{name}.pt"
        torch.save(with_last(bad), path)
        with pytest.warns(PickleCheckpointWarning), pytest.raises(WeightsError, match=rf"'head\.weight' is .*{name}"):
            load(target, path)
    assert_exactly_as_before(target, before)


def test_inference_tensors_of_the_model_are_refused_outside_inference_mode_and_loaded_inside() -> None:
    with torch.inference_mode():
        target = model()
    tensors = checkpoint_for(target)
    before = exact_snapshot(target)
    with pytest.raises(WeightsError, match=r"created under torch.inference_mode\(\)") as caught:
        load(target, tensors)
    assert set(caught.value.mismatched) == set(tensors)
    assert_exactly_as_before(target, before)
    with torch.inference_mode():
        load(target, tensors)
    assert torch.equal(target.head.weight, tensors["head.weight"])


def test_an_expanded_parameter_is_refused_and_nothing_is_written() -> None:
    target = model()
    target.head.weight = torch.nn.Parameter(torch.zeros(4).expand(2, 4))
    before = exact_snapshot(target)
    with pytest.raises(WeightsError, match=r"head.weight: the model's tensor is expanded"):
        load(target, checkpoint_for(model()))
    assert_exactly_as_before(target, before)


def test_a_sparse_model_tensor_is_refused() -> None:
    target = model()
    target.head.register_buffer("mask", torch.eye(2).to_sparse())
    tensors = {**checkpoint_for(model()), "head.mask": torch.ones(2, 2)}
    before = exact_snapshot(target)
    with pytest.raises(WeightsError, match=r"head\.mask: the model's tensor is not a dense tensor"):
        load(target, tensors)
    assert_exactly_as_before(target, before)


def test_sources_that_are_the_models_own_memory_are_read_before_anything_is_overwritten() -> None:
    target = fl.Chain(a=fl.Linear(3, 3, bias=False), b=fl.Linear(3, 3, bias=False))
    a, b = target.a.weight.detach().clone(), target.b.weight.detach().clone()
    swapped = {"a.weight": target.b.weight, "b.weight": target.a.weight}
    load(target, swapped)
    assert torch.equal(target.a.weight, b)
    assert torch.equal(target.b.weight, a)
    transposed = target.a.weight.detach().clone().t()
    load(target, {"a.weight": target.a.weight.t(), "b.weight": target.b.weight})  # a partial overlap
    assert torch.equal(target.a.weight, transposed)
    load(target, target.state_dict())  # every tensor its own source: nothing to do
    assert torch.equal(target.a.weight, transposed)


def test_a_failure_nobody_foresaw_while_staging_is_reported_and_changes_nothing() -> None:
    target = meta_model()  # every tensor is converted while staging, before the commit
    before = exact_snapshot(target)
    with pytest.raises(WeightsError, match="the disk went away") as caught:
        load(target, with_last(torch.ones(2, 4).as_subclass(Exploding)))
    assert "head.weight" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert_exactly_as_before(target, before)


def test_a_failure_nobody_foresaw_in_the_copies_names_what_it_wrote_and_puts_back_the_rest() -> None:
    target = model()
    with torch.device("meta"):
        target.Linear = fl.Linear(4, 4)  # replaced by the load: committed before the in-place copies
    before = exact_snapshot(target)
    tensors = with_last(torch.ones(2, 4).as_subclass(Exploding))
    with pytest.raises(WeightsError) as caught:
        load(target, tensors)
    message = str(caught.value)
    assert "loading head.weight failed: RuntimeError: the disk went away" in message
    assert (
        "2 tensors copied in place before it hold the checkpoint's values (LayerNorm.weight, LayerNorm.bias)" in message
    )
    assert target.Linear.weight.is_meta  # the replaced tensors are put back
    assert assert_each_as_before_or_loaded(target, before, tensors) == {"LayerNorm.weight", "LayerNorm.bias"}


@pytest.mark.parametrize("build", [model, meta_model], ids=["in place", "meta model"])
def test_ctrl_c_during_the_commit_waits_for_the_load_to_finish(build: Callable[[], fl.Chain]) -> None:
    target = build()
    tensors = checkpoint_for(model())
    tensors["Linear.weight"] = tensors["Linear.weight"].as_subclass(Signalling)  # the first one copied
    with pytest.raises(KeyboardInterrupt):
        load(target, tensors)
    if build is model:  # the signal came during the commit: every tensor was loaded, then it interrupted
        assert same_state(target, {key: value.as_subclass(torch.Tensor) for key, value in tensors.items()})
    else:  # a meta model's tensors are converted while staging: the signal came before the commit
        assert all(tensor.is_meta for tensor in target.state_dict().values())


def test_an_interrupt_while_staging_changes_nothing_and_still_interrupts() -> None:
    target = meta_model()
    before = exact_snapshot(target)
    with pytest.raises(KeyboardInterrupt):
        load(target, with_last(torch.ones(2, 4).as_subclass(Interrupting)))
    assert_exactly_as_before(target, before)


def test_a_checkpoint_tensor_that_requires_grad_loads_as_a_leaf() -> None:
    source = fl.Chain(fl.Linear(2, 2))
    tensors = {key: value * 2 for key, value in source.named_parameters()}  # non-leaf tensors with a graph
    target = fl.Chain(fl.Linear(2, 2, device="meta"))
    load(target, tensors)
    assert target.Linear.weight.is_leaf
    assert target.Linear.weight.grad_fn is None
    assert target.Linear.weight.requires_grad


def test_headers_of_unusable_tensors_are_still_listed() -> None:
    checkpoint = open_checkpoint({"nested": torch.nested.nested_tensor([torch.zeros(1), torch.zeros(2)])})
    assert checkpoint.entries["nested"].unusable == "a nested tensor (it has no single shape)"
