"""examples/gpt2.jsonnet loads Hugging Face transformers' GPT-2 checkpoints through
examples/gpt2.mapping.json and computes the logits GPT2LMHeadModel computes.

The reference model is built from a small config with random weights (nothing is downloaded),
its LayerNorms moved away from ones and zeros so that every tensor matters, and saved with
``save_pretrained`` (which leaves out ``lm_head.weight``, tied to the token embedding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import fluxion.layers as fl
from fluxion import shapes, spec
from fluxion.weights import KeyMapping
from tests.zoo.helpers import ATOL, EXAMPLES, assert_inferred_shapes_are_real

transformers = pytest.importorskip("transformers")

SPEC = EXAMPLES / "gpt2.jsonnet"
MAPPING = EXAMPLES / "gpt2.mapping.json"
LAYERS, WIDTH, HEADS, VOCAB, POSITIONS = 2, 32, 4, 100, 64
TLA = {"depth": LAYERS, "width": WIDTH, "heads": HEADS, "vocab": VOCAB, "positions": POSITIONS}


@dataclass(frozen=True)
class Saved:
    """The reference model (eval mode) and the safetensors file its ``save_pretrained`` wrote."""

    model: torch.nn.Module
    file: Path


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=LAYERS,
        n_embd=WIDTH,
        n_head=HEADS,
        vocab_size=VOCAB,
        n_positions=POSITIONS,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
    folder = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(folder)
    return Saved(model, folder / "model.safetensors")


def token_ids(batch: int = 3, length: int = 17, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def assert_same_logits(model: torch.nn.Module, reference: torch.nn.Module, ids: torch.Tensor) -> None:
    with torch.no_grad():
        expected = reference(ids, use_cache=False).logits
        got = model.eval()(ids)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_the_checkpoint_leaves_out_the_tied_head_and_the_mapping_splits_and_transposes(gpt2: Saved) -> None:
    mapping = KeyMapping.read(MAPPING)
    from safetensors import safe_open

    with safe_open(gpt2.file, "pt") as checkpoint:
        keys = set(checkpoint.keys())
    assert "lm_head.weight" not in keys
    assert "transformer.h.1.attn.c_attn.weight" in keys

    targets = mapping.targets("transformer.h.1.attn.c_attn.weight")
    assert [target.key for target in targets] == [
        f"transformer.h.1.attn.projections.{name}.weight" for name in ("query", "key", "value")
    ]
    assert [target.shape((WIDTH, 3 * WIDTH)) for target in targets] == [(WIDTH, WIDTH)] * 3
    (fc,) = mapping.targets("transformer.h.0.mlp.c_fc.weight")
    assert (fc.key, fc.shape((WIDTH, 4 * WIDTH))) == ("transformer.h.0.mlp.c_fc.weight", (4 * WIDTH, WIDTH))
    assert mapping("transformer.h.0.attn.c_proj.bias") == "transformer.h.0.attn.output.bias"
    assert mapping("transformer.ln_f.weight") == "transformer.ln_f.weight"
    # the layout of the original checkpoints (GPT2Model's keys, causal-mask buffers saved)
    assert mapping("wte.weight") == "transformer.wte.weight"
    assert mapping("h.0.attn.bias") is None
    assert mapping("h.0.attn.masked_bias") is None
    assert mapping("lm_head.weight") == "lm_head.weight"


def test_the_spec_loads_the_checkpoint_and_gives_the_reference_logits(gpt2: Saved) -> None:
    model = spec.load(SPEC, tla=TLA, weights=gpt2.file, mapping=MAPPING)

    assert model.lm_head.weight is model.transformer.wte.weight  # tied, and loaded from wte
    assert sum(p.numel() for p in model.parameters()) == gpt2.model.num_parameters()
    assert_same_logits(model, gpt2.model, token_ids())
    assert_same_logits(model, gpt2.model, token_ids(batch=1, length=POSITIONS, seed=2))  # every position


def test_a_tree_built_on_meta_loads_without_a_second_copy_and_gives_the_same_logits(gpt2: Saved) -> None:
    empty = spec.load(SPEC, tla=TLA, device="meta")
    assert all(tensor.is_meta for tensor in empty.state_dict().values())

    model = spec.load(SPEC, tla=TLA, device="meta", weights=gpt2.file, mapping=MAPPING)

    assert not any(tensor.is_meta for tensor in model.state_dict().values())
    assert model.lm_head.weight is model.transformer.wte.weight
    assert_same_logits(model, gpt2.model, token_ids())


def test_the_layout_of_the_original_checkpoints_loads_too(gpt2: Saved) -> None:
    """GPT2Model's keys (no ``transformer.`` prefix) and the causal-mask buffers older versions saved."""
    state = {key.removeprefix("transformer."): value for key, value in gpt2.model.state_dict().items()}
    del state["lm_head.weight"]
    for layer in range(LAYERS):
        state[f"h.{layer}.attn.bias"] = torch.tril(torch.ones(1, 1, POSITIONS, POSITIONS, dtype=torch.bool))
        state[f"h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)

    model = spec.load(SPEC, tla=TLA, device="meta", weights=state, mapping=MAPPING)

    assert_same_logits(model, gpt2.model, token_ids())


def test_inferred_shapes_with_symbolic_batch_and_sequence_are_those_of_the_forward() -> None:
    model = spec.load(SPEC, tla=TLA)
    report = shapes.infer(model, ("B", "T"))

    assert report.output == shapes.Shape(["B", "T", VOCAB])
    assert report["transformer.h.1.attn.attention"].inputs[0] == shapes.Shape(["B", "T", WIDTH])
    assert report.constraints == ()
    compared = assert_inferred_shapes_are_real(model, report, {"B": 2, "T": 7}, token_ids(batch=2, length=7))
    assert compared == sum(1 for _ in model.named_modules())


def test_the_top_level_arguments_set_depth_width_heads_vocabulary_and_positions() -> None:
    model = spec.load(SPEC, tla={"depth": 3, "width": 48, "heads": 6, "vocab": 50, "positions": 16}, device="meta")

    assert list(model.transformer.h.named_children())[-1][0] == "2"
    attention = model["transformer.h.2.attn"]
    assert isinstance(attention, fl.MultiHeadAttention)
    assert (attention.embed_dim, attention.num_heads) == (48, 6)
    assert tuple(model.transformer.wte.weight.shape) == (50, 48)
    assert tuple(model.transformer.wpe.weight.shape) == (16, 48)
    assert model["transformer.h.0.mlp.c_fc"].out_features == 4 * 48


def test_a_sequence_longer_than_the_positions_is_refused() -> None:
    with pytest.raises(spec.SpecError, match="has 64 positions, got a sequence of 65"):
        spec.load(SPEC, tla=TLA, inputs=[["B", POSITIONS + 1]], device="meta")
    model = spec.load(SPEC, tla=TLA)
    with pytest.raises(Exception, match="has 64 positions, got a sequence of 65"):
        model(token_ids(batch=1, length=POSITIONS + 1))
