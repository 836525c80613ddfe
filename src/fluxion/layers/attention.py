"""Attention: a scaled dot-product leaf, and multi-head (and self-) attention built as Chains.

>>> import torch
>>> import fluxion.layers as fl
>>> attention = fl.MultiHeadAttention(embed_dim=8, num_heads=2)
>>> attention(torch.randn(1, 5, 8)).shape
torch.Size([1, 5, 8])
>>> sorted(name for name, _ in attention.named_modules() if name)
['attention', 'output', 'projections', 'projections.key', 'projections.query', 'projections.value']
"""

from collections.abc import Callable, Mapping
from typing import Any, Self

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from torch.nn import functional

from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks
from fluxion.layers.linear import Linear
from fluxion.layers.shaping import exact_divide
from fluxion.tree.chain import Chain
from fluxion.tree.combinators import Distribute
from fluxion.tree.module import Module


class ScaledDotProductAttention(Module):
    """Attention over already projected queries, keys and values, split into ``num_heads`` heads.

    Inputs are ``(..., sequence, features)``; features are split evenly between the heads and
    merged back afterwards. ``mask`` (boolean, True where attention is allowed, or additive) is
    broadcast to ``(..., heads, queries, keys)``. Runs on
    ``torch.nn.functional.scaled_dot_product_attention``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> q = torch.randn(2, 4, 6)
    >>> fl.ScaledDotProductAttention(num_heads=3, is_causal=True)(q, q, q).shape
    torch.Size([2, 4, 6])
    """

    def __init__(
        self, num_heads: int = 1, is_causal: bool = False, dropout: float = 0.0, scale: float | None = None
    ) -> None:
        super().__init__()
        if num_heads < 1:
            raise LayerError(f"ScaledDotProductAttention: num_heads must be at least 1, got {num_heads}")
        checks.probability("ScaledDotProductAttention", "dropout", dropout)
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.dropout = dropout
        self.scale = scale

    def forward(
        self,
        query: Float[Tensor, "*batch queries dim"],
        key: Float[Tensor, "*batch keys dim"],
        value: Float[Tensor, "*batch keys value_dim"],
        mask: Bool[Tensor, "..."] | Float[Tensor, "..."] | None = None,
    ) -> Float[Tensor, "*batch queries value_dim"]:
        attended = functional.scaled_dot_product_attention(
            self._split_heads(query),
            self._split_heads(key),
            self._split_heads(value),
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.is_causal,
            scale=self.scale,
        )
        return attended.transpose(-3, -2).flatten(-2)

    def _split_heads(
        self, input: Float[Tensor, "*batch sequence dim"]
    ) -> Float[Tensor, "*batch heads sequence head_dim"]:
        return torch.unflatten(input, -1, (self.num_heads, -1)).transpose(-3, -2)

    def output_shape(self, *inputs: ShapeValue, **named: ShapeValue) -> ShapeValue:
        """``(*batch, queries, value_dim)`` from ``query``, ``key``, ``value`` and an optional ``mask``.

        Each of ``query``, ``key`` and ``value`` has rank 2 or more and features that ``num_heads``
        divides; query and key have the same features, key and value the same sequence length, and
        their batch dims broadcast. A mask must broadcast to the attention scores
        ``(*batch, heads, queries, keys)`` without enlarging them.

        Where torch's kernels disagree, the rule takes the stricter side: a mask with
        ``is_causal=True`` is refused, as torch documents (its CPU flash kernel, picked for some
        shapes, applies both instead), and so is a mask of rank below 2 (the CPU kernel selection
        reads its dim -2, so it fails or passes depending on the kernel). With no queries or an
        empty value, torch 2.13 (CPU, every kernel) returns ``(*query_batch, queries, value_dim)``
        at once, without the other checks and without broadcasting the batch dims: so does the rule.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> attention = fl.ScaledDotProductAttention(num_heads=2)
        >>> attention.output_shape(dims.Shape(["B", "T", 8]), dims.Shape(["B", "S", 8]), dims.Shape(["B", "S", 6]))
        (B, T, 6)
        """
        what = type(self).__name__
        query, key, value, mask = _arguments(what, ("query", "key", "value", "mask"), inputs, named)
        query, key, value = (
            _sequence(given, name, what) for given, name in ((query, "query"), (key, "key"), (value, "value"))
        )
        heads = self.num_heads
        for shape, name in ((query, "query"), (key, "key"), (value, "value")):
            exact_divide(shape[-1], heads, f"{what} expects the {name}'s features to be divisible by num_heads={heads}")
        if query[-2] == 0 or 0 in value:  # torch answers at once, checking nothing more
            return Shape([*query[:-2], query[-2], value[-1]])
        dims.require_equal(
            query[-1], key[-1], f"{what} expects the key's features to equal the query's ({dims.show(query[-1])})"
        )
        dims.require_equal(key[-2], value[-2], f"{what} expects as many values as keys ({dims.show(key[-2])})")
        batch = dims.broadcast([Shape(query[:-2]), Shape(key[:-2])], f"{what} (the query's and key's batch dims)")
        if mask is not None:
            if self.is_causal:
                raise ShapeError(f"{what} with is_causal=True expects no mask, got {mask!r}")
            _check_mask(_sequence(mask, "mask", what), Shape([*batch, heads, query[-2], key[-2]]), what)
        batch = dims.broadcast([batch, Shape(value[:-2])], f"{what} (the value's batch dims)")
        return Shape([*batch, query[-2], value[-1]])

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, is_causal={self.is_causal}"


