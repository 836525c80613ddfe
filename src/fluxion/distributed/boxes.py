"""Which block of a tensor this rank holds, and which block of a checkpoint tensor feeds it.

A sharded parameter is a ``DTensor``: each rank holds one block of the whole tensor, cut along the
dimensions its placements shard, the way ``torch.chunk`` cuts (the first ranks get the larger
parts; the last may get nothing). A key mapping reaches the model's tensor from a checkpoint's
through transposes and splits (``fluxion.weights.KeyMapping``), and each of those maps a block to a
block, so the rank can read exactly the block of the checkpoint tensor it needs.

>>> from fluxion.weights.mapping import Split, Transpose
>>> source_box(((0, 4), (0, 8)), (Transpose(),), (8, 4))
((0, 8), (0, 4))
>>> source_box(((2, 4),), (Split(index=1, count=3, dim=0),), (12,))
((6, 8),)
"""

from __future__ import annotations

from typing import cast

import torch
from torch.distributed.tensor import DTensor, Replicate, Shard

from fluxion.distributed.pieces import Box
from fluxion.errors import DistributedError
from fluxion.weights.mapping import Split, Step, Transpose


def whole_box(shape: tuple[int, ...]) -> Box:
    """The box that is the whole tensor.

    >>> whole_box((3, 2))
    ((0, 3), (0, 2))
    """
    return tuple((0, size) for size in shape)


def local_box(tensor: torch.Tensor) -> Box:
    """The block of the whole tensor this rank holds: all of it, unless ``tensor`` is a sharded DTensor.

    >>> local_box(torch.zeros(4, 2))
    ((0, 4), (0, 2))
    """
    if not isinstance(tensor, DTensor):
        return whole_box(tuple(tensor.shape))
    ranges = list(whole_box(tuple(tensor.shape)))
    mesh = tensor.device_mesh
    coordinate = mesh.get_coordinate()
    if coordinate is None:  # this rank is not in the mesh: it holds nothing
        return tuple((0, 0) for _ in ranges)
    for mesh_dim, placement in enumerate(tensor.placements):
        if isinstance(placement, Replicate):
            continue
        if type(placement) is not Shard:
            raise DistributedError(
                f"a tensor placed as {placement} cannot be loaded piece by piece; fluxion loads tensors "
                "that are sharded along whole dimensions (FSDP2's Shard) or replicated"
            )
        dim = cast(int, placement.dim)  # pyright: ignore[reportUnknownMemberType]
        start, stop = ranges[dim]
        parts = mesh.size(mesh_dim)
        step = -(-(stop - start) // parts)  # torch.chunk: ceil
        low = min(stop, start + coordinate[mesh_dim] * step)
        ranges[dim] = (low, min(stop, low + step))
    box = tuple(ranges)
    local_shape = tuple(tensor.to_local().shape)
    if tuple(stop - start for start, stop in box) != local_shape and tensor.numel() == 0:
        return tuple((0, size) for size in local_shape)  # nothing to read; FSDP gives any empty shape
    if tuple(stop - start for start, stop in box) != local_shape:
        raise DistributedError(
            f"this rank's part of a tensor of shape {tuple(tensor.shape)} has shape {local_shape}, not the "
            f"block {box} its placements {tensor.placements} describe; fluxion loads evenly chunked shards only"
        )
    return box


def source_box(box: Box, steps: tuple[Step, ...], source_shape: tuple[int, ...]) -> Box:
    """The block of the checkpoint tensor that becomes ``box`` of the model's tensor after ``steps``.

    >>> source_box(((1, 2), (0, 3)), (), (4, 3))
    ((1, 2), (0, 3))
    """
    shapes = [source_shape]
    for step in steps:
        shapes.append(step.shape(shapes[-1]))
    for step, shape in zip(reversed(steps), reversed(shapes[:-1]), strict=True):
        box = (box[1], box[0], *box[2:]) if isinstance(step, Transpose) else _before_split(box, step, shape)
    return box


def _before_split(box: Box, step: Split, shape: tuple[int, ...]) -> Box:
    dim = step.dim % len(shape)
    shift = step.index * (shape[dim] // step.count)
    ranges = list(box)
    start, stop = ranges[dim]
    ranges[dim] = (start + shift, stop + shift)
    return tuple(ranges)


def in_source_order(tensor: torch.Tensor, steps: tuple[Step, ...]) -> torch.Tensor:
    """A view of the model-side ``tensor`` with its dimensions in the checkpoint tensor's order.

    Splits keep the order and each transpose swaps the first two dimensions, so reading the
    source block into this view puts every value in its place.

    >>> in_source_order(torch.zeros(2, 5), (Transpose(),)).shape
    torch.Size([5, 2])
    """
    transposes = sum(isinstance(step, Transpose) for step in steps)
    return tensor.transpose(0, 1) if transposes % 2 else tensor
