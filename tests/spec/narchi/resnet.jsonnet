// ResNet with basic blocks, written in narchi's format with torchvision's names, so that
// num_blocks=[2, 2, 2, 2] gives ResNet-18's state_dict layout (and [3, 4, 6, 3] ResNet-34's).
// Evaluate with the external variable num_blocks, as narchi's own command line does.
local num_blocks = std.extVar('num_blocks');
local widths = [64, 128, 256, 512];

local conv(id, feats, kernel, stride, padding) = {
  _class: 'Conv2d',
  [if id != null then '_id']: id,
  output_feats: feats,
  kernel_size: kernel,
  stride: stride,
  padding: padding,
  bias: false,
};

local norm(id=null) = { _class: 'BatchNorm2d', [if id != null then '_id']: id };

// One basic block: two 3x3 convolutions and a shortcut, 1x1 where the shape changes.
local basic(feats, stride) = {
  local project = stride != 1,
  _class: 'Group',
  _name: 'BasicBlock',
  blocks: [
    { _class: 'Identity', _id: 'ident' },
    conv('conv1', feats, 3, stride, 1),
    norm('bn1'),
    { _class: 'ReLU', _id: 'relu1' },
    conv('conv2', feats, 3, 1, 1),
    norm('bn2'),
    { _class: 'Add', _id: 'add' },
    { _class: 'ReLU', _id: 'relu2' },
  ] + (if project then [{
    _class: 'Sequential',
    _id: 'downsample',
    blocks: [conv(null, feats, 1, stride, 0), norm()],
  }] else []),
  graph: [
    'ident -> conv1 -> bn1 -> relu1 -> conv2 -> bn2 -> add -> relu2',
    if project then 'ident -> downsample -> add' else 'ident -> add',
  ],
  input: 'ident',
  output: 'relu2',
};

local stage(index) = {
  _class: 'Sequential',
  _id: 'layer' + (index + 1),
  blocks: [
    basic(widths[index], if index > 0 && n == 0 then 2 else 1)
    for n in std.range(0, num_blocks[index] - 1)
  ],
};

{
  _id: 'resnet',
  _description: 'ResNet with basic blocks (He et al., Deep Residual Learning for Image Recognition).',
  inputs: [{ _id: 'image', _shape: [3, '<<variable:H>>', '<<variable:W>>'] }],
  outputs: [{ _id: 'logits', _shape: [1000] }],
  blocks: [
    conv('conv1', 64, 7, 2, 3),
    norm('bn1'),
    { _class: 'ReLU', _id: 'relu' },
    { _class: 'MaxPool2d', _id: 'maxpool', kernel_size: 3, stride: 2, padding: 1 },
  ] + [stage(index) for index in std.range(0, 3)] + [
    { _class: 'AdaptiveAvgPool2d', _id: 'avgpool', output_feats: [1, 1] },
    { _class: 'Reshape', _id: 'flatten', reshape_spec: 'flatten' },
    { _class: 'Linear', _id: 'fc', output_feats: 1000 },
  ],
  graph: [
    'image -> conv1 -> bn1 -> relu -> maxpool -> layer1 -> layer2 -> layer3 -> layer4',
    'layer4 -> avgpool -> flatten -> fc -> logits',
  ],
}
