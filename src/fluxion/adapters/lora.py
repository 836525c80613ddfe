"""LoRA over a whole model: inject, eject, merge, rescale, train, save and load.

Every function acts on the LoRAs of one ``name`` (LoRAs injected together share one), or on all of
them when ``name`` is None. Saved LoRA files hold only the adapters' tensors, keyed by the address
of the layer each adapts (``blocks.0.attn.query.down.weight``, ``...up.weight``, ``...scale``).

This module uses ``fluxion.weights`` (a floor-2 neighbour) to write and read those files: the
safetensors reading, key mapping, all-or-nothing loading and atomic saving are the same as for
whole models, and writing them again here would make two behaviours to keep in step.

>>> import pathlib, tempfile, torch
>>> import fluxion.layers as fl
>>> from fluxion.adapters import lora
>>> def build() -> fl.Chain:
...     torch.manual_seed(0)
...     return fl.Chain(attn=fl.Chain(query=fl.Linear(8, 8), value=fl.Linear(8, 8)), out=fl.Linear(8, 2))
>>> model = build()
>>> injected = lora.inject(model, rank=2, targets="attn.*")
>>> [adapter.address for adapter in injected]
['attn.query', 'attn.value']
>>> optimizer = torch.optim.SGD(lora.trainable_parameters(model), lr=0.1)
>>> model(torch.randn(4, 8)).sum().backward()
>>> optimizer.step()
>>> path = pathlib.Path(tempfile.mkdtemp()) / "adapter.safetensors"
>>> lora.save(model, path)
>>> fresh = build()
>>> _ = lora.load(fresh, path)
>>> x = torch.randn(3, 8)
>>> torch.allclose(fresh(x), model(x))
True
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from fluxion.adapters.adapter import SLOT, Adapter
from fluxion.adapters.lora_layers import (
    FLOAT32_MAX,
    OWN_LAYERS,
    Conv2dLora,
    Init,
    LinearLora,
    Lora,
    check_options,
    checked_scale,
)
from fluxion.adapters.targets import Targets, base_address, base_nodes, nearby, select
from fluxion.errors import AdapterError
from fluxion.interrupts import interrupts_held
from fluxion.layers import parent_of
from fluxion.weights import KeyMapping, MappingLike, Source, WeightsError, open_checkpoint
from fluxion.weights import load as load_weights
from fluxion.weights import save as save_weights
from fluxion.weights.plan import unwritable_reason

PARTS = ("down.weight", "up.weight", "scale")
"""The tensors of one LoRA in a saved file, each under ``{address}.{part}``."""


def inject(
    model: torch.nn.Module,
    *,
    rank: int,
    targets: Targets = (torch.nn.Linear, torch.nn.Conv2d),
    scale: float | None = None,
    alpha: float | None = None,
    dropout: float = 0.0,
    init: Init = "kaiming",
    name: str = "lora",
) -> list[Lora]:
    """Wrap every Linear and Conv2d that ``targets`` selects in a LoRA named ``name``; return them.

    ``targets`` is a layer type or tuple of types, an address glob (``"*.attn.*"``: ``*`` matches
    across dots) or a list of globs, or a predicate on modules; a selected Chain stands for every
    Linear and ungrouped Conv2d inside it. The default selects every one in the model. A selection
    that matches nothing, or a layer that already has a LoRA of this name, raises an
    ``AdapterError`` and injects nothing.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Conv2d(3, 8, kernel_size=3), fl.ReLU(), fl.Flatten(), fl.Linear(8, 2))
    >>> [type(adapter).__name__ for adapter in inject(model, rank=4)]
    ['Conv2dLora', 'LinearLora']
    """
    _check_model(model)
    _check_name(name)
    rank, _ = check_options("lora.inject", rank=rank, scale=scale, alpha=alpha, dropout=dropout, init=init)
    chosen = select(model, targets, _adaptable, what="LoRA (a Linear, or a Conv2d with groups=1)")
    for address, node in chosen:
        _refuse_the_root(model, node)
        if any(adapter.name == name for adapter in _loras_on(node)):
            raise AdapterError(
                f"{address or 'the root'} already has a LoRA named {name!r}; "
                "eject it first, or inject under another name"
            )
        if any(tensor.is_meta for tensor in node.parameters()):
            raise AdapterError(
                f"{address} is on the meta device: a LoRA injected there would lose its starting values; "
                "load the model's weights first (lora.load works on a meta model: the file gives the values)"
            )
    created = [
        _lora_for(node, rank=rank, scale=scale, alpha=alpha, dropout=dropout, init=init, name=name)
        for _, node in chosen
    ]
    return _inject_all(created)


def adapters(model: torch.nn.Module, *, name: str | None = None) -> list[Lora]:
    """The LoRAs in ``model`` (those named ``name``, or all), in tree order.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(2, 2))
    >>> _ = inject(model, rank=1, name="style")
    >>> [(adapter.name, adapter.address) for adapter in adapters(model)]
    [('style', 'Linear')]
    """
    _check_model(model)
    if name is not None:
        _check_name(name)
    return [module for module in model.modules() if isinstance(module, Lora) and name in (None, module.name)]


def eject(model: torch.nn.Module, *, name: str | None = None) -> list[Lora]:
    """Remove the LoRAs (named ``name``, or all) and put their layers back; returns the LoRAs.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(2, 2))
    >>> keys = list(model.state_dict())
    >>> _ = inject(model, rank=1)
    >>> _ = eject(model)
    >>> list(model.state_dict()) == keys
    True
    """
    found = _required(model, name)
    lost = [adapter.address for adapter in found if not adapter.injected]
    if lost:  # checked first, so that a refused eject changes nothing
        raise AdapterError(f"the LoRAs at {', '.join(map(repr, lost))} have lost their targets (removed by hand?)")
    for adapter in reversed(found):
        adapter.eject()
    return found


def merge(model: torch.nn.Module, *, name: str | None = None) -> list[Lora]:
    """Fold the LoRAs' updates into their layers' weights and remove the LoRAs; outputs stay the same.

    The updates are summed in float64 and rounded once into each weight. A LoRA whose layer's
    weight is shared with another part of the model (tied) is refused, since merging would change
    that part too; so is one separated from its layer by another kind of adapter.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(4, 4))
    >>> _ = inject(model, rank=2, init=lambda down, up: up.normal_())
    >>> x = torch.randn(2, 4)
    >>> adapted = model(x)
    >>> _ = merge(model)
    >>> type(model.Linear).__name__, torch.allclose(model(x), adapted, atol=1e-5)
    ('Linear', True)
    """
    found = _required(model, name)
    owners = _parameter_owners(model)
    by_weight: dict[int, tuple[Tensor, list[Lora]]] = {}
    for adapter in found:  # every check first, for every LoRA: a refused merge changes nothing
        weight = _mergeable_weight(adapter, owners)
        by_weight.setdefault(id(weight), (weight, []))[1].append(adapter)
    # One weight at a time is updated and its LoRAs ejected (or neither), with Ctrl-C held until the
    # end, so the model computes the same thing after every step; only the weight being merged is
    # backed up, never the whole model.
    merged: list[Lora] = []
    with interrupts_held():
        try:
            for weight, adapters in by_weight.values():
                _merge_one(weight, adapters)
                merged += adapters
        except Exception as error:  # unforeseen: every foreseeable problem was checked above
            done = f"{len(merged)} of the {len(found)} LoRAs were merged first" if merged else "none was merged"
            raise AdapterError(
                f"merging the LoRAs failed ({type(error).__name__}: {error}); {done}, the others are still "
                "injected, and the model computes what it did"
            ) from error
    return found


def _merge_one(weight: Tensor, adapters: list[Lora]) -> None:
    """Fold the updates of the LoRAs on one weight into it and eject them; on failure, neither."""
    with torch.no_grad():
        delta = adapters[0].delta_weight()
        for adapter in adapters[1:]:
            delta += adapter.delta_weight()
        updated = (weight.double() + delta).to(weight.dtype)
        del delta
        previous = weight.detach().clone()
        weight.copy_(updated)
    ejected: list[Lora] = []
    try:
        for adapter in reversed(adapters):
            adapter.eject()
            ejected.append(adapter)
    except BaseException:
        for adapter in reversed(ejected):
            adapter.inject()
        with torch.no_grad():
            weight.copy_(previous)
        raise


def set_scale(model: torch.nn.Module, scale: float, *, name: str | None = None) -> None:
    """Set the scale of every LoRA (named ``name``, or all): 0 turns them off, 1 is full strength.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(2, 2))
    >>> _ = inject(model, rank=1)
    >>> set_scale(model, 0.25)
    >>> model.Linear.scale.item()
    0.25
    """
    value = _checked_scale(scale)
    found = _required(model, name)
    for adapter in found:  # every check first: a refused change changes nothing
        problem = unwritable_reason(adapter.scale) if not adapter.scale.is_meta else None
        if problem is not None:
            raise AdapterError(f"cannot set the scale of the LoRA at {adapter.address!r}: {problem}")
    before = [adapter.scale.detach().clone() for adapter in found]
    try:
        for adapter in found:
            adapter.set_scale(value)
    except BaseException:
        with torch.no_grad():
            for adapter, scale_before in zip(found, before, strict=True):
                adapter.scale.copy_(scale_before)
        raise


def trainable_parameters(model: torch.nn.Module, *, name: str | None = None) -> list[torch.nn.Parameter]:
    """Freeze every parameter of ``model`` except the LoRAs' (named ``name``, or all); return theirs.

    One line sets up fine-tuning: ``optimizer = AdamW(lora.trainable_parameters(model))``.
    ``model.requires_grad_(True)`` undoes the freezing.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(4, 4))
    >>> _ = inject(model, rank=2)
    >>> [p.shape for p in trainable_parameters(model)], model.Linear.target.weight.requires_grad
    ([torch.Size([2, 4]), torch.Size([4, 2])], False)
    """
    found = _required(model, name)
    inference = torch.is_inference_mode_enabled()
    for adapter in found:  # checked first: a refusal leaves every requires_grad flag as it was
        if not inference and any(parameter.is_inference() for parameter in adapter.parameters()):
            raise AdapterError(
                f"the LoRA at {adapter.address!r} was created under torch.inference_mode(): its parameters "
                "cannot be trained; inject it outside inference mode"
            )
    model.requires_grad_(False)
    trainable: dict[int, torch.nn.Parameter] = {}
    for adapter in found:
        for layer in (adapter.down, adapter.up):
            for parameter in layer.parameters():
                parameter.requires_grad_(True)
                trainable.setdefault(id(parameter), parameter)
    return list(trainable.values())


def state_dict(model: torch.nn.Module, *, name: str | None = None) -> dict[str, Tensor]:
    """The LoRAs' tensors (named ``name``, or all), keyed by the address of the layer each adapts.

    >>> import fluxion.layers as fl
    >>> model = fl.Chain(head=fl.Linear(4, 2))
    >>> _ = inject(model, rank=1)
    >>> sorted(state_dict(model))
    ['head.down.weight', 'head.scale', 'head.up.weight']
    """
    tensors: dict[str, Tensor] = {}
    owners: dict[str, Lora] = {}
    for adapter in _required(model, name):
        address = base_address(adapter)
        if address is None:
            raise AdapterError(
                f"the LoRA at {adapter.address!r} adapts a layer of another adapter, which has no address "
                "in the model without adapters; its tensors cannot be keyed by one"
            )
        other = owners.setdefault(address, adapter)
        if other is not adapter:
            raise AdapterError(
                f"{address or 'the root'} has two LoRAs ({other.name!r} and {adapter.name!r}); "
                "their tensors would share keys: pass name= to take one set"
            )
        prefix = f"{address}." if address else ""
        own = {"down.weight": adapter.down_weight, "up.weight": adapter.up_weight, "scale": adapter.scale}
        tensors.update({prefix + part: tensor.detach() for part, tensor in own.items()})
    return tensors


def save(
    model: torch.nn.Module,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``state_dict(model, name=name)`` to a safetensors file (atomically; see ``fluxion.weights.save``).

    >>> import pathlib, tempfile
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(4, 2))
    >>> _ = inject(model, rank=1)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "lora.safetensors"
    >>> save(model, path)
    >>> path.stat().st_size > 0
    True
    """
    try:
        save_weights(state_dict(model, name=name), path, metadata=metadata)
    except WeightsError as error:
        raise AdapterError(f"cannot save the LoRA weights: {error}") from error


