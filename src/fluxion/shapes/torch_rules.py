"""Shape rules for ``torch.nn`` classes that fluxion has no layer of, registered at import.

A plain torch module in a tree (a TorchArc file's ``MultiheadAttention``, a ``torch.nn.GELU`` a
user put in a Chain) has no ``output_shape`` method; these rules (``register_rule``) give it one,
exact as torch computes: symbolic sizes pass, and an input the forward would refuse is a
``ShapeError`` saying what was expected. Covered: every element-wise activation and dropout,
``Identity``, ``Softmax``/``Softmin``/``LogSoftmax`` (torch's implicit dim included), ``Softmax2d``,
``GLU``, ``PReLU``, ``Dropout1d/2d/3d``, ``Flatten``, ``Unflatten``, ``Embedding``, ``Linear``,
``LayerNorm``, ``RMSNorm`` (these four as fluxion's layers of the same name), ``Sequential``, ``RNN``,
``LSTM``, ``GRU``, ``MultiheadAttention``, ``Transformer`` and its encoder and decoder (layers
too). A container's rule runs its children's (``dims.run``), so the report shows them.
``fluxion.shapes.infer`` registers them when it is imported.

>>> import torch
>>> from fluxion import shapes
>>> attention = torch.nn.MultiheadAttention(16, 4, batch_first=True)
>>> shapes.infer(attention, ("B", "T", 16), ("B", "S", 16), ("B", "S", 16)).output
((B, T, 16), (B, T, S))
"""

from __future__ import annotations

from typing import Any, cast

import torch

import fluxion.layers as fl
from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue
from fluxion.errors import ShapeError
from fluxion.shapes.rules import register_rule
from fluxion.tree import node_class

nn = torch.nn

ELEMENTWISE: tuple[type[torch.nn.Module], ...] = (
    nn.CELU,
    nn.ELU,
    nn.GELU,
    nn.Hardshrink,
    nn.Hardsigmoid,
    nn.Hardswish,
    nn.Hardtanh,
    nn.LeakyReLU,
    nn.LogSigmoid,
    nn.Mish,
    nn.ReLU,
    nn.ReLU6,
    nn.RReLU,
    nn.SELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Softplus,
    nn.Softshrink,
    nn.Softsign,
    nn.Tanh,
    nn.Tanhshrink,
    nn.Threshold,
    nn.Identity,
    nn.Dropout,
    nn.AlphaDropout,
)
"""torch's classes whose output has the shape of their one input, whatever its rank."""


def _name(module: torch.nn.Module) -> str:
    return node_class(module).__name__


def _tensor(value: ShapeValue, what: str) -> Shape:
    if not isinstance(value, Shape):
        raise ShapeError(f"{what} is a tensor, got {value!r}")
    return value


def _axis(dim: int, rank: int, what: str) -> int:
    size = max(rank, 1)  # a scalar has dims 0 and -1, as torch's functions say
    if not -size <= dim < size:
        raise ShapeError(f"{what} expects an input with a dim {dim}, got rank {rank}")
    return dim % size


def elementwise(module: torch.nn.Module, *inputs: ShapeValue) -> ShapeValue:
    """The input's shape: activations, dropout, identity.

    >>> import torch
    >>> from fluxion import dims
    >>> elementwise(torch.nn.GELU(), dims.Shape(["B", "T", 8]))
    (B, T, 8)
    """
    return dims.single(inputs, _name(module))


def along_dim(module: torch.nn.Softmax | torch.nn.Softmin | torch.nn.LogSoftmax, *inputs: ShapeValue) -> ShapeValue:
    """The input's shape, which must have a dim ``dim``; without one torch picks dim 0 for ranks 0, 1
    and 3 and dim 1 otherwise (deprecated, and shape-preserving either way).

    >>> import torch
    >>> from fluxion import dims
    >>> along_dim(torch.nn.Softmax(dim=-1), dims.Shape(["B", 10]))
    (B, 10)
    >>> along_dim(torch.nn.LogSoftmax(dim=2), dims.Shape(["B", 10]))
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: LogSoftmax expects an input with a dim 2, got rank 2
    """
    shape = dims.single(inputs, _name(module))
    if module.dim is not None:
        _axis(module.dim, len(shape), _name(module))
    return shape


