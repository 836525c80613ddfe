"""``run_on_meta`` / ``meta_stand_ins`` put back every container a module holds (a ``defaultdict``
cache, torch's set of non-persistent buffers), and a run on a node below the root keeps the tree's
context dicts themselves, which a caller may hold."""

from __future__ import annotations

import collections

import torch

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.shapes.meta import run_on_meta


class DefaultdictCache(torch.nn.Module):
    """Keeps what it saw in a ``collections.defaultdict``: a dict, but not exactly ``dict``."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: collections.defaultdict[int, list[torch.Tensor]] = collections.defaultdict(list)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen[x.shape[-1]].append(x)
        return x


class RegistersScratch(torch.nn.Module):
    """Registers a non-persistent buffer on its first call (torch records the name in a set)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if "scratch" not in self._buffers:
            self.register_buffer("scratch", torch.zeros_like(x), persistent=False)
        return x


class NoRule(torch.nn.Module):
    """No shape rule: ``shapes.infer`` runs it on meta tensors."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x


def test_a_defaultdict_cache_gets_no_meta_tensor() -> None:
    module = DefaultdictCache()
    run_on_meta(module, (dims.Shape([3, 2]),))
    assert dict(module.seen) == {}


def test_a_buffer_registered_in_the_run_leaves_no_name_behind() -> None:
    module = RegistersScratch()
    run_on_meta(module, (dims.Shape([3, 2]),))
    assert dict(module.named_buffers()) == {}
    assert module._non_persistent_buffers_set == set()  # pyright: ignore[reportPrivateUsage]


def test_infer_through_a_node_without_a_rule_keeps_the_context_dicts() -> None:
    model = fl.Chain(fl.Linear(2, 2), NoRule())
    model.set_context("run", {"step": 1})
    held = model.use_context("run")
    shapes.infer(model, (3, 2))  # NoRule runs on meta, below the root
    held["step"] = 2  # what is written into the tree's dict is what the next forward sees
    assert model.use_context("run")["step"] == 2
