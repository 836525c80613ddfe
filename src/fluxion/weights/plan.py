"""Matching a checkpoint against a model: which tensor goes where, or every reason it cannot.

Planning reads only headers (keys, shapes, dtypes) and never touches the model, so a load that
fails here leaves the model exactly as it was.

>>> import torch, fluxion.layers as fl
>>> from fluxion.weights.checkpoint import open_checkpoint
>>> from fluxion.weights.mapping import KeyMapping
>>> model = fl.Chain(fl.Linear(2, 3))
>>> checkpoint = open_checkpoint({"Linear.weight": torch.zeros(3, 2), "Linear.bias": torch.zeros(3)})
>>> plan = make_plan(model, checkpoint, KeyMapping())
>>> [assignment.target.key for assignment in plan.assignments]
['Linear.weight', 'Linear.bias']
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import cast

import torch
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from fluxion.errors import WeightsError
from fluxion.weights._torch import buffers_of, named_modules, parameters_of, persistent_buffers
from fluxion.weights.checkpoint import Checkpoint
from fluxion.weights.mapping import KeyMapping, Target
from fluxion.weights.problems import Problems

ALIASES_METADATA = "fluxion.aliases"


@dataclass(frozen=True)
class Slot:
    """One tensor of the model: a parameter or a persistent buffer, by its ``state_dict`` key.

    >>> import fluxion.layers as fl
    >>> slot = model_slots(fl.Linear(2, 3))["weight"]
    >>> slot.is_parameter, tuple(slot.tensor.shape)
    (True, (3, 2))
    """

    key: str
    module: torch.nn.Module
    name: str
    is_parameter: bool

    @property
    def tensor(self) -> torch.Tensor:
        """The tensor currently in the slot.

        >>> import fluxion.layers as fl
        >>> model_slots(fl.BatchNorm2d(4))["running_mean"].tensor.shape
        torch.Size([4])
        """
        tensors = parameters_of(self.module) if self.is_parameter else buffers_of(self.module)
        tensor = tensors[self.name]
        assert tensor is not None  # only non-None tensors become slots
        return tensor


def model_slots(model: torch.nn.Module) -> dict[str, Slot]:
    """Every parameter and persistent buffer of ``model`` by ``state_dict`` key, tied ones included.

    >>> import fluxion.layers as fl
    >>> list(model_slots(fl.Chain(fl.Linear(2, 2))))
    ['Linear.weight', 'Linear.bias']
    """
    slots: dict[str, Slot] = {}
    for address, module in named_modules(model):
        prefix = f"{address}." if address else ""
        own = [(name, True, p) for name, p in parameters_of(module).items() if p is not None]
        own += [(name, False, b) for name, b in persistent_buffers(module).items()]
        for name, is_parameter, tensor in own:
            if isinstance(tensor, UninitializedParameter | UninitializedBuffer):
                raise WeightsError(
                    f"{prefix + name} is not initialised yet (a lazy module): run one forward pass first"
                )
            slots[prefix + name] = Slot(prefix + name, module, name, is_parameter)
    return slots


@dataclass(frozen=True)
class Assignment:
    """One checkpoint tensor (after its mapping steps) for one model tensor and the slots tied to it.

    ``in_place`` is True when the model's tensor is kept and the checkpoint's values are copied into
    it (it has data, and the dtype and device stay); otherwise the slots get a new tensor.

    >>> Assignment.__dataclass_fields__.keys()
    dict_keys(['source', 'target', 'slots', 'dtype', 'device', 'in_place'])
    """

    source: str
    target: Target
    slots: tuple[Slot, ...]
    dtype: torch.dtype
    device: torch.device
    in_place: bool = False


@dataclass
class Plan:
    """What a load will do: assignments, and the keys left out on either side (when not strict).

    >>> Plan().assignments
    []
    """

    assignments: list[Assignment] = field(default_factory=lambda: [])
    missing: list[str] = field(default_factory=lambda: [])
    unexpected: list[str] = field(default_factory=lambda: [])


def make_plan(
    model: torch.nn.Module,
    checkpoint: Checkpoint,
    mapping: KeyMapping,
    *,
    prefix: str | None = None,
    strict: bool = True,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    optional: AbstractSet[str] = frozenset(),
) -> Plan:
    """Match every checkpoint key to a model tensor; raise ``WeightsError`` listing all problems.

    With ``strict=False`` missing and unexpected keys are allowed (and returned in the plan), but
    shape and dtype mismatches still fail. Tied tensors load once and stay tied, even when only
    one of their keys is in the ``prefix`` subtree. Model keys in ``optional`` are loaded when the
    checkpoint has them and are never missing (tensors that hold values of their own already).

    >>> import fluxion.layers as fl
    >>> from fluxion.weights.checkpoint import open_checkpoint
    >>> make_plan(fl.Linear(2, 3), open_checkpoint({"weight": torch.zeros(3, 2)}), KeyMapping(), strict=False).missing
    ['bias']
    """
    dtype, target_device = _checked_dtype(dtype), checked_device(device)
    slots = model_slots(model)
    mapped = {key: mapping.targets(key) for key in checkpoint.entries}
    scope = _Scope.of(model, checkpoint.name, mapped, prefix)
    in_scope = {key: slot for key, slot in slots.items() if key.startswith(scope.model_prefix)}
    problems = Problems(candidates=list(in_scope))
    sources = _sources_by_target(mapped, scope, in_scope, problems)
    _fill_from_aliases(checkpoint, mapping, scope, in_scope, sources)

    plan = Plan()
    for group in _tie_groups(slots):
        wanted = [slot for slot in group if slot.key in in_scope]
        present = [slot for slot in wanted if slot.key in sources]
        if not present:
            problems.missing.extend(slot.key for slot in wanted if slot.key not in optional)
            continue
        reasons = [(slot.key, _mismatch(slot, *sources[slot.key], checkpoint)) for slot in present]
        mismatched = [(key, reason) for key, reason in reasons if reason]
        if mismatched:
            problems.mismatched.extend(mismatched)
            continue
        source, target = sources[present[0].key]
        current = group[0].tensor
        wanted_dtype = dtype if dtype is not None and current.is_floating_point() else current.dtype
        wanted_device = target_device or (torch.device("cpu") if current.is_meta else current.device)
        in_place = not current.is_meta and current.dtype == wanted_dtype and current.device == wanted_device
        unwritable = unwritable_reason(current) if in_place else None
        if unwritable:
            problems.mismatched.append((present[0].key, unwritable))
            continue
        plan.assignments.append(Assignment(source, target, tuple(group), wanted_dtype, wanted_device, in_place))

    if strict and not problems.empty:
        raise _error(problems, checkpoint.name)
    if problems.mismatched:  # not strict: only what cannot be loaded at all is an error
        raise _error(Problems(mismatched=problems.mismatched), checkpoint.name)
    plan.missing, plan.unexpected = problems.missing, problems.unexpected
    return plan


def _mismatch(slot: Slot, source: str, target: Target, checkpoint: Checkpoint) -> str | None:
    """Why the checkpoint tensor cannot fill the slot, or None when it fits."""
    entry = checkpoint.entries[source]
    if entry.unusable:
        return f"checkpoint {source!r} is {entry.unusable}"
    current = slot.tensor
    try:
        shape = target.shape(entry.shape)
    except WeightsError as error:
        return f"{source!r}: {error}"
    if shape != tuple(current.shape):
        return f"model has shape {tuple(current.shape)}, checkpoint {source!r} has {shape}"
    if _kind(entry.dtype) != _kind(current.dtype):
        return f"model holds {current.dtype}, checkpoint {source!r} holds {entry.dtype}"
    return None


def unwritable_reason(tensor: torch.Tensor) -> str | None:
    """Why values cannot be copied into the model's ``tensor`` in place, or None when they can.

    >>> unwritable_reason(torch.zeros(2, 3)) is None
    True
    >>> unwritable_reason(torch.zeros(3).expand(2, 3))
    "the model's tensor is expanded (several of its elements share one memory location), so it \
cannot be written in place; give it memory of its own first (.clone())"
    """
    if tensor.is_inference() and not torch.is_inference_mode_enabled():
        return (
            "the model's tensor was created under torch.inference_mode() and cannot be written outside it; "
            "do this inside torch.inference_mode(), or build the model outside it"
        )
    if tensor.layout != torch.strided or tensor.is_quantized:
        return "the model's tensor is not a dense tensor (sparse or quantized); values are loaded into dense tensors"
    if any(stride == 0 and size > 1 for stride, size in zip(tensor.stride(), tensor.shape, strict=True)):
        return (
            "the model's tensor is expanded (several of its elements share one memory location), so it cannot "
            "be written in place; give it memory of its own first (.clone())"
        )
    return None


def _checked_dtype(dtype: object) -> torch.dtype | None:
    if dtype is None:
        return None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise WeightsError(f"dtype must be a floating-point torch.dtype (it converts floating tensors), got {dtype!r}")
    return dtype


def checked_device(
    device: torch.device | str | None, *, error: Callable[[str], Exception] = WeightsError
) -> torch.device | None:
    """The device in its canonical form (``"cuda"`` becomes ``cuda:0``), None for None, or a clear
    ``error`` (a ``WeightsError`` unless the caller's family is another).

    >>> checked_device("cpu")
    device(type='cpu')
    >>> checked_device("nowhere")
    Traceback (most recent call last):
    ...
    fluxion.errors.WeightsError: device 'nowhere' cannot be used here: ...
    """
    if device is None:
        return None
    try:
        return torch.empty(0, device=device).device
    except (RuntimeError, AssertionError, TypeError, ValueError) as problem:
        raise error(f"device {device!r} cannot be used here: {problem}") from None


@dataclass(frozen=True)
class _Scope:
    """The part of the model a load touches, and the model key each mapped checkpoint key stands for.

    ``prefix`` names one subtree: the model is cut down to it when it has that address, and the
    checkpoint is cut down to it (the prefix stripped) when its mapped keys live under it.
    """

    model_prefix: str = ""
    strip: str = ""
    add: str = ""

    @classmethod
    def of(
        cls, model: torch.nn.Module, checkpoint_name: str, mapped: dict[str, tuple[Target, ...]], prefix: str | None
    ) -> _Scope:
        if prefix is None:
            return cls()
        if not isinstance(prefix, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise WeightsError(f"prefix must be an address (a string), got {prefix!r}")
        head = prefix.strip(".") + "."
        if head == ".":
            raise WeightsError(f"prefix {prefix!r} is not an address")
        try:
            model.get_submodule(head[:-1])
            model_has = True
        except AttributeError:
            model_has = False
        checkpoint_has = any(target.key.startswith(head) for targets in mapped.values() for target in targets)
        if not (model_has or checkpoint_has):
            raise WeightsError(
                f"prefix {head[:-1]!r} is neither an address in the model nor a key prefix in {checkpoint_name}"
            )
        return cls(
            model_prefix=head if model_has else "",
            strip=head if checkpoint_has else "",
            add=head if model_has else "",
        )

    def model_key(self, key: str) -> str | None:
        if self.strip:
            if not key.startswith(self.strip):
                return None
            key = key[len(self.strip) :]
        return self.add + key


def _sources_by_target(
    mapped: dict[str, tuple[Target, ...]],
    scope: _Scope,
    slots: dict[str, Slot],
    problems: Problems,
) -> dict[str, tuple[str, Target]]:
    """For each model key, the checkpoint key that feeds it; unknown and doubled keys become problems."""
    sources: dict[str, tuple[str, Target]] = {}
    for key, targets in mapped.items():
        for target in targets:
            address = scope.model_key(target.key)
            if address is None:
                continue
            if address not in slots:
                problems.unexpected.append(key)
                if address != key:
                    problems.mapped[key] = address
            elif address in sources:
                problems.mismatched.append((address, f"both {sources[address][0]!r} and {key!r} map to it"))
            else:
                sources[address] = (key, Target(address, target.steps))
    return sources


def _fill_from_aliases(
    checkpoint: Checkpoint,
    mapping: KeyMapping,
    scope: _Scope,
    slots: dict[str, Slot],
    sources: dict[str, tuple[str, Target]],
) -> None:
    """Feed keys that ``save`` left out as copies of a tied tensor from the key it kept instead."""
    try:
        aliases = json.loads(checkpoint.metadata.get(ALIASES_METADATA, "{}"))
    except json.JSONDecodeError:
        return
    if not isinstance(aliases, dict):
        return
    for dropped, kept in cast("dict[str, object]", aliases).items():
        if not isinstance(kept, str) or kept not in checkpoint.entries or dropped in checkpoint.entries:
            continue
        for target in mapping.targets(dropped):
            address = scope.model_key(target.key)
            if address is not None and address in slots and address not in sources:
                sources[address] = (kept, Target(address, target.steps))


def _tie_groups(slots: dict[str, Slot]) -> list[list[Slot]]:
    """Slots grouped by the tensor they hold: tied parameters load once, from any of their keys."""
    groups: dict[int, list[Slot]] = {}
    for slot in slots.values():
        groups.setdefault(id(slot.tensor), []).append(slot)
    return list(groups.values())


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "boolean"
    if dtype.is_complex:
        return "complex"
    return "floating point" if dtype.is_floating_point else "integer"


def _error(problems: Problems, name: str) -> WeightsError:
    return WeightsError(
        problems.describe(name),
        missing=tuple(problems.missing),
        unexpected=tuple(problems.unexpected),
        mismatched=tuple(key for key, _ in problems.mismatched),
    )
