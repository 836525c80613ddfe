"""A spec file's training sections: ``init``, ``optimizer`` and ``loss`` beside the architecture, in
any format fluxion reads (fluxion's own, narchi's, TorchArc's), built by ``fluxion.training``.

``spec.load`` takes the sections off the root before anything else reads it, applies ``init`` to
the built model and checks the other two; ``optimizer`` and ``loss`` build them from the same file.
A problem in a section is a ``SpecError`` naming the file and the JSON path inside the section.

>>> import torch
>>> from fluxion import spec
>>> text = {
...     "type": "Chain",
...     "inputs": {"x": ["B", 4]},
...     "children": [{"type": "Linear", "id": "head", "out_features": 2}],
...     "init": {"*.bias": "zeros_"},
...     "optimizer": {"type": "SGD", "lr": 0.1},
...     "loss": {"type": "MSELoss"},
... }
>>> model = spec.loads(text)
>>> torch.count_nonzero(model.head.bias).item()
0
>>> type(spec.optimizer(text, model)).__name__, spec.loss(text)
('SGD', MSELoss())
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import torch

import fluxion.layers as fl
from fluxion.errors import SpecError, TrainingError
from fluxion.layers.lazy import lazy_addresses
from fluxion.spec.limits import DEFAULT_LIMITS, Limits
from fluxion.spec.messages import json_path
from fluxion.spec.source import Document, read
from fluxion.training import build_loss, build_optimizer, initialize

SECTIONS = ("init", "optimizer", "loss")
"""The root keys that describe training rather than the architecture."""

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Sections:
    """The training sections a spec's root carries (each ``None`` when absent), and the root's
    ``activation`` (TorchArc 1 writes it beside ``init``; it gives the initializer's gain).

    >>> split(read({"type": "ReLU", "loss": {"type": "L1Loss"}}))[1].loss
    {'type': 'L1Loss'}
    """

    init: Any = None
    optimizer: Any = None
    loss: Any = None
    activation: str | None = None
    file: str | None = None


def split(document: Document) -> tuple[Document, Sections]:
    """The document without its training sections (a new root: the caller's data is not changed),
    and the sections.

    >>> document, sections = split(read({"type": "ReLU", "init": "zeros_"}))
    >>> document.data, sections.init
    ({'type': 'ReLU'}, 'zeros_')
    """
    data = cast(object, document.data)
    file = None if document.file is None else str(document.file)
    if not isinstance(data, Mapping) or not any(key in data for key in SECTIONS):
        return document, Sections(file=file)
    root = cast(Mapping[str, Any], data)
    activation = root.get("activation")
    sections = Sections(
        init=root.get("init"),
        optimizer=root.get("optimizer"),
        loss=root.get("loss"),
        activation=activation if isinstance(activation, str) and "init" in root else None,
        file=file,
    )
    rest = {key: value for key, value in root.items() if key not in SECTIONS}
    return dataclasses.replace(document, data=rest), sections


def apply(model: fl.Chain, sections: Sections) -> None:
    """Initialize ``model`` as the ``init`` section says and check the ``optimizer`` and ``loss``
    sections by building them. A model whose sizes wait for its first call is initialized (and
    its optimizer section checked) right after that call fills them in.

    >>> model = fl.Chain(fl.Linear(2, 2))
    >>> apply(model, Sections(init={"*.bias": "ones_"}))
    >>> model.Linear.bias.tolist()
    [1.0, 1.0]
    """
    if sections.loss is not None:
        _reported(lambda: build_loss(sections.loss), "loss", sections.file)
    if lazy_addresses(model):

        def after_sizes(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            handle.remove()
            _apply_to_sized(model, sections)

        handle = model.register_forward_pre_hook(after_sizes)  # after the hook that fills the sizes in
        return
    _apply_to_sized(model, sections)


def _apply_to_sized(model: fl.Chain, sections: Sections) -> None:
    if sections.init is not None:
        _reported(lambda: initialize(model, sections.init, activation=sections.activation), "init", sections.file)
    if sections.optimizer is not None:
        _reported(lambda: build_optimizer(sections.optimizer, model), "optimizer", sections.file)


def _reported(make: Callable[[], T], section: str, file: str | None) -> T:
    try:
        return make()
    except TrainingError as error:
        raise SpecError(str(error), file=file, path=json_path([section, *error.path])) from None


def _section(document: Document, name: str) -> Any:
    data = cast(object, document.data)
    if not isinstance(data, Mapping) or name not in data:
        raise SpecError(
            f'the spec has no "{name}" section (a root key beside the architecture)',
            file=None if document.file is None else str(document.file),
        )
    return cast(Mapping[str, Any], data)[name]


def optimizer(
    source: str | os.PathLike[str] | Mapping[str, Any],
    model: torch.nn.Module,
    *,
    ext_vars: Mapping[str, Any] | None = None,
    ext_code: Mapping[str, str] | None = None,
    tla: Mapping[str, Any] | None = None,
    search_paths: Sequence[str | os.PathLike[str]] = (),
    limits: Limits | None = DEFAULT_LIMITS,
) -> torch.optim.Optimizer:
    """The optimizer a spec's ``"optimizer"`` section describes, over ``model``'s parameters (see
    ``fluxion.training.build_optimizer``); ``source`` and the jsonnet options are those of ``load``.

    >>> from fluxion import spec
    >>> text = {"type": "Linear", "in_features": 2, "out_features": 1, "optimizer": {"type": "Adam", "lr": 0.01}}
    >>> spec.optimizer(text, spec.loads(text)).param_groups[0]["lr"]
    0.01
    """
    document = read(source, ext_vars=ext_vars, ext_code=ext_code, tla=tla, search_paths=search_paths, limits=limits)
    section = _section(document, "optimizer")
    file = None if document.file is None else str(document.file)
    return _reported(lambda: build_optimizer(section, model), "optimizer", file)


def loss(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    ext_vars: Mapping[str, Any] | None = None,
    ext_code: Mapping[str, str] | None = None,
    tla: Mapping[str, Any] | None = None,
    search_paths: Sequence[str | os.PathLike[str]] = (),
    limits: Limits | None = DEFAULT_LIMITS,
) -> torch.nn.Module:
    """The loss a spec's ``"loss"`` section describes (see ``fluxion.training.build_loss``).

    >>> from fluxion import spec
    >>> spec.loss({"type": "ReLU", "loss": {"type": "BCEWithLogitsLoss", "pos_weight": 3.0}}).pos_weight
    tensor(3.)
    """
    document = read(source, ext_vars=ext_vars, ext_code=ext_code, tla=tla, search_paths=search_paths, limits=limits)
    section = _section(document, "loss")
    file = None if document.file is None else str(document.file)
    return _reported(lambda: build_loss(section), "loss", file)
