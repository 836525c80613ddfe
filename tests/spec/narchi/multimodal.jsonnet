// Two inputs, two outputs: a document classified from its tokens and its image, in narchi's format.
local vocabulary = std.extVar('vocabulary');

// Squeeze then expand with two kernel sizes side by side, concatenated along the channels.
local fire(id, squeeze, expand) = {
  _class: 'Group',
  _id: id,
  blocks: [
    { _class: 'Conv2d', _id: 'squeeze', output_feats: squeeze, kernel_size: 1 },
    { _class: 'ReLU', _id: 'squeeze_relu' },
    { _class: 'Conv2d', _id: 'expand1', output_feats: expand, kernel_size: 1 },
    { _class: 'Conv2d', _id: 'expand3', output_feats: expand, kernel_size: 3, padding: 1 },
    { _class: 'Concatenate', _id: 'concat', dim: 0 },
    { _class: 'ReLU', _id: 'relu' },
    // no stride given: torch strides by the kernel size (narchi's shapes assume 1)
    { _class: 'MaxPool2d', _id: 'pool', kernel_size: 2 },
  ],
  graph: [
    'squeeze -> squeeze_relu -> expand1 -> concat',
    'squeeze_relu -> expand3 -> concat',
    'concat -> relu -> pool',
  ],
  input: 'squeeze',
  output: 'pool',
};

{
  _id: 'document_classifier',
  inputs: [
    { _id: 'tokens', _shape: ['<<variable:L>>'] },
    { _id: 'image', _shape: [3, '<<variable:H>>', '<<variable:W>>'] },
  ],
  outputs: [
    { _id: 'category', _shape: ['<<auto>>'] },
    { _id: 'quality', _shape: [1] },
  ],
  blocks: [
    {
      _class: 'Sequential',
      _id: 'text',
      blocks: [
        { _class: 'Embedding', num_embeddings: vocabulary, output_feats: 32 },
        { _class: 'GRU', output_feats: 64, bidirectional: true },
        // (length, features) -> (features, 1, length), to average over the length
        { _class: 'Reshape', reshape_spec: [1, { '0': [1, '<<auto>>'] }] },
        { _class: 'AdaptiveAvgPool2d', output_feats: [1, 1] },
        { _class: 'Reshape', reshape_spec: 'flatten' },
      ],
    },
    {
      _class: 'Sequential',
      _id: 'vision',
      blocks: [
        fire('fire1', 8, 16),
        fire('fire2', 16, 32),
        { _class: 'AdaptiveAvgPool2d', output_feats: 1 },
        { _class: 'Reshape', reshape_spec: 'flatten' },
        { _class: 'Linear', output_feats: 64 },
        { _class: 'Tanh' },
      ],
    },
    { _class: 'Concatenate', _id: 'joint', dim: -1 },
    { _class: 'Dropout', _id: 'dropout', p: 0.1 },
    { _class: 'Linear', _id: 'category_fc', output_feats: 10 },
    { _class: 'Softmax', _id: 'category_prob', dim: -1 },
    { _class: 'Linear', _id: 'quality_fc', output_feats: 1 },
    { _class: 'Sigmoid', _id: 'quality_prob' },
  ],
  graph: [
    'tokens -> text -> joint',
    'image -> vision -> joint',
    'joint -> dropout -> category_fc -> category_prob -> category',
    'dropout -> quality_fc -> quality_prob -> quality',
  ],
}
