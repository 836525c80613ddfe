"""TorchArc files whose modules are torch's own (attention, transformers, recurrent layers) load with
symbolic input shapes: torch's rules (fluxion.shapes.torch_rules) size every lazy layer after them."""

from pathlib import Path

import pytest
import torch

from fluxion import dims, shapes, spec
from fluxion.cli import main
from fluxion.errors import SpecError

TRANSLATOR = """
modules:
  src_embed:
    Embedding: {num_embeddings: 50, embedding_dim: 16}
  tgt_embed:
    LazyLinear: {out_features: 16}
  attention:
    MultiheadAttention: {embed_dim: 16, num_heads: 4, batch_first: true}
  attended:
    Get: {key: 0}
  transformer:
    Transformer:
      d_model: 16
      nhead: 4
      num_encoder_layers: 1
      num_decoder_layers: 1
      dim_feedforward: 32
      dropout: 0.0
      batch_first: true
  rnn:
    LSTM: {input_size: 16, hidden_size: 8, batch_first: true}
  sequence:
    Get: {key: 0}
  gelu:
    GELU:
  head:
    LazyLinear: {out_features: 3}
graph:
  input: [tokens, target]
  modules:
    src_embed: [tokens]
    attention: {query: src_embed, key: src_embed, value: src_embed}
    attended: [attention]
    tgt_embed: [target]
    transformer: {src: attended, tgt: tgt_embed}
    rnn: [transformer]
    sequence: [rnn]
    gelu: [sequence]
    head: [gelu]
  output: head
"""


@pytest.fixture
def translator(tmp_path: Path) -> Path:
    path = tmp_path / "translator.yaml"
    path.write_text(TRANSLATOR)
    return path


def test_attention_and_a_transformer_load_with_symbolic_shapes_and_run(translator: Path) -> None:
    inputs = {"tokens": ["B", "S"], "target": ["B", "T", 5]}
    model = spec.load(translator, inputs=inputs)
    report = shapes.infer(model, ("B", "S"), ("B", "T", 5))
    assert report.output == dims.Shape(["B", "T", 3])
    assert report["attention"].output == (dims.Shape(["B", "S", 16]), dims.Shape(["B", "S", "S"]))
    assert report["transformer"].output == dims.Shape(["B", "T", 16])
    assert report["transformer.encoder.layers.0"].output == dims.Shape(["B", "S", 16])
    assert report["rnn"].output == (dims.Shape(["B", "T", 8]), (dims.Shape([1, "B", 8]), dims.Shape([1, "B", 8])))
    assert model.tgt_embed.in_features == 5
    assert model.head.in_features == 8
    output = model(torch.randint(0, 50, (2, 7)), torch.randn(2, 4, 5))
    assert output.shape == (2, 4, 3)


def test_a_mismatch_at_a_torch_module_is_found_at_load_naming_it(translator: Path) -> None:
    wrong = translator.read_text().replace("input_size: 16", "input_size: 12")
    translator.write_text(wrong)
    with pytest.raises(
        SpecError, match=r"modules\.rnn: shapes do not fit: LSTM at 'rnn' got \(B, T, 16\): LSTM expects"
    ):
        spec.load(translator, inputs={"tokens": ["B", "S"], "target": ["B", "T", 5]})


def test_the_command_line_shows_the_symbolic_shapes(translator: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(translator), "--input", "tokens=B,S", "--input", "target=B,T,5"]) == 0
    assert "(B, T, 3)" in capsys.readouterr().out
