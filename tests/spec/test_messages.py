"""How spec errors name places (JSON paths) and keep torch's C++ stack traces out of messages."""

import pytest

from fluxion.errors import SpecError
from fluxion.spec.messages import json_path, without_torch_trace

TRACE = "Exception raised from check at c10/util/Exception.h:79 (most recent call first):\n"
FRAMES = "frame #0: c10::Error::Error + 0x9d\n<omitting python frames>\nframe #1: _start + 0x21\n"


def test_json_path() -> None:
    assert json_path(["blocks", 3, "blocks", 1, "kernel_size"]) == "blocks[3].blocks[1].kernel_size"
    assert json_path([0, "id"]) == "[0].id"
    assert json_path(["args", "a-b", "1x"]) == 'args["a-b"]["1x"]'
    assert json_path([]) == ""


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["children", 0, "children", 2], "children[0].children[2]"),
        ([""], '[""]'),
        (["a", 'say "hi"'], 'a["say \\"hi\\""]'),
        (["a.b"], '["a.b"]'),
        (["größe"], "größe"),
        ([1, 2], "[1][2]"),
    ],
)
def test_json_path_quotes_only_keys_that_are_not_identifiers(parts: list[str | int], expected: str) -> None:
    assert json_path(parts) == expected


def test_a_json_path_is_what_a_spec_error_prints_after_the_file() -> None:
    error = SpecError("expected an int", file="model.json", path=json_path(["nodes", 1, "kernel-size"]))
    assert str(error) == 'model.json: nodes[1]["kernel-size"]: expected an int'


def test_text_without_a_trace_is_unchanged() -> None:
    for text in ("", "one line", "two\nlines", 'quoted "frame #0: not a trace"', "\n\n"):
        assert without_torch_trace(text) == text


def test_a_trace_inside_a_quoted_message_is_cut_and_the_quote_closed() -> None:
    text = f'shape check failed with error "Overflow\n{TRACE}{FRAMES}"\nwhile building Conv2d'
    assert without_torch_trace(text) == 'shape check failed with error "Overflow"\nwhile building Conv2d'


def test_a_trace_at_the_end_is_cut() -> None:
    assert without_torch_trace(f"index out of range\n{TRACE}{FRAMES}") == "index out of range"
    assert without_torch_trace(f"index out of range\n{TRACE}{FRAMES}".rstrip("\n")) == "index out of range"


def test_lines_after_the_frames_are_kept_even_when_they_look_like_frames() -> None:
    text = f"first\n{TRACE}{FRAMES}the next message\nframe #7: written by the user"
    assert without_torch_trace(text) == "first\nthe next message\nframe #7: written by the user"


def test_frame_lines_outside_a_trace_are_kept() -> None:
    assert without_torch_trace("frame #0: my own frame\nmore") == "frame #0: my own frame\nmore"


def test_two_traces_are_both_cut() -> None:
    text = f'first "a\n{TRACE}{FRAMES}"\nsecond "b\n{TRACE}{FRAMES}"'
    assert without_torch_trace(text) == 'first "a"\nsecond "b"'
