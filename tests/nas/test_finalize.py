"""``fluxion.nas.finalize`` on DARTS-style supernets: one-hot architecture weights that encode a genotype
give back exactly that genotype under both ranking rules, and a discrete tree whose outputs are the
supernet's (its chosen operations inherit their weights, through safetensors files and through a
spec and the key mapping too); the supernet is left as it was; the address map says where each
node went; bad input is a NasError naming the node."""

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import nas, spec, weights
from fluxion.errors import NasError
from fluxion.nas.operations import Zero
from tests.nas.test_genotype import DARTS_V2  # DARTS's published cell, as JSON

CHANNELS = 3
NODES = 3
OPERATIONS = ("fc", "act", "skip")  # the candidates besides none
RANKS: tuple[nas.Rank, ...] = ("softmax", "raw")


def offset(node: int) -> int:
    """DARTS's flat index of node ``node``'s first edge: the edges of the nodes before it."""
    return 2 * node + node * (node - 1) // 2


def edge_index(position: int, state: int) -> int:
    """The edge of a genotype's ``position``-th pair when it reads ``state``."""
    return offset(position // 2) + state


def cell(c_prev_prev: int, c_prev: int) -> fl.Graph:
    """A DARTS-style cell: states 0 and 1 preprocess the inputs; node i (state i + 2) joins one edge
    from every earlier state; the output concatenates the intermediate states."""
    nodes: dict[str, torch.nn.Module] = {
        "state_0": fl.Linear(c_prev_prev, CHANNELS),
        "state_1": fl.Linear(c_prev, CHANNELS),
    }
    edges = ["s0 -> state_0", "s1 -> state_1"]
    for node in range(NODES):
        for state in range(node + 2):
            k = offset(node) + state
            nodes[f"edge_{k}"] = nas.Choice(
                none=Zero(), fc=fl.Linear(CHANNELS, CHANNELS), act=fl.Tanh(), skip=fl.Identity()
            )
            edges.append(f"state_{state} -> edge_{k} -> state_{node + 2}")
        nodes[f"state_{node + 2}"] = nas.InputChoice(keep=2)
    nodes["concat"] = fl.Cat(dim=1)
    edges += [f"state_{node + 2} -> concat" for node in range(NODES)]
    return fl.Graph(nodes, edges=edges, inputs=("s0", "s1"), outputs="concat")


def supernet(seed: int = 0) -> fl.Graph:
    """stem, normal_0, reduce_1, normal_2 (sharing normal_0's alphas, as DARTS's cells of a type do), head."""
    torch.manual_seed(seed)
    out = NODES * CHANNELS
    model = fl.Graph(
        {
            "stem": fl.Linear(5, CHANNELS),
            "normal_0": cell(CHANNELS, CHANNELS),
            "reduce_1": cell(CHANNELS, out),
            "normal_2": cell(out, out),
            "head": fl.Linear(out, 2),
        },
        edges=["x -> stem", "stem -> normal_0 -> reduce_1 -> normal_2 -> head", "stem -> reduce_1"],
        inputs=("x",),
        arguments={
            "normal_0": ["stem", "stem"],
            "reduce_1": ["stem", "normal_0"],
            "normal_2": ["normal_0", "reduce_1"],
        },
    )
    for name, module in model.normal_2.named_children():
        if isinstance(module, nas.Choice):
            module.alphas = model.normal_0.get_submodule(name).alphas
    return model


def encode(model: torch.nn.Module, genotype: dict[str, Any]) -> None:
    """One-hot architecture weights for ``genotype``: 0 for the chosen candidate and -inf elsewhere on
    its edges; on every other edge all but ``none`` at -inf, so that ``none`` (zero) carries weight 1."""
    with torch.no_grad():
        for address, module in model.named_modules():
            kind = address.rpartition("_")[0]
            if not isinstance(module, fl.Graph) or kind not in genotype:
                continue
            chosen = {edge_index(i, state): operation for i, (operation, state) in enumerate(genotype[kind])}
            for name, edge in module.named_children():
                if isinstance(edge, nas.Choice):
                    keep = chosen.get(int(name.removeprefix("edge_")), "none")
                    values = [0.0 if candidate == keep else -math.inf for candidate in edge.candidates]
                    edge.alphas.copy_(torch.tensor(values))


GENOTYPE: dict[str, Any] = {
    "normal": [["fc", 0], ["skip", 1], ["act", 1], ["fc", 2], ["fc", 0], ["act", 3]],
    "normal_concat": [2, 3, 4],
    "reduce": [["skip", 0], ["act", 1], ["act", 0], ["skip", 2], ["fc", 2], ["fc", 3]],
    "reduce_concat": [2, 3, 4],
}


@st.composite
def genotypes(draw: st.DrawFn) -> dict[str, Any]:
    """A genotype of the supernet's layout, each node's edges in input order."""
    data: dict[str, Any] = {}
    for kind in ("normal", "reduce"):
        pairs: list[list[Any]] = []
        for node in range(NODES):
            states = sorted(draw(st.lists(st.integers(0, node + 1), min_size=2, max_size=2, unique=True)))
            pairs.extend([draw(st.sampled_from(OPERATIONS)), state] for state in states)
        data[kind] = pairs
        data[f"{kind}_concat"] = list(range(2, NODES + 2))
    return data


def encoded(genotype: dict[str, Any], seed: int = 0) -> fl.Graph:
    model = supernet(seed)
    encode(model, genotype)
    return model.eval()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(genotype=genotypes(), seed=st.integers(0, 2**16))
def test_one_hot_weights_give_back_their_genotype_and_the_supernets_outputs(
    genotype: dict[str, Any], seed: int
) -> None:
    model = encoded(genotype, seed)
    x = torch.randn(4, 5)
    expected = model(x)
    for rank in RANKS:
        result = nas.finalize(model, rank=rank)
        assert result.genotype is not None
        assert result.genotype.to_json() == genotype
        assert nas.genotype_of(model, rank) == result.genotype
        assert torch.equal(result.model(x), expected), rank


def test_a_genotype_listing_a_nodes_edges_in_another_order_is_found_canonically_equal() -> None:
    swapped = copy.deepcopy(GENOTYPE)
    swapped["normal"][0], swapped["normal"][1] = swapped["normal"][1], swapped["normal"][0]
    result = nas.finalize(encoded(swapped))
    assert result.genotype is not None
    assert result.genotype.canonical() == nas.Genotype.parse(swapped).canonical()
    assert result.genotype.to_json() == GENOTYPE  # found in input order


def test_the_discrete_tree_keeps_the_chosen_operations_with_their_trained_tensors() -> None:
    model = encoded(GENOTYPE)
    child = nas.finalize(model).model
    assert isinstance(child, fl.Graph)
    assert not any(isinstance(module, nas.Choice | nas.InputChoice) for module in child.modules())
    assert nas.arch_parameters(child) == []
    normal = child.get_submodule("normal_0")
    assert isinstance(normal, fl.Graph)
    # node 0 of the normal cell: (fc, 0) and (skip, 1), edges 0 and 1; node 1: (act, 1), (fc, 2): edges 3, 4
    assert normal.sources("state_2") == ("edge_0", "edge_1")
    assert normal.sources("state_3") == ("edge_3", "edge_4")
    assert isinstance(normal.state_2, fl.Add)
    assert "edge_2" not in dict(normal.named_children())  # an edge no node keeps leaves the cell
    assert normal.get_submodule("edge_0").weight is model.get_submodule("normal_0.edge_0.fc").weight
    assert type(normal.get_submodule("edge_1")) is fl.Identity
    assert normal.sources("concat") == ("state_2", "state_3", "state_4")
    # the cells that share the alphas make the same choices
    assert nas.finalize(model).choices["normal_2.edge_4"] == nas.finalize(model).choices["normal_0.edge_4"] == "fc"


def test_the_outputs_survive_a_safetensors_round_trip_of_the_supernet(tmp_path: Path) -> None:
    model = encoded(GENOTYPE, seed=1)
    x = torch.randn(3, 5)
    expected = model(x)
    path = tmp_path / "supernet.safetensors"
    weights.save(model, path)
    fresh = supernet(seed=2)  # other weights, other alphas
    assert not torch.equal(fresh(x), expected)
    weights.load(fresh, path)
    assert fresh.normal_2.edge_0.alphas is fresh.normal_0.edge_0.alphas  # shared still
    fresh.eval()
    for rank in RANKS:
        result = nas.finalize(fresh, rank=rank)
        assert result.genotype is not None
        assert result.genotype.to_json() == GENOTYPE
        assert torch.equal(result.model(x), expected)


def test_a_discrete_model_built_from_its_spec_loads_the_supernet_checkpoint_through_the_key_mapping(
    tmp_path: Path,
) -> None:
    model = encoded(GENOTYPE, seed=3)
    x = torch.randn(3, 5)
    expected = model(x)
    path = tmp_path / "supernet.safetensors"
    weights.save(model, path)
    result = nas.finalize(model)
    torch.manual_seed(4)
    child = spec.loads(json.dumps(result.spec()))
    assert not torch.equal(child(x), expected)
    loaded = weights.load(child, path, mapping=result.key_mapping())  # strict: nothing missing, nothing left over
    assert loaded.missing == ()
    assert loaded.unexpected == ()
    assert set(loaded.loaded) == set(child.state_dict())
    child.eval()
    assert torch.equal(child(x), expected)
    mapping = result.key_mapping()
    assert mapping("normal_0.edge_0.alphas") is None
    assert mapping("normal_0.edge_0.fc.weight") == "normal_0.edge_0.weight"


def test_save_writes_spec_weights_genotype_and_address_map_that_load_back(tmp_path: Path) -> None:
    model = encoded(GENOTYPE, seed=5)
    x = torch.randn(2, 5)
    result = nas.finalize(model)
    folder = result.save(tmp_path / "child", inputs={"x": ["B", 5]})
    assert sorted(path.name for path in folder.iterdir()) == [
        "address_map.json",
        "genotype.json",
        "model.json",
        "model.safetensors",
    ]
    child = spec.load(folder / "model.json")
    weights.load(child, folder / "model.safetensors")
    child.eval()
    assert torch.equal(child(x), model(x))
    assert nas.Genotype.load(folder / "genotype.json") == result.genotype
    written = json.loads((folder / "address_map.json").read_text())
    assert written == {"modules": dict(result.address_map), "keys": dict(result.keys)}


def test_the_supernet_is_unchanged() -> None:
    model = encoded(GENOTYPE)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    alphas = {address: choice.alphas for address, choice in nas.choices(model) if isinstance(choice, nas.Choice)}
    described = repr(model)
    for rank in RANKS:
        nas.finalize(model, rank=rank)
    assert repr(model) == described
    assert model.state_dict().keys() == state.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    for address, choice in nas.choices(model):
        if isinstance(choice, nas.Choice):
            assert choice.alphas is alphas[address]
            assert choice.candidates == ("none", "fc", "act", "skip")
            assert (choice.mode, choice.chosen) == ("softmax", None)
        else:
            assert (choice.mode, choice.chosen) == ("softmax", None)


def test_the_address_map_sends_dropped_nodes_to_none_and_chosen_candidates_to_their_choice() -> None:
    result = nas.finalize(encoded(GENOTYPE))
    addresses = result.address_map
    assert addresses["normal_0.edge_0.fc"] == "normal_0.edge_0"  # chosen: under the choice's name
    assert addresses["normal_0.edge_0"] == "normal_0.edge_0"
    assert addresses["normal_0.edge_0.act"] is None  # a candidate left out
    assert addresses["normal_0.edge_0.none"] is None
    assert addresses["normal_0.edge_2"] is None  # an edge no node keeps, and its candidates
    assert addresses["normal_0.edge_2.fc"] is None
    assert addresses["reduce_1.edge_1.act"] == "reduce_1.edge_1"
    for kept in ("", "stem", "normal_0", "normal_0.state_0", "normal_0.state_2", "normal_0.concat", "head"):
        assert addresses[kept] == kept
    child = dict(result.model.named_modules())
    assert {address for address in addresses.values() if address is not None} == set(child)
    assert result.keys["normal_0.edge_0.alphas"] is None
    assert result.keys["normal_0.edge_2.fc.weight"] is None
    assert result.keys["normal_0.edge_0.fc.bias"] == "normal_0.edge_0.bias"


def test_keep_overrides_every_join() -> None:
    # with one edge per node (ties keep the earlier edge), each cell still reads both of its inputs
    genotype = copy.deepcopy(GENOTYPE)
    genotype["reduce"][2:4] = [["act", 1], ["skip", 2]]
    model = encoded(genotype)
    result = nas.finalize(model, keep=1)
    assert all(len(join.kept) == 1 for join in result.joins.values())
    assert result.joins["normal_0.state_3"] == nas.Join(kept=("edge_3",), dropped=("edge_2", "edge_4"))
    assert result.genotype is None  # not DARTS's form: a node keeps two edges there
    assert isinstance(result.model.get_submodule("normal_0.state_3"), fl.Identity)  # a join of one input passes it on
    assert result.model(torch.randn(2, 5)).shape == (2, 2)


def test_joins_that_leave_an_input_of_a_cell_unread_are_a_nas_error_naming_the_cell() -> None:
    # GENOTYPE's reduction cell keeps, at one edge per node, edges from states 0, 0 and 2: nothing reads s1
    message = "finalize: the Graph at 'reduce_1' with only the inputs its joins keep: Graph: input 's1' is in no edge"
    with pytest.raises(NasError, match=re.escape(message)):
        nas.finalize(encoded(GENOTYPE), keep=1)


# -- joins that are not the nodes of a cell ---------------------------------------------------------


def test_a_learning_join_outside_a_graph_keeps_its_strongest_inputs_by_position(tmp_path: Path) -> None:
    model = fl.Chain(
        fl.Parallel(fl.Linear(3, 3), fl.Tanh(), fl.Identity()), join=nas.InputChoice(keep=1, count=3, learn=True)
    )
    assert model.join.alphas is not None
    with torch.no_grad():
        model.join.alphas.copy_(torch.tensor([-math.inf, 0.0, -math.inf]))
    x = torch.randn(2, 3)
    result = nas.finalize(model)
    assert result.joins["join"] == nas.Join(kept=("1",), dropped=("0", "2"))
    assert nas.arch_parameters(result.model) == []
    assert torch.equal(result.model(x), torch.tanh(x))
    assert torch.equal(result.model(x), model(x))
    path = tmp_path / "supernet.safetensors"
    weights.save(model, path)
    child = spec.loads(json.dumps(result.spec()))
    assert weights.load(child, path, mapping=result.key_mapping()).missing == ()
    assert torch.equal(child(x), model(x))


@pytest.mark.parametrize(("alphas", "chosen"), [([5.0, 0.0], "block"), ([0.0, 5.0], "fc")])
def test_a_graph_with_joins_inside_a_candidate_follows_its_choice(alphas: list[float], chosen: str) -> None:
    block = fl.Graph(
        {"a": fl.Linear(3, 3), "b": fl.Tanh(), "join": nas.InputChoice(keep=1, count=2, learn=True)},
        edges=["x -> a -> join", "x -> b -> join"],
        inputs=("x",),
    )
    model = fl.Chain(edge=nas.Choice(block=block, fc=fl.Linear(3, 3)))
    with torch.no_grad():
        model.edge.alphas.copy_(torch.tensor(alphas))
        block.join.alphas.copy_(torch.tensor([-math.inf, 0.0]))  # pyright: ignore[reportOptionalMemberAccess]
    x = torch.randn(2, 3)
    result = nas.finalize(model)
    assert result.choices["edge"] == chosen
    expected = torch.tanh(x) if chosen == "block" else model.edge.fc(x)
    assert torch.equal(result.model(x), expected)
    if chosen == "block":
        assert result.address_map["edge.block.b"] == "edge.b"
        assert result.address_map["edge.block.a"] is None
    else:
        assert result.address_map["edge.block.b"] is None


# -- bad input --------------------------------------------------------------------------------------


def test_bad_input_is_a_nas_error_naming_what_and_where() -> None:
    with pytest.raises(NasError, match="the supernet is a Linear, not a Chain or Graph"):
        nas.finalize(fl.Linear(2, 2))
    model = encoded(GENOTYPE)
    with pytest.raises(NasError, match="unknown ranking rule 'best'"):
        nas.finalize(model, rank="best")  # pyright: ignore[reportArgumentType]
    for keep in (0, -1, True):
        with pytest.raises(
            NasError, match=re.escape(f"keep is the number of inputs each join keeps (1 or more), got {keep!r}")
        ):
            nas.finalize(model, keep=keep)
    with pytest.raises(NasError, match=re.escape("InputChoice at 'normal_0.state_2' keeps 3 inputs but gets 2")):
        nas.finalize(model, keep=3)


def test_a_choice_of_none_only_is_named() -> None:
    model = encoded(GENOTYPE)
    model.reduce_1.edge_4 = nas.Choice(none=Zero())
    with pytest.raises(NasError, match=re.escape("Choice at 'reduce_1.edge_4': no candidate can be chosen")):
        nas.finalize(model)


def test_a_join_outside_a_graph_without_weights_of_its_own_is_refused() -> None:
    model = fl.Chain(fl.Parallel(fl.Linear(3, 3), fl.Tanh()), cells=fl.Chain(join=nas.InputChoice(keep=1)))
    with pytest.raises(NasError, match=re.escape("InputChoice at 'cells.join': finalize ranks a join's inputs")):
        nas.finalize(model)


# -- DARTS's search space as a spec ---------------------------------------------------------------------

DARTS_SPEC = Path(__file__).resolve().parents[2] / "examples" / "darts.jsonnet"


def darts_supernet(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return spec.load(DARTS_SPEC, tla={"channels": 4, "cells": 3, "image_size": 8, "classes": 5})


def test_the_darts_supernet_gives_back_darts_v2_and_its_outputs_through_a_checkpoint(tmp_path: Path) -> None:
    model = darts_supernet(seed=0)
    assert [name for name, _ in model.named_children() if "_" in name][:3] == ["normal_0", "reduce_1", "reduce_2"]
    encode(model, DARTS_V2)
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    path = tmp_path / "supernet.safetensors"
    weights.save(model, path)
    fresh = darts_supernet(seed=1)
    weights.load(fresh, path)
    fresh.eval()
    canonical = nas.Genotype.parse(DARTS_V2).canonical()
    for rank in RANKS:
        result = nas.finalize(fresh, rank=rank)
        assert result.genotype is not None
        assert result.genotype.to_json() == canonical.to_json()  # each node's edges in input order
        assert torch.equal(result.model(x), expected), rank
        assert nas.arch_parameters(result.model) == []
    result = nas.finalize(fresh)
    torch.manual_seed(2)
    child = spec.loads(json.dumps(result.spec()))
    loaded = weights.load(child, path, mapping=result.key_mapping())
    assert loaded.missing == ()
    child.eval()
    assert torch.equal(child(x), expected)


def test_keep_of_the_wrong_type_is_a_nas_error_and_never_may_be_one_name() -> None:
    model = fl.Chain(edge=nas.Choice(n=fl.ReLU(), none=fl.Tanh()))
    with torch.no_grad():
        model.edge.alphas.copy_(torch.tensor([0.0, 5.0]))
    with pytest.raises(
        nas.NasError, match=re.escape("keep is the number of inputs each join keeps (1 or more), got '2'")
    ):
        nas.finalize(model, keep="2")  # pyright: ignore[reportArgumentType]
    # one name, not its letters: "n" is still a candidate finalize may keep
    assert nas.finalize(model, never="none").choices == {"edge": "n"}


def test_a_node_that_fed_only_a_dropped_edge_leaves_the_key_mapping_too(tmp_path: Path) -> None:
    graph = fl.Graph(
        {
            "pre": fl.Linear(4, 4),
            "a": nas.Choice(none=fl.Identity(), relu=fl.ReLU()),
            "b": nas.Choice(none=fl.Identity(), tanh=fl.Tanh()),
            "join": nas.InputChoice(keep=1),
        },
        edges=["input -> a -> join", "input -> pre -> b -> join"],
    )
    with torch.no_grad():
        graph.a.alphas.copy_(torch.tensor([0.0, 5.0]))
        graph.b.alphas.copy_(torch.tensor([0.0, 1.0]))
    supernet = fl.Chain(cell=graph)
    result = nas.finalize(supernet)
    assert "pre" not in dict(result.model.cell.named_children())
    assert result.address_map["cell.pre"] is None
    assert result.keys["cell.pre.weight"] is None
    weights.save(supernet, tmp_path / "supernet.safetensors")
    child = spec.loads(result.spec())
    weights.load(child, tmp_path / "supernet.safetensors", mapping=result.key_mapping())
    x = torch.randn(3, 4)
    assert torch.equal(child(x), torch.relu(x))
