"""The layer catalogue of the documentation site, generated from ``fluxion.spec.registry``.

Every class a spec can name gets an entry: its constructor's signature, an example, the shape rule
that fluxion's own shape inference gives for that example with symbolic sizes, what it works out
for the sizes the example leaves out, and what it needs of the input sizes. Nothing of that is
written by hand but the examples below: the rule is whatever ``fluxion.shapes.infer`` says when
the site is built. Run ``python scripts/site/catalogue.py`` to print the page.

An integer argument of an example is shown by its name (``out_channels``) when the layer's rule,
run again with that attribute a symbol, gives the same shape once the value is put back: so a
rule is printed in its arguments only where the layer's own rule works in them. A size written
``"N=3"`` in an example's inputs is the symbol ``N`` unless the rule (or the inference of a size
left out) fails for a symbol there; then the entry says so, with the rule's own message, and
shows the shapes for ``N = 3``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import torch
from docstrings import ROLE  # scripts/site/docstrings.py: this script's folder is on sys.path

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.layers.lazy import is_lazy
from fluxion.shapes.report import describe_equation
from fluxion.spec import registry

ARROW = " -> "
WHERE = re.compile(r"^\S+ (\(the root\)|at '[^']*') got [^:]*: ")
"""The start of a shape error that says where and what came in, which a bound's own sizes say."""
NUMBERED = re.compile(r"^([A-Za-z_]\w*)=(\d+)$")
"""An input size written ``"N=3"``: the symbol ``N``, or 3 where the rule needs a number."""


@dataclass(frozen=True)
class Call:
    """A registered class called with arguments; arguments that are calls are built first."""

    name: str
    positional: tuple[Any, ...] = ()
    keywords: Mapping[str, Any] = field(default_factory=dict[str, Any])

    def build(self) -> torch.nn.Module:
        return registry.lookup(self.name)(
            *map(_built, self.positional), **{k: _built(v) for k, v in self.keywords.items()}
        )

    def __str__(self) -> str:
        shown = [_shown(value) for value in self.positional]
        shown += [f"{key}={_shown(value)}" for key, value in self.keywords.items()]
        return f"{self.name}({', '.join(shown)})"


def call(name: str, *positional: Any, **keywords: Any) -> Call:
    """``call("Conv2d", out_channels=16)`` stands for ``Conv2d(out_channels=16)``."""
    return Call(name, positional, keywords)


def _built(value: Any) -> Any:
    if isinstance(value, Call):
        return value.build()
    if isinstance(value, dict):
        return {key: _built(item) for key, item in value.items()}  # pyright: ignore[reportUnknownVariableType]
    return value


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {_shown(item)}" for key, item in value.items()) + "}"  # pyright: ignore[reportUnknownVariableType]
    return str(value) if isinstance(value, Call) else repr(value)


@dataclass(frozen=True)
class Example:
    """A layer as built for the catalogue, and the shapes of its inputs (``"N=3"``: see the module)."""

    layer: Call
    inputs: tuple[tuple[int | str, ...], ...]


def example(layer: Call, *inputs: tuple[int | str, ...]) -> Example:
    return Example(layer, inputs)


