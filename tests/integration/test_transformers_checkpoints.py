"""Checkpoints written by Hugging Face ``transformers`` load into fluxion trees built by hand.

The Hugging Face models are built from tiny configs with random weights (nothing is downloaded)
and saved with ``save_pretrained``; the fluxion trees of the same architecture then load those
files through a key mapping and must compute the same ``last_hidden_state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import fluxion.layers as fl
from fluxion.weights import KeyMapping, Rule, WeightsError, convert, load

transformers = pytest.importorskip("transformers")

ATOL = 1e-5

# -- GPT-2 ----------------------------------------------------------------------------------------

GPT2_LAYERS, GPT2_DIM, GPT2_HEADS, GPT2_VOCAB, GPT2_POSITIONS = 2, 32, 4, 100, 64

GPT2_MAPPING = KeyMapping(
    [
        (r"\.attn\.(masked_)?bias$", None),
        (r"^wte\.", "embeddings.token."),
        (r"^wpe\.", "embeddings.position.Embedding."),
        (r"^h\.(\d+)\.", r"blocks.block_\1."),
        Rule(r"\.(c_attn|c_proj|c_fc)\.weight$", r".\1.weight", transpose=True),
        Rule(r"\.attn\.c_attn\.", tuple(f".attn.projections.{name}." for name in ("query", "key", "value"))),
        (r"\.attn\.c_proj\.", ".attn.output."),
        (r"\.ln_1\.", ".Residual_1.LayerNorm."),
        (r"\.attn\.", ".Residual_1.MultiHeadAttention."),
        (r"\.ln_2\.", ".Residual_2.LayerNorm."),
        (r"\.mlp\.c_fc\.", ".Residual_2.Linear_1."),
        (r"\.mlp\.c_proj\.", ".Residual_2.Linear_2."),
    ]
)


@dataclass(frozen=True)
class SavedModel:
    """A Hugging Face model in eval mode and the folder its ``save_pretrained`` wrote."""

    model: torch.nn.Module
    folder: Path

    @property
    def weights_file(self) -> Path:
        return self.folder / "model.safetensors"


def position_ids(input_ids: torch.Tensor) -> torch.Tensor:
    return torch.arange(input_ids.shape[-1], device=input_ids.device).expand_as(input_ids)


def gpt2_block() -> fl.Chain:
    return fl.Chain(
        fl.Residual(fl.LayerNorm(GPT2_DIM), fl.MultiHeadAttention(GPT2_DIM, GPT2_HEADS, is_causal=True)),
        fl.Residual(
            fl.LayerNorm(GPT2_DIM),
            fl.Linear(GPT2_DIM, 4 * GPT2_DIM),
            fl.GeLU(approximate="tanh"),
            fl.Linear(4 * GPT2_DIM, GPT2_DIM),
        ),
    )


def gpt2_tree() -> fl.Chain:
    return fl.Chain(
        embeddings=fl.Sum(
            token=fl.Embedding(GPT2_VOCAB, GPT2_DIM),
            position=fl.Chain(fl.Lambda(position_ids), fl.Embedding(GPT2_POSITIONS, GPT2_DIM)),
        ),
        blocks=fl.Chain(**{f"block_{index}": gpt2_block() for index in range(GPT2_LAYERS)}),
        ln_f=fl.LayerNorm(GPT2_DIM),
    )


def perturb(model: torch.nn.Module, seed: int) -> None:
    """Move every floating-point tensor away from its initial value (LayerNorm ones and zeros,
    BatchNorm running statistics), so that a tensor left unloaded changes the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            noise = 0.1 * torch.randn(tensor.shape, generator=generator)
            tensor.add_(noise.abs() if name.endswith("running_var") else noise)


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory: pytest.TempPathFactory) -> SavedModel:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=GPT2_LAYERS,
        n_embd=GPT2_DIM,
        n_head=GPT2_HEADS,
        vocab_size=GPT2_VOCAB,
        n_positions=GPT2_POSITIONS,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPT2Model(config).eval()
    perturb(model, seed=1)
    folder = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(folder, safe_serialization=True)
    return SavedModel(model, folder)


def token_ids(seed: int = 2) -> torch.Tensor:
    return torch.randint(0, GPT2_VOCAB, (2, 12), generator=torch.Generator().manual_seed(seed))


def assert_same_gpt2_outputs(tree: fl.Chain, gpt2: SavedModel) -> None:
    ids = token_ids()
    with torch.no_grad():
        expected = gpt2.model(input_ids=ids).last_hidden_state
        got = tree.eval()(ids)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_gpt2_mapping_splits_fused_attention_transposes_conv1d_and_drops_mask_buffers() -> None:
    targets = GPT2_MAPPING.targets("h.1.attn.c_attn.weight")
    attention = "blocks.block_1.Residual_1.MultiHeadAttention"
    assert [target.key for target in targets] == [
        f"{attention}.projections.{name}.weight" for name in ("query", "key", "value")
    ]
    assert [target.shape((GPT2_DIM, 3 * GPT2_DIM)) for target in targets] == [(GPT2_DIM, GPT2_DIM)] * 3
    (fc_weight,) = GPT2_MAPPING.targets("h.0.mlp.c_fc.weight")
    assert fc_weight.key == "blocks.block_0.Residual_2.Linear_1.weight"
    assert fc_weight.shape((GPT2_DIM, 4 * GPT2_DIM)) == (4 * GPT2_DIM, GPT2_DIM)
    assert GPT2_MAPPING("h.0.attn.c_proj.bias") == "blocks.block_0.Residual_1.MultiHeadAttention.output.bias"
    assert GPT2_MAPPING("ln_f.weight") == "ln_f.weight"
    assert GPT2_MAPPING("h.0.attn.bias") is None
    assert GPT2_MAPPING("h.0.attn.masked_bias") is None


