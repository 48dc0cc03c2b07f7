"""Anomaly-detection metrics, with the conventions the papers use.

Every function states its convention; ``docs/METRICS.md`` collects them.
Labels are binary with 1 = anomaly (the positive class); scores are higher
for "more anomalous". Where a metric is undefined (no positives or no
negatives), it is ``nan``, never a made-up number.

Frame level (exact, from all scores at once):

* :func:`auroc` — area under the ROC curve, trapezoidal over the distinct
  thresholds; equal to scikit-learn's ``roc_auc_score``.
* :func:`average_precision` — step-wise AP, ``sum_k (R_k - R_{k-1}) P_k``
  over distinct thresholds in decreasing order; scikit-learn's
  ``average_precision_score``.
* :func:`pr_auc_trapezoid` — trapezoidal area under the PR curve starting at
  (recall 0, precision 1); scikit-learn's ``auc(recall, precision)``. Some
  hazard-detection code reports this as "AUPRC"; it is not AP.
* :func:`fpr_at_tpr` — FPR at the first threshold, scanning from the highest
  score down, where TPR >= 0.95 (FPR95). Tied scores enter together.

Pixel level (streaming): :class:`BinaryScoreAccumulator` ignores void
(255) pixels and accumulates counts per score bin, so memory does not grow
with the number of images; see its docstring for the binning.
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

import dataclasses

import numpy as np

VOID = 255


# --- curves from counts -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BinaryCurve:
    """Cumulative counts at every distinct threshold, highest threshold first.

    Attributes:
        thresholds: distinct scores in decreasing order.
        tps: positives with ``score >= thresholds[k]``.
        fps: negatives with ``score >= thresholds[k]``.

    """

    thresholds: np.ndarray
    tps: np.ndarray
    fps: np.ndarray

    @property
    def n_pos(self):
        return int(self.tps[-1]) if self.tps.size else 0

    @property
    def n_neg(self):
        return int(self.fps[-1]) if self.fps.size else 0

    @classmethod
    def from_counts(cls, thresholds_desc, pos, neg):
        """Build from per-threshold (not cumulative) counts in decreasing score order."""
        return cls(np.asarray(thresholds_desc), np.cumsum(pos, dtype=np.int64),
                   np.cumsum(neg, dtype=np.int64))

    def roc(self):
        """Return ``(fpr, tpr, thresholds)``, starting at (0, 0) with threshold +inf."""
        if self.n_pos == 0 or self.n_neg == 0:
            nan = np.array([np.nan])
            return nan, nan, nan
        fpr = np.concatenate([[0.0], self.fps / self.n_neg])
        tpr = np.concatenate([[0.0], self.tps / self.n_pos])
        return fpr, tpr, np.concatenate([[np.inf], self.thresholds])

    def precision_recall(self):
        """Return ``(precision, recall, thresholds)`` in decreasing threshold order."""
        if self.n_pos == 0:
            nan = np.array([np.nan])
            return nan, nan, nan
        precision = self.tps / (self.tps + self.fps)
        recall = self.tps / self.n_pos
        return precision, recall, self.thresholds

    def auroc(self):
        """Area under ROC (trapezoidal); ``nan`` without both classes."""
        fpr, tpr, _ = self.roc()
        if np.isnan(fpr[0]):
            return float('nan')
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)

    def average_precision(self):
        """Step-wise AP (scikit-learn convention); ``nan`` without positives."""
        precision, recall, _ = self.precision_recall()
        if np.isnan(recall[0]):
            return float('nan')
        return float(np.sum(np.diff(recall, prepend=0.0) * precision))

    def pr_auc_trapezoid(self):
        """Trapezoidal area under PR from (recall 0, precision 1); ``nan`` without positives."""
        precision, recall, _ = self.precision_recall()
        if np.isnan(recall[0]):
            return float('nan')
        p = np.concatenate([[1.0], precision])
        r = np.concatenate([[0.0], recall])
        return float(np.sum(np.diff(r) * (p[1:] + p[:-1])) / 2.0)

    def fpr_at_tpr(self, tpr=0.95):
        """FPR at the first threshold (highest first) whose TPR reaches ``tpr``."""
        if self.n_pos == 0 or self.n_neg == 0:
            return float('nan')
        # Integer comparison: TPR >= t  <=>  tps >= ceil(t * n_pos), free of rounding.
        need = int(np.ceil(tpr * self.n_pos - 1e-9))
        k = int(np.searchsorted(self.tps, need, side='left'))
        return float(self.fps[k] / self.n_neg)

    def threshold_at_tpr(self, tpr=0.95):
        """Return the score threshold at which :meth:`fpr_at_tpr` is taken."""
        if self.n_pos == 0:
            return float('nan')
        need = int(np.ceil(tpr * self.n_pos - 1e-9))
        return float(self.thresholds[int(np.searchsorted(self.tps, need, side='left'))])

    def threshold_at_fpr(self, fpr):
        """Return the lowest threshold whose FPR does not exceed ``fpr`` (``inf``: none)."""
        if self.n_neg == 0:
            return float('nan')
        allowed = int(np.floor(fpr * self.n_neg + 1e-9))
        k = int(np.searchsorted(self.fps, allowed, side='right')) - 1
        return float(self.thresholds[k]) if k >= 0 else float('inf')

    def tpr_at_threshold(self, threshold):
        """Return the fraction of positives scoring ``>= threshold`` (``nan`` without any)."""
        if self.n_pos == 0:
            return float('nan')
        above = int(np.searchsorted(-self.thresholds, -threshold, side='right'))
        return float(self.tps[above - 1] / self.n_pos) if above else 0.0

    def summary(self):
        """Return the usual numbers as a dict: auroc, ap, fpr95, pr_auc_trapezoid, counts."""
        return {
            'auroc': self.auroc(),
            'ap': self.average_precision(),
            'fpr95': self.fpr_at_tpr(0.95),
            'pr_auc_trapezoid': self.pr_auc_trapezoid(),
            'n_pos': self.n_pos,
            'n_neg': self.n_neg,
        }

    def flipped(self):
        """Return the curve of the opposite question: classes swapped, scores negated.

        Used for "success" metrics (AP-Suc), where the correct pixels are the
        positives and a lower failure score means more confident.
        """
        pos = np.diff(self.tps, prepend=0)[::-1]
        neg = np.diff(self.fps, prepend=0)[::-1]
        return BinaryCurve.from_counts(-self.thresholds[::-1], neg, pos)


def _check_binary(labels, scores):
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f'labels ({labels.size}) and scores ({scores.size}) differ in length')
    if labels.dtype != np.bool_:
        uniq = np.unique(labels)
        if not np.all(np.isin(uniq, (0, 1))):
            raise ValueError(f'labels must be 0/1 or bool, found values {uniq[:10].tolist()}')
        labels = labels.astype(bool)
    if scores.dtype.kind not in 'fiub':
        raise ValueError(f'scores must be numeric, got {scores.dtype}')
    if scores.dtype.kind == 'f' and not np.all(np.isfinite(scores)):
        raise ValueError('scores contain NaN or infinite values; score them or drop them first')
    return labels, scores


def binary_curve(labels, scores):
    """Exact :class:`BinaryCurve` from all labels (1/True = anomaly) and scores."""
    labels, scores = _check_binary(labels, scores)
    if scores.size == 0:
        return BinaryCurve(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    order = np.argsort(scores)[::-1]
    sorted_scores = scores[order]
    sorted_labels = labels[order]
    starts = np.concatenate([[0], np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]) + 1])
    pos = np.add.reduceat(sorted_labels.astype(np.int64), starts)
    size = np.diff(np.append(starts, sorted_scores.size))
    return BinaryCurve.from_counts(sorted_scores[starts], pos, size - pos)


def auroc(labels, scores):
    """Area under the ROC curve (scikit-learn ``roc_auc_score``); ``nan`` if one class."""
    return binary_curve(labels, scores).auroc()


def average_precision(labels, scores):
    """Step-wise average precision (scikit-learn ``average_precision_score``)."""
    return binary_curve(labels, scores).average_precision()


def pr_auc_trapezoid(labels, scores):
    """Trapezoidal PR area from (0, 1) (scikit-learn ``auc(recall, precision)``)."""
    return binary_curve(labels, scores).pr_auc_trapezoid()


def fpr_at_tpr(labels, scores, tpr=0.95):
    """FPR at the first threshold, highest first, where TPR >= ``tpr`` (FPR95)."""
    return binary_curve(labels, scores).fpr_at_tpr(tpr)


def per_type_auroc(labels, names, scores, environments=None):
    """AUROC of normal frames vs the frames of each anomaly type.

    With ``environments`` (one per frame), a type is compared with the
    normal frames of the environments its frames come from, so that a
    tunnel-only type is not ranked against corridor normals.
    """
    labels, names = np.asarray(labels), np.asarray(names)
    envs = np.asarray(environments) if environments is not None else None
    out = {}
    for name in sorted(set(names[labels != 0]), key=lambda n: int(labels[names == n][0])):
        normal = labels == 0
        if envs is not None:
            normal &= np.isin(envs, np.unique(envs[names == name]))
        sel = normal | (names == name)
        out[name] = binary_curve(labels[sel] != 0, scores[sel]).auroc()
    return out


# --- streaming pixel metrics --------------------------------------------------------------


def _float_keys(scores, shift):
    """Map float32 scores to uint32 keys in the same order (then drop ``shift`` low bits)."""
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.uint32)
    keys = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))
    return keys >> np.uint32(shift) if shift else keys


def _key_values(keys, shift):
    """Inverse of :func:`_float_keys`: the smallest float32 of each key's bin."""
    bits = keys.astype(np.uint32) << np.uint32(shift)
    raw = np.where(bits & np.uint32(0x80000000), bits & np.uint32(0x7FFFFFFF), ~bits)
    return raw.astype(np.uint32).view(np.float32).astype(np.float64)


