"""Reading a spec to its JSON value: a JSON, jsonnet or YAML file, spec text, or an already-parsed mapping.

jsonnet runs in a sandbox. ``import``, ``importstr`` and ``importbin`` reach only files inside the
spec's own folder tree (the folder of the file given to :func:`read`) and the search paths; an
absolute path, a ``../`` out of those trees or a symbolic link leading out is refused with a
:class:`SpecError`. :func:`resolve` applies the same rule to the spec files a spec names as nodes.
By default jsonnet is evaluated in a child process bounded in time, memory and stack (see
:class:`~fluxion.spec.limits.Limits`), so that a hostile spec ends in a ``SpecError``, not in a
dead or frozen process. A JSON value nested more than :data:`MAX_NESTING` levels deep is refused.

>>> from fluxion.spec.source import read
>>> read('{"type": "Linear", "args": [4, 8]}').data
{'type': 'Linear', 'args': [4, 8]}
>>> read("{width: std.extVar('width') * 2}", ext_vars={"width": 32}).data
{'width': 64}
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import yaml

from fluxion.errors import SpecError
from fluxion.files import special_kind
from fluxion.spec import limits as bounds
from fluxion.spec import sandbox
from fluxion.spec.limits import DEFAULT_LIMITS, Limits

_JSON_SUFFIX = ".json"
TEXT_NAME = "<text>"
"""The file name jsonnet errors give to a spec passed as text."""

_YAML_SUFFIXES = {".yaml", ".yml"}
_SPEC_SUFFIXES = {_JSON_SUFFIX, ".jsonnet", ".libsonnet", *_YAML_SUFFIXES}
_STD_LIBRARY_FILE = "std.jsonnet"
_CALLERS_SHOWN = 3
_PATH_LIKE = re.compile(r"[\w.~/\\-]+")

MAX_NESTING = 200
"""How deeply a spec's JSON value may nest (objects and lists); a node and its children list are two
levels. Real architectures nest a few dozen; the bound keeps building, shape inference and
running within Python's recursion limit."""


@dataclass(frozen=True)
class Document:
    """A spec's JSON value, the file it came from and the folders it may read other files from.

    ``file`` and ``root`` (the file's folder, symbolic links resolved) are ``None`` for a spec given
    as text or as a mapping; ``search_paths`` are resolved folders.

    >>> document = read('[1, 2]', search_paths=["."])
    >>> document.data, document.file, document.root
    ([1, 2], None, None)
    >>> document.roots == document.search_paths
    True
    """

    data: Any
    file: Path | None = None
    root: Path | None = None
    search_paths: tuple[Path, ...] = ()
    ext_vars: Mapping[str, Any] = field(default_factory=dict[str, Any], compare=False)
    """The external variables the spec was evaluated with (as ``read`` took them)."""
    ext_code: Mapping[str, str] = field(default_factory=dict[str, str], compare=False)
    """The external variables given as jsonnet code."""

    @property
    def roots(self) -> tuple[Path, ...]:
        """The folder trees the spec may name files in: its own folder first, then the search paths.

        >>> Document({}, root=Path("/specs"), search_paths=(Path("/lib"),)).roots
        (PosixPath('/specs'), PosixPath('/lib'))
        """
        return self.search_paths if self.root is None else (self.root, *self.search_paths)


