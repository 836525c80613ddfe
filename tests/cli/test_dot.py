"""Running Graphviz's ``dot``: the file it writes is written aside and renamed into place."""

from pathlib import Path

import pytest

from tests.cli.helpers import run


def test_render_through_dot_leaves_no_fixed_partial_name(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path
) -> None:
    from fluxion.cli.dot import dot_program

    if dot_program() is None:
        pytest.skip("Graphviz's dot is not installed")
    output = tmp_path / "model.svg"
    (tmp_path / ".model.svg.partial").mkdir()  # the name the old code wrote to, taken
    assert run(capsys, "render", str(mlp), "-o", str(output)).code == 0
    assert output.read_text().lstrip().startswith("<?xml")
