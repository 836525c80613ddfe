"""Automatic child names (``fluxion.tree.naming``): the class name, suffixed when a class repeats,
never equal to another child's name, and a function of the children alone (not of the surgery that
led there)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils import parametrize

import fluxion.layers as fl
from fluxion.tree.naming import STAND_IN, auto_names, base_of, class_name, holds_suffix_like_name, ranks_of
from tests.tree.tree_checks import check_tree, leaf_class

# Leaf classes named like automatic names of one another.
Block, Block_1, Block_2, Block_3 = (leaf_class(name) for name in ("Block", "Block_1", "Block_2", "Block_3"))


def names(chain: fl.Chain) -> list[str]:
    return [name for name, _ in chain.named_children()]


# -- the functions of the rule --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("Linear", "Linear"),
        ("Linear_1", "Linear"),
        ("Linear_12", "Linear"),
        ("Block_2_1", "Block_2"),
        ("proj_out", "proj_out"),
        ("_1", "_1"),  # no class name before the suffix
        ("Linear_", "Linear_"),
        ("Linear_1a", "Linear_1a"),
    ],
)
def test_base_of_strips_one_numeric_suffix(name: str, base: str) -> None:
    assert base_of(name) == base


def test_class_name_is_the_stand_in_name_when_one_is_set() -> None:
    relu = fl.ReLU()
    plain = torch.nn.Tanh()
    assert (class_name(relu), class_name(plain)) == ("ReLU", "Tanh")
    relu.__dict__[STAND_IN] = "Linear"
    assert class_name(relu) == "Linear"
    relu.__dict__[STAND_IN] = ""  # empty: no stand-in
    assert class_name(relu) == "ReLU"


@pytest.mark.parametrize(
    ("count", "explicit", "claimed", "expected"),
    [
        (1, set[str](), set[str](), ("Block",)),
        (3, set[str](), set[str](), ("Block_1", "Block_2", "Block_3")),
        (1, {"Block"}, set[str](), ("Block_1",)),  # an explicit name holds the plain name
        (1, {"Block_1"}, set[str](), ("Block",)),  # a suffix taken does not matter to a single member
        (2, {"Block"}, set[str](), ("Block_1", "Block_2")),
        (2, {"Block_1", "Block_3"}, set[str](), ("Block_2", "Block_4")),
        (2, {"other", "Blocks", "Block_x", "Linear_1"}, set[str](), ("Block_1", "Block_2")),  # not this class's names
        (2, set[str](), {"Block_2"}, ("Block_1", "Block_3")),
        (2, set[str](), {"Block"}, ("Block_1", "Block_2")),  # a claim on the plain name itself is no claim
        (2, {"Block_1"}, {"Block_2"}, ("Block_3", "Block_4")),
        (0, {"Block_1"}, set[str](), ()),
    ],
)
def test_auto_names_skip_the_names_held_by_others(
    count: int, explicit: set[str], claimed: set[str], expected: tuple[str, ...]
) -> None:
    assert auto_names("Block", count, frozenset(explicit), frozenset(claimed)) == expected


def test_holds_suffix_like_name_only_for_a_single_automatically_named_member() -> None:
    assert holds_suffix_like_name("Block_2", 1, set[str]())
    assert not holds_suffix_like_name("Block_2", 2, set[str]())  # numbered itself: Block_2_1, Block_2_2
    assert not holds_suffix_like_name("Block_2", 1, {"Block_2"})  # an explicit name holds it: Block_2_1
    assert not holds_suffix_like_name("Block", 1, set[str]())  # not suffix-like
    assert not holds_suffix_like_name("proj_out", 1, set[str]())


def test_ranks_of_gives_each_name_its_position_in_its_group() -> None:
    plain = auto_names("Linear", 3, frozenset())
    assert ranks_of(plain) == {"Linear_1": 0, "Linear_2": 1, "Linear_3": 2}
    skipping = auto_names("Linear", 2, frozenset({"Linear_1"}))
    assert ranks_of(skipping) == {"Linear_2": 0, "Linear_3": 1}
    assert ranks_of(()) == {}


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(0, 6),
    explicit=st.frozensets(st.sampled_from(["Block", "Block_1", "Block_2", "Block_4", "Block_2_1", "x", "Blocks"])),
    claimed=st.frozensets(st.sampled_from(["Block", "Block_1", "Block_3", "Block_5", "Linear_2"])),
)
def test_auto_names_are_distinct_free_and_the_smallest_free_suffixes(
    count: int, explicit: frozenset[str], claimed: frozenset[str]
) -> None:
    chosen = auto_names("Block", count, explicit, claimed)
    assert len(chosen) == count
    assert len(set(chosen)) == count
    assert not set(chosen) & explicit
    assert not set(chosen) & (claimed - {"Block"})
    if count == 1 and "Block" not in explicit:
        assert chosen == ("Block",)
        return
    assert all(base_of(name) == "Block" and name != "Block" for name in chosen)
    suffixes = [int(name.rpartition("_")[2]) for name in chosen]
    assert suffixes == sorted(suffixes)
    blocked = explicit | (claimed - {"Block"})
    # no suffix below the largest one chosen was left free
    assert all(f"Block_{k}" in blocked or k in suffixes for k in range(1, max(suffixes, default=0) + 1))


# -- the rule at work in a Chain ------------------------------------------------------------------


def test_a_class_named_like_a_suffix_keeps_its_name_and_the_repeated_class_skips_it() -> None:
    shared = Block()
    model = fl.Chain(Block(), shared, Block_2())
    assert names(model) == ["Block_1", "Block_3", "Block_2"]
    assert len(model) == 3
    assert shared.parent is model
    assert model.Block_3 is shared
    check_tree(model)


def test_appending_a_repeat_keeps_a_class_named_like_its_suffix() -> None:
    model = fl.Chain(Block(), Block_2())
    model.append(Block())
    assert names(model) == ["Block_1", "Block_2", "Block_3"]
    assert [type(child).__name__ for child in model] == ["Block", "Block_2", "Block"]
    model.pop(0)
    assert names(model) == ["Block_2", "Block"]  # Block has one member again: its plain name
    check_tree(model)


def test_a_suffix_is_freed_when_the_class_holding_it_repeats() -> None:
    model = fl.Chain(Block(), Block(), Block_2())
    model.append(Block_2())  # Block_2 now repeats: Block_2_1, Block_2_2, and Block_2 is free again
    assert names(model) == ["Block_1", "Block_2", "Block_2_1", "Block_2_2"]
    check_tree(model)


def test_explicit_names_never_change_and_automatic_names_skip_them() -> None:
    model = fl.Chain(Block(), Block(), Block_3=Block_1())
    assert names(model) == ["Block_1", "Block_2", "Block_3"]
    model.insert(0, Block())
    assert names(model) == ["Block_1", "Block_2", "Block_4", "Block_3"]
    check_tree(model)


def test_models_without_colliding_classes_keep_their_usual_names() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.ReLU(), fl.Linear(2, 2), out=fl.Linear(2, 2))
    assert names(model) == ["Linear_1", "ReLU", "Linear_2", "out"]


def test_a_child_whose_class_changes_after_naming_stays_in_its_group() -> None:
    class Double(torch.nn.Module):
        def forward(self, weight: torch.Tensor) -> torch.Tensor:
            return 2 * weight

    model = fl.Chain(fl.Linear(2, 2), fl.ReLU(), fl.Linear(2, 2))
    parametrize.register_parametrization(model.Linear_1, "weight", Double())  # swaps in a subclass
    model.pop(0)
    assert names(model) == ["ReLU", "Linear"]
    model.append(fl.Linear(2, 2))
    assert names(model) == ["ReLU", "Linear_1", "Linear_2"]


def test_a_lone_member_whose_name_an_explicit_name_holds_takes_the_first_suffix() -> None:
    model = fl.Chain()
    model.append(Block(), name="Block")
    model.append(Block())
    assert names(model) == ["Block", "Block_1"]
    model.pop(0)  # the explicit name goes: the plain name is free again
    assert names(model) == ["Block"]


def test_a_repeated_class_named_like_a_suffix_is_numbered_after_its_own_name() -> None:
    model = fl.Chain(Block_2(), Block_2(), Block())
    assert names(model) == ["Block_2_1", "Block_2_2", "Block"]
    check_tree(model)


def test_a_stand_in_is_named_in_the_group_of_the_class_it_stands_for() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.Linear(2, 2), fl.ReLU())
    wrapper = fl.Chain()
    wrapper.stand_in_for(model["Linear_2"], name="inner")
    assert names(model) == ["Linear_1", "Linear_2", "ReLU"]
    assert model.Linear_2 is wrapper
    model.pop(0)  # the group shrinks to the stand-in alone: it takes the plain name of the group
    assert names(model) == ["Linear", "ReLU"]
    assert model.Linear is wrapper
    check_tree(model)


# -- names depend on the children, not on how they got there ----------------------------------------

CLASSES = [Block, Block_1, Block_2, Block_3, fl.ReLU]
EXPLICIT = ["Block", "Block_1", "Block_2", "Block_4", "Block_2_1", "ReLU", "x"]


@st.composite
def children(draw: st.DrawFn) -> list[tuple[type[torch.nn.Module], str | None]]:
    """Children as (class, explicit name or None), explicit names distinct."""
    drawn = draw(
        st.lists(st.tuples(st.sampled_from(CLASSES), st.none() | st.sampled_from(EXPLICIT)), min_size=1, max_size=7)
    )
    seen: set[str] = set()
    unique: list[tuple[type[torch.nn.Module], str | None]] = []
    for kind, name in drawn:
        unique.append((kind, None if name in seen else name))
        if name is not None:
            seen.add(name)
    return unique


def appended(entries: list[tuple[type[torch.nn.Module], str | None]]) -> fl.Chain:
    model = fl.Chain()
    for kind, name in entries:
        model.append(kind(), name=name)
    return model


@settings(max_examples=150, deadline=None)
@given(entries=children(), data=st.data())
def test_names_are_the_same_whatever_order_the_children_were_inserted_in(
    entries: list[tuple[type[torch.nn.Module], str | None]], data: st.DataObject
) -> None:
    expected = names(appended(entries))
    # insert the same children, in a random order, each at its final position among those placed
    order = data.draw(st.permutations(range(len(entries))), label="insertion order")
    model = fl.Chain()
    placed: list[int] = []
    for position in order:
        index = sum(1 for other in placed if other < position)
        kind, name = entries[position]
        model.insert(index, kind(), name=name)
        placed.append(position)
    assert names(model) == expected
    check_tree(model)


@settings(max_examples=150, deadline=None)
@given(entries=children(), data=st.data())
def test_after_a_removal_names_are_those_of_a_chain_built_without_the_child(
    entries: list[tuple[type[torch.nn.Module], str | None]], data: st.DataObject
) -> None:
    model = appended(entries)
    index = data.draw(st.integers(0, len(entries) - 1), label="removed")
    model.pop(index)
    assert names(model) == names(appended(entries[:index] + entries[index + 1 :]))


@settings(max_examples=150, deadline=None)
@given(entries=children())
def test_automatic_names_follow_the_class_and_never_take_another_childs_name(
    entries: list[tuple[type[torch.nn.Module], str | None]],
) -> None:
    model = appended(entries)
    given_names = [name for name in names(model) if name in model.explicit_names]
    assert given_names == [name for _, name in entries if name is not None]
    automatic = [
        (name, kind.__name__) for name, (kind, explicit) in zip(names(model), entries, strict=True) if explicit is None
    ]
    assert len(set(names(model))) == len(entries)
    for name, kind in automatic:
        assert name == kind or base_of(name) == kind
    # within a class, automatic names count up in child order
    for kind in {kind for _, kind in automatic}:
        group = [name for name, other in automatic if other == kind]
        if len(group) > 1:
            numbers = [int(name.rpartition("_")[2]) for name in group]
            assert numbers == sorted(numbers)
