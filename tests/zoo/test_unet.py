"""examples/unet.jsonnet loads diffusers' UNet2DModel checkpoints through examples/unet.mapping.json
and computes what UNet2DModel computes.

The references are built from small configs with random weights (nothing is downloaded) and saved
with ``save_pretrained``; the spec is built on ``meta`` and loads the safetensors file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes, spec
from fluxion.weights import KeyMapping
from tests.zoo.helpers import ATOL, EXAMPLES, assert_inferred_shapes_are_real

diffusers = pytest.importorskip("diffusers")

SPEC = EXAMPLES / "unet.jsonnet"
MAPPING = EXAMPLES / "unet.mapping.json"

SMALL: dict[str, Any] = {  # attention in the lower level and in the middle, one ResNet block per level
    "block_out_channels": [16, 32],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "attention_head_dim": 8,
}
DEEPER: dict[str, Any] = {  # three levels of two blocks, as the DDPM checkpoints are configured
    "block_out_channels": [16, 24, 32],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "layers_per_block": 2,
    "norm_num_groups": 8,
    "attn_norm_num_groups": 4,
    "attention_head_dim": None,  # one head
    "flip_sin_to_cos": False,  # sines first
    "freq_shift": 1,
    "downsample_padding": 0,  # a row and a column padded after, then no padding
    "norm_eps": 1e-6,
}
NO_MIDDLE_ATTENTION: dict[str, Any] = {**SMALL, "add_attention": False, "attention_head_dim": 4}
NO_MIDDLE: dict[str, Any] = {**SMALL, "mid_block_type": None, "dropout": 0.1}  # no-op in eval mode
DDPM_CIFAR10: dict[str, Any] = {  # google/ddpm-cifar10-32's config.json, less what has its default value
    "block_out_channels": [128, 256, 256, 256],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": None,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "norm_eps": 1e-6,
    "sample_size": 32,
}


def reference(arguments: dict[str, Any], folder: Path) -> torch.nn.Module:
    """A random UNet2DModel of the spec's arguments (the config's names), saved into ``folder``."""
    model = diffusers.UNet2DModel(**arguments).eval()
    model.save_pretrained(folder)
    return model


def saved_config(folder: Path) -> dict[str, Any]:
    """The config.json that ``save_pretrained`` wrote, less its private fields: the spec's arguments."""
    config = json.loads((folder / "config.json").read_text())
    return {name: value for name, value in config.items() if not name.startswith("_")}


@pytest.mark.parametrize(
    "arguments", [SMALL, DEEPER, NO_MIDDLE_ATTENTION, NO_MIDDLE], ids=["small", "deeper", "plain-middle", "no-middle"]
)
def test_the_spec_loads_a_diffusers_checkpoint_and_computes_the_same(arguments: dict[str, Any], tmp_path: Path) -> None:
    torch.manual_seed(0)
    unet = reference(arguments, tmp_path)
    checkpoint = tmp_path / "diffusion_pytorch_model.safetensors"

    # every field of the config is an argument of the spec
    tla = saved_config(tmp_path)
    model = spec.load(SPEC, tla=tla, device="meta", weights=checkpoint, mapping=MAPPING).eval()

    assert not any(parameter.is_meta for parameter in model.parameters())
    sample, timestep = torch.randn(2, 3, 16, 24), torch.tensor([7, 830])
    with torch.no_grad():
        expected = unet(sample, timestep).sample
        got = model(sample, timestep)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_checkpoints_with_the_old_attention_names_load_too(tmp_path: Path) -> None:
    torch.manual_seed(0)
    unet = reference(SMALL, tmp_path)
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    renamed = {
        re.sub(r"\.(to_q|to_k|to_v|to_out\.0)\.", lambda found: f".{old[found[1]]}.", key): value
        for key, value in unet.state_dict().items()
    }
    assert "mid_block.attentions.0.proj_attn.weight" in renamed

    model = spec.load(SPEC, tla=SMALL, device="meta", weights=renamed, mapping=MAPPING).eval()

    sample, timestep = torch.randn(1, 3, 8, 8), torch.tensor([999])
    with torch.no_grad():
        torch.testing.assert_close(model(sample, timestep), unet(sample, timestep).sample, atol=ATOL, rtol=0)


