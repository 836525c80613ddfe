"""fluxion.tree.wrapping: a node whose class a distributed wrapper swapped is still the node it was built as.

No process group here: ``wrap`` does what ``fully_shard`` does to a node's class (a subclass made on
the fly from a marker class and the node's own, defined under ``torch.distributed``, assigned to
``module.__class__``). The multi-process tests in tests/distributed/ check the real thing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes, spec
from fluxion.adapters import AdapterError, lora
from fluxion.adapters.adapter import Adapter
from fluxion.errors import ChainError, TreeError
from fluxion.inspect.counting import layer_counts
from fluxion.tree import draw_tree, is_wrapped, node_class, place_of
from fluxion.tree.wrapping import wrapped_node_in

FAKE_PACKAGE = "torch.distributed.fake"

FakeFSDPModule = type("FakeFSDPModule", (), {"__module__": FAKE_PACKAGE})
"""Stands for FSDP2's ``FSDPModule``: a marker base of every swapped class."""

_swapped: dict[type, type] = {}


def wrap(module: torch.nn.Module) -> torch.nn.Module:
    """Swap ``module``'s class for ``FSDP<Class>`` (made once per class), in place, as ``fully_shard`` does."""
    cls = type(module)
    if cls not in _swapped:
        _swapped[cls] = type(f"FSDP{cls.__name__}", (FakeFSDPModule, cls), {"__module__": FAKE_PACKAGE})
    module.__class__ = _swapped[cls]
    return module


class Block(fl.Chain):
    """A user-defined Chain subclass, built from its own arguments."""

    def __init__(self, width: int = 3) -> None:
        super().__init__(fl.Linear(width, width), fl.ReLU())


def build() -> fl.Chain:
    """An unwrapped root holding a part to wrap (``body``), a plain part (``free``) and a head."""
    torch.manual_seed(0)
    return fl.Chain(
        fl.Linear(2, 3),
        body=fl.Chain(block=fl.Chain(fl.Linear(3, 3), fl.ReLU()), extra=fl.Residual(fl.Linear(3, 3))),
        free=fl.Chain(fl.Linear(3, 3), fl.Tanh()),
        head=fl.Linear(3, 2),
    )


def sharded() -> fl.Chain:
    """``build()`` with ``body``, its inner Chains and the head wrapped (innermost first), the root not."""
    model = build()
    for node in (model.body.block, model.body.extra, model.body, model.head):
        wrap(node)
    return model


def snapshot(model: torch.nn.Module) -> tuple[list[tuple[str, int, type]], list[str]]:
    """Every node by name, identity and class, and the state_dict keys: what a refused change must leave."""
    return [(name, id(node), type(node)) for name, node in model.named_modules()], list(model.state_dict())


# -- node_class, is_wrapped, wrapped_node_in -------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [fl.Chain, lambda: fl.Residual(fl.ReLU()), Block, lambda: fl.Linear(2, 2), lambda: torch.nn.Linear(2, 2)],
    ids=["Chain", "Residual", "Block", "Linear", "torch-Linear"],
)
def test_a_wrapped_node_is_known_by_the_class_it_was_built_as(make: Callable[[], torch.nn.Module]) -> None:
    node = make()
    built_as = type(node)
    assert node_class(node) is built_as
    assert not is_wrapped(node)
    wrap(node)
    assert type(node).__name__ == f"FSDP{built_as.__name__}"
    assert isinstance(node, built_as)
    assert is_wrapped(node)
    assert node_class(node) is built_as


@pytest.mark.parametrize(
    ("package", "wrapper"),
    [
        ("torch.distributed", True),
        ("torch.distributed.fsdp._fully_shard", True),
        ("torch.distributedx", False),
        ("my.torch.distributed", False),
        ("torch.nn.parallel", False),
    ],
)
def test_a_wrapper_class_is_one_defined_under_torch_distributed(package: str, wrapper: bool) -> None:
    cls = type("Swapped", (fl.Chain,), {"__module__": package})
    node = cls()
    assert is_wrapped(node) is wrapper
    assert node_class(node) is (fl.Chain if wrapper else cls)


def test_wrapped_node_in_finds_the_first_wrapped_node_in_or_under_the_modules() -> None:
    model = build()
    assert wrapped_node_in([model]) is None
    assert wrapped_node_in([]) is None
    wrap(model.body.extra)
    wrap(model.head)
    assert wrapped_node_in([model]) is model.body.extra
    assert wrapped_node_in([model.free, model.head, model.body]) is model.head
    assert wrapped_node_in([model.body.extra]) is model.body.extra
    assert wrapped_node_in([model.free, model.body.block]) is None


