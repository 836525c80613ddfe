"""Second review of ``fluxion validate`` of many files (issue 21): a line per file and a total, so a
file the command line names twice (itself and through its folder) is one file, checked once."""

from pathlib import Path

import pytest

from fluxion.cli import main
from tests.cli.helpers import MLP, write_spec


@pytest.mark.xfail(
    strict=True,
    reason="a spec named twice (as a file and within its folder, or twice as a file) is checked and "
    "counted twice: two lines for one file, and '2 checked' in the total",
)
@pytest.mark.parametrize("twice", ["folder and file", "file twice"])
def test_a_file_named_twice_is_checked_once(tmp_path: Path, capsys: pytest.CaptureFixture[str], twice: str) -> None:
    spec = write_spec(tmp_path / "mlp.json", MLP)
    argv = [str(tmp_path), str(spec)] if twice == "folder and file" else [str(spec), str(spec)]
    assert main(["validate", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith(f"{spec}: valid")] == [lines[0]]
    assert lines[-1] == "1 checked: 1 valid, 0 not valid"
