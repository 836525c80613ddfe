// ResNet (He et al., 2015) with torchvision's layout: ResNet-18/34 use basic blocks, 50/101/152
// bottleneck blocks. Every block is a Graph, so its addresses are torchvision's own
// (layer2.0.conv1, layer2.0.downsample.0), and the data flow (the residual add) is explicit.
//
//   fluxion.spec.load("examples/resnet.jsonnet", tla={"depth": 50})
//
// Hugging Face transformers' ResNet (ResNetForImageClassification) is the same network under
// other names: examples/resnet.mapping.json maps its checkpoints onto this layout. Its config reads
// as these arguments: embedding_size = stem_width, hidden_sizes = width * [1, 2, 4, 8] (times 4 for
// bottleneck blocks), depths = blocks, layer_type = bottleneck, downsample_in_first_stage and
// downsample_in_bottleneck as they are.
function(
  depth=18,
  num_classes=1000,
  width=64,  // the planes of the first stage; each later stage doubles them
  image_size=224,
  stem_width=null,  // the channels out of the stem (torchvision: 64, as width by default)
  blocks=null,  // blocks per stage, instead of those of depth ([2, 2, 2, 2] for 18)
  bottleneck=null,  // bottleneck blocks or basic ones, instead of those of depth
  downsample_in_first_stage=false,  // the first stage strides by 2 too
  downsample_in_bottleneck=false,  // a bottleneck block strides in its 1x1 conv1, not its 3x3 conv2 (ResNet v1)
)
  local table = {
    '18': { bottleneck: false, blocks: [2, 2, 2, 2] },
    '34': { bottleneck: false, blocks: [3, 4, 6, 3] },
    '50': { bottleneck: true, blocks: [3, 4, 6, 3] },
    '101': { bottleneck: true, blocks: [3, 4, 23, 3] },
    '152': { bottleneck: true, blocks: [3, 8, 36, 3] },
  };
  local preset = if blocks != null && bottleneck != null then {} else table[std.toString(depth)];
  local stages = {
    bottleneck: if bottleneck != null then bottleneck else preset.bottleneck,
    blocks: if blocks != null then blocks else preset.blocks,
  };
  local expansion = if stages.bottleneck then 4 else 1;
  local stem = if stem_width != null then stem_width else width;

  local conv(id, out, kernel, stride=1) = {
    type: 'Conv2d', id: id, out_channels: out, kernel_size: kernel, stride: stride,
    padding: (kernel - 1) / 2, bias: false,
  };
  local bn(id) = { type: 'BatchNorm2d', id: id };
  local relu(id) = { type: 'ReLU', id: id, inplace: true };

  // the main path of one block, as (nodes, path through them)
  local main(planes, stride) =
    if stages.bottleneck then
      local first = if downsample_in_bottleneck then stride else 1;
      [conv('conv1', planes, 1, first), bn('bn1'), relu('relu'),
       conv('conv2', planes, 3, stride / first), bn('bn2'), relu('relu2'),
       conv('conv3', planes * 4, 1), bn('bn3')]
    else
      [conv('conv1', planes, 3, stride), bn('bn1'), relu('relu'), conv('conv2', planes, 3), bn('bn2')];

  local block(planes, stride, downsample) =
    local path = main(planes, stride);
    local ids = [node.id for node in path];
    {
      type: 'Graph',
      nodes: path
             + (if downsample then [{
                  type: 'Chain', id: 'downsample',
                  children: [conv('0', planes * expansion, 1, stride), bn('1')],
                }] else [])
             + [{ type: 'Add', id: 'add', inplace: true }, relu('relu_out')],  // x += shortcut: only add reads the main path's end
      edges: [std.join(' -> ', ['input'] + ids + ['add', 'relu_out'])]
             + [if downsample then 'input -> downsample -> add' else 'input -> add'],
    };

  local planes(index) = width * std.pow(2, index);
  local layer(index) =
    local stride = if index > 0 || downsample_in_first_stage then 2 else 1;
    local inputs = if index == 0 then stem else planes(index - 1) * expansion;
    {
      type: 'Chain',
      id: 'layer' + (index + 1),
      children: [
        // a projection where the block changes the size: its stride, or its channels
        block(planes(index), stride, stride != 1 || inputs != planes(index) * expansion) + { id: '0' },
      ] + [
        block(planes(index), 1, false) + { id: std.toString(b) }
        for b in std.range(1, stages.blocks[index] - 1)
      ],
    };

  {
    type: 'Chain',
    inputs: { image: ['B', 3, image_size, image_size] },
    children: [
      conv('conv1', stem, 7, 2),
      bn('bn1'),
      relu('relu'),
      { type: 'MaxPool2d', id: 'maxpool', kernel_size: 3, stride: 2, padding: 1 },
    ] + [layer(i) for i in std.range(0, std.length(stages.blocks) - 1)] + [
      { type: 'AdaptiveAvgPool2d', id: 'avgpool', output_size: 1 },
      { type: 'Flatten', id: 'flatten' },
      { type: 'Linear', id: 'fc', out_features: num_classes },
    ],
  }