def softmax2d(module: torch.nn.Softmax2d, *inputs: ShapeValue) -> ShapeValue:
    """The input's shape, ``(C, H, W)`` or ``(N, C, H, W)``.

    >>> import torch
    >>> from fluxion import dims
    >>> softmax2d(torch.nn.Softmax2d(), dims.Shape(["B", 3, "H", "W"]))
    (B, 3, H, W)
    """
    shape = dims.single(inputs, _name(module))
    if len(shape) not in (3, 4):
        raise ShapeError(f"Softmax2d expects a 3D or 4D input, got {shape!r}")
    return shape


def glu(module: torch.nn.GLU, *inputs: ShapeValue) -> ShapeValue:
    """The input's shape with dim ``dim`` halved; that size must be even.

    >>> import torch
    >>> from fluxion import dims, shapes
    >>> glu(torch.nn.GLU(), dims.Shape(["B", 8]))
    (B, 4)
    >>> shapes.infer(torch.nn.GLU(), ("B", "F")).constraints[0].reason
    'GLU halves dim -1, which must be even'
    """
    name = _name(module)
    shape = dims.single(inputs, name)
    if not shape:
        raise ShapeError(f"{name} expects an input with a dim {module.dim} to halve, got a scalar")
    axis = _axis(module.dim, len(shape), name)
    size = shape[axis]
    if isinstance(size, int) and size % 2:
        raise ShapeError(f"{name} halves dim {module.dim}, which must be even, got {size}")
    dims.require_equal(2 * dims.floordiv(size, 2), size, f"{name} halves dim {module.dim}, which must be even")
    return Shape([*shape[:axis], dims.floordiv(size, 2), *shape[axis + 1 :]])


def prelu(module: torch.nn.PReLU, *inputs: ShapeValue) -> ShapeValue:
    """The input's shape; with more than one parameter, dim 1 is the channels, one parameter each.

    >>> import torch
    >>> from fluxion import dims
    >>> prelu(torch.nn.PReLU(3), dims.Shape(["B", 3, "H"]))
    (B, 3, H)
    """
    name = _name(module)
    shape = dims.single(inputs, name)
    if module.num_parameters != 1:
        channels = shape[1] if len(shape) >= 2 else 1
        dims.require_equal(module.num_parameters, channels, f"{name} expects {module.num_parameters} channels at dim 1")
    return shape


def feature_dropout(module: torch.nn.Module, *inputs: ShapeValue) -> ShapeValue:
    """The input's shape. ``Dropout1d`` takes ``(C, L)`` or ``(N, C, L)``; ``Dropout2d`` and
    ``FeatureAlphaDropout`` in training mode need a channel dim (rank 2 or more), ``Dropout3d`` rank
    1 or more; torch warns of ranks it does not expect but runs them.

    >>> import torch
    >>> from fluxion import dims
    >>> feature_dropout(torch.nn.Dropout2d(), dims.Shape(["B", 3, "H", "W"]))
    (B, 3, H, W)
    >>> feature_dropout(torch.nn.Dropout1d(), dims.Shape(["B", 3, 4, 5]))
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Dropout1d expects a 2D or 3D input, got (B, 3, 4, 5)
    """
    name = _name(module)
    shape = dims.single(inputs, name)
    if isinstance(module, nn.Dropout1d):
        if len(shape) not in (2, 3):
            raise ShapeError(f"{name} expects a 2D or 3D input, got {shape!r}")
    elif module.training:
        least = 1 if isinstance(module, nn.Dropout3d) else 2
        if len(shape) < least:
            raise ShapeError(f"{name} expects an input of rank {least} or more while training, got {shape!r}")
    return shape


def flatten(module: torch.nn.Flatten, *inputs: ShapeValue) -> ShapeValue:
    """fluxion's ``Flatten`` rule (the same arguments, the same forward).

    >>> import torch
    >>> from fluxion import dims
    >>> flatten(torch.nn.Flatten(), dims.Shape(["B", 3, "H"]))
    (B, 3*H)
    """
    return fl.Flatten.output_shape(cast(Any, module), *inputs)


def unflatten(module: torch.nn.Unflatten, *inputs: ShapeValue) -> ShapeValue:
    """fluxion's ``Unflatten`` rule (the same arguments, the same forward).

    >>> import torch
    >>> from fluxion import dims
    >>> unflatten(torch.nn.Unflatten(1, (2, -1)), dims.Shape(["B", 12]))
    (B, 2, 6)
    """
    return fl.Unflatten.output_shape(cast(Any, module), *inputs)


