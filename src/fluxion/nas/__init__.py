"""Architecture search on the tree: choice nodes, architecture parameters, finalize, search spaces.

A supernet is a tree whose :class:`Choice` nodes hold candidate operations as children, each under
its own name, and whose :class:`InputChoice` joins keep some of their inputs. Architecture
parameters (the choices' ``alphas``) are a set apart from the weights (:func:`arch_parameters`,
:func:`weights`). :func:`finalize` turns a trained supernet into a discrete tree that inherits the
chosen operations' weights, with its genotype and spec. The DARTS operations are layers
(``fluxion.nas.operations``), and ``examples/darts.jsonnet`` is DARTS's search space as a spec.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion import nas
>>> supernet = fl.Chain(fl.Linear(4, 4), nas.Choice(relu=fl.ReLU(), tanh=fl.Tanh()))
>>> [tuple(p.shape) for p in nas.arch_parameters(supernet)]
[(2,)]
>>> supernet(torch.randn(3, 4)).shape
torch.Size([3, 4])
"""

from fluxion.errors import NasError
from fluxion.nas.choice import Choice, Mode
from fluxion.nas.evaluate import EpochRecord, Evaluation, evaluate
from fluxion.nas.finalize import Decisions, Finalized, Join, decide, finalize, genotype_of
from fluxion.nas.genotype import Genotype
from fluxion.nas.input_choice import InputChoice
from fluxion.nas.operations import (
    OPERATIONS,
    PRIMITIVES,
    AuxiliaryHeadCIFAR,
    CifarStem,
    ConvBNReLU,
    DilConv,
    DropPath,
    FacConv,
    FactorizedReduce,
    PoolBN,
    ReLUConvBN,
    SepConv,
    StemS4,
    StemS4S2,
    Zero,
    operation,
)
from fluxion.nas.parameters import arch_parameters, choices, named_arch_parameters, set_mode, weights
from fluxion.nas.ranking import Rank
from fluxion.nas.search import Search, StepRecord
from fluxion.nas.strategies import Darts, Gumbel, RandomSampling, StepContext, Strategy
from fluxion.tree.parameter_roles import named_weights

__all__ = [
    "OPERATIONS",
    "PRIMITIVES",
    "AuxiliaryHeadCIFAR",
    "Choice",
    "CifarStem",
    "ConvBNReLU",
    "Darts",
    "Decisions",
    "DilConv",
    "DropPath",
    "EpochRecord",
    "Evaluation",
    "FacConv",
    "FactorizedReduce",
    "Finalized",
    "Genotype",
    "Gumbel",
    "InputChoice",
    "Join",
    "Mode",
    "NasError",
    "PoolBN",
    "RandomSampling",
    "Rank",
    "ReLUConvBN",
    "Search",
    "SepConv",
    "StemS4",
    "StemS4S2",
    "StepContext",
    "StepRecord",
    "Strategy",
    "Zero",
    "arch_parameters",
    "choices",
    "decide",
    "evaluate",
    "finalize",
    "genotype_of",
    "named_arch_parameters",
    "named_weights",
    "operation",
    "set_mode",
    "weights",
]
