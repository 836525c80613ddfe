"""The jsonnet sandbox: what an import may reach, how a job travels to the child and back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import _jsonnet
import pytest

from fluxion import spec
from fluxion.spec import sandbox
from fluxion.spec.sandbox import (
    DEFAULT_MAX_STACK,
    STATUS_JSONNET,
    STATUS_VALUE,
    STATUS_VARIABLES,
    Job,
    JsonnetError,
    RefusedError,
    evaluate,
    is_file,
    mode_of,
    resolve,
)


def test_an_included_file_reads_from_the_main_specs_folder_tree(tmp_path: Path) -> None:
    (tmp_path / "blocks" / "sub").mkdir(parents=True)
    (tmp_path / "common.libsonnet").write_text("{width: 4}")
    (tmp_path / "blocks" / "sub" / "head.jsonnet").write_text(
        "local common = import '../../common.libsonnet';"
        " {type: 'Linear', in_features: common.width, out_features: common.width}"
    )
    (tmp_path / "model.json").write_text(
        json.dumps({"type": "Chain", "children": [{"spec": "blocks/sub/head.jsonnet"}]})
    )
    assert spec.load(tmp_path / "model.json").Linear.in_features == 4


# -- the job -------------------------------------------------------------------------------------------


def test_a_job_travels_as_bytes_with_every_field() -> None:
    job = Job(
        "model.jsonnet",
        "{a: std.extVar('a')}",
        root="/specs",
        folders=["/lib", "/more"],
        ext_vars={"a": "1"},
        ext_codes={"b": "[2]"},
        tla_vars={"c": "x"},
        tla_codes={"d": "{}"},
    )
    again = Job.from_bytes(job.to_bytes())
    assert {name: getattr(again, name) for name in Job.__slots__} == {
        "name": "model.jsonnet",
        "text": "{a: std.extVar('a')}",
        "root": "/specs",
        "folders": ("/lib", "/more"),
        "ext_vars": {"a": "1"},
        "ext_codes": {"b": "[2]"},
        "tla_vars": {"c": "x"},
        "tla_codes": {"d": "{}"},
    }


def test_a_job_keeps_its_own_copies_of_the_variables() -> None:
    variables = {"a": "1"}
    job = Job("<text>", "std.extVar('a')", ext_vars=variables)
    variables["a"] = "2"
    assert evaluate(job) == '"1"\n'


# -- evaluate -----------------------------------------------------------------------------------------


def test_evaluate_passes_variables_and_top_level_arguments() -> None:
    job = Job(
        "<text>",
        "function(width, depth) {w: width, d: depth, e: std.extVar('e'), c: std.extVar('c')}",
        ext_vars={"e": "text"},
        ext_codes={"c": "1 + 1"},
        tla_vars={"width": "8"},
        tla_codes={"depth": "3"},
    )
    assert json.loads(evaluate(job)) == {"w": "8", "d": 3, "e": "text", "c": 2}


def test_jsonnet_errors_and_bad_variables_are_told_apart() -> None:
    with pytest.raises(JsonnetError) as caught:
        evaluate(Job("<text>", "error 'boom'"))
    assert (caught.value.kind, caught.value.message.splitlines()[0]) == (STATUS_JSONNET, "RUNTIME ERROR: boom")
    with pytest.raises(JsonnetError) as caught:
        evaluate(Job("<text>", "std.extVar('x')", ext_vars={"x": "\ud800"}))
    assert caught.value.kind == STATUS_VARIABLES


def test_the_stack_bound_is_jsonnets_own_by_default_or_the_one_given() -> None:
    deep = "local f(n) = if n == 0 then 0 else 1 + f(n - 1); f(100)"
    assert evaluate(Job("<text>", deep)) == "100\n"
    assert DEFAULT_MAX_STACK == 500
    with pytest.raises(JsonnetError, match="max stack frames exceeded"):
        evaluate(Job("<text>", deep), max_stack=50)


def test_imports_go_through_the_sandbox(tmp_path: Path) -> None:
    (tmp_path / "lib.libsonnet").write_text("{v: 1}")
    (tmp_path / "notes.txt").write_text("hello")
    job = Job("main.jsonnet", "{lib: import 'lib.libsonnet', note: importstr 'notes.txt'}", root=str(tmp_path))
    assert json.loads(evaluate(job)) == {"lib": {"v": 1}, "note": "hello"}
    with pytest.raises(JsonnetError, match="reads files only from search paths"):
        evaluate(Job("<text>", "import 'lib.libsonnet'"))
    text_with_folders = Job("<text>", "import 'lib.libsonnet'", folders=[str(tmp_path)])
    assert json.loads(evaluate(text_with_folders)) == {"v": 1}


# -- resolve ------------------------------------------------------------------------------------------


def test_resolve_finds_the_real_path_in_the_own_folder_first(tmp_path: Path) -> None:
    own, shared = tmp_path / "own", tmp_path / "shared"
    own.mkdir()
    shared.mkdir()
    (own / "a.libsonnet").write_text("1")
    (shared / "a.libsonnet").write_text("2")
    (shared / "b.libsonnet").write_text("3")
    roots = [str(own), str(shared)]
    assert resolve("a.libsonnet", relative_to=str(own), roots=roots) == str((own / "a.libsonnet").resolve())
    assert resolve("a.libsonnet", relative_to=str(own / "main.jsonnet"), roots=roots) == str(
        (own / "a.libsonnet").resolve()
    )
    assert resolve("b.libsonnet", relative_to=str(own), roots=roots) == str((shared / "b.libsonnet").resolve())


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("a\0b", r"'a\\x00b' is not a file name"),
        ("/etc/passwd", "a spec names files by relative paths only"),
        ("../outside.libsonnet", "it leads outside the folders a spec may read"),
        ("missing.libsonnet", r"'missing.libsonnet' not found \(looked in "),
        ("sub", r"'sub' not found"),
        ("pipe.libsonnet", "it is not a regular file"),
    ],
)
def test_resolve_refuses(tmp_path: Path, reference: str, message: str) -> None:
    specs = tmp_path / "specs"
    (specs / "sub").mkdir(parents=True)
    (tmp_path / "outside.libsonnet").write_text("{}")
    os.mkfifo(specs / "pipe.libsonnet")
    with pytest.raises(RefusedError, match=message):
        resolve(reference, relative_to=str(specs), roots=[str(specs)])


def test_a_link_out_is_refused_without_saying_whether_its_target_exists(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "there.libsonnet").symlink_to(tmp_path / "secret.libsonnet")
    (specs / "not_there.libsonnet").symlink_to(tmp_path / "nothing.libsonnet")
    (tmp_path / "secret.libsonnet").write_text("{}")
    messages = set()
    for name in ("there", "not_there"):
        with pytest.raises(RefusedError) as caught:
            resolve(f"{name}.libsonnet", relative_to=str(specs), roots=[str(specs)])
        messages.add(str(caught.value).replace("not_there", "there"))
    assert len(messages) == 1
    assert "leads outside" in messages.pop()


def test_text_reads_only_from_the_roots_given() -> None:
    with pytest.raises(RefusedError, match="a spec given as text reads files only from search paths"):
        resolve("a.libsonnet", relative_to=None, roots=[])


def test_is_file_and_mode_of_never_raise(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert is_file(tmp_path / "file")
    assert not is_file(tmp_path)
    assert not is_file("/dev/null")
    for name in ("a" * 5000, "a\0b", str(tmp_path / "missing")):
        assert mode_of(name) == 0
        assert not is_file(name)


# -- the child's program -------------------------------------------------------------------------------


def child(job: Job) -> list[str]:
    command = [sys.executable, "-I", "-S", sandbox.__file__, os.path.dirname(_jsonnet.__file__), "0", "0"]
    done = subprocess.run([*command, "50"], input=job.to_bytes(), capture_output=True, timeout=60, check=True)
    return done.stdout.decode().split("\n", 1)


def test_the_child_answers_with_a_status_line_then_the_value_or_the_message() -> None:
    assert child(Job("<text>", "{a: 1 + 1}")) == [STATUS_VALUE, '{\n   "a": 2\n}\n']
    status, message = child(Job("<text>", "{a: }"))
    assert (status, message.split(":")[0]) == (STATUS_JSONNET, "STATIC ERROR")
    status, message = child(Job("<text>", "local f(n) = 1 + f(n); f(0)"))
    assert status == STATUS_JSONNET
    assert "max stack frames exceeded" in message  # the stack bound given on the command line (50)
    assert child(Job("<text>", "std.extVar('x')", ext_vars={"x": "\ud800"}))[0] == STATUS_VARIABLES
