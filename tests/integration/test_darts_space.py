"""examples/darts.jsonnet: DARTS's CIFAR search space and evaluation network as a fluxion spec.

The parameter counts are those of DARTS's own model_search.Network and model.NetworkCIFAR (quark0/darts),
weights only (DARTS's alphas are no parameters). The big networks are built on the meta device.
"""

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import nas, shapes, spec
from fluxion.errors import SpecError
from fluxion.nas import operations as ops
from tests.nas.test_genotype import DARTS_V2  # DARTS's published cell, as JSON

SPEC = Path(__file__).resolve().parents[2] / "examples" / "darts.jsonnet"


def load(**tla: Any) -> fl.Chain:
    return spec.load(SPEC, tla=tla, device="meta")


def weight_count(model: torch.nn.Module, skip: str | None = None) -> int:
    """Weights only, each tensor once (``skip``: leave out the parameters under this address)."""
    return sum(
        value.numel() for name, value in nas.named_weights(model) if skip is None or not name.startswith(f"{skip}.")
    )


def genotype(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(DARTS_V2)
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def supernet() -> fl.Chain:
    return load()


@pytest.fixture(scope="module")
def small_supernet() -> fl.Chain:
    """A supernet with real tensors: 4 channels, 3 cells (normal_0, reduce_1, reduce_2), 16x16 images."""
    torch.manual_seed(0)
    return spec.load(SPEC, tla={"channels": 4, "cells": 3, "image_size": 16, "classes": 7})


# -- parameter counts: DARTS's exactly ------------------------------------------------------------


def test_the_search_network_has_darts_weights(supernet: fl.Chain) -> None:
    assert weight_count(supernet) == 1_930_618
    assert weight_count(supernet.stem) == 1_392
    assert weight_count(supernet.classifier) == 2_570


@pytest.mark.parametrize(("channels", "cells", "expected"), [(16, 5, 1_275_834), (8, 5, 394_210)])
def test_smaller_search_networks_have_darts_weights(channels: int, cells: int, expected: int) -> None:
    assert weight_count(load(channels=channels, cells=cells)) == expected


def test_darts_v2_at_evaluation_size_has_darts_weights_with_and_without_the_auxiliary_head() -> None:
    model = load(genotype=DARTS_V2, channels=36, cells=20, auxiliary=True)
    assert weight_count(model) == 3_825_768
    assert weight_count(model, skip="auxiliary") == 3_349_342  # DARTS's count_parameters_in_MB: 3.349342
    assert weight_count(load(genotype=DARTS_V2, channels=16, cells=8)) == 246_106


# -- the supernet's layout --------------------------------------------------------------------------


def test_the_supernet_has_28_alphas_shared_by_the_cells_of_each_type(supernet: fl.Chain) -> None:
    alphas = nas.arch_parameters(supernet)
    assert len(alphas) == 28
    assert {tuple(value.shape) for value in alphas} == {(8,)}
    assert len({id(value) for value in alphas}) == 28
    cells = [name for name, _ in supernet.named_children() if name.startswith(("normal_", "reduce_"))]
    assert cells == ["normal_0", "normal_1", "reduce_2", "normal_3", "normal_4", "reduce_5", "normal_6", "normal_7"]
    for cell in cells:
        template = "reduce_2" if cell.startswith("reduce") else "normal_0"
        for k in range(14):
            assert supernet.get_parameter(f"{cell}.edge_{k}.alphas") is supernet.get_parameter(
                f"{template}.edge_{k}.alphas"
            )
    assert supernet.get_parameter("normal_0.edge_0.alphas") is not supernet.get_parameter("reduce_2.edge_0.alphas")
    owners = sorted(name for name, _ in nas.named_arch_parameters(supernet))
    assert owners == sorted(f"{cell}.edge_{k}.alphas" for cell in ("normal_0", "reduce_2") for k in range(14))


def test_edges_are_addressed_by_darts_flat_index_and_primitive(supernet: fl.Chain) -> None:
    keys = supernet.state_dict().keys()
    assert "normal_0.edge_3.sep_conv_3x3.Conv2d_1.weight" in keys
    assert "reduce_5.edge_13.dil_conv_5x5.Conv2d_2.weight" in keys
    edge = supernet.get_submodule("normal_0.edge_3")
    assert isinstance(edge, nas.Choice)
    assert edge.candidates == ops.PRIMITIVES
    cell = supernet.get_submodule("normal_1")
    assert isinstance(cell, fl.Graph)
    assert cell.inputs == ("s0", "s1")
    assert cell.outputs == ("concat",)
    # node i reads every earlier state j through edge k = (edges of the nodes before) + j, in order of j
    k = 0
    for i in range(2, 6):
        edges = [f"edge_{k + j}" for j in range(i)]
        assert cell.sources(f"state_{i}") == tuple(edges)
        assert [cell.sources(edge) for edge in edges] == [(f"state_{j}",) for j in range(i)]
        join = cell.get_submodule(f"state_{i}")
        assert isinstance(join, nas.InputChoice)
        assert join.keep == 2
        k += i
    assert k == 14
    assert cell.sources("concat") == ("state_2", "state_3", "state_4", "state_5")


def test_cells_read_the_stem_and_the_two_cells_before(supernet: fl.Chain) -> None:
    assert isinstance(supernet, fl.Graph)
    assert supernet.sources("normal_0") == ("stem", "stem")
    assert supernet.sources("normal_1") == ("stem", "normal_0")
    assert supernet.sources("reduce_2") == ("normal_0", "normal_1")
    assert supernet.sources("normal_7") == ("reduce_5", "normal_6")
    assert supernet.sources("pool") == ("normal_7",)
    assert supernet.outputs == ("classifier",)


def test_the_supernet_builds_darts_search_operations(supernet: fl.Chain) -> None:
    norms = [module for module in supernet.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert sum(module.affine for module in norms) == 1
    assert supernet.get_submodule("stem.BatchNorm2d").affine
    # a reduction cell strides the edges from its inputs (j < 2), not those from its own nodes
    assert isinstance(supernet.get_submodule("reduce_2.edge_0.skip_connect"), ops.FactorizedReduce)
    assert isinstance(supernet.get_submodule("reduce_2.edge_2.skip_connect"), ops.FactorizedReduce)  # node 3, j = 0
    assert isinstance(supernet.get_submodule("reduce_2.edge_4.skip_connect"), fl.Identity)  # node 3, j = 2
    assert isinstance(supernet.get_submodule("normal_0.edge_0.skip_connect"), fl.Identity)
    assert isinstance(supernet.get_submodule("reduce_2.edge_1.max_pool_3x3"), ops.PoolBN)
    assert supernet.get_submodule("reduce_2.edge_1.none").stride == 2
    # the cell after a reduction cell reduces its first input
    assert isinstance(supernet.get_submodule("normal_3.state_0"), ops.FactorizedReduce)
    assert isinstance(supernet.get_submodule("normal_4.state_0"), ops.ReLUConvBN)


def test_shape_inference_gives_the_logits_symbolically(supernet: fl.Chain) -> None:
    assert str(shapes.infer(supernet, ("B", 3, 32, 32)).output) == "(B, 10)"


def test_a_small_supernet_runs_and_trains_its_alphas(small_supernet: fl.Chain) -> None:
    model = small_supernet
    logits = model(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 7)
    logits.sum().backward()
    shared = model.get_parameter("normal_0.edge_0.alphas")
    assert shared.grad is not None
    assert bool(shared.grad.abs().sum() > 0)
    assert model.get_parameter("reduce_1.edge_13.alphas") is model.get_parameter("reduce_2.edge_13.alphas")


def test_the_supernet_layout_is_the_one_nas_reads_genotypes_from(small_supernet: fl.Chain) -> None:
    model = copy.deepcopy(small_supernet)
    # alphas that pick DARTS_V2: its operation on its edges, every other entry 0
    with torch.no_grad():
        for value in nas.arch_parameters(model):
            value.zero_()
        for kind, template in (("normal", "normal_0"), ("reduce", "reduce_1")):
            for index, (operation, j) in enumerate(DARTS_V2[kind]):
                t = index // 2
                k = 2 * t + t * (t - 1) // 2 + j
                model.get_parameter(f"{template}.edge_{k}.alphas")[ops.PRIMITIVES.index(operation)] = 5.0
    found = nas.genotype_of(model)
    assert found is not None
    assert found.canonical() == nas.Genotype.parse(DARTS_V2).canonical()  # found lists each node's pairs in k order
    assert repr(load(genotype=found.to_json(), channels=4, cells=3)) == repr(
        load(genotype=DARTS_V2, channels=4, cells=3)
    )


# -- the discrete network of a genotype -----------------------------------------------------------


def test_a_small_discrete_network_runs_with_its_auxiliary_head() -> None:
    model = spec.load(SPEC, tla={"genotype": DARTS_V2, "channels": 4, "cells": 5, "auxiliary": True})
    assert isinstance(model, fl.Graph)
    assert model.outputs == ("classifier", "auxiliary")
    assert model.sources("auxiliary") == ("reduce_3",)  # after cell 2 * cells // 3, as DARTS
    logits, auxiliary = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert auxiliary.shape == (2, 10)
    output = shapes.infer(model, ("B", 3, 32, 32)).output
    assert str(output) == "((B, 10), (B, 10))"


def test_discrete_cells_follow_the_genotype() -> None:
    model = load(genotype=DARTS_V2, channels=4, cells=5)
    assert not any(isinstance(module, nas.Choice | nas.InputChoice) for module in model.modules())
    assert nas.arch_parameters(model) == []
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm2d)]
    assert all(module.affine for module in norms)
    normal = model.get_submodule("normal_0")
    assert isinstance(normal, fl.Graph)
    # node 4 takes (sep_conv_3x3, 1) and (skip_connect, 0): edges 5 and 6, joined in the order of their inputs
    assert normal.sources("state_4") == ("edge_5", "edge_6")
    assert isinstance(normal.get_submodule("edge_5"), fl.Identity)
    assert isinstance(normal.get_submodule("edge_6"), ops.SepConv)
    assert isinstance(normal.state_4, fl.Add)
    reduce = model.get_submodule("reduce_1")
    assert isinstance(reduce, fl.Graph)
    assert isinstance(reduce.get_submodule("edge_0"), fl.MaxPool2d)  # no BatchNorm after pools here
    assert reduce.get_submodule("edge_0").stride == 2
    assert isinstance(reduce.get_submodule("edge_4"), fl.Identity)
    assert reduce.sources("concat") == ("state_2", "state_3", "state_4", "state_5")
    assert "normal_0.edge_3.Conv2d_1.weight" in model.state_dict()


