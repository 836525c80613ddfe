"""DDP for the replicated case: every rank holds the whole tree, gradients are averaged.

``torch.nn.parallel.DistributedDataParallel`` wraps the tree from outside (its ``state_dict`` keys
gain a ``module.`` prefix, the tree's own do not); ``fluxion.distributed.load`` and ``save`` take
either the tree or the wrapper and always speak the tree's keys.

>>> import fluxion.layers as fl
>>> replicate(fl.Chain(fl.Linear(2, 2)))
Traceback (most recent call last):
...
fluxion.errors.DistributedError: no process group is running; replicate needs one: start the script \
with torchrun (or call torch.distributed.init_process_group) first
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from fluxion.distributed.ranks import agreed, require_process_group
from fluxion.errors import DistributedError
from fluxion.tree import is_wrapped


def replicate(model: torch.nn.Module, **options: Any) -> DistributedDataParallel:
    """Wrap ``model`` in ``DistributedDataParallel``; ``options`` pass through (``device_ids``...).

    Call the returned wrapper for training steps (it averages gradients across ranks); the tree
    is its ``.module``, with its addresses unchanged. A sharded tree cannot also be replicated.

    >>> import torch
    >>> replicate(torch.nn.Linear(2, 2))
    Traceback (most recent call last):
    ...
    fluxion.errors.DistributedError: no process group is running; replicate needs one: start the script \
with torchrun (or call torch.distributed.init_process_group) first
    """
    require_process_group("replicate")

    def check() -> None:
        if not isinstance(model, torch.nn.Module):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise DistributedError(f"replicate wraps a torch module (a tree), got {type(model).__name__}")
        if isinstance(model, DistributedDataParallel):
            raise DistributedError("the model is replicated already (DistributedDataParallel); replicate a tree once")
        if any(is_wrapped(node) for node in model.modules()):
            raise DistributedError("the model is sharded (fully_shard); a sharded tree cannot also be replicated")

    agreed(check)
    try:
        return DistributedDataParallel(model, **options)
    except Exception as error:
        raise DistributedError(f"DistributedDataParallel refused the model: {type(error).__name__}: {error}") from error
