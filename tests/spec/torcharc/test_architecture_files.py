"""TorchArc YAML files end to end: read as TorchArc reads them (anchors, merge keys, null arguments),
keys equal to TorchArc's layout, outputs equal to a plain-torch model with the same weights."""

from pathlib import Path

import pytest
import torch

from fluxion import spec
from fluxion.cli import main

HERE = Path(__file__).parent


class Stereo(torch.nn.Module):
    """stereo.yaml written by hand in plain torch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())
        self.left_mlp = torch.nn.Sequential(torch.nn.Linear(4 * 6 * 6, 8), torch.nn.ReLU())
        self.right_mlp = torch.nn.Sequential(torch.nn.Linear(4 * 6 * 6, 8), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 2)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> dict[str, torch.Tensor]:
        left_value = self.left_mlp(self.conv(left))
        right_value = self.right_mlp(self.conv(right))
        return {"logits": self.head(left_value * right_value), "left": left_value}


def test_a_reused_module_has_its_keys_once_and_a_mapping_output_returns_a_dict() -> None:
    model = spec.load(HERE / "stereo.yaml", inputs={"left_image": ["B", 3, 8, 8], "right_image": ["B", 3, 8, 8]})
    reference = Stereo()
    assert list(model.state_dict()) == list(reference.state_dict())  # TorchArc's layout: conv once
    model.load_state_dict(reference.state_dict())
    left, right = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    got, expected = model(left, right), reference(left, right)
    assert list(got) == ["logits", "left"]
    assert all(torch.equal(got[key], expected[key]) for key in expected)


def test_without_shapes_the_file_loads_and_its_first_call_sizes_it() -> None:
    model = spec.load(HERE / "stereo.yaml")
    out = model(torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8))
    assert out["logits"].shape == (1, 2)
    assert model.left_mlp[0].in_features == 144


def test_compact_keys_are_torcharcs_and_1e_5_is_a_number() -> None:
    model = spec.load(HERE / "conv_classifier.yaml", inputs=[["B", 3, 12, 12]])
    weights = [key for key in model.state_dict() if key.endswith("weight")]
    assert weights == ["conv.0.weight", "conv.1.weight", "conv.4.weight", "conv.5.weight", "classifier.1.weight"]
    assert model.conv[0].eps == pytest.approx(1e-5)
    layers: list[torch.nn.Module] = []
    for before, out in ((3, 8), (8, 16)):
        layers += [
            torch.nn.BatchNorm2d(before),
            torch.nn.Conv2d(before, out, 3),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.1),
        ]
    reference = torch.nn.ModuleDict(
        {
            "conv": torch.nn.Sequential(*layers),
            "classifier": torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 8 * 8, 10)),
        }
    )
    model.load_state_dict(reference.state_dict())
    model.eval()
    reference.eval()
    x = torch.randn(2, 3, 12, 12)
    assert torch.allclose(model(x), reference["classifier"](reference["conv"](x)))


@pytest.mark.parametrize("command", ["validate", "show", "summary"])
def test_the_command_line_reads_a_torcharc_file_with_input_shapes(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(HERE / "conv_classifier.yaml"), "--input", "image=B,3,32,32"]) == 0
    assert "classifier" in capsys.readouterr().out or command == "validate"


def test_the_command_line_exports_a_torcharc_file_to_fluxions_format(tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    assert main(["export", str(HERE / "conv_classifier.yaml"), "--input", "image=B,3,32,32", "-o", str(target)]) == 0
    again = spec.load(target)
    original = spec.load(HERE / "conv_classifier.yaml", inputs=[["B", 3, 32, 32]])
    assert list(again.state_dict()) == list(original.state_dict())


def test_a_file_with_torch_classes_fluxion_has_none_of_exports_and_loads_back_the_same(tmp_path: Path) -> None:
    # text_classifier.yaml has torch.nn.MultiheadAttention, TransformerEncoderLayer and GELU: plain torch leaves
    target = tmp_path / "model.json"
    source = HERE / "text_classifier.yaml"
    assert main(["export", str(source), "--input", "tokens=B,T", "-o", str(target)]) == 0
    written = target.read_text()
    for kind in ("torch.nn.MultiheadAttention", "torch.nn.TransformerEncoderLayer", "torch.nn.GELU"):
        assert f'"type": "{kind}"' in written
    original = spec.load(source, inputs=[["B", "T"]])
    again = spec.load(target)
    assert [(key, value.shape) for key, value in again.state_dict().items()] == [
        (key, value.shape) for key, value in original.state_dict().items()
    ]
    assert type(again.get_submodule("attention")) is torch.nn.MultiheadAttention
    again.load_state_dict(original.state_dict())
    original.eval()
    again.eval()
    tokens = torch.randint(0, 1000, (2, 7))
    assert torch.equal(again(tokens), original(tokens))
