"""Weights: safetensors in and out, key mapping, and conversion from foreign models.

>>> import pathlib, tempfile, torch, fluxion.layers as fl
>>> from fluxion import weights
>>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
>>> model = fl.Chain(fl.Linear(4, 2))
>>> weights.save(model, path)
>>> fresh = fl.Chain(fl.Linear(4, 2))
>>> weights.load(fresh, path).loaded
('Linear.weight', 'Linear.bias')
>>> torch.equal(fresh.Linear.weight, model.Linear.weight)
True
"""

from fluxion.errors import ConversionError, PickleCheckpointWarning, WeightsError, WeightsWarning
from fluxion.weights.checkpoint import Checkpoint, Source, open_checkpoint
from fluxion.weights.convert import convert
from fluxion.weights.load import LoadResult, load
from fluxion.weights.mapping import KeyMapping, MappingLike, Rule
from fluxion.weights.save import save

__all__ = [
    "Checkpoint",
    "ConversionError",
    "KeyMapping",
    "LoadResult",
    "MappingLike",
    "PickleCheckpointWarning",
    "Rule",
    "Source",
    "WeightsError",
    "WeightsWarning",
    "convert",
    "load",
    "open_checkpoint",
    "save",
]
