"""``fluxion summary``: the layers by type (count, parameters) and the largest activations.

The counting and ranking are ``fluxion.inspect``'s (``layer_counts``, ``largest_activations``):
an activation is the output of a leaf, or of a combinator that makes a new tensor (Residual,
Sum, Concatenate, Matmul), listed once: in-place layers and views share their input's storage and
are not listed. Its size is an expression in the input's symbols (``802816*B``);
to rank them, every symbol is given a value: 1, or the divisor ``--assume`` states of it (so that
``H/32`` is a whole number: ``H%32==0`` makes it 32), unless ``--size NAME=N`` says otherwise
(a value ``--assume`` rules out is a usage error), and the header says which values were used.
Bytes assume each layer's parameter dtype (float32 for a layer without parameters).

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
from collections.abc import Mapping, Sequence
from typing import Any, cast

from fluxion import dims
from fluxion.cli.loading import LoadedSpec, load_spec, spec_options
from fluxion.cli.options import by_name
from fluxion.cli.values import shape_json
from fluxion.inspect.activations import Activation, input_symbols, largest_activations
from fluxion.inspect.counting import LayerCount, human_bytes, layer_counts, parameter_count
from fluxion.shapes.report import assumptions_text, format_value


def run(args: argparse.Namespace) -> int:
    """Summarise the spec the command line names.

    >>> from fluxion.cli import main
    >>> main(["summary", "no/such/spec.json"])
    1
    """
    options = spec_options(args)
    sizes = cast(dict[str, int], by_name(args.size, "--size"))
    loaded = load_spec(options)
    counts = layer_counts(loaded.model)
    report = loaded.report
    used = (
        {} if report is None else {name: sizes.get(name, options.assume.get(name, 1)) for name in input_symbols(report)}
    )
    activations = None if report is None else largest_activations(report, used | sizes, top=args.top)
    if args.format == "json":
        print(json.dumps(_as_json(loaded, counts, used, activations), indent=2))
    else:
        assumed = [] if report is None else assumptions_text(report.assumed)
        print(_as_text(counts, used, activations, assumed))
    return 0


def _as_text(
    counts: Sequence[LayerCount], used: Mapping[str, int], activations: list[Activation] | None, assumed: list[str]
) -> str:
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
        [
            a.address or "(root)",
            a.type,
            format_value(a.output),
            dims.show(a.elements),
            f"{a.evaluated:,}",
            human_bytes(a.bytes),
        ]
        for a in activations
    ]
    lines += _table(header, rows, right=(4, 5))
    lines += [f"assuming: {assumption}" for assumption in assumed]
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
            "assuming": [] if loaded.report is None else assumptions_text(loaded.report.assumed),
            "largest": [
                {
                    "address": a.address,
                    "type": a.type,
                    "shape": shape_json(a.output),
                    "elements": dims.show(a.elements),
                    "evaluated": a.evaluated,
                    "bytes": a.bytes,
                }
                for a in activations
            ],
        },
    }
