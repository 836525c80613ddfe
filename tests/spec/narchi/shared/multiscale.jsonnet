// One backbone seen at three scales: three Module blocks with the same _id_share label share one
// set of weights. No block has that label as its _id: the label only names the group.
local width = std.extVar('width');

local backbone(id) = {
  _class: 'Module',
  _id: id,
  _name: 'Backbone',
  _id_share: 'backbone_share',
  _path: 'backbone.jsonnet',
  _ext_vars: { width: width },
};

{
  _description: 'A classifier averaging one shared backbone over three image scales.',
  inputs: [{ _id: 'image', _shape: [3, '<<variable:H>>', '<<variable:W>>'] }],
  outputs: [{ _id: 'logits', _shape: [std.extVar('classes')] }],
  blocks: [
    backbone('full'),
    { _class: 'AvgPool2d', _id: 'down2', kernel_size: 2, stride: 2 },
    backbone('halved'),
    { _class: 'AvgPool2d', _id: 'down4', kernel_size: 2, stride: 2 },
    backbone('quartered'),
    { _class: 'Add', _id: 'merge' },
  ],
  graph: [
    'image -> full -> merge',
    'image -> down2 -> halved -> merge',
    'down2 -> down4 -> quartered -> merge',
    'merge -> logits',
  ],
}
