"""``outputs_made`` skips only the wrappers whose hooks keep state (FSDP, DDP): a node wrapped by
torch's activation checkpointing, which keeps none, still runs on meta tensors."""

from __future__ import annotations

import torch
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (  # pyright: ignore[reportMissingTypeStubs]
    checkpoint_wrapper,  # pyright: ignore[reportUnknownVariableType]
)

import fluxion.layers as fl
from fluxion import shapes
from fluxion.inspect.activations import outputs_made


def test_a_checkpointed_node_is_still_run() -> None:
    plain = fl.Chain(torch.nn.Linear(4, 4), fl.Reshape(2, 2))
    checkpointed = fl.Chain(checkpoint_wrapper(torch.nn.Linear(4, 4)), fl.Reshape(2, 2))
    assert outputs_made(shapes.infer(plain, (3, 4))) is not None
    assert outputs_made(shapes.infer(checkpointed, (3, 4))) is not None
