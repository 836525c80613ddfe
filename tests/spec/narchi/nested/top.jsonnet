// Three levels of Module blocks. The command line gives `hidden` and `classes`; each nested file
// sees the variables of the file naming it, updated with the block's own _ext_vars.
local hidden = std.extVar('hidden');

{
  inputs: [{ _id: 'features', _shape: [16] }],
  outputs: [{ _id: 'probabilities', _shape: ['<<auto>>'] }],
  blocks: [
    {
      _class: 'Module',
      _id: 'middle',
      _name: 'Middle',
      _path: 'parts/deeper/middle.jsonnet',  // relative to this file
      _ext_vars: { width: 24 },
    },
    { _class: 'Softmax', _id: 'softmax', dim: -1 },
  ],
  graph: ['features -> middle -> softmax -> probabilities'],
}