def embedding(module: torch.nn.Embedding, *inputs: ShapeValue) -> ShapeValue:
    """fluxion's ``Embedding`` rule: indices of any shape to ``(*shape, embedding_dim)``.

    >>> import torch
    >>> from fluxion import dims
    >>> embedding(torch.nn.Embedding(10, 4), dims.Shape(["B", "T"]))
    (B, T, 4)
    """
    return fl.Embedding.output_shape(cast(Any, module), *inputs)


def linear(module: torch.nn.Linear, *inputs: ShapeValue) -> ShapeValue:
    """fluxion's ``Linear`` rule: ``(*batch, in_features)`` to ``(*batch, out_features)``.

    >>> import torch
    >>> from fluxion import dims
    >>> linear(torch.nn.Linear(4, 2), dims.Shape(["B", 4]))
    (B, 2)
    """
    return fl.Linear.output_shape(cast(Any, module), *inputs)


def last_dims_norm(module: torch.nn.LayerNorm | torch.nn.RMSNorm, *inputs: ShapeValue) -> ShapeValue:
    """fluxion's ``LayerNorm`` and ``RMSNorm`` rule: the input's shape, ending in ``normalized_shape``.

    >>> import torch
    >>> from fluxion import dims
    >>> last_dims_norm(torch.nn.LayerNorm(8), dims.Shape(["B", "T", 8]))
    (B, T, 8)
    """
    return fl.LayerNorm.output_shape(cast(Any, module), *inputs)


def sequential(module: torch.nn.Sequential, *inputs: ShapeValue) -> ShapeValue:
    """Each child's rule in turn, its output the next one's one input, as torch's ``forward`` runs them.

    >>> import torch
    >>> from fluxion import shapes
    >>> shapes.infer(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU()), ("B", 4)).output
    (B, 8)
    """
    if len(inputs) != 1:
        raise ShapeError(f"{_name(module)} takes one input, got {len(inputs)} values")
    output = inputs[0]
    for child in module:
        output = dims.run(child, output)
    return output


def recurrent(module: torch.nn.RNNBase, *inputs: ShapeValue) -> ShapeValue:
    """torch's ``(output, state)``: the input ``(L, N, H_in)`` (``(N, L, H_in)`` when ``batch_first``,
    ``(L, H_in)`` unbatched) gives the output ``(L, N, D*H_out)`` and the state ``(D*num_layers, N, H)``
    (a pair ``(h, c)`` for an LSTM, ``h`` of ``proj_size`` when set), ``D`` 2 when bidirectional; an
    initial state, when given, must have the state's shapes.

    >>> import torch
    >>> from fluxion import dims
    >>> recurrent(torch.nn.LSTM(8, 16, num_layers=2, batch_first=True), dims.Shape(["B", "T", 8]))
    ((B, T, 16), ((2, B, 16), (2, B, 16)))
    >>> recurrent(torch.nn.GRU(8, 16, bidirectional=True), dims.Shape(["T", 8]))
    ((T, 32), (2, 16))
    """
    name = _name(module)
    if not 1 <= len(inputs) <= 2:
        raise ShapeError(f"{name} takes an input and optionally its initial state, got {len(inputs)} values")
    shape = _tensor(inputs[0], f"{name}'s input")
    if len(shape) not in (2, 3):
        raise ShapeError(f"{name} expects a 2D (unbatched) or 3D (batched) input, got {shape!r}")
    dims.require_equal(module.input_size, shape[-1], f"{name} expects input_size {module.input_size} as last dim")
    batch: list[Dim] = []
    if len(shape) == 2:
        length = shape[0]
    elif module.batch_first:
        batch, length = [shape[0]], shape[1]
    else:
        length, batch = shape[0], [shape[1]]
    directions = 2 if module.bidirectional else 1
    features = module.proj_size or module.hidden_size
    sequence = [*batch, length] if module.batch_first else [length, *batch]
    output = Shape([*sequence, directions * features])

    def state(size: int) -> Shape:
        return Shape([directions * module.num_layers, *batch, size])

    states: ShapeValue = (
        (state(features), state(module.hidden_size)) if isinstance(module, nn.LSTM) else state(module.hidden_size)
    )
    if len(inputs) == 2 and inputs[1] is not None:
        _check_state(name, inputs[1], states)
    return output, states


