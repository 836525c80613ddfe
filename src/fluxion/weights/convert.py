"""``convert``: copy a foreign model's weights into a fluxion tree of the same architecture.

Both models run once on the same example inputs. Their weighted leaves (modules holding
parameters or persistent buffers themselves) are paired in the order they execute, checking
that each pair holds tensors of the same shapes; the weights are copied through ``load``; both
models run again and must agree. The result is the key mapping, which replays the conversion on
a checkpoint file of the foreign model without the foreign model's code.

>>> import torch, fluxion.layers as fl
>>> source = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
>>> target = fl.Chain(fl.Linear(4, 8), fl.ReLU(), fl.Linear(8, 2))
>>> mapping = convert(source, target, torch.randn(3, 4))
>>> mapping("2.weight")
'Linear_2.weight'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import torch

from fluxion.errors import ConversionError
from fluxion.weights.load import load
from fluxion.weights.mapping import KeyMapping
from fluxion.weights.plan import Slot, model_slots


@dataclass(frozen=True)
class _Leaf:
    """A weighted leaf as it executed: address, own tensors (name, shape) in declaration order."""

    address: str
    module: torch.nn.Module
    tensors: tuple[tuple[str, tuple[int, ...]], ...]
    tensor_ids: frozenset[int]

    @property
    def signature(self) -> tuple[tuple[int, ...], ...]:
        return tuple(sorted(shape for _, shape in self.tensors))

    def key(self, name: str) -> str:
        return f"{self.address}.{name}" if self.address else name

    def describe(self) -> str:
        shapes = ", ".join(f"{name} {shape}" for name, shape in self.tensors)
        return f"{self.address or '<root>'} ({type(self.module).__name__}: {shapes})"


def convert(
    source: torch.nn.Module,
    target: torch.nn.Module,
    *example_inputs: Any,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> KeyMapping:
    """Copy ``source``'s weights into ``target``, check the outputs agree, and return the mapping.

    Both models run in eval mode under ``torch.no_grad`` on ``example_inputs`` (their training
    flags are restored afterwards). Outputs are compared on their first tensor (a tensor, the
    first tensor in a tuple or list, or the first tensor value of a dict or ``ModelOutput``).
    Leaves of ``source`` that never run are left out of the mapping (their keys are dropped). On
    any failure ``target`` is left as it was and ``ConversionError`` names the leaves that
    disagree.

    >>> import torch, fluxion.layers as fl
    >>> source = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2, bias=False))
    >>> convert(source, fl.Chain(fl.Linear(4, 8), fl.Linear(8, 2)), torch.randn(1, 4))
    Traceback (most recent call last):
    ...
    fluxion.errors.ConversionError: cannot pair the weighted leaves by execution order and shapes:
      target Linear_2 (Linear: weight (2, 8), bias (2,)) has no unpaired source leaf with the same shapes
    """
    _check_arguments(source, target, atol=atol, rtol=rtol)
    modes = [(module, module.training) for model in (source, target) for module in model.modules()]
    source.eval()
    target.eval()
    try:
        source_leaves = _execution_order("source", source, _weighted_leaves(source), example_inputs)
        all_target_leaves = _weighted_leaves(target)
        target_leaves = _execution_order("target", target, all_target_leaves, example_inputs)
        idle = _never_ran(all_target_leaves, target_leaves)
        if idle:
            names = "\n  ".join(leaf.describe() for leaf in idle)
            raise ConversionError(
                f"these target leaves never ran on the example inputs, so nothing pairs them:\n  {names}"
            )
        pairs, ambiguous = _pair(source_leaves, target_leaves)
        source_state = source.state_dict()
        mapping = _mapping(source_state, pairs)
        before = {key: value.clone() for key, value in target.state_dict().items()}
        try:
            load(target, source_state, mapping=mapping)
            _check_outputs(source, target, example_inputs, pairs, ambiguous, atol, rtol)
        except BaseException:
            load(target, before)
            raise
    finally:
        for module, training in modes:
            module.training = training
    return mapping


def _check_arguments(source: object, target: object, *, atol: object, rtol: object) -> None:
    for role, model in (("source", source), ("target", target)):
        if not isinstance(model, torch.nn.Module):
            raise ConversionError(f"convert's {role} must be a torch module, got {type(model).__name__}")
    for name, tolerance in (("atol", atol), ("rtol", rtol)):
        number = isinstance(tolerance, int | float) and not isinstance(tolerance, bool)
        if not number or not 0 <= cast(float, tolerance) < math.inf:
            raise ConversionError(f"{name} must be a finite number of at least 0, got {tolerance!r}")


def _weighted_leaves(model: torch.nn.Module) -> dict[torch.nn.Module, _Leaf]:
    """Every module holding tensors of its own (the same tensors ``load`` and ``save`` see)."""
    own: dict[torch.nn.Module, list[Slot]] = {}
    for slot in model_slots(model).values():
        own.setdefault(slot.module, []).append(slot)
    return {
        module: _Leaf(
            address=slots[0].key.removesuffix(slots[0].name).removesuffix("."),
            module=module,
            tensors=tuple((slot.name, tuple(slot.tensor.shape)) for slot in slots),
            tensor_ids=frozenset(id(slot.tensor) for slot in slots),
        )
        for module, slots in own.items()
    }


def _execution_order(
    role: str, model: torch.nn.Module, leaves: dict[torch.nn.Module, _Leaf], inputs: tuple[Any, ...]
) -> list[_Leaf]:
    """The weighted leaves in the order they first run; a leaf whose tensors all belong to a leaf
    that ran before (tied weights, or one module called twice) has nothing of its own to pair."""
    order: list[_Leaf] = []
    seen: set[torch.nn.Module] = set()
    owned: set[int] = set()

    def record(module: torch.nn.Module, _inputs: Any, _output: Any) -> None:
        leaf = leaves.get(module)
        if leaf is None or module in seen:
            return
        seen.add(module)
        if not leaf.tensor_ids <= owned:
            owned.update(leaf.tensor_ids)
            order.append(leaf)

    _run(role, model, inputs, record)
    return order


def _never_ran(leaves: dict[torch.nn.Module, _Leaf], order: list[_Leaf]) -> list[_Leaf]:
    """Weighted leaves with tensors of their own that the example inputs never reached."""
    owned = {tensor_id for leaf in order for tensor_id in leaf.tensor_ids}
    return [leaf for leaf in leaves.values() if not leaf.tensor_ids <= owned]


def _outputs(
    role: str, model: torch.nn.Module, inputs: tuple[Any, ...], watch: dict[torch.nn.Module, list[Any]]
) -> Any:
    """Run ``model``, appending each watched module's output to its list; return the model's output."""

    def record(module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if module in watch:
            watch[module].append(output)

    return _run(role, model, inputs, record)


def _run(role: str, model: torch.nn.Module, inputs: tuple[Any, ...], hook: Callable[..., None]) -> Any:
    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        with torch.no_grad():
            return model(*inputs)
    except Exception as error:
        raise ConversionError(f"the {role} model fails on the example inputs: {error}") from error
    finally:
        handle.remove()


def _pair(sources: list[_Leaf], targets: list[_Leaf]) -> tuple[list[tuple[_Leaf, _Leaf]], list[str]]:
    """Pair leaves by execution order; where shapes disagree, by the next unpaired source of the same shapes."""
    if len(sources) == len(targets) and all(s.signature == t.signature for s, t in zip(sources, targets, strict=True)):
        return list(zip(sources, targets, strict=True)), []
    pairs: list[tuple[_Leaf, _Leaf]] = []
    ambiguous: list[str] = []
    unpaired = list(sources)
    unmatched: list[str] = []
    for leaf in targets:
        candidates = [source for source in unpaired if source.signature == leaf.signature]
        if not candidates:
            unmatched.append(f"target {leaf.describe()} has no unpaired source leaf with the same shapes")
            continue
        chosen = candidates[0]
        if len(candidates) > 1:
            others = ", ".join(candidate.address for candidate in candidates[1:4])
            ambiguous.append(f"target {leaf.address} <- source {chosen.address} (same shapes as {others})")
        unpaired.remove(chosen)
        pairs.append((chosen, leaf))
    if unmatched:
        raise ConversionError(
            "cannot pair the weighted leaves by execution order and shapes:\n  " + "\n  ".join(unmatched)
        )
    return pairs, ambiguous


def _mapping(source_state: dict[str, torch.Tensor], pairs: list[tuple[_Leaf, _Leaf]]) -> KeyMapping:
    rename: dict[str, str | None] = dict.fromkeys(source_state)
    for source_leaf, target_leaf in pairs:
        target_names = dict(target_leaf.tensors)
        names_agree = {name for name, _ in source_leaf.tensors} == set(target_names)
        if names_agree:
            matched = [(name, name) for name, _ in source_leaf.tensors]
        else:  # e.g. ``gamma``/``beta`` against ``weight``/``bias``: pair by order of shapes
            by_shape = sorted(target_leaf.tensors, key=lambda item: item[1])
            ordered = sorted(source_leaf.tensors, key=lambda item: item[1])
            matched = [(s_name, t_name) for (s_name, _), (t_name, _) in zip(ordered, by_shape, strict=True)]
        for source_name, target_name in matched:
            rename[source_leaf.key(source_name)] = target_leaf.key(target_name)
    return KeyMapping(rename=rename)


def _check_outputs(
    source: torch.nn.Module,
    target: torch.nn.Module,
    inputs: tuple[Any, ...],
    pairs: list[tuple[_Leaf, _Leaf]],
    ambiguous: list[str],
    atol: float,
    rtol: float,
) -> None:
    watch: dict[torch.nn.Module, list[Any]] = {}
    for source_leaf, target_leaf in pairs:
        watch[source_leaf.module] = []
        watch[target_leaf.module] = []
    expected = _first_tensor(_outputs("source", source, inputs, watch))
    got = _first_tensor(_outputs("target", target, inputs, watch))
    if expected is None or got is None:
        raise ConversionError("convert compares the models' first output tensors, but one model returned none")
    if _close(expected, got, atol, rtol):
        return
    lines = [f"the converted model's output differs from the source's ({_difference(expected, got)})"]
    disagreeing = [
        f"source {s.address} -> target {t.address}: {_difference(a, b)}"
        for s, t in pairs
        for a, b in [(_first_tensor(watch[s.module][:1]), _first_tensor(watch[t.module][:1]))]
        if a is not None and b is not None and not _close(a, b, atol, rtol)
    ]
    if disagreeing:
        lines.append(f"{len(disagreeing)} paired leaves disagree, in execution order (the first is where it starts):")
        lines += [f"  {line}" for line in disagreeing[:8]]
    if ambiguous:
        lines.append("pairs chosen by shape alone (check these first):")
        lines += [f"  {line}" for line in ambiguous]
    raise ConversionError("\n".join(lines))


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    values: Callable[[], Iterable[Any]] | None = getattr(value, "values", None)
    candidates: Iterable[Any] = ()
    if callable(values):
        candidates = values()
    elif isinstance(value, list | tuple):
        candidates = cast("list[Any] | tuple[Any, ...]", value)
    for item in candidates:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def _close(expected: torch.Tensor, got: torch.Tensor, atol: float, rtol: float) -> bool:
    """Same shape and values within tolerance, compared in float64 whatever the two dtypes are."""
    if expected.shape != got.shape or expected.is_complex() != got.is_complex():
        return False
    return torch.allclose(expected.detach().double(), got.detach().double(), atol=atol, rtol=rtol)


def _difference(expected: torch.Tensor, got: torch.Tensor) -> str:
    if expected.shape != got.shape:
        return f"shape {tuple(expected.shape)} vs {tuple(got.shape)}"
    difference = (expected.detach().double() - got.detach().double()).abs().max().item()
    dtypes = f", dtypes {expected.dtype} vs {got.dtype}" if expected.dtype != got.dtype else ""
    return f"max abs difference {difference:.3g}{dtypes}"
