"""Typed views of the torch internals that weight loading touches (torch leaves them untyped).

>>> import torch
>>> sorted(parameters_of(torch.nn.Linear(2, 2)))
['bias', 'weight']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch


def named_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``model.named_modules()`` with types: every module once, by address.

    >>> [address for address, _ in named_modules(torch.nn.Sequential(torch.nn.ReLU()))]
    ['', '0']
    """
    modules = cast("Iterator[tuple[str, torch.nn.Module]]", model.named_modules())
    return list(modules)


def parameters_of(module: torch.nn.Module) -> dict[str, torch.nn.Parameter | None]:
    """The module's own parameter table (the dict torch itself reads and writes).

    >>> parameters_of(torch.nn.Linear(2, 2, bias=False))["weight"].shape
    torch.Size([2, 2])
    """
    return cast("dict[str, torch.nn.Parameter | None]", vars(module)["_parameters"])


def buffers_of(module: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """The module's own buffer table.

    >>> sorted(buffers_of(torch.nn.BatchNorm1d(2)))
    ['num_batches_tracked', 'running_mean', 'running_var']
    """
    return cast("dict[str, torch.Tensor | None]", vars(module)["_buffers"])


def persistent_buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's own buffers that belong in its ``state_dict``.

    >>> module = torch.nn.Module()
    >>> module.register_buffer("kept", torch.zeros(1))
    >>> module.register_buffer("scratch", torch.zeros(1), persistent=False)
    >>> list(persistent_buffers(module))
    ['kept']
    """
    skipped = cast("set[str]", vars(module)["_non_persistent_buffers_set"])
    return {name: buffer for name, buffer in buffers_of(module).items() if buffer is not None and name not in skipped}
