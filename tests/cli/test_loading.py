"""Reading a spec for a command: the options a command line gives, paths that are not spec files,
and jsonnet variables that do not evaluate."""

import argparse
import os
from pathlib import Path

import pytest

from fluxion.cli.arguments import add_assume_argument, add_spec_arguments
from fluxion.cli.loading import SpecOptions, load_spec, spec_inputs_text, spec_options, variables_hint
from fluxion.errors import SpecError, UsageError
from fluxion.spec.limits import DEFAULT_LIMITS, Limits
from tests.cli.helpers import fails, parser, run, write, write_spec


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_a_spec_that_is_not_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str, deadline: None
) -> None:
    if kind == "fifo":
        path = tmp_path / "model.jsonnet"
        os.mkfifo(path)
    elif kind == "folder":
        path = tmp_path / "model.json"
        path.mkdir()
    else:
        path = Path("/dev/zero")
    said = {"fifo": "is a FIFO", "folder": "is a folder", "device": "is a character device"}[kind]
    fails(run(capsys, "show", str(path)), 1, str(path), said)  # validate takes a folder of specs


def test_a_missing_spec_without_suffix_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fails(run(capsys, "validate", "model"), 1, "model", "no such spec file")


def test_bad_jsonnet_variables_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.jsonnet"
    path.write_text("{type: 'ReLU', description: std.extVar('x')}")
    fails(run(capsys, "validate", str(path), "--ext-code", "x={a: }"), 1)
    fails(run(capsys, "validate", str(path), "--ext-code", "x=" + "[" * 3000 + "]" * 3000), 1)


# -- the spec's inputs and --input


def graph(inputs: object) -> dict[str, object]:
    """A Graph of two inputs, x and y, its sizes all given (it builds without input shapes)."""
    return {
        "type": "Graph",
        "inputs": inputs,
        "nodes": [{"type": "Linear", "id": "fc", "in_features": 8, "out_features": 8}, {"type": "Add", "id": "add"}],
        "edges": ["x -> fc -> add", "y -> add"],
    }


def test_the_spec_s_input_shapes_are_used_and_the_tree_is_on_meta(mlp: Path) -> None:
    loaded = load_spec(SpecOptions(mlp))
    assert loaded.file == str(mlp)
    assert loaded.inputs == {"x": ("B", 8)}
    assert loaded.report is not None
    assert str(loaded.report.output) == "(B, 2)"
    assert str(loaded.report["head"].output) == "(B, 2)"
    assert loaded.missing == ()
    assert {parameter.device.type for parameter in loaded.model.parameters()} == {"meta"}


def test_an_input_given_replaces_the_spec_s_shape_for_that_input(mlp: Path, tmp_path: Path) -> None:
    loaded = load_spec(SpecOptions(mlp, inputs={"x": ("N", 5)}))
    assert loaded.inputs == {"x": ("N", 5)}
    assert loaded.model.fc.in_features == 5  # inferred from the shape given, not the spec's
    assert loaded.report is not None
    assert str(loaded.report.output) == "(N, 2)"

    two = write_spec(tmp_path / "graph.json", graph({"x": ["B", 8], "y": ["B", 8]}))
    loaded = load_spec(SpecOptions(two, inputs={"y": ("T", 8)}))
    assert loaded.inputs == {"x": ("B", 8), "y": ("T", 8)}  # the spec's order, x kept
    assert loaded.report is not None
    assert str(loaded.report["add"].inputs) == "((B, 8), (T, 8))"
    assert [str(constraint.second) for constraint in loaded.report.constraints] == ["T"]  # T must be B


def test_a_narchi_architecture_s_inputs_get_the_batch_dimension(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path / "narchi.json",
        {
            "_id": "net",
            "inputs": [{"_id": "features", "_shape": [20]}],
            "outputs": [{"_id": "scores", "_shape": [4]}],
            "blocks": [{"_class": "Linear", "_id": "head", "output_feats": 4}],
            "graph": ["features -> head -> scores"],
        },
    )
    loaded = load_spec(SpecOptions(path))
    assert loaded.inputs == {"features": ("B", 20)}
    assert loaded.report is not None
    assert str(loaded.report.output) == "(B, 4)"
    assert load_spec(SpecOptions(path, inputs={"features": ("N", 20)})).inputs == {"features": ("N", 20)}
    with pytest.raises(UsageError, match=r"^--input x: the spec's inputs are features$"):
        load_spec(SpecOptions(path, inputs={"x": ("N", 20)}))


