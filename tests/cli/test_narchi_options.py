"""narchi's command lines run as fluxion commands: ``--ext_vars``, ``--nested_depth``, ``--cwd``,
``--overwrite``, the options fluxion honours anyway, and the ones refused with what to write instead."""

import argparse
import json
import os
from pathlib import Path

import pytest

from fluxion.cli.narchi_options import add_narchi_options, narchi_bool, nested_depth
from tests.cli.helpers import fails, run, write

NARCHI = """\
local widths = std.extVar('widths');
local ids = ['fc%d' % i for i in std.range(0, std.length(widths) - 1)];
{
  _id: 'net',
  inputs: [{_id: 'features', _shape: [std.extVar('features')]}],
  outputs: [{_id: 'scores', _shape: ['<<auto>>']}],
  blocks: [{_class: 'Linear', _id: ids[i], output_feats: widths[i]} for i in std.range(0, std.length(widths) - 1)],
  graph: [std.join(' -> ', ['features'] + ids + ['scores'])],
}
"""
"""A narchi architecture sized by external variables: a list of widths and a number."""

EXT_VARS = '{"widths": [8, 4], "features": 16}'

NESTED = """\
{type: 'Chain', inputs: {x: ['B', 4]}, children: [
  {type: 'Chain', id: 'outer', children: [{type: 'Chain', id: 'inner', children: [{type: 'Linear', out_features: 4}]}]},
]}
"""


@pytest.fixture
def narchi(tmp_path: Path) -> str:
    return write(tmp_path / "net.jsonnet", NARCHI)


def test_narchi_s_validate_line(capsys: pytest.CaptureFixture[str], narchi: str) -> None:
    result = run(capsys, "validate", "--ext_vars", EXT_VARS, narchi, narchi)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [  # named twice, checked once
        f"{narchi}: valid, features (B, 16) → (B, 4), 172 parameters",
        "1 checked: 1 valid, 0 not valid",
    ]


def test_narchi_s_render_line_with_o(capsys: pytest.CaptureFixture[str], narchi: str, tmp_path: Path) -> None:
    output = tmp_path / "net.dot"
    result = run(capsys, "render", "--ext_vars", EXT_VARS, "--nested_depth", "4", narchi, "-o", str(output))
    assert result.code == 0, result.err
    assert "fc0 -> fc1" in output.read_text()


def test_ext_vars_strings_and_json_values_reach_jsonnet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # strings are jsonnet strings, everything else a jsonnet value (as narchi passes them)
    path = write(
        tmp_path / "kinds.jsonnet",
        """{type: 'Chain', children: [{type: std.extVar('act')}], inputs: {x: [
             'B', std.extVar('n') * 2, std.length(std.extVar('list')), if std.extVar('flag') then 5 else 0,
             if std.extVar('nothing') == null then 7 else 0, std.extVar('nested').size]}}""",
    )
    variables = '{"n": 3, "act": "ReLU", "flag": true, "nothing": null, "list": [1, "a"], "nested": {"size": 9}}'
    for limits in ([], ["--no-limits"]):
        result = run(capsys, "validate", path, "--ext-vars", variables, *limits, "--format", "json")
        assert result.code == 0, result.err
        assert json.loads(result.out)["inputs"] == {"x": ["B", 6, 2, 5, 7, 9]}


def test_ext_vars_and_ext_var_together_and_a_name_given_twice(capsys: pytest.CaptureFixture[str], narchi: str) -> None:
    result = run(capsys, "validate", narchi, "--ext-vars", '{"widths": [8, 2]}', "--ext-var", "features=4")
    assert (result.code, "output: (B, 2)" in result.out) == (0, True), result.err
    both = ["--ext-vars", '{"widths": [8], "features": 4}', "--ext-var", "features=4"]
    fails(run(capsys, "validate", narchi, *both), 2, "--ext-var features is given twice")
    fails(run(capsys, "validate", narchi, "--ext_vars", "[8, 2]"), 2, "--ext-vars takes a JSON object", "got a list")


@pytest.mark.parametrize(("narchi_depth", "depth"), [("1", ["--depth", "1"]), ("2", ["--depth", "2"]), ("0", [])])
def test_nested_depth_is_depth_and_0_shows_everything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, narchi_depth: str, depth: list[str]
) -> None:
    path = write(tmp_path / "nested.jsonnet", NESTED)
    narchi_dot = run(capsys, "render", path, "--nested_depth", narchi_depth, "-o", "-").out
    assert narchi_dot == run(capsys, "render", path, *depth, "-o", "-").out
    assert narchi_dot == run(capsys, "render", path, "--nested-depth", narchi_depth, "-o", "-").out
    fails(run(capsys, "render", path, "--nested_depth", "-1", "-o", "-"), 2, "--nested_depth is a number of levels")


