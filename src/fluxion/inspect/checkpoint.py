"""Does a checkpoint fit a model? Every key, shape and dtype compared, without reading a tensor.

It is the check ``fluxion.weights.load`` makes before copying anything (the same plan, the same
report of missing, unexpected and mismatched keys), stopped before the copy: only the file's
header is read, so it is as quick for a 10 GB checkpoint as for a small one.

>>> import pathlib, tempfile, torch
>>> import fluxion.layers as fl
>>> from fluxion import weights
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
>>> weights.save(fl.Chain(fl.Linear(4, 2)), path)
>>> check_weights(fl.Chain(fl.Linear(4, 2)), path).matches
True
>>> check = check_weights(fl.Chain(fl.Linear(4, 3)), path)
>>> check.matches, check.mismatched
(False, ('Linear.weight', 'Linear.bias'))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from fluxion.weights import KeyMapping, MappingLike, WeightsError, open_checkpoint
from fluxion.weights.plan import make_plan


@dataclass(frozen=True)
class WeightsCheck:
    """The result of comparing a checkpoint with a model.

    ``tensors`` and ``bytes`` describe the checkpoint; ``missing``, ``unexpected`` and
    ``mismatched`` are tree keys (empty when it matches); ``message`` lists every problem, grouped,
    as a failed ``weights.load`` would.

    >>> WeightsCheck("m.safetensors", True, 2, 40).message
    ''
    """

    file: str
    matches: bool
    tensors: int
    bytes: int
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    message: str = ""


def check_weights(
    model: torch.nn.Module, source: str | os.PathLike[str], mapping: MappingLike | None = None
) -> WeightsCheck:
    """Compare the checkpoint at ``source`` (through ``mapping``) with ``model``; change nothing.

    A file that cannot be read at all raises ``WeightsError``; a checkpoint that does not fit is
    a ``WeightsCheck`` with ``matches`` False.

    >>> import fluxion.layers as fl
    >>> check_weights(fl.Chain(fl.Linear(2, 2)), "missing.safetensors")
    Traceback (most recent call last):
    ...
    fluxion.errors.WeightsError: ...missing.safetensors...
    """
    key_mapping = KeyMapping.coerce(mapping)
    name = os.fspath(source)
    with open_checkpoint(name) as checkpoint:
        tensors, size = len(checkpoint.entries), checkpoint.nbytes
        try:
            make_plan(model, checkpoint, key_mapping)
        except WeightsError as error:
            if not (error.missing or error.unexpected or error.mismatched):
                raise  # not a mismatch: the checkpoint or the mapping itself is wrong
            return WeightsCheck(
                name, False, tensors, size, error.missing, error.unexpected, error.mismatched, str(error)
            )
    return WeightsCheck(name, True, tensors, size)
