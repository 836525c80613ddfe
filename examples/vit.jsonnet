// Vision Transformer (Dosovitskiy et al., 2020): the image cut into patches, a class token and
// learned positions, pre-norm transformer blocks, a final LayerNorm and a classifier on the class
// token. ViT-B/16 with the defaults:
//
//   fluxion.spec.load("examples/vit.jsonnet")
//   fluxion.spec.load("examples/vit.jsonnet", tla={"depth": 2, "width": 32, "heads": 4,
//                                                  "image_size": 32, "patch_size": 8, "num_classes": 10})
//
// examples/vit.mapping.json maps checkpoints of Hugging Face transformers' ViT
// (ViTForImageClassification, or ViTModel) onto this layout. Its config reads as these arguments:
// num_hidden_layers = depth, hidden_size = width, num_attention_heads = heads, intermediate_size
// = mlp_width, layer_norm_eps = eps, hidden_act = 'gelu', num_labels = num_classes.
function(
  depth=12,
  width=768,
  heads=12,
  mlp_width=null,  // 4 * width by default
  image_size=224,
  patch_size=16,
  num_classes=1000,
  channels=3,
  eps=1e-12,  // Hugging Face's layer_norm_eps (timm uses 1e-6)
  dropout=0.0,
)
  local grid = std.floor(image_size / patch_size);
  local hidden = if mlp_width != null then mlp_width else 4 * width;
  local drop = if dropout > 0 then [{ type: 'Dropout', id: 'dropout', p: dropout }] else [];
  local norm = { type: 'LayerNorm', id: 'norm', eps: eps };

  local block = {
    type: 'Chain',
    children: [
      {
        type: 'Residual',
        id: 'attention',
        children: [
          norm,
          { type: 'MultiHeadAttention', id: 'self_attention', num_heads: heads, dropout: dropout },
        ] + drop,
      },
      {
        type: 'Residual',
        id: 'mlp',
        children: [
          norm,
          { type: 'Linear', id: 'fc1', out_features: hidden },
          { type: 'GeLU', id: 'act' },
          { type: 'Linear', id: 'fc2', out_features: width },
        ] + drop,
      },
    ],
  };

  {
    type: 'Chain',
    inputs: { image: ['B', channels, image_size, image_size] },
    children: [
      {
        type: 'Chain',
        id: 'embeddings',
        children: [
          // one token per patch: (B, C, H, W) -> (B, width, H/p, W/p) -> (B, patches, width)
          { type: 'Conv2d', id: 'patch', out_channels: width, kernel_size: patch_size, stride: patch_size },
          { type: 'Flatten', id: 'flatten', start_dim: 2 },
          { type: 'Transpose', id: 'tokens', dim0: 1, dim1: 2 },
          { type: 'ClassToken', id: 'class_token' },
          { type: 'PositionEmbedding', id: 'position', num_positions: grid * grid + 1, dim: width },
        ] + drop,
      },
      {
        type: 'Chain',
        id: 'blocks',
        children: [block { id: std.toString(i) } for i in std.range(0, depth - 1)],
      },
      norm,
      // the class token's features: (B, 1 + patches, width) -> (B, 1, width) -> (B, width)
      { type: 'Slicing', id: 'class_token', dim: 1, start: 0, end: 1 },
      { type: 'Flatten', id: 'flatten' },
      { type: 'Linear', id: 'head', out_features: num_classes },
    ],
  }
