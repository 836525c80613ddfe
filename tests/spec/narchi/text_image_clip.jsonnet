// A post rated from its text, its picture and a short clip, in narchi's format: every pool narchi
// knows (1d, 2d, 3d, adaptive) and log-probabilities as outputs.
local vocabulary = std.extVar('vocabulary');

{
  _id: 'post_rater',
  _description: 'Rates a post from its tokens, image and clip',
  inputs: [
    { _id: 'tokens', _shape: ['<<variable:L>>'] },
    { _id: 'image', _shape: [3, '<<variable:H>>', '<<variable:W>>'] },
    { _id: 'clip', _shape: [3, '<<variable:F>>', 16, 16] },
  ],
  outputs: [
    { _id: 'topic', _shape: [5] },
    { _id: 'quality', _shape: [1] },
  ],
  blocks: [
    {
      _class: 'Sequential',
      _id: 'text',
      blocks: [
        { _class: 'Embedding', _id: 'embed', num_embeddings: vocabulary, output_feats: 16 },
        // (length, features) -> (features, length): convolutions slide along the length
        { _class: 'Reshape', _id: 'channels_first', reshape_spec: [1, 0] },
        { _class: 'Conv1d', _id: 'conv1', output_feats: 24, kernel_size: 3, padding: 1 },
        { _class: 'ReLU', _id: 'relu1' },
        { _class: 'MaxPool1d', _id: 'pool1', kernel_size: 2 },
        { _class: 'Conv1d', _id: 'conv2', output_feats: 32, kernel_size: 3, padding: 1 },
        { _class: 'AvgPool1d', _id: 'smooth', kernel_size: 3, stride: 1, padding: 1 },
        { _class: 'AdaptiveMaxPool1d', _id: 'strongest', output_feats: 1 },
        { _class: 'Reshape', _id: 'flat', reshape_spec: 'flatten' },
      ],
    },
    {
      _class: 'Sequential',
      _id: 'picture',
      blocks: [
        { _class: 'Conv2d', _id: 'conv', output_feats: 8, kernel_size: 3, padding: 1 },
        { _class: 'ReLU', _id: 'relu' },
        { _class: 'MaxPool2d', _id: 'pool', kernel_size: 2 },
        { _class: 'AdaptiveMaxPool2d', _id: 'strongest', output_feats: [1, 1] },
        { _class: 'Reshape', _id: 'flat', reshape_spec: 'flatten' },
      ],
    },
    {
      _class: 'Sequential',
      _id: 'motion',
      blocks: [
        { _class: 'Conv3d', _id: 'conv', output_feats: 4, kernel_size: 3, padding: 1 },
        { _class: 'MaxPool3d', _id: 'pool', kernel_size: [1, 2, 2] },
        { _class: 'AvgPool3d', _id: 'smooth', kernel_size: [1, 2, 2], ceil_mode: true },
        // (channels, frames, 4, 4) -> (channels, frames * 16), then the mean over it
        { _class: 'Reshape', _id: 'frames', reshape_spec: [0, [1, 2, 3]] },
        { _class: 'AdaptiveAvgPool1d', _id: 'mean', output_feats: 1 },
        { _class: 'Reshape', _id: 'flat', reshape_spec: 'flatten' },
      ],
    },
    { _class: 'Concatenate', _id: 'joint', dim: 0 },
    { _class: 'Linear', _id: 'topic_fc', output_feats: 5 },
    { _class: 'LogSoftmax', _id: 'topic_logprob', dim: -1 },
    { _class: 'Linear', _id: 'quality_fc', output_feats: 1 },
    { _class: 'LogSigmoid', _id: 'quality_logprob' },
  ],
  graph: [
    'tokens -> text -> joint',
    'image -> picture -> joint',
    'clip -> motion -> joint',
    'joint -> topic_fc -> topic_logprob -> topic',
    'joint -> quality_fc -> quality_logprob -> quality',
  ],
}
