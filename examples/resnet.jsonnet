// ResNet (He et al., 2015) with torchvision's layout: ResNet-18/34 use basic blocks, 50/101/152
// bottleneck blocks. Every block is a Graph, so its addresses are torchvision's own
// (layer2.0.conv1, layer2.0.downsample.0), and the data flow (the residual add) is explicit.
//
//   fluxion.spec.load("examples/resnet.jsonnet", tla={"depth": 50})
function(depth=18, num_classes=1000, width=64, image_size=224)
  local stages = {
    '18': { bottleneck: false, blocks: [2, 2, 2, 2] },
    '34': { bottleneck: false, blocks: [3, 4, 6, 3] },
    '50': { bottleneck: true, blocks: [3, 4, 6, 3] },
    '101': { bottleneck: true, blocks: [3, 4, 23, 3] },
    '152': { bottleneck: true, blocks: [3, 8, 36, 3] },
  }[std.toString(depth)];
  local expansion = if stages.bottleneck then 4 else 1;

  local conv(id, out, kernel, stride=1) = {
    type: 'Conv2d', id: id, out_channels: out, kernel_size: kernel, stride: stride,
    padding: (kernel - 1) / 2, bias: false,
  };
  local bn(id) = { type: 'BatchNorm2d', id: id };
  local relu(id) = { type: 'ReLU', id: id };

  // the main path of one block, as (nodes, path through them)
  local main(planes, stride) =
    if stages.bottleneck then
      [conv('conv1', planes, 1), bn('bn1'), relu('relu'),
       conv('conv2', planes, 3, stride), bn('bn2'), relu('relu2'),
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
             + [{ type: 'Add', id: 'add' }, relu('relu_out')],
      edges: [std.join(' -> ', ['input'] + ids + ['add', 'relu_out'])]
             + [if downsample then 'input -> downsample -> add' else 'input -> add'],
    };

  local layer(index, planes) =
    local stride = if index == 0 then 1 else 2;
    {
      type: 'Chain',
      id: 'layer' + (index + 1),
      children: [
        block(planes, stride, index > 0 || expansion > 1 || width != 64) + { id: '0' },
      ] + [
        block(planes, 1, false) + { id: std.toString(b) }
        for b in std.range(1, stages.blocks[index] - 1)
      ],
    };

  {
    type: 'Chain',
    inputs: { image: ['B', 3, image_size, image_size] },
    children: [
      conv('conv1', width, 7, 2),
      bn('bn1'),
      relu('relu'),
      { type: 'MaxPool2d', id: 'maxpool', kernel_size: 3, stride: 2, padding: 1 },
    ] + [layer(i, width * std.pow(2, i)) for i in std.range(0, 3)] + [
      { type: 'AdaptiveAvgPool2d', id: 'avgpool', output_size: 1 },
      { type: 'Flatten', id: 'flatten' },
      { type: 'Linear', id: 'fc', out_features: num_classes },
    ],
  }
