"""The process group as fluxion sees it: who is running, and one verdict for all ranks.

A check that fails on one rank and passes on another would leave the passing ranks waiting in the
next collective forever. :func:`agreed` runs a step on every rank and then compares notes: when
any rank failed, every rank raises the same error (the lowest failing rank's), so bad input stops
the whole job at once with one message.

>>> agreed(lambda: 41 + 1)  # without a process group: just the step
42
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar, cast

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException

from fluxion.errors import DistributedError, FluxionError

T = TypeVar("T")

_Problem = tuple[str, str, str]
"""What a failing rank tells the others: its error class (module and name, for a class every rank
can import; a class object itself may not pickle) and the message."""


def running() -> bool:
    """Whether a default process group is up (``torch.distributed.init_process_group`` was called).

    >>> running()
    False
    """
    return dist.is_available() and dist.is_initialized()


def require_process_group(what: str) -> None:
    """Raise a ``DistributedError`` that says how to start one when no process group runs.

    >>> require_process_group("shard")
    Traceback (most recent call last):
    ...
    fluxion.errors.DistributedError: no process group is running; shard needs one: start the script \
with torchrun (or call torch.distributed.init_process_group) first
    """
    if not running():
        raise DistributedError(
            f"no process group is running; {what} needs one: start the script with torchrun "
            "(or call torch.distributed.init_process_group) first"
        )


def rank() -> int:
    """This process's rank in the default group (0 without one).

    >>> rank()
    0
    """
    return dist.get_rank() if running() else 0


def world_size() -> int:
    """How many ranks the default group has (1 without one).

    >>> world_size()
    1
    """
    return dist.get_world_size() if running() else 1


def agreed(step: Callable[[], T]) -> T:
    """Run ``step`` on every rank; if it raised anywhere, raise the same error on every rank.

    A fluxion error keeps its class; anything else becomes a ``DistributedError`` naming it. A
    rank whose own step failed chains its local exception to the shared one.

    >>> from fluxion.errors import WeightsError
    >>> def bad() -> None:
    ...     raise WeightsError("model.safetensors: 1 missing key")
    >>> agreed(bad)
    Traceback (most recent call last):
    ...
    fluxion.errors.WeightsError: model.safetensors: 1 missing key
    """
    local: BaseException | None = None
    problem: _Problem | None = None
    value: T | None = None
    try:
        value = step()
    except FluxionError as error:
        local, problem = error, (*_class_name(type(error)), str(error))
    except CheckpointException as error:  # torch.distributed.checkpoint's error (a BaseException)
        local, problem = error, (*_class_name(DistributedError), describe_checkpoint_failure(error))
    except Exception as error:  # an unforeseen failure must stop the other ranks too
        local, problem = error, (*_class_name(DistributedError), f"{type(error).__name__}: {error}")
    problems: list[_Problem | None] = [problem]
    if running() and world_size() > 1:
        problems = [None] * world_size()
        gather = cast(Callable[[list[object], object], None], dist.all_gather_object)  # pyright: ignore[reportUnknownMemberType]
        gather(cast(list[object], problems), problem)
    failing = [(index, found) for index, found in enumerate(problems) if found is not None]
    if not failing:
        return cast(T, value)
    first_rank, (module, name, message) = failing[0]
    if len(problems) > 1 and not all(found == (module, name, message) for _, found in failing):
        others = ", ".join(str(index) for index, _ in failing[1:])
        message = f"rank {first_rank}: {message}" + (f" (ranks {others} failed too)" if others else "")
    elif len(problems) > 1 and len(failing) < len(problems):
        message = f"rank {first_rank}: {message}"
    raise _rebuilt(_class_named(module, name), message) from local


def describe_checkpoint_failure(error: CheckpointException) -> str:
    """One line per failing rank of a ``torch.distributed.checkpoint`` error: what failed, no traceback.

    >>> failure = CheckpointException("read", {1: (FileNotFoundError("no __1_0.distcp"), None)})
    >>> describe_checkpoint_failure(failure)
    'rank 1: FileNotFoundError: no __1_0.distcp'
    """
    failures = cast("dict[int, tuple[BaseException, object]]", error.failures)
    lines = [f"rank {rank}: {type(cause).__name__}: {cause}" for rank, (cause, _) in sorted(failures.items())]
    return "; ".join(lines) or str(error).splitlines()[0]


def same_everywhere(value: object, what: str) -> None:
    """Raise the same ``DistributedError`` on every rank unless every rank passed an equal ``value``.

    ``what`` names the value in the message (``"the folder"``). Without a process group, nothing
    to compare.

    >>> same_everywhere("checkpoint", "the folder")
    """
    if not running() or world_size() == 1:
        return
    values: list[object] = [None] * world_size()
    gather = cast(Callable[[list[object], object], None], dist.all_gather_object)  # pyright: ignore[reportUnknownMemberType]
    gather(values, value)
    differing = [index for index, found in enumerate(values) if found != values[0]]
    if differing:
        raise DistributedError(
            f"the ranks were given different {what}: rank 0 {_shown(values[0])}, rank {differing[0]} "
            f"{_shown(values[differing[0]])}; every rank must pass the same"
        )


def _class_name(kind: type[FluxionError]) -> tuple[str, str]:
    return kind.__module__, kind.__qualname__


def _class_named(module: str, name: str) -> type[FluxionError]:
    """The error class another rank named, when this rank can import it; else ``DistributedError``."""
    found: object = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, FluxionError):
        return found
    return DistributedError


def _shown(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def _rebuilt(kind: type[FluxionError], message: str) -> FluxionError:
    try:
        return kind(message)
    except Exception:  # a subclass whose constructor takes other arguments
        return DistributedError(message)


def device_of_mesh(device_type: str) -> torch.device:
    """The device this rank computes on for a mesh of ``device_type`` (``cuda`` means the current GPU).

    >>> device_of_mesh("cpu")
    device(type='cpu')
    """
    if device_type == "cpu":
        return torch.device("cpu")
    current: object = getattr(getattr(torch, device_type, None), "current_device", None)
    if callable(current):
        return torch.device(device_type, cast(Callable[[], int], current)())
    return torch.device(device_type)
