"""``fluxion validate`` tells files apart by path, not through links: a link reads its imports beside
itself first (``fluxion.spec.source``), so two links to one jsonnet file in two folders are two
specs, both checked."""

import os
from pathlib import Path

import pytest

from tests.cli.helpers import run

NET = """local width = import 'width.libsonnet';
{type: 'Chain', inputs: {x: ['B', 4]}, children: [{type: 'Linear', out_features: width}]}
"""


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """``a/net.jsonnet`` and ``b/net.jsonnet``, links to one file that imports ``width.libsonnet``,
    which is 8 beside the first and a string beside the second."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "net.jsonnet").write_text(NET)
    links: list[Path] = []
    for name, width in (("a", "8"), ("b", '"wide"')):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "width.libsonnet").write_text(width)
        os.symlink(tmp_path / "shared" / "net.jsonnet", folder / "net.jsonnet")
        links.append(folder / "net.jsonnet")
    return links[0], links[1]


def test_each_link_alone_is_read_beside_itself(capsys: pytest.CaptureFixture[str], linked: tuple[Path, Path]) -> None:
    first, second = linked
    assert run(capsys, "validate", str(first)).code == 0
    assert run(capsys, "validate", str(second)).code == 1


def test_two_links_to_one_file_that_read_different_imports_are_both_checked(
    capsys: pytest.CaptureFixture[str], linked: tuple[Path, Path]
) -> None:
    first, second = linked
    result = run(capsys, "validate", str(first), str(second))
    assert result.out.splitlines()[-1] == "2 checked: 1 valid, 1 not valid", result.out
    assert result.code == 1
    folders = run(capsys, "validate", str(first.parent), str(second.parent))
    assert folders.code == 1, folders.out