def test_an_input_the_spec_does_not_declare_is_a_usage_error(mlp: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as raised:
        load_spec(SpecOptions(mlp, inputs={"image": ("B", 8)}))
    assert str(raised.value) == "--input image: the spec's inputs are x"
    names_only = write_spec(tmp_path / "none.json", {"type": "Chain", "inputs": [], "children": []})
    with pytest.raises(UsageError, match=r"^--input x: the spec's inputs are none$"):
        load_spec(SpecOptions(names_only, inputs={"x": (1,)}))


def test_inputs_named_without_shapes_leave_the_shapes_unchecked(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "graph.json", graph(["x", "y"]))
    loaded = load_spec(SpecOptions(path))
    assert (loaded.inputs, loaded.report, loaded.missing) == (None, None, ("x", "y"))
    assert loaded.model.fc.in_features == 8

    loaded = load_spec(SpecOptions(path, inputs={"y": ("B", 8), "x": ("B", 8)}))
    assert list(loaded.inputs or {}) == ["x", "y"]
    assert loaded.report is not None
    assert loaded.missing == ()

    with pytest.raises(UsageError) as raised:
        load_spec(SpecOptions(path, inputs={"x": ("B", 8)}))
    assert str(raised.value) == "give a shape for every input: y has none (--input NAME=DIMS)"
    assert raised.value.exit_code == 2


def test_a_spec_without_inputs_takes_the_input_shapes_given_by_position(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "net.json", {"type": "Chain", "children": [{"type": "Linear", "out_features": 3}]})
    loaded = load_spec(SpecOptions(path, inputs={"anything": ("B", 5)}))
    assert loaded.inputs == {"anything": ("B", 5)}
    assert loaded.model.Linear.in_features == 5
    assert loaded.report is not None
    assert str(loaded.report.output) == "(B, 3)"

    linear = {"type": "Linear", "in_features": 4, "out_features": 3}
    sized = write_spec(tmp_path / "sized.json", {"type": "Chain", "children": [linear]})
    loaded = load_spec(SpecOptions(sized))
    assert (loaded.inputs, loaded.report, loaded.missing) == (None, None, ())


def test_a_bad_input_shape_in_the_spec_names_the_file_and_json_path(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "m.json", {"type": "Chain", "inputs": {"x": ["B", 2.5]}, "children": []})
    with pytest.raises(SpecError) as raised:
        load_spec(SpecOptions(path))
    assert str(raised.value) == f'{path}: inputs.x: a size is a number or a symbol name such as "B", got 2.5'
    assert raised.value.file == str(path)


def test_jsonnet_is_read_with_the_variables_and_search_paths_given(tmp_path: Path) -> None:
    library = tmp_path / "library"
    library.mkdir()
    (library / "head.libsonnet").write_text("function(classes) {type: 'Linear', id: 'head', out_features: classes}")
    path = tmp_path / "model" / "net.jsonnet"
    path.parent.mkdir()
    path.write_text(
        "local head = import 'head.libsonnet';\n"
        "function(width) {type: 'Chain', inputs: {x: ['B', std.parseInt(std.extVar('features'))]},\n"
        "  children: [{type: 'Linear', out_features: width}, head(std.extVar('classes'))]}"
    )
    options = SpecOptions(
        path,
        ext_vars={"features": "6"},
        ext_code={"classes": "1 + 2"},
        tla={"width": 4},
        search_paths=[str(library)],
    )
    loaded = load_spec(options)
    assert loaded.inputs == {"x": ("B", 6)}
    assert (loaded.model.Linear.in_features, loaded.model.head.out_features) == (6, 3)
    with pytest.raises(SpecError, match=r"head\.libsonnet"):
        load_spec(SpecOptions(path, ext_vars={"features": "6"}, ext_code={"classes": "3"}, tla={"width": 4}))


def test_input_shapes_as_one_line() -> None:
    assert spec_inputs_text({}) == ""
    assert spec_inputs_text({"image": ("B", 3, 224, 224), "scale": ()}) == "image (B, 3, 224, 224), scale ()"


# -- a variable of the wrong type, and --assume

TWICE = "{type: 'Chain', inputs: {x: ['B', std.extVar('n') * 2]}, children: [{type: 'ReLU'}]}"


@pytest.mark.parametrize(
    ("code", "given"),
    [
        (TWICE, ["--ext-var", 'n="3"']),
        (TWICE, ["--ext-vars", '{"n": "3"}']),
        ("{type: 'Chain', inputs: {x: ['B', std.range(1, std.extVar('n'))[0]]}, children: []}", ["--ext-var", 'n="3"']),
        ("{type: 'Chain', inputs: {x: ['B', 8]}, children: [{type: 'Linear', out_features: std.extVar('n')}]}",
         ["--ext-var", 'n="3"']),
        ("function(n) {type: 'Chain', inputs: {x: ['B', n - 1]}, children: []}", ["--tla", 'n="3"']),
    ],
)  # fmt: skip
def test_a_string_where_a_number_was_expected_hints_at_json_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, code: str, given: list[str]
) -> None:
    path = write(tmp_path / "net.jsonnet", code)
    result = run(capsys, "validate", path, *given)
    assert result.code == 1
    hint = result.err.strip().splitlines()[-1]
    option = "--tla" if "--tla" in given else "--ext-var"
    assert hint.startswith(
        f'  hint: {option} n is the string "3"; give a number, list or boolean as JSON ({option} n=3)'
    )
    assert ("--ext-code n=3" in hint) == (option == "--ext-var")
    fixed = [given[0], '{"n": 3}' if given[0] == "--ext-vars" else "n=3"]
    assert run(capsys, "validate", path, *fixed).code == 0, run(capsys, "validate", path, *fixed).err


