"""Small models and snapshots shared by the weights tests."""

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
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


Exact = dict[str, tuple[torch.Tensor, torch.Tensor | None]]


def exact_snapshot(model: torch.nn.Module) -> Exact:
    """Every parameter and buffer by key (ties included): the tensor object itself and a copy of its data."""
    tensors = [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]
    return {key: (tensor, None if tensor.is_meta else tensor.detach().clone()) for key, tensor in tensors}


def assert_exactly_as_before(model: torch.nn.Module, snapshot: Exact) -> None:
    """The same tensor objects under the same keys, with the same dtype, shape, device and bytes."""
    now = exact_snapshot(model)
    assert now.keys() == snapshot.keys()
    for key, (tensor, data) in snapshot.items():
        assert now[key][0] is tensor, f"{key} is another tensor object"
        if data is None:
            assert tensor.is_meta, key
            continue
        assert (tensor.dtype, tensor.shape, tensor.device) == (data.dtype, data.shape, data.device), key
        assert bytes_of(tensor) == bytes_of(data), f"{key} changed"


def bytes_of(tensor: torch.Tensor) -> bytes:
    """The tensor's values as raw bytes (so that NaNs and -0.0 compare exactly)."""
    dense = tensor.detach().cpu()
    flat = (dense if dense.layout == torch.strided else dense.to_dense()).contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def outcome_within(seconds: float, call: Callable[[], object], fifos: Iterable[Path] = ()) -> BaseException | None:
    """Run ``call`` in a thread; its exception (None when it returned). A call still running after
    ``seconds`` fails the test instead of hanging it: it is unblocked by opening the ``fifos``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # handed to the test
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:  # a reader blocks until a writer opens the FIFO, and the other way round
            for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, flags))
        thread.join(seconds)
        pytest.fail(f"the call was still blocked after {seconds} s")
    return outcome[0]


class Exploding(torch.Tensor):
    """A checkpoint tensor that fails when it is copied: a failure no check can foresee."""

    failure: type[BaseException] = RuntimeError

    @classmethod
    def __torch_function__(
        cls, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        if func in (torch.Tensor.copy_, torch.Tensor.to):
            raise cls.failure("the disk went away")
        return super().__torch_function__(func, types, args, kwargs or {})


class Interrupting(Exploding):
    failure = KeyboardInterrupt


class Signalling(torch.Tensor):
    """A checkpoint tensor that sends this process SIGINT (Ctrl-C) when it is copied or converted:
    an interrupt that arrives while a load or a merge runs."""

    @classmethod
    def __torch_function__(
        cls, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        if func in (torch.Tensor.copy_, torch.Tensor.to):
            os.kill(os.getpid(), signal.SIGINT)
        return super().__torch_function__(func, types, args, kwargs or {})


def assert_each_as_before_or_loaded(
    model: torch.nn.Module, snapshot: Exact, loaded: dict[str, torch.Tensor]
) -> set[str]:
    """Every tensor is the same object as before, holding either its old bytes or the checkpoint's
    values for its key; returns the keys that hold the checkpoint's values."""
    now = exact_snapshot(model)
    assert now.keys() == snapshot.keys()
    changed: set[str] = set()
    for key, (tensor, data) in snapshot.items():
        assert now[key][0] is tensor, f"{key} is another tensor object"
        if data is None or bytes_of(tensor) == bytes_of(data):
            continue
        assert bytes_of(tensor) == bytes_of(loaded[key].as_subclass(torch.Tensor).to(tensor.dtype)), f"{key} changed"
        changed.add(key)
    return changed