class MultiHeadAttention(Chain):
    """Multi-head attention whose projections are ordinary, reachable leaves.

    Children: ``projections`` (a Distribute of the ``query``, ``key`` and ``value`` Linears),
    ``attention`` (ScaledDotProductAttention) and ``output`` (a Linear). Called with one input it
    is self-attention; ``key`` defaults to ``query`` and ``value`` to ``key``. Replace children to
    change it (their names are fixed); the forward call runs these three by name.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> attention = fl.MultiHeadAttention(embed_dim=4, num_heads=2, key_dim=6)
    >>> attention(torch.randn(1, 3, 4), torch.randn(1, 7, 6)).shape
    torch.Size([1, 3, 4])
    >>> attention["projections.key"].in_features
    6

    ``embed_dim`` may be left out (``MultiHeadAttention(num_heads=8)``): the layer is then lazy,
    with only its ``attention`` child, until ``fluxion.shapes.materialize`` takes ``embed_dim``
    from the query's features (and ``key_dim``, ``value_dim`` from the key's and the value's).

    >>> from fluxion import shapes
    >>> lazy = fl.MultiHeadAttention(num_heads=2)
    >>> lazy.lazy, lazy.missing
    (True, ('embed_dim', 'key_dim', 'value_dim'))
    >>> shapes.materialize(lazy, ("B", "T", 8)).output
    (B, T, 8)
    >>> lazy["projections.query"]
    Linear(in_features=8, out_features=8, bias=True)
    """

    def __init__(
        self,
        embed_dim: int | None = None,
        num_heads: int = 1,
        key_dim: int | None = None,
        value_dim: int | None = None,
        bias: bool = True,
        is_causal: bool = False,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if num_heads < 1:
            raise LayerError(f"MultiHeadAttention: num_heads must be at least 1, got {num_heads}")
        attention = ScaledDotProductAttention(num_heads=num_heads, is_causal=is_causal, dropout=dropout)
        if embed_dim is None:
            super().__init__(attention=attention)
        else:
            if embed_dim % num_heads:
                raise LayerError(
                    f"MultiHeadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
                )
            key_dim = embed_dim if key_dim is None else key_dim
            value_dim = key_dim if value_dim is None else value_dim
            super().__init__(
                projections=Distribute(
                    query=Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype),
                    key=Linear(key_dim, embed_dim, bias=bias, device=device, dtype=dtype),
                    value=Linear(value_dim, embed_dim, bias=bias, device=device, dtype=dtype),
                ),
                attention=attention,
                output=Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype),
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        if embed_dim is None:  # the device (and dtype) in force now, as lazy leaves keep it (torch.device("meta"))
            probe = torch.empty(0, device=device, dtype=dtype)
            device, dtype = probe.device, probe.dtype
        # what a lazy layer builds its projections with once embed_dim is known
        self._building: dict[str, Any] = {
            "bias": bias,
            "is_causal": is_causal,
            "dropout": dropout,
            "device": device,
            "dtype": dtype,
        }

    @property
    def lazy(self) -> bool:
        """Whether ``embed_dim`` is still to be inferred: no projections yet, and a call is refused.

        >>> import fluxion.layers as fl
        >>> fl.MultiHeadAttention(num_heads=2).lazy, fl.MultiHeadAttention(8, num_heads=2).lazy
        (True, False)
        """
        return self.embed_dim is None

    @property
    def missing(self) -> tuple[str, ...]:
        """The arguments still to be inferred.

        >>> import fluxion.layers as fl
        >>> fl.MultiHeadAttention(num_heads=2, key_dim=4).missing
        ('embed_dim', 'value_dim')
        """
        if not self.lazy:
            return ()
        return ("embed_dim", *(name for name in ("key_dim", "value_dim") if getattr(self, name) is None))

    # Chain.forward is declared as ``forward(self, *args: Any)``, so any Chain subclass with a fixed
    # signature is reported as an incompatible override; torch.nn.Module itself avoids this by
    # declaring ``forward: Callable[..., Any]``.
    def forward(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        query: Float[Tensor, "*batch queries embed_dim"],
        key: Float[Tensor, "*batch keys key_dim"] | None = None,
        value: Float[Tensor, "*batch keys value_dim"] | None = None,
        mask: Bool[Tensor, "..."] | Float[Tensor, "..."] | None = None,
    ) -> Float[Tensor, "*batch queries embed_dim"]:
        if self.lazy:
            raise LayerError(
                f"{type(self).__name__}({self.extra_repr()}) has no embed_dim yet: call "
                "fluxion.shapes.materialize(model, *input_shapes) to infer it from the input shapes "
                "and create the projections"
            )
        key = query if key is None else key
        value = key if value is None else value
        projected = self["projections"](query, key, value)
        return self["output"](self["attention"](*projected, mask))

    def output_shape(self, *inputs: ShapeValue, **named: ShapeValue) -> ShapeValue:
        """The shapes of its children in the data flow of ``forward``: ``(*batch, queries, embed_dim)``.

        Takes ``query``, then optionally ``key`` (defaults to ``query``), ``value`` (defaults to
        ``key``) and ``mask``, by position or, at the root of an inference, by name. A lazy layer
        projects to the query's features.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> attention = fl.MultiHeadAttention(embed_dim=8, num_heads=2, key_dim=6)
        >>> report = shapes.infer(attention, ("B", "T", 8), ("B", "S", 6))
        >>> report.output, report["attention"].inputs[:2]
        ((B, T, 8), ((B, T, 8), (B, S, 8)))
        """
        what = type(self).__name__
        query, key, value, mask = _arguments(what, ("query", "key", "value", "mask"), inputs, named)
        if query is None:
            raise ShapeError(f"{what} expects a query, got nothing")
        key = query if key is None else key
        value = key if value is None else value
        if self.lazy:
            embed = _sequence(query, "query", what)[-1]
            projected: ShapeValue = tuple(
                Shape([*_sequence(given, name, what)[:-1], embed])
                for given, name in ((query, "query"), (key, "key"), (value, "value"))
            )
            for given, name in ((key, "key"), (value, "value")):
                size = getattr(self, f"{name}_dim")
                if size is not None:
                    dims.require_equal(size, _sequence(given, name, what)[-1], f"{what} expects {name} features {size}")
            return dims.run(self["attention"], *projected, mask)
        projected = dims.run(self["projections"], query, key, value)
        if not dims.several(projected):
            raise ShapeError(f"{what} expects its projections to give (query, key, value), got {projected!r}")
        return dims.run(self["output"], dims.run(self["attention"], *projected, mask))

    def inferred_arguments(self, *inputs: ShapeValue, **named: ShapeValue) -> dict[str, Dim]:
        """``embed_dim`` (the query's features) and the missing ``key_dim``, ``value_dim``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.MultiHeadAttention(num_heads=2).inferred_arguments(dims.Shape(["B", "T", 8]), dims.Shape(["B", "S", 4]))
        {'embed_dim': 8, 'key_dim': 4, 'value_dim': 4}
        """
        what = type(self).__name__
        query, key, value, _ = _arguments(what, ("query", "key", "value", "mask"), inputs, named)
        query = _sequence(query, "query", what)
        key = query if key is None else _sequence(key, "key", what)
        value = key if value is None else _sequence(value, "value", what)
        found = {"embed_dim": query[-1], "key_dim": key[-1], "value_dim": value[-1]}
        return {name: found[name] for name in self.missing}

    def materialized(self, **arguments: int) -> Self:
        """A detached, complete twin of this lazy layer with ``arguments`` filled in.

        >>> import fluxion.layers as fl
        >>> twin = fl.MultiHeadAttention(num_heads=2).materialized(embed_dim=4, key_dim=4, value_dim=6)
        >>> twin.embed_dim, twin["projections.value"]
        (4, Linear(in_features=6, out_features=4, bias=True))
        """
        name = type(self).__name__
        if set(arguments) != set(self.missing) or not self.missing:
            expected = ", ".join(self.missing) or "nothing (it is not lazy)"
            raise LayerError(f"{name} expects exactly {expected}, got {', '.join(arguments) or 'none'}")
        given = {"key_dim": self.key_dim, "value_dim": self.value_dim, **arguments}
        return type(self)(num_heads=self.num_heads, **given, **self._building)

    def adopt(self, twin: Self) -> None:
        """Become ``twin``, a ``materialized`` copy: take its projections and output layer.

        >>> import fluxion.layers as fl
        >>> lazy = fl.MultiHeadAttention(num_heads=1)
        >>> lazy.adopt(lazy.materialized(embed_dim=2, key_dim=2, value_dim=2))
        >>> [name for name, _ in lazy.named_children()]
        ['projections', 'attention', 'output']
        """
        if not self.lazy or twin.lazy or type(twin) is not type(self):
            raise LayerError(f"{type(self).__name__}.adopt expects a materialized twin of a lazy layer")
        missing = self.missing
        projections, output = twin["projections"], twin["output"]
        del twin["projections"], twin["output"]
        self.insert(0, projections, name="projections")
        self.append(output, name="output")
        self.embed_dim, self.key_dim, self.value_dim = twin.embed_dim, twin.key_dim, twin.value_dim
        self.__dict__["_fluxion_inferred"] = {name: getattr(twin, name) for name in missing}  # for spec.dump

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Self:
        # .to(), .half()...: a lazy layer follows them for the projections it will build
        if self.lazy:
            moved = fn(torch.empty(0, device=self._building["device"], dtype=self._building["dtype"]))
            self._building = {**self._building, "device": moved.device, "dtype": moved.dtype}
        return super()._apply(fn, recurse)  # pyright: ignore[reportUnknownMemberType]  # torch leaves fn untyped

    def extra_repr(self) -> str:
        embed = "?" if self.embed_dim is None else self.embed_dim
        return f"embed_dim={embed}, num_heads={self.num_heads}"


