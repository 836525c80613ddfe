"""fluxion: PyTorch models as trees you can define, inspect, edit and load.

>>> import fluxion.layers as fl
>>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU(), fl.Linear(8, 2))
>>> model.Linear_2.address
'Linear_2'
"""

from fluxion import layers
from fluxion.errors import FluxionError

__all__ = ["FluxionError", "layers"]
__version__ = "0.1.0"
