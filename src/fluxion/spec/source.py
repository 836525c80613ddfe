"""Reading a spec to its JSON value: a JSON or jsonnet file, spec text, or an already-parsed mapping.

jsonnet runs in a sandbox. ``import``, ``importstr`` and ``importbin`` reach only files inside the
spec's own folder tree (the folder of the file given to :func:`read`) and the search paths; an
absolute path, a ``../`` out of those trees or a symbolic link leading out is refused with a
:class:`SpecError`. :func:`resolve` applies the same rule to the spec files a spec names as nodes.

>>> from fluxion.spec.source import read
>>> read('{"type": "Linear", "args": [4, 8]}').data
{'type': 'Linear', 'args': [4, 8]}
>>> read("{width: std.extVar('width') * 2}", ext_vars={"width": 32}).data
{'width': 64}
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _jsonnet

from fluxion.spec.errors import SpecError

_JSON_SUFFIX = ".json"
TEXT_NAME = "<text>"
"""The file name jsonnet errors give to a spec passed as text."""

_SPEC_SUFFIXES = {_JSON_SUFFIX, ".jsonnet", ".libsonnet"}
_STD_LIBRARY_FILE = "std.jsonnet"
_CALLERS_SHOWN = 3


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
) -> Document:
    """A spec's JSON value, from a file path, spec text or an already-parsed mapping (kept as is).

    A ``str`` is text when it starts with ``{`` or ``[`` or spans several lines; otherwise it is
    a path when something by that name exists or it ends in ``.json``, ``.jsonnet`` or ``.libsonnet``. Text is read
    as JSON, or else evaluated as jsonnet. ``.json`` files are plain JSON; any other file is jsonnet.

    ``ext_vars`` and ``tla`` (top-level arguments) pass strings as strings and any other JSON
    value as jsonnet code, so ``ext_vars={"depths": [2, 2, 2, 2]}`` gives a list; ``ext_code``
    values are jsonnet code. Text imports only from ``search_paths``.

    >>> read("function(width, depth=2) {widths: std.repeat([width], depth)}", tla={"width": 64}).data
    {'widths': [64, 64]}
    >>> read("model.jsonnet")
    Traceback (most recent call last):
    fluxion.spec.errors.SpecError: model.jsonnet: no such spec file
    """
    folders = _folders(search_paths)
    arguments = _jsonnet_arguments(ext_vars or {}, ext_code or {}, tla or {})
    if isinstance(source, Mapping):
        if arguments:
            raise SpecError("external variables and top-level arguments need a jsonnet spec, not a parsed one")
        return Document(source, search_paths=folders)
    if isinstance(source, str) and _is_text(source):
        return _read_text(source, arguments, folders)
    if isinstance(source, str | os.PathLike):  # pyright: ignore[reportUnnecessaryIsInstance]  # untyped callers
        return _read_file(Path(source), arguments, folders)
    raise SpecError(f"a spec is a file path, spec text or a mapping, not {type(source).__name__}")


def resolve(reference: str, *, relative_to: Path | None, roots: Sequence[Path]) -> Path:
    """The real path of the file a spec names, looked up in its own folder first, then in ``roots``.

    ``relative_to`` is the folder (or the file) the reference is written in; ``None`` for text. The
    file found must lie inside one of ``roots`` once symbolic links are followed. An absolute
    reference, a ``../`` out of every root or a link leading out is refused with a SpecError.

    >>> resolve("/etc/passwd", relative_to=Path("specs"), roots=[Path("specs")])
    Traceback (most recent call last):
    fluxion.spec.errors.SpecError: '/etc/passwd' is refused: a spec names files by relative paths only
    """
    if "\0" in reference:
        raise SpecError(f"{reference!r} is not a file name")
    if Path(reference).is_absolute():
        raise SpecError(f"{reference!r} is refused: a spec names files by relative paths only")
    allowed = [Path(os.path.realpath(root)) for root in roots]
    folders = [*([] if relative_to is None else [_folder_of(relative_to)]), *roots]
    if not folders:
        raise SpecError(f"{reference!r} is refused: a spec given as text reads files only from search paths")
    escaped = False
    for folder in folders:
        target = Path(os.path.realpath(folder / reference))
        if not any(target.is_relative_to(root) for root in allowed):
            escaped = True  # never look at what lies outside, not even whether it exists
        elif _is_file(target):
            return target
    where = ", ".join(map(str, allowed)) or "no folders were given"
    if escaped:
        raise SpecError(f"{reference!r} is refused: it leads outside the folders a spec may read ({where})")
    raise SpecError(f"{reference!r} not found (looked in {', '.join(dict.fromkeys(map(str, folders)))})")


def _folder_of(path: Path) -> Path:
    return path.parent if _is_file(path) else path


def _is_file(path: Path) -> bool:
    return stat.S_ISREG(_mode(path))


def _is_folder(path: Path) -> bool:
    return stat.S_ISDIR(_mode(path))


def _mode(path: Path) -> int:
    """The file's mode, 0 when there is none to read (unlike pathlib's, even for names too long)."""
    try:
        return path.stat().st_mode
    except (OSError, ValueError):
        return 0


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
    return path.suffix not in _SPEC_SUFFIXES and not _mode(path)


def _read_text(text: str, arguments: _JsonnetArguments, folders: tuple[Path, ...]) -> Document:
    if "\0" in text or not _is_unicode(text):
        raise SpecError("spec text must be Unicode text without NUL characters", file=TEXT_NAME)
    if not arguments:
        try:
            return Document(_parse_json(text, TEXT_NAME), search_paths=folders)
        except SpecError:
            pass  # not JSON: jsonnet may still read it, and its error is the one to report
    data = _evaluate(TEXT_NAME, text, root=None, folders=folders, arguments=arguments)
    return Document(data, search_paths=folders)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, as from reading bytes with errors="surrogateescape"
        return False
    return True


def _read_file(path: Path, arguments: _JsonnetArguments, folders: tuple[Path, ...]) -> Document:
    if _is_folder(path):
        raise SpecError("is a folder, not a spec file", file=path)
    if not _is_file(path):
        raise SpecError("no such spec file", file=path)
    root = Path(os.path.realpath(path.parent))
    if path.suffix == _JSON_SUFFIX:
        if arguments:
            raise SpecError("external variables and top-level arguments need a jsonnet file", file=path)
        data = _parse_json(_read_utf8(path), path)
    else:  # read here rather than by jsonnet, for the same errors as a JSON file's
        data = _evaluate(os.fspath(path), _read_utf8(path), root=root, folders=folders, arguments=arguments)
    return Document(data, file=path, root=root, search_paths=folders)


def _read_utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"not UTF-8 text (byte {error.start})", file=path) from error
    except OSError as error:
        raise SpecError(f"cannot be read: {error.strerror}", file=path) from error


def _parse_json(text: str, file: str | Path) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise SpecError(error.msg, file=file, line=error.lineno, column=error.colno) from error
    except ValueError as error:  # from _refuse_constant
        raise SpecError(str(error), file=file) from error
    except RecursionError as error:
        raise SpecError("nested too deeply", file=file) from error


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


class _SandboxedImports:
    """jsonnet's import callback: files found by :func:`resolve`, nothing else."""

    def __init__(self, root: Path | None, folders: tuple[Path, ...]) -> None:
        self.root = root
        self.roots = folders if root is None else (root, *folders)

    def __call__(self, folder: str, name: str) -> tuple[str, bytes]:
        # jsonnet passes "" as the folder of the main file when it was named relative to the working
        # folder, and of ext_code and tla snippets: both are the spec's own folder (none for text)
        relative_to = Path(folder) if folder else self.root
        path = resolve(name, relative_to=relative_to, roots=self.roots)
        return os.fspath(path), path.read_bytes()


def _evaluate(
    name: str, text: str, *, root: Path | None, folders: tuple[Path, ...], arguments: _JsonnetArguments
) -> Any:
    try:
        output = _jsonnet.evaluate_snippet(
            name,
            text,
            import_callback=_SandboxedImports(root, folders),
            ext_vars=arguments.ext_vars,
            ext_codes=arguments.ext_codes,
            tla_vars=arguments.tla_vars,
            tla_codes=arguments.tla_codes,
        )
    except RuntimeError as error:
        raise _jsonnet_error(str(error), main_file=name) from error
    except ValueError as error:  # a lone surrogate in a variable
        raise SpecError(f"jsonnet cannot take the variables given: {error}", file=name) from error
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


def _jsonnet_error(message: str, *, main_file: str) -> SpecError:
    """A SpecError at the place jsonnet's message points to: in the spec, not in jsonnet's std library."""
    if message.startswith("STATIC ERROR: "):
        location, _, reason = message.removeprefix("STATIC ERROR: ").strip().partition(": ")
        frame = _Frame.parse(location)
        if frame is None:
            return SpecError(message.strip(), file=main_file)
        return SpecError(reason, file=frame.file, line=frame.line, column=frame.column)
    head, *trace = message.removeprefix("RUNTIME ERROR: ").rstrip().split("\n\t")
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
