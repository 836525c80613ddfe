// x + dropout(tanh(linear(x))): a residual block whose input and output have the same width.
local width = std.extVar('width');

{
  _id: 'residual',
  inputs: [{ _id: 'x', _shape: [width] }],
  outputs: [{ _id: 'y', _shape: [width] }],
  blocks: [
    { _class: 'Identity', _id: 'skip' },
    { _class: 'Linear', _id: 'linear', output_feats: width },
    { _class: 'Tanh', _id: 'tanh' },
    { _class: 'Dropout', _id: 'dropout', p: 0.2 },
    { _class: 'Add', _id: 'add' },
  ],
  graph: [
    'x -> skip -> linear -> tanh -> dropout -> add -> y',
    'skip -> add',
  ],
}
