"""fluxion as a user installs it: ``python -m build`` makes an sdist and, from the sdist, a wheel;
the wheel holds every module, the package data and the LICENSE, and once installed into a fresh
virtual environment, where the source tree cannot be imported, its ``fluxion`` command and
``fluxion.spec.load`` work.

Offline and quick: the build runs without isolation (on the setuptools of the test environment),
and the fresh environment reaches the test environment's dependencies (torch and the rest) through
a view of its site-packages that leaves out fluxion itself: its editable install (the
``__editable__`` path file and finder) and its metadata. Every test asserts that the fluxion it
ran is the installed one (the environment's fixture for the command's runs, the Python test for
its own).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import fluxion

ROOT = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "MANIFEST.in", "setup.cfg", "setup.py")
"""The files of the repository root that the build reads (those that exist are copied with src/)."""
EXAMPLE = ROOT / "examples" / "mlp.jsonnet"
VERSION = fluxion.__version__


@dataclass(frozen=True)
class Artifacts:
    sdist: Path
    wheel: Path
    package: Path
    """The package folder the artifacts were built from (a copy of src/fluxion)."""


@dataclass(frozen=True)
class Installed:
    python: Path
    command: Path
    site_packages: Path
    workdir: Path
    """A folder outside the repository, the working directory of every run."""


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{command} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def package_files(package: Path) -> set[str]:
    """The files under ``package`` as the wheel names them (``fluxion/spec/schema.json``)."""
    return {
        path.relative_to(package.parent).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """The sdist and the wheel, built from a copy of the build inputs (the build writes egg-info
    and build/ folders beside its sources, which must not land in the working tree)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, source / name)
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignored)
    dist = tmp_path_factory.mktemp("dist")
    # --no-isolation: no download of the build requirements; --skip-dependency-check: setuptools
    # (>= 70.1) builds wheels itself, so the separate `wheel` distribution that pyproject.toml
    # lists may be absent from the environment.
    build = [sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", "--outdir", str(dist)]
    run([*build, str(source)], cwd=source)
    return Artifacts(
        sdist=dist / f"fluxion-{VERSION}.tar.gz",
        wheel=dist / f"fluxion-{VERSION}-py3-none-any.whl",
        package=source / "src" / "fluxion",
    )


def clean_environment() -> dict[str, str]:
    """The environment variables of this process without those that change where Python imports
    from, and with the user's site-packages and the working directory off the import path."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith("PYTHON")}
    return {**kept, "PYTHONNOUSERSITE": "1", "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def dependencies_view(folder: Path) -> Path:
    """A folder of links to everything in this environment's site-packages except fluxion: no
    editable install (its path file, its finder), no fluxion package, no fluxion metadata."""
    folder.mkdir()
    sources = {Path(sysconfig.get_path("purelib")), Path(sysconfig.get_path("platlib"))}
    for site_packages in sorted(sources):
        for entry in site_packages.iterdir():
            name = entry.name.lower()
            if name.startswith(("__editable__", "fluxion")) or name.endswith(".pth"):
                continue
            if not (folder / entry.name).exists():
                (folder / entry.name).symlink_to(entry)
    return folder


@pytest.fixture(scope="module")
def installed(artifacts: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh virtual environment with the wheel installed, reaching the dependencies through
    the view: a path file in its site-packages adds the view after the wheel's own folder."""
    base = tmp_path_factory.mktemp("installed")
    environment = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(environment)], cwd=base)
    python = environment / "bin" / "python"
    site_packages = Path(sysconfig.get_path("purelib", vars={"base": str(environment), "platbase": str(environment)}))
    assert site_packages.is_dir(), site_packages
    view = dependencies_view(base / "dependencies")
    (site_packages / "test_dependencies.pth").write_text(f"{view}\n")
    install = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    run([*install, "--no-deps", "--no-index", str(artifacts.wheel)], cwd=base, env=clean_environment())
    workdir = base / "work"
    workdir.mkdir()
    # as the `fluxion` command imports: the environment's python, this environment, no -I
    imported = run([str(python), "-c", "import fluxion; print(fluxion.__file__)"], cwd=workdir, env=clean_environment())
    assert Path(imported.stdout.strip()).is_relative_to(site_packages), imported.stdout
    command = environment / "bin" / "fluxion"
    assert command.read_text().splitlines()[0] == f"#!{python}", "the command must run the environment's python"
    return Installed(python, command, site_packages, workdir)


