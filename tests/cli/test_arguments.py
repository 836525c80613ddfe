"""The options the commands share: ``--depth``, and the limits on evaluating jsonnet."""

import argparse
import os
from pathlib import Path

import pytest

from fluxion.cli.arguments import (
    add_assume_argument,
    add_depth_argument,
    add_format_argument,
    add_spec_arguments,
    depth,
    spec_options,
)
from fluxion.errors import UsageError
from fluxion.spec.limits import DEFAULT_LIMITS, Limits
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


# -- the shared options, parsed


def parser(*, several: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_spec_arguments(parser, several=several)
    add_depth_argument(parser)
    add_format_argument(parser)
    return parser


def test_spec_options_gather_what_the_command_line_gives() -> None:
    args = parser().parse_args(
        [
            "net.jsonnet",
            "--ext-var",
            "name=resnet",
            "--ext-code",
            "widths=[64,32]",
            "--tla",
            "depth=50",
            "--tla",
            "act=gelu",
            "--input",
            "image=B,3,H,W",
            "-J",
            "lib",
            "--search-path",
            "vendor",
        ]
    )
    options = spec_options(args)
    assert options.file == "net.jsonnet"
    assert options.ext_vars == {"name": "resnet"}
    assert options.ext_code == {"widths": "[64,32]"}
    assert options.tla == {"depth": 50, "act": "gelu"}
    assert options.inputs == {"image": ("B", 3, "H", "W")}
    assert options.search_paths == ("lib", "vendor")
    assert options.limits == DEFAULT_LIMITS
    assert (args.depth, args.format) == (None, "text")


def test_nothing_given_is_empty_and_the_default_limits() -> None:
    options = spec_options(parser().parse_args(["m.json"]))
    assert (options.ext_vars, options.ext_code, options.tla, options.inputs) == ({}, {}, {}, {})
    assert options.search_paths == ()
    assert options.limits == DEFAULT_LIMITS


def test_limits_are_read_and_no_limits_turns_them_off() -> None:
    given = ["m.jsonnet", "--time-limit", "2.5", "--memory-limit", "512M", "--stack-limit", "100", "--node-limit", "7"]
    options = spec_options(parser().parse_args(given))
    assert options.limits == Limits(time=2.5, memory=512 * 2**20, stack=100, nodes=7)
    assert spec_options(parser().parse_args([*given, "--no-limits"])).limits is None


def test_several_specs_share_the_options_each_read_for_its_own_file() -> None:
    args = parser(several=True).parse_args(["a.json", "b.jsonnet", "--tla", "depth=18"])
    assert args.spec == ["a.json", "b.jsonnet"]
    options = [spec_options(args, file) for file in args.spec]
    assert [option.file for option in options] == ["a.json", "b.jsonnet"]
    assert all(option.tla == {"depth": 18} for option in options)
    with pytest.raises(SystemExit):  # argparse's exit on a missing SPEC
        parser(several=True).parse_args([])


@pytest.mark.parametrize("option", ["--ext-var", "--ext-code", "--tla", "--input"])
def test_a_name_given_twice_is_a_usage_error(option: str) -> None:
    args = parser().parse_args(["m.json", option, "x=1", option, "x=2"])
    with pytest.raises(UsageError) as raised:
        spec_options(args)
    assert str(raised.value) == f"{option} x is given twice"
    assert spec_options(parser().parse_args(["m.json", option, "x=1", option, "y=2"]))  # two names are fine


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


def test_ext_var_values_are_json_and_ext_vars_add_to_them() -> None:
    args = parser().parse_args(
        ["m.jsonnet", "--ext-var", "n=3", "--ext-vars", '{"depths": [2, 2], "act": "relu"}', "--ext-var", "id=x"]
    )
    assert spec_options(args).ext_vars == {"n": 3, "depths": [2, 2], "act": "relu", "id": "x"}
    with pytest.raises(UsageError, match=r"^--ext-var n is given twice$"):
        spec_options(parser().parse_args(["m.jsonnet", "--ext-var", "n=3", "--ext-vars", '{"n": 3}']))


def test_assumptions_are_gathered_by_name() -> None:
    args = argparse.ArgumentParser()
    add_spec_arguments(args)
    add_assume_argument(args)
    options = spec_options(args.parse_args(["m.json", "--assume", "H%32==0", "--assume", "W % 16 = 0"]))
    assert options.assume == {"H": 32, "W": 16}
    assert spec_options(args.parse_args(["m.json"])).assume == {}
    # several divisors of one size combine into their least common multiple
    combined = spec_options(
        args.parse_args(["m.json", "--assume", "H%32==0", "--assume", "H%2==0", "--assume", "H%3==0"])
    )
    assert combined.assume == {"H": 96}


def test_narchi_s_cwd_is_where_a_relative_spec_path_starts() -> None:
    args = argparse.Namespace(spec="net.jsonnet", ext_var=None, ext_code=None, tla=None, input=None, search_path=None)
    assert spec_options(args).file == "net.jsonnet"
    args.narchi_cwd = "models"
    assert spec_options(args).file == os.path.join("models", "net.jsonnet")
    assert spec_options(args, "/abs/net.jsonnet").file == "/abs/net.jsonnet"
