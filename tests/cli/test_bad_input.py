"""Bad paths and values on the command line: exit code 1 or 2, one line on stderr, never a traceback or a hang."""

import json
import os
import stat
from pathlib import Path

import pytest

from fluxion import spec, weights
from tests.cli.helpers import Result, run
from tests.special_files import null_device

MLP = {
    "type": "Chain",
    "inputs": {"x": ["B", 8]},
    "children": [{"type": "Linear", "id": "fc", "out_features": 4}],
}


@pytest.fixture
def mlp(tmp_path: Path) -> Path:
    path = tmp_path / "mlp.json"
    path.write_text(json.dumps(MLP))
    return path


def fails(result: Result, code: int, *words: str, internal: bool = False) -> None:
    """The command failed with ``code`` and one line on stderr that says ``words``: a message of
    its own, or (``internal``) the catch-all line for errors nobody foresaw."""
    assert result.code == code, result
    assert "Traceback" not in result.err
    # a jsonnet error names its callers on lines of their own: part of the one message
    lines = [line for line in result.err.strip().splitlines() if not line.startswith("  called from ")]
    if code == 2:  # argparse prints its usage line first
        lines = [line for line in lines if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, result.err
    assert ("internal error" in lines[0]) == internal, result.err
    for word in words:
        assert word in lines[0], result.err


def partial_files(folder: Path) -> list[str]:
    return [name for name in os.listdir(folder) if name.endswith(".partial")]


# -- outputs: export and render


@pytest.mark.parametrize("command", ["export", "render"])
def test_output_in_a_missing_folder(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str
) -> None:
    output = tmp_path / "missing_dir" / ("x.json" if command == "export" else "x.dot")
    fails(run(capsys, command, str(mlp), "-o", str(output)), 1, "does not exist")


@pytest.mark.parametrize("command", ["export", "render"])
def test_output_onto_a_folder(capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str) -> None:
    folder = tmp_path / ("some_dir" if command == "export" else "some_dir.dot")
    folder.mkdir()
    fails(run(capsys, command, str(mlp), "-o", str(folder)), 1, "folder")
    assert partial_files(tmp_path) == []
    assert folder.is_dir()


@pytest.mark.parametrize("command", ["export", "render"])
def test_empty_output_is_a_usage_error(capsys: pytest.CaptureFixture[str], mlp: Path, command: str) -> None:
    fails(run(capsys, command, str(mlp), "-o", ""), 2, "-o")


@pytest.mark.parametrize("command", ["export", "render"])
def test_output_onto_a_fifo_or_device_is_refused_without_blocking(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str, deadline: None
) -> None:
    suffix = ".json" if command == "export" else ".dot"
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    fails(run(capsys, command, str(mlp), "-o", str(fifo)), 1, "FIFO")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    device = null_device(tmp_path)
    link = tmp_path / f"null{suffix}"
    link.symlink_to(device)
    fails(run(capsys, command, str(mlp), "-o", str(link)), 1, "character device")
    assert stat.S_ISCHR(os.stat(device).st_mode)


@pytest.mark.parametrize("command", ["export", "render"])
def test_output_through_a_symbolic_link_keeps_the_link_and_the_mode(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str
) -> None:
    suffix = ".json" if command == "export" else ".dot"
    target = tmp_path / f"real{suffix}"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / f"link{suffix}"
    link.symlink_to(target)
    assert run(capsys, command, str(mlp), "-o", str(link)).code == 0
    assert link.is_symlink()
    assert target.read_text() != "old"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("command", ["export", "render"])
def test_a_new_output_follows_the_umask(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, command: str
) -> None:
    output = tmp_path / ("new.json" if command == "export" else "new.dot")
    previous = os.umask(0o022)
    try:
        assert run(capsys, command, str(mlp), "-o", str(output)).code == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE(output.stat().st_mode) == 0o644


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_an_unwritable_folder(capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        fails(run(capsys, "export", str(mlp), "-o", str(folder / "x.json")), 1, "cannot write")
    finally:
        folder.chmod(0o700)


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


# -- the spec and the files it reads


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
    fails(run(capsys, "validate", str(path)), 1, str(path), said)


def test_a_missing_spec_without_suffix_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fails(run(capsys, "validate", "model"), 1, "model", "no such spec file")


@pytest.mark.parametrize("option", ["--weights", "--mapping"])
def test_show_refuses_a_fifo_without_blocking(
    capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path, option: str, deadline: None
) -> None:
    checkpoint = tmp_path / "model.safetensors"
    weights.save(spec.load(mlp), checkpoint)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    given = [option, str(fifo)] if option == "--weights" else ["--weights", str(checkpoint), option, str(fifo)]
    fails(run(capsys, "show", str(mlp), *given), 1, "FIFO")


def test_show_weights_that_are_a_folder(capsys: pytest.CaptureFixture[str], mlp: Path, tmp_path: Path) -> None:
    result = run(capsys, "show", str(mlp), "--weights", str(tmp_path))
    fails(result, 1)


# -- values


def test_deep_tla_is_a_usage_error(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    fails(run(capsys, "validate", str(mlp), "--tla", "x=" + "[" * 3000 + "]" * 3000), 2, "--tla x", "too deeply")


def test_tla_deep_enough_for_python_but_not_for_specs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.jsonnet"
    path.write_text("function(x) {type: 'ReLU', description: std.toString(x)}")
    fails(run(capsys, "validate", str(path), "--tla", "x=" + "[" * 600 + "]" * 600), 1)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--input", "x=B," + "9" * 30], ["--input x", "2**63"]),
        (["--input", "x=B,²"], ["--input x"]),
        (["--input", "x=B,-3"], ["--input x"]),
        (["--ext-var", "no-name"], ["NAME=VALUE"]),
        (["--tla", "=1"], ["NAME=VALUE"]),
        (["--time-limit", "0"], ["--time-limit"]),
        (["--time-limit", "nan"], ["--time-limit"]),
        (["--memory-limit", "lots"], ["--memory-limit"]),
        (["--stack-limit", str(2**31)], ["--stack-limit"]),
    ],
)
def test_bad_values_are_usage_errors(
    capsys: pytest.CaptureFixture[str], mlp: Path, arguments: list[str], words: list[str]
) -> None:
    fails(run(capsys, "validate", str(mlp), *arguments), 2, *words)


def test_show_depth_with_other_digits(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    fails(run(capsys, "show", str(mlp), "--depth", "²"), 2, "--depth")


def test_bad_jsonnet_variables_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "model.jsonnet"
    path.write_text("{type: 'ReLU', description: std.extVar('x')}")
    fails(run(capsys, "validate", str(path), "--ext-code", "x={a: }"), 1)
    fails(run(capsys, "validate", str(path), "--ext-code", "x=" + "[" * 3000 + "]" * 3000), 1)


# -- limits on evaluating jsonnet


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


# -- factories


def test_a_factory_that_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_factories.py").write_text(
        "def build():\n    raise RuntimeError('no model today\\nsecond line')\n"
    )
    (tmp_path / "broken_module.py").write_text("raise ValueError('bad module')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    fails(run(capsys, "export", "broken_factories:build", "-o", "-"), 1, "RuntimeError: no model today")
    fails(run(capsys, "export", "broken_module:build", "-o", "-"), 1, "ValueError: bad module")


def test_an_unforeseen_error_is_one_line(
    capsys: pytest.CaptureFixture[str], mlp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxion.cli import validate

    def broken(options: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(validate, "load_spec", broken)
    monkeypatch.delenv("FLUXION_TRACEBACK", raising=False)
    fails(run(capsys, "validate", str(mlp)), 1, "internal error", "KeyError", internal=True)
