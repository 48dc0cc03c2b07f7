"""Real-NVP density on embeddings (Dinh et al.), as used by RNVP+OE.

Affine coupling layers with alternating "odds" masks: layer k keeps the
dimensions selected by its mask and transforms the others,

    y = x * m + (1 - m) * (x * exp(s(x * m)) + t(x * m)),

with separate scale and translation networks (one hidden layer) and tanh
on the scale. The flow maps embeddings x to latents y; the score is the
full negative log-likelihood under a standard normal prior:

    NLL(x) = 0.5 * |y|^2 + 0.5 * D * log(2 pi) - sum_k log|det J_k|,
    log|det J_k| = sum((1 - m) * s(x * m)).
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

import math

import torch
from torch import nn


def odds_mask(dim, flip=False):
    """Return the "odds" mask: 1 on odd indices, 0 on even ones (``flip`` swaps them)."""
    mask = (torch.arange(dim) % 2).float()
    return 1 - mask if flip else mask


class AffineCoupling(nn.Module):
    """One affine coupling layer with separate scale (tanh) and translation networks."""

    def __init__(self, dim, mask, hidden=128):
        super().__init__()
        self.register_buffer('mask', mask)
        self.scale = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim),
                                   nn.Tanh())
        self.shift = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x):
        """Return ``(y, log|det J|)`` with ``log|det J|`` of shape ``[N]``."""
        kept = x * self.mask
        s = self.scale(kept) * (1 - self.mask)
        t = self.shift(kept) * (1 - self.mask)
        y = kept + (1 - self.mask) * (x * torch.exp(s) + t)
        return y, s.sum(dim=1)

    def inverse(self, y):
        kept = y * self.mask
        s = self.scale(kept) * (1 - self.mask)
        t = self.shift(kept) * (1 - self.mask)
        return kept + (1 - self.mask) * (y - t) * torch.exp(-s)


class RealNVP(nn.Module):
    """A stack of affine couplings with alternating odds masks.

    Args:
        dim: embedding size (128).
        n_couplings: number of coupling layers (4).
        hidden: hidden units of each scale/translation network (128).

    """

    def __init__(self, dim=128, n_couplings=4, hidden=128):
        super().__init__()
        self.config = {'dim': dim, 'n_couplings': n_couplings, 'hidden': hidden}
        self.dim = dim
        self.couplings = nn.ModuleList(
            AffineCoupling(dim, odds_mask(dim, flip=bool(k % 2)), hidden)
            for k in range(n_couplings))

    def forward(self, x):
        """Map embeddings ``[N, D]`` to latents; return ``(y, log|det J|)``."""
        logdet = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for layer in self.couplings:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y):
        for layer in reversed(self.couplings):
            y = layer.inverse(y)
        return y

    def prior_nll(self, y):
        """Standard-normal negative log density of latents: ``[N]`` nats."""
        return 0.5 * y.pow(2).sum(dim=1) + 0.5 * self.dim * math.log(2 * math.pi)

    def nll(self, x):
        """Negative log-likelihood of embeddings ``[N, D]``: ``[N]`` nats (the anomaly score)."""
        y, logdet = self(x)
        return self.prior_nll(y) - logdet