class SelfAttention(MultiHeadAttention):
    """Multi-head attention of a sequence to itself, with an optional mask as its second input.

    ``SelfAttention(embed_dim, num_heads)(x, mask)`` is ``MultiHeadAttention(...)(x, x, x, mask)``,
    with the same children (so the same checkpoint keys): the form to use in a ``Graph``, where a
    node takes its arguments by position, so that the mask (a ``UseContext``, or an input) is the
    second edge into it. Key and value features are the embedding's; ``embed_dim`` may be left
    out, to be inferred.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> attention = fl.SelfAttention(embed_dim=8, num_heads=2)
    >>> padding = torch.tensor([[True, True, False]])  # the third token is padding
    >>> attention(torch.randn(1, 3, 8), padding[:, None, None, :]).shape
    torch.Size([1, 3, 8])
    """

    def __init__(
        self,
        embed_dim: int | None = None,
        num_heads: int = 1,
        bias: bool = True,
        is_causal: bool = False,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            embed_dim, num_heads, bias=bias, is_causal=is_causal, dropout=dropout, device=device, dtype=dtype
        )

    @property
    def missing(self) -> tuple[str, ...]:
        """``("embed_dim",)`` while lazy: key and value features are the embedding's.

        >>> import fluxion.layers as fl
        >>> fl.SelfAttention(num_heads=2).missing
        ('embed_dim',)
        """
        return ("embed_dim",) if self.lazy else ()

    def forward(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        input: Float[Tensor, "*batch sequence embed_dim"],
        mask: Bool[Tensor, "..."] | Float[Tensor, "..."] | None = None,
    ) -> Float[Tensor, "*batch sequence embed_dim"]:
        return super().forward(input, input, input, mask)

    def output_shape(self, *inputs: ShapeValue, **named: ShapeValue) -> ShapeValue:
        """``(*batch, sequence, embed_dim)``, from ``input`` and an optional ``mask``.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.SelfAttention(8, num_heads=2), ("B", "T", 8), ("B", 1, 1, "T")).output
        (B, T, 8)
        """
        what = type(self).__name__
        value, mask = _arguments(what, ("input", "mask"), inputs, named)
        if value is None:
            raise ShapeError(f"{what} expects an input (..., sequence, features), got nothing")
        return super().output_shape(value, value, value, mask)

    def inferred_arguments(self, *inputs: ShapeValue, **named: ShapeValue) -> dict[str, Dim]:
        """``embed_dim``: the input's features.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.SelfAttention(num_heads=2).inferred_arguments(dims.Shape(["B", "T", 8]))
        {'embed_dim': 8}
        """
        value, _ = _arguments(type(self).__name__, ("input", "mask"), inputs, named)
        return {"embed_dim": _sequence(value, "input", type(self).__name__)[-1]} if self.lazy else {}

    def materialized(self, **arguments: int) -> Self:
        """A detached, complete twin of this lazy layer with ``embed_dim`` filled in.

        >>> import fluxion.layers as fl
        >>> fl.SelfAttention(num_heads=2).materialized(embed_dim=4)["projections.key"]
        Linear(in_features=4, out_features=4, bias=True)
        """
        if set(arguments) != set(self.missing) or not self.missing:
            expected = ", ".join(self.missing) or "nothing (it is not lazy)"
            raise LayerError(f"{type(self).__name__} expects exactly {expected}, got {', '.join(arguments) or 'none'}")
        return type(self)(num_heads=self.num_heads, **arguments, **self._building)


