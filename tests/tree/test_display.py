"""Display names and output names kept in a module for diagrams: set, read, taken away, copied."""

from __future__ import annotations

import copy

import torch

import fluxion.layers as fl
from fluxion.tree.display import display_name, output_names, set_display_name, set_output_names


def test_a_display_name_is_kept_by_the_module_and_its_copies() -> None:
    block = fl.Chain(fl.Linear(2, 2))
    assert display_name(block) is None
    set_display_name(block, "ResBlock")
    assert display_name(block) == "ResBlock"
    assert display_name(copy.deepcopy(block)) == "ResBlock"
    assert display_name(block.Linear) is None  # a child's name is its own
    set_display_name(block, None)
    assert display_name(block) is None


def test_plain_torch_modules_take_names_too() -> None:
    linear = torch.nn.Linear(3, 1)
    set_display_name(linear, "Scorer")
    set_output_names(linear, ["score"])
    assert (display_name(linear), output_names(linear)) == ("Scorer", ("score",))
    assert "Scorer" not in repr(linear)  # only diagrams read it


def test_output_names_in_order_and_taken_away() -> None:
    model = fl.Chain(fl.Linear(2, 2))
    assert output_names(model) == ()
    set_output_names(model, ("category", "quality"))
    assert output_names(model) == ("category", "quality")
    set_output_names(model, [])
    assert output_names(model) == ()


def test_names_do_not_change_the_state_dict() -> None:
    model = fl.Chain(fl.Linear(2, 2))
    before = list(model.state_dict())
    set_display_name(model, "Head")
    set_output_names(model, ["logits"])
    assert list(model.state_dict()) == before