def test_the_wheel_holds_every_module_the_package_data_and_the_license(artifacts: Artifacts) -> None:
    with zipfile.ZipFile(artifacts.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = f"fluxion-{VERSION}.dist-info"
        licenses = [name for name in names if name.startswith(metadata + "/") and name.endswith("/LICENSE")]
        assert len(licenses) == 1, sorted(name for name in names if name.startswith(metadata))
        assert wheel.read(licenses[0]).decode() == (ROOT / "LICENSE").read_text()
        entry_points = wheel.read(f"{metadata}/entry_points.txt").decode()
    missing = package_files(artifacts.package) - names
    assert not missing, "files of src/fluxion the wheel lacks:\n" + "\n".join(sorted(missing))
    assert {"fluxion/py.typed", "fluxion/spec/schema.json", "fluxion/nas/__init__.py"} <= names
    assert {name.split("/")[0] for name in names} == {"fluxion", metadata}
    assert "fluxion = fluxion.cli:main" in entry_points
    assert "nas = fluxion.nas" in entry_points


def test_the_sdist_holds_the_sources_the_readme_and_the_license(artifacts: Artifacts) -> None:
    top = f"fluxion-{VERSION}"
    with tarfile.open(artifacts.sdist) as sdist:
        names = set(sdist.getnames())
        license_file = sdist.extractfile(f"{top}/LICENSE")
        assert license_file is not None
        assert license_file.read().decode() == (ROOT / "LICENSE").read_text()
    expected = {f"{top}/{name}" for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "PKG-INFO")}
    expected |= {f"{top}/src/{name}" for name in package_files(artifacts.package)}
    missing = expected - names
    assert not missing, "files the sdist lacks:\n" + "\n".join(sorted(missing))
    assert not [name for name in names if name.startswith(f"{top}/tests/")]  # tests need the repository


def test_the_installed_command_answers_help_and_its_version(installed: Installed) -> None:
    help_text = run([str(installed.command), "--help"], cwd=installed.workdir, env=clean_environment()).stdout
    assert help_text.startswith("usage: fluxion")
    assert "validate" in help_text
    version = run([str(installed.command), "--version"], cwd=installed.workdir, env=clean_environment()).stdout
    assert version.strip() == f"fluxion {VERSION}"


def test_the_installed_command_validates_an_example_spec_by_path(installed: Installed) -> None:
    done = run([str(installed.command), "validate", str(EXAMPLE)], cwd=installed.workdir, env=clean_environment())
    assert done.stdout.splitlines()[:3] == [f"{EXAMPLE}: valid", "  input:  x (B, 784)", "  output: (B, 10)"]


def test_the_installed_package_loads_specs_from_its_own_files(installed: Installed) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from importlib import metadata, resources

        import torch

        import fluxion
        from fluxion import spec

        model = spec.load(sys.argv[1], tla={"widths": [16], "classes": 3})
        candidates = [{"type": "ReLU", "id": "relu"}, {"type": "Tanh", "id": "tanh"}]
        # Choice comes from fluxion.nas through the installed entry point
        supernet = spec.loads({"type": "Chain", "children": [{"type": "Choice", "children": candidates}]})
        distribution = metadata.distribution("fluxion")
        print(json.dumps({
            "file": fluxion.__file__,
            "path": sys.path,
            "keys": sorted(model.state_dict()),
            "output": list(model(torch.zeros(2, 784)).shape),
            "choice": type(supernet[0]).__module__,
            "schema": spec.schema()["title"],
            "typed": resources.files("fluxion").joinpath("py.typed").is_file(),
            "version": distribution.version,
            "metadata": str(distribution.locate_file("")),
            "license": any(file.name == "LICENSE" for file in distribution.files or []),
        }))
        """
    )
    done = run([str(installed.python), "-I", "-c", script, str(EXAMPLE)], cwd=installed.workdir)
    found = json.loads(done.stdout)
    assert Path(found["file"]).is_relative_to(installed.site_packages), found["file"]
    assert not any(Path(entry).is_relative_to(ROOT) for entry in found["path"] if entry), found["path"]
    assert found["keys"] == ["head.bias", "head.weight", "hidden1.bias", "hidden1.weight"]
    assert found["output"] == [2, 3]
    assert found["choice"] == "fluxion.nas.choice"
    assert found["schema"] == "fluxion spec"
    assert found["typed"] is True
    assert found["version"] == VERSION
    assert Path(found["metadata"]) == installed.site_packages
    assert found["license"] is True
