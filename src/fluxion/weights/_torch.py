"""Typed views of the torch internals that weight loading touches (torch leaves them untyped)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch


def named_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``model.named_modules()`` with types: every module once, by address."""
    modules = cast("Iterator[tuple[str, torch.nn.Module]]", model.named_modules())
    return list(modules)


def parameters_of(module: torch.nn.Module) -> dict[str, torch.nn.Parameter | None]:
    """The module's own parameter table (the dict torch itself reads and writes)."""
    return cast("dict[str, torch.nn.Parameter | None]", vars(module)["_parameters"])


def buffers_of(module: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """The module's own buffer table."""
    return cast("dict[str, torch.Tensor | None]", vars(module)["_buffers"])


def persistent_buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The module's own buffers that belong in its ``state_dict``."""
    skipped = cast("set[str]", vars(module)["_non_persistent_buffers_set"])
    return {name: buffer for name, buffer in buffers_of(module).items() if buffer is not None and name not in skipped}
