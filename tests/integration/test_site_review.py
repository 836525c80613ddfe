"""The layer catalogue's ``bounds`` (scripts/site/catalogue.py) beyond small sizes: a window wider
than 16 has its least size, a table larger than 2**16 its greatest."""

from __future__ import annotations

from fluxion import dims
from tests.integration.test_site import script


def test_a_window_wider_than_sixteen_has_its_least_size() -> None:
    catalogue = script("catalogue")
    found = catalogue.bounds(
        catalogue.example(catalogue.call("MaxPool1d", kernel_size=20)), [dims.Shape(["B", "C", "L"])]
    )
    assert [need.partition(":")[0] for need in found] == ["L ≥ 20"]


def test_a_table_larger_than_two_to_the_sixteen_has_its_greatest_size() -> None:
    catalogue = script("catalogue")
    layer = catalogue.call("SequencePositionEmbedding", num_positions=100_000, embedding_dim=8)
    found = catalogue.bounds(catalogue.example(layer), [dims.Shape(["B", "T", 8])])
    assert [need.partition(":")[0] for need in found] == ["T ≤ 100000"]
