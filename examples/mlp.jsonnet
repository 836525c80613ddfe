// A multi-layer perceptron: one Linear and activation per hidden width, then a classifier head.
// Only the output side of each Linear is written: in_features is inferred from the input shape
// (features) and from the layer before. Widths, classes and the rest are top-level arguments:
//
//   fluxion show examples/mlp.jsonnet --tla widths=[512,256] --tla classes=100
//   fluxion.spec.load("examples/mlp.jsonnet", tla={"widths": [512, 256], "classes": 100})
//
// The addresses (and state_dict keys) are the ids: hidden1.weight, hidden2.weight, head.weight.
function(widths=[256, 128], classes=10, features=784, activation='ReLU', dropout=0.0)
  local hidden(index, width) =
    [
      { type: 'Linear', id: 'hidden%d' % index, out_features: width },
      { type: activation, id: 'act%d' % index },
    ]
    + (if dropout > 0 then [{ type: 'Dropout', id: 'drop%d' % index, p: dropout }] else []);

  {
    type: 'Chain',
    inputs: { x: ['B', features] },
    children: std.flattenArrays([hidden(i + 1, widths[i]) for i in std.range(0, std.length(widths) - 1)])
              + [{ type: 'Linear', id: 'head', out_features: classes }],
  }
