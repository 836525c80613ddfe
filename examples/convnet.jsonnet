// A small ConvNet for images: conv-bn-relu-pool blocks, then a classifier. Each block halves the
// image; the sizes on the input side (in_channels, num_features, the classifier's in_features)
// are inferred from the input shape, so changing image_size or channels needs nothing else:
//
//   fluxion show examples/convnet.jsonnet --tla channels=[16,32] --tla image_size=64
//   fluxion.spec.load("examples/convnet.jsonnet", tla={"classes": 100})
//
// Addresses: block1.conv, block1.bn, ..., classifier.fc.
function(channels=[32, 64, 128], classes=10, image_size=32, in_channels=3)
  local block(index, width) = {
    type: 'Chain',
    id: 'block%d' % index,
    children: [
      { type: 'Conv2d', id: 'conv', out_channels: width, kernel_size: 3, padding: 1, bias: false },
      { type: 'BatchNorm2d', id: 'bn' },
      { type: 'ReLU', id: 'relu' },
      { type: 'MaxPool2d', id: 'pool', kernel_size: 2 },
    ],
  };

  {
    type: 'Chain',
    inputs: { image: ['B', in_channels, image_size, image_size] },
    children: [block(i + 1, channels[i]) for i in std.range(0, std.length(channels) - 1)] + [
      {
        type: 'Chain',
        id: 'classifier',
        children: [
          { type: 'Flatten', id: 'flatten' },
          { type: 'Dropout', id: 'dropout', p: 0.2 },
          { type: 'Linear', id: 'fc', out_features: classes },
        ],
      },
    ],
  }