class BinaryScoreAccumulator:
    """Streaming ROC/PR statistics over many images, ignoring void pixels.

    Scores are binned on their float32 bit pattern, keeping
    ``mantissa_bits`` of the 23 mantissa bits: the bins are relative
    (``2**-mantissa_bits`` of the value) and need no score range, so NLL in
    nats, MaxLogit and probabilities all work. With ``mantissa_bits=23`` the
    result is exact for float32 scores; the default 12 bits bounds memory to
    a few thousand bins per octave of scores and changes AUROC/AP by far
    less than 1e-3 on typical maps. The result does not depend on how the
    pixels are split across :meth:`update` calls or their order.

    Example::

        acc = BinaryScoreAccumulator()
        for label, score in dataset:        # label: uint8 [H, W], 0/1/255
            acc.update(label, score)
        print(acc.curve().summary())

    """

    def __init__(self, mantissa_bits=12, ignore_index=VOID):
        if not 0 <= mantissa_bits <= 23:
            raise ValueError(f'mantissa_bits must be in 0..23, got {mantissa_bits}')
        self.shift = 23 - int(mantissa_bits)
        self.ignore_index = ignore_index
        self._keys = np.zeros(0, np.uint32)
        self._pos = np.zeros(0, np.int64)
        self._neg = np.zeros(0, np.int64)

    def update(self, labels, scores, valid=None):
        """Add one image (or any batch of pixels).

        Args:
            labels: int/bool array, 1 = anomaly, 0 = normal, ``ignore_index`` = void.
            scores: float array of the same shape.
            valid: optional bool mask of pixels to use (ANDed with non-void).

        """
        labels = np.asarray(labels)
        scores = np.asarray(scores)
        if labels.shape != scores.shape:
            raise ValueError(f'labels {labels.shape} and scores {scores.shape} differ in shape')
        keep = labels != self.ignore_index if self.ignore_index is not None else (
            np.ones(labels.shape, bool))
        if valid is not None:
            keep &= np.asarray(valid, dtype=bool)
        lab, sco = _check_binary(labels[keep], scores[keep])
        keys = _float_keys(sco, self.shift)
        pos_keys, pos_counts = np.unique(keys[lab], return_counts=True)
        neg_keys, neg_counts = np.unique(keys[~lab], return_counts=True)
        self._merge(pos_keys, pos_counts, neg_keys, neg_counts)

    def _merge(self, pos_keys, pos_counts, neg_keys, neg_counts):
        all_keys = np.concatenate([self._keys, pos_keys, neg_keys])
        uniq, inverse = np.unique(all_keys, return_inverse=True)
        n_old, n_pos = self._keys.size, pos_keys.size
        pos = np.zeros(uniq.size, np.int64)
        neg = np.zeros(uniq.size, np.int64)
        np.add.at(pos, inverse[:n_old], self._pos)
        np.add.at(neg, inverse[:n_old], self._neg)
        np.add.at(pos, inverse[n_old:n_old + n_pos], pos_counts)
        np.add.at(neg, inverse[n_old + n_pos:], neg_counts)
        self._keys, self._pos, self._neg = uniq, pos, neg

    def merge(self, other):
        """Add the counts of another accumulator with the same binning."""
        if other.shift != self.shift:
            raise ValueError('cannot merge accumulators with different mantissa_bits')
        self._merge(other._keys, other._pos, other._neg[:0], other._neg[:0])
        self._merge(other._keys[:0], other._pos[:0], other._keys, other._neg)

    def state(self):
        """Return the counts as plain arrays (``shift``, ``keys``, ``pos``, ``neg``), to store."""
        return {'shift': np.int64(self.shift), 'keys': self._keys, 'pos': self._pos,
                'neg': self._neg}

    @classmethod
    def from_state(cls, state, ignore_index=VOID):
        """Rebuild an accumulator from :meth:`state` (e.g. one bag's, to pool many)."""
        acc = cls(23 - int(state['shift']), ignore_index)
        keys, pos, neg = (np.asarray(state[k]) for k in ('keys', 'pos', 'neg'))
        if not keys.shape == pos.shape == neg.shape or (keys.size and np.any(np.diff(keys) <= 0)):
            raise ValueError('not an accumulator state: keys, pos and neg must be equal-length '
                             'arrays with increasing keys')
        acc._keys, acc._pos, acc._neg = (keys.astype(np.uint32), pos.astype(np.int64),
                                         neg.astype(np.int64))
        return acc

    @property
    def n_bins(self):
        return int(self._keys.size)

    def curve(self):
        """Return the :class:`BinaryCurve` of everything added (thresholds: bin lower edges)."""
        thresholds = _key_values(self._keys[::-1], self.shift)
        return BinaryCurve.from_counts(thresholds, self._pos[::-1], self._neg[::-1])

    def summary(self):
        return self.curve().summary()
