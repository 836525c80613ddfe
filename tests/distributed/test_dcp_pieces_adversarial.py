"""fluxion.distributed.dcp_pieces against hostile or odd folders: a crafted DCP ``.metadata`` and a DCP
data file that is a FIFO.

Single process, no process group. Both were bugs found in review; the tests keep them fixed.
"""

from __future__ import annotations

import functools
import os
import pickle
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch.distributed import checkpoint as dcp
from torch.distributed.checkpoint import filesystem

from fluxion import distributed
from fluxion.distributed.dcp_pieces import DCP_METADATA
from fluxion.distributed.sources import open_pieces
from fluxion.errors import FluxionError, WeightsError

RECORDS_MODULE = "torch.distributed.checkpoint.filesystem"
"""One of the modules whose classes the metadata unpickler lets through."""

POPEN_PATH = "torch._strobelight.cli_function_profiler.subprocess.Popen"
"""``subprocess.Popen`` reached by attributes from that module: a dotted name protocol 4 resolves."""


def _reachable(path: str) -> object | None:
    try:
        return functools.reduce(getattr, path.split("."), filesystem)
    except AttributeError:
        return None


def _short_string(text: bytes) -> bytes:
    return pickle.SHORT_BINUNICODE + bytes([len(text)]) + text


def crafted_metadata(command: list[str]) -> bytes:
    """A pickle that asks for ``Popen`` under a dotted name of an allowed module and calls it."""
    arguments = b"".join(_short_string(os.fsencode(part)) for part in command)
    return (
        pickle.PROTO
        + b"\x04"
        + _short_string(RECORDS_MODULE.encode())
        + _short_string(POPEN_PATH.encode())
        + pickle.STACK_GLOBAL
        + pickle.MARK
        + arguments
        + pickle.LIST
        + pickle.TUPLE1
        + pickle.REDUCE
        + pickle.STOP
    )


def test_a_crafted_dcp_metadata_runs_no_command(tmp_path: Path) -> None:
    import subprocess

    if _reachable(POPEN_PATH) is not subprocess.Popen:
        pytest.skip("this torch has no attribute path to subprocess.Popen from the allowed module")
    marker = tmp_path / "ran"
    (tmp_path / DCP_METADATA).write_bytes(crafted_metadata(["touch", os.fspath(marker)]))

    with pytest.raises(WeightsError):
        open_pieces(tmp_path)

    deadline = time.monotonic() + 2.0
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not marker.exists(), "the crafted .metadata started a process"


def _dcp_folder(folder: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DCP notes that it runs in one process
        dcp.save({"w": torch.arange(4.0)}, checkpoint_id=folder)
    return folder


def test_a_dcp_data_file_that_is_a_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    folder = _dcp_folder(tmp_path / "checkpoint")
    (data,) = folder.glob("*.distcp")
    data.unlink()
    os.mkfifo(data)
    outcome: list[BaseException | None] = []

    def consolidate() -> None:
        try:
            distributed.consolidate(folder, tmp_path / "model.safetensors", progress=False)
            outcome.append(None)
        except BaseException as error:  # recorded, checked below
            outcome.append(error)

    worker = threading.Thread(target=consolidate, daemon=True)
    worker.start()
    worker.join(5.0)
    blocked = worker.is_alive()
    if blocked:  # let the reader go: a writer that comes and goes gives it an end of file
        os.close(os.open(data, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5.0)
    assert not blocked, "consolidate blocked on a FIFO"
    assert outcome
    assert isinstance(outcome[0], FluxionError)
    assert "FIFO" in str(outcome[0])
