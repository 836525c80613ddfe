"""ShapeReport: every node's shapes by address, every call of a node, the constraints, and the drawing."""

from __future__ import annotations

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.dims import Shape
from fluxion.shapes.report import Call, Constraint, NodeShapes, describe_equation, format_value, node_addresses

H, W = dims.dim("H"), dims.dim("W")


class Twice(fl.Chain):
    """Runs its only child twice in a row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[0](self[0](x))

    def output_shape(self, x: dims.ShapeValue) -> dims.ShapeValue:
        return dims.run(self[0], dims.run(self[0], x))


class Plain(torch.nn.Module):
    """A plain torch module inside a tree: no rule, so inference runs it on meta."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_node_shapes_keep_the_first_call_and_every_later_one() -> None:
    first = NodeShapes((Shape(["B", 4]),), Shape(["B", 1, 4]))
    assert first.calls == (Call((Shape(["B", 4]),), Shape(["B", 1, 4])),)
    twice = first.called_again((Shape(["B", 1, 4]),), Shape(["B", 1, 1, 4]))
    assert (twice.inputs, twice.output) == (first.inputs, first.output)
    assert [call.output for call in twice.calls] == [Shape(["B", 1, 4]), Shape(["B", 1, 1, 4])]
    assert first.calls == (Call((Shape(["B", 4]),), Shape(["B", 1, 4])),)  # frozen: the first is unchanged
    assert twice == NodeShapes(first.inputs, first.output, (Call((Shape(["B", 1, 4]),), Shape(["B", 1, 1, 4])),))


def test_a_node_run_twice_draws_each_distinct_output_and_the_count() -> None:
    report = shapes.infer(fl.Chain(Twice(fl.Unsqueeze(1))), ("B", 4))
    assert report["Twice.Unsqueeze"].output == Shape(["B", 1, 4])
    assert len(report["Twice.Unsqueeze"].calls) == 2
    assert str(report).splitlines()[-1] == (
        "        └── Unsqueeze(dim=1)  → (B, 1, 4) then (B, 1, 1, 4)  (called 2 times)"
    )
    same = shapes.infer(fl.Chain(Twice(fl.ReLU())), ("B", 4))
    assert str(same).splitlines()[-1] == "        └── ReLU()  → (B, 4)  (called 2 times)"


def test_the_report_is_a_read_only_mapping_of_addresses_in_the_order_nodes_ran() -> None:
    model = fl.Chain(fl.Linear(8, 4), block=fl.Chain(fl.ReLU()))
    report = shapes.infer(model, ("B", 8))
    assert list(report) == ["", "Linear", "block", "block.ReLU"]
    assert "block.ReLU" in report
    assert "block.Linear" not in report
    assert report.get("missing") is None
    with pytest.raises(KeyError):
        report["missing"]
    assert report.model is model
    assert report[""].output == report.output == Shape(["B", 4])
    assert report["block"].inputs == (Shape(["B", 4]),)


def test_tuple_outputs_and_nodes_without_a_rule_are_reported() -> None:
    report = shapes.infer(fl.Chain(Plain(), fl.Chunk(2, dim=1)), (3, 4))
    assert report["Plain"].output == Shape([3, 2])  # evaluated on meta
    assert report.output == (Shape([3, 1]), Shape([3, 1]))
    assert repr(report) == "ShapeReport(3 nodes, output ((3, 1), (3, 1)))"
    assert str(report).splitlines() == [
        "(CHAIN) Chain()  → ((3, 1), (3, 1))",
        "    ├── Plain()  → (3, 2)",
        "    └── Chunk(chunks=2, dim=1)  → ((3, 1), (3, 1))",
    ]


def test_the_drawing_ends_with_one_line_per_constraint() -> None:
    model = fl.Chain(fl.Linear(8, 4), fl.Unflatten(1, (2, -1)))
    report = shapes.infer(model, ("B", "C"))
    assert report.constraints == (Constraint(8, dims.dim("C"), "Linear expects last dim 8", "Linear"),)
    assert str(report).splitlines()[-1] == "constraint: 8 = C (Linear expects last dim 8, at 'Linear')"
    assert report.draw(depth=0).splitlines() == [
        "(CHAIN) Chain() … 2 children  → (B, 2, 2)",
        "constraint: 8 = C (Linear expects last dim 8, at 'Linear')",
    ]


def test_a_constraint_reads_as_a_divisibility_when_it_is_one() -> None:
    even = Constraint(2 * dims.floordiv(H, 2), H, "Concatenate needs equal sizes", "up.Concatenate")
    assert str(even) == "H must be divisible by 2 (Concatenate needs equal sizes, at 'up.Concatenate')"
    assert describe_equation(H, 8 * dims.floordiv(H, 8)) == "H must be divisible by 8"
    assert describe_equation(4 * dims.floordiv(H + W, 4), H + W) == "H + W must be divisible by 4"
    assert describe_equation(2 * dims.floordiv(H, 2) + 1, H) == "2*floor(H/2) + 1 = H"
    assert describe_equation(3, W) == "3 = W"


def test_a_sum_that_must_divide_is_said_so() -> None:
    model = fl.Chain(fl.Concatenate(fl.Identity(), fl.Slicing(dim=1, start=1), dim=1), fl.Chunk(3, dim=1))
    report = shapes.infer(model, ("B", "T"))
    assert report["Concatenate"].output == Shape(["B", 2 * dims.dim("T") - 1])
    assert str(report).splitlines()[-1].startswith("constraint: 2*T - 1 must be divisible by 3 (Chunk needs")


def test_format_value_writes_shapes_tuples_and_none() -> None:
    assert format_value(None) == "None"
    assert format_value(Shape([])) == "()"
    assert format_value(Shape(["B", 2 * H])) == "(B, 2*H)"
    assert format_value((Shape([2]), None, (Shape([3]),))) == "((2,), None, ((3,)))"


def test_node_addresses_name_every_node_by_its_address() -> None:
    model = fl.Chain(fl.Linear(2, 2), block=fl.Chain(fl.ReLU(), fl.Chain(fl.Tanh())))
    addresses = node_addresses(model)
    assert sorted(addresses.values()) == sorted(name for name, _ in model.named_modules())
    assert addresses[id(model)] == ""
    assert addresses[id(model["block.Chain.Tanh"])] == "block.Chain.Tanh"
