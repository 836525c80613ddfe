"""``fluxion validate``: does the spec build, and do its shapes fit?

Each spec is read, built on the ``meta`` device (nothing is allocated) and its shapes inferred.
Exit code 0 when all are valid, 1 when one is not, with the error (file, JSON path, address,
what was expected) on stderr. With ``--format json`` each spec gives one JSON object on one line.

>>> import pathlib, tempfile
>>> from fluxion.cli import main
>>> path = pathlib.Path(tempfile.mkdtemp()) / "mlp.json"
>>> _ = path.write_text('''{"type": "Chain", "inputs": {"x": ["B", 8]},
...     "children": [{"type": "Linear", "out_features": 2}]}''')
>>> main(["validate", str(path)])
/.../mlp.json: valid
  input:  x (B, 8)
  output: (B, 2)
  parameters: 18
0
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fluxion.cli.loading import LoadedSpec, load_spec, spec_inputs_text, spec_options
from fluxion.cli.values import error_json, shape_json
from fluxion.errors import FluxionError, UsageError
from fluxion.inspect.counting import human_count, parameter_count
from fluxion.shapes.report import assumptions_text, format_value


def run(args: argparse.Namespace) -> int:
    """Validate each spec the command line names; print the results; return the exit code.

    Each spec is checked even when one before it is not valid; the exit code is 1 when any is not.

    >>> from fluxion.cli import main
    >>> main(["validate", "no/such/spec.json"])
    1
    """
    valid = True
    for file in args.spec:
        try:
            loaded = load_spec(spec_options(args, file))
        except UsageError:
            raise
        except FluxionError as error:
            valid = False
            if args.format == "json":
                print(json.dumps({"valid": False, "file": file, "error": error_json(error)}))
            print(f"fluxion validate: error: {error}", file=sys.stderr)
            continue
        print(json.dumps(_as_json(loaded)) if args.format == "json" else _as_text(loaded))
    return 0 if valid else 1


def _as_json(loaded: LoadedSpec) -> dict[str, Any]:
    report = loaded.report
    return {
        "valid": True,
        "file": loaded.file,
        "shapes_checked": report is not None,
        "inputs": None if loaded.inputs is None else {name: list(shape) for name, shape in loaded.inputs.items()},
        "output": None if report is None else shape_json(report.output),
        "constraints": [] if report is None else [str(constraint) for constraint in report.constraints],
        "assuming": [] if report is None else assumptions_text(report.assumed),
        "parameters": parameter_count(loaded.model),
    }


def _as_text(loaded: LoadedSpec) -> str:
    if loaded.report is None or loaded.inputs is None:
        missing = ", ".join(loaded.missing)
        why = f"no shape for input {missing}" if missing else "the spec gives no input shapes"
        return f"{loaded.file}: valid (shapes not checked: {why}; pass --input NAME=DIMS)"
    count = parameter_count(loaded.model)
    lines = [
        f"{loaded.file}: valid",
        f"  input:  {spec_inputs_text(loaded.inputs)}",
        f"  output: {format_value(loaded.report.output)}",
        f"  parameters: {count:,}" + (f" ({human_count(count)})" if count >= 1000 else ""),
    ]
    lines += [f"  constraint: {constraint}" for constraint in loaded.report.constraints]
    lines += [f"  assuming: {assumption}" for assumption in assumptions_text(loaded.report.assumed)]
    return "\n".join(lines)