def _arguments(
    what: str, names: tuple[str, ...], inputs: tuple[ShapeValue, ...], named: Mapping[str, ShapeValue]
) -> list[ShapeValue]:
    """The inputs of a rule in the order of ``names``, given by position and then by name (None when absent)."""
    if len(inputs) > len(names):
        raise ShapeError(f"{what} expects at most {len(names)} inputs ({', '.join(names)}), got {len(inputs)}")
    values: list[ShapeValue] = [*inputs, *[None] * (len(names) - len(inputs))]
    for name, value in named.items():
        if name not in names:
            raise ShapeError(f"{what} expects inputs named {', '.join(names)}, got {name!r}")
        position = names.index(name)
        if position < len(inputs):
            raise ShapeError(f"{what} got {name!r} both by position and by name")
        values[position] = value
    return values


def _sequence(value: ShapeValue, name: str, what: str) -> Shape:
    """One tensor's shape of rank 2 or more: ``(..., sequence, features)``."""
    if not isinstance(value, Shape) or len(value) < 2:
        shown = "nothing" if value is None else repr(value)
        raise ShapeError(f"{what} expects a {name} of rank 2 or more (..., sequence, features), got {shown}")
    return value


def _check_mask(mask: Shape, scores: Shape, what: str) -> None:
    """The mask is added in place to the scores: it broadcasts to their shape and does not enlarge it.

    Each of its sizes is 1 or the scores' size. Where it never is the scores' size, it must be 1;
    where both may hold, the equality is recorded (as ``dims.broadcast`` does).
    """
    expected = f"{what} expects a mask that broadcasts to the scores {scores!r} (..., heads, queries, keys)"
    if len(mask) > len(scores):
        raise ShapeError(f"{expected}, got {mask!r}")
    for position in range(-len(mask), 0):
        size, target = mask[position], scores[position]
        if size == 1:
            continue
        same = dims.equal(target, size)
        if same is False:
            dims.require_equal(1, size, f"{expected} (at dim {position}, size 1 or {dims.show(target)})")
        elif same is None:
            dims.require_equal(target, size, f"{expected} (at dim {position})")