IDENTITY, RELU = call("Identity"), call("ReLU")
EXAMPLES: dict[str, Example] = {
    "AdaptiveAvgPool1d": example(call("AdaptiveAvgPool1d", output_size=4), ("B", "C", "L")),
    "AdaptiveAvgPool2d": example(call("AdaptiveAvgPool2d", output_size=(7, 7)), ("B", "C", "H", "W")),
    "AdaptiveMaxPool1d": example(call("AdaptiveMaxPool1d", output_size=4), ("B", "C", "L")),
    "AdaptiveMaxPool2d": example(call("AdaptiveMaxPool2d", output_size=(7, 7)), ("B", "C", "H", "W")),
    "Add": example(call("Add"), ("B", "T", "D"), (1, "T", "D")),
    "AuxiliaryHeadCIFAR": example(call("AuxiliaryHeadCIFAR", in_channels=576, classes=10), ("B", 576, 8, 8)),
    "AvgPool1d": example(call("AvgPool1d", kernel_size=3, stride=2, padding=1), ("B", "C", "L")),
    "AvgPool2d": example(call("AvgPool2d", kernel_size=2), ("B", "C", "H", "W")),
    "AvgPool3d": example(call("AvgPool3d", kernel_size=2), ("B", "C", "D", "H", "W")),
    "BatchMatmul": example(call("BatchMatmul"), ("B", "T", "D"), ("B", "D", "S")),
    "BatchNorm1d": example(call("BatchNorm1d"), ("B", "C")),
    "BatchNorm2d": example(call("BatchNorm2d"), ("B", "C", "H", "W")),
    "Cat": example(call("Cat", dim=-1), ("B", "T", "D"), ("B", "T", "K")),
    "Chain": example(call("Chain", call("Linear", out_features=64), RELU), ("B", "D")),
    "Choice": example(call("Choice", relu=RELU, tanh=call("Tanh")), ("B", "D")),
    "Chunk": example(call("Chunk", 2, dim=-1), ("B", "D")),
    "CifarStem": example(call("CifarStem", out_channels=48), ("B", 3, "H", "W")),
    "ClassToken": example(call("ClassToken"), ("B", "T", "D")),
    "Concatenate": example(call("Concatenate", IDENTITY, IDENTITY, dim=-1), ("B", "D")),
    "Conv1d": example(call("Conv1d", out_channels=16, kernel_size=3, stride=2, padding=1), ("B", "C", "L")),
    "Conv2d": example(call("Conv2d", out_channels=16, kernel_size=3, stride=2, padding=1), ("B", "C", "H", "W")),
    "Conv3d": example(call("Conv3d", out_channels=16, kernel_size=3, padding=1), ("B", "C", "D", "H", "W")),
    "ConvBNReLU": example(call("ConvBNReLU", 16, 32, kernel_size=3, padding=1), ("B", 16, "H", "W")),
    "ConvTranspose2d": example(call("ConvTranspose2d", out_channels=16, kernel_size=2, stride=2), ("B", "C", "H", "W")),
    "DilConv": example(call("DilConv", 16, 16, kernel_size=3, stride=1, padding=2, dilation=2), ("B", 16, "H", "W")),
    "Distribute": example(call("Distribute", call("Linear", out_features=8), RELU), ("B", "D"), ("B", "T")),
    "DropPath": example(call("DropPath", p=0.2), ("B", "C", "H", "W")),
    "Dropout": example(call("Dropout", p=0.1), ("B", "T", "D")),
    "Embedding": example(call("Embedding", num_embeddings=1000, embedding_dim=64), ("B", "T")),
    "FacConv": example(call("FacConv", 16, 16, kernel_size=7, stride=1, padding=3), ("B", 16, "H", "W")),
    "FactorizedReduce": example(call("FactorizedReduce", 16, 32), ("B", 16, "H", "W")),
    "FiLM": example(call("FiLM"), ("B", "C", "H", "W"), ("B", "K")),
    "Flatten": example(call("Flatten"), ("B", "C", "H", "W")),
    "GRU": example(call("GRU", hidden_size=64, batch_first=True), ("B", "T", "D")),
    "GeLU": example(call("GeLU"), ("B", "T", "D")),
    "Get": example(call("Get", 0), ("B", "T", "D"), ("B", "D")),
    "Graph": example(
        call(
            "Graph",
            {"fc": call("Linear", out_features=8), "cat": call("Cat", dim=-1)},
            edges=["x -> fc -> cat", "y -> cat"],
            inputs=("x", "y"),
        ),
        ("B", "D"),
        ("B", "K"),
    ),
    "GroupNorm": example(call("GroupNorm", num_groups=8), ("B", "C", "H", "W")),
    "Identity": example(IDENTITY, ("B", "D")),
    "IndexSelect": example(call("IndexSelect", dim=1, index=[0, 2]), ("B", "D=4")),
    "InputChoice": example(call("InputChoice", keep=1, count=2), ("B", "C", "H", "W"), ("B", "C", "H", "W")),
    "Interpolate": example(call("Interpolate", mode="bilinear"), ("B", "C", "H", "W"), ("H2", "W2")),
    "LSTM": example(call("LSTM", hidden_size=64, batch_first=True), ("B", "T", "D")),
    "LayerNorm": example(call("LayerNorm"), ("B", "T", "D")),
    "LeakyReLU": example(call("LeakyReLU", negative_slope=0.2), ("B", "T", "D")),
    "Linear": example(call("Linear", out_features=64), ("B", "D")),
    "LogSigmoid": example(call("LogSigmoid"), ("B", "D")),
    "LogSoftmax": example(call("LogSoftmax", dim=-1), ("B", "D")),
    "Matmul": example(call("Matmul", IDENTITY, call("Transpose", 1, 2)), ("B", "T", "D")),
    "MaxPool1d": example(call("MaxPool1d", kernel_size=2), ("B", "C", "L")),
    "MaxPool2d": example(call("MaxPool2d", kernel_size=3, stride=2, padding=1), ("B", "C", "H", "W")),
    "MaxPool3d": example(call("MaxPool3d", kernel_size=2), ("B", "C", "D", "H", "W")),
    "Mean": example(call("Mean"), ("B", "D"), ("B", "D")),
    "MultiHeadAttention": example(call("MultiHeadAttention", num_heads=8), ("B", "T", "D")),
    "Multiply": example(call("Multiply"), ("B", "C", "H", "W"), ("B", "C", 1, 1)),
    "Narrow": example(call("Narrow", dim=1, start=2, length=4), ("B", "D=8")),
    "OptionalInputs": example(call("OptionalInputs", count=2), ("B", "T")),
    "Pack": example(call("Pack"), ("B", "D")),
    "Pad": example(call("Pad", pad=(1, 1, 2, 2)), ("B", "C", "H", "W")),
    "PaddingMask": example(call("PaddingMask"), ("B", "T")),
    "Parallel": example(call("Parallel", IDENTITY, RELU), ("B", "D")),
    "Passthrough": example(call("Passthrough", call("Linear", out_features=8)), ("B", "D")),
    "Permute": example(call("Permute", 0, 2, 1), ("B", "T", "D")),
    "PixelShuffle": example(call("PixelShuffle", upscale_factor=2), ("B", "C", "H", "W")),
    "PoolBN": example(call("PoolBN", "max", 16), ("B", 16, "H", "W")),
    "PositionEmbedding": example(call("PositionEmbedding"), ("B", "T=197", "D")),
    "RMSNorm": example(call("RMSNorm"), ("B", "T", "D")),
    "RNN": example(call("RNN", hidden_size=64, batch_first=True), ("B", "T", "D")),
    "ReLU": example(RELU, ("B", "D")),
    "ReLUConvBN": example(call("ReLUConvBN", 16, 32, kernel_size=1), ("B", 16, "H", "W")),
    "Reduce": example(call("Reduce", "mean", dim=1), ("B", "T", "D")),
    "Reshape": example(call("Reshape", 4, -1), ("B", "D")),
    "Residual": example(call("Residual", call("LayerNorm"), RELU), ("B", "T", "D")),
    "Return": example(call("Chain", call("Return"), call("Linear", out_features=8)), ("B", "D")),  # ends its Chain
    "ScaledDotProductAttention": example(
        call("ScaledDotProductAttention", num_heads=8), ("B", "T", "D"), ("B", "S", "D"), ("B", "S", "D")
    ),
    "SelfAttention": example(call("SelfAttention", num_heads=8), ("B", "T", "D")),
    "SepConv": example(call("SepConv", 16, 16, kernel_size=3, stride=1, padding=1), ("B", 16, "H", "W")),
    "SequencePositionEmbedding": example(
        call("SequencePositionEmbedding", num_positions=512, embedding_dim=64), ("B", "T", 64)
    ),
    "SetContext": example(call("SetContext", context="unet", key="skip"), ("B", "C", "H", "W")),
    "SiLU": example(call("SiLU"), ("B", "D")),
    "Sigmoid": example(call("Sigmoid"), ("B", "D")),
    "SinusoidalEmbedding": example(call("SinusoidalEmbedding", dim=128), ("B",)),
    "Slicing": example(call("Slicing", dim=1, start=1, end=5), ("B", "T=8", "D")),
    "Softmax": example(call("Softmax", dim=-1), ("B", "D")),
    "Split": example(call("Split", [16, 48], dim=-1), ("B", 64)),
    "Squeeze": example(call("Squeeze", dim=1), ("B", 1, "D")),
    "Stack": example(call("Stack", dim=1), ("B", "D"), ("B", "D")),
    "StemS4": example(call("StemS4", out_channels=48), ("B", 3, "H", "W")),
    "StemS4S2": example(call("StemS4S2", out_channels=48), ("B", 3, "H", "W")),
    "Sum": example(call("Sum", IDENTITY, RELU), ("B", "D")),
    "Tanh": example(call("Tanh"), ("B", "D")),
    "TokenTypeEmbedding": example(call("TokenTypeEmbedding", num_types=2, embedding_dim=64), ("B", "T", 64)),
    "Tokens2d": example(call("Tokens2d", call("SelfAttention", num_heads=8)), ("B", "C", "H", "W")),
    "TorchFunction": example(call("TorchFunction", "topk", k=2, dim=-1), ("B", "D")),
    "Transpose": example(call("Transpose", 1, 2), ("B", "T", "D")),
    "Unbind": example(call("Unbind", dim=1), ("B", "N=3", "D")),
    "Unflatten": example(call("Unflatten", dim=1, unflattened_size=(4, -1)), ("B", "D")),
    "Unsqueeze": example(call("Unsqueeze", dim=1), ("B", "D")),
    "Upsample": example(call("Upsample", scale_factor=2), ("B", "C", "H", "W")),
    "UseContext": example(  # gives what its SetContext stored, whatever comes in
        call(
            "Chain",
            call("SetContext", context="unet", key="skip"),
            call("Conv2d", out_channels=16, kernel_size=3, stride=2, padding=1),
            call("UseContext", context="unet", key="skip"),
        ),
        ("B", "C", "H", "W"),
    ),
    "VecDot": example(call("VecDot"), ("B", "T", "D"), ("B", "T", "D")),
    "Zero": example(call("Zero", stride=2), ("B", "C", "H", "W")),
}
"""One example per registered class: the catalogue's test fails for a class without one."""


