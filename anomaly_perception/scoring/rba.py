"""Rejected by All (RbA): the anomaly score of a mask-classification segmenter.

A Mask2Former-style model gives, per query ``n``, class logits over ``K``
classes plus "no object" and a mask logit per pixel. A pixel that every
query's confident in-distribution mask leaves uncovered is anomalous:

* ``rba_score`` (UGainS form, paper 003 eq. 1; the UGainS code's
  ``nls_ood_inference``): ``U(x) = -sum_k sum_n softmax(cls_n)_k *
  sigmoid(mask_n(x))``, ``k`` over the K real classes only, so
  ``U`` lies in ``[-N, 0]``; higher = more anomalous.
* ``rba_score(..., tanh=True)`` (the RbA repository's ``get_RbA``):
  ``-sum_k tanh(sum_n softmax(cls_n)_k * sigmoid(mask_n(x)))``, in
  ``[-K, 0]``.

Both run on torch tensors, batched: class logits ``[B, N, K + 1]`` and mask
logits ``[B, N, H, W]`` -> ``[B, H, W]``.
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


def class_mask_evidence(class_logits, mask_logits):
    """Per-class evidence ``sum_n softmax(cls_n)_k * sigmoid(mask_n)``: ``[B, K, H, W]``."""
    if class_logits.dim() != 3 or mask_logits.dim() != 4:
        raise ValueError(f'expected class logits [B, N, K+1] and mask logits [B, N, H, W], got '
                         f'{tuple(class_logits.shape)} and {tuple(mask_logits.shape)}')
    if class_logits.shape[:2] != mask_logits.shape[:2]:
        raise ValueError(f'{class_logits.shape[1]} queries of class logits but '
                         f'{mask_logits.shape[1]} masks')
    probs = class_logits.softmax(dim=-1)[..., :-1]          # drop "no object"
    return torch.einsum('bnk,bnhw->bkhw', probs, mask_logits.sigmoid())


def rba_score(class_logits, mask_logits, tanh=False):
    """Return the RbA anomaly score ``[B, H, W]`` (higher = more anomalous; see module docs)."""
    evidence = class_mask_evidence(class_logits, mask_logits)
    if tanh:
        evidence = torch.tanh(evidence)
    return -evidence.sum(dim=1)
