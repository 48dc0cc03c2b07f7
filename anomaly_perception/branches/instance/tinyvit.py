"""TinyViT, MobileSAM's image encoder, written here from the papers' description.

MobileSAM (Zhang et al., 2023, "Faster Segment Anything") keeps SAM's
prompt encoder and mask decoder and replaces the ViT-H image encoder by
a TinyViT-5M (Wu et al., 2022, "TinyViT: Fast Pretraining Distillation
for Small Vision Transformers") distilled from it. The layout:

* **Stem** (``patch_embed.seq``): two 3x3 convolutions of stride 2 with
  BatchNorm (``ConvBN``: a bias-free convolution ``c`` and ``bn``), GELU
  between them: 1/4 of the input, ``embed_dims[0]`` channels.
* **Stage 0** (``layers.0``): MBConv blocks (1x1 expand, 3x3 depthwise,
  1x1 project, each a ``ConvBN``; GELU after each but the last, which
  follows the residual sum).
* **Stages 1-3** (``layers.1-3``): transformer blocks on tokens. Each
  block: windowed multi-head attention with a LayerNorm inside it and a
  learnt bias per head and per relative offset ``(|dy|, |dx|)`` inside
  the window (LeViT's attention bias; the query, key and value of one head
  are adjacent in the ``qkv`` projection), added to the tokens; then a
  3x3 depthwise ``ConvBN`` on the token grid (``local_conv``, no residual);
  then a pre-norm MLP (GELU), added. Windows are padded at the bottom and
  right when the grid is not a multiple of the window.
* **Patch merging** at the end of stages 0-2 (``downsample``): 1x1
  ``ConvBN``, 3x3 depthwise ``ConvBN`` of stride 2, 1x1 ``ConvBN``, GELU
  after the first two. MobileSAM's change for SAM: the **last** merging
  has stride 1, so the output grid is 1/16 of the input (64x64 tokens at
  1024 pixels, SAM's image-embedding grid).
* **Neck** (``neck``): SAM's, a bias-free 1x1 convolution to the prompt
  dimension, a 2-D LayerNorm, a bias-free 3x3 convolution, a 2-D LayerNorm.
* The classifier (``norm_head``, ``head``) of TinyViT's ImageNet
  pre-training is kept, unused, so that MobileSAM's published state dict
  loads key for key.

The module and parameter names follow that state dict
(``image_encoder.patch_embed.seq.0.c.weight``, ``image_encoder.layers.1.
blocks.0.attn.attention_biases`` ...); :func:`MOBILE_SAM` has the ``vit_t``
sizes (embed dims 64, 128, 160, 320; depths 2, 2, 6, 2; heads 2, 4, 5,
10; windows 7, 7, 14, 7). No MobileSAM weights ship here or can be
downloaded on the build machine: the tests build the layout at its full
and at tiny sizes with random weights, check shapes, the key names, ONNX
export parity and loading a state dict.
"""

# Copyright 2026 The anomaly_perception Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

import itertools

import torch
from torch import nn
import torch.nn.functional as F

MOBILE_SAM = {'type': 'tiny_vit', 'patch_size': 16, 'embed_dims': [64, 128, 160, 320],
              'depths': [2, 2, 6, 2], 'num_heads': [2, 4, 5, 10], 'window_sizes': [7, 7, 14, 7],
              'mlp_ratio': 4.0, 'mbconv_expand_ratio': 4.0, 'local_conv_size': 3,
              'num_classes': 1000}
CLASSIFIER_KEYS = ('norm_head.', 'head.')     # TinyViT's unused ImageNet classifier


class ConvBN(nn.Sequential):
    """A bias-free convolution ``c`` and its BatchNorm ``bn``."""

    def __init__(self, cin, cout, kernel=1, stride=1, groups=1, bn_weight=1.0):
        super().__init__()
        self.add_module('c', nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups,
                                       bias=False))
        bn = nn.BatchNorm2d(cout)
        nn.init.constant_(bn.weight, bn_weight)
        nn.init.zeros_(bn.bias)
        self.add_module('bn', bn)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of ``[B, C, H, W]`` (SAM's neck)."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (x - mean) / torch.sqrt(var + self.eps) \
            + self.bias[:, None, None]


class MBConv(nn.Module):
    """Inverted residual: expand, depthwise 3x3, project; GELU after the sum."""

    def __init__(self, dim, expand):
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = ConvBN(dim, hidden)
        self.conv2 = ConvBN(hidden, hidden, 3, groups=hidden)
        self.conv3 = ConvBN(hidden, dim, bn_weight=0.0)

    def forward(self, x):
        y = F.gelu(self.conv2(F.gelu(self.conv1(x))))
        return F.gelu(x + self.conv3(y))


class PatchMerging(nn.Module):
    """``[B, C, H, W]`` or tokens ``[B, H*W, C]`` -> tokens at ``stride`` (1 for the last)."""

    def __init__(self, resolution, dim, out_dim, stride):
        super().__init__()
        self.resolution = resolution
        self.conv1 = ConvBN(dim, out_dim)
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride=stride, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x):
        if x.dim() == 3:
            h, w = self.resolution
            x = x.transpose(1, 2).reshape(len(x), -1, h, w)
        x = self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2)


