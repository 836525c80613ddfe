"""floordiv keeps its short form where sympy reads the floor right: a pooling over the flattened map
of a strided convolution prints ``floor(ceil(H/2)*ceil(W/2)/3)``, not its expansion."""

from __future__ import annotations

import fluxion.layers as fl
from fluxion import shapes

BEFORE = "floor(ceil(H/2)*ceil(W/2)/3)"
"""What show printed for this size before floordiv expanded every numerator (edc9b3a)."""


def test_a_pool_over_a_flattened_strided_map_prints_a_short_floor() -> None:
    model = fl.Chain(fl.Conv2d(3, 4, 3, stride=2, padding=1), fl.Flatten(2), fl.MaxPool1d(3))
    shown = str(shapes.infer(model, ("B", 3, "H", "W")).output)  # as show prints it
    assert shown.startswith("(B, 4, ")
    assert len(shown) <= len(f"(B, 4, {BEFORE})"), shown
