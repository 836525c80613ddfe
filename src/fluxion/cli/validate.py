"""``fluxion validate``: do the specs build, and do their shapes fit?

Each spec is read, built on the ``meta`` device (nothing is allocated) and its shapes inferred,
all in this one process. A folder stands for the specs in it (``spec_files``). Exit code 0 when
all are valid, 1 when one is not, with the error (file, JSON path, address, what was expected) on
stderr. One spec is reported in full; with several (or a folder), each gets one line and a total
follows. With ``--format json`` each spec gives one JSON object on one line.

>>> import pathlib, tempfile
>>> from fluxion.cli import main
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "mlp.json").write_text('''{"type": "Chain", "inputs": {"x": ["B", 8]},
...     "children": [{"type": "Linear", "out_features": 2}]}''')
>>> main(["validate", str(folder / "mlp.json")])
/.../mlp.json: valid
  input:  x (B, 8)
  output: (B, 2)
  parameters: 18
0
>>> _ = (folder / "relu.json").write_text('{"type": "Chain", "children": [{"type": "ReLU"}]}')
>>> main(["validate", str(folder)])
/.../mlp.json: valid, x (B, 8) → (B, 2), 18 parameters
/.../relu.json: valid (shapes not checked: the spec gives no input shapes; pass --input NAME=DIMS)
2 checked: 2 valid, 0 not valid
0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, cast

from fluxion.cli.loading import LoadedSpec, load_spec, spec_inputs_text, spec_options
from fluxion.cli.values import error_json, shape_json
from fluxion.errors import FluxionError, SpecError, UsageError
from fluxion.inspect.counting import human_count, parameter_count
from fluxion.shapes.report import assumptions_text, format_value

SPEC_SUFFIXES = (".json", ".jsonnet", ".yaml", ".yml")
"""The files of a folder that are specs: JSON, jsonnet, and YAML (TorchArc's files). Not ``.libsonnet``:
libraries that specs import, which are seldom a model by themselves."""


def run(args: argparse.Namespace) -> int:
    """Validate each spec the command line names, and those in each folder it names; print the
    results; return the exit code.

    Each spec is checked even when one before it is not valid; the exit code is 1 when any is not,
    or when a folder holds no spec or cannot be read (counted apart in the total: it is no spec).

    >>> from fluxion.cli import main
    >>> main(["validate", "no/such/spec.json"])
    1
    """
    given: list[str] = args.spec
    several = len(given) > 1 or any(os.path.isdir(_on_disk(args, name)) for name in given)
    specs = _specs(args)
    results = [_validate(args, spec, several=several) for spec in specs]
    if several and args.format == "text":
        checked = [result for spec, result in zip(specs, results, strict=True) if isinstance(spec, str)]
        total = f"{len(checked)} checked: {checked.count(True)} valid, {checked.count(False)} not valid"
        folders = len(specs) - len(checked)
        if folders:
            total += f"; {folders} folder{'s' if folders > 1 else ''} without a spec to check"
        print(total)
    return 0 if all(results) else 1


def spec_files(folder: str | os.PathLike[str]) -> list[str]:
    """The names of the specs in ``folder``, in order: its files ending in ``SPEC_SUFFIXES``, but not
    hidden files (``.name``), key mapping files (JSON objects of ``"fluxion_mapping"``, ``"rename"``
    and ``"rules"`` only, see ``fluxion.weights``) or anything but a file (sub-folders are not
    looked into).

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["b.jsonnet", "a.json", "lib.libsonnet", ".hidden.json", "notes.txt", "arc.yaml"]:
    ...     _ = (folder / name).write_text("{}")
    >>> _ = (folder / "keys.json").write_text('{"fluxion_mapping": 1, "rename": {}}')
    >>> (folder / "more.json").mkdir()
    >>> spec_files(folder)
    ['a.json', 'arc.yaml', 'b.jsonnet']
    """
    names: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(SPEC_SUFFIXES) or not entry.is_file():
                continue  # is_file() follows a link, and is False for a FIFO: nothing here blocks
            if entry.name.endswith(".json") and _is_key_mapping(entry.path):
                continue
            names.append(entry.name)
    return sorted(names)


MAPPING_FIELDS = frozenset({"fluxion_mapping", "rename", "rules"})
"""The fields of a key mapping file (``fluxion.weights.KeyMapping.read``); a spec has others."""


def _is_key_mapping(path: str) -> bool:
    """Whether the JSON file at ``path`` is a key mapping (``fluxion.weights``), not a spec."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
        if not any(f'"{field}"' in text for field in MAPPING_FIELDS):
            return False
        document: object = json.loads(text)
    except (OSError, ValueError, RecursionError):
        return False  # not readable as JSON: validating it says why
    # What KeyMapping.read accepts: an object of these fields only ("fluxion_mapping" is optional).
    if not isinstance(document, dict):
        return False
    fields = set(cast("dict[str, object]", document))
    return bool(fields) and fields <= MAPPING_FIELDS


def _on_disk(args: argparse.Namespace, name: str) -> str:
    """Where a spec or folder the command line names is: narchi's ``--cwd`` is where a relative one starts."""
    folder: str | None = getattr(args, "narchi_cwd", None)
    return os.path.join(folder, name) if folder else name


def _specs(args: argparse.Namespace) -> list[str | SpecError]:
    """The specs to check, as the command line names them: each file, and each spec in each folder,
    each file once (named again, itself or through its folder, it is not checked again); a folder
    that cannot be read or holds no spec is an error in their place."""
    found: list[str | SpecError] = []
    seen: set[str] = set()

    def add(spec: str) -> None:
        key = os.path.abspath(_on_disk(args, spec))  # not through links: a link reads imports beside itself
        if key not in seen:
            seen.add(key)
            found.append(spec)

    for name in args.spec:
        folder = _on_disk(args, name)
        if not os.path.isdir(folder):
            add(name)
            continue
        try:
            names = spec_files(folder)
        except OSError as error:
            found.append(SpecError(f"cannot read this folder: {error.strerror or error}", file=folder))
            continue
        if not names:
            kinds = ", ".join(SPEC_SUFFIXES)
            found.append(SpecError(f"a folder with no spec in it (no {kinds} file)", file=folder))
        for spec in names:
            add(str(Path(name) / spec))  # ./a.json is a.json
    return found


def _validate(args: argparse.Namespace, spec: str | SpecError, *, several: bool) -> bool:
    """Check one spec and print what was found; whether it is valid."""
    try:
        if isinstance(spec, SpecError):
            raise spec
        loaded = load_spec(spec_options(args, spec))
    except UsageError as error:
        if not several:
            raise
        # Among several specs, one that an option does not fit (--input names another input) fails
        # alone: the others are still checked and counted.
        return _not_valid(args, spec, error, several=several)
    except FluxionError as error:
        return _not_valid(args, spec, error, several=several)
    if args.format == "json":
        print(json.dumps(_as_json(loaded)))
    else:
        print(_as_line(loaded) if several else _as_text(loaded))
    return True


def _not_valid(args: argparse.Namespace, spec: str | SpecError, error: FluxionError, *, several: bool) -> bool:
    file = _on_disk(args, spec) if isinstance(spec, str) else os.fspath(spec.file or "")  # as loaded.file
    if args.format == "json":
        print(json.dumps({"valid": False, "file": file, "error": error_json(error)}))
    elif several:
        print(f"{file}: {'not valid' if isinstance(spec, str) else 'no spec checked'}", flush=True)
    print(f"fluxion validate: error: {error}", file=sys.stderr)
    return False


def _as_json(loaded: LoadedSpec) -> dict[str, Any]:
    report = loaded.report
    return {
        "valid": True,
        "file": loaded.file,
        "shapes_checked": report is not None,
        "inputs": None if loaded.inputs is None else {name: list(shape) for name, shape in loaded.inputs.items()},
        "output": None if report is None else shape_json(report.output),
        "constraints": [] if report is None else [str(constraint) for constraint in report.constraints],
        "assuming": [] if report is None else assumptions_text(report.assumed),
        "parameters": parameter_count(loaded.model),
    }


def _unchecked(loaded: LoadedSpec) -> str:
    missing = ", ".join(loaded.missing)
    why = f"no shape for input {missing}" if missing else "the spec gives no input shapes"
    return f"{loaded.file}: valid (shapes not checked: {why}; pass --input NAME=DIMS)"


def _as_line(loaded: LoadedSpec) -> str:
    """One spec among several: its inputs, output and parameters, on one line."""
    if loaded.report is None or loaded.inputs is None:
        return _unchecked(loaded)
    count = parameter_count(loaded.model)
    parameters = human_count(count) if count >= 1000 else f"{count}"
    flow = f"{spec_inputs_text(loaded.inputs)} → {format_value(loaded.report.output)}"
    return f"{loaded.file}: valid, {flow}, {parameters} parameters"


def _as_text(loaded: LoadedSpec) -> str:
    if loaded.report is None or loaded.inputs is None:
        return _unchecked(loaded)
    count = parameter_count(loaded.model)
    lines = [
        f"{loaded.file}: valid",
        f"  input:  {spec_inputs_text(loaded.inputs)}",
        f"  output: {format_value(loaded.report.output)}",
        f"  parameters: {count:,}" + (f" ({human_count(count)})" if count >= 1000 else ""),
    ]
    lines += [f"  constraint: {constraint}" for constraint in loaded.report.constraints]
    lines += [f"  assuming: {assumption}" for assumption in assumptions_text(loaded.report.assumed)]
    return "\n".join(lines)
