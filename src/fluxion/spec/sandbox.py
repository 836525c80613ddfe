"""jsonnet evaluation as the child process runs it: a few built-in modules and ``_jsonnet``, nothing else.

A jsonnet spec is evaluated in a small child process (see ``fluxion.spec.limits``) so that a spec
that would exhaust time, memory or the stack ends the child, not the caller. This module is the
child's whole program (``python -I -S sandbox.py``): it imports neither fluxion nor torch, nor
even ``json``, ``pathlib`` or ``dataclasses``, so that a child starts in a few tens of
milliseconds; the job comes in with ``marshal`` (parent and child are the same Python). The same
code evaluates in this process when limits are turned off, so both ways read the same files and
give the same errors.

The import rule lives here because the child applies it: ``import``, ``importstr`` and
``importbin`` reach only files inside the spec's own folder tree and the search paths.

>>> job = Job("<text>", "{a: 1 + 2}")
>>> evaluate(job)
'{\\n   "a": 3\\n}\\n'
>>> Job.from_bytes(job.to_bytes()).text
'{a: 1 + 2}'
"""

from __future__ import annotations

import marshal
import os
import stat
import sys

TYPE_CHECKING = False  # typing itself takes longer to import than the rest of the child

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_MAX_STACK = 500
"""jsonnet's own default bound on nested calls."""

STATUS_VALUE = "value"
"""The first line of the child's answer when the spec evaluated; its JSON text follows."""
STATUS_JSONNET = "jsonnet"
"""The first line of the child's answer when jsonnet reported an error; the message follows."""
STATUS_VARIABLES = "variables"
"""The first line of the child's answer when jsonnet could not take the variables; the message follows."""
STATUS_MEMORY = "memory"
"""The first line of the child's answer when Python ran out of memory (the memory limit)."""


class RefusedError(Exception):
    """A file a spec names that it may not read, or that is not there.

    >>> raise RefusedError("'/etc/passwd' is refused")
    Traceback (most recent call last):
    fluxion.spec.sandbox.RefusedError: '/etc/passwd' is refused
    """


class JsonnetError(Exception):
    """jsonnet's own error: ``kind`` is ``"jsonnet"`` (the spec) or ``"variables"`` (what was passed in).

    >>> JsonnetError("jsonnet", "RUNTIME ERROR: boom").kind
    'jsonnet'
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class Job:
    """One jsonnet evaluation: the main file's name and text, where imports may read, the variables.

    ``root`` is the spec's own folder (``None`` for text); ``folders`` are the search paths, both
    resolved.

    >>> Job("model.jsonnet", "{}", root="/specs").root
    '/specs'
    """

    __slots__ = ("ext_codes", "ext_vars", "folders", "name", "root", "text", "tla_codes", "tla_vars")

    def __init__(
        self,
        name: str,
        text: str,
        *,
        root: str | None = None,
        folders: Sequence[str] = (),
        ext_vars: Mapping[str, str] | None = None,
        ext_codes: Mapping[str, str] | None = None,
        tla_vars: Mapping[str, str] | None = None,
        tla_codes: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.text = text
        self.root = root
        self.folders = tuple(folders)
        self.ext_vars = dict(ext_vars or {})
        self.ext_codes = dict(ext_codes or {})
        self.tla_vars = dict(tla_vars or {})
        self.tla_codes = dict(tla_codes or {})

    def to_bytes(self) -> bytes:
        """The job as bytes, to send to the child.

        >>> Job.from_bytes(Job("a", "1", tla_codes={"n": "9"}).to_bytes()).tla_codes
        {'n': '9'}
        """
        return marshal.dumps({name: getattr(self, name) for name in self.__slots__})

    @staticmethod
    def from_bytes(data: bytes) -> Job:
        """The job that ``to_bytes`` wrote.

        >>> Job.from_bytes(Job("a", "1", folders=["/lib"]).to_bytes()).folders
        ('/lib',)
        """
        fields = marshal.loads(data)
        return Job(fields.pop("name"), fields.pop("text"), **fields)


def resolve(reference: str, *, relative_to: str | None, roots: Sequence[str]) -> str:
    """The real path of the file a spec names, looked up in its own folder first, then in ``roots``.

    ``relative_to`` is the folder (or the file) the reference is written in; ``None`` for text. The
    file found must be a regular file inside one of ``roots`` once symbolic links are followed. An
    absolute reference, a ``../`` out of every root or a link leading out is :class:`RefusedError`.

    >>> resolve("/etc/passwd", relative_to="specs", roots=["specs"])
    Traceback (most recent call last):
    fluxion.spec.sandbox.RefusedError: '/etc/passwd' is refused: a spec names files by relative paths only
    """
    if "\0" in reference:
        raise RefusedError(f"{reference!r} is not a file name")
    if os.path.isabs(reference):
        raise RefusedError(f"{reference!r} is refused: a spec names files by relative paths only")
    allowed = [os.path.realpath(root) for root in roots]
    folders = [*([] if relative_to is None else [_folder_of(relative_to)]), *roots]
    if not folders:
        raise RefusedError(f"{reference!r} is refused: a spec given as text reads files only from search paths")
    escaped = False
    special = False
    for folder in folders:
        target = os.path.realpath(os.path.join(folder, reference))
        if not any(_is_inside(target, root) for root in allowed):
            escaped = True  # never look at what lies outside, not even whether it exists
        elif is_file(target):
            return target
        else:
            special = special or stat.S_IFMT(mode_of(target)) not in (0, stat.S_IFDIR)
    where = ", ".join(allowed) or "no folders were given"
    if escaped:
        raise RefusedError(f"{reference!r} is refused: it leads outside the folders a spec may read ({where})")
    if special:  # a FIFO would block the reader for ever, a device never end
        raise RefusedError(f"{reference!r} is refused: it is not a regular file")
    raise RefusedError(f"{reference!r} not found (looked in {', '.join(dict.fromkeys(map(str, folders)))})")


def is_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a regular file (a FIFO, a device or a folder is not), links followed.

    >>> is_file("/dev/null"), is_file("/no/such/file")
    (False, False)
    """
    return stat.S_ISREG(mode_of(path))