@dataclass(frozen=True)
class Entry:
    """What the catalogue says of one registered class."""

    name: str
    reference: str | None
    """Its public path (``fluxion.layers.Conv2d``), the anchor of its API reference."""
    group: str
    """The module that defines it (``fluxion.layers.conv``)."""
    summary: str
    signature: str
    example: str | None = None
    rule: str | None = None
    inferred: str | None = None
    needs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def signature(cls: type[torch.nn.Module]) -> str:
    """The constructor's parameters as a call is written: names and defaults, no annotations.

    >>> signature(fl.Linear)
    'Linear(in_features=None, out_features=None, bias=True, device=None, dtype=None)'
    >>> signature(fl.Tanh)
    'Tanh()'
    """
    if cls.__init__ is torch.nn.Module.__init__:  # torch's parameterless layers (Tanh, Sigmoid)
        return f"{cls.__name__}()"
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    plain = [parameter.replace(annotation=inspect.Parameter.empty) for parameter in parameters]
    text = str(inspect.Signature(plain))
    return cls.__name__ + text


def summary(cls: type) -> str:
    """The first paragraph of a class's docstring, on one line.

    >>> summary(fl.Tanh), summary(fl.Mean)[-22:]
    ('The hyperbolic tangent.', '(as `Add` broadcasts).')
    """
    doc = inspect.getdoc(cls) or ""
    return ROLE.sub(r"`\1`", " ".join(doc.split("\n\n", 1)[0].split()))