def load(
    model: torch.nn.Module,
    source: Source,
    *,
    name: str = "lora",
    mapping: MappingLike | None = None,
    scale: float | None = None,
) -> list[Lora]:
    """Load a LoRA file (or dict) into ``model``: LoRAs named ``name`` are injected where missing.

    ``source`` is anything ``fluxion.weights.load`` reads; ``mapping`` turns foreign key layouts
    into ``{address}.down.weight`` / ``up.weight`` / ``scale``. ``scale=``, when given, sets the
    scale of every LoRA loaded, in place of the file's; files without a ``scale`` entry (PEFT keeps
    alpha in a config file) need it (alpha / rank). The rank comes from the tensors' shapes. LoRAs
    of that name already in the model are loaded into, so the file must cover all of them (it
    never mixes two sets). Every address must exist in the model and every shape must fit, or an
    ``AdapterError`` says what is wrong and the model is left exactly as it was. Returns the LoRAs
    named ``name``, in tree order.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Linear(4, 2))
    >>> tensors = {"Linear.down.weight": torch.ones(3, 4), "Linear.up.weight": torch.ones(2, 3)}
    >>> [adapter.rank for adapter in load(model, tensors, scale=0.5)]
    [3]
    >>> load(model, {"Lineer.down.weight": torch.ones(3, 4)})
    Traceback (most recent call last):
    ...
    fluxion.errors.AdapterError: state dict: no layer in the model at 'Lineer' (nearby: Linear)
    """
    _check_model(model)
    _check_name(name)
    scale = None if scale is None else _checked_scale(scale)
    tensors, origin = _read(source, mapping)
    groups = _group_by_address(tensors, origin)
    nodes = dict(base_nodes(model))
    _refuse_unknown_addresses(origin, [address for address in groups if address not in nodes], nodes)
    present = [base_address(adapter) for adapter in adapters(model, name=name)]
    others = [address for address in present if address not in groups]
    if others:
        raise AdapterError(
            f"{origin}: the model has LoRAs named {name!r} the file does not cover ({', '.join(map(repr, others))}); "
            "loading would mix two sets: eject them first, or load under another name"
        )
    existing: dict[str, Lora] = {}
    created: list[Lora] = []
    for address, parts in groups.items():
        where = f"{origin}: the LoRA at {address!r}"
        missing = [part for part in ("down.weight", "up.weight") if part not in parts]
        if missing:
            raise AdapterError(f"{where} has no {' and no '.join(missing)}")
        if scale is not None:
            parts["scale"] = torch.tensor(scale)
        elif "scale" not in parts:
            raise AdapterError(f"{where} has no scale in the file; pass scale= (alpha / rank)")
        elif _not_finite(parts["scale"]):
            raise AdapterError(
                f"{where} has a scale of {parts['scale'].item()} in the file; a LoRA scale is a finite number "
                "that float32 holds"
            )
        node = nodes[address]
        present = next((adapter for adapter in _loras_on(node) if adapter.name == name), None)
        if present is not None:
            existing[address] = present
            continue
        if not _adaptable(node):
            raise AdapterError(f"{where}: {type(node).__name__} is not a layer LoRA adapts (Linear, ungrouped Conv2d)")
        _refuse_the_root(model, node)
        down = parts["down.weight"]
        if down.dim() not in (2, 4) or down.shape[0] < 1:
            raise AdapterError(f"{where}: down.weight has shape {tuple(down.shape)}; its first dimension is the rank")
        created.append(_lora_for(node, rank=down.shape[0], scale=None, name=name))
    injected = _inject_all(created)
    at = {**existing, **{base_address(adapter) or "": adapter for adapter in injected}}
    keyed = {
        f"{at[address].address}.{part}".lstrip("."): tensor
        for address, parts in groups.items()
        for part, tensor in parts.items()
    }
    originals = _copies_of(model, keyed)  # LoRA tensors only: low-rank, so backing them up is cheap
    try:
        load_weights(model, keyed, strict=False)
    except BaseException as error:
        with torch.no_grad():
            for tensor, original in originals:
                tensor.copy_(original)
        for adapter in reversed(injected):
            adapter.eject()
        if isinstance(error, WeightsError):
            raise AdapterError(f"{origin}: the LoRA weights do not fit the model: {error}") from error
        raise
    return adapters(model, name=name)


