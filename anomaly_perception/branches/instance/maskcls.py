"""A compact Mask2Former-style mask-classification segmenter, and RbA on top of it.

Paper 003's semantic branch is Mask2Former (Swin-B, a deformable pixel
decoder, 100 queries); this is the same *kind* of model sized for a CPU:

* **Backbone**: ERFNet's encoder (the pixel branch's, so a trained pixel
  model can initialise it), tapped at 1/4 (64 channels) and 1/8 (128).
* **Pixel decoder**: an FPN: 1x1 projections to ``dim``, top-down sum at
  1/4, a 3x3 convolution -> the per-pixel mask features ``[B, dim, H/4,
  W/4]``; the 1/8 and 1/4 levels (with 2-D sine positions and a level
  embedding) are the transformer decoder's memory, used in turn.
* **Transformer decoder** (Mask2Former's layer): masked cross-attention
  (each query attends only where its previous mask is above 0.5; a query
  whose mask is empty attends everywhere), then self-attention, then an
  FFN, each with a residual and post-LayerNorm; ``queries`` learnable
  queries with learnable positions.
* **Heads** after the initial queries and after every layer (deep
  supervision): class logits over K classes + "no object", and masks =
  ``mask_embed(q) . mask_features``.

:class:`MaskClsSegmenterModel` is the deployed graph with the pixel
branch's interface (uint8 RGB in; anomaly map and class ids out), so the
pixel pipeline, node, ONNX export and evaluation take it unchanged: masks
upsampled to the input resolution, the anomaly map is RbA's ``U``
(:func:`~anomaly_perception.scoring.rba.rba_score`) and the classes are
the arg-max of the per-class evidence (Mask2Former's semantic inference).
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

import copy
import math

import torch
from torch import nn
import torch.nn.functional as F

from ...models.erfnet import Downsampler
from ...models.erfnet import Encoder
from ...models.registry import Architecture
from ...models.registry import Tensor
from ...scoring.rba import class_mask_evidence
from ...scoring.rba import rba_score

MODEL_FILE = 'maskcls_model.pt'


def sine_positions(height, width, dim, device=None):
    """2-D sine/cosine positions ``[height * width, dim]`` (DETR's, normalised to 2 pi)."""
    quarter = dim // 4
    freq = 10000.0 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height * 2 * math.pi
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width * 2 * math.pi
    py, px = ys[:, None] / freq, xs[:, None] / freq
    pos_y = torch.cat([py.sin(), py.cos()], dim=1)[:, None, :].expand(height, width, -1)
    pos_x = torch.cat([px.sin(), px.cos()], dim=1)[None, :, :].expand(height, width, -1)
    pos = torch.cat([pos_y, pos_x], dim=2).reshape(height * width, -1)
    return F.pad(pos, (0, dim - pos.shape[1]))


class DecoderLayer(nn.Module):
    """Masked cross-attention -> self-attention -> FFN (post-norm, Mask2Former's order)."""

    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.heads = heads
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Linear(ffn, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))

    def forward(self, q, qpos, memory, mpos, attn_mask):
        q = self.norms[0](q + self.cross(q + qpos, memory + mpos, memory,
                                         attn_mask=attn_mask, need_weights=False)[0])
        k = q + qpos
        q = self.norms[1](q + self.self_attn(k, k, q, need_weights=False)[0])
        return self.norms[2](q + self.ffn(q))


