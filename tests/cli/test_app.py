"""The ``fluxion`` command line as a whole (``fluxion.cli.main``): usage errors exit with 2, help
shows examples, and an error nobody foresaw is still one line."""

from pathlib import Path

import pytest

from tests.cli.helpers import fails, run


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate"], "the following arguments are required: SPEC"),
        (["validate", "m.json", "--tla", "depth"], "expected NAME=VALUE"),
        (["validate", "m.json", "--input", "x=B,3.5"], "a size is a number or a symbol name such as B, got '3.5'"),
        (["show", "m.json", "--depth", "-1"], "--depth is a number of levels, 0 or more"),
        (["render", "m.json"], "the following arguments are required: -o/--output"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_usage_exits_with_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    result = run(capsys, *argv)
    assert result.code == 2
    assert message in result.err


def test_usage_that_contradicts_the_spec_exits_with_2(capsys: pytest.CaptureFixture[str], mlp: Path) -> None:
    result = run(capsys, "validate", str(mlp), "--input", "image=B,8")
    assert (result.code, result.err.strip()) == (2, "fluxion validate: error: --input image: the spec's inputs are x")
    result = run(capsys, "validate", str(mlp), "--tla", "a=1", "--tla", "a=2")
    assert (result.code, result.err.strip()) == (2, "fluxion validate: error: --tla a is given twice")
    result = run(capsys, "render", str(mlp), "-o", "m.gif")
    assert result.code == 2
    assert "the format is taken from the suffix: .svg, .pdf, .png or .dot" in result.err


@pytest.mark.parametrize("command", [None, "validate", "show", "render", "summary", "export"])
def test_help_explains_with_an_example(capsys: pytest.CaptureFixture[str], command: str | None) -> None:
    result = run(capsys, *([command] if command else []), "--help")
    assert result.code == 0
    assert "examples:\n  fluxion " in result.out


def test_an_unforeseen_error_is_one_line(
    capsys: pytest.CaptureFixture[str], mlp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxion.cli import validate

    def broken(options: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(validate, "load_spec", broken)
    monkeypatch.delenv("FLUXION_TRACEBACK", raising=False)
    fails(run(capsys, "validate", str(mlp)), 1, "internal error", "KeyError", internal=True)
