"""fluxion.distributed.pieces: what every checkpoint reader offers. ``OneAtATime.read_all`` reads
each request in turn into the very tensor it names, and every reader ``open_pieces`` makes is a
``Pieces``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch.distributed import checkpoint as dcp

from fluxion.distributed.dcp_pieces import DcpPieces
from fluxion.distributed.pieces import Box, OneAtATime, Pieces, Request
from fluxion.distributed.safetensors_pieces import SafetensorsPieces
from fluxion.distributed.sources import WholePieces, open_pieces
from fluxion.errors import WeightsError


class Recording(OneAtATime):
    """Fills each out with the number of its read (1, 2...) and records what was asked; refuses key ``bad``."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Box]] = []

    def read(self, key: str, box: Box, out: torch.Tensor) -> None:
        if key == "bad":
            raise WeightsError("no tensor 'bad'")
        self.asked.append((key, box))
        out.fill_(len(self.asked))


def test_one_at_a_time_reads_every_request_in_order_into_its_own_out() -> None:
    whole = torch.zeros(4, 3)
    outs = [torch.zeros(2), whole[1:2], torch.zeros((), dtype=torch.int64)]
    requests = [
        Request("a", ((0, 2),), outs[0]),
        Request("b", ((1, 2), (0, 3)), outs[1]),
        Request("a", (), outs[2]),
    ]
    reader = Recording()
    reader.read_all(requests)
    assert reader.asked == [("a", ((0, 2),)), ("b", ((1, 2), (0, 3))), ("a", ())]
    assert outs[0].tolist() == [1.0, 1.0]
    assert whole.tolist() == [[0.0] * 3, [2.0] * 3, [0.0] * 3, [0.0] * 3]  # a view is filled in place
    assert outs[2].item() == 3


def test_a_failing_read_stops_the_requests_after_it() -> None:
    later = torch.zeros(2)
    reader = Recording()
    with pytest.raises(WeightsError, match="no tensor 'bad'"):
        reader.read_all(
            [
                Request("a", ((0, 1),), torch.zeros(1)),
                Request("bad", ((0, 1),), torch.zeros(1)),
                Request("c", ((0, 2),), later),
            ]
        )
    assert reader.asked == [("a", ((0, 1),))]
    assert later.tolist() == [0.0, 0.0]


def test_every_reader_open_pieces_makes_is_a_pieces(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    with warnings.catch_warnings():  # DCP notes that it runs in one process
        warnings.simplefilter("ignore")
        dcp.save({"w": torch.ones(2)}, checkpoint_id=tmp_path / "dcp")
    readers = [
        open_pieces({"w": torch.ones(2)}),
        open_pieces(tmp_path / "model.safetensors"),
        open_pieces(tmp_path / "dcp", collective=False),
    ]
    assert [type(reader) for reader in readers] == [WholePieces, SafetensorsPieces, DcpPieces]
    for reader in readers:
        assert isinstance(reader, Pieces)
        out = torch.zeros(1)
        reader.read_all([Request("w", ((1, 2),), out)])
        assert out.item() == 1.0
        reader.close()
    assert not isinstance(Recording(), Pieces)  # no checkpoint: not a reader load can plan with
