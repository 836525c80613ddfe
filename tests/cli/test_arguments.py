"""The options the commands share: ``--depth``, ``--format``, and the limits on evaluating jsonnet.
What the spec options then mean (``spec_options``) is tested in test_loading.py."""

import argparse
from pathlib import Path

import pytest

from fluxion.cli.arguments import depth
from fluxion.spec.limits import DEFAULT_LIMITS
from tests.cli.helpers import fails, parser, run


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


# -- the shared options, parsed


@pytest.mark.parametrize(("text", "levels"), [("0", 0), ("3", 3), ("007", 7)])
def test_depth_accepted(text: str, levels: int) -> None:
    assert depth(text) == levels


@pytest.mark.parametrize("text", ["-1", "1.5", "", "one", "²", " 2"])
def test_depth_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        depth(text)
    assert str(raised.value) == f"--depth is a number of levels, 0 or more, got {text!r}"


def test_format_is_text_or_json() -> None:
    assert parser().parse_args(["m.json", "--format", "json"]).format == "json"
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 'yaml'"):
        parser().parse_args(["m.json", "--format", "yaml"])


def test_the_limits_default_to_those_of_fluxion_spec() -> None:
    # written out in fluxion.cli.arguments, so that building the parser does not import fluxion.spec
    args = parser().parse_args(["m.json"])
    defaults = (args.time_limit, args.memory_limit, args.stack_limit, args.node_limit, args.no_limits)
    assert defaults == (DEFAULT_LIMITS.time, DEFAULT_LIMITS.memory, DEFAULT_LIMITS.stack, DEFAULT_LIMITS.nodes, False)
    said = " ".join(parser().format_help().split())
    assert f"(default {DEFAULT_LIMITS.time:g})" in said
    assert f"(default {DEFAULT_LIMITS.stack})" in said
    assert f"(default {DEFAULT_LIMITS.nodes})" in said
    assert DEFAULT_LIMITS.memory == 2**30  # the help says 1G
