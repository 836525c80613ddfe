"""What the tests of the checkpoint readers share (``test_sources``, ``test_safetensors_pieces*``,
``test_dcp_pieces``): tensors and boxes to read, reads into outs of any layout, checks against
slicing, and files holding pieces of a tensor as torch.distributed.checkpoint's Hugging Face writer
stores them."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from fluxion.distributed.pieces import Box, Pieces, Request
from fluxion.distributed.safetensors_pieces import SHARDING_METADATA

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Conversions into these are exact or well defined from every source dtype the tests write (no float -> unsigned).
OUT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64]
OUT_LAYOUTS = ["contiguous", "transposed", "strided"]


# -- data and files --------------------------------------------------------------------------------


def random_tensor(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=generator).to(dtype)
    if not dtype.is_floating_point:
        return torch.randint(-100, 100, shape, generator=generator).to(dtype)
    return torch.randn(shape, generator=generator).to(dtype)


def slices(box: Box) -> tuple[slice, ...]:
    return tuple(slice(start, stop) for start, stop in box)


def new_out(shape: tuple[int, ...], dtype: torch.dtype, layout: str) -> torch.Tensor:
    """An uninitialised tensor of ``shape``: contiguous, a transposed view, or a strided (non-contiguous) view."""
    if layout == "transposed" and len(shape) >= 2:
        order = tuple(reversed(range(len(shape))))
        return torch.empty(tuple(reversed(shape)), dtype=dtype).permute(order)
    if layout == "strided" and shape:
        return torch.empty(tuple(2 * size for size in shape), dtype=dtype)[tuple(slice(None, None, 2) for _ in shape)]
    return torch.empty(shape, dtype=dtype)


def read_box(pieces: Pieces, key: str, box: Box, dtype: torch.dtype, layout: str) -> torch.Tensor:
    out = new_out(tuple(stop - start for start, stop in box), dtype, layout)
    # A value no read leaves in place, so an element left unwritten shows.
    out.fill_(True if dtype == torch.bool else 77)
    pieces.read_all([Request(key, box, out)])
    return out


def expect_equal(out: torch.Tensor, tensor: torch.Tensor, box: Box) -> None:
    expected = tensor[slices(box)].to(out.dtype)
    assert out.shape == expected.shape
    assert torch.equal(out, expected), f"box {box}: read {out}, expected {expected}"


def sharding_metadata(offsets: dict[str, list[int]]) -> dict[str, str]:
    """A header's metadata as torch.distributed.checkpoint's Hugging Face writer records each piece's place."""
    return {SHARDING_METADATA: json.dumps({key: {"saved_offsets": offset} for key, offset in offsets.items()})}


def write_piece(path: Path, key: str, piece: torch.Tensor, offsets: tuple[int, ...], **more: torch.Tensor) -> Path:
    save_file({key: piece.contiguous(), **more}, path, metadata=sharding_metadata({key: list(offsets)}))
    return path


# -- strategies ------------------------------------------------------------------------------------


@st.composite
def boxes(draw: st.DrawFn, shape: tuple[int, ...]) -> Box:
    """Any box of ``shape``: empty ranges (start == stop) included."""
    box: list[tuple[int, int]] = []
    for size in shape:
        start = draw(st.integers(0, size))
        box.append((start, draw(st.integers(start, size))))
    return tuple(box)


shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)
