"""What a checkpoint read a box at a time offers: any block of any tensor, read into memory given.

A :class:`Request` names a tensor, a :data:`Box` of it (a range per dimension) and the tensor to
fill, which may be of any dtype, layout or device: a rank's shard of a parameter, a view of it, a
buffer on the GPU. A :class:`Pieces` reads many requests at once (``read_all``); the readers that
``fluxion.distributed.sources.open_pieces`` makes are in ``safetensors_pieces`` (files read by byte
range), ``dcp_pieces`` (folders in torch.distributed.checkpoint's own format) and ``sources``
(checkpoints read whole and cut). :class:`OneAtATime` reads requests one after the other.

>>> from fluxion.distributed.sources import open_pieces
>>> pieces = open_pieces({"w": torch.arange(6.0).reshape(2, 3)})
>>> out = torch.empty(2, 1)
>>> pieces.read_all([Request("w", ((0, 2), (2, 3)), out)])
>>> isinstance(pieces, Pieces), out.flatten().tolist()
(True, [2.0, 5.0])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from fluxion.weights.checkpoint import Checkpoint

Box = tuple[tuple[int, int], ...]
"""A block of a tensor: ``(start, stop)`` along each dimension."""


@runtime_checkable
class Pieces(Protocol):
    """A checkpoint that can read any box of any tensor into a tensor given to it.

    >>> from fluxion.distributed.sources import open_pieces
    >>> isinstance(open_pieces({"w": torch.zeros(1)}), Pieces)
    True
    """

    checkpoint: Checkpoint
    """Every tensor's key, shape and dtype (for planning the load) and the file metadata."""

    def read_all(self, requests: list[Request]) -> None:
        """Fill each request's ``out`` (shaped like its box, any dtype, layout or device) with that
        box of its tensor. Every rank calls it with the same keys, in the same order.

        >>> from fluxion.distributed.sources import open_pieces
        >>> out = torch.empty(1)
        >>> open_pieces({"w": torch.ones(2)}).read_all([Request("w", ((0, 1),), out)])
        >>> out.item()
        1.0
        """
        ...

    def close(self) -> None:
        """Release the files.

        >>> from fluxion.distributed.sources import open_pieces
        >>> open_pieces({"w": torch.zeros(1)}).close()
        """
        ...


@dataclass(frozen=True)
class Request:
    """One block to read: tensor ``key``'s ``box``, into ``out``.

    >>> Request("w", ((0, 1),), torch.empty(1)).key
    'w'
    """

    key: str
    box: Box
    out: torch.Tensor


class OneAtATime:
    """Pieces whose requests are read one after the other (what ``read_all`` does by default).

    >>> class Zeros(OneAtATime):
    ...     def read(self, key: str, box: Box, out: torch.Tensor) -> None:
    ...         out.zero_()
    >>> out = torch.ones(2)
    >>> Zeros().read_all([Request("w", ((0, 2),), out)])
    >>> out.tolist()
    [0.0, 0.0]
    """

    def read(self, key: str, box: Box, out: torch.Tensor) -> None:
        """Fill ``out`` with the ``box`` of tensor ``key``.

        >>> OneAtATime().read("w", ((0, 1),), torch.empty(1))
        Traceback (most recent call last):
        ...
        NotImplementedError
        """
        raise NotImplementedError

    def read_all(self, requests: list[Request]) -> None:
        """Read every request in turn (see :meth:`read`).

        >>> OneAtATime().read_all([])
        """
        for request in requests:
            self.read(request.key, request.box, request.out)