# -- the tree speaks of the original classes ---------------------------------------------------------


def test_automatic_names_count_a_wrapped_chain_under_its_own_class() -> None:
    model = fl.Chain(fl.Chain(fl.Linear(2, 2)), fl.Linear(2, 2))
    inner = wrap(model.Chain)
    model.insert(0, fl.Chain(fl.Identity()))  # the root is not wrapped and nothing wrapped moves
    assert [name for name, _ in model.named_children()] == ["Chain_1", "Chain_2", "Linear"]
    assert model.Chain_2 is inner
    assert inner.address == "Chain_2"
    assert list(model.state_dict()) == ["Chain_2.Linear.weight", "Chain_2.Linear.bias", "Linear.weight", "Linear.bias"]
    model.pop(0)
    assert [name for name, _ in model.named_children()] == ["Chain", "Linear"]
    assert model.Chain is inner


def test_automatic_names_count_a_wrapped_leaf_under_its_own_class() -> None:
    model = fl.Chain(fl.Linear(2, 2), fl.ReLU())
    leaf = wrap(model.Linear)
    model.append(fl.Linear(2, 2))
    assert [name for name, _ in model.named_children()] == ["Linear_1", "ReLU", "Linear_2"]
    assert model.Linear_1 is leaf


@pytest.mark.parametrize("wrap_root", [False, True])
def test_repr_shows_the_original_classes(wrap_root: bool) -> None:
    plain = repr(build())
    model = sharded()
    if wrap_root:
        wrap(model)
    assert repr(model) == plain
    assert draw_tree(model) == plain
    assert draw_tree(model.body) == draw_tree(build().body)
    assert "FSDP" not in plain


def test_place_of_names_the_original_class() -> None:
    model = sharded()
    wrap(model)
    assert place_of(model.body) == "Chain at 'body'"
    assert place_of(model.body.extra) == "Residual at 'body.extra'"
    assert place_of(model.head) == "Linear at 'head'"
    assert place_of(model) == "Chain"


def test_a_failing_wrapped_leaf_is_named_by_its_original_class() -> None:
    model = sharded()
    with pytest.raises(ChainError) as raised:
        model(torch.zeros(1, 5))  # the first Linear takes 2 features
    assert "FSDP" not in str(raised.value)
    model = fl.Chain(body=fl.Chain(fl.Linear(2, 3)), head=fl.Linear(4, 2))
    wrap(model.body)
    wrap(model.head)
    with pytest.raises(ChainError) as raised:
        model(torch.zeros(1, 2))  # the head takes 4 features, gets 3
    message = str(raised.value)
    assert message.startswith("Linear at 'head' failed")
    assert "FSDP" not in message


def test_a_failure_inside_a_wrapped_chain_names_it_by_its_original_class() -> None:
    model = fl.Chain(body=fl.Chain(fl.ReLU(), fl.Linear(4, 2)))
    wrap(model.body)
    wrap(model)
    with pytest.raises(ChainError) as raised:
        model(torch.zeros(1, 3))
    message = str(raised.value)
    assert message.startswith("Linear at 'body.Linear' failed")
    assert "(CHAIN) Chain()" in message
    assert "FSDP" not in message


def test_spec_dump_writes_the_original_classes_and_loads_back() -> None:
    plain = spec.dump(build())
    model = sharded()
    wrap(model)
    dumped = spec.dump(model)
    assert dumped == plain
    rebuilt = spec.loads(dumped)
    assert [name for name, _ in rebuilt.named_modules()] == [name for name, _ in model.named_modules()]
    assert not any(is_wrapped(node) for node in rebuilt.modules())


def test_shape_inference_reports_the_original_classes() -> None:
    plain = str(shapes.infer(build(), ("B", 2)))
    model = sharded()
    wrap(model)
    report = shapes.infer(model, ("B", 2))
    assert str(report) == plain
    assert report.output == shapes.infer(build(), ("B", 2)).output
    assert "FSDP" not in plain


def test_layer_counts_count_the_original_classes() -> None:
    model = sharded()
    wrap(model)
    assert layer_counts(model) == layer_counts(build())


# -- surgery in or around a wrapped part is refused, and changes nothing ----------------------------

Surgery = Callable[[fl.Chain], object]

