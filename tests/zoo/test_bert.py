"""examples/bert.jsonnet loads Hugging Face transformers' BERT checkpoints through
examples/bert.mapping.json and computes BertModel's last_hidden_state and pooler_output.

The reference models are built from a small config with random weights (nothing is downloaded),
their LayerNorms moved away from ones and zeros so that every tensor matters, and saved with
``save_pretrained``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes, spec
from fluxion.weights import KeyMapping
from tests.zoo.helpers import ATOL, EXAMPLES, assert_inferred_shapes_are_real

transformers = pytest.importorskip("transformers")

SPEC = EXAMPLES / "bert.jsonnet"
MAPPING = EXAMPLES / "bert.mapping.json"
LAYERS, WIDTH, HEADS, VOCAB, POSITIONS, INTERMEDIATE, TYPES = 2, 32, 4, 100, 64, 48, 3
TLA = {
    "depth": LAYERS,
    "width": WIDTH,
    "heads": HEADS,
    "vocab": VOCAB,
    "positions": POSITIONS,
    "intermediate": INTERMEDIATE,
    "token_types": TYPES,
}


@dataclass(frozen=True)
class Saved:
    """A reference model (eval mode) and the safetensors file its ``save_pretrained`` wrote."""

    model: Any
    file: Path


def config() -> Any:
    return transformers.BertConfig(
        num_hidden_layers=LAYERS,
        hidden_size=WIDTH,
        num_attention_heads=HEADS,
        vocab_size=VOCAB,
        max_position_embeddings=POSITIONS,
        intermediate_size=INTERMEDIATE,
        type_vocab_size=TYPES,
    )


def save(model: torch.nn.Module, folder: Path) -> Saved:
    model.eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    return Saved(model, folder / "model.safetensors")


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    return save(transformers.BertModel(config()), tmp_path_factory.mktemp("bert"))


def inputs(batch: int = 3, length: int = 17, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, length), generator=generator)
    return ids, torch.randint(0, TYPES, (batch, length), generator=generator)


def padding_mask(lengths: list[int], length: int, left: bool = False) -> torch.Tensor:
    """``attention_mask`` for sequences of these lengths padded to ``length``: 1 for tokens, 0 for padding."""
    positions = torch.arange(length).flip(0) if left else torch.arange(length)
    return (positions[None, :] < torch.tensor(lengths)[:, None]).long()


def assert_same_outputs(
    model: torch.nn.Module,
    reference: Any,
    ids: torch.Tensor,
    types: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> None:
    """Both models called by position, in BertModel's order: (input_ids, attention_mask, token_type_ids)."""
    given = (ids, mask, types) if types is not None else (ids, mask) if mask is not None else (ids,)
    with torch.no_grad():
        expected = reference(*given)
        hidden, pooled = model.eval()(*given)
    torch.testing.assert_close(hidden, expected.last_hidden_state, atol=ATOL, rtol=0)
    torch.testing.assert_close(pooled, expected.pooler_output, atol=ATOL, rtol=0)


def test_the_mapping_renames_the_attention_and_drops_what_is_not_the_encoder() -> None:
    mapping = KeyMapping.read(MAPPING)

    layer = "encoder.layer.1.attention"
    assert mapping(f"{layer}.self.query.weight") == f"{layer}.self.projections.query.weight"
    assert mapping(f"{layer}.output.dense.bias") == f"{layer}.self.output.bias"
    assert mapping(f"{layer}.output.LayerNorm.weight") == f"{layer}.LayerNorm.weight"
    assert mapping("encoder.layer.1.output.LayerNorm.bias") == "encoder.layer.1.output.LayerNorm.bias"
    assert mapping("encoder.layer.1.intermediate.dense.weight") == "encoder.layer.1.intermediate.dense.weight"
    assert mapping("embeddings.position_ids") is None
    # the layout of the original checkpoints: BertForPreTraining's, with gamma and beta
    assert mapping("bert.embeddings.LayerNorm.gamma") == "embeddings.LayerNorm.weight"
    assert mapping("bert.pooler.dense.weight") == "pooler.dense.weight"
    assert mapping("cls.predictions.bias") is None


def test_the_spec_loads_the_checkpoint_and_gives_the_reference_outputs(bert: Saved) -> None:
    model = spec.load(SPEC, tla=TLA, weights=bert.file, mapping=MAPPING)

    assert sum(p.numel() for p in model.parameters()) == bert.model.num_parameters()
    assert_same_outputs(model, bert.model, *inputs())
    assert_same_outputs(model, bert.model, inputs()[0])  # token type 0 when left out
    assert_same_outputs(model, bert.model, *inputs(batch=1, length=POSITIONS, seed=2))


