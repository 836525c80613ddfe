"""``fluxion summary``: the layers by type (count, parameters) and the largest activations.

An activation is the output of a leaf, or of a combinator that makes a new tensor (Residual,
Sum, Concatenate, Matmul). Its size is an expression in the input's symbols (``802816*B``);
to rank them, every symbol is given a value: 1 unless ``--size NAME=N`` says otherwise, and the
header says which values were used. Bytes assume each layer's parameter dtype (float32 for a
layer without parameters).

>>> import pathlib, tempfile
>>> from fluxion.cli import main
>>> path = pathlib.Path(tempfile.mkdtemp()) / "mlp.json"
>>> _ = path.write_text('''{"type": "Chain", "inputs": {"x": ["B", 8]},
...     "children": [{"type": "Linear", "out_features": 32}, {"type": "ReLU"},
...                  {"type": "Linear", "out_features": 2}]}''')
>>> main(["summary", str(path), "--top", "2"])
layers by type
  type    count  parameters
  Linear      2         354
  ReLU        1           0
  total       3         354
<BLANKLINE>
largest activations (B=1; --size NAME=N changes it)
  address   type    shape    elements  at B=1  bytes
  Linear_1  Linear  (B, 32)  32*B          32  128 B
  ReLU      ReLU    (B, 32)  32*B          32  128 B
0
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch

import fluxion.layers as fl
from fluxion import dims
from fluxion.adapters.lora_layers import Lora
from fluxion.cli.arguments import Subcommands, add_format_argument, add_spec_arguments, spec_options
from fluxion.cli.counting import human_bytes, parameter_count
from fluxion.cli.loading import LoadedSpec, load_spec
from fluxion.cli.options import assignment, by_name
from fluxion.cli.values import shape_json
from fluxion.dims import ShapeValue
from fluxion.shapes import ShapeReport
from fluxion.shapes.report import format_value

EXAMPLES = """\
examples:
  fluxion summary examples/resnet.jsonnet --tla depth=50
  fluxion summary examples/convnet.jsonnet --size B=64 --top 5
  fluxion summary examples/mlp.jsonnet --format json