def test_two_edges_from_one_state_and_drop_path() -> None:
    cell = {
        "normal": [["sep_conv_3x3", 1], ["dil_conv_3x3", 1], ["skip_connect", 0], ["avg_pool_3x3", 2]],
        "normal_concat": [2, 3],
        "reduce": [["skip_connect", 1], ["skip_connect", 1], ["max_pool_3x3", 2], ["sep_conv_5x5", 0]],
        "reduce_concat": [3],
    }
    model = spec.load(SPEC, tla={"genotype": cell, "channels": 4, "cells": 3, "image_size": 16, "drop_path": True})
    normal = model.get_submodule("normal_0")
    assert isinstance(normal, fl.Graph)
    assert normal.sources("state_2") == ("drop_1", "drop_1_b")
    # two pairs from one state: the second by operation name is edge_<k>_b, whatever the pairs' order
    assert isinstance(normal.get_submodule("edge_1"), ops.DilConv)
    assert isinstance(normal.get_submodule("edge_1_b"), ops.SepConv)
    swapped = {**cell, "normal": [cell["normal"][1], cell["normal"][0], *cell["normal"][2:]]}
    assert repr(load(genotype=swapped, channels=4, cells=3, image_size=16, drop_path=True)) == repr(model)
    assert normal.sources("drop_1_b") == ("edge_1_b",)
    assert normal.sources("edge_1_b") == ("state_1",)
    assert normal.sources("state_3") == ("edge_2", "drop_4")  # the identity has no DropPath after it
    reduce = model.get_submodule("reduce_1")
    assert isinstance(reduce, fl.Graph)
    # skip_connect at stride 2 is a FactorizedReduce, so it gets a DropPath; one state: no Cat
    assert reduce.sources("state_2") == ("drop_1", "drop_1_b")
    assert isinstance(reduce.get_submodule("edge_1_b"), ops.FactorizedReduce)
    assert reduce.sources("concat") == ("state_3",)
    assert isinstance(reduce.concat, fl.Identity)
    drops = [module for module in model.modules() if isinstance(module, ops.DropPath)]
    assert len(drops) == 3 * 4 - 1
    assert not any(list(module.parameters()) for module in drops)
    assert weight_count(model) == weight_count(
        spec.load(SPEC, tla={"genotype": cell, "channels": 4, "cells": 3, "image_size": 16}, device="meta")
    )
    for drop in drops:
        drop.p = 0.5
    logits = model.train()(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 10)


