"""Trees on PyTorch's own distributed engine: FSDP2, DDP and torch.distributed.checkpoint.

fluxion adds no communication of its own. :func:`shard` wraps the nodes you select with
``fully_shard`` (innermost first, the root last) and keeps the tree's addresses and names;
:func:`load` fills a sharded tree, built on ``meta``, from a checkpoint (mapped, foreign, sharded
or not) so that each rank reads only its shards; :func:`save` writes each rank's shards through
DCP in Hugging Face's safetensors layout, and :func:`consolidate` joins them into one file.
:func:`unshard` gives back a plain tree with whole tensors; :func:`replicate` is DDP.

>>> from fluxion import distributed
>>> distributed.world_size()
1
"""

from fluxion.distributed.loading import load
from fluxion.distributed.ranks import rank, world_size
from fluxion.distributed.replication import replicate
from fluxion.distributed.saving import consolidate, save
from fluxion.distributed.sharding import Sharding, reshard, shard, unshard
from fluxion.errors import DistributedError

__all__ = [
    "DistributedError",
    "Sharding",
    "consolidate",
    "load",
    "rank",
    "replicate",
    "reshard",
    "save",
    "shard",
    "unshard",
    "world_size",
]
