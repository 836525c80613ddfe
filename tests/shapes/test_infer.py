"""fluxion.shapes.infer: the engine, the report, combinators, context, constraints, errors, meta fallback."""

from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.adapters import Adapter, LinearLora, lora
from fluxion.dims import Shape, ShapeValue
from fluxion.shapes.infer import infer_with_sources
from fluxion.tree import context_of


class Halve(fl.Module):
    """Keeps every other step along the last dim: a user layer with its own rule."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., ::2] if x.shape[-1] % 2 == 0 else x[..., :-1:2]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        shape = dims.single(inputs, "Halve")
        return Shape([*shape[:-1], dims.floordiv(shape[-1], 2)])


class Double(fl.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(2, dim=-1)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        shape = dims.single(inputs, "Double")
        return Shape([*shape[:-1], 2 * shape[-1]])


def test_every_node_is_reported_by_address_with_inputs_and_outputs() -> None:
    model = fl.Chain(fl.Linear(8, 16), fl.ReLU(), head=fl.Chain(fl.Linear(16, 4), fl.Tanh()))
    report = shapes.infer(model, ("B", 8))
    assert list(report) == ["", "Linear", "ReLU", "head", "head.Linear", "head.Tanh"]
    assert report["head.Linear"].inputs == (Shape(["B", 16]),)
    assert report["head"].output == report.output == Shape(["B", 4])
    assert len(report) == 6
    assert repr(report) == "ShapeReport(6 nodes, output (B, 4))"


def test_printing_draws_the_tree_with_output_shapes_and_folds_by_depth() -> None:
    model = fl.Chain(fl.Linear(8, 16), head=fl.Chain(fl.Linear(16, 4), fl.Tanh()))
    report = shapes.infer(model, ("B", "T", 8))
    assert str(report).splitlines() == [
        "(CHAIN) Chain()  → (B, T, 4)",
        "    ├── Linear(in_features=8, out_features=16, bias=True)  → (B, T, 16)",
        "    └── head: (CHAIN) Chain()  → (B, T, 4)",
        "        ├── Linear(in_features=16, out_features=4, bias=True)  → (B, T, 4)",
        "        └── Tanh()  → (B, T, 4)",
    ]
    assert report.draw(depth=1).splitlines()[-1] == "    └── head: (CHAIN) Chain() … 2 children  → (B, T, 4)"


def test_concrete_and_symbolic_sizes_mix() -> None:
    report = shapes.infer(fl.Chain(fl.Linear(3, 5)), (2, "T", 3))
    assert report.output == Shape([2, "T", 5])
    assert dims.known(report.output[0])


@pytest.mark.parametrize(
    ("combinator", "expected"),
    [
        (fl.Passthrough(fl.Linear(4, 2)), Shape(["B", 4])),
        (fl.Residual(fl.Linear(4, 4)), Shape(["B", 4])),
        (fl.Sum(fl.Linear(4, 2), fl.Linear(4, 1)), Shape(["B", 2])),
        (fl.Parallel(fl.Linear(4, 2), fl.Linear(4, 3)), (Shape(["B", 2]), Shape(["B", 3]))),
        (fl.Concatenate(fl.Linear(4, 2), fl.Linear(4, 3), dim=1), Shape(["B", 5])),
        (fl.Matmul(fl.Linear(4, 3), fl.Linear(4, 3)), None),
    ],
)
def test_combinators(combinator: fl.Chain, expected: Any) -> None:
    model = fl.Chain(combinator)
    if expected is None:
        # (B, 3) @ (B, 3) works only when B is 3: a constraint, and an error for any other number
        assert [str(c) for c in shapes.infer(model, ("B", 4)).constraints] == [
            "3 = B (Matmul needs the left's last dim to match the right's dim -2 (3), at 'Matmul')"
        ]
        with pytest.raises(shapes.ShapeError, match="Matmul needs the left's last dim to match the right's dim -2"):
            shapes.infer(model, (2, 4))
        return
    assert shapes.infer(model, ("B", 4)).output == expected
    real = model(torch.zeros(3, 4))
    real_shapes = tuple(t.shape for t in real) if isinstance(real, tuple) else real.shape
    symbolic = shapes.infer(model, (3, 4)).output
    assert (tuple(tuple(s) for s in symbolic) if dims.several(symbolic) else tuple(symbolic)) == (
        tuple(tuple(s) for s in real_shapes) if isinstance(real, tuple) else tuple(real_shapes)
    )


def test_tuples_flow_between_children_and_distribute() -> None:
    model = fl.Chain(fl.Parallel(fl.Linear(4, 2), fl.Identity()), fl.Distribute(fl.ReLU(), fl.Linear(4, 8)))
    report = shapes.infer(model, ("B", 4))
    assert report.output == (Shape(["B", 2]), Shape(["B", 8]))
    assert report["Distribute.Linear"].inputs == (Shape(["B", 4]),)
    with pytest.raises(shapes.ShapeError, match="Distribute needs one input per child: got 1 for 2"):
        shapes.infer(fl.Chain(fl.Distribute(fl.ReLU(), fl.ReLU())), ("B", 4))


def test_return_ends_its_chain_only() -> None:
    model = fl.Chain(fl.Chain(fl.Linear(4, 2), fl.Return(), fl.Linear(9, 9)), fl.Linear(2, 3))
    report = shapes.infer(model, ("B", 4))
    assert report.output == Shape(["B", 3])
    assert "Chain.Linear_2" not in report


def test_context_carries_shapes_across_the_tree() -> None:
    model = fl.Chain(
        fl.SetContext("unet", "skip"),
        fl.Linear(4, 8),
        fl.Concatenate(fl.Identity(), fl.Chain(fl.UseContext("unet", "skip")), dim=-1),
    )
    assert shapes.infer(model, ("B", 4)).output == Shape(["B", 12])
    with pytest.raises(shapes.ShapeError, match="context 'unet' has no value 'skip' at this point"):
        shapes.infer(fl.Chain(fl.UseContext("unet", "skip")), ("B", 4))


def test_constraints_a_model_implies_are_collected() -> None:
    model = fl.Chain(fl.Sum(fl.Identity(), fl.Chain(Halve(), Double())))
    report = shapes.infer(model, ("B", "T"))
    assert report.output == Shape(["B", "T"])
    assert [str(constraint) for constraint in report.constraints] == [
        "T must be divisible by 2 (Sum needs sizes that broadcast at dim -1 (have T), at 'Sum')"
    ]
    assert str(report).splitlines()[-1].startswith("constraint: T must be divisible by 2")
    # with a number that breaks it, the same model is refused
    with pytest.raises(shapes.ShapeError, match="Sum needs sizes that broadcast at dim -1 \\(have 7\\), got 6"):
        shapes.infer(model, ("B", 7))


def test_a_mismatch_names_the_node_what_it_needs_and_the_path() -> None:
    model = fl.Chain(fl.Linear(8, 16), fl.ReLU(), fl.Chain(fl.Linear(200, 10)))
    with pytest.raises(shapes.ShapeError) as caught:
        shapes.infer(model, ("B", 8))
    error = caught.value
    assert error.address == "Chain.Linear"
    assert str(error) == (
        "Linear at 'Chain.Linear' got (B, 16): Linear expects last dim 200, got 16\n"
        "  path: input (B, 8) → Linear at 'Linear' (B, 16) → ReLU at 'ReLU' (B, 16)"
    )
    assert error.path[-1] == "ReLU at 'ReLU' (B, 16)"


def test_layers_without_a_rule_run_on_meta_with_numbers_and_are_named_with_symbols() -> None:
    model = fl.Chain(fl.Lambda(lambda x: x.flatten(1)), torch.nn.BatchNorm1d(12), torch.nn.Linear(12, 3))
    model.train()
    report = shapes.infer(model, (5, 3, 4))
    assert report.output == Shape([5, 3])
    assert model[1].num_batches_tracked.item() == 0  # the real buffers were never touched
    assert not model[1].running_mean.is_meta
    with pytest.raises(shapes.ShapeError, match="Lambda has no shape rule and its input \\(B, 3, 4\\) has symbolic"):
        shapes.infer(model, ("B", 3, 4))


def test_a_chain_with_its_own_forward_and_no_rule_is_evaluated_on_meta() -> None:
    class Doubler(fl.Chain):
        def __init__(self) -> None:
            super().__init__(fl.Linear(4, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.Linear(x), x], dim=-1)

    assert Doubler.output_shape is None  # pyright: ignore[reportUnnecessaryComparison]
    assert shapes.infer(fl.Chain(Doubler()), (2, 4)).output == Shape([2, 8])
    with pytest.raises(shapes.ShapeError, match="Doubler has no shape rule"):
        shapes.infer(fl.Chain(Doubler()), ("B", 4))


def test_adapters_and_loras_have_rules() -> None:
    model = fl.Chain(fl.Linear(8, 4), block=fl.Chain(fl.Linear(4, 4)))
    Adapter(model.block, fl.Linear(4, 2)).inject()
    lora.inject(model, rank=2)
    report = shapes.infer(model, ("B", 8))
    assert report.output == Shape(["B", 2])
    assert report["Linear.down"].output == Shape(["B", 2])
    assert report["block.target.Linear.target"].output == Shape(["B", 4])
    assert isinstance(model.Linear, LinearLora)


def test_inference_never_changes_the_model() -> None:
    model = fl.Chain(fl.SetContext("c", "k"), fl.Linear(4, 4), fl.UseContext("c", "k"))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    shapes.infer(model, ("B", 4))
    assert context_of(model) == {}
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())


@pytest.mark.parametrize("bad", ["B", 3, [1.5], [-1], [True]])
def test_bad_input_shapes_are_shape_errors(bad: Any) -> None:
    with pytest.raises(shapes.ShapeError):
        shapes.infer(fl.Chain(fl.ReLU()), bad)


def test_named_inputs_go_to_the_roots_rule() -> None:
    attention = fl.MultiHeadAttention(embed_dim=8, num_heads=2)
    report = shapes.infer(attention, ("B", "T", 8), key=("B", "S", 8))
    assert report.output == Shape(["B", "T", 8])
    assert report[""].inputs == (Shape(["B", "T", 8]), Shape(["B", "S", 8]))
    with pytest.raises(
        shapes.ShapeError, match="Chain \\(the root\\) got \\(B, 4\\): its shape rule failed: TypeError"
    ):
        shapes.infer(fl.Chain(fl.ReLU()), x=("B", 4))


def test_assume_reads_strided_sizes_as_exact_divisions_and_is_printed() -> None:
    backbone = fl.Chain(*[fl.Conv2d(3, 3, 3, stride=2, padding=1) for _ in range(3)])
    plain = shapes.infer(backbone, ("B", 3, "H", "W"))
    assert repr(plain.output) == "(B, 3, ceil(H/8), ceil(W/8))"
    assumed = shapes.infer(backbone, ("B", 3, "H", "W"), assume={"H": 16})
    assert repr(assumed.output) == "(B, 3, H/8, ceil(W/8))"
    assert repr(assumed["Conv2d_1"].output) == "(B, 3, H/2, ceil(W/2))"
    assert assumed.assumed == {"H": 16}
    assert assumed.constraints == ()  # an assumption is what the caller knows, not what the model needs
    assert str(assumed).splitlines()[-1] == "assuming: H % 16 == 0"
    # the reading is exact: substituting a multiple of 16 gives torch's sizes
    assert backbone(torch.zeros(1, 3, 48, 5)).shape[-2] == dims.substitute(assumed.output[2], {"H": 48})


def test_assume_keeps_the_models_own_constraints() -> None:
    skip = fl.Chain(fl.Sum(fl.Identity(), fl.Chain(fl.MaxPool2d(2), fl.Upsample(scale_factor=2))))
    report = shapes.infer(skip, ("B", 3, "H", "W"), assume={"H": 8})
    assert [str(c).split(" (")[0] for c in report.constraints] == [
        "H must be divisible by 2",
        "W must be divisible by 2",
    ]


@pytest.mark.parametrize(
    ("assume", "message"),
    [
        ({"X": 2}, "assume names 'X', which no input shape has; the input sizes named are: B, H, W"),
        ({"H": 1}, "H's divisor must be an int of 2 or more, got 1"),
        ({"H": True}, "H's divisor must be an int of 2 or more, got True"),
        ([("H", 2)], r"assume maps a size's name to its divisor \({'H': 32}\)"),
    ],
)
def test_assume_refuses_what_it_cannot_use(assume: object, message: str) -> None:
    model = fl.Chain(fl.Conv2d(3, 3, 3, stride=2))
    with pytest.raises(shapes.ShapeError, match=message):
        shapes.infer(model, ("B", 3, "H", "W"), assume=assume)  # type: ignore[arg-type]


def test_assume_against_a_size_the_model_fixes_is_a_shape_error() -> None:
    model = fl.Chain(fl.Flatten(), fl.Linear(15, 2))  # 3*H must be 15: H = 5
    with pytest.raises(shapes.ShapeError, match=r"with what was assumed: H % 2 == 0"):
        shapes.infer(model, ("B", 3, "H"), assume={"H": 2})


class ReadsTheModelInput(fl.Module):
    """A layer whose rule gives the model's first input as its output, whatever its own input."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return xs[0]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        return dims.model_inputs()[0]


