"""fluxion.layers.padding: ``Pad`` (torch's ``F.pad`` as a layer) and ``padded_shape``, the rule that it
and the convolutions padding by themselves share."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.nn import functional

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from fluxion.layers import padding
from fluxion.spec.registry import lookup


def test_pad_lives_with_the_padding_rule_under_its_name() -> None:
    assert fl.Pad is padding.Pad
    assert fl.Pad.__module__ == "fluxion.layers.padding"
    assert lookup("Pad") is fl.Pad
    model = fl.Chain(fl.Pad((0, 1, 0, 1)), fl.Pad((2, 2, 1, 1), mode="reflect"), fl.Pad((1, 0), value=-1.0))
    written = spec.dump(model)
    assert [node["type"] for node in written["children"]] == ["Pad"] * 3
    loaded = spec.loads(written)
    assert repr(loaded) == repr(model)
    x = torch.randn(1, 2, 3, 4)
    assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize(
    ("pad", "mode", "shape"),
    [
        ((0, 1, 0, 1), "constant", (1, 3, 4, 4)),
        ((-1, 2), "constant", (2, 5)),
        ((1, 2, 3, 0), "reflect", (2, 3, 5, 5)),
        ((2, 2), "replicate", (3, 1)),
        ((1, 1, 1, 1, 1, 1), "circular", (1, 1, 2, 3, 4)),
    ],
)
def test_pad_gives_what_functional_pad_gives_and_its_rule_says_so(
    pad: tuple[int, ...], mode: Any, shape: tuple[int, ...]
) -> None:
    x = torch.randn(shape)
    out = fl.Pad(pad, mode=mode)(x)
    assert torch.equal(out, functional.pad(x, pad, mode=mode))
    assert tuple(dims.run(fl.Pad(pad, mode=mode), dims.Shape(shape))) == tuple(out.shape)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pad": (1,)}, "even number of paddings"),
        ({"pad": ()}, "even number of paddings"),
        ({"pad": (1, 1), "mode": "mirror"}, "mode"),
        ({"pad": (-1, 1), "mode": "reflect"}, "at least 0"),
        ({"pad": (1,) * 8, "mode": "replicate"}, "at most 3 dims"),
    ],
)
def test_pad_refuses_what_functional_pad_would(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(fl.LayerError, match=message):
        fl.Pad(**arguments)


def test_the_rule_is_shared_with_convolutions_that_pad_by_themselves() -> None:
    with pytest.raises(shapes.ShapeError, match="Pad in mode 'reflect' expects a size above its padding"):
        padding.padded_shape("Pad", dims.Shape([1, 2, 2]), (2, 2), "reflect")
    conv = fl.Conv1d(2, 2, kernel_size=3, padding=2, padding_mode="reflect")
    with pytest.raises(shapes.ShapeError, match="Conv1d padding in mode 'reflect' expects a size above its padding"):
        dims.run(conv, dims.Shape([1, 2, 2]))
    with pytest.raises(RuntimeError):
        conv(torch.zeros(1, 2, 2))
    symbolic = padding.padded_shape("Pad", dims.Shape(["B", 3, "H"]), (1, 2), "constant")
    assert repr(symbolic) == "(B, 3, H + 3)"