def _check_state(name: str, given: ShapeValue, expected: ShapeValue) -> None:
    if isinstance(expected, Shape):
        if not isinstance(given, Shape) or len(given) != len(expected):
            raise ShapeError(f"{name} expects an initial state of shape {expected!r}, got {given!r}")
        for size, wanted in zip(given, expected, strict=True):
            dims.require_equal(wanted, size, f"{name} expects an initial state of shape {expected!r}")
        return
    pair = cast(tuple[ShapeValue, ...], expected)
    if not dims.several(given) or len(given) != len(pair):
        raise ShapeError(f"{name} expects an initial state (h_0, c_0) of shapes {pair!r}, got {given!r}")
    for part, wanted in zip(given, pair, strict=True):
        _check_state(name, part, wanted)


# -- attention --------------------------------------------------------------------------------------


def _attention(
    attention: torch.nn.MultiheadAttention,
    query: ShapeValue,
    key: ShapeValue,
    value: ShapeValue,
    key_padding_mask: ShapeValue = None,
    attn_mask: ShapeValue = None,
    what: str = "MultiheadAttention",
) -> tuple[Shape, Shape]:
    """torch's checks of an attention call; the output's shape and the averaged weights'."""
    q = _tensor(query, f"{what}'s query")
    k = _tensor(key, f"{what}'s key")
    v = _tensor(value, f"{what}'s value")
    if len(q) not in (2, 3):
        raise ShapeError(f"{what} expects a 2D (unbatched) or 3D (batched) query, got {q!r}")
    batched = len(q) == 3
    for label, shape in (("key", k), ("value", v)):
        if len(shape) != len(q):
            raise ShapeError(f"{what} expects a {len(q)}D {label}, as the query is, got {shape!r}")
    if batched and attention.batch_first:
        q, k, v = (Shape([shape[1], shape[0], shape[2]]) for shape in (q, k, v))
    # now (L, N, E) or (L, E): sequence first
    # torch's attributes are untyped: read them as the ints they are
    embed, kdim, vdim, heads = (int(getattr(attention, name)) for name in ("embed_dim", "kdim", "vdim", "num_heads"))
    dims.require_equal(embed, q[-1], f"{what} expects embed_dim {embed} as the query's last dim")
    dims.require_equal(kdim, k[-1], f"{what} expects kdim {kdim} as the key's last dim")
    dims.require_equal(vdim, v[-1], f"{what} expects vdim {vdim} as the value's last dim")
    for position in range(len(q) - 1):
        dims.require_equal(k[position], v[position], f"{what} expects the value's sizes as the key's, {k!r}")
    length, source = q[0], k[0]
    batch: list[Dim] = []
    if batched:
        batch = [q[1]]
        dims.require_equal(q[1], k[1], f"{what} expects the key's batch as the query's, {q[1]}")
    if key_padding_mask is not None:
        mask = _tensor(key_padding_mask, f"{what}'s key_padding_mask")
        wanted = Shape([*batch, source])
        _require_shape(mask, wanted, f"{what} expects a key_padding_mask of shape {wanted!r}")
    if attn_mask is not None:
        mask = _tensor(attn_mask, f"{what}'s attn_mask")
        copies: Dim = heads * batch[0] if batch else heads
        if len(mask) == 2:
            _require_shape(mask, Shape([length, source]), f"{what} expects a 2D attn_mask of shape {(length, source)}")
        elif len(mask) == 3:
            wanted = Shape([copies, length, source])
            _require_shape(mask, wanted, f"{what} expects a 3D attn_mask of shape {wanted!r}")
        else:
            raise ShapeError(f"{what} expects a 2D or 3D attn_mask, got {mask!r}")
    extra = int(attention.bias_k is not None) + int(attention.add_zero_attn)
    weights = Shape([*batch, length, dims.normal(source + extra) if extra else source])
    output = [length, *batch, embed]
    if batched and attention.batch_first:
        output = [batch[0], length, embed]
    return Shape(output), weights


def _require_shape(got: Shape, wanted: Shape, what: str) -> None:
    if len(got) != len(wanted):
        raise ShapeError(f"{what}, got {got!r}")
    for size, expected in zip(got, wanted, strict=True):
        dims.require_equal(expected, size, what)


