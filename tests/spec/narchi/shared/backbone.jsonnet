// A small convolutional backbone; `classes` comes from the file naming this one.
local width = std.extVar('width');

{
  inputs: [{ _id: 'x', _shape: [3, '<<variable:H>>', '<<variable:W>>'] }],
  outputs: [{ _id: 'y', _shape: ['<<auto>>'] }],
  blocks: [
    { _class: 'Conv2d', _id: 'conv', output_feats: width, kernel_size: 3, padding: 1 },
    { _class: 'BatchNorm2d', _id: 'norm' },
    { _class: 'ReLU', _id: 'relu' },
    { _class: 'AdaptiveAvgPool2d', _id: 'pool', output_feats: [1, 1] },
    { _class: 'Reshape', _id: 'flat', reshape_spec: 'flatten' },
    { _class: 'Linear', _id: 'fc', output_feats: std.extVar('classes') },
  ],
  graph: ['x -> conv -> norm -> relu -> pool -> flat -> fc -> y'],
}
