// A handwritten-line recognizer in narchi's format: convolution stages over a line image 64
// pixels high, the columns read as a sequence by a bidirectional LSTM, one score per symbol.
local symbols = std.extVar('num_symbols');

// A convolution stage; stages without pooling keep the image size.
local stage(id, feats, pool) = {
  _class: 'Sequential',
  _id: id,
  blocks: [
    { _class: 'Conv2d', output_feats: feats, kernel_size: 3, padding: 1 },
    { _class: 'BatchNorm2d' },
    { _class: 'LeakyReLU', negative_slope: 0.01 },
  ] + (if pool then [{ _class: 'MaxPool2d', kernel_size: 2, stride: 2 }] else []),
};

{
  _id: 'line_recognizer',
  inputs: [{
    _id: 'image',
    _description: 'A text line: channels, height (fixed) and width (any).',
    _shape: [3, 64, '<<variable:W>>'],
  }],
  outputs: [{ _id: 'scores', _shape: ['<<variable:W/8>>', symbols] }],
  blocks: [
    stage('conv1', 16, true),
    stage('conv2', 16, true),
    stage('conv3', 32, false),
    stage('conv4', 32, true),
    // (channels, height, width) -> (width, channels * height): one feature vector per column
    { _class: 'Reshape', _id: 'columns', reshape_spec: [2, [0, 1]] },
    { _class: 'LSTM', _id: 'blstm', output_feats: 512, num_layers: 3, dropout: 0.5, bidirectional: true },
    { _class: 'Linear', _id: 'fc', output_feats: symbols },
  ],
  graph: ['image -> conv1 -> conv2 -> conv3 -> conv4 -> columns -> blstm -> fc -> scores'],
}
