"""The data flow that ``fluxion render`` draws: edges follow what each combinator does with values."""

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes
from fluxion.adapters import lora
from fluxion.errors import ChildNotFoundError, TreeError
from fluxion.inspect.flow import OUTPUT, Flow, data_flow, input_id
from fluxion.tree.display import set_output_names

X = input_id("input")


def data_edges(flow: Flow) -> set[tuple[str, str]]:
    return {(edge.source, edge.target) for edge in flow.edges if edge.kind == "data"}


def test_chain_is_a_sequence_from_the_input_to_the_output() -> None:
    flow = data_flow(fl.Chain(fl.Linear(4, 8), fl.ReLU(), head=fl.Linear(8, 2)))
    assert [(edge.source, edge.target) for edge in flow.edges] == [
        (X, "Linear"),
        ("Linear", "ReLU"),
        ("ReLU", "head"),
        ("head", OUTPUT),
    ]
    assert [cluster.address for cluster in flow.clusters] == [""]
    assert {node.id: node.cluster for node in flow.nodes} == {
        X: None,
        "Linear": "",
        "ReLU": "",
        "head": "",
        OUTPUT: None,
    }


def test_residual_runs_its_children_then_adds_its_input_through_a_skip_edge() -> None:
    model = fl.Chain(fl.Linear(4, 4), fl.Residual(fl.LayerNorm(4), fl.Linear(4, 4)))
    flow = data_flow(model)
    assert flow.node("Residual/add").kind == "merge"
    assert flow.node("Residual/add").cluster == "Residual"
    assert flow.sources("Residual.LayerNorm") == ["Linear"]
    assert flow.sources("Residual.Linear") == ["Residual.LayerNorm"]
    assert flow.sources("Residual/add", "data") == ["Residual.Linear"]
    assert flow.sources("Residual/add", "skip") == ["Linear"]
    assert flow.sources(OUTPUT) == ["Residual/add"]


@pytest.mark.parametrize(("combinator", "merge", "symbol"), [(fl.Sum, "add", "+"), (fl.Concatenate, "cat", "cat")])
def test_sum_and_concatenate_fan_the_input_out_then_merge(combinator: type[fl.Chain], merge: str, symbol: str) -> None:
    flow = data_flow(fl.Chain(fl.ReLU(), combinator(fl.Linear(4, 2), fl.Tanh(), fl.Identity())))
    name = combinator.__name__
    children = [f"{name}.Linear", f"{name}.Tanh", f"{name}.Identity"]
    assert all(flow.sources(child) == ["ReLU"] for child in children)
    assert flow.sources(f"{name}/{merge}") == children
    assert flow.node(f"{name}/{merge}").title == symbol
    assert flow.sources(OUTPUT) == [f"{name}/{merge}"]


def test_parallel_outputs_go_on_together_and_distribute_gives_the_ith_to_the_ith() -> None:
    model = fl.Chain(
        fl.Parallel(a=fl.Linear(4, 2), b=fl.Linear(4, 3)),
        fl.Distribute(first=fl.ReLU(), second=fl.Tanh()),
        fl.Cat(dim=-1),
    )
    flow = data_flow(model)
    assert flow.sources("Parallel.a") == [X]
    assert flow.sources("Parallel.b") == [X]
    assert flow.sources("Distribute.first") == ["Parallel.a"]
    assert flow.sources("Distribute.second") == ["Parallel.b"]
    assert flow.sources("Cat") == ["Distribute.first", "Distribute.second"]
    assert not [node for node in flow.nodes if node.kind == "merge"]


def test_passthrough_runs_its_children_and_passes_its_input_on() -> None:
    flow = data_flow(fl.Chain(fl.Linear(4, 4), fl.Passthrough(fl.Linear(4, 2), fl.ReLU()), fl.Tanh()))
    assert flow.sources("Passthrough.Linear") == ["Linear"]
    assert flow.sources("Passthrough.ReLU") == ["Passthrough.Linear"]
    assert flow.sources("Tanh") == ["Linear"]
    assert not [edge for edge in flow.edges if edge.source == "Passthrough.ReLU"]


def test_matmul_merges_its_two_children_in_order() -> None:
    flow = data_flow(fl.Chain(fl.Matmul(fl.Identity(), fl.Transpose(-1, -2))))
    assert flow.sources("Matmul/matmul") == ["Matmul.Identity", "Matmul.Transpose"]
    assert flow.node("Matmul/matmul").title == "@"


def test_graph_edges_are_its_own() -> None:
    graph = fl.Graph(
        {"proj": fl.Linear(4, 3), "gate": fl.Linear(6, 3), "act": fl.Sigmoid(), "mul": fl.Multiply()},
        edges=["x -> proj -> mul", "context -> gate -> act -> mul"],
        inputs=("x", "context"),
    )
    flow = data_flow(graph)
    assert [node.id for node in flow.nodes if node.kind == "input"] == [input_id("x"), input_id("context")]
    assert data_edges(flow) == {
        (input_id("x"), "proj"),
        (input_id("context"), "gate"),
        ("gate", "act"),
        ("proj", "mul"),
        ("act", "mul"),
        ("mul", OUTPUT),
    }
    assert flow.sources("mul") == ["proj", "act"]  # argument order