def public_paths() -> dict[type, str]:
    """The public path of each class a spec can name: ``fluxion.layers.X``, or the entry-point
    module's (``fluxion.nas.Choice``)."""
    modules = [fl] + [importlib.import_module(entry.value) for entry in entry_points(group=registry.ENTRY_POINTS)]
    paths: dict[type, str] = {}
    for module in modules:
        for name in getattr(module, "__all__", []):
            value = getattr(module, name)
            if isinstance(value, type):
                paths.setdefault(value, f"{module.__name__}.{name}")
    return paths


def _symbolic(size: int | str) -> dims.DimLike:
    numbered = NUMBERED.match(size) if isinstance(size, str) else None
    return numbered.group(1) if numbered else size


def _numeric(size: int | str) -> dims.DimLike:
    numbered = NUMBERED.match(size) if isinstance(size, str) else None
    return int(numbered.group(2)) if numbered else size


def _numbered(inputs: Sequence[tuple[int | str, ...]]) -> list[str]:
    return [size for shape in inputs for size in shape if isinstance(size, str) and NUMBERED.match(size)]


@dataclass(frozen=True)
class _Outcome:
    rule: str
    inferred: str | None
    needs: tuple[str, ...]


def _message(error: Exception) -> str:
    """The first line of an error's message, as a sentence."""
    first = " ".join(str(error).split("\n")[0].split()) or type(error).__name__
    return first if first.endswith(".") else first + "."


