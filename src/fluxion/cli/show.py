"""``fluxion show``: the tree with each node's output shape and parameter count, then the totals.

With ``--weights FILE``, it also says whether the checkpoint fits the tree (missing, unexpected
and mismatched keys listed; exit code 1 when it does not).

>>> import pathlib, tempfile
>>> from fluxion.cli import main
>>> path = pathlib.Path(tempfile.mkdtemp()) / "mlp.json"
>>> _ = path.write_text('''{"type": "Chain", "inputs": {"x": ["B", 8]},
...     "children": [{"type": "Linear", "out_features": 4}, {"type": "ReLU"}]}''')
>>> main(["show", str(path)])
(CHAIN) Chain()  → (B, 4)  36 params
    ├── Linear(in_features=8, out_features=4, bias=True)  → (B, 4)  36 params
    └── ReLU()  → (B, 4)
<BLANKLINE>
input: x (B, 8)
output: (B, 4)
parameters: 36 in 2 tensors
  float32: 36 (144 B)
0
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from typing import Any, cast

import torch

from fluxion.cli.loading import LoadedSpec, load_spec, spec_inputs_text, spec_options
from fluxion.cli.values import shape_json
from fluxion.inspect.checkpoint import WeightsCheck, check_weights
from fluxion.inspect.counting import Totals, human_bytes, human_count, parameter_count, tensor_totals
from fluxion.layers import draw_tree
from fluxion.shapes.report import assumptions_text, format_value, node_addresses


def run(args: argparse.Namespace) -> int:
    """Show the spec the command line names; return 1 when a checkpoint given does not fit.

    >>> from fluxion.cli import main
    >>> main(["show", "no/such/spec.json"])
    1
    """
    loaded = load_spec(spec_options(args))
    check = None if args.weights is None else check_weights(loaded.model, args.weights, args.mapping)
    if args.format == "json":
        print(json.dumps(_as_json(loaded, args.depth, check), indent=2))
    else:
        print(_as_text(loaded, args.depth, check))
    return 0 if check is None or check.matches else 1


def _nodes(model: torch.nn.Module, depth: int | None) -> Iterator[tuple[str, torch.nn.Module, int]]:
    """Every node down to ``depth`` levels below the root, with its address and level."""
    named = cast(Iterator[tuple[str, torch.nn.Module]], model.named_modules(remove_duplicate=False))
    for address, module in named:
        level = address.count(".") + 1 if address else 0
        if depth is None or level <= depth:
            yield address, module, level


def _as_text(loaded: LoadedSpec, depth: int | None, check: WeightsCheck | None) -> str:
    report = loaded.report
    addresses = node_addresses(loaded.model)

    def annotate(module: torch.nn.Module) -> str | None:
        notes: list[str] = []
        address = addresses.get(id(module))
        if report is not None and address is not None and address in report:
            outputs = dict.fromkeys(format_value(call.output) for call in report[address].calls)
            notes.append("→ " + " then ".join(outputs))
        count = parameter_count(module)
        if count:
            notes.append(f"{count:,} params")
        return "  ".join(notes) or None

    lines = [draw_tree(loaded.model, max_depth=depth, annotate=annotate), ""]
    if loaded.inputs is not None:
        lines.append(f"input: {spec_inputs_text(loaded.inputs)}")
    if report is not None:
        lines.append(f"output: {format_value(report.output)}")
        lines += [f"constraint: {constraint}" for constraint in report.constraints]
        lines += [f"assuming: {assumption}" for assumption in assumptions_text(report.assumed)]
    lines += _totals_text("parameters", tensor_totals(loaded.model.parameters()))
    buffers = tensor_totals(loaded.model.buffers())
    if buffers.tensors:
        lines += _totals_text("buffers", buffers)
    if check is not None:
        lines.append(_check_text(check))
    return "\n".join(lines)


def _totals_text(what: str, totals: Totals) -> list[str]:
    short = f" ({human_count(totals.elements)})" if totals.elements >= 1000 else ""
    lines = [f"{what}: {totals.elements:,}{short} in {totals.tensors} tensors"]
    for dtype, (elements, size) in totals.by_dtype.items():
        lines.append(f"  {dtype}: {elements:,} ({human_bytes(size)}{f', {size:,} bytes' if size >= 1024 else ''})")
    return lines


def _check_text(check: WeightsCheck) -> str:
    if check.matches:
        return f"weights {check.file}: they fit ({check.tensors} tensors, {human_bytes(check.bytes)})"
    return f"weights {check.file}: they do not fit\n" + "\n".join(f"  {line}" for line in check.message.splitlines())


def _as_json(loaded: LoadedSpec, depth: int | None, check: WeightsCheck | None) -> dict[str, Any]:
    report = loaded.report
    nodes: list[dict[str, Any]] = []
    for address, module, level in _nodes(loaded.model, depth):
        children = len(list(module.children()))
        shapes = report[address] if report is not None and address in report else None
        nodes.append(
            {
                "address": address,
                "type": type(module).__name__,
                "level": level,
                "children": children,
                "folded": depth is not None and level == depth and children > 0,
                "output": None if shapes is None else shape_json(shapes.output),
                "parameters": parameter_count(module),
            }
        )
    return {
        "file": loaded.file,
        "inputs": None if loaded.inputs is None else {name: list(shape) for name, shape in loaded.inputs.items()},
        "output": None if report is None else shape_json(report.output),
        "constraints": [] if report is None else [str(constraint) for constraint in report.constraints],
        "assuming": [] if report is None else assumptions_text(report.assumed),
        "nodes": nodes,
        "parameters": _totals_json(tensor_totals(loaded.model.parameters())),
        "buffers": _totals_json(tensor_totals(loaded.model.buffers())),
        "weights": None if check is None else _check_json(check),
    }


def _totals_json(totals: Totals) -> dict[str, Any]:
    return {
        "elements": totals.elements,
        "tensors": totals.tensors,
        "bytes": totals.bytes,
        "by_dtype": {dtype: {"elements": n, "bytes": size} for dtype, (n, size) in totals.by_dtype.items()},
    }


def _check_json(check: WeightsCheck) -> dict[str, Any]:
    return {
        "file": check.file,
        "matches": check.matches,
        "tensors": check.tensors,
        "bytes": check.bytes,
        "missing": list(check.missing),
        "unexpected": list(check.unexpected),
        "mismatched": list(check.mismatched),
        "message": check.message,
    }