def mode_of(path: str | os.PathLike[str]) -> int:
    """The file's mode, 0 when there is none to read (unlike pathlib's, even for names too long).

    >>> mode_of("/no/such/file")
    0
    """
    try:
        return os.stat(path).st_mode
    except (OSError, ValueError):
        return 0


def _is_inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _folder_of(path: str) -> str:
    return os.path.dirname(path) if is_file(path) else path


class _SandboxedImports:
    """jsonnet's import callback: files found by :func:`resolve`, nothing else."""

    def __init__(self, root: str | None, folders: tuple[str, ...]) -> None:
        self.root = root
        self.roots = folders if root is None else (root, *folders)

    def __call__(self, folder: str, name: str) -> tuple[str, bytes]:
        # jsonnet passes "" as the folder of the main file when it was named relative to the working
        # folder, and of ext_code and tla snippets: both are the spec's own folder (none for text)
        path = resolve(name, relative_to=folder or self.root, roots=self.roots)
        with open(path, "rb") as file:
            return path, file.read()


def evaluate(job: Job, *, max_stack: int | None = None) -> str:
    """The JSON text ``job`` evaluates to, in this process; jsonnet's errors are a :class:`JsonnetError`.

    ``max_stack`` bounds how deeply jsonnet calls may nest (``None``: jsonnet's default, 500).

    >>> evaluate(Job("<text>", "std.extVar('x')", ext_vars={"x": "hi"}))
    '"hi"\\n'
    >>> evaluate(Job("<text>", "{a: }"))
    Traceback (most recent call last):
    fluxion.spec.sandbox.JsonnetError: STATIC ERROR: <text>:1:5: unexpected: "}" while parsing terminal
    <BLANKLINE>
    """
    import _jsonnet  # here, not at the top: the child puts jsonnet's folder on its path first

    try:
        return _jsonnet.evaluate_snippet(
            job.name,
            job.text,
            import_callback=_SandboxedImports(job.root, job.folders),
            ext_vars=job.ext_vars,
            ext_codes=job.ext_codes,
            tla_vars=job.tla_vars,
            tla_codes=job.tla_codes,
            max_stack=DEFAULT_MAX_STACK if max_stack is None else max_stack,
        )
    except RuntimeError as error:
        raise JsonnetError(STATUS_JSONNET, str(error)) from None
    except ValueError as error:  # a lone surrogate in a variable
        raise JsonnetError(STATUS_VARIABLES, str(error)) from None


def _limit_resources(memory: int, cpu_seconds: int) -> None:
    """Bound this process: no core file, ``memory`` bytes of address space, ``cpu_seconds`` of CPU (0: no bound)."""
    try:
        import resource
    except ImportError:  # not on this system (Windows): the parent's wall-clock timeout still holds
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    if cpu_seconds:  # SIGXCPU at the soft limit, SIGKILL at the hard one
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))


def _child_main(argv: Sequence[str]) -> int:
    """The child's program: ``JSONNET_FOLDER MEMORY CPU_SECONDS MAX_STACK``, the job (``Job.to_bytes``) on stdin.

    It answers on stdout with one of the ``STATUS_*`` words on the first line, then the JSON text
    or the message.
    """
    jsonnet_folder, memory, cpu_seconds, max_stack = argv
    _limit_resources(int(memory), int(cpu_seconds))
    sys.path.append(jsonnet_folder)
    out = sys.stdout.buffer
    try:
        output = evaluate(Job.from_bytes(sys.stdin.buffer.read()), max_stack=int(max_stack))
        out.write(f"{STATUS_VALUE}\n".encode())
        out.write(output.encode("utf-8", errors="backslashreplace"))
    except JsonnetError as failure:
        out.write(f"{failure.kind}\n{failure.message}".encode("utf-8", errors="backslashreplace"))
    except MemoryError:
        out.write(f"{STATUS_MEMORY}\n".encode())
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
