"""FiLM, feature-wise linear modulation: a conditioner scales and shifts a feature, ``gamma(c) * x + beta(c)``.

>>> import torch
>>> import fluxion.layers as fl
>>> film = fl.FiLM(feature_dim=8, conditioner_dim=3)
>>> film(torch.randn(2, 8, 5, 5), torch.randn(2, 3)).shape
torch.Size([2, 8, 5, 5])
>>> list(film.state_dict())
['gamma.weight', 'gamma.bias', 'beta.weight', 'beta.bias']
"""

from collections.abc import Callable, Sequence
from typing import Any, Self, cast

import torch
from jaxtyping import Float
from torch import Tensor

from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks
from fluxion.layers.linear import Linear
from fluxion.tree.chain import Chain


class FiLM(Chain):
    """``gamma(conditioner) * feature + beta(conditioner)``, ``gamma`` and ``beta`` two Linears
    from ``conditioner_dim`` to ``feature_dim`` features (the layout of TorchArc's ``MergeFiLM``:
    keys ``gamma.weight``, ``gamma.bias``, ``beta.weight``, ``beta.bias``).

    When the feature has more dims than the conditioner, ``gamma(c)`` and ``beta(c)`` get trailing
    dims of size 1 up to the feature's rank, so a ``(B, C)`` conditioner modulates each channel of
    a ``(B, C, H, W)`` feature; with equal ranks they broadcast as they are.

    ``names`` are the two Linears' child names, scale first: TorchArc 1's ``FiLMMerge`` names them
    ``("conditioner_scale", "conditioner_shift")``.

    >>> list(FiLM(4, 2, names=("conditioner_scale", "conditioner_shift")).state_dict())[:2]
    ['conditioner_scale.weight', 'conditioner_scale.bias']

    Both sizes may be left out (``FiLM()``): the layer is then lazy, without children, until
    ``fluxion.shapes.materialize`` takes ``conditioner_dim`` from the conditioner's last dim and
    ``feature_dim`` from the feature's dim that ``gamma(c)`` lines up with.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> from fluxion import shapes
    >>> lazy = fl.FiLM()
    >>> shapes.materialize(lazy, ("B", 16, "H", "W"), ("B", 4)).output
    (B, 16, H, W)
    >>> lazy.gamma
    Linear(in_features=4, out_features=16, bias=True)
    """

    def __init__(
        self,
        feature_dim: int | None = None,
        conditioner_dim: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        names: Sequence[str] = ("gamma", "beta"),
    ) -> None:
        checks.at_least("FiLM", "feature_dim", feature_dim, 0)
        checks.at_least("FiLM", "conditioner_dim", conditioner_dim, 0)
        given = cast(Sequence[object], names)
        if isinstance(names, str) or len(given) != 2 or not all(isinstance(name, str) for name in given):
            raise LayerError(f"FiLM: names are two child names (scale, shift), got {names!r}")
        scale_name, shift_name = (cast(str, name) for name in given)
        if not scale_name.isidentifier() or not shift_name.isidentifier() or scale_name == shift_name:
            raise LayerError(f"FiLM: names are two different identifiers, got {names!r}")
        if feature_dim is None or conditioner_dim is None:
            super().__init__()
            probe = torch.empty(0, device=device, dtype=dtype)  # the device and dtype in force now
            device, dtype = probe.device, probe.dtype
        else:
            super().__init__(
                **{
                    scale_name: Linear(conditioner_dim, feature_dim, device=device, dtype=dtype),
                    shift_name: Linear(conditioner_dim, feature_dim, device=device, dtype=dtype),
                }
            )
        self.feature_dim = feature_dim
        self.conditioner_dim = conditioner_dim
        self.names = (scale_name, shift_name)
        self._building: dict[str, Any] = {"device": device, "dtype": dtype}

    @property
    def lazy(self) -> bool:
        """Whether a size is still to be inferred: no ``gamma`` and ``beta`` yet, and a call is refused.

        >>> import fluxion.layers as fl
        >>> fl.FiLM(8).lazy, fl.FiLM(8, 3).lazy
        (True, False)
        """
        return self.feature_dim is None or self.conditioner_dim is None

    @property
    def missing(self) -> tuple[str, ...]:
        """The sizes still to be inferred.

        >>> import fluxion.layers as fl
        >>> fl.FiLM(feature_dim=8).missing
        ('conditioner_dim',)
        """
        return tuple(name for name in ("feature_dim", "conditioner_dim") if getattr(self, name) is None)

    def forward(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, feature: Float[Tensor, "..."], conditioner: Float[Tensor, "... conditioner_dim"]
    ) -> Float[Tensor, "..."]:
        if self.lazy:
            missing = self.missing
            raise LayerError(
                f"FiLM({self.extra_repr()}) has no {', '.join(missing)} yet: call "
                f"fluxion.shapes.materialize(model, *input_shapes) to infer {'them' if len(missing) > 1 else 'it'} "
                "from the input shapes and create gamma and beta"
            )
        gamma, beta = self[self.names[0]](conditioner), self[self.names[1]](conditioner)
        extra = feature.dim() - conditioner.dim()
        if extra > 0:
            trailing = (1,) * extra
            gamma = gamma.reshape(*gamma.shape, *trailing)
            beta = beta.reshape(*beta.shape, *trailing)
        return gamma * feature + beta

    def output_shape(self, *inputs: ShapeValue, **named: ShapeValue) -> ShapeValue:
        """The broadcast of the feature with ``gamma(c)`` (ones appended up to the feature's rank).

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> report = shapes.infer(fl.FiLM(8, 3), ("B", 8, "H", "W"), ("B", 3))
        >>> report.output, report["gamma"].output
        ((B, 8, H, W), (B, 8))
        """
        feature, conditioner = self._given_shapes(inputs, named)
        if self.lazy:
            modulation = Shape([*conditioner[:-1], self._feature_size(feature, conditioner)])
            if self.conditioner_dim is not None:
                dims.require_equal(
                    self.conditioner_dim, conditioner[-1], f"FiLM expects conditioner features {self.conditioner_dim}"
                )
        else:
            gamma = dims.run(self[self.names[0]], conditioner)
            beta = dims.run(self[self.names[1]], conditioner)
            if not isinstance(gamma, Shape) or not isinstance(beta, Shape):
                raise ShapeError(f"FiLM expects gamma and beta to give one tensor each, got {gamma!r} and {beta!r}")
            modulation = dims.broadcast([gamma, beta], "FiLM (gamma and beta)")
        extra = len(feature) - len(conditioner)
        if extra > 0:
            modulation = Shape([*modulation, *(1,) * extra])
        return dims.broadcast([modulation, feature], "FiLM (gamma(conditioner) with the feature)")

    def inferred_arguments(self, *inputs: ShapeValue, **named: ShapeValue) -> dict[str, Dim]:
        """``conditioner_dim`` (the conditioner's last dim) and ``feature_dim`` (the feature's dim that
        ``gamma(c)``'s last dim lines up with: dim ``rank(c) - 1``, or the last when the ranks are equal).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.FiLM().inferred_arguments(dims.Shape(["B", 16, "H", "W"]), dims.Shape(["B", 4]))
        {'feature_dim': 16, 'conditioner_dim': 4}
        """
        feature, conditioner = self._given_shapes(inputs, named)
        found = {"feature_dim": self._feature_size(feature, conditioner), "conditioner_dim": conditioner[-1]}
        return {name: found[name] for name in self.missing}

    def materialized(self, **arguments: int) -> Self:
        """A detached, complete twin of this lazy layer with ``arguments`` filled in.

        >>> import fluxion.layers as fl
        >>> fl.FiLM(feature_dim=8).materialized(conditioner_dim=3).beta
        Linear(in_features=3, out_features=8, bias=True)
        """
        if set(arguments) != set(self.missing) or not self.missing:
            expected = ", ".join(self.missing) or "nothing (it is not lazy)"
            raise LayerError(f"FiLM expects exactly {expected}, got {', '.join(arguments) or 'none'}")
        given = {"feature_dim": self.feature_dim, "conditioner_dim": self.conditioner_dim, **arguments}
        return type(self)(**given, **self._building, names=self.names)

    def adopt(self, twin: Self) -> None:
        """Become ``twin``, a ``materialized`` copy: take its ``gamma`` and ``beta``.

        >>> import fluxion.layers as fl
        >>> lazy = fl.FiLM()
        >>> lazy.adopt(lazy.materialized(feature_dim=4, conditioner_dim=2))
        >>> [name for name, _ in lazy.named_children()]
        ['gamma', 'beta']
        """
        if not self.lazy or twin.lazy or type(twin) is not type(self):
            raise LayerError("FiLM.adopt expects a materialized twin of a lazy layer")
        missing = self.missing
        scale_name, shift_name = self.names
        gamma, beta = twin[scale_name], twin[shift_name]
        del twin[scale_name], twin[shift_name]
        self.append(gamma, name=scale_name)
        self.append(beta, name=shift_name)
        self.feature_dim, self.conditioner_dim = twin.feature_dim, twin.conditioner_dim
        self.__dict__["_fluxion_inferred"] = {name: getattr(twin, name) for name in missing}  # for spec.dump

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Self:
        # .to(), .half()...: a lazy layer follows them for the Linears it will build
        if self.lazy:
            moved = fn(torch.empty(0, device=self._building["device"], dtype=self._building["dtype"]))
            self._building = {"device": moved.device, "dtype": moved.dtype}
        return super()._apply(fn, recurse)  # pyright: ignore[reportUnknownMemberType]  # torch leaves fn untyped

    def extra_repr(self) -> str:
        shown = ("?" if size is None else size for size in (self.feature_dim, self.conditioner_dim))
        named = "" if self.names == ("gamma", "beta") else f", names={self.names}"
        return "feature_dim={}, conditioner_dim={}".format(*shown) + named

    def _given_shapes(self, inputs: tuple[ShapeValue, ...], named: dict[str, ShapeValue]) -> tuple[Shape, Shape]:
        """The feature's and the conditioner's shapes, given by position or by name."""
        values: dict[str, ShapeValue] = dict(zip(("feature", "conditioner"), inputs, strict=False))
        for name, value in named.items():
            if name not in ("feature", "conditioner") or name in values:
                raise ShapeError(f"FiLM takes feature and conditioner (once each), got {name!r}")
            values[name] = value
        feature, conditioner = values.get("feature"), values.get("conditioner")
        if len(inputs) > 2 or not isinstance(feature, Shape) or not isinstance(conditioner, Shape):
            got = ", ".join(repr(value) for value in (*inputs, *named.values())) or "nothing"
            raise ShapeError(f"FiLM takes two tensors, a feature and a conditioner, got {got}")
        if not conditioner:
            raise ShapeError("FiLM expects a conditioner of rank at least 1 (..., conditioner_dim), got a scalar")
        if not feature:
            raise ShapeError("FiLM expects a feature of rank at least 1, got a scalar")
        return feature, conditioner

    def _feature_size(self, feature: Shape, conditioner: Shape) -> Dim:
        """The feature's size that gamma(c)'s last dim meets: ``feature_dim`` when given."""
        if self.feature_dim is not None:
            return self.feature_dim
        return feature[len(conditioner) - 1] if len(feature) > len(conditioner) else feature[-1]
