"""The package's layering (docs/architecture.md, "Floors"): imports only point down the floors,
nothing imports the command line, and nothing outside ``fluxion.tree`` reads the tree's private
attributes. Each rule is checked on the source (every import, those inside functions and under
``TYPE_CHECKING`` included), and each checker is first shown to catch a violation."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SOURCE = Path(__file__).resolve().parents[2] / "src" / "fluxion"

FLOORS = {
    "errors": 0,
    "dims": 0,
    "progress": 0,
    "files": 0,
    "interrupts": 0,
    "tree": 1,
    "layers": 2,
    "adapters": 3,
    "shapes": 3,
    "weights": 3,
    "training": 3,
    "spec": 4,
    "inspect": 4,
    "nas": 5,
    "distributed": 5,
    "cli": 6,
}
"""Each part of the package (a top-level module or subpackage) and its floor."""

SIDEWAYS = {
    ("adapters", "weights"): "LoRA weights are saved and loaded as safetensors files through fluxion.weights",
}
"""Imports between two parts of the same floor, each with the need that justifies it (docs/architecture.md:
"not each other unless a real need appears"); the importing module's docstring must say so too."""


def part_of(module: str) -> str | None:
    """The part a dotted ``fluxion.*`` module name belongs to (None for the package root)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[0] == "fluxion" else None


def imported_parts(source: str) -> Iterator[tuple[int, str]]:
    """Every ``fluxion`` part a module's source imports, with the line it does it on."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = node.module
            names = [f"{base}.{alias.name}" for alias in node.names] if base == "fluxion" else [base]
        else:
            continue
        for name in names:
            part = part_of(name)
            if part is not None:
                yield node.lineno, part


def floor_violations(part: str, source: str) -> list[str]:
    """Why each import in a module of ``part`` breaks the layering (empty when none does)."""
    problems: list[str] = []
    for line, target in imported_parts(source):
        if target == part:
            continue
        if target not in FLOORS:
            problems.append(f"line {line}: imports fluxion.{target}, which has no floor in docs/architecture.md")
        elif target == "cli":
            problems.append(f"line {line}: imports fluxion.cli; nothing imports the command line")
        elif FLOORS[target] > FLOORS[part]:
            problems.append(f"line {line}: floor {FLOORS[part]} ({part}) imports floor {FLOORS[target]} ({target})")
        elif FLOORS[target] == FLOORS[part] and FLOORS[part] > 0 and (part, target) not in SIDEWAYS:
            problems.append(f"line {line}: {part} imports {target}, on the same floor, with no stated need")
    return problems


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE)
        if relative.parts == ("__init__.py",):
            continue  # the package root gathers what users import first
        yield relative.parts[0].removesuffix(".py"), path


def test_the_floor_check_catches_an_upward_import_a_lazy_one_and_one_of_the_cli() -> None:
    assert (
        floor_violations("tree", "import torch\nfrom fluxion import dims\nfrom fluxion.errors import TreeError\n") == []
    )
    assert floor_violations("tree", "def f():\n    from fluxion.layers import Linear\n") == [
        "line 2: floor 1 (tree) imports floor 2 (layers)"
    ]
    assert floor_violations("spec", "import fluxion.cli.app\n") == [
        "line 1: imports fluxion.cli; nothing imports the command line"
    ]
    assert floor_violations("shapes", "from fluxion import weights\n") == [
        "line 1: shapes imports weights, on the same floor, with no stated need"
    ]


@pytest.mark.parametrize(("part", "path"), list(modules()), ids=lambda value: getattr(value, "name", value))
def test_imports_only_point_down_the_floors(part: str, path: Path) -> None:
    assert part in FLOORS, f"{path.relative_to(SOURCE)} is in no floor of docs/architecture.md"
    assert floor_violations(part, path.read_text()) == []


def test_each_sideways_import_says_why_in_its_module_docstring() -> None:
    for part, path in modules():
        for _, target in imported_parts(path.read_text()):
            if (part, target) in SIDEWAYS:
                docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
                assert f"fluxion.{target}" in docstring, f"{path.relative_to(SOURCE)} should say why it uses {target}"


TORCH_NAMES = set(dir(torch.nn.Module)) | set(vars(torch.nn.Module()))
"""torch's own attributes and methods (``_modules``, ``_apply``...): any module's, not the tree's."""


def private_tree_names() -> set[str]:
    """The underscored attributes and methods the tree's classes define that ``torch.nn.Module`` lacks."""
    names: set[str] = set()
    for path in (SOURCE / "tree").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                candidates = [node.name]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                candidates = [node.attr]
            else:
                continue
            names.update(
                name
                for name in candidates
                if name.startswith("_") and not name.startswith("__") and name not in TORCH_NAMES
            )
    return names


def private_uses(source: str, private: set[str]) -> list[str]:
    """Each place ``source`` reads a private attribute of the tree, a key of the tree's in a
    module's ``__dict__``, or imports an underscored name from the tree."""
    tree = ast.parse(source)
    from_tree = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fluxion.tree")
        for alias in node.names
    }
    modules = {  # names bound to modules: ``dims._context`` is a module's, not a node's
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom) and (isinstance(node, ast.Import) or node.module == "fluxion")
        for alias in node.names
    }
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            continue
        if isinstance(node, ast.Attribute) and node.attr in private:
            found.append((node.lineno, f".{node.attr}"))
        elif (
            isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "__dict__"
        ):
            key = node.slice
            if (isinstance(key, ast.Constant) and key.value in private) or (
                isinstance(key, ast.Name) and key.id in from_tree
            ):
                found.append((node.lineno, f"__dict__[{ast.unparse(key)}]"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fluxion.tree"):
            found.extend((node.lineno, f"imports {alias.name}") for alias in node.names if alias.name.startswith("_"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def test_the_private_access_check_catches_a_private_method_a_dict_key_and_a_private_import() -> None:
    private = private_tree_names()
    assert "_splice" in private
    assert "_modules" not in private  # torch's own
    source = (
        "from fluxion.tree.naming import STAND_IN, _split\n"
        "chain._splice(1)\n"
        "chain.__dict__['_explicit']\n"
        "adapter.__dict__[STAND_IN] = target\n"
        "module.__dict__['_parameters'] = {}\n"  # torch's own: allowed
        "from fluxion import dims\ndims._context.get()\n"  # a module's, not the tree's
        "chain.append(x)\n"
    )
    assert private_uses(source, private) == [
        "line 1: imports _split",
        "line 2: ._splice",
        "line 3: __dict__['_explicit']",
        "line 4: __dict__[STAND_IN]",
    ]


@pytest.mark.parametrize(
    "path", [path for part, path in modules() if part != "tree"], ids=lambda path: str(path.relative_to(SOURCE))
)
def test_nothing_outside_the_tree_reads_its_private_attributes(path: Path) -> None:
    assert private_uses(path.read_text(), private_tree_names()) == []
