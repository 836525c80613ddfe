"""The ``fluxion`` command: check and look at an architecture without writing Python.

``fluxion validate``, ``show``, ``render``, ``summary`` and ``export`` read a spec file (JSON or
jsonnet, see docs/specs.md). ``main(argv)`` runs a command and returns its exit code, so the
commands can be used from Python too (see docs/cli.md).

>>> import pathlib, tempfile
>>> from fluxion.cli import main
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.json"
>>> _ = path.write_text('{"type": "Chain", "children": [{"type": "Linear", "in_features": 4, "out_features": 2}]}')
>>> main(["validate", str(path), "--input", "x=B,4"])
/.../model.json: valid
  input:  x (B, 4)
  output: (B, 2)
  parameters: 10
0
"""

from fluxion.cli.app import main

__all__ = ["main"]
