// BERT encoder (Devlin et al., 2018) with Hugging Face's layout (BertModel): word, token-type and
// learned position embeddings with a LayerNorm, post-norm blocks of self-attention and a GeLU MLP,
// and the pooler (dense + tanh on the first token). The model returns (last_hidden_state,
// pooler_output), or only last_hidden_state with pooler=false.
//
// Called as BertModel is, by position: model(input_ids), model(input_ids, attention_mask) or
// model(input_ids, attention_mask, token_type_ids), with None for any but input_ids. Token type 0
// where none are given; without a mask every token attends to every token (OptionalInputs
// passes None on for what is left out).
// The attention mask (1 for tokens, 0 for padding) becomes the boolean mask attention takes
// (PaddingMask) once, and is stored in the context; each block's self-attention reads it there
// (UseContext), so the blocks stay one-input Graphs chained one after the other.
//
// Addresses are Hugging Face's own (embeddings.word_embeddings, encoder.layer.3.intermediate.dense,
// encoder.layer.3.output.LayerNorm, pooler.dense), except in the attention: its projections are
// attention.self.projections.query/key/value and attention.self.output (Hugging Face's
// attention.output.dense), and its LayerNorm is attention.LayerNorm; bert.mapping.json renames them.
//
//   fluxion.spec.load("examples/bert.jsonnet", tla={"depth": 12},
//                     weights="model.safetensors", mapping="examples/bert.mapping.json")
//
// The defaults are BERT-base (uncased vocabulary).
function(
  depth=12,
  width=768,
  heads=12,
  vocab=30522,
  positions=512,
  token_types=2,
  intermediate=null,
  dropout=0.1,
  eps=1e-12,
  pooler=true,
)
  local inner = if intermediate == null then 4 * width else intermediate;

  local layer(index) = {
    type: 'Graph',
    id: std.toString(index),
    nodes: [
      {
        type: 'Graph',
        id: 'attention',
        nodes: [
          { type: 'UseContext', id: 'mask', context: 'bert', key: 'attention_mask' },
          { type: 'SelfAttention', id: 'self', num_heads: heads, dropout: dropout },
          { type: 'Dropout', id: 'dropout', p: dropout },
          { type: 'Add', id: 'residual' },
          { type: 'LayerNorm', id: 'LayerNorm', eps: eps },
        ],
        edges: ['input -> self -> dropout -> residual -> LayerNorm', 'mask -> self', 'input -> residual'],
      },
      {
        type: 'Chain',
        id: 'intermediate',
        children: [
          { type: 'Linear', id: 'dense', out_features: inner },
          { type: 'GeLU', id: 'intermediate_act_fn' },
        ],
      },
      {
        type: 'Graph',
        id: 'output',
        inputs: ['hidden_states', 'input_tensor'],
        nodes: [
          { type: 'Linear', id: 'dense', out_features: width },
          { type: 'Dropout', id: 'dropout', p: dropout },
          { type: 'Add', id: 'residual' },
          { type: 'LayerNorm', id: 'LayerNorm', eps: eps },
        ],
        edges: ['hidden_states -> dense -> dropout -> residual -> LayerNorm', 'input_tensor -> residual'],
      },
    ],
    // output gets (intermediate, attention): the MLP's input, then the residual
    edges: ['input -> attention -> intermediate -> output', 'attention -> output'],
  };

  {
    type: 'Chain',
    inputs: { input_ids: ['B', 'T'] },  // one: jsonnet sorts an object's fields, and a Chain takes its inputs by position
    children: [
      { type: 'OptionalInputs', id: 'inputs', count: 3 },
      {
        type: 'Graph',
        id: 'attention_mask',
        inputs: ['input_ids', 'attention_mask', 'token_type_ids'],
        nodes: [
          { type: 'PaddingMask', id: 'extend' },
          { type: 'SetContext', id: 'store', context: 'bert', key: 'attention_mask' },
        ],
        edges: ['attention_mask -> extend -> store'],
        outputs: ['input_ids', 'token_type_ids'],
      },
      {
        type: 'Graph',
        id: 'embeddings',
        inputs: ['input_ids', 'token_type_ids'],
        nodes: [
          { type: 'Embedding', id: 'word_embeddings', num_embeddings: vocab, embedding_dim: width },
          { type: 'TokenTypeEmbedding', id: 'token_type_embeddings', num_types: token_types, embedding_dim: width },
          { type: 'SequencePositionEmbedding', id: 'position_embeddings', num_positions: positions, embedding_dim: width },
          { type: 'LayerNorm', id: 'LayerNorm', eps: eps },
          { type: 'Dropout', id: 'dropout', p: dropout },
        ],
        edges: [
          'input_ids -> word_embeddings -> token_type_embeddings -> position_embeddings -> LayerNorm -> dropout',
          'token_type_ids -> token_type_embeddings',
        ],
      },
      {
        type: 'Chain',
        id: 'encoder',
        children: [{ type: 'Chain', id: 'layer', children: [layer(i) for i in std.range(0, depth - 1)] }],
      },
    ] + (if pooler then [{
           type: 'Graph',
           id: 'pooler',
           inputs: ['hidden_states'],
           nodes: [
             { type: 'Slicing', id: 'first_token', dim: -2, start: 0, end: 1 },
             { type: 'Squeeze', id: 'squeeze', dim: -2 },
             { type: 'Linear', id: 'dense', out_features: width },
             { type: 'Tanh', id: 'activation' },
           ],
           edges: ['hidden_states -> first_token -> squeeze -> dense -> activation'],
           outputs: ['hidden_states', 'activation'],
         }] else []),
  }
