// A diffusion U-Net (Ho et al., 2020) with the layout of diffusers' UNet2DModel: a time embedding,
// a down path of ResNet blocks (with self-attention where asked) and strided convolutions, a middle
// block, and an up path whose blocks concatenate the down path's outputs. The skips go through
// context: each output of the down path is stored (SetContext 'unet' 'skip_k'), and the up path
// reads them back in reverse order (UseContext); the time embedding is stored the same way and
// read by every ResNet block.
//
// Called as model(sample, timestep) with sample (B, in_channels, H, W) and timestep (B,).
//
// The arguments are the fields of UNet2DModel's config.json, with its defaults: a checkpoint's
// config loads as it is (tla=config, less the fields that start with "_"), and
// examples/unet.mapping.json maps its weights onto this layout. Values this spec does not build
// (class embeddings, fourier or learned time embeddings, resnet or fir resampling, scale_shift time
// embeddings, output scale factors other than 1) are refused with a message.
//
//   fluxion.spec.load("examples/unet.jsonnet", tla={"block_out_channels": [32, 64], ...})
function(
  sample_size=null,  // the input's height and width (an int or a pair); symbolic (H, W) when null
  in_channels=3,
  out_channels=3,
  center_input_sample=false,
  time_embedding_type='positional',
  time_embedding_dim=null,  // 4 * block_out_channels[0] when null
  freq_shift=0,
  flip_sin_to_cos=true,
  down_block_types=['DownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D', 'AttnDownBlock2D'],
  mid_block_type='UNetMidBlock2D',  // or null: no middle block
  up_block_types=['AttnUpBlock2D', 'AttnUpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
  block_out_channels=[224, 448, 672, 896],
  layers_per_block=2,
  mid_block_scale_factor=1,
  downsample_padding=1,  // 0: pad a row and a column after, as the DDPM checkpoints do
  downsample_type='conv',
  upsample_type='conv',
  dropout=0.0,
  act_fn='silu',
  attention_head_dim=8,  // null: one head over all channels
  norm_num_groups=32,
  attn_norm_num_groups=null,  // the middle block's attention; norm_num_groups when null
  norm_eps=1e-5,
  resnet_time_scale_shift='default',
  add_attention=true,  // self-attention between the middle block's two ResNet blocks
  class_embed_type=null,
  num_class_embeds=null,
  num_train_timesteps=null,
)
  local supported(name, value, allowed) =
    std.member(allowed, value)
    || error name + ': this spec builds ' + std.join(' or ', [std.toString(a) for a in allowed])
             + ', got ' + std.toString(value);
  assert supported('center_input_sample', center_input_sample, [false]);
  assert supported('time_embedding_type', time_embedding_type, ['positional']);
  assert supported('mid_block_type', mid_block_type, ['UNetMidBlock2D', null]);
  assert supported('mid_block_scale_factor', mid_block_scale_factor, [1]);
  assert supported('downsample_padding', downsample_padding, [0, 1]);
  assert supported('downsample_type', downsample_type, ['conv']);
  assert supported('upsample_type', upsample_type, ['conv']);
  assert supported('act_fn', act_fn, ['silu', 'swish']);
  assert supported('resnet_time_scale_shift', resnet_time_scale_shift, ['default']);
  assert supported('class_embed_type', class_embed_type, [null]);
  assert supported('num_class_embeds', num_class_embeds, [null]);
  assert std.all([supported('down_block_types', kind, ['DownBlock2D', 'AttnDownBlock2D']) for kind in down_block_types]);
  assert std.all([supported('up_block_types', kind, ['UpBlock2D', 'AttnUpBlock2D']) for kind in up_block_types]);
  assert std.length(down_block_types) == std.length(block_out_channels)
         && std.length(up_block_types) == std.length(block_out_channels)
         : 'down_block_types, up_block_types and block_out_channels need one entry per level';
  local levels = std.length(block_out_channels);
  local mid_groups = if attn_norm_num_groups != null then attn_norm_num_groups else norm_num_groups;
  local size = if sample_size == null then ['H', 'W']
               else if std.isArray(sample_size) then sample_size
               else [sample_size, sample_size];
  local layers = layers_per_block;
  local first = block_out_channels[0];
  local last = block_out_channels[levels - 1];
  local time_dim = if time_embedding_dim != null then time_embedding_dim else 4 * first;
  local skip(k) = 'skip_' + k;
  local conv(id, out, kernel=3) = {
    type: 'Conv2d', id: id, out_channels: out, kernel_size: kernel, padding: (kernel - 1) / 2,
  };
  local norm(id, groups=norm_num_groups) = { type: 'GroupNorm', id: id, num_groups: groups, eps: norm_eps };
  local mid_block = mid_block_type != null;

  // ResnetBlock2D: two 3x3 convolutions, the time embedding added in between, a 1x1 shortcut
  // when the channels change
  local resnet(inputs, out) =
    local shortcut = inputs != out;
    local dropping = if dropout > 0 then ['dropout'] else [];
    {
      type: 'Graph',
      id: 'resnet',
      nodes: [
        norm('norm1'),
        { type: 'SiLU', id: 'act1' },
        conv('conv1', out),
        { type: 'UseContext', id: 'time', context: 'unet', key: 'time_embedding' },
        { type: 'SiLU', id: 'time_act' },
        { type: 'Linear', id: 'time_emb_proj', out_features: out },
        { type: 'Reshape', id: 'time_view', shape: [-1, 1, 1] },
        { type: 'Add', id: 'add_time' },
        norm('norm2'),
        { type: 'SiLU', id: 'act2' },
      ] + (if dropout > 0 then [{ type: 'Dropout', id: 'dropout', p: dropout }] else []) + [
        conv('conv2', out),
      ] + (if shortcut then [conv('conv_shortcut', out, 1)] else []) + [
        { type: 'Add', id: 'add' },
      ],
      edges: [
        std.join(' -> ', ['input', 'norm1', 'act1', 'conv1', 'add_time', 'norm2', 'act2']
                         + dropping + ['conv2', 'add']),
        'input -> time -> time_act -> time_emb_proj -> time_view -> add_time',
        if shortcut then 'input -> conv_shortcut -> add' else 'input -> add',
      ],
    };

  // diffusers' Attention over the pixels: GroupNorm, multi-head self-attention, residual
  local attention(channels, groups=norm_num_groups) = {
    type: 'Residual',
    id: 'attention',
    children: [
      norm('norm', groups),
      {
        type: 'Tokens2d',
        id: 'tokens',
        children: [{
          type: 'MultiHeadAttention',
          id: 'self_attention',
          num_heads: if attention_head_dim == null then 1 else channels / attention_head_dim,
        }],
      },
    ],
  };
  local store(k) = { type: 'SetContext', id: 'skip', context: 'unet', key: skip(k) };

  local down_block(i) =
    local inputs = if i == 0 then first else block_out_channels[i - 1];
    local out = block_out_channels[i];
    local attends = down_block_types[i] == 'AttnDownBlock2D';
    {
      type: 'Chain',
      id: std.toString(i),
      children: [
        {
          type: 'Chain',
          id: std.toString(j),
          children: [resnet(if j == 0 then inputs else out, out)]
                    + (if attends then [attention(out)] else [])
                    + [store(1 + i * (layers + 1) + j)],
        }
        for j in std.range(0, layers - 1)
      ] + (if i < levels - 1 then [{
             type: 'Chain',
             id: 'downsample',
             children: (
               if downsample_padding == 1 then [
                 // stride 2, padding 1: every size that 2 divides is halved
                 { type: 'Conv2d', id: 'conv', out_channels: out, kernel_size: 3, downsample: 2 },
               ] else [
                 { type: 'Pad', id: 'pad', pad: [0, 1, 0, 1] },
                 { type: 'Conv2d', id: 'conv', out_channels: out, kernel_size: 3, stride: 2 },
               ]
             ) + [store(1 + i * (layers + 1) + layers)],
           }] else []),
    };

  local reversed = std.reverse(block_out_channels);
  local up_block(i) =
    local previous = if i == 0 then reversed[0] else reversed[i - 1];
    local out = reversed[i];
    local inputs = reversed[std.min(i + 1, levels - 1)];
    local attends = up_block_types[i] == 'AttnUpBlock2D';
    {
      type: 'Chain',
      id: std.toString(i),
      children: [
        {
          type: 'Chain',
          id: std.toString(j),
          children: [
            {
              // the input, and the down path's output it mirrors, side by side
              type: 'Concatenate',
              id: 'skip',
              dim: 1,
              children: [
                { type: 'Identity' },
                { type: 'UseContext', context: 'unet', key: skip(levels * (layers + 1) - 1 - i * (layers + 1) - j) },
              ],
            },
            resnet((if j == 0 then previous else out) + (if j == layers then inputs else out), out),
          ] + (if attends then [attention(out)] else []),
        }
        for j in std.range(0, layers)
      ] + (if i < levels - 1 then [{
             type: 'Chain',
             id: 'upsample',
             children: [{ type: 'Upsample', id: 'upsample', scale_factor: 2.0 }, conv('conv', out)],
           }] else []),
    };

  {
    type: 'Graph',
    inputs: {
      sample: ['B', in_channels] + size,
      timestep: ['B'],
    },
    nodes: [
      {
        type: 'SinusoidalEmbedding', id: 'time_proj', dim: first,
        flip_sin_to_cos: flip_sin_to_cos, freq_shift: freq_shift,
      },
      {
        type: 'Chain',
        id: 'time_embedding',
        children: [
          { type: 'Linear', id: 'linear_1', out_features: time_dim },
          { type: 'SiLU', id: 'act' },
          { type: 'Linear', id: 'linear_2', out_features: time_dim },
        ],
      },
      { type: 'SetContext', id: 'time_context', context: 'unet', key: 'time_embedding' },
      // the sample goes on once the time embedding is in context: 'start' waits for both
      { type: 'SetContext', id: 'sample_context', context: 'unet', key: 'sample' },
      { type: 'UseContext', id: 'start', context: 'unet', key: 'sample' },
      conv('conv_in', first),
      { type: 'SetContext', id: 'conv_in_skip', context: 'unet', key: skip(0) },
      { type: 'Chain', id: 'down_blocks', children: [down_block(i) for i in std.range(0, levels - 1)] },
    ] + (if mid_block then [{
           type: 'Chain',
           id: 'mid_block',
           children: [resnet(last, last) + { id: 'resnet_0' }]
                     + (if add_attention then [attention(last, mid_groups)] else [])
                     + [resnet(last, last) + { id: 'resnet_1' }],
         }] else []) + [
      { type: 'Chain', id: 'up_blocks', children: [up_block(i) for i in std.range(0, levels - 1)] },
      norm('conv_norm_out'),
      { type: 'SiLU', id: 'conv_act' },
      conv('conv_out', out_channels),
    ],
    edges: [
      'timestep -> time_proj -> time_embedding -> time_context -> start',
      'sample -> sample_context -> start',
      std.join(' -> ', ['start', 'conv_in', 'conv_in_skip', 'down_blocks']
                       + (if mid_block then ['mid_block'] else [])
                       + ['up_blocks', 'conv_norm_out', 'conv_act', 'conv_out']),
    ],
  }