def _run(example: Example, inputs: Sequence[dims.Shape]) -> _Outcome:
    """The rule, inferred sizes and constraints for these input shapes; what fails raises."""
    layer = example.layer.build()
    report = shapes.infer(layer, *inputs)
    inferred = None
    if is_lazy(layer):
        found = layer.inferred_arguments(*inputs)
        inferred = ", ".join(f"{key} = {_value_text(value)}" for key, value in found.items())
    output = _with_arguments(example, inputs, report.output)
    needs = tuple(f"{describe_equation(c.first, c.second)}: {c.reason}" for c in report.constraints)
    rule = ", ".join(shape_text(shape) for shape in inputs) + ARROW + shape_text(output)
    return _Outcome(rule, inferred, needs)


MOST_TRIED = 2**40
"""The greatest size ``bounds`` tries: a rule that takes it has no upper bound worth stating."""


def bounds(example: Example, inputs: Sequence[dims.Shape]) -> list[str]:
    """What the example's rule needs of each symbolic size that no equation states: a least size
    (a pooling window of 2 needs 2) or a greatest (a table of 512 positions), found by running the
    rule with the size a number, and given with the rule's message at the first size refused.
    Only sizes that meet the rule's divisibility needs are tried (GroupNorm's C among multiples of
    8): 1, 2, 4... up to ``MOST_TRIED`` until the rule takes one, then halving the gap to the size
    before it; the greatest alike, above the least. A size the rule takes nowhere gets no bound.

    >>> found = bounds(example(call("MaxPool1d", kernel_size=2)), [dims.Shape(["B", "C", "L"])])
    >>> found
    ['L ≥ 2: MaxPool1d expects an input size with an output at dim -1, got 1 (output 0)']
    """
    step = shapes.infer(example.layer.build(), *inputs).divisors()
    names = dict.fromkeys(str(symbol) for shape in inputs for size in shape for symbol in _symbols(size))
    needs: list[str] = []
    for name in names:
        k = step.get(name, 1)

        def refusal(multiple: int, name: str = name, k: int = k) -> str | None:
            values = {name: multiple * k}
            try:
                shapes.infer(example.layer.build(), *(dims.substitute_shape(shape, values) for shape in inputs))
            except Exception as error:
                return WHERE.sub("", _message(error)).removesuffix(".")
            return None

        most = MOST_TRIED // k
        taken = next((2**power for power in range(most.bit_length()) if refusal(2**power) is None), None)
        if taken is None:
            continue
        least = _first_taken(refusal, taken // 2, taken) if taken > 1 else 1
        if least > 1:
            needs.append(f"{name} ≥ {least * k}: {refusal(least - 1)}")
        if refusal(most) is not None:
            greatest = _first_taken(lambda multiple: None if refusal(multiple) is not None else "", least, most) - 1
            needs.append(f"{name} ≤ {greatest * k}: {refusal(greatest + 1)}")
    return needs


def _first_taken(refusal: Callable[[int], str | None], refused: int, taken: int) -> int:
    """The least multiple above ``refused`` that the rule takes, knowing it takes ``taken``."""
    while taken - refused > 1:
        middle = (refused + taken) // 2
        refused, taken = (refused, middle) if refusal(middle) is None else (middle, taken)
    return taken


def _symbols(size: dims.Dim) -> list[Any]:
    return [] if dims.known(size) else sorted(size.free_symbols, key=str)  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownArgumentType]