def relative_offsets(window):
    """Index ``[N, N]`` of each query-key pair's offset ``(|dy|, |dx|)`` in a window of N cells.

    Offsets are numbered in the order they first occur in a raster scan of
    the pairs (so ``(0, 0)`` is 0): the order of the bias table.
    """
    cells = list(itertools.product(range(window), range(window)))
    numbers, index = {}, []
    for a in cells:
        for b in cells:
            offset = (abs(a[0] - b[0]), abs(a[1] - b[1]))
            index.append(numbers.setdefault(offset, len(numbers)))
    return torch.tensor(index, dtype=torch.long).view(len(cells), len(cells))


class WindowAttention(nn.Module):
    """Multi-head attention over one window's tokens, with a learnt bias per offset and head."""

    def __init__(self, dim, num_heads, window):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = dim // num_heads
        self.scale = self.key_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        index = relative_offsets(window)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, int(index.max()) + 1))
        self.register_buffer('bias_index', index, persistent=False)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, 3 * self.key_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).split(self.key_dim, dim=3)
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.bias_index]
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class FeedForward(nn.Module):
    """Pre-norm MLP: LayerNorm, ``fc1``, GELU, ``fc2``."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    """Windowed attention (added), a depthwise 3x3 on the grid, the MLP (added)."""

    def __init__(self, dim, resolution, num_heads, window, mlp_ratio, local_conv):
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = WindowAttention(dim, num_heads, window)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, local_conv, groups=dim)

    def _windows(self, x):
        b, _, c = x.shape
        h, w = self.resolution
        s = self.window
        grid = x.view(b, h, w, c)
        pad_b, pad_r = (-h) % s, (-w) % s
        if pad_b or pad_r:
            grid = F.pad(grid, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        cells = grid.view(b, ph // s, s, pw // s, s, c).transpose(2, 3).reshape(-1, s * s, c)
        out = self.attn(cells).view(b, ph // s, pw // s, s, s, c).transpose(2, 3)
        return out.reshape(b, ph, pw, c)[:, :h, :w].reshape(b, h * w, c)

    def forward(self, x):
        b, n, c = x.shape
        h, w = self.resolution
        x = x + self._windows(x)
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).view(b, c, n).transpose(1, 2)
        return x + self.mlp(x)


class Stage(nn.Module):
    """``blocks`` then an optional ``downsample`` (patch merging)."""

    def __init__(self, blocks, downsample=None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x if self.downsample is None else self.downsample(x)


class TinyViT(nn.Module):
    """MobileSAM's image encoder: ``[B, 3, S, S]`` (SAM-normalised) -> ``[B, D, S/16, S/16]``.

    Args:
        img_size: the square input (SAM pads the resized image to it).
        out_chans: the neck's channels (SAM's prompt dimension, 256).
        embed_dims, depths, num_heads, window_sizes: per stage (four).
        mlp_ratio, mbconv_expand_ratio, local_conv_size: as in the module docs.
        num_classes: the unused classifier's classes (1000 in MobileSAM's weights).

    """

    def __init__(self, img_size, out_chans, embed_dims, depths, num_heads, window_sizes,
                 mlp_ratio=4.0, mbconv_expand_ratio=4.0, local_conv_size=3, num_classes=1000):
        super().__init__()
        lengths = {len(embed_dims), len(depths), len(num_heads), len(window_sizes)}
        if lengths != {4}:
            raise ValueError('TinyViT: embed_dims, depths, num_heads and window_sizes need '
                             'four entries each')
        if img_size % 16:
            raise ValueError(f'TinyViT: img_size {img_size} is not a multiple of 16')
        for dim, heads in zip(embed_dims[1:], num_heads[1:]):
            if dim % heads:
                raise ValueError(f'TinyViT: {dim} channels do not split into {heads} heads')
        self.img_size = int(img_size)
        first = embed_dims[0]
        self.patch_embed = nn.Module()
        self.patch_embed.seq = nn.Sequential(ConvBN(3, first // 2, 3, 2), nn.GELU(),
                                             ConvBN(first // 2, first, 3, 2))
        side = self.img_size // 4
        self.layers = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            res = (side, side)
            if i < 3:
                stride = 1 if i == 2 else 2       # the last merging keeps the 1/16 grid
                down = PatchMerging(res, dim, embed_dims[i + 1], stride)
            else:
                down = None
            if i == 0:
                blocks = [MBConv(dim, mbconv_expand_ratio) for _ in range(depth)]
            else:
                blocks = [TinyViTBlock(dim, res, num_heads[i], window_sizes[i], mlp_ratio,
                                       local_conv_size) for _ in range(depth)]
            self.layers.append(Stage(blocks, down))
            if i < 2:
                side //= 2
        self.grid = side
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes else nn.Identity()
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, 1, bias=False), LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, 3, padding=1, bias=False), LayerNorm2d(out_chans))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed.seq(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.shape
        return self.neck(x.transpose(1, 2).reshape(b, c, self.grid, self.grid))