def _copies_of(model: torch.nn.Module, keys: Mapping[str, Tensor]) -> list[tuple[Tensor, Tensor]]:
    """Each model tensor named in ``keys`` that has data, with a copy of its values."""
    copies: list[tuple[Tensor, Tensor]] = []
    for key in keys:
        path, _, leaf = key.rpartition(".")
        tensor = getattr(model.get_submodule(path), leaf, None)
        if isinstance(tensor, Tensor) and not tensor.is_meta:
            copies.append((tensor, tensor.detach().clone()))
    return copies


def _inject_all(created: list[Lora]) -> list[Lora]:
    """Inject every adapter, or (when one fails) none."""
    injected: list[Lora] = []
    try:
        for adapter in created:
            injected.append(adapter.inject())
    except BaseException:
        for adapter in reversed(injected):
            adapter.eject()
        raise
    return injected


def _refuse_unknown_addresses(origin: str, unknown: list[str], nodes: dict[str, torch.nn.Module]) -> None:
    if not unknown:
        return
    known = [address for address in nodes if address]
    shown = [f"{a!r} (nearby: {', '.join(nearby(a, known, 3))})" for a in unknown[:5]]
    more = f", and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    head, _, rest = unknown[0].partition(".")
    hint = (
        f"; the file's addresses start with {head + '.'!r}, which the model's do not: "
        f"mapping=[(r'^{head}\\.', '')] strips it"
        if rest and rest in nodes
        else ""
    )
    raise AdapterError(f"{origin}: no layer in the model at {'; '.join(shown)}{more}{hint}")


