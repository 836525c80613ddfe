"""Context (``fluxion.tree.context``): values stored by ``SetContext`` and read by ``UseContext`` during
one forward call, held by the tree's root, and the same layers' shape rules."""

from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import FluxionError, dims
from fluxion.tree import context_of


def collect(seen: list[Any] | None, value: Any) -> list[Any]:
    return [*(seen or []), value]


# -- a forward call --------------------------------------------------------------------------------


def test_set_context_passes_its_input_on_and_use_context_ignores_its_own() -> None:
    model = fl.Chain(
        fl.SetContext("net", "first"),
        fl.Lambda(lambda x: x + 1),
        fl.UseContext("net", "first"),
    )
    assert model(torch.tensor([1.0])).tolist() == [1.0]


def test_several_inputs_are_stored_as_a_tuple() -> None:
    model = fl.Chain(
        fl.Parallel(fl.Identity(), fl.Lambda(lambda x: 2 * x)),
        fl.SetContext("net", "pair"),
        fl.Lambda(lambda a, b: a),
        fl.UseContext("net", "pair", func=lambda pair: pair[1] - pair[0]),
    )
    assert model(torch.tensor([3.0])).tolist() == [3.0]


def test_a_callback_combines_what_is_stored_with_each_new_value() -> None:
    store = fl.SetContext("net", "seen", callback=collect)
    model = fl.Chain(
        store,
        fl.Lambda(lambda x: x + 1),
        store.structural_copy(),
        fl.Lambda(lambda x: x * 10),
        store.structural_copy(),
        fl.UseContext("net", "seen", func=lambda seen: torch.cat(seen)),
    )
    assert model(torch.tensor([1.0])).tolist() == [1.0, 2.0, 20.0]
    assert model(torch.tensor([0.0])).tolist() == [0.0, 1.0, 10.0]  # nothing left from the call before


def test_nested_chains_share_the_roots_context_and_it_is_cleared_after_the_call() -> None:
    model = fl.Chain(
        fl.Chain(fl.SetContext("unet", "skip")),
        fl.Chain(fl.Chain(fl.Lambda(torch.neg)), fl.Sum(fl.Identity(), fl.UseContext("unet", "skip"))),
    )
    assert model(torch.tensor([5.0])).tolist() == [0.0]
    assert context_of(model) == {}
    assert context_of(model["Chain_2.Sum.UseContext"]) is context_of(model)


def test_the_context_is_cleared_after_a_failing_call_too() -> None:
    model = fl.Chain(fl.SetContext("net", "x"), fl.Linear(3, 3))
    with pytest.raises(fl.ChainError):
        model(torch.zeros(1, 2))
    assert context_of(model) == {}


def test_values_set_from_outside_reach_every_use_and_last_one_call() -> None:
    model = fl.Chain(fl.Chain(fl.UseContext("run", "scale")))
    model.set_context("run", {"scale": 4})
    model.Chain.set_context("run", {"shift": 1})  # an inner Chain writes into the root's context
    assert context_of(model) == {"run": {"scale": 4, "shift": 1}}
    assert model() == 4
    assert model.use_context("run") == {}
    with pytest.raises(fl.ChainError) as caught:
        model()
    assert isinstance(caught.value.__cause__, fl.ContextError)


def test_a_missing_value_is_a_context_error_saying_what_the_context_holds() -> None:
    model = fl.Chain(fl.SetContext("net", "a"), fl.SetContext("net", "b"), reader=fl.UseContext("net", "c"))
    with pytest.raises(fl.ChainError) as caught:
        model(torch.zeros(1))
    cause = caught.value.__cause__
    assert isinstance(cause, fl.ContextError)
    assert isinstance(cause, FluxionError)
    assert str(cause) == (
        "UseContext at 'reader': context 'net' has no value 'c' (it holds a, b); "
        "a SetContext earlier in the tree, or chain.set_context(), must set it"
    )
    assert caught.value.address == "reader"


def test_an_unknown_context_holds_nothing() -> None:
    model = fl.Chain(fl.UseContext("nowhere", "x"))
    with pytest.raises(fl.ChainError, match=r"context 'nowhere' has no value 'x' \(it holds nothing\)"):
        model()


@pytest.mark.parametrize("layer", [fl.SetContext("net", "x"), fl.UseContext("net", "x")])
def test_context_layers_outside_a_chain_are_a_tree_error(layer: torch.nn.Module) -> None:
    with pytest.raises(fl.TreeError, match=f"{type(layer).__name__}: context layers work inside a Chain"):
        layer(torch.zeros(1))


def test_context_of_a_module_in_no_chain_is_a_new_empty_dict() -> None:
    relu = fl.ReLU()
    first = context_of(relu)
    first["net"] = {"x": 1}
    assert context_of(relu) == {}


def test_a_subtree_taken_out_has_a_context_of_its_own() -> None:
    model = fl.Chain(block=fl.Chain(fl.UseContext("run", "x")))
    model.set_context("run", {"x": 1})
    block = model.pop()
    assert context_of(block) == {}
    block.set_context("run", {"x": 2})
    assert block() == 2
    assert context_of(model) == {"run": {"x": 1}}


def test_extra_repr_names_the_context_and_key() -> None:
    assert repr(fl.SetContext("unet", "skip")) == "SetContext(context='unet', key='skip')"
    assert repr(fl.UseContext("unet", "skip", func=torch.neg)) == "UseContext(context='unet', key='skip')"


# -- shape rules -----------------------------------------------------------------------------------


def test_shape_rules_pass_shapes_through_the_inferences_context() -> None:
    store, use = fl.SetContext("unet", "skip"), fl.UseContext("unet", "skip")
    shape = dims.Shape(["B", 4])
    values: dict[str, dict[str, Any]] = {}
    with dims.running(context=values):
        assert store.output_shape(shape) == shape
        assert values == {"unet": {"skip": shape}}
        assert use.output_shape(dims.Shape([7])) == shape
        pair = (dims.Shape([1]), dims.Shape([2]))
        assert store.output_shape(*pair) == pair  # several inputs: a tuple, as forward stores


def test_shape_rules_refuse_functions_they_cannot_see_and_missing_values() -> None:
    with dims.running(context={"unet": {"skip": dims.Shape([2])}}):
        with pytest.raises(dims.ShapeError, match="SetContext with a callback has no shape rule"):
            fl.SetContext("unet", "all", callback=collect).output_shape(dims.Shape([2]))
        with pytest.raises(dims.ShapeError, match="UseContext with a func has no shape rule"):
            fl.UseContext("unet", "skip", func=torch.neg).output_shape()
        with pytest.raises(
            dims.ShapeError, match=r"context 'unet' has no value 'mask' at this point \(it holds skip\)"
        ):
            fl.UseContext("unet", "mask").output_shape()
        with pytest.raises(
            dims.ShapeError, match=r"context 'other' has no value 'x' at this point \(it holds nothing\)"
        ):
            fl.UseContext("other", "x").output_shape()
