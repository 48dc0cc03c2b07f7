"""The frame branch's training losses (RNVP+OE, Mantegazza et al.).

* :func:`nll_loss` — mean negative log-likelihood of normal embeddings;
* :func:`outlier_exposure_loss` — mean NLL of normals plus
  ``lambda * mean(max(0, gamma + NLL(normal) - NLL(anomaly)))`` over all
  normal/anomaly pairs of the batch: exposed anomalies are pushed to at
  least ``gamma`` nats above the normals;
* :func:`binary_classifier_loss` and :func:`reconstruction_loss` for the
  baselines (BCLASS, AE-MSE / AE-MAE).
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


def nll_loss(nll_normal):
    """Mean NLL of normal samples (``[N]`` nats) -> scalar."""
    return nll_normal.mean()


def outlier_exposure_margin(nll_normal, nll_anomaly, gamma=100.0):
    """``mean(max(0, gamma + NLL(normal_i) - NLL(anomaly_j)))`` over all pairs (i, j)."""
    if nll_anomaly.numel() == 0:
        return nll_normal.new_zeros(())
    gap = gamma + nll_normal[:, None] - nll_anomaly[None, :]
    return F.relu(gap).mean()


def outlier_exposure_loss(nll_normal, nll_anomaly, lam=1.0, gamma=100.0):
    """RNVP+OE loss: ``mean NLL(normal) + lam * margin term`` (see module docs)."""
    return nll_loss(nll_normal) + lam * outlier_exposure_margin(nll_normal, nll_anomaly, gamma)


def binary_classifier_loss(logits, labels):
    """Binary cross-entropy of logits against 0/1 labels (1 = anomaly)."""
    return F.binary_cross_entropy_with_logits(logits, labels.float())


def reconstruction_loss(recon, target):
    """Mean squared error of an autoencoder's reconstruction."""
    return torch.mean((recon - target) ** 2)
