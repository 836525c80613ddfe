"""fluxion.distributed.boxes: the block a rank holds, and the block of a checkpoint tensor that feeds it.

``source_box`` and ``in_source_order`` are checked against the mapping steps themselves: reading the
source box of a random tensor into the model-side block (in source order) must give exactly what
applying the steps and slicing gives. ``local_box`` of a DTensor is checked on a one-rank gloo group
whose mesh is told it has more ranks, against torch.chunk (what FSDP2's Shard does).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import torch
import torch.distributed as dist
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Partial, Placement, Replicate, Shard, distribute_tensor

from fluxion.distributed.boxes import in_source_order, local_box, source_box, whole_box
from fluxion.distributed.pieces import Box
from fluxion.distributed.sources import open_pieces
from fluxion.errors import DistributedError
from fluxion.weights.mapping import Split, Step, Target, Transpose
from tests.distributed.pieces_helpers import boxes

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SIZES = [1, 2, 3, 4, 6, 8, 12]
"""Sizes with several divisors, so that splits find a count to split by."""


def slices(box: Box) -> tuple[slice, ...]:
    return tuple(slice(start, stop) for start, stop in box)


def box_shape(box: Box) -> tuple[int, ...]:
    return tuple(stop - start for start, stop in box)


@st.composite
def mappings(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[Step, ...]]:
    """A source shape and up to four steps (transposes, splits along any dimension) that apply to it."""
    shape: tuple[int, ...] = tuple(draw(st.lists(st.sampled_from(SIZES), min_size=1, max_size=3)))
    source_shape = shape
    steps: list[Step] = []
    for _ in range(draw(st.integers(0, 4))):
        if len(shape) >= 2 and draw(st.booleans()):
            step: Step = Transpose()
        else:
            dim = draw(st.integers(-len(shape), len(shape) - 1))
            count = draw(st.sampled_from([count for count in range(1, 5) if shape[dim] % count == 0]))
            step = Split(index=draw(st.integers(0, count - 1)), count=count, dim=dim)
        steps.append(step)
        shape = step.shape(shape)
    return source_shape, tuple(steps)


# -- source_box and in_source_order -----------------------------------------------------------------


@FAST
@given(mapping=mappings(), data=st.data())
def test_the_source_box_read_in_source_order_is_the_mapped_tensor_sliced(
    mapping: tuple[tuple[int, ...], tuple[Step, ...]], data: st.DataObject
) -> None:
    source_shape, steps = mapping
    source = torch.randn(source_shape)
    target = Target("key", steps)
    box = data.draw(boxes(target.shape(source_shape)))
    out = torch.empty(box_shape(box))
    in_source_order(out, steps).copy_(source[slices(source_box(box, steps, source_shape))])
    assert torch.equal(out, target.apply(source)[slices(box)])


@FAST
@given(mapping=mappings(), data=st.data(), strided=st.booleans())
def test_a_file_read_box_by_box_through_the_steps_is_the_mapped_tensor(
    mapping: tuple[tuple[int, ...], tuple[Step, ...]], data: st.DataObject, strided: bool
) -> None:
    """What loading does: read the source box from the file straight into the model's block."""
    source_shape, steps = mapping
    source = torch.randn(source_shape).to(torch.bfloat16)
    target = Target("key", steps)
    box = data.draw(boxes(target.shape(source_shape)))
    shape = box_shape(box)
    out = (
        torch.empty(tuple(2 * size for size in shape))[tuple(slice(None, None, 2) for _ in shape)]
        if strided
        else torch.empty(shape)
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        save_file({"w": source}, path)
        pieces = open_pieces(path)
        pieces.read("w", source_box(box, steps, source_shape), in_source_order(out, steps))
        pieces.close()
    assert torch.equal(out, target.apply(source)[slices(box)].float())


@FAST
@given(mapping=mappings())
def test_the_whole_target_comes_from_a_box_of_the_same_size_in_the_source(
    mapping: tuple[tuple[int, ...], tuple[Step, ...]],
) -> None:
    source_shape, steps = mapping
    target_shape = Target("key", steps).shape(source_shape)
    found = source_box(whole_box(target_shape), steps, source_shape)
    assert tuple(in_source_order(torch.empty(target_shape), steps).shape) == box_shape(found)
    assert all(0 <= start <= stop <= size for (start, stop), size in zip(found, source_shape, strict=True))
    if not any(isinstance(step, Split) for step in steps):
        assert found == whole_box(source_shape)


@pytest.mark.parametrize(
    ("steps", "source_shape", "box", "expected"),
    [
        ((), (4, 3), ((1, 2), (0, 3)), ((1, 2), (0, 3))),
        ((Transpose(),), (8, 4), ((0, 4), (2, 5)), ((2, 5), (0, 4))),
        ((Split(index=2, count=3, dim=0),), (12, 2), ((1, 3), (0, 2)), ((9, 11), (0, 2))),
        ((Split(index=1, count=2, dim=-1),), (3, 8), ((0, 3), (1, 2)), ((0, 3), (5, 6))),
        # the split's dimension is counted after the transpose: dim 0 there is the source's dim 1
        ((Transpose(), Split(index=1, count=2, dim=0)), (3, 8), ((0, 4), (0, 3)), ((0, 3), (4, 8))),
        ((Split(index=1, count=2, dim=0), Transpose()), (8, 3), ((0, 3), (1, 3)), ((5, 7), (0, 3))),
        ((Transpose(), Transpose()), (2, 5), ((1, 2), (0, 5)), ((1, 2), (0, 5))),
    ],
    ids=["none", "transpose", "split", "split-last-dim", "transpose-then-split", "split-then-transpose", "twice"],
)
def test_source_boxes_of_known_mappings(
    steps: tuple[Step, ...], source_shape: tuple[int, ...], box: Box, expected: Box
) -> None:
    assert source_box(box, steps, source_shape) == expected


def test_in_source_order_is_a_view_transposed_once_per_odd_number_of_transposes() -> None:
    block = torch.zeros(2, 5, 3)
    assert in_source_order(block, ()) is block
    assert in_source_order(block, (Split(0, 2, 0), Transpose(), Transpose())) is block
    swapped = in_source_order(block, (Transpose(), Split(0, 2, 1)))
    assert swapped.shape == (5, 2, 3)
    assert swapped.data_ptr() == block.data_ptr()
    swapped[4, 1, 2] = 7.0
    assert block[1, 4, 2] == 7.0


# -- local_box -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(), (0,), (4,), (3, 0, 2), (2, 3, 4)])
def test_a_plain_tensor_is_held_whole(shape: tuple[int, ...]) -> None:
    assert local_box(torch.zeros(shape)) == tuple((0, size) for size in shape)
    assert local_box(torch.zeros(shape, device="meta")) == whole_box(shape)


@pytest.fixture(scope="module")
def one_rank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A gloo process group of one rank (this process), for as long as this module's tests run."""
    if dist.is_initialized():
        pytest.skip("a process group is already running in this process")
    store = dist.FileStore(str(tmp_path_factory.mktemp("store") / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def chunk_range(start: int, stop: int, parts: int, index: int) -> tuple[int, int]:
    """The range ``torch.chunk`` gives part ``index`` of ``start..stop`` (empty, at the end, past its last part)."""
    chunks = torch.arange(start, stop).chunk(parts) if stop > start else ()
    if index >= len(chunks):
        return (stop, stop)
    return (int(chunks[index][0]), int(chunks[index][-1]) + 1)


def expected_box(shape: tuple[int, ...], placements: list[Placement], sizes: list[int], coordinate: list[int]) -> Box:
    ranges = list(whole_box(shape))
    for placement, parts, index in zip(placements, sizes, coordinate, strict=True):
        if isinstance(placement, Shard):
            ranges[placement.dim] = chunk_range(*ranges[placement.dim], parts, index)
    return tuple(ranges)


@pytest.mark.usefixtures("one_rank")
@FAST
@given(
    shape=st.lists(st.integers(0, 9), min_size=1, max_size=3).map(tuple),
    data=st.data(),
    two_dims=st.booleans(),
)
def test_a_sharded_dtensor_holds_the_torch_chunk_of_its_coordinate(
    shape: tuple[int, ...], data: st.DataObject, two_dims: bool
) -> None:
    mesh = init_device_mesh("cpu", (1, 1) if two_dims else (1,))
    choices: list[Placement] = [Replicate(), *(Shard(dim) for dim in range(len(shape)))]
    placements = [data.draw(st.sampled_from(choices)) for _ in range(mesh.ndim)]
    sizes = [data.draw(st.integers(1, 5)) for _ in range(mesh.ndim)]
    coordinate = [data.draw(st.integers(0, parts - 1)) for parts in sizes]
    expected = expected_box(shape, placements, sizes, coordinate)
    local = torch.zeros(box_shape(expected))
    tensor = DTensor.from_local(local, mesh, placements, shape=torch.Size(shape), stride=torch.zeros(shape).stride())
    with (
        mock.patch.object(mesh, "get_coordinate", return_value=coordinate),
        mock.patch.object(mesh, "size", side_effect=lambda mesh_dim=None: sizes[mesh_dim or 0]),
    ):
        assert local_box(tensor) == expected


@pytest.mark.usefixtures("one_rank")
@pytest.mark.parametrize("placement", [Shard(0), Shard(1), Replicate()])
def test_one_rank_holds_the_whole_dtensor(placement: Placement) -> None:
    mesh = init_device_mesh("cpu", (1,))
    tensor = distribute_tensor(torch.arange(12.0).reshape(4, 3), mesh, [placement])
    assert local_box(tensor) == ((0, 4), (0, 3))


@pytest.mark.usefixtures("one_rank")
def test_a_rank_outside_the_mesh_holds_nothing() -> None:
    mesh = init_device_mesh("cpu", (1,))
    tensor = distribute_tensor(torch.zeros(4, 3), mesh, [Shard(0)])
    with mock.patch.object(mesh, "get_coordinate", return_value=None):
        assert local_box(tensor) == ((0, 0), (0, 0))


@pytest.mark.usefixtures("one_rank")
def test_a_partial_tensor_cannot_be_loaded_piece_by_piece() -> None:
    mesh = init_device_mesh("cpu", (1,))
    tensor = DTensor.from_local(torch.zeros(4, 3), mesh, [Partial()])
    with pytest.raises(DistributedError, match=r"placed as P\(sum\) cannot be loaded piece by piece"):
        local_box(tensor)


@pytest.mark.usefixtures("one_rank")
def test_a_strided_shard_cannot_be_loaded_piece_by_piece() -> None:
    strided = pytest.importorskip("torch.distributed.tensor.placement_types")._StridedShard
    mesh = init_device_mesh("cpu", (1,))
    tensor = DTensor.from_local(torch.zeros(4, 3), mesh, [strided(0, split_factor=2)])
    with pytest.raises(DistributedError, match="sharded along whole dimensions"):
        local_box(tensor)


@pytest.mark.usefixtures("one_rank")
def test_a_local_part_that_is_not_the_chunk_is_refused() -> None:
    mesh = init_device_mesh("cpu", (1,))
    tensor = DTensor.from_local(torch.zeros(3, 3), mesh, [Shard(0)], shape=torch.Size((4, 3)), stride=(3, 1))
    with pytest.raises(DistributedError, match=r"has shape \(3, 3\), not the block \(\(0, 4\), \(0, 3\)\)"):
        local_box(tensor)
