"""LoRA adapters: a trainable low-rank update added to a frozen Linear or Conv2d.

A LoRA computes ``target(x) + scale * up(down(dropout(x)))``, where ``down`` maps the target's
input to ``rank`` features and ``up`` maps them to the target's output. ``up`` starts at zero, so
a fresh LoRA changes nothing until it is trained. ``scale`` is a buffer: it is saved with the
LoRA's weights and can change at any time without recompiling a compiled model.

>>> import torch
>>> import fluxion.layers as fl
>>> model = fl.Chain(fl.Linear(8, 8), fl.ReLU())
>>> x = torch.randn(2, 8)
>>> before = model(x)
>>> adapter = LinearLora(model.Linear, rank=2).inject()
>>> torch.equal(model(x), before), adapter.rank
(True, 2)
"""

from __future__ import annotations

import contextlib
import math
import numbers
from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal, Self, TypeAlias, cast

import torch
from torch import Tensor
from torch.nn.parameter import is_lazy
from torch.nn.utils import parametrize

import fluxion.layers as fl
from fluxion import dims
from fluxion.adapters.adapter import Adapter
from fluxion.dims import ShapeValue
from fluxion.errors import AdapterError, AdapterStructureError

Init: TypeAlias = Literal["kaiming", "gaussian"] | Callable[[Tensor, Tensor], None]
"""How a LoRA's weights start: ``"kaiming"`` (``down`` as torch initialises a Linear, ``up`` zero),
``"gaussian"`` (``down`` from N(0, 1/rank²), ``up`` zero) or a function that fills
``(down.weight, up.weight)`` in place."""


