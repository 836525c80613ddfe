"""Evaluating jsonnet within limits: hostile specs end in a SpecError, and this process lives on."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

import fluxion.layers as fl
from fluxion import spec
from fluxion.errors import SpecError
from fluxion.spec import limits as bounds
from fluxion.spec.build import Builder
from fluxion.spec.limits import Limits
from fluxion.spec.sandbox import Job, JsonnetError
from fluxion.spec.source import MAX_NESTING, read

SMALL = Limits(time=3, memory=256 * 2**20)
"""Small limits keep each attack short."""

DEEP_PARSE = "std.parseJson(std.repeat('[', 50000) + std.repeat(']', 50000))"
HUGE_STRING = "std.repeat('x', 200000000)"
HUGE_RANGE = "std.range(0, 1e9)"
SLOW = (
    "local loop(n) = if n == 0 then 0 else loop(n - 1); std.foldl(function(a, i) a + loop(400), std.range(1, 1e5), 0)"
)
"""Seconds of work in little memory."""
QUICK = Limits(time=1, memory=256 * 2**20)


@pytest.mark.parametrize(
    ("text", "limits", "limit"),
    [
        (DEEP_PARSE, SMALL, "stack"),
        (HUGE_STRING, SMALL, "memory limit"),
        (HUGE_RANGE, SMALL, "memory limit"),
        (SLOW, QUICK, "time limit"),
    ],
)
def test_attacks_end_in_a_spec_error_naming_the_limit(text: str, limits: Limits, limit: str, deadline: None) -> None:
    start = time.monotonic()
    with pytest.raises(SpecError, match=limit) as raised:
        read(text, limits=limits)
    assert time.monotonic() - start < 10
    assert "\n" not in str(raised.value)
    assert read("{alive: true}", limits=SMALL).data == {"alive": True}  # and this process goes on


def test_attacks_in_a_file_name_the_file(tmp_path: Path, deadline: None) -> None:
    path = tmp_path / "hostile.jsonnet"
    path.write_text(f"{{type: 'Chain', children: {HUGE_RANGE}}}")
    with pytest.raises(SpecError, match="memory limit") as raised:
        spec.load(path, limits=SMALL)
    assert raised.value.file == str(path)
    assert "--memory-limit" in str(raised.value)


def test_the_limits_are_on_by_default(deadline: None) -> None:
    with pytest.raises(SpecError, match="stack"):
        spec.loads(DEEP_PARSE)  # would kill this process with SIGSEGV if evaluated here


def test_limits_are_applied_to_included_spec_files(tmp_path: Path, deadline: None) -> None:
    (tmp_path / "block.jsonnet").write_text(SLOW)
    (tmp_path / "main.json").write_text(json.dumps({"type": "Chain", "children": [{"spec": "block.jsonnet"}]}))
    with pytest.raises(SpecError, match="time limit"):
        spec.load(tmp_path / "main.json", limits=QUICK)


def test_jsonnet_stack_limit_says_how_to_raise_it() -> None:
    deep = "local f(n) = if n == 0 then 0 else 1 + f(n - 1); f(300)"
    with pytest.raises(SpecError, match=r"stack limit is 100 nested calls.*Limits\(stack=\.\.\.\)"):
        read(deep, limits=Limits(stack=100))
    assert read(deep, limits=Limits(stack=1000)).data == 300


def test_imports_work_and_stay_sandboxed_in_the_child(tmp_path: Path) -> None:
    (tmp_path / "specs" / "lib").mkdir(parents=True)
    (tmp_path / "secret.libsonnet").write_text("{secret: 1}")
    (tmp_path / "specs" / "lib" / "widths.libsonnet").write_text("[8, 4]")
    good = tmp_path / "specs" / "good.jsonnet"
    good.write_text("{widths: import 'lib/widths.libsonnet', text: importstr 'lib/widths.libsonnet'}")
    assert read(good, limits=SMALL).data == {"widths": [8, 4], "text": "[8, 4]"}
    bad = tmp_path / "specs" / "bad.jsonnet"
    bad.write_text("import '../secret.libsonnet'")
    with pytest.raises(SpecError, match="leads outside"):
        read(bad, limits=SMALL)


def test_same_results_with_and_without_limits(tmp_path: Path) -> None:
    text = "function(width) {widths: [width * i for i in std.range(1, 3)], name: std.extVar('name')}"
    arguments = {"tla": {"width": 4}, "ext_vars": {"name": "nét"}}
    assert read(text, **arguments, limits=None).data == read(text, **arguments, limits=SMALL).data
    for broken in ("{a: }", "error 'no'", "{a: std.extVar('missing')}"):
        with pytest.raises(SpecError) as in_process:
            read(broken, limits=None)
        with pytest.raises(SpecError) as in_child:
            read(broken, limits=SMALL)
        assert str(in_process.value) == str(in_child.value)


def test_limits_none_evaluates_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("no child process expected")

    monkeypatch.setattr(bounds.subprocess, "Popen", no_child)
    assert read("{a: 1 + 1}", limits=None).data == {"a": 2}
    assert read('{"a": 1}', limits=SMALL).data == {"a": 1}  # plain JSON needs no child either


@pytest.mark.parametrize(
    "limits",
    [
        {"time": 0},
        {"time": -1.0},
        {"time": float("nan")},
        {"time": float("inf")},
        {"memory": 0},
        {"memory": 1.5},
        {"stack": 0},
        {"stack": None},
        {"stack": 2**31},
        {"time": True},
    ],
)
def test_bad_limits_are_refused(limits: dict[str, object]) -> None:
    with pytest.raises(SpecError, match=r"Limits\("):
        Limits(**limits)  # pyright: ignore[reportArgumentType]


def test_limits_argument_must_be_limits() -> None:
    with pytest.raises(SpecError, match="limits= takes"):
        read("{}", limits=10)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize(
    ("code", "stderr", "expected"),
    [
        (-signal.SIGSEGV, b"", "overflowed jsonnet's stack"),
        (-signal.SIGBUS, b"", "overflowed jsonnet's stack"),
        (-signal.SIGXCPU, b"", "time limit"),
        (-signal.SIGKILL, b"", "memory limit"),
        (-signal.SIGABRT, b"FATAL ERROR: a memory allocation error occurred.\n", "memory limit"),
        (1, b"MemoryError\n", "memory limit"),
        (-signal.SIGTERM, b"", "failed (signal SIGTERM)"),
        (3, b"Traceback...\nImportError: no _jsonnet\n", "failed (exit code 3): ImportError: no _jsonnet"),
    ],
)
def test_a_dead_child_is_one_spec_error(code: int, stderr: bytes, expected: str) -> None:
    with pytest.raises(SpecError, match=expected.replace("(", r"\(").replace(")", r"\)")) as raised:
        bounds._answer("m.jsonnet", code, b"", stderr, SMALL)  # pyright: ignore[reportPrivateUsage]
    assert raised.value.file == "m.jsonnet"
    assert "\n" not in str(raised.value)


def test_a_child_killed_without_a_memory_limit() -> None:
    with pytest.raises(SpecError, match="no memory limit was set"):
        bounds._answer("m", -signal.SIGKILL, b"", b"", Limits(memory=None))  # pyright: ignore[reportPrivateUsage]


def test_child_answers() -> None:
    answer = bounds._answer  # pyright: ignore[reportPrivateUsage]
    assert answer("m", 0, b"value\n[1]\n", b"", SMALL) == "[1]\n"
    with pytest.raises(JsonnetError, match="boom"):
        answer("m", 0, b"jsonnet\nRUNTIME ERROR: boom", b"", SMALL)
    with pytest.raises(SpecError, match="memory limit"):
        answer("m", 0, b"memory\n", b"", SMALL)


def test_a_child_that_cannot_start_is_a_spec_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounds.sys, "executable", "/no/such/python")
    with pytest.raises(SpecError, match=r"cannot start the process that evaluates jsonnet.*limits=None"):
        bounds.evaluate(Job("<text>", "1"), SMALL)


# --- JSON, files and nesting


def test_deeply_nested_json_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(SpecError, match="too deeply"):
        read(path)
    with pytest.raises(SpecError, match="too deeply"):
        spec.loads("[" * 3000 + "]" * 3000)


def test_nesting_is_checked_before_building() -> None:
    value: list[object] = []
    for _ in range(MAX_NESTING):
        value = [value]
    node = {"type": "Linear", "in_features": 2, "out_features": 2, "extra": value}
    with pytest.raises(SpecError, match="too deeply"):
        spec.loads({"type": "Chain", "children": [node]})


def test_nodes_nested_just_within_the_bound_build_and_run() -> None:
    import torch

    node: dict[str, object] = {"type": "Linear", "out_features": 4}
    for _ in range((MAX_NESTING - 4) // 2):
        node = {"type": "Chain", "children": [node]}
    model = spec.loads({"type": "Chain", "inputs": {"x": ["B", 4]}, "children": [node]})
    assert model(torch.zeros(2, 4)).shape == (2, 4)


def test_deep_variables_are_a_spec_error() -> None:
    value: list[object] = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(SpecError, match="nests too deeply"):
        read("function(x) x", tla={"x": value})


def test_a_file_larger_than_the_memory_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"type": "ReLU", "description": "x" * 5000}))
    with pytest.raises(SpecError, match="larger than the memory limit"):
        read(path, limits=Limits(memory=4096))
    assert read(path, limits=None).data["type"] == "ReLU"


def test_a_fifo_spec_is_refused_without_blocking(tmp_path: Path, deadline: None) -> None:
    fifo = tmp_path / "model.jsonnet"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="FIFO"):
        read(fifo)
    with pytest.raises(SpecError, match="character device"):
        read("/dev/zero")


@pytest.mark.parametrize("limits", [SMALL, None])
def test_fifos_named_by_a_spec_are_refused_without_blocking(
    tmp_path: Path, limits: Limits | None, deadline: None
) -> None:
    os.mkfifo(tmp_path / "pipe.libsonnet")
    (tmp_path / "imports.jsonnet").write_text("import 'pipe.libsonnet'")
    with pytest.raises(SpecError, match="not a regular file"):
        read(tmp_path / "imports.jsonnet", limits=limits)
    (tmp_path / "names.json").write_text(json.dumps({"type": "Chain", "children": [{"spec": "pipe.libsonnet"}]}))
    with pytest.raises(SpecError, match="not a regular file"):
        spec.load(tmp_path / "names.json", limits=limits)


def test_a_missing_file_without_suffix_is_named() -> None:
    with pytest.raises(SpecError, match="no such spec file 'model'"):
        spec.load("model")
    assert read("1 - 2").data == -1  # jsonnet text that merely looks like a name is still evaluated


# --- sizes torch cannot hold


@pytest.mark.parametrize("size", [10**20, 2**63])
def test_an_input_size_beyond_int64_is_refused_where_it_is_given(size: int) -> None:
    text = json.dumps(
        {"type": "Chain", "inputs": {"x": [1, size]}, "children": [{"type": "Linear", "out_features": 4}]}
    )
    with pytest.raises(SpecError, match=r"inputs\.x: a size is at most 2\*\*63 - 1"):
        spec.loads(text)
    with pytest.raises(SpecError, match=r"inputs= x: a size is at most 2\*\*63 - 1"):
        spec.load({"type": "Chain", "children": [{"type": "Linear", "out_features": 4}]}, inputs={"x": [1, size]})


@pytest.mark.parametrize("device", [None, "meta"])
def test_sizes_torch_refuses_give_one_readable_message(device: str | None) -> None:
    cases = [
        {"inputs": {"x": [1, 2**40, 2**40]}, "children": [{"type": "Flatten"}, {"type": "Linear", "out_features": 4}]},
        {"children": [{"type": "Linear", "in_features": 10**12, "out_features": 10**12}]},
        {"children": [{"type": "Linear", "in_features": 10**20, "out_features": 4}]},
    ]
    if device is None:  # too large to allocate, but meta allocates nothing
        cases.append({"inputs": {"x": [1, 10**12]}, "children": [{"type": "LayerNorm"}]})
    for case in cases:
        with pytest.raises(SpecError) as raised:
            spec.load({"type": "Chain", **case}, device=device)
        message = str(raised.value)
        assert "frame #" not in message
        assert "Exception raised from" not in message
        assert len(message.splitlines()) == 1, message


def test_deeply_nested_jsonnet_output_is_a_spec_error() -> None:
    text = "local nest(n) = if n == 0 then [] else [nest(n - 1)]; nest(250)"
    with pytest.raises(SpecError, match="too deeply"):
        read(text, limits=Limits(stack=1000))


def test_json_from_the_child_too_deep_for_python_is_a_spec_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounds, "evaluate", lambda job, limits: "[" * 5000 + "]" * 5000)
    with pytest.raises(SpecError, match="too deeply"):
        read("{a: 1}")


def fan_out(folder: Path, levels: int, width: int) -> Path:
    """Spec files that each name the next ``width`` times: tiny files, ``width ** levels`` leaves."""
    for level in range(levels + 1):
        node = (
            {"type": "Linear", "in_features": 2, "out_features": 2}
            if level == levels
            else {"type": "Chain", "children": [{"spec": f"level{level + 1}.json"}] * width}
        )
        (folder / f"level{level}.json").write_text(json.dumps(node))
    return folder / "level0.json"


def test_spec_files_naming_each_other_many_times_stop_at_the_nodes_limit(tmp_path: Path) -> None:
    root = fan_out(tmp_path, levels=4, width=10)  # 11,111 nodes from five files of a few bytes
    with pytest.raises(SpecError, match=r"builds more than 500 nodes \(the nodes limit"):
        spec.load(root, limits=Limits(nodes=500))
    assert len(list(spec.load(fan_out(tmp_path, levels=2, width=3), limits=Limits(nodes=500)).modules())) == 1 + 3 + 9


def test_the_files_a_spec_names_share_one_time_limit(tmp_path: Path) -> None:
    (tmp_path / "part.jsonnet").write_text('{type: "ReLU"}')
    builder = Builder(limits=Limits(time=1))
    builder.evaluating = 1.5  # as if the files named before had taken that long
    with pytest.raises(SpecError, match=r"longer than the time limit \(1 s, for all of them together\)") as caught:
        builder.build(read({"type": "Chain", "children": [{"spec": "part.jsonnet"}]}, search_paths=[tmp_path]))
    assert caught.value.path == "children[0].spec"
    assert isinstance(
        Builder(limits=Limits(time=1)).build(read({"spec": "part.jsonnet"}, search_paths=[tmp_path])), fl.ReLU
    )
