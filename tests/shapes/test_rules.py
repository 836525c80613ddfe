"""fluxion.shapes.rules: rules registered for classes without an output_shape method."""

import pytest
import torch

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.dims import Shape, ShapeValue


class Repeat(torch.nn.Module):
    """A third-party module: it cannot be given a method, so it gets a registered rule."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.times, dim=-1)


def repeat_rule(module: Repeat, *inputs: ShapeValue) -> ShapeValue:
    shape = dims.single(inputs, "Repeat")
    return Shape([*shape[:-1], module.times * shape[-1]])


shapes.register_rule(Repeat, repeat_rule)


def test_a_registered_rule_gives_symbolic_shapes_where_meta_evaluation_could_not() -> None:
    model = fl.Chain(fl.Linear(4, 3), Repeat(2), fl.ReLU())
    report = shapes.infer(model, ("B", "T", 4))
    assert report.output == Shape(["B", "T", 6])
    assert report["Repeat"].inputs == (Shape(["B", "T", 3]),)
    assert model(torch.zeros(2, 5, 4)).shape == (2, 5, 6)


def test_a_subclass_keeps_its_base_rule_unless_it_has_its_own_forward() -> None:
    class Kept(Repeat):
        pass

    class Changed(Repeat):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    assert shapes.infer(Kept(3), ("B", 2)).output == Shape(["B", 6])
    assert shapes.rule_for(Changed(3)) is None
    assert shapes.infer(Changed(3), (2, 2)).output == Shape([2, 2])  # evaluated on meta, with numbers
    with pytest.raises(shapes.ShapeError, match=r"Changed has no shape rule .* register one"):
        shapes.infer(Changed(3), ("B", 2))


def test_a_class_method_comes_before_a_registered_rule() -> None:
    class Method(Repeat):
        def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
            return dims.single(inputs, "Method")

    assert shapes.infer(Method(3), ("B", 2)).output == Shape(["B", 2])


def test_registering_again_replaces_and_the_registered_rule_is_readable() -> None:
    class Own(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum(-1)

    def wrong(module: Own, x: Shape) -> ShapeValue:
        return x

    def right(module: Own, x: Shape) -> ShapeValue:
        return Shape(x[:-1])

    assert shapes.registered_rule(Own) is None
    shapes.register_rule(Own, wrong)
    shapes.register_rule(Own, right)
    assert shapes.infer(Own(), ("B", 4)).output == Shape(["B"])
    assert shapes.registered_rule(Own) is not None


def test_a_rule_error_names_the_node_and_a_failing_rule_is_reported() -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    def broken(module: Broken, *inputs: ShapeValue) -> ShapeValue:
        raise ValueError("oops")

    shapes.register_rule(Broken, broken)
    with pytest.raises(shapes.ShapeError, match="Broken at 'Broken' got \\(B, 2\\): its shape rule failed: ValueError"):
        shapes.infer(fl.Chain(Broken()), ("B", 2))
    graph = fl.Graph({"Repeat": Repeat(2)}, edges=["x -> Repeat", "y -> Repeat"], inputs=("x", "y"))
    with pytest.raises(shapes.ShapeError, match="Repeat at 'Repeat' got \\(B, 2\\), \\(B, 2\\): Repeat takes one"):
        shapes.infer(graph, ("B", 2), ("B", 2))


def test_what_is_not_a_module_class_or_not_callable_is_refused() -> None:
    with pytest.raises(shapes.ShapeError, match=r"takes a torch\.nn\.Module class, got <class 'str'>"):
        shapes.register_rule(str, repeat_rule)  # pyright: ignore[reportArgumentType]
    with pytest.raises(shapes.ShapeError, match=r"takes a torch\.nn\.Module class, got ReLU\(\)"):
        shapes.register_rule(torch.nn.ReLU(), repeat_rule)  # pyright: ignore[reportArgumentType]
    with pytest.raises(shapes.ShapeError, match="takes a rule to call"):
        shapes.register_rule(Repeat, 3)  # pyright: ignore[reportArgumentType]