def multihead_attention(
    module: torch.nn.MultiheadAttention,
    query: ShapeValue,
    key: ShapeValue,
    value: ShapeValue,
    key_padding_mask: ShapeValue = None,
    need_weights: ShapeValue = None,
    attn_mask: ShapeValue = None,
    *flags: ShapeValue,
) -> ShapeValue:
    """``(output, weights)`` as torch returns them by default (``need_weights=True``, weights averaged
    over the heads): a query ``(L, N, E)`` (``(N, L, E)`` when ``batch_first``, ``(L, E)`` unbatched)
    and a key and value of ``S`` steps give ``(L, N, E)`` and ``(N, L, S)``; an added bias or zero
    step (``add_bias_kv``, ``add_zero_attn``) lengthens ``S``. The flags (``need_weights``,
    ``average_attn_weights``, ``is_causal``) are not tensors: inference takes their defaults.

    >>> import torch
    >>> from fluxion import dims
    >>> attention = torch.nn.MultiheadAttention(8, 2, kdim=4, vdim=6)
    >>> multihead_attention(attention, dims.Shape(["T", "B", 8]), dims.Shape(["S", "B", 4]), dims.Shape(["S", "B", 6]))
    ((T, B, 8), (B, T, S))
    >>> multihead_attention(attention, dims.Shape(["T", "B", 8]), dims.Shape(["S", "B", 8]), dims.Shape(["S", "B", 6]))
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: MultiheadAttention expects kdim 4 as the key's last dim, got 8
    """
    if need_weights is not None or any(flag is not None for flag in flags):
        raise ShapeError(
            "MultiheadAttention's need_weights, average_attn_weights and is_causal are flags, not tensors: "
            "shape inference takes their defaults"
        )
    return _attention(module, query, key, value, key_padding_mask, attn_mask)


def encoder_layer(
    module: torch.nn.TransformerEncoderLayer,
    src: ShapeValue,
    src_mask: ShapeValue = None,
    src_key_padding_mask: ShapeValue = None,
) -> ShapeValue:
    """The source's shape, ``(S, N, d_model)`` (``(N, S, d_model)`` when ``batch_first``, or
    ``(S, d_model)``), its masks checked as self-attention's.

    >>> import torch
    >>> from fluxion import dims
    >>> encoder_layer(torch.nn.TransformerEncoderLayer(16, 4, batch_first=True), dims.Shape(["B", "S", 16]))
    (B, S, 16)
    """
    output, _ = _attention(
        module.self_attn, src, src, src, src_key_padding_mask, src_mask, "TransformerEncoderLayer's self-attention"
    )
    return output


def decoder_layer(
    module: torch.nn.TransformerDecoderLayer,
    tgt: ShapeValue,
    memory: ShapeValue,
    tgt_mask: ShapeValue = None,
    memory_mask: ShapeValue = None,
    tgt_key_padding_mask: ShapeValue = None,
    memory_key_padding_mask: ShapeValue = None,
) -> ShapeValue:
    """The target's shape, ``(T, N, d_model)``, after self-attention over the target and attention to
    the memory ``(S, N, d_model)``, each with its masks checked.

    >>> import torch
    >>> from fluxion import dims
    >>> layer = torch.nn.TransformerDecoderLayer(16, 4)
    >>> decoder_layer(layer, dims.Shape(["T", "B", 16]), dims.Shape(["S", "B", 16]))
    (T, B, 16)
    """
    what = "TransformerDecoderLayer"
    output, _ = _attention(module.self_attn, tgt, tgt, tgt, tgt_key_padding_mask, tgt_mask, f"{what}'s self-attention")
    attended, _ = _attention(
        module.multihead_attn, output, memory, memory, memory_key_padding_mask, memory_mask, f"{what}'s cross-attention"
    )
    return attended


def _run(child: torch.nn.Module, *inputs: ShapeValue) -> ShapeValue:
    """``dims.run`` with the trailing arguments left out (None) dropped: what a call by keyword passes."""
    given = list(inputs)
    while given and given[-1] is None:
        given.pop()
    return dims.run(child, *given)


def encoder(
    module: torch.nn.TransformerEncoder,
    src: ShapeValue,
    mask: ShapeValue = None,
    src_key_padding_mask: ShapeValue = None,
) -> ShapeValue:
    """Each layer's rule in turn (its address in the report), then the norm's.

    >>> import torch
    >>> from fluxion import shapes
    >>> layer = torch.nn.TransformerEncoderLayer(16, 4, batch_first=True)
    >>> report = shapes.infer(torch.nn.TransformerEncoder(layer, num_layers=2), ("B", "S", 16))
    >>> report.output, report["layers.1"].output
    ((B, S, 16), (B, S, 16))
    """
    output = src
    for layer in module.layers:
        output = _run(layer, output, mask, src_key_padding_mask)
    return output if module.norm is None else dims.run(module.norm, output)


