"""docs/zoo/neurlink.md: ResNet-18 and ResNet-50 declared the Neurlink way (each layer's part of the
input image, ``model_downsample=``) are torchvision's ResNets: every convolution and pool has the
kernel, stride and padding of Hugging Face transformers' ResNet (torchvision's layout), the
parameters are the same in number and shape, and with the reference's weights copied over the
outputs agree. The models are the page's own code (its first python block); nothing is downloaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes
from tests.zoo.helpers import ATOL

transformers = pytest.importorskip("transformers")

PAGE = Path(__file__).resolve().parents[2] / "docs" / "zoo" / "neurlink.md"
VARIANTS = {
    "resnet18": ({"hidden_sizes": [64, 128, 256, 512], "depths": [2, 2, 2, 2], "layer_type": "basic"}, 11_689_512),
    "resnet50": ({}, 25_557_032),  # transformers' default config is ResNet-50 (v1.5)
}


def page_model(name: str) -> torch.nn.Module:
    first = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), re.DOTALL | re.MULTILINE)[0]
    namespace: dict[str, Any] = {"__name__": "neurlink_page"}
    exec(compile(first, f"{PAGE.name} block 1", "exec"), namespace)
    build: Callable[[], torch.nn.Module] = namespace[name]
    return build()


def windows(model: torch.nn.Module) -> list[tuple[Any, ...]]:
    """Kernel, stride and padding of every convolution and max pool, shortcuts after the main path."""
    found: list[tuple[str, tuple[Any, ...]]] = []
    for address, layer in model.named_modules():
        if isinstance(layer, torch.nn.Conv2d):
            found.append((address, (tuple(layer.kernel_size), tuple(layer.stride), tuple(layer.padding))))
        elif isinstance(layer, torch.nn.MaxPool2d):
            pair = [value if isinstance(value, tuple) else (value, value) for value in (layer.stride, layer.padding)]
            found.append((address, ("max", *pair)))
    return [geometry for _, geometry in main_path_first(found)]


def main_path_first(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``(address, value)`` pairs in tree order, except that a block's shortcut comes after its main
    path: transformers registers a block's shortcut before its layers, the page after them."""
    blocks: dict[str, int] = {}
    for address, _ in items:
        blocks.setdefault(_block(address), len(blocks))
    return sorted(items, key=lambda item: (blocks[_block(item[0])], "shortcut" in item[0]))


def _block(address: str) -> str:
    found = re.match(r"(resnet\.encoder\.stages\.\d+\.layers\.\d+|layer\d+\.\d+)\.", address)
    return found.group(1) if found else address


def reference(name: str) -> torch.nn.Module:
    config, _ = VARIANTS[name]
    torch.manual_seed(0)
    model = transformers.ResNetForImageClassification(transformers.ResNetConfig(**config, num_labels=1000)).eval()
    for layer in model.modules():  # statistics that matter
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_neurlink_way_builds_torchvisions_resnet(name: str) -> None:
    model = page_model(name)
    shapes.materialize(model, ("B", 3, 224, 224))
    ours = reference(name)
    assert sum(parameter.numel() for parameter in model.parameters()) == VARIANTS[name][1]
    assert sum(parameter.numel() for parameter in ours.parameters()) == VARIANTS[name][1]
    assert windows(model) == windows(ours)

    # the reference's tensors, in the page's order (shortcuts after the main path), load into the page's tree
    theirs = main_path_first(list(ours.state_dict().items()))
    keys = list(model.state_dict())
    assert [tuple(tensor.shape) for _, tensor in theirs] == [tuple(model.state_dict()[key].shape) for key in keys]
    model.load_state_dict({key: tensor for key, (_, tensor) in zip(keys, theirs, strict=True)})
    model.eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(images), ours(images).logits, atol=ATOL)


def test_a_block_reads_every_stage_with_gradients() -> None:
    model = page_model("resnet18")
    shapes.materialize(model, ("B", 3, 64, 64))
    with fl.Intermediates(model, "layer?.?") as tapped:
        output, stages = tapped(torch.randn(1, 3, 64, 64))
    (output.sum() + sum(stage.sum() for stage in stages.values())).backward()
    assert list(stages) == [f"layer{stage}.{block}" for stage in (1, 2, 3, 4) for block in (0, 1)]
    assert model.stem.conv.weight.grad is not None
