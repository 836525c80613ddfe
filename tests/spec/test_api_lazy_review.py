"""``fluxion.spec`` imports its names when first used: what a reader and a type checker see of the
package before a name is used. Each check runs in a fresh interpreter, as this one may have used the
names already."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PUBLIC = [
    "InputShapes",
    "Limits",
    "dump",
    "load",
    "loads",
    "loss",
    "optimizer",
    "register",
    "registered",
    "save",
    "schema",
]


def fresh(code: str) -> str:
    """What ``code`` prints in a new interpreter."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_dir_and_help_list_the_public_names_before_any_is_used() -> None:
    listed = fresh("import fluxion.spec as s; print(' '.join(dir(s)))").split()
    assert [name for name in PUBLIC if name not in listed] == []
    text = fresh("import pydoc, fluxion.spec as s; print(pydoc.render_doc(s, renderer=pydoc.plaintext))")
    assert "load(source" in text  # help(fluxion.spec) documented load, dump... before the change
    assert "dump(model" in text


def pyright() -> str:
    found = Path(sys.executable).parent / "pyright"
    command = str(found) if found.is_file() else shutil.which("pyright")
    if command is None:
        pytest.skip("pyright is not installed (the dev extra)")
    return command


def test_pyright_still_finds_a_misspelt_name_of_fluxion_spec(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text('from fluxion import spec\n\nreveal_type(spec.load)\nspec.lod("model.json")\n')
    done = subprocess.run(
        [pyright(), "--pythonpath", sys.executable, str(user)], capture_output=True, text=True, timeout=120
    )
    assert 'Type of "spec.load" is "(source:' in done.stdout  # the real signature is seen
    assert '"lod" is not a known attribute of module "fluxion.spec"' in done.stdout, done.stdout


def test_a_name_that_is_no_identifier_is_an_attribute_error() -> None:
    import fluxion
    import fluxion.spec

    for package in (fluxion, fluxion.spec):
        with pytest.raises(AttributeError, match=r"has no attribute 'a\.b'"):
            getattr(package, "a.b")
