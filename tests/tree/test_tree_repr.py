"""Drawing a tree as text (``fluxion.tree.tree_repr``): one line per node on rails, names shown only
when they say something, identical neighbours counted once, folding, marks and annotations."""

import torch

import fluxion.layers as fl
from fluxion.tree.tree_repr import FAILED_MARK, draw_tree, node_label


class Noted(fl.Chain):
    """A Chain with its own tag and a note on some children (as a Graph notes where inputs come from)."""

    repr_tag = "NOTED"

    def child_note(self, name: str) -> str | None:
        return None if name == "quiet" else f"<- {name}"


class Tagged(fl.Module):
    """A leaf with a ``repr_tag``: leaves show no tag."""

    repr_tag = "LEAF"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class TwoLines(fl.Module):
    def extra_repr(self) -> str:
        return "a=1\nb=2"


def test_a_leaf_is_one_line_and_repr_of_a_chain_is_its_drawing() -> None:
    assert draw_tree(fl.Linear(2, 3)) == "Linear(in_features=2, out_features=3, bias=True)"
    model = fl.Chain(fl.ReLU(), out=fl.Linear(2, 1))
    assert repr(model) == draw_tree(model)


def test_node_labels_tag_chains_only_and_keep_arguments_on_one_line() -> None:
    assert node_label(fl.Chain()) == "(CHAIN) Chain()"
    assert node_label(fl.Residual(fl.ReLU())) == "(RES) Residual()"
    assert node_label(Noted()) == "(NOTED) Noted()"
    assert node_label(Tagged()) == "Tagged()"
    assert node_label(TwoLines()) == "TwoLines(a=1, b=2)"
    assert node_label(torch.nn.Linear(1, 2, bias=False)) == "Linear(in_features=1, out_features=2, bias=False)"


def test_rails_run_beside_every_child_but_the_last() -> None:
    model = fl.Chain(fl.Chain(fl.ReLU(), fl.Chain(fl.Tanh())), fl.Chain(fl.SiLU()))
    assert draw_tree(model).splitlines() == [
        "(CHAIN) Chain()",
        "    ├── (CHAIN) Chain()",
        "    │   ├── ReLU()",
        "    │   └── (CHAIN) Chain()",
        "    │       └── Tanh()",
        "    └── (CHAIN) Chain()",
        "        └── SiLU()",
    ]


def test_explicit_names_are_shown_and_automatic_names_are_not() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.Linear(2, 2), head=fl.Linear(2, 2))
    assert draw_tree(model).splitlines()[1:] == [
        "    ├── Linear(in_features=2, out_features=2, bias=True) ×2",
        "    └── head: Linear(in_features=2, out_features=2, bias=True)",
    ]


def test_a_stand_in_shows_the_name_it_holds() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.ReLU())
    fl.Chain(fl.Identity()).stand_in_for(model["Linear"], name="inner")
    assert draw_tree(model).splitlines() == [
        "(CHAIN) Chain()",
        "    ├── Linear: (CHAIN) Chain()",
        "    │   ├── inner: Linear(in_features=2, out_features=2, bias=True)",
        "    │   └── Identity()",
        "    └── ReLU()",
    ]


def test_identical_neighbours_are_counted_once_with_their_subtrees_but_not_apart() -> None:
    model = fl.Chain(
        fl.Residual(fl.ReLU()), fl.Residual(fl.ReLU()), fl.Residual(fl.Tanh()), fl.ReLU(), fl.Tanh(), fl.ReLU()
    )
    assert draw_tree(model).splitlines() == [
        "(CHAIN) Chain()",
        "    ├── (RES) Residual() ×2",
        "    │   └── ReLU()",
        "    ├── (RES) Residual()",
        "    │   └── Tanh()",
        "    ├── ReLU()",
        "    ├── Tanh()",
        "    └── ReLU()",
    ]


def test_neighbours_differing_in_arguments_or_names_are_not_counted_together() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.Linear(2, 3), a=fl.ReLU(), b=fl.ReLU())
    lines = draw_tree(model).splitlines()
    assert len(lines) == 5
    assert not any("×" in line for line in lines)


def test_max_depth_folds_deeper_chains_and_counts_their_children() -> None:
    model = fl.Chain(fl.Chain(fl.Chain(fl.ReLU(), fl.Tanh())), fl.ReLU())
    assert draw_tree(model, max_depth=0) == "(CHAIN) Chain() … 2 children"
    assert draw_tree(model, max_depth=1).splitlines() == [
        "(CHAIN) Chain()",
        "    ├── (CHAIN) Chain() … 1 child",
        "    └── ReLU()",
    ]
    assert draw_tree(model, max_depth=2).splitlines()[2] == "    │   └── (CHAIN) Chain() … 2 children"
    assert draw_tree(model, max_depth=3) == draw_tree(model)
    assert draw_tree(fl.Chain(), max_depth=0) == "(CHAIN) Chain()"  # nothing folded, nothing counted


def test_notes_annotations_and_the_failure_mark_end_a_line_in_that_order() -> None:
    model = fl.Chain(Noted(fl.ReLU(), quiet=fl.Tanh()), fl.Tanh())
    marked = model["Noted.ReLU"]
    text = draw_tree(model, mark=marked, annotate=lambda node: "out" if isinstance(node, fl.Tanh) else None)
    assert text.splitlines() == [
        "(CHAIN) Chain()",
        "    ├── (NOTED) Noted()",
        "    │   ├── ReLU()  <- ReLU" + FAILED_MARK,
        "    │   └── quiet: Tanh()  out",
        "    └── Tanh()  out",
    ]


def test_an_empty_annotation_adds_nothing_and_a_folded_node_keeps_its_annotation() -> None:
    model = fl.Chain(fl.Chain(fl.ReLU()))
    assert draw_tree(model, annotate=lambda node: "") == draw_tree(model)
    folded = draw_tree(model, max_depth=1, annotate=lambda node: type(node).__name__)
    assert folded.splitlines()[1] == "    └── (CHAIN) Chain() … 1 child  Chain"


def test_the_root_can_be_marked_and_a_mark_outside_the_tree_shows_nowhere() -> None:
    model = fl.Chain(fl.ReLU())
    assert draw_tree(model, mark=model).splitlines()[0] == "(CHAIN) Chain()" + FAILED_MARK
    assert FAILED_MARK not in draw_tree(model, mark=fl.ReLU())


def test_a_plain_torch_module_with_children_is_drawn_as_a_leaf_but_a_chain_inside_a_chain_is_not() -> None:
    model = fl.Chain(torch.nn.Sequential(torch.nn.ReLU(), fl.Chain(fl.Tanh())))
    assert draw_tree(model).splitlines() == ["(CHAIN) Chain()", "    └── Sequential()"]
    assert draw_tree(torch.nn.Sequential(torch.nn.ReLU())) == "Sequential()"


def test_a_graph_notes_where_each_nodes_inputs_come_from() -> None:
    graph = fl.Graph(
        {"fc": fl.Linear(2, 2), "act": fl.ReLU(), "add": fl.Add()}, edges=["input -> fc -> act -> add", "input -> add"]
    )
    assert draw_tree(graph).splitlines() == [
        "(GRAPH) Graph(inputs=['input'], outputs=['add'])",
        "    ├── fc: Linear(in_features=2, out_features=2, bias=True)  ← input",
        "    ├── act: ReLU()  ← fc",
        "    └── add: Add()  ← act, input",
    ]
