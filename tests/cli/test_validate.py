"""``fluxion validate``: the report of a valid spec (text and JSON), errors that say where, and many
specs or folders of them checked in one go."""

import json
import os
from pathlib import Path

import pytest

from tests.cli.helpers import CONVS, EXAMPLES, MLP, ROOT, fails, run, write, write_spec


def test_validate_reports_shapes_and_parameters(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    result = run(capsys, "validate", str(mlp))
    assert result.code == 0
    assert result.out.splitlines() == [
        f"{mlp}: valid",
        "  input:  x (B, 8)",
        "  output: (B, 2)",
        "  parameters: 178",
    ]
    assert result.err == ""


def test_validate_json(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    result = run(capsys, "validate", str(mlp), "--input", "x=N,8", "--format", "json")
    assert result.code == 0
    assert json.loads(result.out) == {
        "valid": True,
        "file": str(mlp),
        "shapes_checked": True,
        "inputs": {"x": ["N", 8]},
        "output": ["N", 2],
        "constraints": [],
        "assuming": [],
        "parameters": 178,
    }


def test_validate_reads_jsonnet_variables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(
        tmp_path / "net.jsonnet",
        """function(widths, act='ReLU') {
          type: 'Chain',
          inputs: {x: ['B', std.parseInt(std.extVar('features'))]},
          children: [{type: 'Linear', out_features: w} for w in widths] + [{type: act}]
                    + [{type: 'Linear', out_features: std.extVar('classes')}],
        }""",
    )
    argv = ["validate", path, "--tla", "widths=[8,4]", "--tla", "act=Tanh", "--ext-var", 'features="3"']
    result = run(capsys, *argv, "--ext-code", "classes=2", "--format", "json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["inputs"] == {"x": ["B", 3]}
    assert report["output"] == ["B", 2]
    assert report["parameters"] == (3 * 8 + 8) + (8 * 4 + 4) + (4 * 2 + 2)


def test_validate_without_input_shapes_says_shapes_were_not_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(
        tmp_path / "m.json", '{"type": "Chain", "children": [{"type": "Linear", "in_features": 2, "out_features": 2}]}'
    )
    result = run(capsys, "validate", path)
    assert result.code == 0
    assert "valid (shapes not checked: the spec gives no input shapes; pass --input NAME=DIMS)" in result.out


BROKEN = {
    "unknown type": (
        '{"type": "Chain", "children": [{"type": "Linnear", "out_features": 2}]}',
        "children[0].type: unknown type 'Linnear' (closest registered: Linear)",
    ),
    "bad argument": (
        '{"type": "Chain", "children": [{"type": "Conv2d", "out_channels": 8, "kernel_size": "3"}]}',
        'children[0].kernel_size: expected an int, a list of 2 ints or null, got "3"',
    ),
    "shape mismatch": (
        json.dumps(
            {
                "type": "Chain",
                "inputs": {"x": ["B", 8]},
                "children": [
                    {"type": "Linear", "out_features": 16},
                    {"type": "Linear", "in_features": 200, "out_features": 2},
                ],
            }
        ),
        "children[1]: shapes do not fit: Linear at 'Linear_2' got (B, 16): Linear expects last dim 200, got 16",
    ),
    "not JSON": ('{"type": "Chain",', "m.json:1:18: Expecting property name enclosed in double quotes"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validate_names_the_problem(capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str) -> None:
    text, expected = BROKEN[case]
    path = write(tmp_path / "m.json", text)
    result = run(capsys, "validate", path)
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith(f"fluxion validate: error: {path}")
    assert expected in result.err
    assert "Traceback" not in result.err


def test_validate_json_error_says_where(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", BROKEN["shape mismatch"][0])
    result = run(capsys, "validate", path, "--format", "json")
    assert result.code == 1
    report = json.loads(result.out)
    assert report["valid"] is False
    assert report["error"]["type"] == "SpecError"
    assert report["error"]["file"] == path
    assert report["error"]["path"] == "children[1]"
    assert report["error"]["address"] == "Linear_2"


def test_jsonnet_errors_have_line_and_column(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonnet", "{type: 'Chain', children: [{type: 'ReLU'}]\n")
    result = run(capsys, "validate", path)
    assert result.code == 1
    assert f"{path}:2:1: expected a comma before next field" in result.err


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_validates(capsys: pytest.CaptureFixture[str], example: Path) -> None:
    result = run(capsys, "validate", str(example), "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)


# -- several specs, counts and constraints

GRAPH = {
    "type": "Graph",
    "inputs": {"x": ["B", 8], "y": ["T", 8]},
    "nodes": [{"type": "Linear", "id": "fc", "in_features": 8, "out_features": 8}, {"type": "Add", "id": "add"}],
    "edges": ["x -> fc -> add", "y -> add"],
}
"""Two inputs whose first sizes Add needs to be equal: a constraint, B = T."""


def test_each_spec_is_checked_even_after_one_that_is_not_valid(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = write(tmp_path / "bad.json", '{"type": "Chain", "children": [{"type": "Nope"}]}')
    good = write(tmp_path / "good.json", json.dumps(GRAPH))
    result = run(capsys, "validate", bad, good)
    assert result.code == 1
    assert result.out.splitlines() == [
        f"{bad}: not valid",
        f"{good}: valid, x (B, 8), y (T, 8) → (B, 8), 72 parameters",
        "2 checked: 1 valid, 1 not valid",
    ]
    assert result.err.splitlines() == [
        f"fluxion validate: error: {bad}: children[0].type: unknown type 'Nope' (see fluxion.spec.registered())"
    ]

    result = run(capsys, "validate", good, bad, "--format", "json")
    assert result.code == 1
    reports = [json.loads(line) for line in result.out.splitlines()]
    assert [(report["file"], report["valid"]) for report in reports] == [(good, True), (bad, False)]
    assert reports[1]["error"]["path"] == "children[0].type"
    assert run(capsys, "validate", good, good).code == 0


def test_constraints_between_symbols_are_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path / "graph.json", json.dumps(GRAPH))
    result = run(capsys, "validate", path)
    assert result.out.splitlines() == [
        f"{path}: valid",
        "  input:  x (B, 8), y (T, 8)",
        "  output: (B, 8)",
        "  parameters: 72",
        "  constraint: B = T (Add needs sizes that broadcast at dim -2 (have B), at 'add')",
    ]
    report = json.loads(run(capsys, "validate", path, "--format", "json").out)
    assert report["constraints"] == ["B = T (Add needs sizes that broadcast at dim -2 (have B), at 'add')"]
    assert report["inputs"] == {"x": ["B", 8], "y": ["T", 8]}


def test_a_thousand_parameters_or_more_are_also_counted_short(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = {"type": "Chain", "inputs": {"x": ["B", 64]}, "children": [{"type": "Linear", "out_features": 64}]}
    path = write(tmp_path / "wide.json", json.dumps(spec))
    assert "  parameters: 4,160 (4.2K)" in run(capsys, "validate", path).out.splitlines()


def test_inputs_named_without_shapes_are_said_and_not_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write(tmp_path / "names.json", json.dumps(GRAPH | {"inputs": ["x", "y"]}))
    result = run(capsys, "validate", path)
    assert (result.code, result.out) == (
        0,
        f"{path}: valid (shapes not checked: no shape for input x, y; pass --input NAME=DIMS)\n",
    )
    report = json.loads(run(capsys, "validate", path, "--format", "json").out)
    assert (report["shapes_checked"], report["inputs"], report["output"], report["parameters"]) == (
        False,
        None,
        None,
        72,
    )
    checked = json.loads(run(capsys, "validate", path, "--input", "x=B,8", "--input", "y=B,8", "--format", "json").out)
    assert (checked["shapes_checked"], checked["output"], checked["constraints"]) == (True, ["B", 8], [])


def test_assume_reads_sizes_under_it_and_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(write_spec(tmp_path / "convs.json", CONVS))
    result = run(capsys, "validate", path, "--assume", "H%8==0", "--assume", "W%8=0")
    assert result.code == 0, result.err
    assert "  output: (B, 4, H/8, W/8)\n" in result.out
    assert result.out.endswith("  assuming: H % 8 == 0\n  assuming: W % 8 == 0\n")
    report = json.loads(run(capsys, "validate", path, "--assume", "H%8==0", "--format", "json").out)
    assert (report["output"], report["assuming"]) == (["B", 4, "H/8", "ceil(W/8)"], ["H % 8 == 0"])
    assert "assuming" not in run(capsys, "validate", path).out


def test_several_assumptions_of_one_size_combine(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = str(write_spec(tmp_path / "convs.json", CONVS))
    result = run(capsys, "validate", path, "--assume", "H%2==0", "--assume", "H%3==0", "--assume", "H%4==0")
    assert result.code == 0, result.err
    # 12 = lcm(2, 3, 4): H/2, then ceil(H/4) is H/4, then ceil(H/8) stays (12 does not divide by 8)
    assert "  output: (B, 4, ceil(H/8), ceil(W/8))\n" in result.out
    assert result.out.endswith("  parameters: 408\n  assuming: H % 12 == 0\n")
    report = json.loads(
        run(capsys, "validate", path, "--assume", "H%8==0", "--assume", "H%4==0", "--format", "json").out
    )
    assert (report["output"], report["assuming"]) == (["B", 4, "H/8", "ceil(W/8)"], ["H % 8 == 0"])


@pytest.mark.parametrize(
    ("given", "words"),
    [
        (["--assume", "H%8"], ["error: --assume: ", "NAME%N==0"]),
        (["--assume", "H%0==0"], ["error: --assume: ", "2 or more"]),
        (["--assume", "Q%8==0"], ["--assume Q", "B, H, W"]),
        (["--assume", f"H%{2**62}==0", "--assume", "H%3==0"], ["--assume H", "combine to", "above 2**63 - 1"]),
    ],
)
def test_bad_assumptions_are_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, given: list[str], words: list[str]
) -> None:
    path = str(write_spec(tmp_path / "convs.json", CONVS))
    fails(run(capsys, "validate", path, *given), 2, *words)


# -- folders: the specs in them, one line each and a total


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of specs and of files that are not: ``a.json`` and ``c.jsonnet`` (which imports
    ``blocks.libsonnet``) are valid, ``b.json`` is not; the rest is not looked at."""
    specs = tmp_path / "specs"
    specs.mkdir()
    write_spec(specs / "a.json", MLP)
    write_spec(specs / "b.json", {"type": "Chain", "inputs": {"x": ["B", 8]}, "children": [{"type": "Nope"}]})
    write(specs / "blocks.libsonnet", "{ relu: {type: 'ReLU'} }")
    write(specs / "c.jsonnet", "local blocks = import 'blocks.libsonnet'; {type: 'Chain', children: [blocks.relu]}")
    write(specs / "keys.json", '{"fluxion_mapping": 1, "rename": {"fc": "dense"}}')  # a key mapping
    write(specs / ".draft.json", "{not even JSON")
    write(specs / "notes.txt", "not a spec")
    (specs / "old").mkdir()
    write(specs / "old" / "d.json", "{not even JSON")  # sub-folders are not looked into
    os.mkfifo(specs / "pipe.json")  # not a file: skipped, and never opened (it would block)
    return specs


def test_a_folder_is_its_specs_checked_one_by_one_with_a_total(
    capsys: pytest.CaptureFixture[str], folder: Path, deadline: None
) -> None:
    result = run(capsys, "validate", str(folder))
    assert result.code == 1
    assert result.out.splitlines() == [
        f"{folder / 'a.json'}: valid, x (B, 8) → (B, 2), 178 parameters",
        f"{folder / 'b.json'}: not valid",
        f"{folder / 'c.jsonnet'}: valid (shapes not checked: the spec gives no input shapes; pass --input NAME=DIMS)",
        "3 checked: 2 valid, 1 not valid",
    ]
    assert result.err.splitlines() == [
        f"fluxion validate: error: {folder / 'b.json'}: children[0].type: unknown type 'Nope' "
        "(see fluxion.spec.registered())"
    ]
    (folder / "b.json").unlink()
    result = run(capsys, "validate", str(folder), str(folder / "a.json"))  # a.json once
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[-1] == "2 checked: 2 valid, 0 not valid"


def test_a_folder_in_json_is_one_object_per_spec_and_no_total(
    capsys: pytest.CaptureFixture[str], folder: Path, deadline: None
) -> None:
    result = run(capsys, "validate", str(folder), "--format", "json")
    assert result.code == 1
    reports = [json.loads(line) for line in result.out.splitlines()]
    assert [(report["file"], report["valid"]) for report in reports] == [
        (str(folder / "a.json"), True),
        (str(folder / "b.json"), False),
        (str(folder / "c.jsonnet"), True),
    ]
    assert reports[1]["error"]["path"] == "children[0].type"
    assert len(result.err.splitlines()) == 1


def test_one_spec_in_a_folder_still_gets_its_line_and_the_total(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_spec(tmp_path / "only.json", MLP)
    result = run(capsys, "validate", str(tmp_path))
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == [
        f"{tmp_path / 'only.json'}: valid, x (B, 8) → (B, 2), 178 parameters",
        "1 checked: 1 valid, 0 not valid",
    ]


def test_a_folder_without_specs_is_an_error_in_their_place(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    write(empty / "lib.libsonnet", "{}")
    good = str(write_spec(tmp_path / "good.json", MLP))
    result = run(capsys, "validate", str(empty), good)
    assert result.code == 1
    assert result.out.splitlines() == [
        f"{empty}: no spec checked",
        f"{good}: valid, x (B, 8) → (B, 2), 178 parameters",
        "1 checked: 1 valid, 0 not valid; 1 folder without a spec to check",
    ]
    assert result.err == (
        f"fluxion validate: error: {empty}: a folder with no spec in it (no .json, .jsonnet, .yaml, .yml file)\n"
    )
    report = json.loads(run(capsys, "validate", str(empty), "--format", "json").out)
    assert (report["valid"], report["file"], report["error"]["file"]) == (False, str(empty), str(empty))


def test_a_folder_is_found_from_narchi_s_cwd(capsys: pytest.CaptureFixture[str], folder: Path) -> None:
    (folder / "b.json").unlink()
    result = run(capsys, "validate", "specs", "--cwd", str(folder.parent))
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"{folder / 'a.json'}: valid, x (B, 8) → (B, 2), 178 parameters",
        f"{folder / 'c.jsonnet'}: valid (shapes not checked: the spec gives no input shapes; pass --input NAME=DIMS)",
        "2 checked: 2 valid, 0 not valid",
    ]
    write(folder / "e.json", "[]")
    result = run(capsys, "validate", "specs", "--cwd", str(folder.parent), "--format", "json")
    assert [json.loads(line)["file"] for line in result.out.splitlines()] == [
        str(folder / name) for name in ("a.json", "c.jsonnet", "e.json")
    ]


def test_the_examples_folder_is_every_example(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # key mapping files (gpt2.mapping.json...) sit beside the specs: they are not specs
    monkeypatch.chdir(ROOT)
    result = run(capsys, "validate", "examples", "--format", "json")
    assert (result.code, result.err) == (0, "")
    files = [json.loads(line)["file"] for line in result.out.splitlines()]
    assert files == [str(path.relative_to(ROOT)) for path in EXAMPLES]


@pytest.mark.parametrize("twice", ["folder and file", "file twice", "folder twice"])
def test_a_file_named_twice_is_checked_once(capsys: pytest.CaptureFixture[str], tmp_path: Path, twice: str) -> None:
    spec = write_spec(tmp_path / "mlp.json", MLP)
    argv = {
        "folder and file": [str(tmp_path), str(spec)],
        "file twice": [str(spec), str(tmp_path / "." / "mlp.json")],
        "folder twice": [str(tmp_path), str(tmp_path) + "/"],
    }[twice]
    result = run(capsys, "validate", *argv)
    assert result.code == 0
    assert result.out.splitlines() == [
        f"{spec}: valid, x (B, 8) → (B, 2), 178 parameters",
        "1 checked: 1 valid, 0 not valid",
    ]
