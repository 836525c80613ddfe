"""The command line's values (``NAME=VALUE``, input shapes, limits): what is accepted, and what is a usage error."""

from pathlib import Path

import pytest

from tests.cli.helpers import fails, run


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