class Lora(Adapter, metaclass=ABCMeta):
    """The LoRA computation shared by :class:`LinearLora` and :class:`Conv2dLora`.

    ``name`` tells LoRAs on the same model apart (``fluxion.adapters.lora`` functions act on one
    name or on all). ``scale`` multiplies the update; give it directly or as ``alpha`` (then
    ``scale = alpha / rank``, as in the LoRA paper); the default is 1.

    >>> import fluxion.layers as fl
    >>> adapter = LinearLora(fl.Linear(4, 4), rank=2, alpha=8.0, name="style")
    >>> adapter.scale.item(), adapter.name
    (4.0, 'style')
    """

    repr_tag = "LORA"
    layer_description: ClassVar[str]
    """The layers this kind of LoRA adapts, in words (for error messages)."""
    projection_types: ClassVar[tuple[type[torch.nn.Module], ...]]
    """The classes ``down`` and ``up`` may have, exactly (a subclass may compute something else)."""
    scale: Tensor
    name: str
    down: torch.nn.Module
    dropout: torch.nn.Module
    up: torch.nn.Module

    def __init__(
        self,
        target: torch.nn.Module,
        rank: int,
        *,
        scale: float | None = None,
        alpha: float | None = None,
        dropout: float = 0.0,
        init: Init = "kaiming",
        name: str = "lora",
    ) -> None:
        owner = type(self).__name__
        rank, initial_scale = check_options(owner, rank=rank, scale=scale, alpha=alpha, dropout=dropout, init=init)
        node = target.base if isinstance(target, Lora) else target
        if not self.adapts(node):
            raise AdapterError(
                f"{owner}: the target must be {self.layer_description} (or a LoRA on one), got {type(node).__name__}"
            )
        if getattr(node, "lazy", False):
            raise AdapterError(
                f"{owner}: the target {type(node).__name__} is lazy (its input size is not known yet); "
                "call fluxion.shapes.materialize(model, *input_shapes) first"
            )
        outputs, inputs = _weight_of(node).flatten(1).shape
        if rank > max(outputs, inputs):
            address = fl.address_of(node)
            at = f" at {address!r}" if address else ""
            raise AdapterError(
                f"{owner}: rank {rank} is more than the {type(node).__name__}{at}, with a {outputs}×{inputs} "
                f"weight, can use (its update has rank at most {min(outputs, inputs)}); give a rank of at most "
                f"{max(outputs, inputs)}"
            )
        down, up = self._projections(node, rank)
        super().__init__(target, down=down, dropout=fl.Dropout(dropout), up=up)
        self.name = name
        weight = _weight_of(node)
        # float32 whatever the layer's dtype: alpha / rank keeps its precision in a bfloat16 model
        self.register_buffer("scale", torch.tensor(initial_scale, dtype=torch.float32, device=weight.device))
        _initialise(self.down_weight, self.up_weight, rank, init)

    @classmethod
    @abstractmethod
    def adapts(cls, layer: torch.nn.Module) -> bool:
        """Whether this kind of LoRA can adapt ``layer``.

        >>> import fluxion.layers as fl
        >>> LinearLora.adapts(fl.Linear(2, 2)), Conv2dLora.adapts(fl.Conv2d(4, 4, 3, groups=2))
        (True, False)
        """

    def structural_copy(self) -> Self:
        """A copy sharing the weights, with a ``scale`` of its own (so rescaling a copy leaves this one).

        >>> import fluxion.layers as fl
        >>> adapter = LinearLora(fl.Linear(2, 2), rank=1)
        >>> twin = adapter.structural_copy()
        >>> twin.down.weight is adapter.down.weight, twin.scale is adapter.scale
        (True, False)
        """
        twin = super().structural_copy()
        twin.register_buffer("scale", self.scale.clone())
        return twin

    @abstractmethod
    def _projections(self, layer: Any, rank: int) -> tuple[torch.nn.Module, torch.nn.Module]:
        """The ``down`` and ``up`` layers of a LoRA of ``rank`` on ``layer``, on its device and dtype."""

    @abstractmethod
    def _misfit(self, layer: Any) -> str | None:
        """Why ``down`` and ``up`` do not fit ``layer`` (an ``adapts`` layer), or None when they do."""

    def check_surgery(
        self, removed: list[tuple[str, torch.nn.Module]], added: list[tuple[str | None, torch.nn.Module]]
    ) -> None:
        """A LoRA's children are fixed: each may be replaced under its name, never removed or added.

        A new target must fit (see :meth:`check_target`); a new ``down`` or ``up`` must have a
        weight of the same shape; and every new part must be one a merge folds into the weight
        (see :meth:`part_problem`).

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(4, 4))
        >>> adapter = LinearLora(model.Linear, rank=2).inject()
        >>> try:
        ...     adapter.remove("down")
        ... except fl.TreeError as error:
        ...     print(error)
        LinearLora on Linear at 'Linear': 'down' is part of the LoRA (its children are target, down, \
dropout, up); it can be replaced under its name, not removed or renamed
        """
        super().check_surgery(removed, added)
        taken_out = {name for name, _ in removed}
        put_in = {name: module for name, module in added if name is not None}
        parts = ", ".join(name for name, _ in self.named_children())
        for name, old in removed:
            new = put_in.get(name)
            if new is None:
                raise AdapterStructureError(
                    f"{self._describe()}: {name!r} is part of the LoRA (its children are {parts}); "
                    "it can be replaced under its name, not removed or renamed"
                )
            if name in ("down", "up"):
                before, after = _weight_of(old).shape, getattr(new, "weight", None)
                got = None
                if not isinstance(after, Tensor):
                    got = "no weight"
                elif is_lazy(after):
                    got = "a weight of no shape yet (lazy)"
                elif after.shape != before:
                    got = f"a weight of shape {tuple(after.shape)}"
                if got is not None:
                    raise AdapterStructureError(
                        f"{self._describe()}: a new {name!r} must have a weight of shape {tuple(before)} "
                        f"(rank {self.rank}), got {type(new).__name__} with {got}"
                    )
            problem = self.part_problem(name, new) if name in OWN_LAYERS else None
            if problem is not None:
                raise AdapterStructureError(
                    f"{self._describe()}: {type(new).__name__} cannot be its {name!r}: {problem}"
                )
        for name, new in added:
            if name is None or name not in taken_out:
                raise AdapterStructureError(
                    f"{self._describe()}: a LoRA's children are fixed ({parts}); "
                    f"{type(new).__name__} cannot be added to them"
                )

    def check_target(self, layer: torch.nn.Module) -> None:
        """Refuse a new target that the LoRA's ``down`` and ``up`` do not fit (another size, another kind).

        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(4, 4))
        >>> adapter = LinearLora(model.Linear, rank=2).inject()
        >>> try:
        ...     adapter.target = fl.Linear(4, 8)
        ... except fl.TreeError as error:
        ...     print(error)
        LinearLora on Linear at 'Linear': cannot wrap Linear(in_features=4, out_features=8, bias=True): \
its down and up layers fit in_features=4, out_features=4; eject the LoRA (its update would not \
apply), or make a new LoRA for the new layer
        """
        problem = self._misfit(layer) if self.adapts(layer) else f"it adapts {self.layer_description}"
        if problem is not None:
            raise AdapterStructureError(
                f"{self._describe()}: cannot wrap {layer!r}: {problem}; eject the LoRA (its update would "
                "not apply), or make a new LoRA for the new layer"
            )

    def part_problem(self, name: str, part: torch.nn.Module) -> str | None:
        """Why ``part`` cannot be this LoRA's ``name`` (``"down"``, ``"dropout"`` or ``"up"``), or None.

        ``forward`` must compute what a merge folds into the layer's weight: ``down`` and ``up``
        are bias-free layers of the classes the LoRA builds (``projection_types``), holding no
        tensor but their weight, with the geometry the LoRA gives them; ``dropout`` is a dropout
        or an identity, holding no tensor. Shapes are checked elsewhere (they change with the rank).

        >>> import fluxion.layers as fl
        >>> adapter = LinearLora(fl.Linear(4, 4), rank=2)
        >>> adapter.part_problem("up", fl.Linear(2, 4, bias=True))
        'it has a bias; the update a merge folds into the weight is scale × up × down alone, so use bias=False'
        >>> adapter.part_problem("dropout", fl.Identity()) is None
        True
        """
        if name == "dropout":
            if not isinstance(part, DROPOUTS):
                return (
                    f"it is a {type(part).__name__}, not a dropout or an identity (a merge leaves it out, "
                    "so it must change nothing outside training)"
                )
            held = _tensor_names(part)
            return f"it holds tensors ({', '.join(held)}); a dropout holds none" if held else None
        kind = parametrize.type_before_parametrizations(part)
        if kind not in self.projection_types:
            wanted = self.projection_types[0].__name__
            return (
                f"it is a {kind.__name__}, not a {wanted} (torch's or fluxion's; a subclass may compute another thing)"
            )
        if getattr(part, "bias", None) is not None:
            return (
                "it has a bias; the update a merge folds into the weight is scale × up × down alone, so use bias=False"
            )
        held = [
            key for key in _tensor_names(part) if key != "weight" and not key.startswith("parametrizations.weight.")
        ]
        if held:
            return f"it holds tensors besides its weight ({', '.join(held)}), which a merge would leave out"
        return self._geometry_problem(name, part)

    def _geometry_problem(self, name: str, part: Any) -> str | None:
        """Why ``part`` (of a projection class) does not compute the LoRA's ``down`` or ``up``, or None."""
        return None

    @property
    def base(self) -> torch.nn.Module:
        """The layer whose weight this LoRA updates: the target, looking through LoRAs stacked on it.

        >>> import fluxion.layers as fl
        >>> linear = fl.Linear(4, 4)
        >>> outer = LinearLora(LinearLora(linear, rank=1), rank=1)
        >>> outer.base is linear
        True
        """
        node = self.target
        while isinstance(node, Lora):
            node = node.target
        return node

    @property
    def rank(self) -> int:
        """The width of the low-rank bottleneck.

        >>> import fluxion.layers as fl
        >>> LinearLora(fl.Linear(8, 4), rank=3).rank
        3
        """
        return self.down_weight.shape[0]

    @property
    def down_weight(self) -> Tensor:
        """The weight of ``down`` (``rank`` rows).

        >>> import fluxion.layers as fl
        >>> LinearLora(fl.Linear(8, 4), rank=3).down_weight.shape
        torch.Size([3, 8])
        """
        return _weight_of(self.down)

    @property
    def up_weight(self) -> Tensor:
        """The weight of ``up`` (``rank`` columns); zero in a fresh LoRA.

        >>> import fluxion.layers as fl
        >>> LinearLora(fl.Linear(8, 4), rank=3).up_weight.abs().sum().item()
        0.0
        """
        return _weight_of(self.up)

    def delta_weight(self) -> Tensor:
        """The update this LoRA adds to the base layer's weight, ``scale * up ∘ down``, in float64.

        ``up`` is a plain matrix (a Linear, or a 1×1 convolution), so composing it with ``down``
        multiplies it into ``down``'s output dimension and keeps ``down``'s other dimensions.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> adapter = LinearLora(fl.Linear(8, 4), rank=2)
        >>> adapter.delta_weight().shape, adapter.delta_weight().abs().sum().item()
        (torch.Size([4, 8]), 0.0)
        >>> Conv2dLora(fl.Conv2d(3, 8, kernel_size=3), rank=2).delta_weight().shape
        torch.Size([8, 3, 3, 3])
        """
        down = self.down_weight.double()
        up = self.up_weight.double().flatten(1)
        return self.scale.double() * (up @ down.flatten(1)).view(up.shape[0], *down.shape[1:])

    def set_scale(self, scale: float) -> None:
        """Change the multiplier of the update (in place: a compiled model does not recompile).

        >>> import fluxion.layers as fl
        >>> adapter = LinearLora(fl.Linear(2, 2), rank=1)
        >>> adapter.set_scale(0.5)
        >>> adapter.scale.item()
        0.5
        """
        value = checked_scale(scale, f"{type(self).__name__}: the scale")
        with torch.no_grad():
            self.scale.fill_(value)

    def forward(self, x: Tensor) -> Tensor:  # pyright: ignore[reportIncompatibleMethodOverride]
        """``target(x) + scale * up(down(dropout(x)))``.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> model = fl.Chain(fl.Linear(2, 2))
        >>> adapter = LinearLora(model.Linear, rank=1).inject()
        >>> torch.equal(model(torch.ones(1, 2)), adapter.target(torch.ones(1, 2)))
        True
        """
        base = self._injected_target()(x)  # first: a bad input is blamed on the layer
        return base + self.up(self.down(self.dropout(x))) * self.scale

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The target's output shape (the low-rank branch must give the same).

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> model = fl.Chain(fl.Linear(8, 4))
        >>> _ = LinearLora(model.Linear, rank=2).inject()
        >>> shapes.infer(model, ("B", 8))["Linear.up"].output
        (B, 4)
        """
        base = dims.run(self._injected_target(), *inputs)
        branch: ShapeValue = dims.run(self.dropout, *inputs)
        for layer in (self.down, self.up):
            branch = dims.run(layer, branch)
        if not isinstance(base, dims.Shape) or not isinstance(branch, dims.Shape):
            raise dims.ShapeError(f"{type(self).__name__} adds tensors, got {base!r} and {branch!r}")
        return dims.broadcast([base, branch], type(self).__name__)

    def extra_repr(self) -> str:
        scale = "?" if self.scale.is_meta else f"{self.scale.item():g}"
        injected = "" if self.injected else ", not injected"
        return f"name={self.name!r}, rank={self.rank}, scale={scale}{injected}"


class LinearLora(Lora):
    """A LoRA on a ``Linear`` (fluxion's or torch's), or on a LoRA stacked on one.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(16, 16))
    >>> adapter = LinearLora(model.Linear, rank=4, alpha=4.0, dropout=0.1).inject()
    >>> model
    (CHAIN) Chain()
        └── Linear: (LORA) LinearLora(name='lora', rank=4, scale=1)
            ├── target: Linear(in_features=16, out_features=16, bias=True)
            ├── down: Linear(in_features=16, out_features=4, bias=False)
            ├── dropout: Dropout(p=0.1, inplace=False)
            └── up: Linear(in_features=4, out_features=16, bias=False)
    """

    layer_description = "a Linear"
    projection_types = (torch.nn.Linear, fl.Linear)

    @classmethod
    def adapts(cls, layer: torch.nn.Module) -> bool:
        """Any ``torch.nn.Linear`` (fluxion's ``Linear`` is one).

        >>> import torch
        >>> LinearLora.adapts(torch.nn.Linear(2, 2)), LinearLora.adapts(torch.nn.Conv2d(2, 2, 1))
        (True, False)
        """
        return isinstance(layer, torch.nn.Linear)

    def _misfit(self, layer: torch.nn.Linear) -> str | None:
        fits = (_weight_of(self.down).shape[1], _weight_of(self.up).shape[0])
        if (layer.in_features, layer.out_features) == fits:
            return None
        return f"its down and up layers fit in_features={fits[0]}, out_features={fits[1]}"

    def _projections(self, layer: torch.nn.Linear, rank: int) -> tuple[torch.nn.Module, torch.nn.Module]:
        device, dtype = layer.weight.device, layer.weight.dtype
        down = fl.Linear(layer.in_features, rank, bias=False, device=device, dtype=dtype)
        up = fl.Linear(rank, layer.out_features, bias=False, device=device, dtype=dtype)
        return down, up


class Conv2dLora(Lora):
    """A LoRA on an ungrouped ``Conv2d``: ``down`` has the convolution's geometry, ``up`` is 1×1.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Conv2d(3, 8, kernel_size=3, stride=2, padding=1))
    >>> adapter = Conv2dLora(model.Conv2d, rank=2).inject()
    >>> adapter.down
    Conv2d(3, 2, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)
    >>> model(torch.zeros(1, 3, 8, 8)).shape
    torch.Size([1, 8, 4, 4])
    """

    layer_description = "a Conv2d with groups=1 (a grouped convolution's update could not be merged into it)"
    projection_types = (torch.nn.Conv2d, fl.Conv2d)

    @classmethod
    def adapts(cls, layer: torch.nn.Module) -> bool:
        """An ungrouped ``torch.nn.Conv2d``.

        >>> import torch
        >>> Conv2dLora.adapts(torch.nn.Conv2d(2, 2, 3)), Conv2dLora.adapts(torch.nn.Conv2d(2, 2, 3, groups=2))
        (True, False)
        """
        return isinstance(layer, torch.nn.Conv2d) and layer.groups == 1

    def _misfit(self, layer: torch.nn.Conv2d) -> str | None:
        down = cast(torch.nn.Conv2d, self.down)
        fits = {
            "in_channels": down.in_channels,
            "out_channels": _weight_of(self.up).shape[0],
            **{key: getattr(down, key) for key in ("kernel_size", "stride", "padding", "dilation", "padding_mode")},
        }
        wrong = [f"{key}={value!r}" for key, value in fits.items() if getattr(layer, key) != value]
        return f"its down and up layers fit {', '.join(wrong)}" if wrong else None

    def _geometry_problem(self, name: str, part: torch.nn.Conv2d) -> str | None:
        """``down`` has the layer's geometry; ``up`` is a plain 1×1 convolution."""
        if name == "down":
            layer = self.base
            if not isinstance(layer, torch.nn.Conv2d):
                return None  # a target it does not fit is refused on its own (check_target)
            keys = ("stride", "padding", "dilation", "padding_mode")
            wanted: dict[str, object] = {"groups": 1, **{key: getattr(layer, key) for key in keys}}
            where = "its layer's geometry"
        else:
            # 1×1 with no padding: "same" and "valid" pad nothing either
            padding = part.padding if part.padding in ("valid", "same") else (0, 0)
            wanted = {"stride": (1, 1), "padding": padding, "groups": 1}
            where = "the geometry of a plain 1×1 convolution"
        wrong = [f"{key}={getattr(part, key)!r}" for key, value in wanted.items() if getattr(part, key) != value]
        expected = ", ".join(f"{key}={value!r}" for key, value in wanted.items())
        return f"it does not have {where} ({expected}): it has {', '.join(wrong)}" if wrong else None

    def _projections(self, layer: torch.nn.Conv2d, rank: int) -> tuple[torch.nn.Module, torch.nn.Module]:
        device, dtype = layer.weight.device, layer.weight.dtype
        down = fl.Conv2d(
            layer.in_channels,
            rank,
            kernel_size=cast(tuple[int, int], layer.kernel_size),
            stride=cast(tuple[int, int], layer.stride),
            padding=cast(str | tuple[int, int], layer.padding),
            dilation=cast(tuple[int, int], layer.dilation),
            padding_mode=layer.padding_mode,
            bias=False,
            device=device,
            dtype=dtype,
        )
        up = fl.Conv2d(rank, layer.out_channels, kernel_size=1, bias=False, device=device, dtype=dtype)
        return down, up


OWN_LAYERS = ("down", "dropout", "up")
"""A LoRA's own children, beside its target."""

DROPOUTS: tuple[type[torch.nn.Module], ...] = (
    torch.nn.Dropout,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.Dropout3d,
    torch.nn.AlphaDropout,
    torch.nn.FeatureAlphaDropout,
    torch.nn.Identity,
)
"""What a LoRA's ``dropout`` may be: a layer that changes nothing outside training."""


def _tensor_names(module: torch.nn.Module) -> list[str]:
    return [name for name, _ in (*module.named_parameters(), *module.named_buffers())]


def _weight_of(layer: torch.nn.Module) -> Tensor:
    weight = layer.weight
    if not isinstance(weight, Tensor):
        raise AdapterError(f"{type(layer).__name__} has no weight tensor")
    return weight


def checked_number(value: object, what: str) -> float:
    """``value`` as a float when it is a finite real number (not a bool), else an ``AdapterError``.

    Every numeric LoRA argument (scale, alpha, dropout), wherever it is given, is checked here.
    An int too large for a float is not finite either.

    >>> checked_number(2, "a LoRA scale")
    2.0
    >>> checked_number(float("nan"), "a LoRA scale")
    Traceback (most recent call last):
    ...
    fluxion.errors.AdapterError: a LoRA scale is a finite number, got nan
    >>> checked_number(10**400, "a LoRA scale")
    Traceback (most recent call last):
    ...
    fluxion.errors.AdapterError: a LoRA scale is a finite number, got int 100000000000000000000000000000...
    """
    number = math.nan
    if not isinstance(value, bool) and isinstance(value, numbers.Real):
        with contextlib.suppress(OverflowError):  # an int too large for a float
            number = float(value)
    if not math.isfinite(number):
        raise AdapterError(f"{what} is a finite number, got {_shown(value)}")
    return number


FLOAT32_MAX = torch.finfo(torch.float32).max
"""The largest scale a LoRA's float32 ``scale`` buffer holds."""


def checked_scale(value: object, what: str) -> float:
    """``value`` as a float when it is a finite number a float32 ``scale`` buffer holds, else an ``AdapterError``.

    >>> checked_scale(0.5, "a LoRA scale")
    0.5
    >>> checked_scale(1e300, "a LoRA scale")
    Traceback (most recent call last):
    ...
    fluxion.errors.AdapterError: a LoRA scale is 1e+300, more than a float32 scale holds (at most 3.403e+38)
    """
    number = checked_number(value, what)
    if abs(number) > FLOAT32_MAX:
        raise AdapterError(f"{what} is {number:g}, more than a float32 scale holds (at most {FLOAT32_MAX:.4g})")
    return number


def checked_rank(value: object, what: str) -> int:
    """``value`` as an int when it is a positive integer (an ``int``, a numpy integer, not a bool), else an
    ``AdapterError``. How large a rank a layer takes is checked where the layer is known.

    >>> import numpy
    >>> checked_rank(numpy.int64(4), "rank")
    4
    >>> checked_rank(2.0, "lora.inject: rank")
    Traceback (most recent call last):
    ...
    fluxion.errors.AdapterError: lora.inject: rank must be a positive integer, got 2.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise AdapterError(f"{what} must be a positive integer, got {_shown(value)}")
    return int(value)


def _shown(value: object) -> str:
    """A value as an error message shows it: its repr, or the start of a long one, with its type."""
    text = repr(value)
    return text if len(text) <= 40 else f"{type(value).__name__} {text[:30]}..."


def check_options(
    owner: str,
    *,
    rank: object,
    scale: object = None,
    alpha: object = None,
    dropout: object = 0.0,
    init: object = "kaiming",
) -> tuple[int, float]:
    """Check a LoRA's options (``owner`` names the caller in errors); return its rank and starting scale.

    >>> check_options("LinearLora", rank=4, alpha=2.0)
    (4, 0.5)
    >>> check_options("lora.inject", rank=4, dropout=1.5)
    Traceback (most recent call last):
    ...
    fluxion.errors.AdapterError: lora.inject: dropout is a probability between 0 and 1, got 1.5
    """
    rank = checked_rank(rank, f"{owner}: rank")
    probability = checked_number(dropout, f"{owner}: dropout")
    if not 0.0 <= probability <= 1.0:
        raise AdapterError(f"{owner}: dropout is a probability between 0 and 1, got {_shown(dropout)}")
    if init not in ("kaiming", "gaussian") and not callable(init):
        raise AdapterError(f"{owner}: init must be 'kaiming', 'gaussian' or a function of (down, up); got {init!r}")
    if scale is not None and alpha is not None:
        raise AdapterError(
            f"give the LoRA scale either as scale={_shown(scale)} or as alpha={_shown(alpha)} (scale = alpha / rank), "
            "not both"
        )
    if alpha is not None:
        return rank, checked_scale(checked_number(alpha, f"{owner}: alpha") / rank, f"{owner}: alpha / rank")
    return rank, 1.0 if scale is None else checked_scale(scale, f"{owner}: scale")


def _initialise(down: Tensor, up: Tensor, rank: int, init: Init) -> None:
    if down.is_meta:
        return  # no values to draw on the meta device
    with torch.no_grad():
        if init == "kaiming":
            torch.nn.init.kaiming_uniform_(down, a=math.sqrt(5))
            up.zero_()
        elif init == "gaussian":
            torch.nn.init.normal_(down, std=1 / rank)
            up.zero_()
        else:
            init(down, up)