@pytest.mark.parametrize("left", [False, True], ids=["right-padded", "left-padded"])
def test_a_padded_batch_with_its_attention_mask_gives_the_reference_outputs(bert: Saved, left: bool) -> None:
    model = spec.load(SPEC, tla=TLA, weights=bert.file, mapping=MAPPING)
    ids, types = inputs(batch=3, length=11)

    mask = padding_mask([11, 6, 1], 11, left=left)
    assert_same_outputs(model, bert.model, ids, types, mask)
    assert_same_outputs(model, bert.model, ids, mask=mask)


def test_the_tokens_of_a_right_padded_sequence_get_what_they_get_alone(bert: Saved) -> None:
    model = spec.load(SPEC, tla=TLA, weights=bert.file, mapping=MAPPING).eval()
    ids, types = inputs(batch=2, length=9)
    with torch.no_grad():
        padded, _ = model(ids, padding_mask([9, 4], 9), types)
        alone, _ = model(ids[1:, :4], None, types[1:, :4])
    torch.testing.assert_close(padded[1:, :4], alone, atol=ATOL, rtol=0)


def test_a_tree_built_on_meta_loads_and_gives_the_same_outputs(bert: Saved) -> None:
    empty = spec.load(SPEC, tla=TLA, device="meta")
    assert all(tensor.is_meta for tensor in empty.state_dict().values())

    model = spec.load(SPEC, tla=TLA, device="meta", weights=bert.file, mapping=MAPPING)

    assert not any(tensor.is_meta for tensor in model.state_dict().values())
    assert_same_outputs(model, bert.model, *inputs())


def test_a_pretraining_checkpoint_with_gamma_and_beta_loads_its_encoder(tmp_path: Path) -> None:
    torch.manual_seed(1)
    saved = save(transformers.BertForPreTraining(config()), tmp_path)
    from safetensors.torch import load_file

    state = {
        key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): value
        for key, value in load_file(saved.file).items()
    }
    assert "bert.embeddings.LayerNorm.gamma" in state
    assert any(key.startswith("cls.") for key in state)

    model = spec.load(SPEC, tla=TLA, device="meta", weights=state, mapping=MAPPING)

    assert_same_outputs(model, saved.model.bert, *inputs())


def test_without_the_pooler_the_model_returns_the_last_hidden_state(tmp_path: Path) -> None:
    torch.manual_seed(2)
    saved = save(transformers.BertModel(config(), add_pooling_layer=False), tmp_path)

    model = spec.load(SPEC, tla={**TLA, "pooler": False}, weights=saved.file, mapping=MAPPING).eval()

    ids, types = inputs()
    with torch.no_grad():
        expected = saved.model(input_ids=ids, token_type_ids=types).last_hidden_state
        torch.testing.assert_close(model(ids, None, types), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("given", [1, 2, 3], ids=["ids", "ids-and-mask", "ids-mask-and-token-types"])
def test_inferred_shapes_with_symbolic_batch_and_sequence_are_those_of_the_forward(given: int) -> None:
    model = spec.load(SPEC, tla=TLA)
    report = shapes.infer(model, *[("B", "T")] * given)

    assert report.output == (shapes.Shape(["B", "T", WIDTH]), shapes.Shape(["B", WIDTH]))
    assert report["encoder.layer.0.intermediate"].output == shapes.Shape(["B", "T", INTERMEDIATE])
    assert report.constraints == ()
    if given >= 2:
        assert report["encoder.layer.1.attention.mask"].output == shapes.Shape(["B", 1, 1, "T"])
    ids, types = inputs(batch=2, length=7)
    real = (ids, padding_mask([7, 3], 7), types)[:given]
    compared = assert_inferred_shapes_are_real(model, report, {"B": 2, "T": 7}, *real)
    assert compared == sum(1 for _ in model.named_modules())


def test_the_top_level_arguments_set_the_sizes() -> None:
    model = spec.load(
        SPEC,
        tla={"depth": 3, "width": 24, "heads": 3, "vocab": 40, "positions": 8, "token_types": 4, "eps": 1e-6},
        device="meta",
    )

    attention = model["encoder.layer.2.attention.self"]
    assert isinstance(attention, fl.SelfAttention)
    assert (attention.embed_dim, attention.num_heads) == (24, 3)
    assert model["encoder.layer.2.intermediate.dense"].out_features == 4 * 24
    assert tuple(model["embeddings.token_type_embeddings"].weight.shape) == (4, 24)
    assert tuple(model["embeddings.position_embeddings"].weight.shape) == (8, 24)
    assert model["encoder.layer.0.output.LayerNorm"].eps == 1e-6