SURGERY_IN_A_WRAPPED_PART: dict[str, Surgery] = {
    "append-to-wrapped": lambda model: model.body.append(fl.ReLU()),
    "insert-into-wrapped": lambda model: model.body.insert(0, fl.ReLU()),
    "pop-from-wrapped": lambda model: model.body.pop(),
    "remove-from-wrapped": lambda model: model.body.remove("extra"),
    "replace-in-wrapped": lambda model: model.body.replace("extra", fl.Residual(fl.Linear(3, 3))),
    "setitem-in-wrapped": lambda model: model.body.__setitem__("extra", fl.ReLU()),
    "delitem-in-wrapped": lambda model: model.body.__delitem__(0),
    "insert-before-type-in-wrapped": lambda model: model.body.insert_before_type(fl.Residual, fl.ReLU()),
    "append-below-wrapped": lambda model: model.body.block.append(fl.Tanh()),
    "insert-below-wrapped": lambda model: model.body.block.insert(1, fl.Tanh()),
    "pop-below-wrapped": lambda model: model.body.block.pop(0),
    "remove-below-wrapped": lambda model: model.body.block.remove(model.body.block.ReLU),
    "replace-below-wrapped": lambda model: model.body.block.replace("Linear", fl.Linear(3, 3)),
    "insert-after-type-below-wrapped": lambda model: model.body.block.insert_after_type(fl.ReLU, fl.Tanh()),
    "pop-wrapped-from-root": lambda model: model.pop(1),
    "remove-wrapped-from-root": lambda model: model.remove("body"),
    "replace-wrapped-in-root": lambda model: model.replace("body", fl.Chain()),
    "replace-wrapped-leaf-in-root": lambda model: model.replace("head", fl.Linear(3, 2)),
    "delitem-wrapped-leaf-in-root": lambda model: model.__delitem__("head"),
}


def holding_a_wrapped_node() -> tuple[fl.Chain, fl.Chain]:
    """A root (not wrapped) whose ``outer`` Chain (not wrapped) holds a wrapped Chain, and that wrapped Chain."""
    inner = fl.Chain(fl.Linear(2, 2))
    model = fl.Chain(outer=fl.Chain(inner), other=fl.ReLU())
    wrap(inner)
    return model, inner


@pytest.mark.parametrize("surgery", list(SURGERY_IN_A_WRAPPED_PART))
def test_surgery_in_or_on_a_wrapped_part_is_refused_and_changes_nothing(surgery: str) -> None:
    model = sharded()
    before = snapshot(model)
    with pytest.raises(TreeError) as raised:
        SURGERY_IN_A_WRAPPED_PART[surgery](model)
    message = str(raised.value)
    assert "do surgery before sharding" in message
    assert "fluxion.distributed.unshard" in message
    assert snapshot(model) == before


@pytest.mark.parametrize(
    "surgery",
    [
        lambda model: model.pop(0),
        lambda model: model.remove("outer"),
        lambda model: model.replace("outer", fl.Chain()),
        lambda model: model.insert(0, model.pop(0)),
    ],
    ids=["pop", "remove", "replace", "move"],
)
def test_taking_out_a_subtree_that_holds_a_wrapped_node_is_refused(surgery: Surgery) -> None:
    model, inner = holding_a_wrapped_node()
    before = snapshot(model)
    with pytest.raises(TreeError, match=r"Chain at 'outer\.Chain' is wrapped by FSDPChain"):
        surgery(model)
    assert snapshot(model) == before
    assert inner.parent is model.outer


@pytest.mark.parametrize(
    "surgery",
    [
        lambda model, wrapped: model.append(wrapped),
        lambda model, wrapped: model.insert(0, wrapped, name="shard"),
        lambda model, wrapped: model.replace("other", wrapped),
        lambda model, wrapped: model.outer.append(fl.Chain(wrapped)),
    ],
    ids=["append", "insert", "replace", "inside-a-new-chain"],
)
def test_putting_a_wrapped_node_into_a_tree_is_refused(surgery: Callable[[fl.Chain, torch.nn.Module], object]) -> None:
    model = fl.Chain(outer=fl.Chain(fl.Linear(2, 2)), other=fl.ReLU())
    wrapped = wrap(fl.Chain(fl.Linear(2, 2)))
    before = snapshot(model)
    with pytest.raises(TreeError, match="surgery here would change a sharded part"):
        surgery(model, wrapped)
    assert snapshot(model) == before
    assert all(node is not wrapped for node in model.modules())


def test_under_a_wrapped_root_every_chain_refuses_surgery() -> None:
    model = sharded()
    wrap(model)
    before = snapshot(model)
    for surgery in (lambda: model.free.append(fl.ReLU()), lambda: model.append(fl.ReLU()), lambda: model.free.pop()):
        with pytest.raises(TreeError, match="do surgery before sharding"):
            surgery()
    assert snapshot(model) == before


