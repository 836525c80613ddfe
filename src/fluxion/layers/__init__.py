"""The tree and its layers: ``import fluxion.layers as fl``.

>>> import torch
>>> import fluxion.layers as fl
>>> model = fl.Chain(fl.Linear(4, 8), fl.ReLU(), fl.Residual(fl.Linear(8, 8)), fl.Linear(8, 2))
>>> model(torch.zeros(1, 4)).shape
torch.Size([1, 2])
"""

from fluxion.errors import (
    ChainError,
    ChildAttributeError,
    ChildIndexError,
    ChildNotFoundError,
    ContextError,
    GraphError,
    LayerError,
    TreeError,
)
from fluxion.layers.activations import (
    Dropout,
    GeLU,
    Identity,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from fluxion.layers.attention import MultiHeadAttention, ScaledDotProductAttention, SelfAttention
from fluxion.layers.conv import Conv1d, Conv2d, Conv3d, ConvTranspose2d
from fluxion.layers.embedding import Embedding, OptionalInputs, SequencePositionEmbedding, TokenTypeEmbedding
from fluxion.layers.film import FiLM
from fluxion.layers.linear import Linear
from fluxion.layers.masks import PaddingMask
from fluxion.layers.merging import Add, BatchMatmul, Cat, Mean, Multiply, Pack, Stack, VecDot
from fluxion.layers.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, RMSNorm
from fluxion.layers.padding import Pad
from fluxion.layers.pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    AvgPool3d,
    MaxPool1d,
    MaxPool2d,
    MaxPool3d,
)
from fluxion.layers.recurrent import GRU, LSTM, RNN
from fluxion.layers.reduction import Reduce
from fluxion.layers.sampling import Interpolate, PixelShuffle, Upsample
from fluxion.layers.selection import Get, IndexSelect, Narrow
from fluxion.layers.shaping import (
    Chunk,
    Flatten,
    Permute,
    Reshape,
    Slicing,
    Split,
    Squeeze,
    Transpose,
    Unbind,
    Unflatten,
    Unsqueeze,
)
from fluxion.layers.torch_function import TorchFunction
from fluxion.layers.vision import ClassToken, PositionEmbedding, SinusoidalEmbedding, Tokens2d
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
from fluxion.tree.context import SetContext, UseContext
from fluxion.tree.graph import Graph
from fluxion.tree.intermediates import Intermediates
from fluxion.tree.module import Module, WeightedModule, address_of, parent_of
from fluxion.tree.tree_repr import draw_tree

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "Add",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "BatchMatmul",
    "BatchNorm1d",
    "BatchNorm2d",
    "Cat",
    "Chain",
    "ChainError",
    "ChildAttributeError",
    "ChildIndexError",
    "ChildNotFoundError",
    "Chunk",
    "ClassToken",
    "Concatenate",
    "ContextError",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose2d",
    "Distribute",
    "Dropout",
    "Embedding",
    "FiLM",
    "Flatten",
    "GeLU",
    "Get",
    "Graph",
    "GraphError",
    "GroupNorm",
    "Identity",
    "IndexSelect",
    "Intermediates",
    "Interpolate",
    "Lambda",
    "LayerError",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSigmoid",
    "LogSoftmax",
    "Matmul",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "Mean",
    "Module",
    "MultiHeadAttention",
    "Multiply",
    "Narrow",
    "OptionalInputs",
    "Pack",
    "Pad",
    "PaddingMask",
    "Parallel",
    "Passthrough",
    "Permute",
    "PixelShuffle",
    "PositionEmbedding",
    "RMSNorm",
    "ReLU",
    "Reduce",
    "Reshape",
    "Residual",
    "Return",
    "ScaledDotProductAttention",
    "SelfAttention",
    "SequencePositionEmbedding",
    "SetContext",
    "SiLU",
    "Sigmoid",
    "SinusoidalEmbedding",
    "Slicing",
    "Softmax",
    "Split",
    "Squeeze",
    "Stack",
    "Sum",
    "Tanh",
    "TokenTypeEmbedding",
    "Tokens2d",
    "TorchFunction",
    "Transpose",
    "TreeError",
    "Unbind",
    "Unflatten",
    "Unsqueeze",
    "Upsample",
    "UseContext",
    "VecDot",
    "WeightedModule",
    "address_of",
    "draw_tree",
    "parent_of",
]
