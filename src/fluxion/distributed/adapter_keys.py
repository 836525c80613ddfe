"""Which ``state_dict`` keys of a tree are its adapters' own tensors (what an adapter checkpoint holds).

>>> import fluxion.layers as fl
>>> from fluxion.adapters import lora
>>> model = fl.Chain(head=fl.Linear(4, 2))
>>> _ = lora.inject(model, rank=1)
>>> sorted(adapter_keys(model))
['head.down.weight', 'head.scale', 'head.up.weight']
"""

from __future__ import annotations

import torch

from fluxion.adapters import Lora
from fluxion.adapters.adapter import SLOT
from fluxion.weights._torch import named_modules


def adapter_keys(model: torch.nn.Module) -> set[str]:
    """The keys of every LoRA's own tensors (its target's excluded), as ``model.state_dict()`` names them
    (``model`` may be a subtree, or a plain module holding a tree).

    >>> import fluxion.layers as fl
    >>> adapter_keys(fl.Chain(fl.Linear(2, 2)))
    set()
    """
    keys: set[str] = set()
    for address, node in named_modules(model):
        if isinstance(node, Lora):
            prefix = f"{address}." if address else ""
            for name in node.state_dict(keep_vars=True):
                if not name.startswith(SLOT + "."):
                    keys.add(prefix + name)
    return keys
