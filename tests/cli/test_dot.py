"""Running Graphviz's ``dot``: the file it writes is written aside and renamed into place."""

import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from fluxion.cli import dot as dot_module
from fluxion.errors import CliError
from tests.cli.helpers import partial_files, run

needs_dot = pytest.mark.skipif(dot_module.dot_program() is None, reason="Graphviz's dot program is not installed")


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


# -- run_dot, with Graphviz's dot or a stand-in for it


def stand_in_dot(folder: Path, body: str) -> str:
    """A program in place of ``dot`` (``$1`` is ``-Tformat``, ``$3`` the file to write): a shell script."""
    program = folder / "fake_dot"
    program.write_text(f"#!/bin/sh\n{body}\n")
    program.chmod(0o755)
    return str(program)


def test_dot_is_given_the_format_the_file_and_the_whole_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deadline: None
) -> None:
    log = tmp_path / "arguments.txt"
    # slow to read: a source larger than a pipe holds was still being sent when the first wait ended,
    # and the rest never went (dot waited for it, fluxion for dot: for ever)
    program = stand_in_dot(tmp_path, f'echo "$1" > {log}\nsleep 0.3\ncat > "$3"')
    monkeypatch.setattr(dot_module, "dot_program", lambda: program)
    source = "digraph {\n" + "".join(f'  "n{index}" -> "n{index + 1}" [label="→"]\n' for index in range(40_000)) + "}\n"
    assert len(source) > 2**18  # a pipe holds 64 KiB
    output = tmp_path / "big.PDF"
    dot_module.run_dot(source, output)
    assert log.read_text() == "-Tpdf\n"  # the suffix in any case
    assert output.read_text(encoding="utf-8") == source
    assert partial_files(tmp_path) == []


def test_a_failing_dot_leaves_the_old_file_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "model.svg"
    output.write_text("the old drawing")
    program = stand_in_dot(tmp_path, 'echo partial > "$3"\necho "Error: <stdin>: syntax error in line 1" >&2\nexit 3')
    monkeypatch.setattr(dot_module, "dot_program", lambda: program)
    with pytest.raises(CliError) as raised:
        dot_module.run_dot("digraph {", output)
    assert str(raised.value) == f"dot could not render {output} (exit code 3): Error: <stdin>: syntax error in line 1"
    assert output.read_text() == "the old drawing"
    assert partial_files(tmp_path) == []

    monkeypatch.setattr(dot_module, "dot_program", lambda: stand_in_dot(tmp_path, "exit 1"))
    with pytest.raises(CliError, match=r"\(exit code 1\): no message$"):
        dot_module.run_dot("digraph {}", output)


def test_without_dot_the_error_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dot_module, "dot_program", lambda: None)
    output = tmp_path / "model.png"
    with pytest.raises(CliError) as raised:
        dot_module.run_dot("digraph {}", output)
    assert str(raised.value) == (
        f"writing {output} needs Graphviz's dot program, which is not installed: {dot_module.INSTALL_HINT}"
    )
    assert "apt-get install graphviz" in dot_module.INSTALL_HINT
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["model.dot", "model.bmp", "model", "model.svg.txt"])
def test_the_format_comes_from_a_suffix_dot_draws(tmp_path: Path, name: str) -> None:
    with pytest.raises(CliError) as raised:
        dot_module.run_dot("digraph {}", tmp_path / name)
    assert str(raised.value) == f"{tmp_path / name}: the format is taken from the suffix: .svg, .pdf, .png or .dot"
    assert os.listdir(tmp_path) == []


@needs_dot
def test_graphviz_draws_svg_and_refuses_bad_dot_text(tmp_path: Path) -> None:
    output = tmp_path / "pair.svg"
    dot_module.run_dot('digraph { "first" -> "second" }', output)
    titles = ElementTree.parse(output).getroot().itertext()
    assert {"first", "second"} <= {title.strip() for title in titles}
    with pytest.raises(CliError, match=r"^dot could not render .*broken\.svg \(exit code 1\): .*syntax error"):
        dot_module.run_dot("digraph { -> }", tmp_path / "broken.svg")
    assert not (tmp_path / "broken.svg").exists()
    assert partial_files(tmp_path) == []
