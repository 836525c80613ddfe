"""examples/mlp.jsonnet and examples/convnet.jsonnet, the first specs a new user reads, against the
plain-torch models they replace: ``torch.nn.Sequential`` stacks with random weights, saved with
safetensors. No library publishes these checkpoints, so the key mapping is the one
``fluxion.weights.convert`` finds by running both models once; written to a file, it loads the
Sequential's checkpoint into a tree built on ``meta``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from fluxion import shapes, spec, weights
from tests.zoo.helpers import ATOL, EXAMPLES, assert_inferred_shapes_are_real

MLP = EXAMPLES / "mlp.jsonnet"
CONVNET = EXAMPLES / "convnet.jsonnet"


def torch_mlp(features: int, widths: list[int], classes: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for before, width in zip([features, *widths], widths, strict=False):
        layers += [nn.Linear(before, width), nn.ReLU(), *([nn.Dropout(dropout)] if dropout else [])]
    return nn.Sequential(*layers, nn.Linear(widths[-1], classes))


def torch_convnet(channels: list[int], classes: int, image_size: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for before, width in zip([3, *channels], channels, strict=False):
        layers += [
            nn.Conv2d(before, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
    side = image_size // 2 ** len(channels)
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(0.2), nn.Linear(channels[-1] * side * side, classes))


def trained_like(model: nn.Sequential) -> nn.Sequential:
    """Batch norm statistics and affine parameters away from their defaults, so that every tensor matters."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
    return model.eval()


def assert_loads_through_the_converted_mapping(
    reference: nn.Module, path: Path, tla: dict[str, object], tmp_path: Path, example: torch.Tensor
) -> None:
    built = spec.load(path, tla=tla)
    mapping = weights.convert(reference, built, example)
    mapping.write(tmp_path / "mapping.json")
    checkpoint = tmp_path / "model.safetensors"
    save_file(reference.state_dict(), str(checkpoint))

    model = spec.load(path, tla=tla, device="meta", weights=checkpoint, mapping=tmp_path / "mapping.json").eval()

    assert not any(tensor.is_meta for tensor in model.state_dict().values())
    given = torch.randn_like(example)
    with torch.no_grad():
        torch.testing.assert_close(model(given), reference(given), atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("widths", "dropout"), [([256, 128], 0.0), ([64, 32, 16], 0.1)], ids=["default", "three-layers-dropout"]
)
def test_the_mlp_loads_a_sequential_checkpoint(widths: list[int], dropout: float, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = torch_mlp(784, widths, 10, dropout).eval()
    tla: dict[str, object] = {"widths": widths, "dropout": dropout}
    assert_loads_through_the_converted_mapping(reference, MLP, tla, tmp_path, torch.randn(4, 784))


def test_the_mlp_mapping_names_the_sequential_indices() -> None:
    torch.manual_seed(0)
    mapping = weights.convert(torch_mlp(784, [256, 128], 10, 0.0), spec.load(MLP), torch.randn(2, 784))
    assert [mapping(f"{index}.weight") for index in (0, 2, 4)] == ["hidden1.weight", "hidden2.weight", "head.weight"]


@pytest.mark.parametrize(
    ("channels", "image_size"), [([32, 64, 128], 32), ([8, 16], 24)], ids=["default", "two-blocks-24px"]
)
def test_the_convnet_loads_a_sequential_checkpoint(channels: list[int], image_size: int, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = trained_like(torch_convnet(channels, 10, image_size))
    tla: dict[str, object] = {"channels": channels, "image_size": image_size}
    example = torch.randn(2, 3, image_size, image_size)
    assert_loads_through_the_converted_mapping(reference, CONVNET, tla, tmp_path, example)


def test_mlp_shapes_with_a_symbolic_batch_are_those_of_the_forward() -> None:
    model = spec.load(MLP, tla={"widths": [32, 16], "features": 20})
    report = shapes.infer(model, ("B", 20))
    assert report.output == shapes.Shape(["B", 10])
    assert report["hidden2"].output == shapes.Shape(["B", 16])
    assert assert_inferred_shapes_are_real(model, report, {"B": 3}, torch.randn(3, 20)) == 6  # with the root


def test_convnet_shapes_with_symbolic_batch_and_image_size_are_those_of_the_forward() -> None:
    model = spec.load(CONVNET, tla={"channels": [8, 16, 32]})
    features = model[:-1]  # the classifier's in_features fixes the image size; the blocks take any
    report = shapes.infer(features, ("B", 3, "H", "W"))
    assert str(report.output) == "(B, 32, floor(H/8), floor(W/8))"
    for values in ({"B": 2, "H": 32, "W": 32}, {"B": 1, "H": 20, "W": 43}):
        image = torch.randn(values["B"], 3, values["H"], values["W"])
        assert_inferred_shapes_are_real(features.eval(), report, values, image)
    whole = shapes.infer(model, ("B", 3, 32, 32))
    assert whole.output == shapes.Shape(["B", 10])
    assert whole["classifier.flatten"].output == shapes.Shape(["B", 32 * 4 * 4])
