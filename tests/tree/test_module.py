"""Leaves of the tree (``fluxion.tree.module``): parents, roots and addresses for fluxion and plain torch
modules, the constructor call kept for specs, and copies that share tensors."""

import copy
import gc
import pickle

import torch

import fluxion.layers as fl
from fluxion.tree.module import (
    CHILD,
    address_of,
    clone_shell,
    constructor_call,
    parent_of,
    record_constructor_call,
    set_parent,
    shallow_copy,
)

# -- parents, roots, addresses -----------------------------------------------------------------------


def test_a_node_knows_its_parent_root_and_address() -> None:
    leaf = fl.ReLU()
    model = fl.Chain(encoder=fl.Chain(fl.Chain(leaf)))
    assert leaf.parent is model["encoder.Chain"]
    assert leaf.root is model
    assert leaf.address == "encoder.Chain.ReLU"
    assert model.root is model
    assert model.address == ""
    alone = fl.Tanh()
    assert (alone.parent, alone.root, alone.address) == (None, alone, "")


def test_a_plain_torch_leaf_gets_a_parent_without_being_changed() -> None:
    plain = torch.nn.GELU()
    attributes = set(plain.__dict__)
    model = fl.Chain(body=fl.Chain(plain))
    assert parent_of(plain) is model.body
    assert address_of(plain) == "body.GELU"
    assert set(plain.__dict__) == attributes
    model.body.pop()
    assert parent_of(plain) is None
    assert address_of(plain) == ""


def test_the_parent_of_a_plain_leaf_is_held_weakly() -> None:
    plain = torch.nn.ReLU()
    chain = fl.Chain(plain)
    assert parent_of(plain) is chain
    del chain
    gc.collect()
    assert parent_of(plain) is None  # the Chain is gone: no parent kept alive through the leaf


def test_set_parent_attaches_and_detaches_both_kinds_of_leaf() -> None:
    chain = fl.Chain()
    for leaf in (fl.ReLU(), torch.nn.ReLU()):
        set_parent(leaf, chain)
        assert parent_of(leaf) is chain
        set_parent(leaf, None)
        assert parent_of(leaf) is None
    leaf = fl.ReLU()
    set_parent(leaf, chain)
    assert "_parent" not in leaf._modules  # pyright: ignore[reportPrivateUsage]
    assert list(leaf.children()) == []  # the parent is no submodule of its child


# -- copies -------------------------------------------------------------------------------------------


def test_a_structural_copy_of_a_leaf_shares_tensors_and_starts_detached() -> None:
    linear = fl.Linear(2, 3)
    fl.Chain(linear)
    twin = linear.structural_copy()
    assert twin is not linear
    assert type(twin) is fl.Linear
    assert twin.weight is linear.weight
    assert twin.bias is linear.bias
    assert twin.parent is None
    assert linear.parent is not None
    twin.register_buffer("extra", torch.zeros(1))  # tables of its own
    assert "extra" not in dict(linear.named_buffers())


def test_copies_and_pickles_of_a_leaf_start_detached() -> None:
    linear = fl.Linear(2, 2)
    model = fl.Chain(linear)
    for twin in (copy.deepcopy(linear), pickle.loads(pickle.dumps(linear))):
        assert twin.parent is None
        assert twin.address == ""
        torch.testing.assert_close(twin.weight, linear.weight)
        assert twin.weight is not linear.weight
    assert linear.parent is model


def test_shallow_copy_of_a_plain_container_copies_the_modules_and_shares_the_tensors() -> None:
    block = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Linear(2, 1)))
    twin = shallow_copy(block)
    assert twin[1] is not block[1]
    assert twin[1][0] is not block[1][0]
    assert twin[1][0].weight is block[1][0].weight
    twin.append(torch.nn.ReLU())
    assert len(block) == 2
    x = torch.randn(3, 2)
    torch.testing.assert_close(twin[:2](x), block(x))


def test_clone_shell_copies_the_tables_and_drops_the_parent() -> None:
    linear = fl.Linear(2, 2)
    fl.Chain(linear)
    clone = clone_shell(linear)
    assert clone.parent is None
    assert clone._parameters is not linear._parameters  # pyright: ignore[reportPrivateUsage]
    assert clone._forward_hooks is not linear._forward_hooks  # pyright: ignore[reportPrivateUsage]
    clone.register_forward_hook(lambda *_: None)
    assert not linear._forward_hooks  # pyright: ignore[reportPrivateUsage]
    assert clone.weight is linear.weight


# -- the constructor call -----------------------------------------------------------------------------


def test_the_constructor_call_is_kept_with_modules_given_replaced_by_child() -> None:
    assert constructor_call(fl.Linear(4, out_features=2, bias=False)) == ((4,), {"out_features": 2, "bias": False})
    assert constructor_call(fl.Chain(fl.ReLU(), head=fl.Tanh())) == ((CHILD,), {"head": CHILD})
    assert constructor_call(fl.Chain([fl.ReLU(), fl.Tanh()])) == ((CHILD,), {})  # a list of modules
    assert constructor_call(fl.Lambda(torch.neg)) == ((torch.neg,), {})
    assert constructor_call(torch.nn.Linear(1, 1)) is None  # not built by fluxion


def test_child_is_one_object_even_through_pickling() -> None:
    assert pickle.loads(pickle.dumps(CHILD)) is CHILD
    assert repr(CHILD) == "<child>"


# -- weights -----------------------------------------------------------------------------------------


def test_a_weighted_modules_dtype_and_device_are_its_parameters() -> None:
    linear = fl.Linear(2, 2, dtype=torch.float64)
    assert isinstance(linear, fl.WeightedModule)
    assert linear.dtype == torch.float64
    assert linear.device == torch.device("cpu")
    linear.to(torch.float16)
    assert linear.dtype == torch.float16
    meta = fl.Linear(2, 2, device="meta")
    assert meta.device.type == "meta"


def test_a_recorded_constructor_call_is_kept_by_copies_and_pickles() -> None:
    plain = torch.nn.GELU(approximate="tanh")
    record_constructor_call(plain, (), {"approximate": "tanh"})
    expected = ((), {"approximate": "tanh"})
    assert constructor_call(plain) == expected
    assert constructor_call(copy.deepcopy(plain)) == expected
    assert constructor_call(pickle.loads(pickle.dumps(plain))) == expected
    assert constructor_call(shallow_copy(plain)) == expected


def test_a_chain_built_from_a_generator_can_be_copied_pickled_and_dumped() -> None:
    from fluxion import spec

    model = fl.Chain(fl.Linear(2, 2) for _ in range(3))
    twin = copy.deepcopy(model)
    again = pickle.loads(pickle.dumps(model))
    assert [name for name, _ in twin.named_modules()] == [name for name, _ in model.named_modules()]
    assert [name for name, _ in again.named_modules()] == [name for name, _ in model.named_modules()]
    assert [child["type"] for child in spec.dump(model)["children"]] == ["Linear"] * 3
