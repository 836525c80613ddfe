// An architecture made of other files: narchi's Module blocks, with their own external variables.
local classes = std.extVar('classes');

{
  _id: 'classifier',
  inputs: [{ _id: 'features', _shape: [20] }],
  outputs: [{ _id: 'probabilities', _shape: [classes] }],
  blocks: [
    {
      _class: 'Module',
      _id: 'encoder',
      _path: 'parts/encoder.jsonnet',
      _ext_vars: { width: 32, depth: 2 },
    },
    { _class: 'Linear', _id: 'head', output_feats: classes },
    { _class: 'Softmax', _id: 'softmax', dim: -1 },
  ],
  graph: ['features -> encoder -> head -> softmax -> probabilities'],
}