def _refuse_the_root(model: torch.nn.Module, node: torch.nn.Module) -> None:
    # A LoRA around the model itself would become a new root the caller holds no reference to.
    if node is model:
        raise AdapterError(
            f"the model itself is a {type(model).__name__}; LoRA functions adapt layers inside a model, "
            "so put it in a Chain (or use LinearLora(layer, rank).inject() and keep the adapter)"
        )


KINDS: tuple[type[Lora], ...] = (LinearLora, Conv2dLora)
"""The LoRA kinds ``inject`` and ``load`` choose from, by the layer they adapt."""


def _adaptable(module: torch.nn.Module) -> bool:
    return any(kind.adapts(module) for kind in KINDS)


def _lora_for(
    node: torch.nn.Module,
    *,
    rank: int,
    scale: float | None,
    name: str,
    alpha: float | None = None,
    dropout: float = 0.0,
    init: Init = "kaiming",
) -> Lora:
    kind = next(kind for kind in KINDS if kind.adapts(node))
    return kind(node, rank, scale=scale, alpha=alpha, dropout=dropout, init=init, name=name)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise AdapterError(f"a LoRA name is a non-empty string, got {name!r}")


def _checked_scale(scale: object) -> float:
    return checked_scale(scale, "a LoRA scale")


def _not_finite(scale: Tensor) -> bool:
    """Whether a one-number scale is not finite, or would not be once in a float32 ``scale`` buffer."""
    if scale.numel() != 1 or not scale.is_floating_point():
        return False
    value = scale.item()
    return not math.isfinite(value) or abs(value) > FLOAT32_MAX


