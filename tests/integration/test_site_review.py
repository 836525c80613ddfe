"""Review of the documentation site (issue 21): what a reader of the layer catalogue is told a layer
needs of its input sizes."""

import pytest

from fluxion import shapes
from fluxion.errors import ShapeError
from fluxion.spec import registry
from tests.integration.test_site import script

BOUNDED = {
    "AvgPool2d": ("H", ("B", "C", 1, "W")),
    "AvgPool3d": ("D", ("B", "C", 1, "H", "W")),
    "MaxPool1d": ("L", ("B", "C", 1)),
    "MaxPool3d": ("D", ("B", "C", 1, "H", "W")),
    "TorchFunction": ("D", ("B", 1)),
}
"""Catalogue examples whose rule refuses a size of 1 (a pool's kernel of 2, topk's k=2): the size,
and an input with it at 1."""


@pytest.mark.xfail(
    strict=True,
    reason="the catalogue's 'Needs' lists only equations and SequencePositionEmbedding's hand-written "
    "bound: these examples' rules refuse a size of 1 (kernel 2, k=2), and the entry says nothing",
)
@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_a_lower_bound_the_rule_enforces_is_among_the_entry_s_needs(name: str) -> None:
    catalogue = script("catalogue")
    symbol, too_small = BOUNDED[name]
    with pytest.raises(ShapeError):  # the rule itself refuses the size of 1
        shapes.infer(catalogue.EXAMPLES[name].layer.build(), too_small)
    entry = catalogue.entry(name, registry.lookup(name), catalogue.public_paths())
    assert any(symbol in need for need in entry.needs), entry.needs