def test_graph_inside_a_chain_gets_the_chains_value_and_returns_its_outputs() -> None:
    block = fl.Graph(
        {"fc": fl.Linear(4, 4), "act": fl.ReLU(), "add": fl.Add()},
        edges=["input -> fc -> act -> add", "input -> add"],
    )
    flow = data_flow(fl.Chain(fl.Linear(4, 4), block=block, head=fl.Linear(4, 2)))
    assert flow.sources("block.fc") == ["Linear"]
    assert flow.sources("block.add") == ["block.act", "Linear"]
    assert flow.sources("head") == ["block.add"]
    assert [cluster.address for cluster in flow.clusters] == ["", "block"]


def test_graph_with_several_outputs_passes_them_all_on() -> None:
    graph = fl.Graph({"a": fl.ReLU(), "b": fl.Tanh()}, edges=["input -> a", "input -> b"], outputs=["a", "b"])
    flow = data_flow(fl.Chain(graph, fl.Add()))
    assert flow.sources("Add") == ["Graph.a", "Graph.b"]


def test_context_is_a_dashed_edge_and_use_context_ignores_its_input() -> None:
    model = fl.Chain(
        fl.SetContext("unet", "skip"),
        fl.Linear(4, 4),
        fl.Concatenate(fl.Identity(), fl.UseContext("unet", "skip"), dim=-1),
    )
    flow = data_flow(model)
    assert flow.sources("Concatenate.UseContext", "context") == ["SetContext"]
    assert flow.sources("Concatenate.UseContext", "data") == []
    assert flow.sources("Concatenate.Identity") == ["Linear"]
    assert [edge.kind for edge in flow.edges if edge.target == "Concatenate/cat"] == ["data", "data"]


def test_folded_chains_keep_their_context_edges() -> None:
    model = fl.Chain(
        down=fl.Chain(fl.Linear(4, 4), fl.SetContext("net", "skip"), fl.Linear(4, 2)),
        up=fl.Chain(fl.Linear(2, 4), fl.Sum(fl.Identity(), fl.UseContext("net", "skip"))),
    )
    flow = data_flow(model, depth=1)
    assert [node.id for node in flow.nodes if node.kind == "folded"] == ["down", "up"]
    assert flow.node("down").details == "3 children"
    assert flow.sources("up", "context") == ["down"]
    assert flow.sources("up", "data") == ["down"]
    assert [cluster.address for cluster in flow.clusters] == [""]


def test_depth_zero_folds_the_root() -> None:
    flow = data_flow(fl.Chain(fl.Linear(2, 2)), depth=0)
    assert [(node.id, node.kind) for node in flow.nodes] == [(X, "input"), ("/root", "folded"), (OUTPUT, "output")]
    assert flow.clusters == ()


def test_a_chain_with_a_forward_of_its_own_is_one_node() -> None:
    class Twice(fl.Chain):
        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self[0](self[0](*args))

    flow = data_flow(fl.Chain(Twice(fl.Linear(4, 4)), fl.ReLU()))
    assert flow.node("Twice").kind == "folded"
    assert flow.node("Twice").details == "1 child, own forward"
    assert flow.sources("ReLU") == ["Twice"]


def test_a_chain_subclass_without_its_own_forward_is_a_sequence() -> None:
    class Block(fl.Chain):
        def __init__(self) -> None:
            super().__init__(fl.Linear(4, 4), fl.ReLU())

    flow = data_flow(fl.Chain(Block()))
    assert flow.sources("Block.ReLU") == ["Block.Linear"]
    assert [cluster.title for cluster in flow.clusters] == ["Chain", "Block"]


def test_return_ends_its_chain() -> None:
    flow = data_flow(fl.Chain(fl.Chain(fl.Linear(2, 2), fl.Return(), fl.ReLU()), fl.Tanh()))
    assert flow.sources("Chain.ReLU") == []
    assert flow.sources("Tanh") == ["Chain.Return"]


def test_attention_takes_query_key_and_value_then_projects_attends_and_outputs() -> None:
    attention = fl.MultiHeadAttention(embed_dim=8, num_heads=2)
    flow = data_flow(fl.Chain(fl.LayerNorm(8), attention))
    prefix = "MultiHeadAttention"
    for name in ("query", "key", "value"):
        assert flow.sources(f"{prefix}.projections.{name}") == ["LayerNorm"]
    assert flow.sources(f"{prefix}.attention") == [f"{prefix}.projections.{name}" for name in ("query", "key", "value")]
    assert flow.sources(f"{prefix}.output") == [f"{prefix}.attention"]


