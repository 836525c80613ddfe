"""``load``, ``loads``, ``save`` and ``schema``: specs in, ready trees out, and back.

jsonnet is evaluated in a child process bounded in time, memory and stack by default (see
``Limits``); ``limits=None`` evaluates in this process, for files you trust.

>>> import torch
>>> from fluxion import spec
>>> model = spec.loads('''{
...     "type": "Chain",
...     "inputs": {"x": ["B", 8]},
...     "children": [
...         {"type": "Linear", "out_features": 16},
...         {"type": "ReLU"},
...         {"type": "Linear", "id": "head", "out_features": 2}
...     ]
... }''')
>>> model.head
Linear(in_features=16, out_features=2, bias=True)
>>> model(torch.zeros(3, 8)).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, cast

import torch

import fluxion.layers as fl
from fluxion.errors import ShapeError, SpecError
from fluxion.files import write_text_atomically
from fluxion.layers.lazy import lazy_addresses
from fluxion.shapes import materialize
from fluxion.spec import dialects
from fluxion.spec.build import LARGEST_SIZE, Builder, input_shapes, tie
from fluxion.spec.dumping import dump
from fluxion.spec.limits import DEFAULT_LIMITS, Limits
from fluxion.spec.messages import without_torch_trace
from fluxion.spec.source import Document, read
from fluxion.spec.training import apply as apply_training
from fluxion.spec.training import split as split_training
from fluxion.weights import MappingLike, Source
from fluxion.weights import load as load_weights

InputShapes = Mapping[str, Sequence[int | str]] | Sequence[Sequence[int | str]]
"""Input shapes: by input name, or in order (``[["B", 3, "H", "W"]]``)."""


def load(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    ext_vars: Mapping[str, Any] | None = None,
    ext_code: Mapping[str, str] | None = None,
    tla: Mapping[str, Any] | None = None,
    inputs: InputShapes | None = None,
    device: torch.device | str | None = None,
    weights: Source | None = None,
    mapping: MappingLike | None = None,
    strict: bool = True,
    search_paths: Sequence[str | os.PathLike[str]] = (),
    limits: Limits | None = DEFAULT_LIMITS,
) -> fl.Chain:
    """Build the tree a spec describes: a ready, shape-checked model.

    ``source`` is a ``.json``/``.jsonnet`` file, spec text or a parsed dict; ``ext_vars``,
    ``ext_code`` and ``tla`` go to jsonnet (a value that is not a string is passed as code).
    The input shapes (``inputs``, else the spec's own ``"inputs"``) are used to infer every size
    left out and to check every shape; the tree is built on ``device`` (``"meta"`` allocates
    nothing), then ``weights`` are loaded through ``mapping`` (see ``fluxion.weights.load``).
    Files written by narchi and TorchArc load as they are (see docs/narchi.md, docs/torcharc.md).
    Any problem with the spec is a ``SpecError`` naming the file, the JSON path and what was expected.

    jsonnet (the spec's and that of each spec file it names) is evaluated under ``limits``, in a
    child process that a hostile spec cannot take down with it: about 25 ms more per jsonnet file.
    ``limits=None`` evaluates in this process, unbounded, for files you trust.

    >>> from fluxion import spec
    >>> spec.load('{"type": "Chain", "children": [{"type": "Conv2d", "out_channels": 4, "kernel_size": 3}]}',
    ...           inputs=[["B", 3, 32, 32]]).Conv2d.in_channels
    3
    """
    document = read(source, ext_vars=ext_vars, ext_code=ext_code, tla=tla, search_paths=search_paths, limits=limits)
    return build(document, inputs=inputs, device=device, weights=weights, mapping=mapping, strict=strict, limits=limits)


def loads(
    text: str | Mapping[str, Any],
    *,
    inputs: InputShapes | None = None,
    device: torch.device | str | None = None,
    weights: Source | None = None,
    mapping: MappingLike | None = None,
    strict: bool = True,
    limits: Limits | None = DEFAULT_LIMITS,
) -> fl.Chain:
    """Build the tree a spec given as text (JSON or jsonnet) or as a dict describes; see ``load``.

    >>> from fluxion import spec
    >>> spec.loads({"type": "Chain", "children": [{"type": "ReLU", "id": "act"}]})
    (CHAIN) Chain()
        └── act: ReLU()
    """
    if isinstance(text, str) and not text.lstrip().startswith(("{", "[")) and "\n" not in text:
        text = f"{text}\n"  # text, even when it looks like a file name
    try:
        document = read(text, limits=limits)
    except SpecError as error:
        if isinstance(text, str) and error.reason.startswith("no such spec file"):
            # a bare word given to loads: what was meant is a file name, and loads reads no files
            raise SpecError(f"{text.strip()!r} is not spec text; spec.load reads a spec file") from None
        raise
    return build(document, inputs=inputs, device=device, weights=weights, mapping=mapping, strict=strict, limits=limits)


def save(model: torch.nn.Module, path: str | os.PathLike[str], *, inputs: InputShapes | None = None) -> None:
    """Write ``model`` as a JSON spec file (see ``dump``); ``inputs`` adds its input shapes.

    The file is written aside and renamed over ``path`` (see ``fluxion.files``): a reader never sees
    half a file, a symbolic link is written through, an existing file keeps its mode, and a FIFO,
    a device or a folder is refused with a ``SpecError``.

    >>> import pathlib, tempfile
    >>> import fluxion.layers as fl
    >>> from fluxion import spec
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.json"
    >>> spec.save(fl.Chain(fl.Linear(2, 3)), path)
    >>> spec.load(path)
    (CHAIN) Chain()
        └── Linear(in_features=2, out_features=3, bias=True)
    """
    named = None if inputs is None else _named_shapes(inputs, model)
    text = json.dumps(dump(model, inputs=named), indent=2)
    write_text_atomically(path, f"{text}\n", error=SpecError)


def schema() -> dict[str, Any]:
    """The JSON Schema of fluxion's spec format (shipped with the package).

    >>> from fluxion import spec
    >>> spec.schema()["title"]
    'fluxion spec'
    """
    text = resources.files("fluxion.spec").joinpath("schema.json").read_text()
    return cast(dict[str, Any], json.loads(text))


def build(
    document: Document,
    *,
    inputs: InputShapes | None = None,
    device: torch.device | str | None = None,
    weights: Source | None = None,
    mapping: MappingLike | None = None,
    strict: bool = True,
    limits: Limits | None = DEFAULT_LIMITS,
) -> fl.Chain:
    """Build the tree of a spec already read (``fluxion.spec.source.read``); see ``load``.

    ``limits`` bound the jsonnet of the spec files its nodes name.

    >>> from fluxion.spec.source import read
    >>> build(read({"type": "Chain", "children": [{"type": "ReLU"}]}))
    (CHAIN) Chain()
        └── ReLU()
    """
    document, training = split_training(document)  # init, optimizer, loss: beside the architecture, any format
    file = None if document.file is None else str(document.file)
    data = document.data
    translation = dialects.translation(data, file=file)
    if translation is not None:
        data = translation.spec
        document = dataclasses.replace(document, data=data)
        if translation.init is not None and training.init is None:  # TorchArc 1's init inside a DAG
            training = dataclasses.replace(training, init=translation.init)
    if not isinstance(data, Mapping):
        raise SpecError('a spec is an object: its root node (with a "type")', file=file)
    root = cast(Mapping[str, Any], data)
    try:
        shapes = input_shapes(root["inputs"], ["inputs"]) if "inputs" in root else None
    except SpecError as error:
        error.file = file
        raise
    builder = Builder(limits=limits)
    try:
        place = contextlib.nullcontext() if device is None else torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise SpecError(f"device={device!r} is not a device: {error}") from None
    with place:
        try:
            model = builder.build(document, translation)
        except RecursionError:
            raise SpecError("the spec nests nodes too deeply to build", file=file) from None
        if not isinstance(model, fl.Chain):
            model = fl.Chain(model)
        given = shapes if inputs is None else _named_shapes(inputs, model)
        if given is not None:
            _materialize(model, given, builder.paths, file)
    if given is None:
        lazy = lazy_addresses(model)
        if lazy and translation is not None and translation.materialize_on_call:
            _materialize_on_first_call(model, builder.paths, file)
        elif lazy:
            raise SpecError(
                f"the spec leaves sizes to be inferred ({', '.join(repr(a) for a in lazy[:3])}"
                f'{"..." if len(lazy) > 3 else ""}) but gives no input shapes: add "inputs" to the spec '
                '({"x": ["B", 3, "H", "W"]}) or pass inputs=',
                file=file,
            )
    tie(model, builder.shares)
    apply_training(model, training)
    if weights is not None:
        load_weights(model, weights, mapping=mapping, strict=strict)
    return model


def _materialize(
    model: fl.Chain,
    shapes: Mapping[str, Sequence[int | str]],
    paths: Mapping[int, tuple[str, str | None]],
    file: str | None,
) -> None:
    """Infer every shape, fill in the sizes left out; a shape problem names the node's JSON path."""
    try:
        if isinstance(model, fl.Graph):
            materialize(model, **shapes)
        else:
            materialize(model, *shapes.values())
    except ShapeError as error:
        path, where = None, file
        if error.address is not None:
            with contextlib.suppress(AttributeError):
                path, where = paths.get(id(model.get_submodule(error.address)), (None, file))
        raise SpecError(f"shapes do not fit: {without_torch_trace(str(error))}", path=path, file=where) from None


def _materialize_on_first_call(model: fl.Chain, paths: Mapping[int, tuple[str, str | None]], file: str | None) -> None:
    """Infer the sizes left out from the shapes of the first call's inputs, then let it run."""

    def materialize_first(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        names = list(model.inputs) if isinstance(model, fl.Graph) else [f"input{i}" for i in range(len(args))]
        given = {**dict(zip(names, args, strict=False)), **kwargs}
        shapes = {name: tuple(value.shape) for name, value in given.items() if isinstance(value, torch.Tensor)}
        _materialize(model, shapes, paths, file)
        handle.remove()

    handle = model.register_forward_pre_hook(materialize_first, with_kwargs=True)


def _named_shapes(inputs: InputShapes, model: torch.nn.Module) -> dict[str, Sequence[int | str]]:
    given = cast(object, inputs)
    if not isinstance(given, Mapping | list | tuple):
        raise SpecError(f"inputs= takes shapes by name or a list of shapes, got {type(given).__name__}")
    if isinstance(inputs, Mapping):
        named = dict(inputs)
    else:
        names = list(model.inputs) if isinstance(model, fl.Graph) else [f"input{i}" for i in range(len(inputs))]
        if len(names) < len(inputs):
            raise SpecError(f"the model takes {len(names)} inputs ({', '.join(names)}), got {len(inputs)} shapes")
        named = dict(zip(names, inputs, strict=False))
    for name, shape in named.items():
        sizes = cast(object, shape)
        if isinstance(sizes, Sequence) and not isinstance(sizes, str):
            large = [size for size in cast(Sequence[object], sizes) if isinstance(size, int) and size > LARGEST_SIZE]
            if large:
                raise SpecError(f"inputs= {name}: a size is at most 2**63 - 1 (torch's largest), got {large[0]}")
    return named
