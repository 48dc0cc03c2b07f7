"""Per-pixel anomaly scores from segmentation logits (higher = more anomalous).

Post-hoc scores of paper 002 (Catalano et al.) on logits ``[N, C, H, W]``
(torch tensors; the same functions run inside the exported graph):

* ``msp``: ``1 - max_k softmax(l / t)_k`` (maximum softmax probability;
  ``msp_t0.5``, ``msp_t0.75``, ``msp_t1.1`` are temperature-scaled);
* ``maxlogit``: ``-max_k l_k``;
* ``maxentropy``: the entropy of ``softmax(l)`` in nats;
* ``void``: ``softmax(l)_void``, the probability of the void class of a
  model trained with void as a class.

Calibration (raw score -> fraction of normal pixels scoring lower) uses
:class:`~.calibration.EmpiricalCalibration` fitted on normal validation
pixels by :func:`fit_pixel_calibration`; a mask is ``score > threshold``
at a target pixel false-positive rate.
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

import numpy as np
import torch
import torch.nn.functional as F

from .calibration import EmpiricalCalibration

TEMPERATURES = (0.5, 0.75, 1.1)
PIXEL_SCORES = ('msp', *(f'msp_t{t:g}' for t in TEMPERATURES), 'maxlogit', 'maxentropy',
                'void')


def msp(logits, temperature=1.0):
    """``1 - max softmax(logits / temperature)`` over the class dimension."""
    return 1.0 - F.softmax(logits / temperature, dim=1).amax(dim=1)


def max_logit(logits):
    """``-max_k logits_k``: a low top logit means no class claims the pixel."""
    return -logits.amax(dim=1)


def max_entropy(logits):
    """Entropy of ``softmax(logits)`` over the classes, in nats."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def void_probability(logits, void_index):
    """Softmax probability of the void class.

    As ``exp(l_void - logsumexp(l))``: the same number as
    ``softmax(l)[:, void]``, without the full softmax over the class
    dimension, which ONNX Runtime runs as transpose + softmax + transpose
    (9 % of the shipped pixel graph's time on a 2-core CPU; this form
    saves 7 % of the whole graph, docs/PERFORMANCE.md).
    """
    return torch.exp(logits[:, void_index] - torch.logsumexp(logits, dim=1))


def pixel_score(name, logits, void_index=None):
    """Score map ``[N, H, W]`` of the score called ``name`` (see :data:`PIXEL_SCORES`).

    Raises:
        ValueError: an unknown score, or ``void`` for a model without a void class.

    """
    if name == 'msp':
        return msp(logits)
    if name.startswith('msp_t'):
        try:
            temperature = float(name[len('msp_t'):])
        except ValueError:
            temperature = 0.0
        if not temperature > 0:
            raise ValueError(f'Bad temperature in {name!r}: use msp_t<t> with t > 0.')
        return msp(logits, temperature)
    if name == 'maxlogit':
        return max_logit(logits)
    if name == 'maxentropy':
        return max_entropy(logits)
    if name == 'void':
        if void_index is None:
            raise ValueError('The void score needs a model trained with a void class.')
        return void_probability(logits, void_index)
    raise ValueError(f'Unknown pixel score {name!r}; choose from {", ".join(PIXEL_SCORES)}.')


def fit_pixel_calibration(score_maps, anomaly_masks, valid_masks=None, max_pixels=500_000,
                          seed=0):
    """Fit the calibration on the normal pixels of validation score maps.

    Args:
        score_maps: iterable of float ``[H, W]`` score maps.
        anomaly_masks: matching bool ``[H, W]`` (True = anomaly pixel; excluded).
        valid_masks: optional bool ``[H, W]`` (False = outside the image; excluded).
        max_pixels: at most this many normal pixels are kept, drawn uniformly
            (a reproducible reservoir over all maps).

    Raises:
        ValueError: no normal pixel at all.

    """
    rng = np.random.default_rng(seed)
    kept, keys = [], []
    for i, (scores, anomaly) in enumerate(zip(score_maps, anomaly_masks)):
        normal = ~np.asarray(anomaly, bool)
        if valid_masks is not None:
            normal &= np.asarray(valid_masks[i], bool)
        values = np.asarray(scores, np.float64)[normal]
        values = values[np.isfinite(values)]
        kept.append(values)
        keys.append(rng.random(values.size))
        if sum(v.size for v in kept) > 4 * max_pixels:
            kept, keys = _reservoir(kept, keys, max_pixels)
    kept, _ = _reservoir(kept, keys, max_pixels)
    values = np.concatenate(kept) if kept else np.empty(0)
    if not values.size:
        raise ValueError('No normal pixel to calibrate on.')
    return EmpiricalCalibration.fit(values)


def _reservoir(kept, keys, max_pixels):
    values, key = np.concatenate(kept), np.concatenate(keys)
    if values.size > max_pixels:
        top = np.argpartition(key, max_pixels)[:max_pixels]
        values, key = values[top], key[top]
    return [values], [key]
