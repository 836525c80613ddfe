"""Recurrent leaves on torch's own layers: ``LSTM``, ``GRU`` and ``RNN`` (torch's state_dict keys).

They return what torch returns, ``(output, (h_n, c_n))`` for an LSTM and ``(output, h_n)`` for the
others; ``return_state=False`` makes them return the output sequence alone, which is what the next
layer of a Chain usually wants. ``input_size`` may be left out, to be inferred from the input.

>>> import torch
>>> import fluxion.layers as fl
>>> model = fl.Chain(fl.LSTM(4, 8, batch_first=True, return_state=False), fl.Linear(8, 2))
>>> model(torch.zeros(3, 5, 4)).shape
torch.Size([3, 5, 2])
"""

from collections.abc import Mapping
from typing import Any, Literal, Self, cast

import torch
from jaxtyping import Float
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.errors import ShapeError
from fluxion.layers.lazy import Inferable, required
from fluxion.tree.module import WeightedModule

Nonlinearity = Literal["tanh", "relu"]


class _Recurrent(Inferable):
    """What LSTM, GRU and RNN share beyond their typed constructors: construction, ``return_state``,
    the shape rule and the inference of ``input_size``."""

    return_state: bool = True
    """Whether ``forward`` returns the final states with the output sequence, as torch does."""

    def _setup(self, layout: type[torch.nn.RNNBase], given: Mapping[str, Any]) -> None:
        """Construct as torch's ``layout`` from the arguments of a typed constructor, ``given`` as its
        ``locals()``: all of them are torch's but ``device``, ``dtype`` and ``return_state``."""
        name = type(self).__name__
        arguments = {
            key: value for key, value in given.items() if key not in ("self", "device", "dtype", "return_state")
        }
        arguments["hidden_size"] = required(arguments["hidden_size"], name, "hidden_size", f"{name}(hidden_size=64)")
        self.construct(layout, arguments, {"input_size": 1}, given["device"], given["dtype"])
        self.return_state = given["return_state"]
        if self.deferred is not None:
            _refresh_weights(self)  # torch's list still holds the stand-ins built while waiting for input_size

    def forward(self, input: Float[Tensor, "..."] | PackedSequence, hx: Any = None) -> Any:  # output[, states]
        output, state = cast(tuple[Tensor, Any], super().forward(input, hx))  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
        return (output, state) if self.return_state else output

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """torch's shapes: the input ``(L, N, H_in)`` (``(N, L, H_in)`` when ``batch_first``, ``(L, H_in)``
        unbatched) gives the output ``(L, N, D*H_out)`` and states ``(D*num_layers, N, H)``, where ``D`` is
        2 when bidirectional and ``H_out`` is ``proj_size`` when set; an initial state, if given, is checked.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.LSTM(8, 16, num_layers=2).output_shape(dims.Shape(["T", "B", 8]))
        ((T, B, 16), ((2, B, 16), (2, B, 16)))
        >>> gru = fl.GRU(8, 16, batch_first=True, bidirectional=True, return_state=False)
        >>> gru.output_shape(dims.Shape(["B", "T", 8]))
        (B, T, 32)
        """
        layer = cast(torch.nn.RNNBase, self)
        name = type(self).__name__
        if not 1 <= len(inputs) <= 2:
            raise ShapeError(f"{name} takes an input and optionally its initial state, got {len(inputs)} values")
        shape = inputs[0]
        if not isinstance(shape, dims.Shape):
            raise ShapeError(f"{name} expects a tensor as its input, got {shape!r}")
        if len(shape) not in (2, 3):
            raise ShapeError(f"{name} expects a 2D (unbatched) or 3D (batched) input, got {shape!r}")
        if layer.input_size is not None:  # pyright: ignore[reportUnnecessaryComparison]  # None while lazy
            dims.require_equal(layer.input_size, shape[-1], f"{name} expects input_size {layer.input_size} as last dim")
        elif shape[-1] == 0:  # the layer it would become has no inputs: torch refuses to build it
            raise ShapeError(f"{name} expects at least 1 feature as last dim, got {shape!r}")
        batch: list[Dim] = []
        if len(shape) == 2:
            length = shape[0]
        elif layer.batch_first:
            batch, length = [shape[0]], shape[1]
        else:
            length, batch = shape[0], [shape[1]]
        if isinstance(length, int) and length == 0:
            raise ShapeError(f"{name} expects a sequence of one step or more, got {shape!r}")
        directions = 2 if layer.bidirectional else 1
        features = layer.proj_size or layer.hidden_size
        sequence = [*batch, length] if layer.batch_first else [length, *batch]
        output = dims.Shape([*sequence, directions * features])

        def state(size: int) -> dims.Shape:
            return dims.Shape([directions * layer.num_layers, *batch, size])

        states: ShapeValue = (
            (state(features), state(layer.hidden_size)) if isinstance(self, LSTM) else state(layer.hidden_size)
        )
        if len(inputs) == 2 and inputs[1] is not None:
            _check_state(name, inputs[1], states)
        return (output, states) if self.return_state else output

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Dim]:
        """``input_size``: the input's last dim.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.GRU(hidden_size=4).inferred_arguments(dims.Shape(["T", "B", 6]))
        {'input_size': 6}
        """
        name = type(self).__name__
        if not inputs or not isinstance(inputs[0], dims.Shape):
            raise ShapeError(f"{name} expects a tensor as its input, got {inputs!r}")
        return {"input_size": inputs[0].at(-1, name)}

    def materialized(self, **arguments: int) -> Self:
        """A detached twin with ``input_size`` filled in and its weights created (see ``Inferable``).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> twin = fl.LSTM(hidden_size=3).materialized(input_size=2)
        >>> twin(torch.zeros(4, 2))[0].shape
        torch.Size([4, 3])
        """
        twin = super().materialized(**arguments)
        _refresh_weights(twin)
        return twin

    def adopt(self, twin: Self) -> None:  # pyright: ignore[reportIncompatibleMethodOverride]  # reads Self as Inferable
        """Become ``twin``, a ``materialized`` copy of this layer (see ``Inferable``).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> rnn = fl.RNN(hidden_size=3, return_state=False)
        >>> rnn.adopt(rnn.materialized(input_size=2))
        >>> rnn(torch.zeros(4, 1, 2)).shape
        torch.Size([4, 1, 3])
        """
        super().adopt(twin)
        _refresh_weights(self)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.return_state else f"{text}, return_state=False"


