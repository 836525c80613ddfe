"""How finalize reads a trained supernet: each choice's best candidate, and how strong it is.

Two rules rank the candidates and the edges. ``"softmax"`` (DARTS) compares the softmax of a
choice's architecture weights, so an edge's strength is the probability of its best candidate
within its own choice; ``"raw"`` (Archai) compares the architecture weights themselves. Both
pick the same candidate within a choice (softmax keeps the order), but they can rank the edges
of a node differently and so pick different networks from the same weights. ``none`` (a candidate
named ``none``, or any :class:`Zero`-like candidate named in ``never``) is never chosen.

>>> import torch
>>> import fluxion.layers as fl
>>> from fluxion.nas.choice import Choice
>>> choice = Choice(none=fl.Identity(), conv=fl.Identity(), pool=fl.Identity())
>>> with torch.no_grad():
...     _ = choice.alphas.copy_(torch.tensor([5.0, 1.0, 2.0]))
>>> best_candidate(choice, "raw")
('pool', 2.0)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Literal, get_args

import torch

from fluxion.errors import NasError
from fluxion.nas.choice import Choice
from fluxion.tree.module import place_of

Rank = Literal["softmax", "raw"]
"""How candidates and edges are ranked: by softmax probability (DARTS) or raw weight (Archai)."""

RANKS: tuple[str, ...] = get_args(Rank)

NEVER: tuple[str, ...] = ("none",)
"""Candidates finalize never chooses (DARTS's and Archai's ``none``)."""


def check_rank(rank: str) -> Rank:
    """``rank`` when it is a known rule, else a ``NasError``.

    >>> check_rank("raw")
    'raw'
    """
    if rank not in RANKS:
        raise NasError(f"unknown ranking rule {rank!r}; rules: {', '.join(RANKS)}")
    return rank  # pyright: ignore[reportReturnType]


def scores(values: torch.Tensor, rank: Rank, owner: str = "architecture weights") -> list[float]:
    """The values a rule compares: ``softmax(values)`` or ``values`` as they are; a ``NasError``
    naming ``owner`` when they hold a NaN (a diverged search ranks nothing; ``-inf`` is a weight of 0).

    >>> scores(torch.tensor([0.0, 0.0]), "softmax")
    [0.5, 0.5]
    >>> scores(torch.tensor([0.0, float("nan")]), "raw", "Choice at 'edge'")
    Traceback (most recent call last):
    ...
    fluxion.errors.NasError: Choice at 'edge': architecture weights [0.0, nan] give NaN scores ...
    """
    detached = values.detach().float()
    chosen = torch.softmax(detached, dim=0) if rank == "softmax" else detached
    found = [float(value) for value in chosen]
    if any(math.isnan(value) for value in found):
        shown = [float(value) for value in detached]
        raise NasError(f"{owner}: architecture weights {shown} give NaN scores (a diverged search?): nothing to rank")
    return found


def best_candidate(choice: Choice, rank: Rank, never: Collection[str] = NEVER) -> tuple[str, float]:
    """The candidate ``choice`` keeps and its score (its edge's strength); ties keep the first.

    A choice already fixed keeps its chosen candidate, with the strongest possible score.

    >>> import fluxion.layers as fl
    >>> best_candidate(Choice(none=fl.Identity()), "softmax")
    Traceback (most recent call last):
    ...
    fluxion.errors.NasError: Choice: no candidate can be chosen: every candidate is one finalize never keeps (none)
    """
    names = choice.candidates
    if not names:
        raise NasError(f"{place_of(choice)} has no candidates: give it at least one operation")
    if choice.mode == "fixed" and choice.chosen is not None:
        return choice.chosen, float("inf")
    values = scores(choice.alphas, rank, place_of(choice))
    allowed = [index for index, name in enumerate(names) if name not in never]
    if not allowed:
        raise NasError(
            f"{place_of(choice)}: no candidate can be chosen: every candidate is one finalize never keeps "
            f"({', '.join(names)})"
        )
    best = max(allowed, key=lambda index: (values[index], -index))
    return names[best], values[best]


def strongest(strengths: Sequence[float], keep: int) -> list[int]:
    """The positions of the ``keep`` largest strengths, strongest first; ties keep the earlier.

    >>> strongest([0.2, 0.9, 0.5, 0.9], 2)
    [1, 3]
    """
    order = sorted(range(len(strengths)), key=lambda index: (-strengths[index], index))
    return order[:keep]
