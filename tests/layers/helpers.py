"""Fluxion layers and their torch twins side by side: random weights, one seed, the same tensors."""

import itertools
from typing import Any

import torch
from torch import Tensor, nn


def randomize(module: nn.Module, seed: int = 0) -> None:
    """Give every parameter and floating buffer random values, so that swapped or ignored
    tensors cannot hide behind torch's default ones/zeros initialisation."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in itertools.chain(module.named_parameters(), module.named_buffers()):
            if not tensor.is_floating_point():
                continue
            values = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            tensor.copy_(values)


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def build_pair(
    fl_type: type[nn.Module], torch_type: type[nn.Module], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[nn.Module, nn.Module]:
    """A torch layer with random weights, and the fluxion layer of the same arguments loaded from it."""
    torch.manual_seed(0)
    reference = torch_type(*args, **kwargs)
    randomize(reference)
    torch.manual_seed(1)  # a different initialisation, so the load below is what makes them equal
    ours = fl_type(*args, **kwargs)
    ours.load_state_dict(reference.state_dict(), strict=True)
    return ours, reference
