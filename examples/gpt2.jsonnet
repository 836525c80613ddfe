// GPT-2 (Radford et al., 2019) with Hugging Face's layout (GPT2LMHeadModel): token and learned
// position embeddings, pre-norm blocks of causal self-attention and a tanh-GeLU MLP, a final
// LayerNorm and a language-model head tied to the token embedding. Every block is a Graph, so
// the residual adds are explicit and the addresses are Hugging Face's own (transformer.h.3.ln_1,
// transformer.h.3.mlp.c_fc), except the attention, whose fused c_attn is three Linears here
// (attn.projections.query/key/value, attn.output): gpt2.mapping.json splits and transposes it.
//
//   fluxion.spec.load("examples/gpt2.jsonnet", tla={"depth": 12},
//                     weights="model.safetensors", mapping="examples/gpt2.mapping.json")
//
// The defaults are GPT-2 small (124M). No attention mask besides the causal one: padded batches
// need their padding at the end (positions start at 0 in every sequence).
function(depth=12, width=768, heads=12, vocab=50257, positions=1024, dropout=0.1, eps=1e-5)
  local block(index) = {
    type: 'Graph',
    id: std.toString(index),
    nodes: [
      { type: 'LayerNorm', id: 'ln_1', eps: eps },
      { type: 'MultiHeadAttention', id: 'attn', num_heads: heads, is_causal: true, dropout: dropout },
      { type: 'Dropout', id: 'attn_dropout', p: dropout },  // Hugging Face's attn.resid_dropout
      { type: 'Add', id: 'attn_residual' },
      { type: 'LayerNorm', id: 'ln_2', eps: eps },
      {
        type: 'Chain',
        id: 'mlp',
        children: [
          { type: 'Linear', id: 'c_fc', out_features: 4 * width },
          { type: 'GeLU', id: 'act', approximate: 'tanh' },
          { type: 'Linear', id: 'c_proj', out_features: width },
          { type: 'Dropout', id: 'dropout', p: dropout },
        ],
      },
      { type: 'Add', id: 'mlp_residual' },
    ],
    edges: [
      'input -> ln_1 -> attn -> attn_dropout -> attn_residual',
      'input -> attn_residual -> ln_2 -> mlp -> mlp_residual',
      'attn_residual -> mlp_residual',
    ],
  };

  {
    type: 'Chain',
    inputs: { input_ids: ['B', 'T'] },
    children: [
      {
        type: 'Chain',
        id: 'transformer',
        children: [
          { type: 'Embedding', id: 'wte', num_embeddings: vocab, embedding_dim: width },
          { type: 'SequencePositionEmbedding', id: 'wpe', num_positions: positions, embedding_dim: width },
          { type: 'Dropout', id: 'drop', p: dropout },
          { type: 'Chain', id: 'h', children: [block(i) for i in std.range(0, depth - 1)] },
          { type: 'LayerNorm', id: 'ln_f', eps: eps },
        ],
      },
      {
        type: 'Linear',
        id: 'lm_head',
        out_features: vocab,
        bias: false,
        share: { weight: 'transformer.wte.weight' },
      },
    ],
  }
