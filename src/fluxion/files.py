"""Writing and reading files safely: atomic replacement, special files refused, modes kept.

Every file fluxion writes (weights, LoRA weights, specs, key mappings, diagrams) goes through
:func:`write_atomically`: the content is written next to the destination under a temporary name,
flushed to disk and renamed over it, so a reader (or a crash) never sees half a file. A symbolic
link is written through (the link stays, its target gets the new content); a FIFO, a device or a
socket is refused rather than replaced; an existing file keeps its permission bits and a new one
gets the usual ``0o666`` less the umask, as ``open(path, "w")`` would give it.

Readers call :func:`special_kind` before opening a path, so that a FIFO is refused instead of
blocking the process forever.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> write_text_atomically(path, "hello\\n", error=ValueError)
>>> path.read_text()
'hello\\n'
>>> special_kind(path) is None
True
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

ErrorFactory = Callable[[str], Exception]
"""Makes the caller's own error (a ``WeightsError``, a ``SpecError``...) from a message."""

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it is neither a regular file nor a folder (``"a FIFO (named pipe)"``,
    ``"a character device"``...), following symbolic links; ``None`` otherwise, and when it does not exist.

    >>> special_kind("/dev/null")
    'a character device'
    >>> special_kind("/no/such/file") is None
    True
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((kind for test, kind in _KINDS if test(mode)), None)


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], object], *, error: ErrorFactory) -> None:
    """Write a file with ``write(temporary_path)`` and rename it over ``path`` once it is complete.

    On any failure the temporary file is removed, ``path`` is untouched, and the problem is raised
    as ``error(message)`` (an exception ``write`` raises itself passes through unchanged, unless it
    is an ``OSError``).

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_atomically(folder / "a.bin", lambda temporary: temporary.write_bytes(b"\\x00\\x01"), error=ValueError)
    >>> (folder / "a.bin").read_bytes()
    b'\\x00\\x01'
    >>> write_atomically(folder / "missing" / "a.bin", lambda temporary: None, error=ValueError)
    Traceback (most recent call last):
    ...
    ValueError: cannot write '.../missing/a.bin': folder '.../missing' does not exist
    """
    destination = _destination(path, error)
    mode = _mode_for(destination, error)
    temporary = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.partial")
    try:
        # Created by us with 0o666: the kernel applies the umask, as for any new file.
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        if mode is None:
            mode = stat.S_IMODE(os.stat(temporary).st_mode)
        write(temporary)
        # The mode is set once the content is in: a writer may replace the file it was given with
        # one of its own (safetensors does, with 0600), and a read-only mode would stop the write.
        os.chmod(temporary, mode)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, destination)
        _sync_folder(destination.parent)
    except OSError as problem:
        temporary.unlink(missing_ok=True)
        raise error(f"cannot write {os.fspath(path)!r}: {problem.strerror or problem}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | os.PathLike[str], text: str, *, error: ErrorFactory) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`write_atomically`.

    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "spec.json"
    >>> write_text_atomically(path, "{}\\n", error=ValueError)
    >>> path.read_text()
    '{}\\n'
    """
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"), error=error)


def _destination(path: str | os.PathLike[str], error: ErrorFactory) -> Path:
    """The file to replace: ``path`` itself, or the file a symbolic link at ``path`` leads to."""
    text = os.fspath(path)
    if not text or "\0" in text:
        raise error(f"{text!r} is not a file name")
    given = Path(text)
    try:  # a name too long for the file system fails here already
        destination = Path(os.path.realpath(given)) if given.is_symlink() else given
        is_folder = destination.is_dir()
    except OSError as problem:
        raise error(f"cannot write {text!r}: {problem.strerror or problem}") from None
    if is_folder or text.endswith(os.sep):
        raise error(f"cannot write {text!r}: it is a folder; name a file")
    kind = special_kind(destination)
    if kind is not None:
        raise error(f"cannot write {text!r}: it is {kind}, not a regular file; fluxion writes only regular files")
    if not destination.parent.is_dir():
        raise error(f"cannot write {text!r}: folder {os.fspath(destination.parent)!r} does not exist")
    return destination


def _mode_for(destination: Path, error: ErrorFactory) -> int | None:
    """The permission bits an existing file has (kept by the new file), or None for a new file."""
    try:
        return stat.S_IMODE(os.stat(destination).st_mode)
    except FileNotFoundError:
        return None
    except OSError as problem:
        raise error(f"cannot write {os.fspath(destination)!r}: {problem.strerror or problem}") from None


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot open folders, which is fine."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