def test_rules_see_the_models_inputs_in_the_symbols_of_their_own() -> None:
    model = fl.Chain(fl.Conv2d(3, 3, 3, downsample=4), inner=fl.Chain(ReadsTheModelInput()))
    report = shapes.infer(model, ("B", 3, "H", 8))
    assert report["inner.ReadsTheModelInput"].output == Shape(["B", 3, dims.dim("H"), 8])
    graph = fl.Graph({"echo": ReadsTheModelInput()}, edges=["y -> echo", "x -> echo"], inputs=("x", "y"))
    named = shapes.infer(graph, y=(2, 5), x=(3, 4))
    assert named.output == Shape([3, 4])  # the graph's first input, whatever order the shapes came in
    assert dims.model_inputs() == ()


def test_sources_follow_each_value_from_the_model_inputs_through_nested_nodes() -> None:
    graph = fl.Graph(
        {
            "left": fl.Chain(fl.Linear(4, 4), fl.ReLU()),
            "right": fl.Linear(2, 4),
            "add": fl.Add(),
            "after": fl.Linear(4, 3),
        },
        edges=["x -> left -> add", "y -> right -> add", "add -> after"],
        inputs=("x", "y"),
    )
    report, sources = infer_with_sources(graph, y=("B", 2), x=("B", 4))  # by name, in another order
    assert report[""].inputs == (dims.Shape(["B", 4]), dims.Shape(["B", 2]))  # the graph's order
    assert sources["left"] == sources["left.Linear"] == sources["left.ReLU"] == ((0,),)
    assert sources["right"] == ((1,),)
    assert sources["add"] == sources["after"] == ((0, 1),)
    assert sources[""] == ((0, 1),)