def test_self_attention_in_a_graph_takes_its_mask_from_the_context() -> None:
    block = fl.Graph(
        {"mask": fl.UseContext("net", "mask"), "self": fl.SelfAttention(embed_dim=8, num_heads=2), "add": fl.Add()},
        edges=["input -> self -> add", "mask -> self", "input -> add"],
    )
    model = fl.Chain(
        masks=fl.Graph(
            {"extend": fl.PaddingMask(), "store": fl.SetContext("net", "mask")},
            edges=["padding -> extend -> store"],
            inputs=("x", "padding"),
            outputs=("x",),
        ),
        block=block,
    )
    flow = data_flow(model)
    assert flow.sources("masks.store") == ["masks.extend"]
    assert flow.sources("block.mask", "context") == ["masks.store"]
    assert flow.sources("block.mask", "data") == []
    for name in ("query", "key", "value"):
        assert flow.sources(f"block.self.projections.{name}") == [X]
    assert flow.sources("block.self.attention") == [
        *(f"block.self.projections.{name}" for name in ("query", "key", "value")),
        "block.mask",
    ]


def test_lora_adds_its_low_rank_branch_to_its_target() -> None:
    model = fl.Chain(fl.ReLU(), fl.Linear(4, 4))
    lora.inject(model, rank=2)
    flow = data_flow(model)
    assert flow.sources("Linear.target") == ["ReLU"]
    assert flow.sources("Linear.up") == ["Linear.down"]
    assert flow.sources("Linear/add") == ["Linear.target", "Linear.up"]


def test_shapes_come_from_the_report() -> None:
    model = fl.Chain(fl.Conv2d(3, 8, 3, padding=1), fl.Residual(fl.ReLU()), fl.Flatten())
    report = shapes.infer(model, ("B", 3, "H", "W"))
    flow = data_flow(model, report=report, inputs={"image": ("B", 3, "H", "W")})
    assert flow.node(input_id("image")).shape == "(B, 3, H, W)"
    assert flow.node("Conv2d").shape == "(B, 8, H, W)"
    assert flow.node("Conv2d").details == "3, 8, kernel_size=3, padding=1"
    assert flow.node("Residual/add").shape == "(B, 8, H, W)"
    assert flow.node(OUTPUT).shape == "(B, 8*H*W)"
    assert {cluster.address: cluster.shape for cluster in flow.clusters} == {
        "": "(B, 8*H*W)",
        "Residual": "(B, 8, H, W)",
    }


def test_a_tuple_from_one_node_feeds_every_input_of_a_graph() -> None:
    graph = fl.Graph({"add": fl.Add()}, edges=["x -> add", "y -> add"], inputs=("x", "y"))
    flow = data_flow(fl.Chain(fl.Chunk(2, dim=-1), graph))
    assert flow.sources("Graph.add") == ["Chunk", "Chunk"]


def test_a_folded_chain_reading_a_context_value_many_times_gets_one_edge() -> None:
    use = [fl.Sum(fl.Identity(), fl.UseContext("net", "time")) for _ in range(3)]
    flow = data_flow(fl.Chain(fl.SetContext("net", "time"), blocks=fl.Chain(*use)), depth=1)
    assert flow.sources("blocks", "context") == ["SetContext"]


def test_an_unknown_node_id_is_a_key_error_that_names_the_ids() -> None:
    flow = data_flow(fl.Chain(fl.ReLU()))
    with pytest.raises(ChildNotFoundError, match="no node 'relu' in this data flow; its nodes are /input/input, ReLU"):
        flow.node("relu")
    with pytest.raises(KeyError):
        flow.node("relu")


@pytest.mark.parametrize(
    ("model", "depth", "message"),
    [
        ("model", None, "data_flow: expected a torch module, got str"),
        (fl.Chain(), -1, "depth is a number of levels, 0 or more .*, got -1"),
        (fl.Chain(), 1.5, "depth is a number of levels, 0 or more .*, got 1.5"),
        (fl.Chain(), True, "depth is a number of levels, 0 or more .*, got True"),
    ],
)
def test_bad_arguments_are_one_tree_error(model: object, depth: object, message: str) -> None:
    with pytest.raises(TreeError, match=message):
        data_flow(model, depth=depth)  # pyright: ignore[reportArgumentType]


def test_a_plain_torch_module_is_one_leaf() -> None:
    flow = data_flow(torch.nn.Linear(2, 2))
    assert [(node.id, node.kind) for node in flow.nodes] == [(X, "input"), ("/root", "leaf"), (OUTPUT, "output")]
    assert flow.sources(OUTPUT) == ["/root"]


def test_named_outputs_label_the_output_node() -> None:
    model = fl.Chain(fl.Linear(4, 2))
    assert data_flow(model).node(OUTPUT).title == "output"
    set_output_names(model, ["logits"])
    assert data_flow(model).node(OUTPUT).title == "logits"
    set_output_names(model, ["category", "quality"])
    assert data_flow(model).node(OUTPUT).title == "category, quality"
