"""The options the commands share: ``--depth``, and the limits on evaluating jsonnet."""

from pathlib import Path

import pytest

from tests.cli.helpers import fails, run


def test_show_depth_with_other_digits(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    fails(run(capsys, "show", str(mlp), "--depth", "²"), 2, "--depth")


def test_a_hostile_spec_hits_a_limit(capsys: pytest.CaptureFixture[str], tmp_path: Path, deadline: None) -> None:
    path = tmp_path / "hostile.jsonnet"
    path.write_text("std.range(0, 1e9)")
    fails(run(capsys, "validate", str(path), "--memory-limit", "256M"), 1, "memory limit", "--memory-limit")
    path.write_text("std.parseJson(std.repeat('[', 50000) + std.repeat(']', 50000))")
    fails(run(capsys, "validate", str(path)), 1, "stack")


def test_limits_can_be_turned_off(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonnet"
    path.write_text("local f(n) = if n == 0 then {type: 'ReLU'} else f(n - 1); f(700)")
    fails(run(capsys, "validate", str(path)), 1, "stack limit is 500", "--stack-limit")
    assert run(capsys, "validate", str(path), "--stack-limit", "2000").code == 0
    assert run(capsys, "validate", str(path), "--no-limits", "--stack-limit", "10").code == 1  # jsonnet's own 500