def test_the_refusal_names_the_chain_and_the_wrapped_node_by_their_classes() -> None:
    model = sharded()
    with pytest.raises(TreeError) as raised:
        model.body.block.append(fl.ReLU())
    message = str(raised.value)
    assert message.startswith("Chain at 'body.block': surgery here would change a sharded part of the tree")
    assert "(Chain at 'body.block' is wrapped by FSDPChain)" in message


# -- adapters in a wrapped part --------------------------------------------------------------------


@pytest.mark.parametrize(
    "inject",
    [
        lambda model: lora.inject(model, rank=1, targets="body.*"),
        lambda model: lora.inject(model, rank=1, targets="head"),
        lambda model: Adapter(model.body.block.Linear).inject(),
        lambda model: Adapter(model.body).inject(),
    ],
    ids=["lora-below-wrapped", "lora-on-wrapped-leaf", "adapter-below-wrapped", "adapter-on-wrapped"],
)
def test_injecting_an_adapter_in_a_wrapped_part_is_refused(inject: Surgery) -> None:
    model = sharded()
    before = snapshot(model)
    with pytest.raises(AdapterError, match="do surgery before sharding"):
        inject(model)
    assert snapshot(model) == before


def lora_then_wrapped(wrap_the_adapter: bool) -> fl.Chain:
    """LoRAs injected in ``free`` before wrapping: then ``free`` (or one LoRA itself) is wrapped."""
    model = build()
    lora.inject(model, rank=1, targets="free.*")
    wrap(model.free.Linear if wrap_the_adapter else model.free)
    return model


@pytest.mark.parametrize("wrap_the_adapter", [False, True], ids=["in-wrapped-chain", "adapter-wrapped"])
def test_ejecting_an_adapter_in_a_wrapped_part_is_refused_and_changes_nothing(wrap_the_adapter: bool) -> None:
    model = lora_then_wrapped(wrap_the_adapter)
    before = snapshot(model)
    with pytest.raises((AdapterError, TreeError), match="do surgery before sharding"):
        lora.eject(model)
    assert snapshot(model) == before
    assert all(adapter.injected for adapter in lora.adapters(model))


@pytest.mark.parametrize("wrap_the_adapter", [False, True], ids=["in-wrapped-chain", "adapter-wrapped"])
def test_ejecting_an_adapter_in_a_wrapped_part_is_an_adapter_error(wrap_the_adapter: bool) -> None:
    model = lora_then_wrapped(wrap_the_adapter)
    with pytest.raises(AdapterError):
        lora.eject(model)


# -- surgery elsewhere still works ----------------------------------------------------------------


def test_surgery_away_from_the_wrapped_part_still_works() -> None:
    model = sharded()
    body, head = model.body, model.head
    wrapped = [(name, id(node), type(node)) for name, node in model.named_modules() if is_wrapped(node)]
    model.free.append(fl.ReLU())
    model.free.insert(0, fl.Identity())
    model.free.replace("Tanh", fl.Sigmoid())
    model.free.pop(0)
    model.insert(0, fl.Identity(), name="stem")
    model.append(fl.Tanh())
    model.remove("Tanh")
    model.replace("Linear", fl.Linear(2, 3))
    assert [name for name, _ in model.free.named_children()] == ["Linear", "Sigmoid", "ReLU"]
    assert [name for name, _ in model.named_children()] == ["stem", "Linear", "body", "free", "head"]
    assert model.body is body
    assert model.head is head
    assert [(name, id(node), type(node)) for name, node in model.named_modules() if is_wrapped(node)] == wrapped
    assert model(torch.zeros(1, 2)).shape == (1, 2)


def test_adapters_away_from_the_wrapped_part_inject_and_eject() -> None:
    model = sharded()
    before = snapshot(model)
    adapters = lora.inject(model, rank=1, targets="free.*")
    assert [adapter.address for adapter in adapters] == ["free.Linear"]
    assert model(torch.zeros(1, 2)).shape == (1, 2)
    lora.eject(model)
    assert snapshot(model) == before


def test_a_structural_copy_of_a_wrapped_part_is_a_plain_tree_or_refused() -> None:
    model = sharded()
    try:
        copies = [model.body.structural_copy(), model[1:3]]
    except TreeError:
        return
    assert not any(is_wrapped(node) for copy in copies for node in copy.modules() if isinstance(node, fl.Chain))
