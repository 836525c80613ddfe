// depth Linear+ReLU layers of the given width, then a gated residual block from another file.
local width = std.extVar('width');
local depth = std.extVar('depth');

{
  _id: 'encoder',
  inputs: [{ _id: 'x', _shape: ['<<variable:F>>'] }],
  outputs: [{ _id: 'y', _shape: [width] }],
  blocks: [
    {
      _class: 'Sequential',
      _id: 'mlp',
      blocks: std.flattenArrays([
        [{ _class: 'Linear', output_feats: width }, { _class: 'ReLU' }]
        for _ in std.range(1, depth)
      ]),
    },
    { _class: 'Module', _id: 'residual', _path: 'residual.jsonnet', _ext_vars: { width: width } },
  ],
  graph: ['x -> mlp -> residual -> y'],
}
