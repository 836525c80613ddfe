"""Target selection: base addresses through adapters, globs, types, predicates and their errors."""

import pytest
import torch

import fluxion.layers as fl
from fluxion.adapters import Adapter, AdapterError, LinearLora, base_address, base_nodes, select


def is_linear(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.Linear)


def model() -> fl.Chain:
    return fl.Chain(
        fl.Linear(4, 4),
        blocks=fl.Chain(
            fl.Chain(attn=fl.Chain(q=fl.Linear(4, 4), k=fl.Linear(4, 4)), norm=fl.LayerNorm(4)),
            fl.Chain(attn=fl.Chain(q=fl.Linear(4, 4), k=torch.nn.Linear(4, 4)), norm=fl.LayerNorm(4)),
        ),
        head=fl.Linear(4, 2),
    )


def addresses(chosen: list[tuple[str, torch.nn.Module]]) -> list[str]:
    return [address for address, _ in chosen]


def test_globs_match_addresses_across_dots() -> None:
    tree = model()
    assert addresses(select(tree, "*.attn.*", is_linear)) == [
        "blocks.Chain_1.attn.q",
        "blocks.Chain_1.attn.k",
        "blocks.Chain_2.attn.q",
        "blocks.Chain_2.attn.k",
    ]
    assert addresses(select(tree, ["head", "Linear"], is_linear)) == ["Linear", "head"]
    assert addresses(select(tree, ("head", "Linear"), is_linear)) == ["Linear", "head"]
    assert addresses(select(tree, "blocks.Chain_2.*.q", is_linear)) == ["blocks.Chain_2.attn.q"]


def test_types_predicates_and_chains_select_what_they_contain() -> None:
    tree = model()
    assert addresses(select(tree, torch.nn.LayerNorm, lambda m: isinstance(m, fl.LayerNorm))) == [
        "blocks.Chain_1.norm",
        "blocks.Chain_2.norm",
    ]
    # A selected Chain stands for the adaptable nodes inside it; the root is a node too.
    assert addresses(select(tree, "blocks.Chain_1", is_linear)) == ["blocks.Chain_1.attn.q", "blocks.Chain_1.attn.k"]
    assert len(select(tree, lambda m: m is tree, is_linear)) == 6
    assert len(select(tree, [torch.nn.Linear], is_linear)) == 6
    assert addresses(select(tree, lambda m: isinstance(m, fl.Linear) and m.out_features == 2, is_linear)) == ["head"]


def test_selection_looks_through_adapters_and_skips_their_own_layers() -> None:
    tree = model()
    before = list(base_nodes(tree))
    q = tree["blocks.Chain_1.attn.q"]
    lora = LinearLora(q, rank=2).inject()
    Adapter(tree.blocks).inject()
    Adapter(lora).inject()
    assert [(address, id(node)) for address, node in base_nodes(tree)] == [(a, id(n)) for a, n in before]
    assert base_address(q) == "blocks.Chain_1.attn.q"
    assert q.address == "blocks.target.Chain_1.attn.q.target.target"
    assert base_address(lora.down) is None
    assert addresses(select(tree, fl.Linear, is_linear)) == addresses(select(model(), fl.Linear, is_linear))


def test_a_glob_that_matches_nothing_lists_nearby_addresses() -> None:
    with pytest.raises(AdapterError) as caught:
        select(model(), "blocks.Chain_1.atn.q", is_linear)
    message = str(caught.value)
    assert message.startswith("no node matches 'blocks.Chain_1.atn.q'; nearby addresses: blocks.Chain_1.attn.q")


def test_every_glob_of_a_list_must_match() -> None:
    with pytest.raises(AdapterError, match="no node matches 'haed'"):
        select(model(), ["head", "haed"], is_linear)


def test_a_type_or_predicate_that_matches_nothing_says_what_is_there() -> None:
    with pytest.raises(AdapterError, match=r"no node of type Conv2d in the model; types present: Chain, LayerNorm"):
        select(model(), fl.Conv2d, is_linear)
    with pytest.raises(AdapterError, match=r"the predicate .* matches no node"):
        select(model(), lambda m: False, is_linear)


def test_a_selection_without_anything_adaptable_is_refused() -> None:
    with pytest.raises(AdapterError, match=r"select blocks\.Chain_1\.norm \(LayerNorm\), .* none of them"):
        select(model(), "*.norm", is_linear)


@pytest.mark.parametrize("targets", [[], (), 3, [None], ["head", fl.Linear]])
def test_malformed_targets_are_refused(targets: object) -> None:
    with pytest.raises(AdapterError, match="targets must be"):
        select(model(), targets, is_linear)  # type: ignore[arg-type]
