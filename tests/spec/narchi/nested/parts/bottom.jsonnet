// Needs `classes`, which only the top file was given, and `width`, which its block sets.
local width = std.extVar('width');
local classes = std.extVar('classes');

{
  inputs: [{ _id: 'x', _shape: ['<<variable:F>>'] }],
  outputs: [{ _id: 'y', _shape: [classes] }],
  blocks: [
    { _class: 'Linear', _id: 'hidden', output_feats: width },
    { _class: 'Tanh', _id: 'tanh' },
    { _class: 'Linear', _id: 'out', output_feats: classes },
  ],
  graph: ['x -> hidden -> tanh -> out -> y'],
}
