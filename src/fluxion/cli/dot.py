"""Running Graphviz's ``dot`` program: DOT text in, an SVG, PDF or PNG file out.

Without ``dot`` installed, the error says what to install; a ``.dot`` file needs no program.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.svg"
>>> if dot_program() is not None:
...     run_dot("digraph { a -> b }", path)
...     assert path.read_text().lstrip().startswith("<?xml")
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from fluxion.errors import CliError
from fluxion.files import write_atomically
from fluxion.progress import Ticker

FORMATS = ("svg", "pdf", "png", "dot")
"""The output formats of ``fluxion render``, by file suffix."""

INSTALL_HINT = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install -c conda-forge graphviz), or write a .dot file instead"
)


def dot_program() -> str | None:
    """The path of Graphviz's ``dot`` program, or None when it is not installed.

    >>> dot_program() is None or dot_program().endswith("dot")
    True
    """
    return shutil.which("dot")


def run_dot(source: str, path: Path) -> None:
    """Lay ``source`` out with ``dot`` into ``path``, in the format its suffix names.

    The file is written aside and renamed (``fluxion.files.write_atomically``), so a failed run
    leaves no half-written file; a run that takes a while shows the time elapsed on a terminal (stderr).

    >>> run_dot("digraph {}", Path("out.bmp"))
    Traceback (most recent call last):
    fluxion.errors.CliError: out.bmp: the format is taken from the suffix: .svg, .pdf, .png or .dot
    """
    kind = path.suffix.lstrip(".").lower()
    if kind not in FORMATS or kind == "dot":
        raise CliError(f"{path}: the format is taken from the suffix: .svg, .pdf, .png or .dot")
    program = dot_program()
    if program is None:
        raise CliError(f"writing {path} needs Graphviz's dot program, which is not installed: {INSTALL_HINT}")

    def render(partial: Path) -> None:
        command = [program, f"-T{kind}", "-o", os.fspath(partial)]
        # dot reads the source from a file: communicate() retried after a timeout sends no more input, so a
        # source larger than a pipe holds would hang when dot is slow to start reading it
        with (
            Ticker(f"rendering {path.name} with dot") as ticker,
            tempfile.TemporaryFile("w+", encoding="utf-8") as given,
        ):
            given.write(source)
            given.seek(0)
            process = subprocess.Popen(
                command, stdin=given, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            try:
                while True:
                    try:
                        _, errors = process.communicate(timeout=0.1)
                        break
                    except subprocess.TimeoutExpired:  # still running; nothing is lost
                        ticker.tick()
            finally:
                if process.poll() is None:  # interrupted: dot must not go on writing
                    process.kill()
                    process.wait()
        if process.returncode != 0:
            first = (errors.strip().splitlines() or ["no message"])[0]
            raise CliError(f"dot could not render {path} (exit code {process.returncode}): {first}")

    write_atomically(path, render, error=CliError)