def test_a_number_where_a_string_was_expected_hints_at_quoting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(
        tmp_path / "net.jsonnet", "{type: 'Chain', inputs: {x: ['B', std.parseInt(std.extVar('n'))]}, children: []}"
    )
    result = run(capsys, "validate", path, "--ext-var", "n=3")
    assert result.code == 1
    assert result.err.strip().endswith("""quote it as JSON: --ext-var 'n="3"'""")
    assert run(capsys, "validate", path, "--ext-var", 'n="3"').code == 0


def test_no_hint_for_errors_a_variable_does_not_explain(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(
        tmp_path / "net.jsonnet", "{type: 'Chain', inputs: {x: ['B', 'a' * 2]}, children: [{type: std.extVar('act')}]}"
    )
    result = run(capsys, "validate", path, "--ext-var", "act=ReLU")  # a string, but not the one in the error
    assert result.code == 1
    assert "hint:" not in result.err
    assert "hint:" not in run(capsys, "validate", path, "--ext-var", "act=3").err
    assert variables_hint("binary operator * requires matching types, got string and number.", SpecOptions("m")) == ""


def test_assume_reads_the_shapes_under_it(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path / "net.json",
        {"type": "Chain", "inputs": {"x": ["B", 3, "H", "W"]}, "children": [
            {"type": "Conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1}]},
    )  # fmt: skip
    report = load_spec(SpecOptions(path, assume={"H": 2})).report
    assert report is not None
    assert (str(report.output), report.assumed) == ("(B, 4, H/2, ceil(W/2))", {"H": 2})
    with pytest.raises(UsageError, match=r"^--assume Q: no input size is named Q; the input sizes named are: B, H, W$"):
        load_spec(SpecOptions(path, assume={"Q": 2}))
    with pytest.raises(UsageError, match=r"^--assume: the spec gives no input shapes"):
        load_spec(SpecOptions(write_spec(tmp_path / "bare.json", {"type": "Chain", "children": []}), assume={"H": 2}))


# -- the spec options of a parsed command line


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