# -- mistakes ------------------------------------------------------------------------------------

BAD_GENOTYPES = [
    (
        genotype(normal=[*DARTS_V2["normal"][:3], ["sep_conv_9x9", 1], *DARTS_V2["normal"][4:]]),
        'genotype.normal[3]: unknown primitive "sep_conv_9x9"; known: max_pool_3x3, avg_pool_3x3, skip_connect',
    ),
    (
        genotype(reduce=[*DARTS_V2["reduce"][:4], ["max_pool_3x3", 4], *DARTS_V2["reduce"][5:]]),
        "genotype.reduce[4]: input 4 is not an earlier state of node 4 (it reads states 0 to 3)",
    ),
    (
        genotype(normal=[["sep_conv_3x3", -1], ["sep_conv_3x3", 1]]),
        "genotype.normal[0]: input -1 is not an earlier state of node 2",
    ),
    (genotype(normal=DARTS_V2["normal"][:7]), "genotype.normal has an odd number of pairs (7)"),
    (
        genotype(normal=[["none", 0], ["sep_conv_3x3", 1]], normal_concat=[2]),
        "genotype.normal[0]: 'none' is chosen",
    ),
    (genotype(reduce_concat=[2, 3, 6]), "genotype.reduce_concat[2]: 6 is not a state of the cell (states 0 to 5)"),
    (genotype(normal_concat=[2, 2]), "genotype.normal_concat: state 2 is listed twice"),
    (
        genotype(normal=[["sep_conv_3x3", 0, 1], *DARTS_V2["normal"][1:]]),
        "genotype.normal[0]: a pair is [operation, input state]",
    ),
    ({"normal": DARTS_V2["normal"], "normal_concat": [2, 3, 4, 5]}, 'genotype has no "reduce"'),
    ([["sep_conv_3x3", 0]], "genotype is an object (normal, normal_concat, reduce, reduce_concat)"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_GENOTYPES)
def test_a_bad_genotype_is_a_spec_error_naming_the_entry(bad: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load(genotype=bad, cells=3)
    assert message in str(caught.value)
    assert "darts.jsonnet" in str(caught.value)


def test_a_genotype_type_no_cell_uses_is_checked_too() -> None:
    with pytest.raises(SpecError, match=r"genotype.normal\[1\]: 'none' is chosen"):
        load(genotype=genotype(normal=[["sep_conv_3x3", 0], ["none", 1]], normal_concat=[2]), cells=1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"auxiliary": True}, "auxiliary=true needs a genotype"),
        ({"drop_path": True}, "drop_path=true needs a genotype"),
        ({"primitives": ["none", "sep_conv_3x"]}, 'primitives: unknown primitive "sep_conv_3x"; known: none, max_pool'),
        ({"primitives": ["none", "none"]}, "primitives: a primitive is listed twice"),
        ({"cells": 0}, "cells is a whole number of 1 or more, got 0"),
    ],
)
def test_bad_arguments_are_spec_errors(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        load(**arguments)
    assert message in str(caught.value)
    assert "give its arguments with tla" not in str(caught.value)  # they were given


def test_fewer_primitives_make_fewer_candidates() -> None:
    model = load(channels=4, cells=3, nodes=2, primitives=["skip_connect", "sep_conv_3x3"])
    edge = model.get_submodule("reduce_1.edge_4")
    assert isinstance(edge, nas.Choice)
    assert edge.candidates == ("skip_connect", "sep_conv_3x3")
    assert len(nas.arch_parameters(model)) == 2 * 5
    assert model.get_submodule("normal_0.concat").dim == 1
    cell = model.get_submodule("normal_0")
    assert isinstance(cell, fl.Graph)
    assert cell.sources("concat") == ("state_2", "state_3")
