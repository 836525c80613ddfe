"""The hooks an inference sets (``fluxion.dims.engine``): ``run``, ``constrain`` and ``context_values``
outside an inference and inside ``running``, which restores the hooks before it, nests, and resets
after an exception."""

import threading
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims

H = dims.dim("H")


def record_into(found: list[str]) -> dims.Recorder:
    return lambda first, second, reason: found.append(reason)


def runner_into(seen: list[str], output: dims.ShapeValue = None) -> dims.Runner:
    def runner(child: torch.nn.Module, inputs: tuple[dims.ShapeValue, ...]) -> dims.ShapeValue:
        seen.append(f"{type(child).__name__}{inputs}")
        return output

    return runner


# -- outside an inference -----------------------------------------------------------------------------


def test_run_calls_the_childs_rule_directly() -> None:
    assert dims.run(fl.Linear(4, 2), dims.Shape(["B", 4])) == dims.Shape(["B", 2])
    assert dims.run(fl.Chain(fl.Linear(4, 8), fl.ReLU()), dims.Shape([3, 4])) == dims.Shape([3, 8])


def test_run_on_a_module_without_a_rule_is_a_shape_error() -> None:
    with pytest.raises(dims.ShapeError) as caught:
        dims.run(torch.nn.ReLU(), dims.Shape([2]))
    assert str(caught.value) == "ReLU has no shape rule (outside fluxion.shapes.infer)"


def test_constraints_are_dropped_and_the_context_is_empty_and_fresh() -> None:
    dims.constrain(H, 3, "ignored")
    values = dims.context_values()
    assert values == {}
    values["net"] = {"x": dims.Shape([1])}  # written nowhere
    assert dims.context_values() == {}


# -- running ---------------------------------------------------------------------------------------------


def test_running_installs_the_three_hooks_for_the_block() -> None:
    seen: list[str] = []
    found: list[str] = []
    context: dict[str, dict[str, Any]] = {"net": {}}
    with dims.running(runner_into(seen, dims.Shape([9])), record_into(found), context):
        assert dims.run(fl.ReLU(), dims.Shape([2])) == dims.Shape([9])
        dims.constrain(H, 3, "three")
        assert dims.context_values() is context
    assert seen == ["ReLU((2,),)"]
    assert found == ["three"]
    # and takes them away after it
    assert dims.run(fl.ReLU(), dims.Shape([2])) == dims.Shape([2])
    dims.constrain(H, 4, "dropped")
    assert found == ["three"]
    assert dims.context_values() == {}


def test_a_chains_rule_runs_each_child_through_the_runner() -> None:
    seen: list[str] = []
    with dims.running(runner_into(seen, dims.Shape([5]))):
        assert dims.Shape([5]) == fl.Chain(fl.Linear(4, 4), fl.ReLU()).output_shape(dims.Shape([2, 4]))
    assert seen == ["Linear((2, 4),)", "ReLU((5,),)"]


def test_nested_blocks_replace_every_hook_and_give_the_outer_ones_back() -> None:
    outer_seen: list[str] = []
    outer_found: list[str] = []
    inner_found: list[str] = []
    with dims.running(runner_into(outer_seen), record_into(outer_found), {"outer": {}}):
        with dims.running(recorder=record_into(inner_found)):
            dims.constrain(H, 1, "inner")
            # the inner block gave no runner and no context: none, not the outer ones
            assert dims.run(fl.ReLU(), dims.Shape([2])) == dims.Shape([2])
            assert dims.context_values() == {}
        dims.constrain(H, 1, "outer")
        dims.run(fl.ReLU(), dims.Shape([2]))
        assert dims.context_values() == {"outer": {}}
    assert inner_found == ["inner"]
    assert outer_found == ["outer"]
    assert outer_seen == ["ReLU((2,),)"]


def test_an_exception_in_the_block_resets_the_hooks_and_passes_through() -> None:
    found: list[str] = []
    outer: list[str] = []
    with dims.running(recorder=record_into(outer)):
        with pytest.raises(dims.ShapeError, match="bad rule"), dims.running(recorder=record_into(found)):
            raise dims.ShapeError("bad rule")
        dims.constrain(H, 2, "after")
    assert outer == ["after"]
    assert found == []
    dims.constrain(H, 2, "outside")
    assert outer == ["after"]


def test_the_hooks_belong_to_the_thread_that_set_them() -> None:
    found: list[str] = []
    in_thread: list[object] = []

    def elsewhere() -> None:
        dims.constrain(H, 1, "other thread")
        in_thread.append(dims.context_values())

    with dims.running(recorder=record_into(found), context={"net": {}}):
        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join(timeout=10)
        dims.constrain(H, 1, "this thread")
    assert found == ["this thread"]
    assert in_thread == [{}]


def test_rules_record_through_the_recorder_of_the_block() -> None:
    found: list[str] = []
    with dims.running(recorder=record_into(found)):
        dims.broadcast([dims.Shape([H]), dims.Shape(["W"])], "Sum")
        dims.require_equal(4, H, "Linear expects last dim 4")
    assert found == ["Sum needs sizes that broadcast at dim -1 (have H)", "Linear expects last dim 4"]


# -- the model's inputs ------------------------------------------------------------------------------


def test_model_inputs_are_none_outside_and_what_the_block_gives_inside() -> None:
    assert dims.model_inputs() == ()
    image = dims.Shape(["B", 3, "H", "W"])
    with dims.running(inputs=(image,)):
        assert dims.model_inputs() == (image,)
        with dims.running(inputs=()):  # a nested block replaces them too
            assert dims.model_inputs() == ()
        assert dims.model_inputs() == (image,)
    assert dims.model_inputs() == ()


def test_model_inputs_given_as_a_function_are_read_at_each_call() -> None:
    sizes = [dims.Shape([1])]
    with dims.running(inputs=lambda: tuple(sizes)):
        sizes.append(dims.Shape([2]))
        assert dims.model_inputs() == (dims.Shape([1]), dims.Shape([2]))
