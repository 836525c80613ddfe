"""``Choice``: a node whose children are the candidate operations of one place in a supernet.

Each candidate is a child under its own name (``edge_3.sep_conv_3x3.Conv2d_1.weight``), so it is
addressed, edited, adapted and loaded like any node, and it is called through ``__call__`` (its
hooks fire). The choice holds one architecture parameter, ``alphas``, with one entry per candidate,
which :func:`fluxion.nas.arch_parameters` returns and :func:`fluxion.nas.weights` leaves out. How the
candidates' outputs combine is the choice's ``mode``:

- ``"softmax"`` (DARTS): the sum of every candidate's output weighted by ``softmax(alphas)``;
- ``"gumbel"`` (GDAS): one candidate drawn from the Gumbel-softmax of ``alphas``, its output
  scaled by the straight-through weight (1 going forward, the soft weight's gradient going back);
- ``"gumbel_soft"`` (SNAS): the sum weighted by a Gumbel-softmax sample;
- ``"sample"`` (single path, random search): one candidate drawn uniformly, ``alphas`` unused;
- ``"fixed"``: the candidate ``chosen`` alone.

>>> import torch
>>> import fluxion.layers as fl
>>> choice = Choice(twice=fl.Lambda(lambda x: 2 * x), negate=fl.Lambda(lambda x: -x))
>>> with torch.no_grad():
...     _ = choice.alphas.zero_()
>>> choice(torch.ones(2)).tolist()  # (2 - 1) / 2
[0.5, 0.5]
>>> choice.choose("negate")
>>> choice(torch.ones(2)).tolist()
[-1.0, -1.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, cast, get_args

import torch

from fluxion import dims
from fluxion.dims import Shape, ShapeValue
from fluxion.errors import NasError, ShapeError, TreeError
from fluxion.tree.chain import Chain
from fluxion.tree.module import place_of, record_constructor_call
from fluxion.tree.naming import auto_names, class_name

Mode = Literal["softmax", "gumbel", "gumbel_soft", "sample", "fixed"]
"""How a choice combines its candidates (see the module docstring)."""

MODES: tuple[str, ...] = get_args(Mode)

INITIAL_SCALE = 1e-3
"""New architecture weights are ``INITIAL_SCALE * randn`` (DARTS's and Archai's initialisation)."""


class Choice(Chain):
    """Candidate operations for one place in a supernet, combined as ``mode`` says.

    Candidates are named: ``Choice(conv=..., pool=...)``; candidates given by position take their
    class name (``Linear``, ``Linear_1``...), and those names are then theirs for good. Adding or
    removing a candidate later (``choice.append(module, name="skip")``, ``del choice.pool``)
    keeps the architecture weight of every candidate that stays and gives a new one a weight drawn
    as at construction; the ``alphas`` tensor keeps its identity (optimizers and shared cells see
    the change), but an optimizer's per-parameter state for it no longer fits and must be rebuilt.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> choice = Choice(fl.Linear(4, 4), fl.Identity(), mode="sample")
    >>> choice.candidates, tuple(choice.alphas.shape)
    (('Linear', 'Identity'), (2,))
    >>> choice(torch.ones(3, 4)).shape
    torch.Size([3, 4])
    """

    repr_tag = "CHOICE"
    architecture_parameters = ("alphas",)

    alphas: torch.nn.Parameter
    mode: Mode
    chosen: str | None
    tau: float

    def __init__(
        self,
        *candidates: torch.nn.Module | Iterable[torch.nn.Module],
        mode: Mode = "softmax",
        chosen: str | None = None,
        tau: float = 1.0,
        **named: torch.nn.Module,
    ) -> None:
        positional = _flatten(candidates)
        names = _names_for(positional, taken=set(named))
        super().__init__(**dict(zip(names, positional, strict=True)), **named)
        self._candidate_names = tuple(self._modules)
        self.alphas = torch.nn.Parameter(INITIAL_SCALE * torch.randn(len(self._candidate_names)))
        self.tau = 1.0
        self.set_mode(mode, chosen=chosen, tau=tau)

    # -- reading -------------------------------------------------------------------------------

    @property
    def candidates(self) -> tuple[str, ...]:
        """The candidates' names, in the order of ``alphas``.

        >>> import fluxion.layers as fl
        >>> Choice(a=fl.ReLU(), b=fl.Tanh()).candidates
        ('a', 'b')
        """
        return self._candidate_names

    def probabilities(self) -> torch.Tensor:
        """``softmax(alphas)``: the weight of each candidate in ``"softmax"`` mode (detached).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> choice = Choice(a=fl.ReLU(), b=fl.Tanh())
        >>> with torch.no_grad():
        ...     _ = choice.alphas.copy_(torch.tensor([0.0, 0.0]))
        >>> choice.probabilities().tolist()
        [0.5, 0.5]
        """
        return torch.softmax(self.alphas.detach(), dim=0)

    # -- setting -------------------------------------------------------------------------------

    def set_mode(self, mode: Mode, *, chosen: str | None = None, tau: float | None = None) -> None:
        """Combine the candidates as ``mode`` says; ``"fixed"`` needs ``chosen`` (a candidate's name).

        >>> import fluxion.layers as fl
        >>> choice = Choice(a=fl.ReLU(), b=fl.Tanh())
        >>> choice.set_mode("gumbel", tau=0.5)
        >>> choice.mode, choice.tau
        ('gumbel', 0.5)
        >>> choice.set_mode("greedy")
        Traceback (most recent call last):
        ...
        fluxion.errors.NasError: Choice: unknown mode 'greedy'; modes: softmax, gumbel, gumbel_soft, sample, fixed
        """
        if mode not in MODES:
            raise NasError(f"{place_of(self)}: unknown mode {mode!r}; modes: {', '.join(MODES)}")
        if mode == "fixed" and chosen is None:
            raise NasError(f"{place_of(self)}: mode 'fixed' needs the candidate it keeps: chosen=<name>")
        if chosen is not None and self._candidate_names and chosen not in self._candidate_names:
            raise NasError(f"{place_of(self)}: {chosen!r} is not a candidate; {self._listing()}")
        if tau is not None and (isinstance(tau, bool) or not isinstance(tau, int | float) or not tau > 0):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise NasError(f"{place_of(self)}: tau is a temperature above 0, got {tau!r}")
        self.mode = mode
        self.chosen = chosen if mode == "fixed" else None
        if tau is not None:
            self.tau = float(tau)
        written: dict[str, Any] = {"mode": mode} if mode != "softmax" else {}
        if self.chosen is not None:
            written["chosen"] = self.chosen
        if self.tau != 1.0:
            written["tau"] = self.tau
        record_constructor_call(self, (), written)  # a spec written later shows the mode set now

    def choose(self, name: str) -> None:
        """Keep the candidate ``name`` alone (mode ``"fixed"``).

        >>> import fluxion.layers as fl
        >>> choice = Choice(a=fl.ReLU(), b=fl.Tanh())
        >>> choice.choose("b")
        >>> choice.mode, choice.chosen
        ('fixed', 'b')
        """
        self.set_mode("fixed", chosen=name)

    # -- running -------------------------------------------------------------------------------

    def forward(self, *args: Any) -> Any:
        candidates = cast(list[torch.nn.Module], list(self._modules.values()))
        if not candidates:
            raise NasError(f"{place_of(self)} has no candidates: give it at least one operation")
        if self.alphas.shape[0] != len(candidates):
            raise NasError(
                f"{place_of(self)}: its alphas hold {self.alphas.shape[0]} weights for {len(candidates)} candidates "
                "(alphas shared with a choice whose candidates changed?); give it alphas of its own size"
            )
        mode = self.mode
        if mode == "softmax":
            return _weighted(candidates, torch.softmax(self.alphas, dim=0), args)
        if mode == "fixed":
            return self._modules[cast(str, self.chosen)](*args)  # pyright: ignore[reportOptionalCall]
        if mode == "sample":
            return candidates[int(torch.randint(len(candidates), ()).item())](*args)
        if mode == "gumbel":
            weights = torch.nn.functional.gumbel_softmax(self.alphas, tau=self.tau, hard=True)
            index = int(weights.detach().argmax().item())
            return weights[index] * candidates[index](*args)
        weights = torch.nn.functional.gumbel_softmax(self.alphas, tau=self.tau, hard=False)
        return _weighted(candidates, weights, args)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The candidates' common output shape; a ``ShapeError`` names the candidates that disagree.

        In ``"fixed"`` mode only the chosen candidate runs, so only its shape counts.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(Choice(a=fl.Linear(4, 2), b=fl.Linear(4, 2))), ("B", 4)).output
        (B, 2)
        """
        names = self._candidate_names
        if not names:
            raise ShapeError(f"{place_of(self)} has no candidates: give it at least one operation")
        if self.mode == "fixed" and self.chosen in names:
            names = (self.chosen,)
        results = [(name, dims.run(self._modules[name], *inputs)) for name in names]  # pyright: ignore[reportArgumentType]
        first_name, first = results[0]
        for name, result in results[1:]:
            _require_same(first, result, f"{place_of(self)}: candidates {first_name!r} and {name!r}")
        return first

    def extra_repr(self) -> str:
        shown = f"mode={self.mode!r}"
        if self.chosen is not None:
            shown += f", chosen={self.chosen!r}"
        if self.mode.startswith("gumbel"):
            shown += f", tau={self.tau}"
        return shown

    # -- surgery -------------------------------------------------------------------------------

    def check_surgery(
        self, removed: list[tuple[str, torch.nn.Module]], added: list[tuple[str | None, torch.nn.Module]]
    ) -> None:
        """Candidates are named: an unnamed one is refused.

        >>> import fluxion.layers as fl
        >>> Choice(a=fl.ReLU()).append(fl.Tanh())
        Traceback (most recent call last):
        ...
        fluxion.errors.TreeError: Choice: a candidate needs a name: append(module, name=...) (got an unnamed Tanh)
        """
        for name, module in added:
            if name is None:
                raise TreeError(
                    f"{place_of(self)}: a candidate needs a name: append(module, name=...) "
                    f"(got an unnamed {class_name(module)})"
                )

    def children_changed(self) -> None:
        """The architecture weights follow the candidates: each one that stays keeps its weight, in
        the candidates' new order, and a new one gets a weight drawn as at construction.

        >>> import fluxion.layers as fl
        >>> choice = Choice(a=fl.ReLU(), b=fl.Tanh())
        >>> kept = choice.alphas[1].item()
        >>> choice.insert(0, fl.Sigmoid(), name="c")
        >>> del choice.a
        >>> choice.candidates, choice.alphas[1].item() == kept
        (('c', 'b'), True)
        """
        old = self._candidate_names
        names = tuple(self._modules)
        values = self.alphas.detach()
        fresh = INITIAL_SCALE * torch.randn(len(names), dtype=values.dtype, device=values.device)
        for position, name in enumerate(names):
            if name in old:
                fresh[position] = values[old.index(name)]
        with torch.no_grad():
            self.alphas.data = fresh
        self._candidate_names = names
        # Only the removal of the chosen candidate unfixes the choice: a spec builds the choice
        # first (mode and chosen) and appends its candidates one by one. set_mode records the
        # change, so a spec written later no longer names the candidate that left.
        if self.chosen is not None and self.chosen in old and self.chosen not in names:
            self.set_mode("softmax")

    # -- internals -----------------------------------------------------------------------------

    def _listing(self) -> str:
        return f"candidates: {', '.join(self._candidate_names) or '(none)'}"


def _weighted(modules: Sequence[torch.nn.Module], weights: torch.Tensor, args: tuple[Any, ...]) -> Any:
    total: Any = None
    for module, weight in zip(modules, weights.unbind(), strict=True):
        output = weight * module(*args)
        total = output if total is None else total + output
    return total


def _flatten(candidates: tuple[torch.nn.Module | Iterable[torch.nn.Module], ...]) -> list[torch.nn.Module]:
    flat: list[torch.nn.Module] = []
    for item in candidates:
        given = cast(object, item)
        if isinstance(given, torch.nn.Module):
            flat.append(given)
        elif isinstance(given, Iterable) and not isinstance(given, str | bytes):
            for module in cast(Iterable[object], given):
                if not isinstance(module, torch.nn.Module):
                    raise NasError(f"Choice: candidates are modules, got {type(module).__name__}")
                flat.append(module)
        else:
            raise NasError(f"Choice: candidates are modules, got {type(given).__name__}")
    return flat


def _names_for(modules: list[torch.nn.Module], taken: set[str]) -> list[str]:
    """Automatic names for positional candidates, made explicit so that they never change."""
    groups: dict[str, list[int]] = {}
    for index, module in enumerate(modules):
        groups.setdefault(class_name(module), []).append(index)
    names = [""] * len(modules)
    for base, indices in groups.items():
        for index, name in zip(indices, auto_names(base, len(indices), taken), strict=True):
            names[index] = name
    return names


def _require_same(first: ShapeValue, other: ShapeValue, what: str) -> None:
    if isinstance(first, Shape) and isinstance(other, Shape):
        if len(first) != len(other):
            raise ShapeError(f"{what} give outputs of different ranks: {first} and {other}")
        for expected, got in zip(first, other, strict=True):
            if dims.equal(expected, got) is False:
                raise ShapeError(f"{what} give different output shapes: {first} and {other}")
            dims.require_equal(expected, got, f"{what} give the same output shape")
        return
    if isinstance(first, tuple) and isinstance(other, tuple) and not isinstance(first, Shape):
        first_items = cast(tuple[ShapeValue, ...], first)
        other_items = cast(tuple[ShapeValue, ...], other)
        if len(first_items) == len(other_items):
            for one, two in zip(first_items, other_items, strict=True):
                _require_same(one, two, what)
            return
    if first != other:
        raise ShapeError(f"{what} give different outputs: {first} and {other}")