def read(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    ext_vars: Mapping[str, Any] | None = None,
    ext_code: Mapping[str, str] | None = None,
    tla: Mapping[str, Any] | None = None,
    search_paths: Sequence[str | os.PathLike[str]] = (),
    limits: Limits | None = DEFAULT_LIMITS,
) -> Document:
    """A spec's JSON value, from a file path, spec text or an already-parsed mapping (kept as is).

    A ``str`` is text when it starts with ``{`` or ``[`` or spans several lines; otherwise it is
    a path when something by that name exists or it ends in ``.json``, ``.jsonnet``, ``.libsonnet``, ``.yaml`` or
    ``.yml``. Text is read as JSON, or else evaluated as jsonnet. ``.json`` files are plain JSON, ``.yaml`` and
    ``.yml`` files YAML (TorchArc's files: see ``read_yaml``); any other file is jsonnet.

    ``ext_vars`` and ``tla`` (top-level arguments) pass strings as strings and any other JSON
    value as jsonnet code, so ``ext_vars={"depths": [2, 2, 2, 2]}`` gives a list; ``ext_code``
    values are jsonnet code. Text imports only from ``search_paths``.

    jsonnet is evaluated under ``limits`` (time, memory, stack: see ``Limits``) in a child process,
    about 25 ms more per evaluation; ``limits=None`` evaluates in this process, unbounded. A file
    (JSON or jsonnet) larger than the memory limit is refused before it is read.

    >>> read("function(width, depth=2) {widths: std.repeat([width], depth)}", tla={"width": 64}).data
    {'widths': [64, 64]}
    >>> read("model.jsonnet")
    Traceback (most recent call last):
    fluxion.errors.SpecError: model.jsonnet: no such spec file
    >>> read("std.range(0, 1e9)", limits=Limits(time=1, memory=2**28))
    Traceback (most recent call last):
    fluxion.errors.SpecError: <text>: evaluating the spec needs more than the memory limit (256.0 MiB)...
    """
    if limits is not None and not isinstance(limits, Limits):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise SpecError(f"limits= takes a fluxion.spec.Limits or None, got {type(limits).__name__}")
    folders = _folders(search_paths)
    arguments = _jsonnet_arguments(ext_vars or {}, ext_code or {}, tla or {})
    if isinstance(source, Mapping):
        if arguments:
            raise SpecError("external variables and top-level arguments need a jsonnet spec, not a parsed one")
        document = Document(source, search_paths=folders)
    elif isinstance(source, str) and _is_text(source):
        document = _read_text(source, arguments, folders, limits)
    elif isinstance(source, str | os.PathLike):  # pyright: ignore[reportUnnecessaryIsInstance]  # untyped callers
        document = _read_file(Path(source), arguments, folders, limits)
    else:
        raise SpecError(f"a spec is a file path, spec text or a mapping, not {type(source).__name__}")
    check_nesting(document.data, document.file)
    return replace(document, ext_vars=dict(ext_vars or {}), ext_code=dict(ext_code or {}))


def resolve(reference: str, *, relative_to: Path | None, roots: Sequence[Path]) -> Path:
    """The real path of the file a spec names, looked up in its own folder first, then in ``roots``.

    ``relative_to`` is the folder (or the file) the reference is written in; ``None`` for text. The
    file found must be a regular file inside one of ``roots`` once symbolic links are followed. An
    absolute reference, a ``../`` out of every root or a link leading out is refused with a SpecError.

    >>> resolve("/etc/passwd", relative_to=Path("specs"), roots=[Path("specs")])
    Traceback (most recent call last):
    fluxion.errors.SpecError: '/etc/passwd' is refused: a spec names files by relative paths only
    """
    try:
        found = sandbox.resolve(
            reference,
            relative_to=None if relative_to is None else os.fspath(relative_to),
            roots=[os.fspath(root) for root in roots],
        )
    except sandbox.RefusedError as error:
        raise SpecError(str(error)) from None
    return Path(found)


def _is_file(path: Path) -> bool:
    return sandbox.is_file(path)


def _is_folder(path: Path) -> bool:
    return stat.S_ISDIR(sandbox.mode_of(path))


def _folders(search_paths: Sequence[str | os.PathLike[str]]) -> tuple[Path, ...]:
    folders = tuple(Path(os.path.realpath(path)) for path in search_paths)
    for given, folder in zip(search_paths, folders, strict=True):
        if not _is_folder(folder):
            raise SpecError(f"search path {os.fspath(given)!r} is not a folder")
    return folders


def _is_text(source: str) -> bool:
    if "\n" in source or source.lstrip().startswith(("{", "[")):
        return True
    path = Path(source)
    return path.suffix not in _SPEC_SUFFIXES and not sandbox.mode_of(path)


