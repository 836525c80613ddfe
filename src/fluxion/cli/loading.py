"""A spec file as the commands see it: the tree built on ``meta``, its input shapes and its shapes.

The spec's own ``"inputs"`` give the input shapes; ``--input`` replaces them by name. The tree
is built on the ``meta`` device (nothing is allocated, however large the model), every size left
out is inferred and every shape checked; the shape report is kept for the commands to show.
jsonnet is evaluated under the limits of the command line (``--time-limit``...), on by default:
a command is safe to run on a stranger's spec. ``spec_options`` reads these options from a parsed
command line (``fluxion.cli.arguments`` defines them).

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "mlp.json"
>>> _ = path.write_text('''{"type": "Chain", "inputs": {"x": ["B", 8]},
...     "children": [{"type": "Linear", "out_features": 2}]}''')
>>> loaded = load_spec(SpecOptions(path))
>>> loaded.inputs, loaded.report.output if loaded.report else None
({'x': ('B', 8)}, (B, 2))
>>> loaded.model.Linear.weight.device.type
'meta'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.cli.options import Shape, by_name, combined_assumptions
from fluxion.errors import SpecError, UsageError
from fluxion.spec import dialects
from fluxion.spec.api import build
from fluxion.spec.build import input_names, input_shapes
from fluxion.spec.limits import DEFAULT_LIMITS, Limits
from fluxion.spec.source import Document, read


@dataclass(frozen=True)
class SpecOptions:
    """How to read a spec file: jsonnet variables, search paths, input shapes, the limits on
    evaluating it and what to assume of the input sizes (``{"H": 32}``: H divides by 32), from
    the command line.

    >>> SpecOptions("model.jsonnet", tla={"depth": 50}).tla
    {'depth': 50}
    """

    file: str | os.PathLike[str]
    ext_vars: Mapping[str, Any] = field(default_factory=lambda: {})
    ext_code: Mapping[str, str] = field(default_factory=lambda: {})
    tla: Mapping[str, Any] = field(default_factory=lambda: {})
    inputs: Mapping[str, Shape] = field(default_factory=lambda: {})
    search_paths: Sequence[str] = ()
    limits: Limits | None = DEFAULT_LIMITS
    assume: Mapping[str, int] = field(default_factory=lambda: {})


@dataclass(frozen=True)
class LoadedSpec:
    """A spec built on ``meta``: the tree, the input shapes used (by name) and its shape report.

    ``inputs`` and ``report`` are ``None`` when neither the spec nor the command line gives input
    shapes (then nothing could be inferred); ``missing`` names the inputs without a shape.

    >>> LoadedSpec("m.json", fl.Chain(), None, None, ("x",)).missing
    ('x',)
    """

    file: str
    model: fl.Chain
    inputs: dict[str, Shape] | None
    report: shapes.ShapeReport | None
    missing: tuple[str, ...] = ()


def spec_options(args: argparse.Namespace, file: str | None = None) -> SpecOptions:
    """The spec options of a parsed command line, for its spec or ``file``; a name given twice is a
    usage error, except in ``--assume``, where a size's divisors combine.

    >>> spec_options(argparse.Namespace(spec="m.json", ext_var=[("a", "1")], ext_code=None, tla=None,
    ...                                 input=None, search_path=None)).ext_vars
    {'a': '1'}
    """
    limits = None if getattr(args, "no_limits", False) else _limits(args)
    file = cast(str, args.spec) if file is None else file
    folder: str | None = getattr(args, "narchi_cwd", None)  # narchi's --cwd: where a relative spec path starts
    given_vars = [*(args.ext_var or ()), *(pair for pairs in getattr(args, "ext_vars", None) or () for pair in pairs)]
    return SpecOptions(
        os.path.join(folder, file) if folder else file,
        ext_vars=by_name(given_vars, "--ext-var"),
        ext_code=by_name(args.ext_code, "--ext-code"),
        tla=by_name(args.tla, "--tla"),
        inputs=by_name(args.input, "--input"),
        search_paths=tuple(args.search_path or ()),
        limits=limits,
        assume=combined_assumptions(getattr(args, "assume", None)),
    )


def _limits(args: argparse.Namespace) -> Limits:
    return Limits(
        time=getattr(args, "time_limit", DEFAULT_LIMITS.time),
        memory=getattr(args, "memory_limit", DEFAULT_LIMITS.memory),
        stack=getattr(args, "stack_limit", DEFAULT_LIMITS.stack),
        nodes=getattr(args, "node_limit", DEFAULT_LIMITS.nodes),
    )


def load_spec(options: SpecOptions) -> LoadedSpec:
    """Read, build (on ``meta``) and shape-check the spec; a problem is a ``SpecError``.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "net.json"
    >>> _ = path.write_text('{"type": "Chain", "children": [{"type": "Linear", "in_features": 4, "out_features": 2}]}')
    >>> load_spec(SpecOptions(path)).report is None
    True
    >>> load_spec(SpecOptions(path, inputs={"x": ("B", 4)})).report.output
    (B, 2)
    """
    file = os.fspath(options.file)
    try:
        document = read(
            Path(file),  # a path, even when the name looks like jsonnet code
            ext_vars=options.ext_vars,
            ext_code=options.ext_code,
            tla=options.tla,
            search_paths=options.search_paths,
            limits=options.limits,
        )
        declared = _declared_inputs(document, file)
        named, missing = _merged(declared, dict(options.inputs))
        model = build(document, inputs=named, device="meta", limits=options.limits)
    except SpecError as error:
        error.reason += variables_hint(error.reason, options)
        raise
    if options.assume and named is None:
        raise UsageError("--assume: the spec gives no input shapes to assume anything of (pass --input NAME=DIMS)")
    report = None if named is None else _infer(model, named, options.assume)
    return LoadedSpec(file, model, named, report, missing)


def _declared_inputs(document: Document, file: str) -> tuple[list[str], dict[str, Shape]] | None:
    """The input names the spec declares and the shapes it gives them (None when it declares none)."""
    data = document.data
    with warnings.catch_warnings():  # the build that follows warns (once) of what the translation finds
        warnings.simplefilter("ignore")
        translation = dialects.translation(data, file=file)
    if translation is not None:
        data = translation.spec
    if not isinstance(data, Mapping) or "inputs" not in data:
        return None
    declared = cast(Mapping[str, Any], data)["inputs"]
    try:
        return input_names(declared, ["inputs"]), input_shapes(declared, ["inputs"]) or {}
    except SpecError as error:
        error.file = file
        raise


def _merged(
    declared: tuple[list[str], dict[str, Shape]] | None, given: dict[str, Shape]
) -> tuple[dict[str, Shape] | None, tuple[str, ...]]:
    """The input shapes to build with (the command line's over the spec's), and the inputs left without one."""
    if declared is None:
        return (given or None), ()
    names, shapes_given = declared
    unknown = [name for name in given if name not in names]
    if unknown:
        raise UsageError(f"--input {unknown[0]}: the spec's inputs are {', '.join(names) or 'none'}")
    merged = {name: given.get(name, shapes_given.get(name)) for name in names}
    missing = tuple(name for name, shape in merged.items() if shape is None)
    if missing and len(missing) < len(names) and given:
        raise UsageError(f"give a shape for every input: {', '.join(missing)} has none (--input NAME=DIMS)")
    if missing:
        return None, missing
    return {name: shape for name, shape in merged.items() if shape is not None}, ()


def _infer(model: fl.Chain, named: Mapping[str, Shape], assume: Mapping[str, int]) -> shapes.ShapeReport:
    sizes = [dims.dim(size) for shape in named.values() for size in shape if not isinstance(size, int)]
    symbols = {str(symbol) for size in sizes for symbol in cast(Any, size).free_symbols}
    for name in assume:
        if name not in symbols:
            known = ", ".join(sorted(symbols)) or "none (they are numbers)"
            raise UsageError(f"--assume {name}: no input size is named {name}; the input sizes named are: {known}")
    if isinstance(model, fl.Graph):
        return shapes.infer(model, assume=assume or None, **named)
    return shapes.infer(model, *named.values(), assume=assume or None)


_STRING_FOR_NUMBER = (
    re.compile(r"requires matching types, got (string and number|number and string)"),
    re.compile(r"expected \([^)]*number[^)]*\) but got \([^)]*string[^)]*\)"),
    re.compile(r"index an array with string"),
)
_NUMBER_FOR_STRING = re.compile(
    r"expected \([^)]*string[^)]*\) but got \([^)]*number[^)]*\)|Expected string, got number", re.IGNORECASE
)
_BUILD_GOT_STRING = re.compile(r"expected (an int|a number|a list|a boolean)[^\n]*, got (?P<value>\"[^\n]*\")$")


def variables_hint(reason: str, options: SpecOptions) -> str:
    """What to add to an error that a jsonnet variable of the wrong type may explain: a string
    that reads as JSON (``"3"``) where a number was expected, or a number where a string was.

    >>> options = SpecOptions("m.jsonnet", ext_vars={"n": "3"})
    >>> print(variables_hint("binary operator * requires matching types, got string and number.", options))
    ... # doctest: +NORMALIZE_WHITESPACE
      hint: --ext-var n is the string "3"; give a number, list or boolean as JSON (--ext-var n=3)
      or as code (--ext-code n=3)
    >>> variables_hint("binary operator * requires matching types, got string and number.", SpecOptions("m.jsonnet"))
    ''
    """
    given = [("--ext-var", options.ext_vars), ("--tla", options.tla)]
    strings = [
        (option, name, value)
        for option, values in given
        for name, value in values.items()
        if isinstance(value, str) and _is_json_value(value)
    ]
    build_value = _BUILD_GOT_STRING.search(reason)
    if build_value is not None:
        strings = [
            (option, name, value) for option, name, value in strings if json.dumps(value) == build_value["value"]
        ]
    if strings and (build_value is not None or any(pattern.search(reason) for pattern in _STRING_FOR_NUMBER)):
        option, name, value = strings[0]
        code = "--ext-code" if option == "--ext-var" else "--tla"
        example = value.strip()
        return (
            f"\n  hint: {option} {name} is the string {json.dumps(value)}; give a number, list or boolean as JSON "
            f"({option} {name}={example})" + (f" or as code ({code} {name}={example})" if code != option else "")
        )
    numbers = [
        (option, name, value)
        for option, values in given
        for name, value in values.items()
        if not isinstance(value, str)
    ]
    if numbers and _NUMBER_FOR_STRING.search(reason):
        option, name, value = numbers[0]
        text = json.dumps(value) if isinstance(value, int | float) else "3"
        return (
            f"\n  hint: {option} values are read as JSON, so {option} {name} is not a string; "
            f"to give the text of a number, quote it as JSON: {option} '{name}=\"{text}\"'"
        )
    return ""


def _is_json_value(text: str) -> bool:
    """Whether ``text`` is JSON other than a string: what was meant as a number, list or boolean."""
    try:
        return not isinstance(json.loads(text), str)
    except (ValueError, RecursionError):
        return False


def spec_inputs_text(inputs: Mapping[str, Shape]) -> str:
    """Input shapes as one line: ``image (B, 3, 224, 224), mask (B, 224, 224)``.

    >>> spec_inputs_text({"image": ("B", 3, 224, 224)})
    'image (B, 3, 224, 224)'
    """
    return ", ".join(f"{name} ({', '.join(map(str, shape))})" for name, shape in inputs.items())