def shape_text(value: dims.ShapeValue) -> str:
    """A shape, a tuple or ``ShapeMap`` of them, or None, as Python writes such a tuple.

    >>> shape_text((dims.Shape(["B", 4]),)), shape_text((dims.Shape(["B"]), None))
    ('((B, 4),)', '((B,), None)')
    """
    if value is None:
        return "None"
    if isinstance(value, dims.ShapeMap):
        return "{" + ", ".join(f"{key}: {shape_text(item)}" for key, item in value.items()) + "}"
    if isinstance(value, dims.Shape):
        return repr(value)
    return "(" + ", ".join(shape_text(item) for item in value) + ("," if len(value) == 1 else "") + ")"


def _value_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_value_text(item) for item in value) + ("," if len(value) == 1 else "") + ")"  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return dims.show(value) if isinstance(value, int) or hasattr(value, "free_symbols") else repr(value)


def _with_arguments(example: Example, inputs: Sequence[dims.Shape], output: dims.ShapeValue) -> dims.ShapeValue:
    """``output`` with each integer argument of the example that the rule can carry as a symbol
    shown by name: the rule runs again with the layer's attribute a symbol, and the result is kept
    when putting the value back gives ``output`` again."""
    given = {size for shape in inputs for size in shape if isinstance(size, int)}
    candidates = {  # not a value the inputs hold: the rule ties those to the input (an equation)
        key: value for key, value in example.layer.keywords.items() if type(value) is int and value not in given
    }
    chosen: dict[str, int] = {}
    best = output
    for key, value in candidates.items():
        trial = {**chosen, key: value}
        layer = example.layer.build()
        if any(getattr(layer, name, None) != number for name, number in trial.items()):
            continue
        try:
            for name in trial:
                setattr(layer, name, dims.dim(name))
            symbolic = shapes.infer(layer, *inputs).output
        except Exception:  # a rule that needs the number (an index, a range): the value stays
            continue
        if symbolic != output and dims.substitute_shape(symbolic, trial) == output:
            chosen, best = trial, symbolic
    return best


def entry(name: str, cls: type[torch.nn.Module], paths: Mapping[type, str]) -> Entry:
    """The catalogue entry of the class registered as ``name``."""
    base = Entry(name, paths.get(cls), cls.__module__, summary(cls), signature(cls))
    example = EXAMPLES.get(name)
    if example is None:
        return dataclasses.replace(base, notes=("No example in the catalogue's table: no shape rule shown.",))
    base = dataclasses.replace(base, example=str(example.layer))
    symbolic = [dims.Shape(_symbolic(size) for size in shape) for shape in example.inputs]
    try:
        outcome = _run(example, symbolic)
        needs = (*outcome.needs, *bounds(example, symbolic))
        return dataclasses.replace(base, rule=outcome.rule, inferred=outcome.inferred, needs=needs)
    except Exception as error:
        numbered = _numbered(example.inputs)
        if not numbered:
            return dataclasses.replace(base, notes=(f"No shape rule for these inputs: {_message(error)}",))
        given = ", ".join(size.replace("=", " = ") for size in numbered)
        symbols = ", ".join(NUMBERED.match(size).group(1) for size in numbered)  # pyright: ignore[reportOptionalMemberAccess]
        note = f"With {symbols} symbolic: {_message(error)} Shown for {given}."
        concrete = [dims.Shape(_numeric(size) for size in shape) for shape in example.inputs]
        try:
            outcome = _run(example, concrete)
        except Exception as again:
            return dataclasses.replace(base, notes=(note, f"No shape rule for these inputs: {_message(again)}"))
        return dataclasses.replace(
            base, rule=outcome.rule, inferred=outcome.inferred, needs=outcome.needs, notes=(note,)
        )


