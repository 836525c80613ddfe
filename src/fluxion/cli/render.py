"""``fluxion render``: a diagram of the data flow, drawn by Graphviz.

Nodes show the class, key arguments and output shape; Chains are boxes around their children
(Chains at ``--depth`` levels below the root are folded into one node); residual, parallel,
graph and context edges are drawn as the data flows (see ``fluxion.inspect.flow``). The format is
the output's suffix: ``.svg``, ``.pdf`` and ``.png`` need Graphviz's ``dot`` program, ``.dot``
(the DOT text itself, ``-o -`` for stdout) does not. Files are written atomically
(``fluxion.files``): a symbolic link is written through, an existing file keeps its mode, and a
folder, a FIFO or a device is refused.

>>> import pathlib, tempfile
>>> from fluxion.cli import main
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "net.json").write_text('''{"type": "Chain", "inputs": {"x": ["B", 8]},
...     "children": [{"type": "Residual", "children": [{"type": "Linear", "out_features": 8}]}]}''')
>>> main(["render", str(folder / "net.json"), "-o", str(folder / "net.dot")])
/.../net.dot: 4 nodes, 2 boxes
0
>>> '"Residual.Linear" -> "Residual/add"' in (folder / "net.dot").read_text()
True
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fluxion.cli.dot import INSTALL_HINT, dot_program, run_dot
from fluxion.cli.loading import load_spec, spec_options
from fluxion.cli.usage import output_format
from fluxion.errors import CliError
from fluxion.files import write_text_atomically
from fluxion.inspect.diagram import dot_source
from fluxion.inspect.flow import data_flow
from fluxion.shapes.report import assumptions_text


def run(args: argparse.Namespace) -> int:
    """Render the spec the command line names to the file it names.

    >>> from fluxion.cli import main
    >>> main(["render", "model.json", "-o", "model.gif"])
    2
    """
    to_stdout = args.output == "-"
    kind = output_format(args.output)
    output = Path("model.dot" if to_stdout else args.output)
    if kind != "dot" and dot_program() is None:
        raise CliError(f"writing {output} needs Graphviz's dot program, which is not installed: {INSTALL_HINT}")
    if not to_stdout and args.narchi_overwrite is False and output.exists():
        raise CliError(f"{output} exists, and --overwrite=false says not to write over it")
    loaded = load_spec(spec_options(args))
    names = loaded.inputs if loaded.inputs is not None else list(loaded.missing) or None
    flow = data_flow(loaded.model, depth=args.depth, report=loaded.report, inputs=names)
    assumed = [] if loaded.report is None else assumptions_text(loaded.report.assumed)
    source = _with_assumptions(dot_source(flow, direction=args.direction), assumed)
    if to_stdout:
        sys.stdout.write(source)
        return 0
    if kind == "dot":
        write_text_atomically(output, source, error=CliError)
    else:
        run_dot(source, output)
    assuming = f" (assuming {', '.join(assumed)})" if assumed else ""
    print(f"{output}: {len(flow.nodes)} nodes, {len(flow.clusters)} boxes{assuming}")
    return 0


def _with_assumptions(source: str, assumed: list[str]) -> str:
    """The DOT text with what was assumed of the sizes as the diagram's caption, below it."""
    if not assumed:
        return source
    body, _, _ = source.rstrip().rpartition("}")
    caption = "\\l".join(f"assuming: {assumption}" for assumption in assumed) + "\\l"
    return f'{body}\tlabel="{caption}"\n\tlabelloc=b\n\tlabeljust=l\n}}\n'
