"""``InputChoice``: a join that will keep ``keep`` of the inputs it gets (the node of a DARTS cell).

In a supernet it adds every input it gets, as a DARTS node adds the outputs of all its incoming
edges; :func:`fluxion.nas.finalize` then keeps the ``keep`` strongest inputs. An input's strength
is the strength of the :class:`~fluxion.nas.Choice` that produces it (its best candidate other
than ``none``), or, when the join learns weights of its own (``learn=True``, as ENAS's input
choices do), the input's own architecture weight; with its own weights it adds the inputs
weighted by their softmax in ``"softmax"`` mode, and draws ``keep`` of them in ``"sample"`` mode.

>>> import torch
>>> join = InputChoice(keep=2)
>>> join(torch.ones(2), torch.ones(2), torch.ones(2)).tolist()
[3.0, 3.0]
>>> join.choose([0, 2])
>>> join(torch.ones(2), 2 * torch.ones(2), 3 * torch.ones(2)).tolist()
[4.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast, get_args

import torch

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import NasError
from fluxion.nas.choice import INITIAL_SCALE
from fluxion.tree.module import Module, place_of, record_constructor_call

JoinMode = Literal["softmax", "sample", "fixed"]
"""How an input choice combines its inputs (see the class docstring)."""

JOIN_MODES: tuple[str, ...] = get_args(JoinMode)


class InputChoice(Module):
    """Adds the inputs it gets; finalize keeps ``keep`` of them.

    ``learn=True`` gives it architecture weights of its own (``alphas``, one per input, so it needs
    ``count``, the number of inputs). Modes: ``"softmax"`` adds every input (weighted by
    ``softmax(alphas)`` when it learns), ``"sample"`` adds ``keep`` inputs drawn uniformly, and
    ``"fixed"`` adds the inputs at the positions ``chosen``.

    >>> import torch
    >>> join = InputChoice(keep=1, count=2, learn=True)
    >>> with torch.no_grad():
    ...     _ = join.alphas.copy_(torch.tensor([0.0, 0.0]))
    >>> join(torch.ones(1), 3 * torch.ones(1)).tolist()
    [2.0]
    """

    architecture_parameters = ("alphas",)

    alphas: torch.nn.Parameter | None
    mode: JoinMode
    chosen: tuple[int, ...] | None

    def __init__(
        self,
        keep: int,
        count: int | None = None,
        learn: bool = False,
        mode: JoinMode = "softmax",
        chosen: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise NasError(f"InputChoice: keep is the number of inputs to keep (1 or more), got {keep!r}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < keep):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise NasError(f"InputChoice: count ({count!r}) is the number of inputs, at least keep ({keep})")
        if learn and count is None:
            raise NasError("InputChoice: learn=True needs count, the number of inputs (one weight each)")
        self.keep = keep
        self.count = count
        self.learn = learn
        self.alphas = torch.nn.Parameter(INITIAL_SCALE * torch.randn(count)) if learn and count else None
        self.set_mode(mode, chosen=chosen)

    def set_mode(self, mode: JoinMode, *, chosen: Sequence[int] | None = None) -> None:
        """Combine the inputs as ``mode`` says; ``"fixed"`` needs ``chosen`` (input positions).

        >>> join = InputChoice(keep=1)
        >>> join.set_mode("fixed", chosen=[1])
        >>> join.chosen
        (1,)
        """
        if mode not in JOIN_MODES:
            raise NasError(f"{place_of(self)}: unknown mode {mode!r}; modes: {', '.join(JOIN_MODES)}")
        if mode == "fixed":
            if chosen is None:
                raise NasError(f"{place_of(self)}: mode 'fixed' needs the input positions it keeps: chosen=[...]")
            given = cast(object, chosen)
            if not isinstance(given, list | tuple) or not all(
                isinstance(p, int) and not isinstance(p, bool) for p in list(cast(Sequence[object], given))
            ):
                raise NasError(f"{place_of(self)}: chosen is a list of input positions, got {chosen!r}")
            positions = tuple(cast(Sequence[int], given))
            if not positions or len(set(positions)) != len(positions) or any(p < 0 for p in positions):
                raise NasError(f"{place_of(self)}: chosen is a list of distinct input positions, got {list(positions)}")
            if self.count is not None and max(positions) >= self.count:
                raise NasError(f"{place_of(self)}: chosen {list(positions)} names an input past its {self.count}")
            self.chosen = positions
        else:
            self.chosen = None
        self.mode = mode
        written: dict[str, Any] = {"keep": self.keep}
        if self.count is not None:
            written["count"] = self.count
        if self.learn:
            written["learn"] = True
        if mode != "softmax":
            written["mode"] = mode
        if self.chosen is not None:
            written["chosen"] = list(self.chosen)
        record_constructor_call(self, (), written)  # a spec written later shows the mode set now

    def choose(self, positions: Sequence[int]) -> None:
        """Keep the inputs at ``positions`` (mode ``"fixed"``).

        >>> join = InputChoice(keep=2)
        >>> join.choose([0, 3])
        >>> join.mode, join.chosen
        ('fixed', (0, 3))
        """
        self.set_mode("fixed", chosen=positions)

    def forward(self, *inputs: Any) -> Any:
        self._check_count(len(inputs))
        if self.mode == "fixed":
            chosen = cast(tuple[int, ...], self.chosen)
            if max(chosen) >= len(inputs):
                raise NasError(f"{place_of(self)}: chosen {list(chosen)} but it got {len(inputs)} inputs")
            picked = [inputs[position] for position in chosen]
        elif self.mode == "sample":
            picked = [inputs[int(i)] for i in torch.randperm(len(inputs))[: self.keep].sort().values]
        elif self.alphas is not None:
            weights = torch.softmax(self.alphas, dim=0).unbind()
            picked = [weight * value for weight, value in zip(weights, inputs, strict=True)]
        else:
            picked = list(inputs)
        total = picked[0]
        for value in picked[1:]:
            total = total + value
        return total

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The broadcast of the inputs' shapes (as ``Add``).

        >>> from fluxion import dims
        >>> InputChoice(keep=1).output_shape(dims.Shape(["B", 4]), dims.Shape(["B", 4]))
        (B, 4)
        """
        self._check_count(len(inputs))
        shapes = [value for value in inputs if isinstance(value, dims.Shape)]
        if len(shapes) != len(inputs):
            raise NasError(f"{place_of(self)}: adds tensors, got {inputs}")
        return dims.broadcast(shapes, type(self).__name__)

    def extra_repr(self) -> str:
        shown = f"keep={self.keep}"
        if self.count is not None:
            shown += f", count={self.count}"
        if self.learn:
            shown += ", learn=True"
        if self.mode != "softmax":
            shown += f", mode={self.mode!r}"
        if self.chosen is not None:
            shown += f", chosen={list(self.chosen)}"
        return shown

    def _check_count(self, got: int) -> None:
        if got < self.keep or (self.count is not None and got != self.count):
            wanted = self.count if self.count is not None else f"at least {self.keep}"
            raise NasError(f"{place_of(self)}: expects {wanted} inputs, got {got}")
