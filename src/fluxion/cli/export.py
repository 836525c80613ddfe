"""``fluxion export``: a spec file written from a spec, or from a Chain built in Python.

From a spec, the result is the spec normalised (``fluxion.spec.dump``): jsonnet evaluated, every
size that inference filled in written out, defaults left out. From ``package.module:factory``,
the module is imported (the working folder first on the path, as ``python -m`` does) and the
factory called without arguments; it must return a model whose classes are all registered.
The file is written atomically (``fluxion.files``): a symbolic link is written through, an
existing file keeps its mode, and a folder, a FIFO or a device is refused.

>>> import pathlib, tempfile
>>> from fluxion.cli import main
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "net.json").write_text('''{"type": "Chain", "inputs": {"x": ["B", 8]},
...     "children": [{"type": "Linear", "out_features": 2}]}''')
>>> main(["export", str(folder / "net.json"), "-o", "-"])
{
  "fluxion": 1,
  "type": "Chain",
  "children": [
    {
      "type": "Linear",
      "in_features": 8,
      "out_features": 2
    }
  ],
  "inputs": {
    "x": [
      "B",
      8
    ]
  }
}
0
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import torch

import fluxion.layers as fl
from fluxion import shapes, spec
from fluxion.cli.loading import SpecOptions, load_spec, spec_options
from fluxion.cli.options import Shape
from fluxion.cli.usage import is_factory
from fluxion.errors import CliError, UsageError
from fluxion.files import write_text_atomically
from fluxion.layers.lazy import lazy_addresses


def run(args: argparse.Namespace) -> int:
    """Export the spec or factory the command line names.

    >>> from fluxion.cli import main
    >>> main(["export", "fluxion_no_such_module:build", "-o", "-"])
    1
    """
    options = spec_options(args)
    if is_factory(args.spec):
        model, inputs = _from_factory(options)
    else:
        loaded = load_spec(options)
        model, inputs = loaded.model, loaded.inputs
    lazy = [address or "the root" for address in lazy_addresses(model)]
    if lazy:  # a spec without these sizes and without input shapes would not load
        raise UsageError(
            f"{len(lazy)} node{'s' if len(lazy) > 1 else ''} ({', '.join(lazy[:3])}{'...' if len(lazy) > 3 else ''}) "
            "still leave sizes to be inferred: give the input shapes (--input NAME=DIMS) so that the spec states them"
        )
    document = spec.dump(model, inputs=inputs)
    if args.output == "-":
        print(json.dumps(document, indent=2))
        return 0
    write_text_atomically(args.output, json.dumps(document, indent=2) + "\n", error=CliError)
    print(f"{args.output}: {document['type']} spec written")
    return 0


def _from_factory(options: SpecOptions) -> tuple[torch.nn.Module, dict[str, Shape] | None]:
    module_name, _, attribute = os.fspath(options.file).partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise CliError(f"cannot import {module_name!r}: {error}") from None
    except Exception as error:  # the module's own code failed: its problem, told in one line
        raise CliError(f"importing {module_name!r} failed: {type(error).__name__}: {_first_line(error)}") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise CliError(f"{module_name!r} has no {attribute!r}")
        found = getattr(found, part)
    if not callable(found):
        raise CliError(f"{options.file} is not callable: a factory is a function that returns a model")
    try:
        model = found()
    except Exception as error:
        raise CliError(f"{options.file}() failed: {type(error).__name__}: {_first_line(error)}") from None
    if not isinstance(model, torch.nn.Module):
        raise CliError(f"{options.file}() returned {type(model).__name__}, not a torch module")
    inputs = dict(options.inputs) or None
    if inputs is not None:
        _materialize(model, inputs)
    return model, inputs


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _materialize(model: torch.nn.Module, inputs: Mapping[str, Shape]) -> None:
    if isinstance(model, fl.Graph):
        shapes.materialize(model, **inputs)
    else:
        shapes.materialize(model, *inputs.values())
