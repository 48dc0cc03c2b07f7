"""The pixel branch's training losses (ERFNet anomaly segmentation, Catalano et al.).

Every loss is on logits ``[N, C, H, W]`` against class ids ``[N, H, W]``,
``ignore_index`` pixels (void, anomalies, outside the image) excluded,
mean over the counted pixels:

* :func:`cross_entropy` with class weights from :func:`class_weights`;
* :func:`focal_loss` — ``-(1 - p_t)^gamma log p_t`` per pixel (gamma = 0 is
  cross-entropy; the default is 2);
* :func:`isomax_plus_loss` — EIML, the IsoMax+ loss: ``-log softmax(E *
  logits)_y`` with the entropic scale E = 10, where the logits are the
  negative scaled distances of :class:`~...models.erfnet.IsoMaxPlusHead`
  (whose prototypes and distance scale are model parameters, so an
  optimiser over the model trains them);
* :func:`logitnorm_loss` — cross-entropy of ``logits / (tau * ||logits||)``
  with the norm over the class dimension (dim 1), not over the image;
* :class:`PixelLoss` — one of those or a weighted sum (``eiml+focal``,
  ``logitnorm+ce``...), built from a name.
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

import torch
import torch.nn.functional as F

IGNORE_INDEX = 255


def class_weights(label_maps, num_classes, ignore_index=IGNORE_INDEX, c=1.02):
    """Return ENet class weights ``1 / ln(c + p_k)`` from the class frequencies ``p_k``.

    ``label_maps`` is an iterable of integer arrays or tensors of class ids;
    ``ignore_index`` pixels are not counted. A class that never occurs gets
    the largest weight (``1 / ln c``). Returns float32 ``[num_classes]``.
    """
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for labels in label_maps:
        labels = torch.as_tensor(labels).reshape(-1).long()
        labels = labels[(labels != ignore_index) & (labels >= 0) & (labels < num_classes)]
        counts += torch.bincount(labels, minlength=num_classes).double()
    p = counts / counts.sum().clamp_min(1.0)
    return (1.0 / torch.log(c + p)).float()


def _masked_mean(per_pixel, target, ignore_index):
    valid = target != ignore_index
    if not valid.any():
        return per_pixel.sum() * 0.0
    return per_pixel[valid].mean()


def cross_entropy(logits, target, weight=None, ignore_index=IGNORE_INDEX):
    """Pixel cross-entropy; with ``weight``, the weighted mean over counted pixels."""
    return F.cross_entropy(logits, target.long(), weight=weight, ignore_index=ignore_index)


def focal_loss(logits, target, gamma=2.0, weight=None, ignore_index=IGNORE_INDEX):
    """Per-pixel focal loss ``-w_y (1 - p_t)^gamma log p_t``, mean over counted pixels."""
    target = target.long()
    safe = torch.where(target == ignore_index, torch.zeros_like(target), target)
    log_p = F.log_softmax(logits, dim=1).gather(1, safe[:, None]).squeeze(1)
    per_pixel = -((1.0 - log_p.exp()).clamp_min(0.0) ** gamma) * log_p
    if weight is not None:
        w = weight.to(logits.dtype)[safe]
        valid = target != ignore_index
        return (per_pixel * w)[valid].sum() / w[valid].sum().clamp_min(1e-12)
    return _masked_mean(per_pixel, target, ignore_index)


def isomax_plus_loss(logits, target, entropic_scale=10.0, ignore_index=IGNORE_INDEX):
    """EIML (IsoMax+): ``-log softmax(E * logits)_y`` (logits = negative scaled distances)."""
    return F.cross_entropy(entropic_scale * logits, target.long(), ignore_index=ignore_index)


def logitnorm(logits, tau=1.0):
    """``logits / (tau * (||logits||_2 + 1e-7))`` with the norm over the class dimension."""
    return logits / (tau * (torch.linalg.vector_norm(logits, dim=1, keepdim=True) + 1e-7))


def logitnorm_loss(logits, target, tau=1.0, weight=None, ignore_index=IGNORE_INDEX):
    """LogitNorm: cross-entropy of :func:`logitnorm` logits."""
    return cross_entropy(logitnorm(logits, tau), target, weight, ignore_index)


PIXEL_LOSSES = ('ce', 'focal', 'eiml', 'logitnorm')


class PixelLoss:
    """A pixel loss by name: one term, or a weighted sum of terms.

    The terms are ``ce``, ``focal``, ``eiml`` and ``logitnorm``; a sum such
    as ``eiml+focal`` weighs each by ``weights`` (default 1 each).

    Args:
        name: the terms joined by ``+``.
        weights: ``{term: weight}``.
        class_weight: per-class weights for ``ce`` and ``focal`` (and the CE
            inside ``logitnorm``); EIML is unweighted, as published.
        gamma: focal loss exponent; tau: LogitNorm temperature;
        entropic_scale: EIML's E.

    """

    def __init__(self, name, weights=None, class_weight=None, gamma=2.0, tau=1.0,
                 entropic_scale=10.0, ignore_index=IGNORE_INDEX):
        self.terms = [t.strip() for t in str(name).lower().split('+') if t.strip()]
        unknown = [t for t in self.terms if t not in PIXEL_LOSSES]
        if not self.terms or unknown or len(set(self.terms)) != len(self.terms):
            raise ValueError(f'Unknown pixel loss {name!r}: use one of {", ".join(PIXEL_LOSSES)} '
                             'or several joined by + (each once).')
        weights = dict(weights or {})
        extra = set(weights) - set(self.terms)
        if extra:
            raise ValueError(f'Weights for terms not in {name!r}: {sorted(extra)}.')
        self.weights = {t: float(weights.get(t, 1.0)) for t in self.terms}
        self.name = '+'.join(self.terms)
        self.class_weight = class_weight
        self.gamma, self.tau, self.entropic_scale = gamma, tau, entropic_scale
        self.ignore_index = ignore_index

    @property
    def needs_isomax(self):
        """Whether the model's logits must be IsoMax+ distances (any ``eiml`` term)."""
        return 'eiml' in self.terms

    def term(self, name, logits, target):
        w, ignore = self.class_weight, self.ignore_index
        if w is not None:
            w = w.to(logits.device)
        if name == 'ce':
            return cross_entropy(logits, target, w, ignore)
        if name == 'focal':
            return focal_loss(logits, target, self.gamma, w, ignore)
        if name == 'eiml':
            return isomax_plus_loss(logits, target, self.entropic_scale, ignore)
        return logitnorm_loss(logits, target, self.tau, w, ignore)

    def __call__(self, logits, target):
        return sum(self.weights[t] * self.term(t, logits, target) for t in self.terms)