def _check_model(model: object) -> None:
    if not isinstance(model, torch.nn.Module):
        raise AdapterError(f"LoRA functions act on a torch module (a model), got {type(model).__name__}")


def _loras_on(node: torch.nn.Module) -> list[Lora]:
    """The LoRAs stacked around ``node``: the adapters whose slot holds it, directly or through others."""
    found: list[Lora] = []
    parent = parent_of(node)
    while isinstance(parent, Adapter) and parent.name_of(node) == SLOT:
        if isinstance(parent, Lora):
            found.append(parent)
        node, parent = parent, parent_of(parent)
    return found


def _required(model: torch.nn.Module, name: str | None) -> list[Lora]:
    found = adapters(model, name=name)
    if not found:
        names = sorted({adapter.name for adapter in adapters(model)})
        which = "no LoRA" if name is None else f"no LoRA named {name!r}"
        present = f" (LoRA names present: {', '.join(names)})" if names else ""
        raise AdapterError(f"the model has {which}{present}")
    return found


def _parameter_owners(model: torch.nn.Module) -> dict[int, list[str]]:
    owners: dict[int, list[str]] = {}
    for key, parameter in model.named_parameters(remove_duplicate=False):
        owners.setdefault(id(parameter), []).append(key)
    return owners


def _mergeable_weight(adapter: Lora, owners: dict[int, list[str]]) -> Tensor:
    where = f"cannot merge the LoRA at {adapter.address!r}"
    if not adapter.injected:
        raise AdapterError(f"{where}: it has lost its target (was it removed by hand?)")
    layer = adapter.base
    if not _adaptable(layer):
        raise AdapterError(
            f"{where}: it wraps a {type(layer).__name__}, so its update is not a change of one layer's weight"
        )
    if parametrize.is_parametrized(layer):
        raise AdapterError(f"{where}: its layer's weight is computed by a parametrization, so it cannot be changed")
    weight = cast(Tensor, layer.weight)
    keys = owners.get(id(weight), [])
    if len(keys) > 1:
        raise AdapterError(
            f"{where}: its layer's weight is tied to {', '.join(keys[1:])}; merging would change those too"
        )
    problem = _merge_problem(adapter, weight)
    if problem is not None:
        raise AdapterError(f"{where}: {problem}")
    return weight


