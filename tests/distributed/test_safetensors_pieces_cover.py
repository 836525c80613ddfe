"""fluxion.distributed.safetensors_pieces: the pieces of a tensor, in files written by
torch.distributed.checkpoint's Hugging Face writer, must agree and cover it exactly once; a piece
missing, doubled or moved is found when opening, naming the files, and the usual layout (whole rows
per rank) is checked without comparing every pair.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from unittest import mock

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fluxion.distributed import safetensors_pieces
from fluxion.distributed.safetensors_pieces import Piece
from fluxion.distributed.sources import open_pieces
from fluxion.errors import WeightsError
from tests.distributed.pieces_helpers import FAST, write_piece

# -- opening finds a piece missing, doubled or disagreeing -----------------------------------------


def test_a_missing_piece_is_found_when_opening(tmp_path: Path) -> None:
    tensor = torch.arange(12.0).reshape(6, 2)
    write_piece(tmp_path / "shard-00001.safetensors", "w", tensor[:2], (0, 0))
    write_piece(tmp_path / "shard-00003.safetensors", "w", tensor[4:], (4, 0))
    with pytest.raises(
        WeightsError, match=r"tensor 'w' of shape \(6, 2\) is stored in 2 pieces \(.*\) that cover 8 of its 12"
    ):
        open_pieces(tmp_path)


def test_a_doubled_piece_is_found_when_opening(tmp_path: Path) -> None:
    tensor = torch.arange(4.0)
    write_piece(tmp_path / "shard-00001.safetensors", "w", tensor[:2], (0,))
    write_piece(tmp_path / "shard-00002.safetensors", "w", tensor[:2], (0,))
    write_piece(tmp_path / "shard-00003.safetensors", "w", tensor[2:], (2,))
    with pytest.raises(WeightsError, match=r"tensor 'w': the pieces in .*shard-00001.* and .*shard-00002.* overlap"):
        open_pieces(tmp_path)


def test_a_lone_piece_that_is_not_the_whole_tensor_is_found(tmp_path: Path) -> None:
    write_piece(tmp_path / "shard-00002.safetensors", "w", torch.zeros(2, 3), (2, 0))
    with pytest.raises(
        WeightsError, match=r"tensor 'w' of shape \(4, 3\) is stored in 1 pieces \(.*\) that cover 6 of its 12"
    ):
        open_pieces(tmp_path)


def test_a_doubled_piece_beside_a_missing_one_is_found(tmp_path: Path) -> None:
    tensor = torch.arange(3.0)
    write_piece(tmp_path / "shard-00001.safetensors", "w", tensor[0:1], (0,))
    write_piece(tmp_path / "shard-00002.safetensors", "w", tensor[0:1], (0,))
    write_piece(tmp_path / "shard-00003.safetensors", "w", tensor[2:3], (2,))  # [1] is in no file
    with pytest.raises(WeightsError, match="'w'"):
        open_pieces(tmp_path)


def test_pieces_that_do_not_cover_name_where_they_are(tmp_path: Path) -> None:
    write_piece(tmp_path / "shard-00001.safetensors", "w", torch.zeros(2), (0,))
    write_piece(tmp_path / "shard-00003.safetensors", "w", torch.zeros(2), (4,))
    with pytest.raises(WeightsError) as raised:
        open_pieces(tmp_path)
    assert "'w'" in str(raised.value)
    assert str(tmp_path) in str(raised.value)


@pytest.mark.parametrize(
    ("second", "offsets"),
    [
        (torch.zeros(2, 3, dtype=torch.float16), (2, 0)),  # another dtype
        (torch.zeros(2, 3, 1), (2, 0, 0)),  # another rank
    ],
    ids=["dtype", "rank"],
)
def test_pieces_that_disagree_are_refused_naming_both_files(
    tmp_path: Path, second: torch.Tensor, offsets: tuple[int, ...]
) -> None:
    first_file = write_piece(tmp_path / "shard-00001.safetensors", "w", torch.zeros(2, 3), (0, 0))
    second_file = write_piece(tmp_path / "shard-00002.safetensors", "w", second, offsets)
    with pytest.raises(WeightsError, match="disagree on dtype or rank") as raised:
        open_pieces(tmp_path)
    message = str(raised.value)
    assert "'w'" in message
    assert str(first_file) in message
    assert str(second_file) in message


# -- the pieces of a tensor cover it exactly once --------------------------------------------------


def piece(number: int, offsets: tuple[int, ...], shape: tuple[int, ...]) -> Piece:
    return Piece(f"folder/shard-{number:05d}.safetensors", 0, offsets, shape, torch.float32)


@st.composite
def layouts(draw: st.DrawFn) -> list[Piece]:
    """Pieces of a 2-D tensor: whole rows cut at random points (the usual layout), then perhaps
    damaged (a piece dropped, doubled, moved, or an empty one added), or blocks placed anywhere."""
    width = draw(st.integers(1, 3))
    if draw(st.booleans()):
        rows = draw(st.integers(1, 9))
        points = sorted(draw(st.sets(st.integers(1, rows), max_size=5)) - {rows})
        ranges = list(itertools.pairwise([0, *points, rows]))
        found = [piece(number, (start, 0), (stop - start, width)) for number, (start, stop) in enumerate(ranges)]
        found = draw(st.permutations(found))
        damage = draw(st.sampled_from(["none", "drop", "double", "move", "empty", "narrow"]))
        chosen = draw(st.integers(0, len(found) - 1))
        target = found[chosen]
        if damage == "drop" and len(found) > 1:
            del found[chosen]
        elif damage == "double":
            found.append(dataclasses.replace(target, path="folder/again.safetensors"))
        elif damage == "move":
            found[chosen] = dataclasses.replace(target, offsets=(draw(st.integers(0, rows)), 0))
        elif damage == "empty":
            found.insert(chosen, piece(99, (draw(st.integers(0, rows + 2)), 0), (0, draw(st.integers(0, width)))))
        elif damage == "narrow" and width > 1:
            found[chosen] = dataclasses.replace(target, shape=(target.shape[0], width - 1))
        return found
    blocks = draw(
        st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)), min_size=1)
    )
    return [piece(number, (row, column), (rows, columns)) for number, (row, column, rows, columns) in enumerate(blocks)]


@FAST
@given(found=layouts())
def test_pieces_are_accepted_exactly_when_they_cover_the_tensor_once(found: list[Piece]) -> None:
    shape = tuple(max(one.offsets[dim] + one.shape[dim] for one in found) for dim in range(2))
    counts = torch.zeros(shape, dtype=torch.int64)
    for one in found:
        counts[one.offsets[0] : one.offsets[0] + one.shape[0], one.offsets[1] : one.offsets[1] + one.shape[1]] += 1
    if bool((counts > 1).any()):
        with pytest.raises(WeightsError, match="overlap"):
            safetensors_pieces._check_cover("w", found)
    elif bool((counts == 0).any()):
        with pytest.raises(WeightsError, match="a piece is missing"):
            safetensors_pieces._check_cover("w", found)
    else:
        safetensors_pieces._check_cover("w", found)


def test_pieces_of_whole_rows_are_checked_without_comparing_every_pair() -> None:
    """One piece per rank: with hundreds of ranks, comparing pairs would cost their square."""
    found = [piece(number, (4 * number, 0), (4, 8)) for number in reversed(range(1000))]
    with mock.patch.object(safetensors_pieces, "_check_disjoint", side_effect=AssertionError("compared pair by pair")):
        safetensors_pieces._check_cover("w", [*found, piece(1000, (17, 0), (0, 8))])
        doubled = dataclasses.replace(found[500], path="folder/again.safetensors")
        with pytest.raises(WeightsError, match=r"the pieces in folder/shard-00499\.\S+ and folder/again\.\S+ overlap"):
            safetensors_pieces._check_cover("w", [*found, doubled])
        with pytest.raises(WeightsError, match=r"is stored in 999 pieces .* cover 31968 of its 32000 elements"):
            safetensors_pieces._check_cover("w", [*found[:500], *found[501:]])


def test_pieces_split_along_other_dimensions_are_compared_pair_by_pair() -> None:
    found = [piece(0, (0, 0), (2, 2)), piece(1, (0, 2), (2, 2)), piece(2, (2, 0), (2, 4))]
    with mock.patch.object(safetensors_pieces, "_check_disjoint", wraps=safetensors_pieces._check_disjoint) as compared:
        safetensors_pieces._check_cover("w", found)
    compared.assert_called_once()