def test_inferred_shapes_are_those_of_the_forward_pass() -> None:
    model = spec.load(SPEC, tla=DEEPER).eval()
    report = shapes.infer(model, sample=("B", 3, "H", "W"), timestep=("B",))
    assert report.output == shapes.Shape(["B", 3, "H", "W"])
    assert repr(report["mid_block"].output) == "(B, 32, H/4, W/4)"
    # two strided convolutions, and the skips must meet the sizes they left: the sizes must halve twice
    assert {str(constraint).split(" (")[0] for constraint in report.constraints} == {
        "H must be divisible by 4",
        "W must be divisible by 4",
    }
    sample, timestep = torch.randn(2, 3, 8, 12), torch.tensor([1, 2])
    compared = assert_inferred_shapes_are_real(model, report, {"B": 2, "H": 8, "W": 12}, sample, timestep)
    assert compared > 200


def test_the_skips_go_through_context_in_reverse_order() -> None:
    model = spec.load(SPEC, tla=DEEPER, device="meta")
    stored = [node.key for node in model.layers(fl.SetContext) if node.key.startswith("skip_")]
    read = [node.key for node in model.layers(fl.UseContext) if node.key.startswith("skip_")]
    assert stored == [f"skip_{k}" for k in range(9)]
    assert read == list(reversed(stored))


def test_the_ddpm_unet_has_its_parameters_and_round_trips() -> None:
    model = spec.load(SPEC, tla=DDPM_CIFAR10, device="meta")
    # google/ddpm-cifar10-32's UNet2DModel has 35,746,307 parameters
    assert sum(parameter.numel() for parameter in model.parameters()) == 35_746_307
    written = spec.dump(model)
    again = spec.loads(json.loads(json.dumps(written)), device="meta")
    assert repr(again) == repr(model)


def test_the_defaults_are_those_of_unet2dmodel() -> None:
    model = spec.load(SPEC, device="meta")
    with torch.device("meta"):
        unet = diffusers.UNet2DModel()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in unet.parameters())


def test_what_the_spec_does_not_build_is_refused_by_name() -> None:
    with pytest.raises(spec.SpecError, match="class_embed_type: this spec builds null, got timestep"):
        spec.load(SPEC, tla={**SMALL, "class_embed_type": "timestep"}, device="meta")
    with pytest.raises(spec.SpecError, match="up_block_types: this spec builds UpBlock2D or AttnUpBlock2D"):
        spec.load(SPEC, tla={**SMALL, "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"]}, device="meta")


def test_the_mapping_names_diffusers_blocks() -> None:
    mapping = KeyMapping.read(MAPPING)
    assert mapping("down_blocks.1.resnets.0.conv_shortcut.weight") == "down_blocks.1.0.resnet.conv_shortcut.weight"
    assert mapping("down_blocks.0.downsamplers.0.conv.bias") == "down_blocks.0.downsample.conv.bias"
    assert mapping("up_blocks.0.attentions.2.to_out.0.weight") == (
        "up_blocks.0.2.attention.tokens.self_attention.output.weight"
    )
    assert mapping("mid_block.attentions.0.group_norm.weight") == "mid_block.attention.norm.weight"
    assert mapping("mid_block.resnets.1.time_emb_proj.bias") == "mid_block.resnet_1.time_emb_proj.bias"
    assert mapping("time_embedding.linear_2.weight") == "time_embedding.linear_2.weight"


@pytest.mark.parametrize(("dim", "flip", "shift"), [(16, True, 0.0), (7, False, 1.0)])
def test_the_sinusoidal_embedding_is_diffusers_timesteps(dim: int, flip: bool, shift: float) -> None:
    from diffusers.models.embeddings import Timesteps

    timesteps = torch.tensor([0, 1, 17, 999])
    expected = Timesteps(dim, flip_sin_to_cos=flip, downscale_freq_shift=shift)(timesteps)
    got = fl.SinusoidalEmbedding(dim, flip_sin_to_cos=flip, freq_shift=shift)(timesteps)
    assert torch.equal(got, expected)