def test_gpt2_checkpoint_loads_through_a_json_mapping(gpt2: SavedModel, tmp_path: Path) -> None:
    mapping_file = tmp_path / "gpt2_mapping.json"
    GPT2_MAPPING.write(mapping_file)
    assert KeyMapping.read(mapping_file).to_json() == GPT2_MAPPING.to_json()

    tree = gpt2_tree()
    result = load(tree, gpt2.folder, mapping=mapping_file)

    assert sorted(result.loaded) == sorted(tree.state_dict())
    assert result.missing == result.unexpected == ()
    assert_same_gpt2_outputs(tree, gpt2)


def test_gpt2_checkpoint_loads_into_a_tree_built_on_the_meta_device(gpt2: SavedModel, tmp_path: Path) -> None:
    mapping_file = tmp_path / "gpt2_mapping.json"
    GPT2_MAPPING.write(mapping_file)
    with torch.device("meta"):
        tree = gpt2_tree()

    load(tree, gpt2.weights_file, mapping=KeyMapping.read(mapping_file))

    assert not any(tensor.is_meta for tensor in tree.state_dict().values())
    assert_same_gpt2_outputs(tree, gpt2)


def test_gpt2_checkpoint_without_mapping_is_refused_and_leaves_the_tree_unchanged(gpt2: SavedModel) -> None:
    tree = gpt2_tree()
    snapshot = {key: value.clone() for key, value in tree.state_dict().items()}

    with pytest.raises(WeightsError) as raised:
        load(tree, gpt2.folder)

    message = str(raised.value)
    assert "missing" in message
    assert "unexpected" in message
    shared = {"ln_f.weight", "ln_f.bias"}
    assert set(raised.value.missing) == set(snapshot) - shared
    assert set(raised.value.unexpected) == set(gpt2.model.state_dict()) - shared
    state = tree.state_dict()
    assert state.keys() == snapshot.keys()
    assert all(torch.equal(state[key], value) for key, value in snapshot.items())


# -- ResNet (basic blocks) -------------------------------------------------------------------------

RESNET_CHANNELS, RESNET_EMBEDDING, RESNET_SIZES = 3, 8, (8, 16)


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> fl.Chain:
    return fl.Chain(
        fl.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        fl.BatchNorm2d(out_channels),
    )


def basic_block(in_channels: int, out_channels: int, stride: int) -> fl.Chain:
    layer = [conv_bn(in_channels, out_channels, 3, stride), fl.ReLU(), conv_bn(out_channels, out_channels, 3)]
    if in_channels == out_channels and stride == 1:
        return fl.Chain(fl.Residual(*layer), fl.ReLU())
    shortcut = conv_bn(in_channels, out_channels, 1, stride)
    return fl.Chain(fl.Sum(fl.Chain(*layer), shortcut), fl.ReLU())


def resnet_tree() -> fl.Chain:
    first, second = RESNET_SIZES
    return fl.Chain(
        embedder=fl.Chain(
            conv_bn(RESNET_CHANNELS, RESNET_EMBEDDING, 7, stride=2),
            fl.ReLU(),
            fl.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ),
        stages=fl.Chain(basic_block(RESNET_EMBEDDING, first, stride=1), basic_block(first, second, stride=2)),
    )


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> SavedModel:
    torch.manual_seed(0)
    config = transformers.ResNetConfig(
        num_channels=RESNET_CHANNELS,
        embedding_size=RESNET_EMBEDDING,
        hidden_sizes=list(RESNET_SIZES),
        depths=[1, 1],
        layer_type="basic",
        hidden_act="relu",
        downsample_in_first_stage=False,
    )
    model = transformers.ResNetModel(config).eval()
    perturb(model, seed=3)
    folder = tmp_path_factory.mktemp("resnet")
    model.save_pretrained(folder, safe_serialization=True)
    return SavedModel(model, folder)


def pixels(seed: int = 4) -> torch.Tensor:
    return torch.randn(2, RESNET_CHANNELS, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_resnet_mapping_from_convert_replays_on_the_saved_checkpoint(resnet: SavedModel, tmp_path: Path) -> None:
    mapping_file = tmp_path / "resnet_mapping.json"
    convert(resnet.model, resnet_tree(), pixels(seed=5)).write(mapping_file)

    tree = resnet_tree()
    result = load(tree, resnet.weights_file, mapping=mapping_file)

    assert sorted(result.loaded) == sorted(tree.state_dict())
    hf_stem = resnet.model.embedder.embedder.normalization
    tree_stem = tree.embedder.Chain.BatchNorm2d
    assert torch.equal(tree_stem.running_mean, hf_stem.running_mean)
    assert torch.equal(tree_stem.running_var, hf_stem.running_var)
    with torch.no_grad():
        expected = resnet.model(pixels()).last_hidden_state
        got = tree.eval()(pixels())
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