def decoder(
    module: torch.nn.TransformerDecoder,
    tgt: ShapeValue,
    memory: ShapeValue,
    tgt_mask: ShapeValue = None,
    memory_mask: ShapeValue = None,
    tgt_key_padding_mask: ShapeValue = None,
    memory_key_padding_mask: ShapeValue = None,
) -> ShapeValue:
    """Each layer's rule in turn on the target with the memory, then the norm's.

    >>> import torch
    >>> from fluxion import dims, shapes
    >>> decoder = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(16, 4), num_layers=2)
    >>> shapes.infer(decoder, ("T", "B", 16), ("S", "B", 16)).output
    (T, B, 16)
    """
    output = tgt
    for layer in module.layers:
        output = _run(layer, output, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask)
    return output if module.norm is None else dims.run(module.norm, output)


def transformer(
    module: torch.nn.Transformer,
    src: ShapeValue,
    tgt: ShapeValue,
    src_mask: ShapeValue = None,
    tgt_mask: ShapeValue = None,
    memory_mask: ShapeValue = None,
    src_key_padding_mask: ShapeValue = None,
    tgt_key_padding_mask: ShapeValue = None,
    memory_key_padding_mask: ShapeValue = None,
) -> ShapeValue:
    """The target's shape: torch's checks (batched sources and targets of the same batch, both of
    ``d_model`` features), then the encoder's rule on the source and the decoder's on the target.

    >>> import torch
    >>> from fluxion import shapes
    >>> model = torch.nn.Transformer(16, 4, 1, 1, dim_feedforward=32, batch_first=True)
    >>> shapes.infer(model, ("B", "S", 16), ("B", "T", 16)).output
    (B, T, 16)
    >>> shapes.infer(model, ("B", "S", 16), ("B", "T", 8))
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Transformer (the root) got (B, S, 16), (B, T, 8): Transformer expects d_model 16 \
as the target's last dim, got 8
      path: input (B, S, 16) → input (B, T, 8)
    """
    source = _tensor(src, "Transformer's src")
    target = _tensor(tgt, "Transformer's tgt")
    if len(source) == 3 and len(target) == 3:
        position = 0 if module.batch_first else 1
        dims.require_equal(source[position], target[position], "Transformer expects the target's batch as the source's")
    if source:
        dims.require_equal(
            module.d_model, source[-1], f"Transformer expects d_model {module.d_model} as the source's last dim"
        )
    if target:
        dims.require_equal(
            module.d_model, target[-1], f"Transformer expects d_model {module.d_model} as the target's last dim"
        )
    memory = _run(module.encoder, src, src_mask, src_key_padding_mask)
    return _run(module.decoder, tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask)


def register_torch_rules() -> None:
    """Register the rules above for torch's classes (``fluxion.shapes`` does at import; again is harmless).

    >>> import torch
    >>> from fluxion import shapes
    >>> register_torch_rules()
    >>> shapes.registered_rule(torch.nn.Transformer) is transformer
    True
    """
    for cls in ELEMENTWISE:
        register_rule(cls, elementwise)
    for cls in (nn.Softmax, nn.Softmin, nn.LogSoftmax):
        register_rule(cls, along_dim)
    for cls in (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.FeatureAlphaDropout):
        register_rule(cls, feature_dropout)
    for cls in (nn.RNN, nn.LSTM, nn.GRU):
        register_rule(cls, recurrent)
    register_rule(nn.Softmax2d, softmax2d)
    register_rule(nn.GLU, glu)
    register_rule(nn.PReLU, prelu)
    register_rule(nn.Flatten, flatten)
    register_rule(nn.Unflatten, unflatten)
    register_rule(nn.Embedding, embedding)
    register_rule(nn.Linear, linear)
    register_rule(nn.LayerNorm, last_dims_norm)
    register_rule(nn.RMSNorm, last_dims_norm)
    register_rule(nn.Sequential, sequential)
    register_rule(nn.MultiheadAttention, multihead_attention)
    register_rule(nn.TransformerEncoderLayer, encoder_layer)
    register_rule(nn.TransformerDecoderLayer, decoder_layer)
    register_rule(nn.TransformerEncoder, encoder)
    register_rule(nn.TransformerDecoder, decoder)
    register_rule(nn.Transformer, transformer)