"""

_MAKES_TENSORS = (fl.Residual, fl.Sum, fl.Concatenate, fl.Matmul, Lora)


def register(commands: Subcommands) -> None:
    """Add the ``summary`` command to the parser's subcommands.

    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> register(parser.add_subparsers())
    >>> parser.parse_args(["summary", "m.json", "--size", "B=32"]).size
    [('B', 32)]
    """
    parser = commands.add_parser(
        "summary",
        help="layers by type and the largest activations",
        description="Count the layers of a spec by type (with their parameters) and list its largest "
        "activations, from the shape report.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_spec_arguments(parser)
    parser.add_argument(
        "--size",
        metavar="NAME=N",
        type=symbol_value,
        action="append",
        help="the value of a symbolic size when ranking activations (default: 1 for each symbol)",
    )
    parser.add_argument("--top", metavar="N", type=top, default=10, help="how many activations to list (default 10)")
    add_format_argument(parser)
    parser.set_defaults(run=run)


def symbol_value(text: str) -> tuple[str, int]:
    """A ``--size NAME=N``: a symbol and the positive number it stands for.

    >>> symbol_value("B=32")
    ('B', 32)
    >>> symbol_value("B=x")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --size B: expected a positive whole number, got 'x'
    """
    name, value = assignment(text)
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--size {name}: expected a positive whole number, got {value!r}")
    return name, int(value)


def top(text: str) -> int:
    """A ``--top N``: how many activations to list, 0 or more.

    >>> top("5")
    5
    >>> top("-5")
    Traceback (most recent call last):
    argparse.ArgumentTypeError: --top is a count, 0 or more, got '-5'
    """
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"--top is a count, 0 or more, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class LayerCount:
    """How many layers of one type a tree holds, and their parameters (shared layers once).

    >>> LayerCount("Linear", 2, 354).parameters
    354
    """

    type: str
    count: int
    parameters: int


@dataclass(frozen=True)
class Activation:
    """One node's output: its size as an expression of the symbols, that size at the chosen values,
    and the bytes it takes.

    >>> Activation("conv1", "Conv2d", "(B, 64, 112, 112)", [["B", 64, 112, 112]], "802816*B", 802816, 3211264).bytes
    3211264
    """

    address: str
    type: str
    shape: str
    shape_json: Any
    elements: str
    evaluated: int
    bytes: int


def layer_counts(model: torch.nn.Module) -> list[LayerCount]:
    """The layers (modules that are not Chains) by type, most parameters first.

    >>> import fluxion.layers as fl
    >>> layer_counts(fl.Chain(fl.Linear(2, 2), fl.Chain(fl.ReLU(), fl.Linear(2, 1))))
    [LayerCount(type='Linear', count=2, parameters=9), LayerCount(type='ReLU', count=1, parameters=0)]
    """
    seen: set[int] = set()
    counts: dict[str, tuple[int, int]] = {}
    for layer in _layers(model):
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        count, parameters = counts.get(type(layer).__name__, (0, 0))
        counts[type(layer).__name__] = (count + 1, parameters + parameter_count(layer))
    found = [LayerCount(name, count, parameters) for name, (count, parameters) in counts.items()]
    return sorted(found, key=lambda layer: (-layer.parameters, -layer.count, layer.type))


def _layers(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    for child in module.children():
        if isinstance(child, fl.Chain):
            yield from _layers(child)
        else:
            yield child


def largest_activations(report: ShapeReport, sizes: Mapping[str, int], top: int) -> list[Activation]:
    """The ``top`` largest activations with every symbol at its value in ``sizes`` (1 when absent).

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> report = shapes.infer(fl.Chain(fl.Linear(4, 16), fl.Linear(16, 2)), ("B", 4))
    >>> [(a.address, a.elements, a.evaluated) for a in largest_activations(report, {"B": 8}, 1)]
    [('Linear_1', '16*B', 128)]
    """
    addresses = dict(cast(Iterator[tuple[str, torch.nn.Module]], report.model.named_modules(remove_duplicate=False)))
    found: list[Activation] = []
    for address, shapes in report.items():
        module = addresses.get(address)
        if module is None or (isinstance(module, fl.Chain) and not isinstance(module, _MAKES_TENSORS)):
            continue
        output = max((call.output for call in shapes.calls), key=lambda value: _evaluated(value, sizes))
        elements = _elements(output)
        evaluated = _evaluated(output, sizes)
        item = _element_size(module)
        found.append(
            Activation(
                address,
                type(module).__name__,
                format_value(output),
                shape_json(output),
                dims.show(elements),
                evaluated,
                evaluated * item,
            )
        )
    found.sort(key=lambda activation: -activation.evaluated)
    return found[:top]


def _elements(value: ShapeValue) -> dims.Dim:
    if value is None:
        return 0
    if isinstance(value, dims.Shape):
        return dims.product(value)
    total: dims.Dim = 0
    for item in value:
        total = dims.normal(total + _elements(item))
    return total


def _evaluated(value: ShapeValue, sizes: Mapping[str, int]) -> int:
    elements = _elements(value)
    if dims.known(elements):
        return int(elements)
    names = {str(symbol) for symbol in cast(Any, elements).free_symbols}
    result = dims.substitute(elements, {name: sizes.get(name, 1) for name in names})
    return int(result) if dims.known(result) else 0


def _element_size(module: torch.nn.Module) -> int:
    parameter = next(module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.get_default_dtype()
    return dtype.itemsize


def symbols(report: ShapeReport) -> list[str]:
    """The names of the symbols in the model's input shapes, in order.

    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> symbols(shapes.infer(fl.Chain(fl.Flatten()), ("B", 3, "H", "W")))
    ['B', 'H', 'W']
    """
    names: dict[str, None] = {}
    for value in report[""].inputs:
        for shape in _shapes(value):
            for size in shape:
                if not dims.known(size):
                    names.update(dict.fromkeys(sorted(str(symbol) for symbol in cast(Any, size).free_symbols)))
    return list(names)


def _shapes(value: ShapeValue) -> Iterator[dims.Shape]:
    if isinstance(value, dims.Shape):
        yield value
    elif value is not None:
        for item in value:
            yield from _shapes(item)


def run(args: argparse.Namespace) -> int:
    """Summarise the spec the command line names.

    >>> from fluxion.cli import main
    >>> main(["summary", "no/such/spec.json"])
    1
    """
    loaded = load_spec(spec_options(args))
    sizes = cast(dict[str, int], by_name(args.size, "--size"))
    counts = layer_counts(loaded.model)
    report = loaded.report
    used = {} if report is None else {name: sizes.get(name, 1) for name in symbols(report)}
    activations = None if report is None else largest_activations(report, used | sizes, args.top)
    if args.format == "json":
        print(json.dumps(_as_json(loaded, counts, used, activations), indent=2))
    else:
        print(_as_text(counts, used, activations))
    return 0


def _as_text(counts: Sequence[LayerCount], used: Mapping[str, int], activations: list[Activation] | None) -> str:
    total = LayerCount("total", sum(c.count for c in counts), sum(c.parameters for c in counts))
    rows = [[c.type, f"{c.count:,}", f"{c.parameters:,}"] for c in [*counts, total]]
    lines = ["layers by type", *_table(["type", "count", "parameters"], rows, right=(1, 2))]
    lines.append("")
    if activations is None:
        lines.append("largest activations: unknown (no input shapes: give the spec inputs or pass --input NAME=DIMS)")
        return "\n".join(lines)
    at = ", ".join(f"{name}={value}" for name, value in used.items())
    lines.append(f"largest activations ({at}; --size NAME=N changes it)" if at else "largest activations")
    header = ["address", "type", "shape", "elements", f"at {at}" if at else "count", "bytes"]
    rows = [
        [a.address or "(root)", a.type, a.shape, a.elements, f"{a.evaluated:,}", human_bytes(a.bytes)]
        for a in activations
    ]
    lines += _table(header, rows, right=(4, 5))
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]], right: tuple[int, ...]) -> list[str]:
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [
            cell.rjust(w) if c in right else cell.ljust(w) for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        return ("  " + "  ".join(cells)).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _as_json(
    loaded: LoadedSpec, counts: Sequence[LayerCount], used: Mapping[str, int], activations: list[Activation] | None
) -> dict[str, Any]:
    return {
        "file": loaded.file,
        "layers": [{"type": c.type, "count": c.count, "parameters": c.parameters} for c in counts],
        "parameters": parameter_count(loaded.model),
        "activations": None
        if activations is None
        else {
            "symbols": dict(used),
            "largest": [
                {
                    "address": a.address,
                    "type": a.type,
                    "shape": a.shape_json,
                    "elements": a.elements,
                    "evaluated": a.evaluated,
                    "bytes": a.bytes,
                }
                for a in activations
            ],
        },
    }
