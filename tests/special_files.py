"""Special files for tests that check fluxion refuses them, made so that a regression cannot harm the machine."""

import os
import stat
from pathlib import Path


def null_device(folder: Path) -> Path:
    """A null device made in ``folder`` where this process may (as root): a regression that replaced
    it would replace only that node, never the system's ``/dev/null``, which is used otherwise (a
    process that cannot make device nodes cannot replace it either)."""
    node = folder / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return Path("/dev/null")
    return node
