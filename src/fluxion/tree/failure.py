"""Turning an exception raised during a forward call into a ChainError that says where and what.

The failing node is found after the fact, from the frames of the traceback, so the forward pass
itself pays nothing for this: no bookkeeping runs until something has already gone wrong.

>>> import torch
>>> import fluxion.layers as fl
>>> model = fl.Chain(encoder=fl.Chain(fl.Linear(4, 4), fl.Linear(3, 3)))
>>> try:
...     model(torch.zeros(2, 4))
... except fl.ChainError as error:
...     print(str(error).splitlines()[0])
Linear at 'encoder.Linear_2' failed: RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x4 and 3x3)
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import torch

from fluxion.errors import ChainError
from fluxion.tree.module import address_of, parent_of
from fluxion.tree.tree_repr import FAILED_MARK, draw_tree
from fluxion.tree.wrapping import node_class

if TYPE_CHECKING:
    from fluxion.tree.chain import Chain

_CALL_FRAMES = {"_wrapped_call_impl", "_call_impl"}
_MAX_TREE_LINES = 15


def describe_failure(chain: Chain, error: BaseException) -> ChainError:
    """A ChainError for ``error``, raised somewhere below ``chain`` during its forward call.

    >>> import fluxion.layers as fl
    >>> try:
    ...     raise ValueError("bad")
    ... except ValueError as error:
    ...     print(describe_failure(fl.Chain(), error).address)
    <BLANKLINE>
    """
    node, inputs = _failing_node(chain, error.__traceback__)
    address = address_of(node)
    name = node_class(node).__name__
    where = f"{name} at {address!r}" if address else f"{name} (the root)"
    lines = [f"{where} failed: {type(error).__name__}: {error}"]
    if inputs is not None:
        lines.append(f"inputs: {summarize_inputs(*inputs)}")
    parent = parent_of(node)
    lines.append("tree around it:")
    lines.extend("    " + line for line in _tree_around(parent if parent is not None else node, node))
    return ChainError("\n".join(lines), address=address, node=node)


def summarize_inputs(args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> str:
    """A short description of call arguments: shape, dtype and device of tensors.

    >>> import torch
    >>> summarize_inputs((torch.zeros(2, 3), 4), {"mask": None})
    'Tensor(shape=(2, 3), dtype=float32, device=cpu), int(4), mask=None'
    """
    parts = [_summary(value) for value in args]
    parts.extend(f"{key}={_summary(value)}" for key, value in (kwargs or {}).items())
    return ", ".join(parts) if parts else "(no inputs)"


def _summary(value: Any, depth: int = 0) -> str:
    kind = type(cast(object, value)).__name__
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        return f"Tensor(shape={tuple(value.shape)}, dtype={dtype}, device={value.device})"
    if isinstance(value, tuple | list) and depth < 2:
        items = list(cast(tuple[Any, ...] | list[Any], value))
        shown = ", ".join(_summary(item, depth + 1) for item in items[:8])
        more = f", … {len(items) - 8} more" if len(items) > 8 else ""
        return f"{kind}({shown}{more})"
    if value is None or isinstance(value, bool | int | float | str):
        text = repr(cast(object, value))
        return text if value is None else f"{kind}({text[:40]})"
    return kind


def _failing_node(
    chain: Chain, trace: TracebackType | None
) -> tuple[torch.nn.Module, tuple[tuple[Any, ...], dict[str, Any]] | None]:
    """Follow the traceback down the tree: each module call frame whose module is a child of the
    current node moves one level deeper. The deepest node reached is the one that failed."""
    node: torch.nn.Module = chain
    inputs: tuple[tuple[Any, ...], dict[str, Any]] | None = None
    if trace is not None:
        own = trace.tb_frame.f_locals
        inputs = _call_arguments(own)
    while trace is not None:
        frame = trace.tb_frame
        if frame.f_code.co_name in _CALL_FRAMES:
            candidate = frame.f_locals.get("self")
            if isinstance(candidate, torch.nn.Module) and parent_of(candidate) is node:
                node = candidate
                inputs = _call_arguments(frame.f_locals)
        trace = trace.tb_next
    return node, inputs


def _call_arguments(scope: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args: tuple[Any, ...] = scope.get("args", ())
    kwargs: dict[str, Any] = scope.get("kwargs", {})
    return tuple(args), dict(kwargs)


def _tree_around(parent: torch.nn.Module, node: torch.nn.Module) -> list[str]:
    lines = draw_tree(parent, mark=node, max_depth=1).splitlines()
    if len(lines) <= _MAX_TREE_LINES:
        return lines
    marked = next((i for i, line in enumerate(lines) if line.endswith(FAILED_MARK)), 0)
    start = max(1, marked - _MAX_TREE_LINES // 2)
    end = min(len(lines), start + _MAX_TREE_LINES - 1)
    head = [lines[0], "    ⋮"] if start > 1 else [lines[0]]
    return head + lines[start:end] + (["    ⋮"] if end < len(lines) else [])
