"""What the activation tests share: which outputs torch makes as tensors of their own, seen on a real
CPU run (the oracle ``outputs_made``'s meta run is checked against)."""

from collections.abc import Callable, Iterator
from typing import cast

import torch


def made_on_cpu(
    model: torch.nn.Module, *args: torch.Tensor, with_root: bool = False, **kwargs: torch.Tensor
) -> set[str]:
    """The addresses of the nodes (the root's too, ``with_root``) whose output holds a tensor of its
    own when ``model`` runs on these arguments: one whose storage is neither an input's nor that of
    an output before it (all kept alive, so that no storage is reused)."""
    seen = {tensor.untyped_storage().data_ptr() for tensor in (*args, *kwargs.values())}
    kept: list[torch.Tensor] = []
    made: set[str] = set()

    def record(address: str) -> Callable[[torch.nn.Module, object, object], None]:
        def hook(module: torch.nn.Module, inputs: object, output: object) -> None:
            tensors = list(_tensors(output))
            storages = {tensor.untyped_storage().data_ptr() for tensor in tensors}
            if storages - seen:
                made.add(address)
            seen.update(storages)
            kept.extend(tensors)

        return hook

    named = [(address, module) for address, module in model.named_modules() if address or with_root]
    handles = [module.register_forward_hook(record(address)) for address, module in named]
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return made


def _tensors(value: object) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, tuple | list):
        for item in cast("tuple[object, ...]", value):
            yield from _tensors(item)
