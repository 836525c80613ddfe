"""The core of fluxion: a model is a tree of ``torch.nn.Module``s whose nodes know their address.

Inner nodes are :class:`Chain` (children run in sequence), its combinators (``Residual``, ``Sum``,
``Parallel``...) and :class:`Graph` (named nodes wired by edges); leaves are any modules. A node's
address (``"encoder.Block_2.Linear"``) is its ``named_modules()`` name and its ``state_dict()``
prefix. This package imports nothing of fluxion but ``fluxion.errors`` and ``fluxion.dims``; the
layer library (``fluxion.layers``, which re-exports everything here) and every other part build
on it through its public hooks.

>>> import torch
>>> from fluxion import tree
>>> model = tree.Chain(tree.Residual(torch.nn.Linear(4, 4)), head=torch.nn.Linear(4, 2))
>>> model["Residual.Linear"].weight.shape, tree.address_of(model["head"])
(torch.Size([4, 4]), 'head')
"""

from fluxion.errors import (
    ChainError,
    ChildAttributeError,
    ChildIndexError,
    ChildNotFoundError,
    ContextError,
    GraphError,
    TreeError,
)
from fluxion.tree.chain import Chain
from fluxion.tree.combinators import (
    Concatenate,
    Distribute,
    Lambda,
    Matmul,
    Parallel,
    Passthrough,
    Residual,
    Return,
    Sum,
)
from fluxion.tree.context import SetContext, UseContext, context_of
from fluxion.tree.graph import Graph
from fluxion.tree.intermediates import Intermediates
from fluxion.tree.module import Module, WeightedModule, address_of, parent_of, place_of
from fluxion.tree.parameter_roles import named_architecture_parameters, named_weights
from fluxion.tree.tree_repr import draw_tree
from fluxion.tree.wrapping import is_wrapped, node_class

__all__ = [
    "Chain",
    "ChainError",
    "ChildAttributeError",
    "ChildIndexError",
    "ChildNotFoundError",
    "Concatenate",
    "ContextError",
    "Distribute",
    "Graph",
    "GraphError",
    "Intermediates",
    "Lambda",
    "Matmul",
    "Module",
    "Parallel",
    "Passthrough",
    "Residual",
    "Return",
    "SetContext",
    "Sum",
    "TreeError",
    "UseContext",
    "WeightedModule",
    "address_of",
    "context_of",
    "draw_tree",
    "is_wrapped",
    "named_architecture_parameters",
    "named_weights",
    "node_class",
    "parent_of",
    "place_of",
]
