// Given `width` by its block; `hidden` comes from the top file's variables.
local width = std.extVar('width');
local hidden = std.extVar('hidden');

{
  inputs: [{ _id: 'x', _shape: ['<<variable:F>>'] }],
  outputs: [{ _id: 'y', _shape: ['<<auto>>'] }],
  blocks: [
    { _class: 'Linear', _id: 'widen', output_feats: width },
    { _class: 'ReLU', _id: 'relu' },
    {
      _class: 'Module',
      _id: 'bottom',
      _path: '../bottom.jsonnet',  // relative to this file: parts/bottom.jsonnet
      _ext_vars: { width: hidden },  // the block's variable wins over this file's own `width`
    },
  ],
  graph: ['x -> widen -> relu -> bottom -> y'],
}