def _read_text(text: str, arguments: _JsonnetArguments, folders: tuple[Path, ...], limits: Limits | None) -> Document:
    if "\0" in text or not _is_unicode(text):
        raise SpecError("spec text must be Unicode text without NUL characters", file=TEXT_NAME)
    if not arguments:
        try:
            return Document(_parse_json(text, TEXT_NAME), search_paths=folders)
        except SpecError as error:
            if error.reason == _too_deep():
                raise  # JSON all right, too deep for Python's parser: jsonnet would not do better
            # else not JSON: jsonnet may still read it, and its error is the one to report
    try:
        data = _evaluate(TEXT_NAME, text, root=None, folders=folders, arguments=arguments, limits=limits)
    except SpecError as error:
        if _PATH_LIKE.fullmatch(text.strip()) and "Unknown variable" in error.reason:
            # a bare word: a file name, far more likely than jsonnet code that names one variable
            raise SpecError(f"no such spec file {text.strip()!r}") from None
        raise
    return Document(data, search_paths=folders)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, as from reading bytes with errors="surrogateescape"
        return False
    return True


def _read_file(path: Path, arguments: _JsonnetArguments, folders: tuple[Path, ...], limits: Limits | None) -> Document:
    if _is_folder(path):
        raise SpecError("is a folder, not a spec file", file=path)
    kind = special_kind(path)
    if kind is not None:
        raise SpecError(f"is {kind}, not a spec file", file=path)
    if not _is_file(path):
        raise SpecError("no such spec file", file=path)
    root = Path(os.path.realpath(path.parent))
    linked_from = Path(os.path.realpath(path)).parent
    if linked_from != root and linked_from not in folders:
        # a spec reached through a link reads beside its target too (narchi's test data links its examples)
        folders = (*folders, linked_from)
    if path.suffix in (_JSON_SUFFIX, *_YAML_SUFFIXES):
        if arguments:
            raise SpecError("external variables and top-level arguments need a jsonnet file", file=path)
        text = _read_utf8(path, limits)
        data = _parse_json(text, path) if path.suffix == _JSON_SUFFIX else read_yaml(text, path)
    else:  # read here rather than by jsonnet, for the same errors as a JSON file's
        text = _read_utf8(path, limits)
        data = _evaluate(os.fspath(path), text, root=root, folders=folders, arguments=arguments, limits=limits)
    return Document(data, file=path, root=root, search_paths=folders)


def _read_utf8(path: Path, limits: Limits | None) -> str:
    if limits is not None and limits.memory is not None and _size(path) > limits.memory:
        raise SpecError(
            f"is larger than the memory limit ({bounds.bytes_text(limits.memory)}); if the spec is trusted, raise "
            "it (Limits(memory=...), --memory-limit) or turn limits off (limits=None, --no-limits)",
            file=path,
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"not UTF-8 text (byte {error.start})", file=path) from error
    except OSError as error:
        raise SpecError(f"cannot be read: {error.strerror}", file=path) from error


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except (OSError, ValueError):
        return 0


def _parse_json(text: str, file: str | Path) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise SpecError(error.msg, file=file, line=error.lineno, column=error.colno) from error
    except ValueError as error:  # from _refuse_constant
        raise SpecError(str(error), file=file) from error
    except RecursionError:
        raise SpecError(_too_deep(), file=file) from None


_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: ~7x faster


