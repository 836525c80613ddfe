// DARTS (Liu et al., 2019) on CIFAR: the search space as a supernet, or the network of one
// genotype. Parameter counts are those of DARTS's own model_search.Network and model.NetworkCIFAR.
//
//   fluxion.spec.load("examples/darts.jsonnet")                          # the supernet, 1,930,618 weights
//   fluxion.spec.load("examples/darts.jsonnet", tla={"genotype": g, "channels": 36, "cells": 20})
//
// The layout is the convention fluxion.nas reads (finalize, genotypes):
// - the root is a Graph: stem, one cell per index named <type>_<index> (normal_0, normal_1,
//   reduce_2...: reduction cells at cells//3 and 2*cells//3), then pool, flatten, classifier. Cell 0
//   takes the stem's output twice, cell 1 the stem's and cell 0's, cell i those of cells i-2 and i-1.
// - a cell is a Graph of inputs s0 and s1: state_0 and state_1 preprocess them, and intermediate
//   node i (from 2) is the join state_<i> of one edge edge_<k> from each earlier state j, k being
//   DARTS's flat edge index (the edges of earlier nodes, then j); concat joins the cell's output.
// - supernet: each edge is a Choice of the primitives, each under its own name
//   (normal_0.edge_3.sep_conv_3x3), with DARTS's search-time operations (BatchNorms without
//   affine parameters, pools followed by one); each join is an InputChoice that keeps 2. Every
//   cell of a type shares its edges' alphas with the first cell of that type.
// - genotype: DARTS's form, {"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5],
//   "reduce": [...], "reduce_concat": [...]}: node i = 2 + t has the pairs 2t and 2t + 1, each an
//   edge edge_<k> with the supernet's k (when both read one state, the one whose operation's name
//   sorts second is edge_<k>_b), joined by an Add; the operations are DARTS's evaluation ones
//   (affine BatchNorms, pools alone). With drop_path, drop_<k> follows edge_<k>. The concat of a
//   single state is an Identity. With auxiliary, the outputs are (logits, auxiliary logits).
function(
  channels=16,  // the channels of the first cells; each reduction cell doubles them
  cells=8,
  nodes=4,  // intermediate nodes per cell (supernet; a genotype gives its own)
  classes=10,
  primitives=[  // the candidates of each supernet edge, DARTS's by default (a genotype names its own)
    'none',
    'max_pool_3x3',
    'avg_pool_3x3',
    'skip_connect',
    'sep_conv_3x3',
    'sep_conv_5x5',
    'dil_conv_3x3',
    'dil_conv_5x5',
  ],
  stem_multiplier=3,  // the stem's channels are stem_multiplier * channels
  genotype=null,  // null: the supernet; a genotype: its discrete network
  auxiliary=false,  // with a genotype: the auxiliary head after cell 2 * cells // 3 (outputs: logits, aux logits)
  drop_path=false,  // with a genotype: a DropPath (p = 0, set by the training loop) after each operation but the identity
  in_channels=3,
  image_size=32,
)
  // -- the operations: DARTS's OPS table, with the search-time pools (PoolBN) --------------
  local pool(kind, C, stride, search) =
    if search then { type: 'PoolBN', kind: kind, channels: C, kernel_size: 3, stride: stride, padding: 1, affine: false }
    else if kind == 'max' then { type: 'MaxPool2d', kernel_size: 3, stride: stride, padding: 1 }
    else { type: 'AvgPool2d', kernel_size: 3, stride: stride, padding: 1, count_include_pad: false };
  local sep(C, k, stride, affine) = {
    type: 'SepConv', in_channels: C, out_channels: C, kernel_size: k, stride: stride, padding: (k - 1) / 2, affine: affine,
  };
  local dil(C, k, stride, affine) = {
    type: 'DilConv', in_channels: C, out_channels: C, kernel_size: k, stride: stride, padding: k - 1, dilation: 2, affine: affine,
  };
  local conv_bn_relu(C, k, stride, affine) = {
    type: 'ConvBNReLU', in_channels: C, out_channels: C, kernel_size: k, stride: stride, padding: (k - 1) / 2, affine: affine,
  };
  local operations = {
    none(C, stride, search): { type: 'Zero', stride: stride },
    max_pool_3x3(C, stride, search): pool('max', C, stride, search),
    avg_pool_3x3(C, stride, search): pool('avg', C, stride, search),
    skip_connect(C, stride, search):
      if stride == 1 then { type: 'Identity' }
      else { type: 'FactorizedReduce', in_channels: C, out_channels: C, affine: !search },
    sep_conv_3x3(C, stride, search): sep(C, 3, stride, !search),
    sep_conv_5x5(C, stride, search): sep(C, 5, stride, !search),
    sep_conv_7x7(C, stride, search): sep(C, 7, stride, !search),
    dil_conv_3x3(C, stride, search): dil(C, 3, stride, !search),
    dil_conv_5x5(C, stride, search): dil(C, 5, stride, !search),
    conv_7x1_1x7(C, stride, search): {
      type: 'FacConv', in_channels: C, out_channels: C, kernel_size: 7, stride: stride, padding: 3, affine: !search,
    },
    convbnrelu_3x3(C, stride, search): conv_bn_relu(C, 3, stride, !search),
    convbnrelu_1x1(C, stride, search): conv_bn_relu(C, 1, stride, !search),
  };
  // in the order of fluxion.nas.operations.OPERATIONS: DARTS's primitives, then the others
  local known = [
    'none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect', 'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3',
    'dil_conv_5x5', 'sep_conv_7x7', 'conv_7x1_1x7', 'convbnrelu_3x3', 'convbnrelu_1x1',
  ];
  local operation(name, C, stride, search) = operations[name](C, stride, search);

  // -- checking the arguments ---------------------------------------------------------------
  local show(value) = std.manifestJsonMinified(value);
  local is_int(value) = std.isNumber(value) && std.floor(value) == value;
  local check_primitives =
    local bad = [p for p in primitives if !std.isString(p) || !std.member(known, p)];
    if !std.isArray(primitives) || std.length(primitives) == 0 then
      error 'darts: primitives is a non-empty list of operation names, got ' + show(primitives)
    else if std.length(bad) > 0 then
      error 'darts: primitives: unknown primitive ' + show(bad[0]) + '; known: ' + std.join(', ', known)
    else if std.length(std.set(primitives)) != std.length(primitives) then
      error 'darts: primitives: a primitive is listed twice in ' + show(primitives)
    else true;
  local check_sizes =
    local sizes = { channels: channels, cells: cells, nodes: nodes, classes: classes, stem_multiplier: stem_multiplier };
    local bad = [name for name in std.objectFields(sizes) if !is_int(sizes[name]) || sizes[name] < 1];
    if std.length(bad) > 0 then error 'darts: ' + bad[0] + ' is a whole number of 1 or more, got ' + show(sizes[bad[0]])
    else true;
  local check_genotype_options =
    if genotype == null && auxiliary then
      error 'darts: auxiliary=true needs a genotype (the auxiliary head belongs to the evaluation network, not the supernet)'
    else if genotype == null && drop_path then
      error 'darts: drop_path=true needs a genotype (DropPath belongs to the evaluation network, not the supernet)'
    else true;

  // one cell type of a genotype, checked: its pairs and concat, or an error naming the entry
  local genotype_cell(type) =
    local pairs_key = type, concat_key = type + '_concat';
    local pairs = if std.objectHas(genotype, pairs_key) then genotype[pairs_key]
    else error 'darts: genotype has no ' + show(pairs_key) + ' (it needs normal, normal_concat, reduce, reduce_concat)';
    local concat = if std.objectHas(genotype, concat_key) then genotype[concat_key]
    else error 'darts: genotype has no ' + show(concat_key) + ' (it needs normal, normal_concat, reduce, reduce_concat)';
    local where(index) = 'darts: genotype.' + pairs_key + '[' + index + ']';
    local check_pair(index) =
      local pair = pairs[index];
      local node = 2 + std.floor(index / 2);
      if !std.isArray(pair) || std.length(pair) != 2 || !std.isString(pair[0]) || !is_int(pair[1]) then
        error where(index) + ': a pair is [operation, input state], got ' + show(pair)
      else if pair[0] == 'none' then
        error where(index) + ": 'none' is chosen; a discrete cell's edges are operations (none is the supernet's zero)"
      else if !std.member(known, pair[0]) then
        error where(index) + ': unknown primitive ' + show(pair[0]) + '; known: '
              + std.join(', ', [name for name in known if name != 'none'])
      else if pair[1] < 0 || pair[1] >= node then
        error where(index) + ': input ' + pair[1] + ' is not an earlier state of node ' + node
              + ' (it reads states 0 to ' + (node - 1) + ')'
      else true;
    local steps = std.length(pairs) / 2;
    local check_concat(index) =
      local state = concat[index];
      if !is_int(state) || state < 0 || state >= 2 + steps then
        error 'darts: genotype.' + concat_key + '[' + index + ']: ' + show(state) + ' is not a state of the cell (states 0 to '
              + (1 + steps) + ')'
      else if std.length([other for other in concat if other == state]) > 1 then
        error 'darts: genotype.' + concat_key + ': state ' + state + ' is listed twice'
      else true;
    if !std.isArray(pairs) || std.length(pairs) == 0 then
      error 'darts: genotype.' + pairs_key + ' is a non-empty list of [operation, input] pairs, got ' + show(pairs)
    else if std.length(pairs) % 2 != 0 then
      error 'darts: genotype.' + pairs_key + ' has an odd number of pairs (' + std.length(pairs)
            + '): each intermediate node takes two'
    else if !std.isArray(concat) || std.length(concat) == 0 then
      error 'darts: genotype.' + concat_key + ' is a non-empty list of states, got ' + show(concat)
    else if !std.all([check_pair(i) for i in std.range(0, std.length(pairs) - 1)]) then error 'unreachable'
    else if !std.all([check_concat(i) for i in std.range(0, std.length(concat) - 1)]) then error 'unreachable'
    else { pairs: pairs, concat: concat, steps: steps };

  local kinds =
    if genotype == null then null
    else if !std.isObject(genotype) then error 'darts: genotype is an object (normal, normal_concat, reduce, reduce_concat), got ' + show(genotype)
    else { normal: genotype_cell('normal'), reduce: genotype_cell('reduce') };
  // both cell types are checked, even one that no cell uses (cells < 3)
  local checked = check_primitives && check_sizes && check_genotype_options
                  && (genotype == null || std.isObject(kinds.normal) && std.isObject(kinds.reduce));

  // -- cells -----------------------------------------------------------------------------------
  // DARTS's flat edge index: the edges of nodes before node t (node t reads 2 + t states), then j
  local offset(t) = 2 * t + t * (t - 1) / 2;
  local relu_conv_bn(id, C_in, C_out, affine) = {
    type: 'ReLUConvBN', id: id, in_channels: C_in, out_channels: C_out, kernel_size: 1, stride: 1, padding: 0, affine: affine,
  };
  local preprocess(C_pp, C_p, C, reduction_prev, affine) = [
    if reduction_prev then { type: 'FactorizedReduce', id: 'state_0', in_channels: C_pp, out_channels: C, affine: affine }
    else relu_conv_bn('state_0', C_pp, C, affine),
    relu_conv_bn('state_1', C_p, C, affine),
  ];
  local concatenation(states) =
    if std.length(states) == 1 then { type: 'Identity', id: 'concat' } else { type: 'Cat', id: 'concat', dim: 1 };
  local cell_graph(nodes_, edges, concat) = {
    type: 'Graph',
    inputs: ['s0', 's1'],
    nodes: nodes_,
    edges: ['s0 -> state_0', 's1 -> state_1'] + edges + ['state_%d -> concat' % state for state in concat],
    outputs: 'concat',
  };

  // the supernet's cell: every earlier state feeds node i through a Choice; template: the cell
  // whose alphas the cell shares (null for the first cell of its type)
  local search_cell(C_pp, C_p, C, reduction, reduction_prev, template) =
    local edge(t, j) =
      local k = offset(t) + j;
      {
        type: 'Choice',
        id: 'edge_%d' % k,
        children: [
          operation(p, C, if reduction && j < 2 then 2 else 1, true) + { id: p }
          for p in primitives
        ],
      } + (if template == null then {} else { share: { alphas: '%s.edge_%d.alphas' % [template, k] } });
    local node(t) = [edge(t, j) for j in std.range(0, t + 1)] + [{ type: 'InputChoice', id: 'state_%d' % (t + 2), keep: 2 }];
    local concat = std.range(2, nodes + 1);
    cell_graph(
      preprocess(C_pp, C_p, C, reduction_prev, false) + std.flattenArrays([node(t) for t in std.range(0, nodes - 1)])
      + [concatenation(concat)],
      ['state_%d -> edge_%d -> state_%d' % [j, offset(t) + j, t + 2] for t in std.range(0, nodes - 1) for j in std.range(0, t + 1)],
      concat,
    );

  // the discrete cell of one genotype type: pairs 2t and 2t + 1 feed node 2 + t, added. A node's
  // pairs go in the order of their inputs (k order, as the supernet's edges), and two pairs from one
  // input in the order of their operations' names (Genotype.canonical's order): genotypes that differ
  // only in the order of a node's pairs build the same network (adding two tensors is commutative)
  local order(kind, t) =
    local first = kind.pairs[2 * t], second = kind.pairs[2 * t + 1];
    if second[1] < first[1] || second[1] == first[1] && second[0] < first[0] then [2 * t + 1, 2 * t]
    else [2 * t, 2 * t + 1];
  // edge_<k>, or edge_<k>_b for the second of two pairs from one input
  local genotype_edge_id(kind, index) =
    local t = std.floor(index / 2), pair = kind.pairs[index];
    local other = kind.pairs[if index % 2 == 0 then index + 1 else index - 1];
    local second = order(kind, t)[1] == index;
    'edge_%d' % (offset(t) + pair[1]) + (if other[1] == pair[1] && second then '_b' else '');
  local is_identity(name, stride) = name == 'skip_connect' && stride == 1;
  local discrete_cell(kind, C_pp, C_p, C, reduction, reduction_prev) =
    local indices = std.flattenArrays([order(kind, t) for t in std.range(0, kind.steps - 1)]);
    local stride(index) = if reduction && kind.pairs[index][1] < 2 then 2 else 1;
    local dropped(index) = drop_path && !is_identity(kind.pairs[index][0], stride(index));
    local drop_id(index) = std.strReplace(genotype_edge_id(kind, index), 'edge_', 'drop_');
    local edge_nodes(index) =
      [operation(kind.pairs[index][0], C, stride(index), false) + { id: genotype_edge_id(kind, index) }]
      + (if dropped(index) then [{ type: 'DropPath', id: drop_id(index) }] else []);
    local node(t) = std.flattenArrays([edge_nodes(index) for index in order(kind, t)]) + [{ type: 'Add', id: 'state_%d' % (t + 2) }];
    local path(index) =
      local t = std.floor(index / 2);
      std.join(' -> ', ['state_%d' % kind.pairs[index][1], genotype_edge_id(kind, index)]
                       + (if dropped(index) then [drop_id(index)] else []) + ['state_%d' % (t + 2)]);
    cell_graph(
      preprocess(C_pp, C_p, C, reduction_prev, true) + std.flattenArrays([node(t) for t in std.range(0, kind.steps - 1)])
      + [concatenation(kind.concat)],
      [path(index) for index in indices],
      kind.concat,
    );

  // -- the network -----------------------------------------------------------------------------
  local reductions = std.set([std.floor(cells / 3), std.floor(2 * cells / 3)]);
  local is_reduction(i) = std.member(reductions, i);
  local cell_id(i) = (if is_reduction(i) then 'reduce_' else 'normal_') + i;
  local first_normal = [i for i in std.range(0, cells - 1) if !is_reduction(i)];
  local template(i) =
    local first = if is_reduction(i) then reductions[0] else first_normal[0];
    if first == i then null else cell_id(first);
  local multiplier(i) =
    if genotype == null then nodes else std.length(kinds[if is_reduction(i) then 'reduce' else 'normal'].concat);
  // the channels of cell i: C_pp and C_p in, C inside, out the C_p of the next cell (DARTS's loop)
  local channels_of = std.foldl(
    function(done, i)
      local last = done[std.length(done) - 1];
      local C = if is_reduction(i) then 2 * last.C else last.C;
      done + [{ C_pp: last.C_p, C_p: last.C_out, C: C, C_out: multiplier(i) * C }],
    std.range(0, cells - 1),
    [{ C_p: stem_multiplier * channels, C_out: stem_multiplier * channels, C: channels }],
  )[1:];
  local cell(i) =
    local sizes = channels_of[i];
    local reduction_prev = i > 0 && is_reduction(i - 1);
    (if genotype == null then search_cell(sizes.C_pp, sizes.C_p, sizes.C, is_reduction(i), reduction_prev, template(i))
     else discrete_cell(kinds[if is_reduction(i) then 'reduce' else 'normal'],
                        sizes.C_pp, sizes.C_p, sizes.C, is_reduction(i), reduction_prev))
    + { id: cell_id(i) };
  local previous(i, back) = if i - back < 0 then 'stem' else cell_id(i - back);
  local auxiliary_cell = std.floor(2 * cells / 3);

  {
    type: 'Graph',
    inputs: { image: ['B', in_channels, image_size, image_size] },
    // checked in a field, not in the function's body: jsonnet's error then names no top-level function
    nodes: if !checked then error 'unreachable' else [{ type: 'CifarStem', id: 'stem', in_channels: in_channels, out_channels: stem_multiplier * channels }]
           + [cell(i) for i in std.range(0, cells - 1)]
           + [
             { type: 'AdaptiveAvgPool2d', id: 'pool', output_size: 1 },
             { type: 'Flatten', id: 'flatten' },
             { type: 'Linear', id: 'classifier', in_features: channels_of[cells - 1].C_out, out_features: classes },
           ]
           + (if auxiliary then [{
                type: 'AuxiliaryHeadCIFAR', id: 'auxiliary', in_channels: channels_of[auxiliary_cell].C_out, classes: classes,
              }] else []),
    edges: ['image -> stem', cell_id(cells - 1) + ' -> pool -> flatten -> classifier']
           + (if auxiliary then [cell_id(auxiliary_cell) + ' -> auxiliary'] else []),
    arguments: { [cell_id(i)]: [previous(i, 2), previous(i, 1)] for i in std.range(0, cells - 1) },
    outputs: if auxiliary then ['classifier', 'auxiliary'] else 'classifier',
  }