def library_layers() -> list[str]:
    """The registered names of the classes fluxion and its layer packages (entry points) provide;
    classes a program registered for itself (a test, a notebook) are not the library's.

    >>> "Conv2d" in library_layers()
    True
    """
    paths = public_paths()
    return [name for name in registry.registered() if registry.lookup(name) in paths]


def entries() -> list[Entry]:
    """One entry per class of the library, in the order of their modules, then of their names."""
    paths = public_paths()
    found = [entry(name, registry.lookup(name), paths) for name in library_layers()]
    return sorted(found, key=lambda item: (item.group, item.name))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"`` {text} ``"


def _module_summary(module: str) -> str:
    """The first sentence of a module's docstring."""
    doc = inspect.getdoc(importlib.import_module(module)) or ""
    first = " ".join(doc.split("\n\n", 1)[0].split())
    return ROLE.sub(r"`\1`", first if first.endswith(".") else first + ".")


def page(found: Sequence[Entry] | None = None) -> str:
    """The catalogue as a Markdown page."""
    found = entries() if found is None else found
    lines = [
        "# Layer catalogue",
        "",
        "Every class a spec can name (`fluxion.spec.registered()`), generated from the registry when this site",
        "is built. Each entry gives the constructor, an example, and the example's shape rule as",
        "`fluxion.shapes.infer` works it out with symbolic sizes: `B` the batch, `C` channels, `H`, `W` and",
        "`D` spatial sizes or features, `T`, `S` and `L` lengths. An argument's name in a shape stands for its",
        "value (`out_channels`). *Left out* lists what shape inference fills in when the example leaves a",
        "size out (see [Shapes](../shapes.md)); *needs* what the rule requires of the input sizes: what",
        "must divide, and the least or greatest size it takes (found by trying numbers), with the rule's reason.",
        "",
        "| layer | example | shape rule | left out |",
        "| --- | --- | --- | --- |",
    ]
    for item in found:
        anchor = item.name.lower()
        rule = _code(item.rule) if item.rule else "see the entry"
        inferred = _code(item.inferred) if item.inferred else ""
        example = _code(item.example) if item.example else ""
        lines.append(f"| [{item.name}](#{anchor}) | {_cell(example)} | {_cell(rule)} | {_cell(inferred)} |")
    for group, members in _grouped(found):
        lines += ["", f"## `{group}`", "", _module_summary(group)]
        for item in members:
            lines += ["", f"### {item.name}", "", item.summary, "", "```python", item.signature, "```", ""]
            if item.example is not None:
                lines.append(f"- **Example:** {_code(item.example)}")
            if item.rule is not None:
                lines.append(f"- **Shape rule:** {_code(item.rule)}")
            if item.inferred:
                lines.append(f"- **Left out, inferred:** {_code(item.inferred)}")
            lines += [f"- **Needs:** {need}" for need in item.needs]
            lines += [f"- **Note:** {note}" for note in item.notes]
            if item.reference is not None:
                lines.append(f"- **Reference:** [`{item.reference}`][{item.reference}]")
    return "\n".join(lines) + "\n"


def _grouped(found: Sequence[Entry]) -> Iterator[tuple[str, list[Entry]]]:
    groups: dict[str, list[Entry]] = {}
    for item in found:
        groups.setdefault(item.group, []).append(item)
    yield from groups.items()


def main(write: Callable[[str], object] = print) -> None:
    write(page())


if __name__ == "__main__":
    main()