class _YamlLoader(_SafeLoader):
    """PyYAML's safe loader (anchors, aliases, ``<<:`` merge keys, as TorchArc reads its files), with
    ``1e-3`` read as the number it means (YAML 1.1 wants ``1.0e-3``) and a key given twice refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in cast(list[tuple[yaml.Node, yaml.Node]], node.value):
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # keys merged in may be given again: that is what a merge is for
            key = cast(object, self.construct_object(key_node, deep=True))  # pyright: ignore[reportUnknownMemberType]
            with contextlib.suppress(TypeError):  # an unhashable key: PyYAML says so itself
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark, f"key {key!r} is given twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_YamlLoader.add_implicit_resolver(  # pyright: ignore[reportUnknownMemberType]
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str, file: str | Path | None = None) -> Any:
    """The value of YAML text, read with PyYAML's safe loader as TorchArc reads its files: anchors,
    aliases and ``<<:`` merge keys work, ``null`` arguments stay ``None``. Two differences, both
    where YAML 1.1 would surprise: ``1e-3`` is the number ``0.001`` (YAML 1.1 reads a string, which
    TorchArc hands to the constructor as it is), and a key given twice in a mapping is refused
    (YAML keeps the last one silently). A mistake is a ``SpecError`` with its line and column.

    >>> read_yaml("lr: 1e-3\\nbase: &b {out_features: 8}\\nhead: {<<: *b, bias: false}")
    {'lr': 0.001, 'base': {'out_features': 8}, 'head': {'out_features': 8, 'bias': False}}
    >>> read_yaml("a: 1\\na: 2", "model.yaml")
    Traceback (most recent call last):
    ...
    fluxion.errors.SpecError: model.yaml:2:1: key 'a' is given twice
    """
    try:
        return yaml.load(text, Loader=_YamlLoader)  # a safe loader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "not YAML"
        if mark is None:
            raise SpecError(problem, file=file) from None
        raise SpecError(problem, file=file, line=mark.line + 1, column=mark.column + 1) from None
    except yaml.YAMLError as error:
        raise SpecError(f"not YAML: {error}", file=file) from None
    except RecursionError:
        raise SpecError(_too_deep(), file=file) from None


def _too_deep() -> str:
    return f"the spec nests too deeply: more than {MAX_NESTING} levels of objects and lists"


def check_nesting(data: Any, file: Path | None = None) -> None:
    """Refuse (``SpecError``) a value nested more than ``MAX_NESTING`` levels deep, without recursion.

    >>> check_nesting({"children": [{"type": "ReLU"}]})
    >>> deep: list[object] = []
    >>> for _ in range(MAX_NESTING):
    ...     deep = [deep]
    >>> check_nesting(deep)
    Traceback (most recent call last):
    fluxion.errors.SpecError: the spec nests too deeply: more than 200 levels of objects and lists
    """
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, Mapping):
            items = list(cast(Mapping[object, object], value).values())
        elif isinstance(value, list | tuple):
            items = list(cast(Sequence[object], value))
        else:
            continue
        if depth > MAX_NESTING:
            raise SpecError(_too_deep(), file=file)
        pending.extend((item, depth + 1) for item in items)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# --- jsonnet


@dataclass(frozen=True)
class _JsonnetArguments:
    """The variables for ``_jsonnet.evaluate_*``: strings and jsonnet code, external and top-level."""

    ext_vars: dict[str, str]
    ext_codes: dict[str, str]
    tla_vars: dict[str, str]
    tla_codes: dict[str, str]

    def __bool__(self) -> bool:
        return any((self.ext_vars, self.ext_codes, self.tla_vars, self.tla_codes))


def _jsonnet_arguments(
    ext_vars: Mapping[str, Any], ext_code: Mapping[str, Any], tla: Mapping[str, Any]
) -> _JsonnetArguments:
    ext_strings, ext_codes = _strings_and_code(ext_vars, "ext_vars")
    tla_strings, tla_codes = _strings_and_code(tla, "tla")
    for name, code in _checked_items(ext_code, "ext_code"):
        if not isinstance(code, str):
            raise SpecError(f"ext_code[{name!r}] must be jsonnet code in a string, got {type(code).__name__}")
        if name in ext_strings or name in ext_codes:
            raise SpecError(f"external variable {name!r} is given both in ext_vars and in ext_code")
        ext_codes[name] = _without_nul(code, f"ext_code[{name!r}]")
    return _JsonnetArguments(ext_strings, ext_codes, tla_strings, tla_codes)


def _strings_and_code(values: Mapping[str, Any], what: str) -> tuple[dict[str, str], dict[str, str]]:
    """Strings pass as jsonnet strings; any other JSON value as the jsonnet code that writes it."""
    strings: dict[str, str] = {}
    code: dict[str, str] = {}
    for name, value in _checked_items(values, what):
        if isinstance(value, str):
            strings[name] = _without_nul(value, f"{what}[{name!r}]")
        else:
            try:
                code[name] = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise SpecError(f"{what}[{name!r}] is not a JSON value: {error}") from error
            except RecursionError:
                raise SpecError(f"{what}[{name!r}] nests too deeply") from None
    return strings, code


def _checked_items(values: Mapping[str, Any], what: str) -> list[tuple[str, Any]]:
    if not isinstance(values, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]  # untyped callers
        raise SpecError(f"{what} must map names to values, got {type(values).__name__}")
    items = list(values.items())
    for name, _ in items:
        if not isinstance(name, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise SpecError(f"{what} names must be strings, got {name!r}")
        _without_nul(name, f"the {what} name {name!r}")
    return items


def _without_nul(text: str, what: str) -> str:
    # the bindings pass C strings: everything after a NUL would silently be dropped
    if "\0" in text:
        raise SpecError(f"{what} contains a NUL character")
    return text


def _evaluate(
    name: str,
    text: str,
    *,
    root: Path | None,
    folders: tuple[Path, ...],
    arguments: _JsonnetArguments,
    limits: Limits | None,
) -> Any:
    job = sandbox.Job(
        name,
        text,
        root=None if root is None else os.fspath(root),
        folders=tuple(map(os.fspath, folders)),
        ext_vars=arguments.ext_vars,
        ext_codes=arguments.ext_codes,
        tla_vars=arguments.tla_vars,
        tla_codes=arguments.tla_codes,
    )
    try:
        output = bounds.evaluate(job, limits)
    except sandbox.JsonnetError as error:
        if error.kind == sandbox.STATUS_VARIABLES:
            raise SpecError(f"jsonnet cannot take the variables given: {error.message}", file=name) from None
        raise _jsonnet_error(error.message, main_file=name, limits=limits) from None
    return _parse_json(output, name)


_LOCATION = re.compile(
    r"(?P<file>.+):(?:(?P<line>\d+):(?P<column>\d+)(?:-\d+)?|\((?P<from_line>\d+):(?P<from_column>\d+)\)-\(\d+:\d+\))"
)


@dataclass(frozen=True)
class _Frame:
    """One place in a jsonnet error message: ``file:line:column``."""

    file: str
    line: int
    column: int

    @staticmethod
    def parse(location: str) -> _Frame | None:
        match = _LOCATION.fullmatch(location)
        if match is None:
            return None
        line, column = match["line"] or match["from_line"], match["column"] or match["from_column"]
        return _Frame(match["file"], int(line), int(column))


def _jsonnet_error(message: str, *, main_file: str, limits: Limits | None) -> SpecError:
    """A SpecError at the place jsonnet's message points to: in the spec, not in jsonnet's std library."""
    if message.startswith("STATIC ERROR: "):
        location, _, reason = message.removeprefix("STATIC ERROR: ").strip().partition(": ")
        frame = _Frame.parse(location)
        if frame is None:
            return SpecError(message.strip(), file=main_file)
        return SpecError(reason, file=frame.file, line=frame.line, column=frame.column)
    head, *trace = message.removeprefix("RUNTIME ERROR: ").rstrip().split("\n\t")
    if head.startswith("max stack frames exceeded"):
        head = head.rstrip(".") + bounds.stack_hint(limits)
    frames = [frame for line in trace if (frame := _Frame.parse(line.partition("\t")[0])) is not None]
    in_spec = [frame for frame in frames if frame.file != _STD_LIBRARY_FILE or frame.file == main_file]
    if any(line.startswith("Top-level function") for line in trace):
        head += " (the spec is a function: give its arguments with tla={...})"
    if not in_spec:
        return SpecError(head, file=main_file)
    places = list(dict.fromkeys(f"{frame.file}:{frame.line}:{frame.column}" for frame in in_spec))
    callers = "".join(f"\n  called from {place}" for place in places[1 : 1 + _CALLERS_SHOWN])
    first = in_spec[0]
    return SpecError(head + callers, file=first.file, line=first.line, column=first.column)