def test_cwd_is_where_a_relative_spec_path_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models").mkdir()
    write(tmp_path / "models" / "net.jsonnet", NARCHI)
    monkeypatch.chdir(tmp_path)
    result = run(capsys, "validate", "--cwd", "models", "--ext_vars", EXT_VARS, "net.jsonnet")
    assert result.code == 0, result.err
    assert result.out.startswith(os.path.join("models", "net.jsonnet") + ": valid")
    absolute = str(tmp_path / "models" / "net.jsonnet")
    assert run(capsys, "validate", "--cwd", "elsewhere", "--ext_vars", EXT_VARS, absolute).code == 0


def test_overwrite_false_refuses_an_existing_file(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path
) -> None:
    output = tmp_path / "mlp.dot"
    assert run(capsys, "render", str(mlp), "-o", str(output), "--overwrite=false").code == 0  # new: written
    output.write_text("mine")
    fails(run(capsys, "render", str(mlp), "-o", str(output), "--overwrite=false"), 1, "--overwrite=false", str(output))
    assert output.read_text() == "mine"
    assert run(capsys, "render", str(mlp), "-o", str(output), "--overwrite", "true").code == 0
    assert output.read_text() != "mine"
    assert run(capsys, "validate", str(mlp), "--overwrite=false").code == 0  # nothing written: nothing to refuse


ACCEPTED = [
    "--validate=true",
    "--propagate",
    "true",
    "--propagated=false",
    "--propagators",
    "default",
    "--parent_id",
    "",
    "--outdir",
    ".",
    "--save_json=false",
    "--overwrite=true",
]


def test_what_fluxion_does_anyway_is_accepted(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    assert run(capsys, "validate", str(mlp), *ACCEPTED).code == 0
    render = [*ACCEPTED, "--save_pdf=false", "--save_gv", "false", "--full_ids=false", "--layout_prog", "dot"]
    assert run(capsys, "render", str(mlp), "-o", "-", *render).code == 0


@pytest.mark.parametrize(
    ("command", "given", "words"),
    [
        ("validate", ["--cfg", "config.yaml"], ["--cfg", "no config files"]),
        ("validate", ["--print_config"], ["--print_config", "no config files"]),
        ("validate", ["--validate=false"], ["--validate=false", "always checks"]),
        ("validate", ["--propagate=false"], ["--propagate=false", "always infers"]),
        ("validate", ["--propagated"], ["--propagated=true", "give the file it came from"]),
        ("validate", ["--propagators", "mine"], ["--propagators mine", "'default'"]),
        ("validate", ["--parent_id", "top"], ["--parent_id top", "address"]),
        ("validate", ["--save_json=true"], ["--save_json=true", "fluxion export"]),
        ("validate", ["--overwrite=maybe"], ["--overwrite is true or false"]),
        ("render", ["--save_pdf=true"], ["--save_pdf=true", "-o FILE.pdf"]),
        ("render", ["--save_gv=TRUE"], ["--save_gv=true", "-o FILE.dot"]),
        ("render", ["--block_attrs", '{"Default": "shape=box"}'], ["--block_attrs", "own styles"]),
        ("render", ["--block_labels", "{}"], ["--block_labels", "own styles"]),
        ("render", ["--edge_attrs", "fontsize=10"], ["--edge_attrs", "own styles"]),
        ("render", ["--full_ids=true"], ["--full_ids=true"]),
        ("render", ["--layout_prog", "neato"], ["--layout_prog neato", "run neato on it"]),
        ("validate", ["--nested_depth", "2"], ["unknown option --nested_depth"]),
        ("show", ["--nested_depth", "2"], ["unknown option --nested_depth; did you mean --depth?"]),
        ("validate", ["--save_pdf=true"], ["unknown option --save_pdf"]),
    ],
)
def test_what_fluxion_does_otherwise_is_refused_saying_what_to_write(
    capsys: pytest.CaptureFixture[str], mlp: Path, command: str, given: list[str], words: list[str]
) -> None:
    output = ["-o", "-"] if command == "render" else []
    fails(run(capsys, command, str(mlp), *given, *output), 2, *words)


def test_narchi_s_options_are_hidden_from_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("validate", "render"):
        text = run(capsys, command, "--help").out
        assert "--ext-vars" in text
        assert "nested" not in text
        assert "--save" not in text


def test_values_as_narchi_reads_them() -> None:
    assert (narchi_bool("true", "--x"), narchi_bool(" FALSE ", "--x")) == (True, False)
    assert (nested_depth("0"), nested_depth("5")) == (None, 5)
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int)
    add_narchi_options(parser, "render")
    assert parser.parse_args([]).depth is None
    assert parser.parse_args(["--nested_depth", "3"]).depth == 3
    assert vars(parser.parse_args(["--overwrite", "false"]))["narchi_overwrite"] is False
