"""examples/vit.jsonnet loads Hugging Face transformers' ViT checkpoints through
examples/vit.mapping.json and computes what ViTForImageClassification computes.

The reference is built from a small config with random weights (nothing is downloaded) and saved
with ``save_pretrained``; the spec is built on ``meta`` and loads that folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes, spec
from fluxion.weights import KeyMapping
from tests.zoo.helpers import ATOL, EXAMPLES, assert_inferred_shapes_are_real

transformers = pytest.importorskip("transformers")

SPEC = EXAMPLES / "vit.jsonnet"
MAPPING = EXAMPLES / "vit.mapping.json"
CONFIG = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 8,
    "num_labels": 10,
}
TLA = {"depth": 2, "width": 32, "heads": 4, "mlp_width": 64, "image_size": 32, "patch_size": 8, "num_classes": 10}


def test_the_spec_loads_a_transformers_checkpoint_and_computes_the_same(tmp_path: Path) -> None:
    torch.manual_seed(0)
    hf = transformers.ViTForImageClassification(transformers.ViTConfig(**CONFIG)).eval()
    with torch.no_grad():  # the class token and positions start near zero: make them count
        hf.vit.embeddings.cls_token.normal_()
        hf.vit.embeddings.position_embeddings.normal_()
    hf.save_pretrained(tmp_path)

    model = spec.load(SPEC, tla=TLA, device="meta", weights=tmp_path, mapping=MAPPING).eval()

    assert not any(parameter.is_meta for parameter in model.parameters())
    assert torch.equal(model["embeddings.class_token"].weight, hf.vit.embeddings.cls_token)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = hf(images, output_hidden_states=True)
        got = shapes.trace(model, images)
    torch.testing.assert_close(got[""], expected.logits, atol=ATOL, rtol=0)
    # the encoder's output too: the final LayerNorm is ViTModel's last_hidden_state
    torch.testing.assert_close(got["norm"], hf.vit(images).last_hidden_state, atol=ATOL, rtol=0)
    torch.testing.assert_close(got["embeddings"], expected.hidden_states[0], atol=ATOL, rtol=0)


def test_inferred_shapes_are_those_of_the_forward_pass() -> None:
    model = spec.load(SPEC, tla=TLA).eval()
    report = shapes.infer(model, ("B", 3, "H", "W"))
    assert report.output == shapes.Shape(["B", 10])
    # the positions fix the number of patches: the report says which image sizes fit
    (constraint,) = report.constraints
    assert constraint.address == "embeddings.position"
    assert "17" in str(constraint)
    images = torch.randn(2, 3, 32, 35)  # 35 // 8 = 4 patches across, as for 32
    compared = assert_inferred_shapes_are_real(model, report, {"B": 2, "H": 32, "W": 35}, images)
    assert compared > 30


def test_the_positions_refuse_another_number_of_patches() -> None:
    model = spec.load(SPEC, tla=TLA, device="meta")
    with pytest.raises(shapes.ShapeError, match="PositionEmbedding expects 17 positions"):
        shapes.infer(model, ("B", 3, 64, 64))
    with pytest.raises(spec.SpecError, match="expects 17 positions"):
        spec.load(SPEC, tla=TLA, inputs=[["B", 3, 48, 48]], device="meta")


def test_the_mapping_reads_vit_model_checkpoints_too() -> None:
    mapping = KeyMapping.read(MAPPING)
    # ViTModel writes its keys without the "vit." prefix, and has a pooler the classifier lacks
    assert mapping("embeddings.cls_token") == "embeddings.class_token.weight"
    assert mapping("encoder.layer.1.attention.attention.value.bias") == (
        "blocks.1.attention.self_attention.projections.value.bias"
    )
    assert (
        mapping("vit.encoder.layer.0.attention.output.dense.weight")
        == "blocks.0.attention.self_attention.output.weight"
    )
    assert mapping("vit.encoder.layer.0.output.dense.weight") == "blocks.0.mlp.fc2.weight"
    assert mapping("layernorm.bias") == "norm.bias"
    assert mapping("pooler.dense.weight") is None


def test_the_spec_round_trips_with_its_vision_layers() -> None:
    model = spec.load(SPEC, tla=TLA, device="meta")
    written = spec.dump(model)
    again = spec.loads(json.loads(json.dumps(written)), device="meta")
    assert repr(again) == repr(model)
    assert isinstance(again["embeddings.class_token"], fl.ClassToken)
    assert again["embeddings.position"].weight.shape == (1, 17, 32)


def test_dropout_adds_nodes_without_weights() -> None:
    plain = spec.load(SPEC, tla=TLA, device="meta")
    dropping = spec.load(SPEC, tla={**TLA, "dropout": 0.1}, device="meta")
    assert isinstance(dropping["blocks.1.mlp.dropout"], fl.Dropout)
    assert dropping["blocks.0.attention.self_attention.attention"].dropout == 0.1
    assert list(dropping.state_dict()) == list(plain.state_dict())


def test_class_token_and_positions_infer_their_sizes() -> None:
    embed = fl.Chain(fl.ClassToken(), fl.PositionEmbedding())
    shapes.materialize(embed, ("B", 16, 24))
    assert embed.ClassToken.weight.shape == (1, 1, 24)
    assert embed.PositionEmbedding.weight.shape == (1, 17, 24)
    assert embed(torch.zeros(2, 16, 24)).shape == (2, 17, 24)
