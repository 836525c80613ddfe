"""Training specs: initializers, optimizers and losses described as data, TorchArc's spellings included.

``initialize`` fills a model's weights with ``torch.nn.init`` initializers (the gain derived from
the activation, tensors picked by address glob), ``build_optimizer`` makes a ``torch.optim``
optimizer (parameter groups by address glob) and ``build_loss`` a ``torch.nn`` loss. Nothing is
added to ``torch.nn`` or ``torch.optim``, and the specs given are never changed. A spec file's
``init``, ``optimizer`` and ``loss`` sections go through these (``fluxion.spec``).

>>> import fluxion.layers as fl
>>> from fluxion import training
>>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU(), fl.Linear(8, 1))
>>> training.initialize(model, {"type": "kaiming_uniform_"}, activation="ReLU")
>>> optimizer = training.build_optimizer({"type": "Adam", "lr": 0.001}, model)
>>> criterion = training.build_loss({"type": "BCEWithLogitsLoss", "pos_weight": 10.0})
"""

from fluxion.errors import TrainingError
from fluxion.training.init import InitializerSpec, InitSpec, initialize
from fluxion.training.loss import LossSpec, build_loss
from fluxion.training.optimizer import OptimizerSpec, build_optimizer

__all__ = [
    "InitSpec",
    "InitializerSpec",
    "LossSpec",
    "OptimizerSpec",
    "TrainingError",
    "build_loss",
    "build_optimizer",
    "initialize",
]