def _merge_problem(adapter: Lora, weight: Tensor) -> str | None:
    """What would make ``weight += scale * up @ down`` fail, or differ from what the LoRA computes, or None.

    The LoRA's parts are checked as its surgery checks them, so a LoRA put together any other way
    (its ``_modules`` changed by hand, a copy, a pickle) is refused too.
    """
    parts = dict(adapter.named_children())
    for name in OWN_LAYERS:
        part = parts.get(name)
        if part is None:
            return f"it has no {name!r} (removed by hand?)"
        problem = adapter.part_problem(name, part)
        if problem is not None:
            return f"its {name!r} ({type(part).__name__}) cannot be merged: {problem}"
    if not isinstance(getattr(adapter.down, "weight", None), Tensor) or not isinstance(
        getattr(adapter.up, "weight", None), Tensor
    ):
        return "its down or up layer has no weight"
    down, up, scale = adapter.down_weight, adapter.up_weight, adapter.scale
    if any(tensor.is_meta for tensor in (weight, down, up, scale)):
        return "it or its layer is on the meta device"
    named = {"its layer's weight": weight, "down.weight": down, "up.weight": up, "scale": scale}
    odd = [f"{label} is {tensor.dtype}" for label, tensor in named.items() if not tensor.is_floating_point()]
    if odd:
        return f"{', '.join(odd)}; only floating-point weights can be merged"
    devices: set[torch.device] = {tensor.device for tensor in (weight, down, up)}
    if scale.dim():  # a 0-d scale on the CPU multiplies tensors on any device
        devices.add(scale.device)
    if len(devices) > 1:
        return f"its tensors are on several devices ({', '.join(sorted(map(str, devices)))}); move the model to one"
    if scale.numel() != 1:
        return f"its scale must be one number, got a tensor of shape {tuple(scale.shape)}"
    if not math.isfinite(scale.item()):
        return f"its scale is {scale.item()}, not a finite number"
    columns = up.flatten(1).shape[1] if up.dim() >= 2 else -1
    if columns != down.shape[0] or (up.dim() == 4 and tuple(up.shape[2:]) != (1, 1)):
        return f"up.weight {tuple(up.shape)} does not follow down.weight {tuple(down.shape)} (rank {down.shape[0]})"
    update = (up.shape[0], *down.shape[1:])
    if update != tuple(weight.shape):
        return (
            f"its update has shape {update} but its layer's weight has {tuple(weight.shape)} "
            "(was the layer replaced by one of another size?)"
        )
    return unwritable_reason(weight)


def _read(source: Source, mapping: MappingLike | None) -> tuple[dict[str, Tensor], str]:
    try:
        key_mapping = KeyMapping.coerce(mapping)
        with open_checkpoint(source) as checkpoint:
            unusable = [entry for entry in checkpoint.entries.values() if entry.unusable]
            if unusable:
                shown = "; ".join(f"{entry.key!r} is {entry.unusable}" for entry in unusable[:5])
                raise AdapterError(f"{checkpoint.name}: {shown}")
            tensors = {
                target.key: target.apply(checkpoint.tensor(key))
                for key in checkpoint.entries
                for target in key_mapping.targets(key)
            }
            return tensors, checkpoint.name
    except WeightsError as error:
        raise AdapterError(f"cannot read the LoRA weights: {error}") from error


def _group_by_address(tensors: dict[str, Tensor], origin: str) -> dict[str, dict[str, Tensor]]:
    groups: dict[str, dict[str, Tensor]] = {}
    strangers: list[str] = []
    for key, tensor in tensors.items():
        part = next((part for part in PARTS if key == part or key.endswith(f".{part}")), None)
        if part is None:
            strangers.append(key)
            continue
        groups.setdefault(key[: -len(part)].rstrip("."), {})[part] = tensor
    if strangers:
        shown = ", ".join(strangers[:5]) + (f" and {len(strangers) - 5} more" if len(strangers) > 5 else "")
        raise AdapterError(
            f"{origin}: keys that are not LoRA tensors ({{address}}.down.weight, .up.weight or .scale): {shown}; "
            "a mapping= can rename a foreign layout"
        )
    if not groups:
        raise AdapterError(f"{origin}: no LoRA tensors in it")
    return groups
