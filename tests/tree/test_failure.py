"""Failure reports (``fluxion.tree.failure``): a forward call that fails anywhere in a tree is one
ChainError naming the failing node, the inputs it received and the tree around it."""

import pytest
import torch

import fluxion.layers as fl
from fluxion.tree.failure import describe_failure, summarize_inputs
from fluxion.tree.tree_repr import FAILED_MARK


def failure(model: torch.nn.Module, *inputs: object, **keywords: object) -> fl.ChainError:
    with pytest.raises(fl.ChainError) as caught:
        model(*inputs, **keywords)
    return caught.value


# -- where -----------------------------------------------------------------------------------------


def test_the_report_names_the_deepest_failing_node_and_the_inputs_it_received() -> None:
    model = fl.Chain(fl.Linear(4, 3), block=fl.Chain(fl.ReLU(), fl.Chain(fl.Linear(4, 2))))
    error = failure(model, torch.zeros(2, 4))
    assert error.address == "block.Chain.Linear"
    assert error.node is model["block.Chain.Linear"]
    lines = str(error).splitlines()
    assert lines[0].startswith("Linear at 'block.Chain.Linear' failed: RuntimeError: mat1 and mat2 shapes")
    # what the failing node got (the first Linear's output), not what the root got
    assert lines[1] == "inputs: Tensor(shape=(2, 3), dtype=float32, device=cpu)"
    assert lines[2] == "tree around it:"
    assert lines[3:] == [
        "    (CHAIN) Chain()",
        "        └── Linear(in_features=4, out_features=2, bias=True)" + FAILED_MARK,
    ]


def test_the_original_exception_is_the_cause_and_nested_chains_report_once() -> None:
    def sixth(x: torch.Tensor) -> torch.Tensor:
        return x[5]

    model = fl.Chain(fl.Chain(fl.Chain(fl.Lambda(sixth))))
    error = failure(model, torch.zeros(2))
    assert isinstance(error.__cause__, IndexError)
    assert not isinstance(error.__cause__, fl.ChainError)
    assert str(error).count("failed:") == 1
    assert error.address == "Chain.Chain.Lambda"


def test_a_failure_in_the_roots_own_forward_names_the_root_and_its_keyword_arguments() -> None:
    class Gate(fl.Chain):
        def forward(self, x: torch.Tensor, *, scale: int = 1) -> torch.Tensor:  # pyright: ignore[reportIncompatibleMethodOverride]
            raise ValueError(f"scale {scale} is not allowed")

    model = Gate(fl.ReLU())
    error = failure(model, torch.zeros(2), scale=3)
    assert error.address == ""
    assert error.node is model
    assert str(error).splitlines() == [
        "Gate (the root) failed: ValueError: scale 3 is not allowed",
        "inputs: Tensor(shape=(2,), dtype=float32, device=cpu), scale=int(3)",
        "tree around it:",
        "    (CHAIN) Gate()" + FAILED_MARK,
        "        └── ReLU()",
    ]


def test_the_tree_around_a_failing_node_folds_its_siblings_subtrees() -> None:
    model = fl.Chain(fl.Chain(fl.ReLU(), fl.Tanh()), fl.Linear(3, 3))
    text = str(failure(model, torch.zeros(1, 2)))
    assert "(CHAIN) Chain() … 2 children" in text
    assert "ReLU()" not in text


def test_describe_failure_of_an_error_without_a_traceback_points_at_the_chain() -> None:
    chain = fl.Chain(fl.ReLU())
    error = describe_failure(chain, ValueError("bad"))
    assert isinstance(error, fl.ChainError)
    assert (error.address, error.node) == ("", chain)
    assert str(error).splitlines() == [
        "Chain (the root) failed: ValueError: bad",
        "tree around it:",
        "    (CHAIN) Chain()" + FAILED_MARK,
        "        └── ReLU()",
    ]


# -- a wide parent is shown as a window around the failing node --------------------------------------


def wide(failing_at: int, size: int = 40) -> fl.Chain:
    """Distinct siblings (so none are counted together) with a Linear that fails at ``failing_at``."""
    siblings: list[torch.nn.Module] = [fl.Dropout(index / 100) for index in range(size)]
    siblings.insert(failing_at, fl.Linear(3, 3))
    return fl.Chain(*siblings).eval()


GAP = "        ⋮"
"""Where the window leaves children out (indented as the tree's lines are)."""


def tree_lines(error: fl.ChainError) -> list[str]:
    lines = str(error).splitlines()
    return lines[lines.index("tree around it:") + 1 :]


def test_a_failure_in_the_middle_of_a_wide_chain_shows_a_window_with_gaps_on_both_sides() -> None:
    lines = tree_lines(failure(wide(20), torch.zeros(1, 2)))
    assert len(lines) <= 17  # the parent's line, at most 15 lines of the tree, two gaps
    assert lines[0] == "    (CHAIN) Chain()"
    assert lines[1] == GAP
    assert lines[-1] == GAP
    marked = [line for line in lines if line.endswith(FAILED_MARK)]
    assert marked == ["        ├── Linear(in_features=3, out_features=3, bias=True)" + FAILED_MARK]
    assert abs(lines.index(marked[0]) - len(lines) // 2) <= 2  # in the middle of the window


def test_a_failure_at_the_start_of_a_wide_chain_shows_no_gap_before_it() -> None:
    lines = tree_lines(failure(wide(0), torch.zeros(1, 2)))
    assert lines[1].endswith(FAILED_MARK)
    assert lines[-1] == GAP
    assert "⋮" not in "".join(lines[:-1])


def test_a_failure_at_the_end_of_a_wide_chain_shows_its_last_child() -> None:
    lines = tree_lines(failure(wide(40), torch.zeros(1, 2)))
    assert lines[-1] == "        └── Linear(in_features=3, out_features=3, bias=True)" + FAILED_MARK
    assert lines[1] == GAP


def test_a_chain_small_enough_is_shown_whole() -> None:
    lines = tree_lines(failure(wide(5, size=10), torch.zeros(1, 2)))
    assert len(lines) == 12
    assert "⋮" not in "".join(lines)


# -- inputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "summary"),
    [
        ((), None, "(no inputs)"),
        ((torch.zeros(2, 3, dtype=torch.float16),), None, "Tensor(shape=(2, 3), dtype=float16, device=cpu)"),
        ((torch.tensor(1),), None, "Tensor(shape=(), dtype=int64, device=cpu)"),
        ((None, True, 2, 2.5, "text"), None, "None, bool(True), int(2), float(2.5), str('text')"),
        ((), {"mask": None, "step": 3}, "mask=None, step=int(3)"),
        ((object(),), None, "object"),
        (([torch.zeros(1), 2],), None, "list(Tensor(shape=(1,), dtype=float32, device=cpu), int(2))"),
        # two levels of containers are opened; deeper ones are named by their type
        (((1, (2, (3,))),), None, "tuple(int(1), tuple(int(2), tuple))"),
    ],
)
def test_inputs_are_summarized_by_type_shape_dtype_and_device(
    args: tuple[object, ...], kwargs: dict[str, object] | None, summary: str
) -> None:
    assert summarize_inputs(args, kwargs) == summary


def test_long_inputs_are_cut_short() -> None:
    many = summarize_inputs((list(range(20)),))
    assert many == "list(" + ", ".join(f"int({i})" for i in range(8)) + ", … 12 more)"
    text = summarize_inputs(("x" * 100,))
    assert text.startswith("str('xxx")
    assert len(text) == len("str()") + 40
