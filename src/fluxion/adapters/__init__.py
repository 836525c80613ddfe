"""Adapters: reversible changes to a model's tree, and LoRA.

An adapter takes the place of a node and wraps it; ejecting it gives back the model exactly as it
was. ``fluxion.adapters.lora`` applies LoRA across a model by layer type, address glob or predicate.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion.adapters import lora
>>> model = fl.Chain(fl.Linear(4, 4), fl.ReLU(), fl.Linear(4, 2))
>>> x = torch.randn(1, 4)
>>> before = model(x)
>>> len(lora.inject(model, rank=2, targets=fl.Linear))
2
>>> _ = lora.eject(model)
>>> torch.equal(model(x), before)
True
"""

from fluxion.adapters import lora
from fluxion.adapters.adapter import Adapter
from fluxion.adapters.lora_layers import Conv2dLora, LinearLora, Lora
from fluxion.adapters.targets import Targets, base_address, base_nodes, select
from fluxion.errors import AdapterError

__all__ = [
    "Adapter",
    "AdapterError",
    "Conv2dLora",
    "LinearLora",
    "Lora",
    "Targets",
    "base_address",
    "base_nodes",
    "lora",
    "select",
]
