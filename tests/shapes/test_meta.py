"""Running a node on meta tensors: torch's answer, and the node left exactly as it was, even when the
call fails or a stand-in cannot be made."""

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims
from fluxion.shapes.meta import meta_stand_ins, meta_tensors, run_on_meta
from fluxion.tree import context_of


def snapshot(model: torch.nn.Module) -> dict[str, tuple[int, torch.Tensor]]:
    """Each tensor of the model with the identity of the object holding it."""
    return {key: (id(value), value.clone()) for key, value in model.state_dict(keep_vars=True).items()}


def same(model: torch.nn.Module, before: dict[str, tuple[int, torch.Tensor]]) -> bool:
    now = model.state_dict(keep_vars=True)
    return now.keys() == before.keys() and all(
        id(now[key]) == identity and torch.equal(now[key].detach(), value) for key, (identity, value) in before.items()
    )


def test_the_output_is_torch_s_and_nothing_real_is_touched() -> None:
    model = fl.Chain(fl.Conv2d(3, 8, 3, stride=2), fl.BatchNorm2d(8), fl.ReLU())
    model.train()
    before = snapshot(model)
    output = run_on_meta(model, (dims.Shape([2, 3, 17, 17]),))
    assert (output.shape, output.device.type) == (torch.Size([2, 8, 8, 8]), "meta")
    assert same(model, before)  # batch norm's running statistics were stand-ins


def test_a_call_that_fails_leaves_the_node_and_its_context_as_they_were() -> None:
    model = fl.Chain(fl.Linear(4, 4), fl.SetContext("skip", "x"), fl.Linear(5, 2))
    context_of(model)["skip"] = {"x": torch.zeros(1)}
    before, store = snapshot(model), {key: dict(values) for key, values in context_of(model).items()}
    with pytest.raises(RuntimeError):
        run_on_meta(model, (dims.Shape([2, 4]),))
    assert same(model, before)
    assert {key: dict(values) for key, values in context_of(model).items()} == store


def test_inputs_by_name_and_of_a_dtype() -> None:
    graph = fl.Graph({"cat": fl.Cat(dim=-1)}, edges=["x -> cat", "y -> cat"], inputs=("x", "y"))
    output = run_on_meta(graph, (dims.Shape([2, 3]),), {"y": dims.Shape([2, 5])}, dtype=torch.float16)
    assert (output.shape, output.dtype) == (torch.Size([2, 8]), torch.float16)


def test_meta_tensors_follow_the_structure_of_the_shapes() -> None:
    value = (dims.Shape([2]), dims.ShapeMap({"a": dims.Shape([3, 4])}), None)
    made = meta_tensors(value, torch.int64)
    assert (made[0].shape, made[1]["a"].shape, made[2]) == ((2,), (3, 4), None)
    assert {made[0].dtype, made[1]["a"].dtype} == {torch.int64}


class Pinned(torch.Tensor):
    """A tensor that refuses to move: its meta stand-in cannot be made."""

    def to(self, *args: object, **kwargs: object) -> torch.Tensor:  # pyright: ignore[reportIncompatibleMethodOverride]
        raise RuntimeError("this tensor stays where it is")


def test_stand_ins_are_put_back_when_one_cannot_be_made() -> None:
    model = fl.Chain(fl.Linear(4, 4), fl.Linear(4, 2))
    model[1].register_buffer("pinned", torch.Tensor._make_subclass(Pinned, torch.zeros(2)))  # pyright: ignore[reportPrivateUsage]
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="stays where it is"), meta_stand_ins(model):
        pass
    assert same(model, before)
    assert model[0].weight.device.type == "cpu"


def test_stand_ins_keep_requires_grad_and_are_gone_afterwards() -> None:
    linear = torch.nn.Linear(2, 2)
    linear.bias.requires_grad_(False)
    with meta_stand_ins(linear):
        assert (linear.weight.device.type, linear.weight.requires_grad, linear.bias.requires_grad) == (
            "meta",
            True,
            False,
        )
    assert linear.weight.device.type == "cpu"


def test_attributes_set_while_the_stand_ins_are_in_place_are_undone() -> None:
    linear = torch.nn.Linear(2, 2)
    linear.scale = torch.ones(1)  # a plain tensor attribute, as torch's weight_norm keeps its weight
    scale = linear.scale
    with meta_stand_ins(linear):
        linear.scale = linear.weight.sum()
        linear.extra = "added"
    assert linear.scale is scale
    assert not hasattr(linear, "extra")