class MaskClassificationNet(nn.Module):
    """Float images ``[B, 3, H, W]`` in [0, 1] -> per-layer (class logits, mask logits at 1/4).

    ``forward`` returns two lists (one entry per prediction: the initial
    queries, then each layer): class logits ``[B, Q, K + 1]`` and mask
    logits ``[B, Q, H/4, W/4]``. H and W must be multiples of 8.
    """

    def __init__(self, num_classes, queries=16, dim=64, layers=3, heads=4, ffn=256):
        super().__init__()
        self.num_classes = num_classes
        self.encoder = Encoder(num_classes)
        self.lateral8 = nn.Conv2d(128, dim, 1)
        self.lateral4 = nn.Conv2d(64, dim, 1)
        self.mask_features = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1),
                                           nn.GroupNorm(8, dim), nn.ReLU(),
                                           nn.Conv2d(dim, dim, 1))
        self.level_embed = nn.Embedding(2, dim)
        self.query_feat = nn.Embedding(queries, dim)
        self.query_pos = nn.Embedding(queries, dim)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn) for _ in range(layers))
        self.out_norm = nn.LayerNorm(dim)
        self.class_embed = nn.Linear(dim, num_classes + 1)
        self.mask_embed = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim),
                                        nn.ReLU(), nn.Linear(dim, dim))

    def backbone(self, x):
        """Return the encoder features at 1/4 (64 channels) and 1/8 (128 channels)."""
        x = self.encoder.initial(x)
        quarter = None
        for layer in self.encoder.layers:
            if isinstance(layer, Downsampler) and x.shape[1] == 64:
                quarter = x
            x = layer(x)
        return quarter, x

    def _predict(self, q, mask_features):
        q = self.out_norm(q)
        masks = torch.einsum('bqc,bchw->bqhw', self.mask_embed(q), mask_features)
        return self.class_embed(q), masks

    def _attention_mask(self, masks, size):
        m = F.interpolate(masks, size=size, mode='bilinear', align_corners=False)
        blocked = (m.sigmoid() < 0.5).flatten(2)                   # [B, Q, HW]
        blocked = blocked & ~blocked.all(dim=-1, keepdim=True)     # empty masks see all
        return blocked.repeat_interleave(self.layers[0].heads, dim=0).detach()

    def forward(self, x):
        f4, f8 = self.backbone(x)
        p8 = self.lateral8(f8)
        p4 = self.lateral4(f4) + F.interpolate(p8, size=f4.shape[-2:], mode='bilinear',
                                               align_corners=False)
        mask_features = self.mask_features(p4)
        levels = []
        for i, p in enumerate((p8, p4)):
            h, w = p.shape[-2:]
            pos = sine_positions(h, w, p.shape[1], p.device)[None]
            levels.append((p.flatten(2).transpose(1, 2) + self.level_embed.weight[i], pos,
                           (h, w)))
        b = x.shape[0]
        q = self.query_feat.weight[None].expand(b, -1, -1)
        qpos = self.query_pos.weight[None].expand(b, -1, -1)
        cls, masks = self._predict(q, mask_features)
        all_cls, all_masks = [cls], [masks]
        for i, layer in enumerate(self.layers):
            memory, pos, size = levels[i % len(levels)]
            q = layer(q, qpos, memory, pos, self._attention_mask(masks, size))
            cls, masks = self._predict(q, mask_features)
            all_cls.append(cls)
            all_masks.append(masks)
        return all_cls, all_masks


class MaskClsSegmenterModel(nn.Module):
    """uint8 ``[N, H, W, 3]`` RGB -> (RbA map ``[N, H, W]`` float32, classes uint8).

    ``score``: ``rba`` (UGainS form) or ``rba_tanh`` (the RbA repository's).
    """

    def __init__(self, network, score='rba'):
        super().__init__()
        if score not in ('rba', 'rba_tanh'):
            raise ValueError(f'score {score!r}: rba or rba_tanh')
        self.network = network
        self.score = score

    def predictions(self, images):
        """Return the final class logits and the mask logits at the input resolution."""
        dtype = next(self.network.parameters()).dtype
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        cls, masks = self.network(x.to(dtype))
        masks = F.interpolate(masks[-1].to(torch.float32), size=x.shape[-2:], mode='bilinear',
                              align_corners=False)
        return cls[-1].to(torch.float32), masks

    def half_precision(self):
        """Put the network in fp16 (in place); scores run on float32 outputs."""
        self.network.half()
        return self

    def forward(self, images):
        cls, masks = self.predictions(images)
        anomaly = rba_score(cls, masks, tanh=self.score == 'rba_tanh')
        classes = class_mask_evidence(cls, masks).argmax(dim=1)
        return anomaly, classes.to(torch.uint8)


def _build_from_manifest(arch):
    network = MaskClassificationNet(arch['num_classes'], queries=arch.get('queries', 16),
                                    dim=arch.get('dim', 64), layers=arch.get('layers', 3),
                                    heads=arch.get('heads', 4), ffn=arch.get('ffn', 256))
    return MaskClsSegmenterModel(network, arch.get('score', 'rba'))


ARCHITECTURE = Architecture(
    name='maskcls_rba', build=_build_from_manifest, weights_file=MODEL_FILE,
    inputs=(Tensor('images', 'uint8', ('H', 'W', 3)),),
    outputs=(Tensor('anomaly', 'float32', ('H', 'W')), Tensor('classes', 'uint8', ('H', 'W'))),
    to_fp16=lambda module: copy.deepcopy(module).half_precision())