def _refresh_weights(layer: _Recurrent) -> None:
    """torch runs on a list of the weights kept beside ``_parameters``: rebuild it after they changed."""
    cast(torch.nn.RNNBase, layer)._init_flat_weights()  # pyright: ignore[reportPrivateUsage]


def _check_state(name: str, given: ShapeValue, expected: ShapeValue) -> None:
    """torch's check of an initial state against the states the layer returns (the same shapes)."""
    if isinstance(expected, dims.Shape):
        if not isinstance(given, dims.Shape) or len(given) != len(expected):
            raise ShapeError(f"{name} expects an initial state of shape {expected!r}, got {given!r}")
        for size, wanted in zip(given, expected, strict=True):
            dims.require_equal(wanted, size, f"{name} expects an initial state of shape {expected!r}")
        return
    pair = cast(tuple[ShapeValue, ...], expected)
    if not isinstance(given, tuple) or isinstance(given, dims.Shape) or len(given) != len(pair):
        raise ShapeError(f"{name} expects an initial state (h_0, c_0) of shapes {pair!r}, got {given!r}")
    for part, wanted in zip(given, pair, strict=True):
        _check_state(name, part, wanted)


class LSTM(_Recurrent, torch.nn.LSTM, WeightedModule):
    """``torch.nn.LSTM`` as a tree leaf: returns ``(output, (h_n, c_n))``, or ``output`` alone with
    ``return_state=False``.

    ``input_size`` may be left out (``LSTM(hidden_size=64)``): the layer is lazy until
    ``fluxion.shapes.materialize`` takes it from the input shapes.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> output, (h, c) = fl.LSTM(4, 8, num_layers=2)(torch.zeros(5, 3, 4))
    >>> output.shape, h.shape, c.shape
    (torch.Size([5, 3, 8]), torch.Size([2, 3, 8]), torch.Size([2, 3, 8]))
    >>> fl.LSTM(hidden_size=8, proj_size=4, return_state=False)
    LSTM(?, 8, proj_size=4, return_state=False)
    """

    input_size: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy

    def __init__(
        self,
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        return_state: bool = True,
    ) -> None:
        self._setup(torch.nn.LSTM, locals())


class GRU(_Recurrent, torch.nn.GRU, WeightedModule):
    """``torch.nn.GRU`` as a tree leaf: returns ``(output, h_n)``, or ``output`` alone with
    ``return_state=False``; ``input_size`` may be left out, as for ``LSTM``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> output, h = fl.GRU(4, 8, batch_first=True, bidirectional=True)(torch.zeros(3, 5, 4))
    >>> output.shape, h.shape
    (torch.Size([3, 5, 16]), torch.Size([2, 3, 8]))
    """

    input_size: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy

    def __init__(
        self,
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        return_state: bool = True,
    ) -> None:
        self._setup(torch.nn.GRU, locals())


class RNN(_Recurrent, torch.nn.RNN, WeightedModule):
    """``torch.nn.RNN`` (Elman, ``tanh`` or ``relu``) as a tree leaf: returns ``(output, h_n)``, or
    ``output`` alone with ``return_state=False``; ``input_size`` may be left out, as for ``LSTM``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.RNN(4, 8, nonlinearity="relu", return_state=False)(torch.zeros(5, 4)).shape
    torch.Size([5, 8])
    """

    input_size: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy

    def __init__(
        self,
        input_size: int | None = None,
        hidden_size: int | None = None,
        num_layers: int = 1,
        nonlinearity: Nonlinearity = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        return_state: bool = True,
    ) -> None:
        self._setup(torch.nn.RNN, locals())
