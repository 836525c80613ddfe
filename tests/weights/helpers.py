"""Small models and snapshots shared by the weights tests."""

from pathlib import Path

import torch

import fluxion.layers as fl


def small_model() -> fl.Chain:
    """Two blocks of Linear + LayerNorm and a head: a handful of keys with repeated families."""
    return fl.Chain(
        blocks=fl.Chain(
            fl.Chain(fl.Linear(4, 8), fl.LayerNorm(8), fl.ReLU()),
            fl.Chain(fl.Linear(8, 8), fl.LayerNorm(8), fl.ReLU()),
        ),
        head=fl.Linear(8, 3),
    )


def meta_small_model() -> fl.Chain:
    with torch.device("meta"):
        return small_model()


def state_snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A deep copy of every tensor of the model, to check later that nothing changed."""
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def same_state(model: torch.nn.Module, snapshot: dict[str, torch.Tensor]) -> bool:
    state = model.state_dict()
    return state.keys() == snapshot.keys() and all(
        state[key].dtype == value.dtype and torch.equal(state[key], value) for key, value in snapshot.items()
    )


def mapped_files(tensor: torch.Tensor) -> set[str]:
    """The files whose memory mapping holds the tensor's data (Linux /proc/self/maps)."""
    address = tensor.data_ptr()
    files: set[str] = set()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, end = (int(part, 16) for part in fields[0].split("-"))
        if start <= address < end and len(fields) == 6:
            files.add(fields[5].strip())
    return files
