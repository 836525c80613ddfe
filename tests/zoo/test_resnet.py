"""examples/resnet.jsonnet loads Hugging Face transformers' ResNet checkpoints through
examples/resnet.mapping.json and computes what ResNetForImageClassification computes.

The reference models are built from small configs with random weights (nothing is downloaded),
their batch norms given random statistics so that every tensor matters, and saved with
``save_pretrained``; the spec is built on ``meta`` and loads that folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from fluxion import shapes, spec
from fluxion.weights import KeyMapping
from tests.zoo.helpers import ATOL, EXAMPLES, assert_inferred_shapes_are_real

transformers = pytest.importorskip("transformers")

SPEC = EXAMPLES / "resnet.jsonnet"
MAPPING = EXAMPLES / "resnet.mapping.json"
CLASSES = 10


@dataclass(frozen=True)
class Variant:
    """One configuration, as the Hugging Face config and as the spec's top-level arguments."""

    name: str
    config: dict[str, Any]
    tla: dict[str, Any]


VARIANTS = [
    Variant(
        "resnet18-basic",
        {"embedding_size": 8, "hidden_sizes": [8, 16, 32, 64], "depths": [2, 2, 2, 2], "layer_type": "basic"},
        {"depth": 18, "width": 8},
    ),
    Variant(
        "resnet50-bottleneck",
        {"embedding_size": 8, "hidden_sizes": [32, 64, 128, 256], "depths": [3, 4, 6, 3], "layer_type": "bottleneck"},
        {"depth": 50, "width": 8},
    ),
    Variant(  # ResNet v1 (stride in the bottleneck's 1x1 conv), a strided first stage, a wider stem
        "bottleneck-v1-strided",
        {
            "embedding_size": 12,
            "hidden_sizes": [16, 32, 64, 128],
            "depths": [1, 2, 1, 1],
            "layer_type": "bottleneck",
            "downsample_in_first_stage": True,
            "downsample_in_bottleneck": True,
        },
        {
            "width": 4,
            "stem_width": 12,
            "blocks": [1, 2, 1, 1],
            "bottleneck": True,
            "downsample_in_first_stage": True,
            "downsample_in_bottleneck": True,
        },
    ),
]


def reference(variant: Variant, folder: Path) -> torch.nn.Module:
    """A random ResNetForImageClassification of the variant, saved into ``folder``, in eval mode."""
    config = transformers.ResNetConfig(num_labels=CLASSES, **variant.config)
    model = transformers.ResNetForImageClassification(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.normal_()
                module.bias.normal_()
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda variant: variant.name)
def test_the_spec_loads_a_transformers_checkpoint_and_computes_the_same(variant: Variant, tmp_path: Path) -> None:
    torch.manual_seed(0)
    hf = reference(variant, tmp_path)
    tla = {**variant.tla, "num_classes": CLASSES, "image_size": 64}
    model = spec.load(SPEC, tla=tla, device="meta", weights=tmp_path, mapping=MAPPING).eval()

    assert not any(tensor.is_meta for tensor in [*model.parameters(), *model.buffers()])
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = hf(images).logits
        got = model(images)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("variant", VARIANTS[:2], ids=lambda variant: variant.name)
def test_inferred_shapes_are_those_of_the_forward_pass(variant: Variant) -> None:
    model = spec.load(SPEC, tla={**variant.tla, "num_classes": CLASSES, "image_size": 64}).eval()
    report = shapes.infer(model, ("B", 3, "H", "W"))
    assert report.output == shapes.Shape(["B", CLASSES])
    assert report.constraints == ()  # any image size works: the strided sizes are floors, as torch's
    for height, width in ((64, 64), (45, 70)):
        images = torch.randn(2, 3, height, width)
        compared = assert_inferred_shapes_are_real(model, report, {"B": 2, "H": height, "W": width}, images)
        assert compared > 50


def test_the_mapping_names_every_key_of_a_resnet_model_checkpoint() -> None:
    mapping = KeyMapping.read(MAPPING)
    # a ResNetModel (no classification head) writes its keys without the "resnet." prefix
    assert mapping("embedder.embedder.convolution.weight") == "conv1.weight"
    assert mapping("resnet.embedder.embedder.normalization.running_var") == "bn1.running_var"
    assert mapping("encoder.stages.3.layers.0.shortcut.normalization.bias") == "layer4.0.downsample.1.bias"
    assert mapping("resnet.encoder.stages.1.layers.2.layer.2.convolution.weight") == "layer2.2.conv3.weight"
    assert mapping("classifier.1.weight") == "fc.weight"


def test_torchvisions_defaults_are_kept() -> None:
    # the arguments added for transformers' variants leave the torchvision layout as it was
    model = spec.load(SPEC, tla={"depth": 18}, device="meta")
    keys = list(model.state_dict())
    assert "layer1.0.downsample.0.weight" not in keys
    assert "layer2.0.downsample.0.weight" in keys
    assert model.layer2[0].conv1.stride == (2, 2)
    wide = spec.load(SPEC, tla={"depth": 50}, device="meta")
    assert wide.layer2[0].conv2.stride == (2, 2)  # ResNet v1.5: the 3x3 conv strides
    assert "layer1.0.downsample.0.weight" in wide.state_dict()  # 64 -> 256 channels
