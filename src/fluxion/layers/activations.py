"""Activations and other weightless element-wise leaves, on torch's own layers.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.ReLU()(torch.tensor([-1.0, 2.0])).tolist()
[0.0, 2.0]
"""

import torch
from jaxtyping import Float
from torch import Tensor
from torch.nn import functional

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import ShapeError
from fluxion.layers import checks
from fluxion.tree.module import Module


class Elementwise(Module):
    """A layer whose output has its input's shape: activations, dropout, identity.

    >>> import fluxion.layers as fl
    >>> from fluxion import dims
    >>> fl.ReLU().output_shape(dims.Shape(["B", 8]))
    (B, 8)
    """

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Tanh().output_shape(dims.Shape(["B", "T", 4]))
        (B, T, 4)
        """
        return dims.single(inputs, type(self).__name__)


class Identity(torch.nn.Identity, Elementwise):
    """Returns its input.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Identity()(torch.ones(1)).tolist()
    [1.0]
    """


class Dropout(torch.nn.Dropout, Elementwise):
    """``torch.nn.Dropout`` as a tree leaf (a no-op in eval mode); ``p`` is a probability, from 0 to 1.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Dropout(0.5).eval()(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        checks.probability("Dropout", "p", p)
        super().__init__(p, inplace)

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return functional.dropout(input, self.p, self.training, self.inplace)


class ReLU(torch.nn.ReLU, Elementwise):
    """``max(x, 0)``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.ReLU()(torch.tensor([-1.0])).tolist()
    [0.0]
    """

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return functional.relu(input, inplace=self.inplace)


class GeLU(torch.nn.GELU, Elementwise):
    """Gaussian error linear unit; ``approximate="tanh"`` uses the tanh approximation (``"none"``: exact).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> round(fl.GeLU(approximate="tanh")(torch.tensor([1.0])).item(), 4)
    0.8412
    """

    def __init__(self, approximate: str = "none") -> None:
        checks.one_of("GeLU", "approximate", approximate, ("none", "tanh"))
        super().__init__(approximate)

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return functional.gelu(input, approximate=self.approximate)


class SiLU(torch.nn.SiLU, Elementwise):
    """``x * sigmoid(x)``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.SiLU()(torch.tensor([0.0])).tolist()
    [0.0]
    """

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return functional.silu(input, inplace=self.inplace)


class Sigmoid(torch.nn.Sigmoid, Elementwise):
    """The logistic function.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Sigmoid()(torch.tensor([0.0])).tolist()
    [0.5]
    """

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return torch.sigmoid(input)


class Tanh(torch.nn.Tanh, Elementwise):
    """The hyperbolic tangent.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Tanh()(torch.tensor([0.0])).tolist()
    [0.0]
    """

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return torch.tanh(input)


class _AlongDim(Elementwise):
    """Softmax and LogSoftmax: element-wise in shape, normalized along ``dim``, which the input must have."""

    dim: int | None

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape, which must have a dim ``dim`` (a scalar has dims 0 and -1).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Softmax(dim=1).output_shape(dims.Shape(["B", 10]))
        (B, 10)
        >>> fl.LogSoftmax(dim=2).output_shape(dims.Shape(["B", 10]))
        Traceback (most recent call last):
        ...
        fluxion.errors.ShapeError: LogSoftmax expects an input with a dim 2, got rank 2
        """
        name = type(self).__name__
        shape = dims.single(inputs, name)
        rank = max(len(shape), 1)
        if self.dim is not None and not -rank <= self.dim < rank:
            raise ShapeError(f"{name} expects an input with a dim {self.dim}, got rank {len(shape)}")
        return shape


class Softmax(torch.nn.Softmax, _AlongDim):
    """Softmax along ``dim`` (the last dimension by default).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Softmax()(torch.zeros(1, 2)).tolist()
    [[0.5, 0.5]]
    """

    dim: int | None

    def __init__(self, dim: int = -1) -> None:
        super().__init__(dim=dim)

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return functional.softmax(input, self.dim)


class LogSoftmax(torch.nn.LogSoftmax, _AlongDim):
    """The logarithm of a softmax along ``dim`` (the last dimension by default), computed as one stable step.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> round(fl.LogSoftmax()(torch.zeros(1, 2))[0, 0].item(), 4)
    -0.6931
    """

    dim: int | None

    def __init__(self, dim: int = -1) -> None:
        super().__init__(dim=dim)

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return functional.log_softmax(input, self.dim)


class LogSigmoid(torch.nn.LogSigmoid, Elementwise):
    """``log(sigmoid(x))``, computed stably.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> round(fl.LogSigmoid()(torch.tensor([0.0])).item(), 4)
    -0.6931
    """

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return functional.logsigmoid(input)


class LeakyReLU(torch.nn.LeakyReLU, Elementwise):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.LeakyReLU(0.5)(torch.tensor([-2.0])).tolist()
    [-1.0]
    """

    def forward(self, input: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
        return functional.leaky_relu(input, self.negative_slope, self.inplace)
