"""``meta_stand_ins`` puts back what a forward changes inside the containers a module holds
(``_modules``, a cache of its own): nothing the run made, no meta tensor, is left behind."""

from __future__ import annotations

import torch

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.inspect.activations import largest_activations
from fluxion.shapes.meta import run_on_meta


class LazyHead(torch.nn.Module):
    """A head made on the first call, sized by the input's features (a common lazy pattern)."""

    def __init__(self) -> None:
        super().__init__()
        self.head: torch.nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            self.head = torch.nn.Linear(x.shape[-1], 3, device=x.device)
        return self.head(x)


def test_a_submodule_a_forward_makes_is_not_left_behind() -> None:
    model = fl.Chain(fl.Linear(4, 8), LazyHead())
    addresses = [address for address, _ in model.named_modules()]
    keys = set(model.state_dict())
    run_on_meta(model, (dims.Shape([2, 4]),))
    assert model[1].head is None  # the attribute is put back...
    assert [address for address, _ in model.named_modules()] == addresses  # ...and _modules too
    assert set(model.state_dict()) == keys
    assert {value.device.type for value in model.state_dict().values()} == {"cpu"}


class Positions(fl.Module):
    """Adds each position's index along the sequence, computed once for each length and kept."""

    def __init__(self) -> None:
        super().__init__()
        self.by_length: dict[int, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-2]
        if length not in self.by_length:
            self.by_length[length] = torch.arange(length, dtype=x.dtype, device=x.device)[:, None]
        return x + self.by_length[length]

    def output_shape(self, x: dims.ShapeValue) -> dims.ShapeValue:
        return x


def test_a_cache_a_forward_fills_holds_no_meta_tensor_afterwards() -> None:
    model = fl.Chain(fl.Linear(4, 4), Positions())
    largest_activations(shapes.infer(model, ("B", "T", 4)))  # summary's meta run, at T = 64
    assert all(value.device.type == "cpu" for value in model.Positions.by_length.values())
    assert model(torch.zeros(1, 64, 4)).shape == (1, 64, 4)  # a meta tensor from the cache fails here
