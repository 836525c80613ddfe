"""The tests mirror the package: each module of ``src/fluxion`` has its test file at the same place
under ``tests/``, and every test file there is named after the module it tests."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "fluxion"
TESTS = ROOT / "tests"
SPANNING = {"integration", "zoo"}
"""Folders of suites that span parts (several modules, or whole models) rather than mirror one."""


def modules_by_folder() -> dict[Path, set[str]]:
    """The module names (``chain``, ``_torch``) of each folder of the package, relative to it."""
    folders: dict[Path, set[str]] = {}
    for path in SOURCE.rglob("*.py"):
        if path.name != "__init__.py":
            folders.setdefault(path.parent.relative_to(SOURCE), set()).add(path.stem)
    return folders


def mirrored_test_file(folder: Path, module: str) -> Path:
    """Where the tests of ``folder/module.py`` live: ``tests/folder/test_module.py``."""
    return TESTS / folder / f"test_{module.lstrip('_')}.py"


def module_tested_by(test_file: Path, modules: set[str]) -> str | None:
    """The module a test file is named after: ``test_lora_atomic.py`` tests ``lora`` (an aspect of it)."""
    name = test_file.stem.removeprefix("test_")
    candidates = [
        module for module in modules if name == module.lstrip("_") or name.startswith(module.lstrip("_") + "_")
    ]
    return max(candidates, key=len, default=None)


def test_every_module_has_its_test_file() -> None:
    missing = [
        str(mirrored_test_file(folder, module).relative_to(ROOT))
        for folder, modules in modules_by_folder().items()
        for module in sorted(modules)
        if not mirrored_test_file(folder, module).is_file()
    ]
    assert not missing, "modules without a test file at the mirrored place:\n" + "\n".join(sorted(missing))


def test_every_test_file_is_named_after_a_module() -> None:
    folders = modules_by_folder()
    strays = [
        str(path.relative_to(ROOT))
        for path in TESTS.rglob("test_*.py")
        if path.relative_to(TESTS).parts[0] not in SPANNING
        and module_tested_by(path, folders.get(path.parent.relative_to(TESTS), set())) is None
    ]
    assert not strays, (
        "test files named after no module of their folder (or span parts: tests/integration):\n"
        + "\n".join(sorted(strays))
    )


def test_the_layout_rules_read_names_as_intended() -> None:
    modules = {"lora", "lora_layers", "_torch"}
    assert module_tested_by(Path("test_lora_layers.py"), modules) == "lora_layers"
    assert module_tested_by(Path("test_lora_atomic.py"), modules) == "lora"
    assert module_tested_by(Path("test_torch.py"), modules) == "_torch"
    assert module_tested_by(Path("test_bad_input.py"), modules) is None
    assert mirrored_test_file(Path("weights"), "_torch") == TESTS / "weights" / "test_torch.py"
