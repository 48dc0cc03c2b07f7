"""Segmentation metrics, streaming over images: pixels, classes, failures, instances.

Conventions as in :mod:`.binary` (1 = anomaly, higher score = more
anomalous, void (255) pixels ignored, ``nan`` where undefined);
``docs/METRICS.md`` collects them.

* :class:`PerTypePixelAccumulator` — pixel AuPRC / FPR95 / AUROC pooled and
  per anomaly type, each type against every normal pixel;
* :class:`ConfusionMatrix` — mIoU of the semantic classes;
* :class:`FailureDetectionAccumulator` — FSNet's AP-Err / AP-Suc / AUROC /
  FPR95 (positives: misclassified pixels);
* :class:`InstanceAPAccumulator` — iAP and iAP50 (Cityscapes protocol);
* :class:`ComponentF1Accumulator` — SegmentMeIfYouCan's component-level
  F1*, sIoU and PPV.
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

import cv2
import numpy as np

from .binary import BinaryScoreAccumulator
from .binary import VOID


class PerTypePixelAccumulator:
    """Pixel scores of a split, pooled and by anomaly type (streaming).

    Each type's curve pits that type's anomaly pixels against every normal
    pixel of the split, so types are compared at the same false-positive
    cost; the pooled curve holds every pixel once.

    Example::

        acc = PerTypePixelAccumulator()
        for truth, score, kind in frames:       # truth: uint8 [H, W], 0/1/255
            acc.update(truth, score, kind)
        pooled, per_type = acc.curve(), acc.per_type(pooled_fpr=0.2)

    """

    def __init__(self, mantissa_bits=12, ignore_index=VOID):
        self._args = {'mantissa_bits': mantissa_bits, 'ignore_index': ignore_index}
        self.ignore_index = ignore_index
        self.negatives = BinaryScoreAccumulator(**self._args)
        self.positives = {}

    def update(self, truth, scores, kind):
        """Add one image of anomaly type ``kind`` (truth: 1 anomaly, 0 normal, void)."""
        truth = np.asarray(truth)
        anomalous = truth == 1
        self.negatives.update(np.where(anomalous, self.ignore_index, truth), scores)
        if anomalous.any():
            pos = self.positives.setdefault(kind, BinaryScoreAccumulator(**self._args))
            pos.update(np.where(anomalous, 1, self.ignore_index), scores)

    def _merged(self, positives):
        acc = BinaryScoreAccumulator(**self._args)
        acc.merge(self.negatives)
        for pos in positives:
            acc.merge(pos)
        return acc.curve()

    def curve(self):
        """Return the pooled :class:`BinaryCurve` (every type's anomaly pixels)."""
        return self._merged(self.positives.values())

    def per_type(self, pooled_fpr=None):
        """Per type: AuPRC, FPR95, AUROC, anomaly pixels and their share of all.

        With ``pooled_fpr``: also the type's recall at the threshold where the
        pooled pixel FPR is ``pooled_fpr`` and the share of all anomaly
        pixels it misses there (these sum to the pooled miss rate).
        """
        n_all = sum(int(p._pos.sum()) for p in self.positives.values())
        threshold = None if pooled_fpr is None else self.curve().threshold_at_fpr(pooled_fpr)
        out = {}
        for kind, pos in sorted(self.positives.items()):
            c = self._merged([pos])
            entry = {'auprc': c.average_precision(), 'fpr95': c.fpr_at_tpr(0.95),
                     'auroc': c.auroc(), 'pixels': c.n_pos, 'share': c.n_pos / max(1, n_all)}
            if threshold is not None:
                recall = c.tpr_at_threshold(threshold)
                entry['recall_at_pooled_fpr'] = recall
                entry['missed_share_at_pooled_fpr'] = (1.0 - recall) * entry['share']
            out[kind] = entry
        return out


class ConfusionMatrix:
    """Semantic-segmentation confusion matrix (rows = ground truth, columns = prediction).

    Pixels whose ground truth is ``ignore_index`` are skipped. IoU of class c
    is ``TP / (TP + FP + FN)``; classes absent from both ground truth and
    prediction have IoU ``nan`` and are left out of the mean (mIoU).
    """

    def __init__(self, num_classes, ignore_index=VOID):
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, prediction, target):
        prediction = np.asarray(prediction).reshape(-1)
        target = np.asarray(target).reshape(-1)
        if prediction.shape != target.shape:
            raise ValueError('prediction and target differ in size')
        keep = target != self.ignore_index
        prediction, target = prediction[keep].astype(np.int64), target[keep].astype(np.int64)
        for name, arr in (('prediction', prediction), ('target', target)):
            if arr.size and (arr.min() < 0 or arr.max() >= self.num_classes):
                raise ValueError(
                    f'{name} holds class ids outside 0..{self.num_classes - 1} '
                    f'(found {arr.min()}..{arr.max()})'
                )
        idx = target * self.num_classes + prediction
        self.matrix += np.bincount(idx, minlength=self.num_classes ** 2).reshape(
            self.num_classes, self.num_classes)

    def iou(self):
        tp = np.diag(self.matrix).astype(np.float64)
        denom = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)

    def miou(self):
        iou = self.iou()
        return float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float('nan')

    def pixel_accuracy(self):
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float('nan')


class FailureDetectionAccumulator:
    """FSNet-style failure-detection metrics over many images.

    A pixel is an *error* when the segmentation's prediction differs from
    the ground truth (void pixels ignored). The failure map scores "this
    pixel is wrong" (higher = more likely an error).

    * ``ap_err``: AP with the errors as positives, ranked by failure score;
    * ``ap_suc``: AP with the correct pixels as positives, ranked by
      confidence (negated failure score);
    * ``auroc``: errors vs correct pixels (the same either way round);
    * ``fpr95``: the fraction of errors accepted as correct at the
      confidence threshold that accepts 95% of the correct pixels (the
      ConfidNet/FSNet convention: the positives of TPR are correct pixels);
    * ``risk_coverage``: at each coverage level (the share of pixels kept,
      the most confident first), the error rate among the kept pixels.
    """

    COVERAGE = tuple(round(0.1 * k, 1) for k in range(1, 11))

    def __init__(self, mantissa_bits=12, ignore_index=VOID):
        self._acc = BinaryScoreAccumulator(mantissa_bits, ignore_index=None)
        self.ignore_index = ignore_index

    def update(self, failure_score, prediction, target):
        prediction = np.asarray(prediction)
        target = np.asarray(target)
        if not (prediction.shape == target.shape == np.shape(failure_score)):
            raise ValueError('failure_score, prediction and target must have the same shape')
        valid = target != self.ignore_index
        errors = (prediction != target).astype(np.uint8)
        self._acc.update(errors, np.asarray(failure_score), valid=valid)

    def results(self):
        err = self._acc.curve()
        suc = err.flipped()
        return {
            'ap_err': err.average_precision(),
            'ap_suc': suc.average_precision(),
            'auroc': err.auroc(),
            'fpr95': suc.fpr_at_tpr(0.95),
            'n_errors': err.n_pos,
            'n_correct': err.n_neg,
            'risk_coverage': self.risk_coverage(),
        }

    def risk_coverage(self, levels=None):
        """``[(coverage, risk)]``: error rate of the most confident ``coverage`` of pixels.

        Pixels are kept in order of increasing failure score, whole groups of
        equal scores at a time; each level reports the first such prefix that
        covers at least that share (its actual coverage is returned).
        """
        suc = self._acc.curve().flipped()      # positives: correct, most confident first
        total = suc.n_pos + suc.n_neg
        if total == 0:
            return []
        kept = suc.tps + suc.fps
        out = []
        for level in levels or self.COVERAGE:
            k = min(int(np.searchsorted(kept, level * total - 1e-9, side='left')),
                    len(kept) - 1)
            out.append((float(kept[k] / total), float(suc.fps[k] / kept[k])))
        return out


# --- instances ------------------------------------------------------------------------------


@dataclasses.dataclass
class _ImageMatches:
    gt_sizes: np.ndarray        # [G]
    pred_sizes: np.ndarray      # [K]
    pred_scores: np.ndarray     # [K]
    pred_void: np.ndarray       # [K] pixels of each prediction inside void
    intersections: np.ndarray   # [K, G]


class InstanceAPAccumulator:
    """Instance-level AP of anomaly instances, Cityscapes protocol.

    Per IoU threshold ``t`` (0.5:0.05:0.95 by default):

    * ground-truth instances under ``min_region_size`` pixels (10) are not
      counted; predictions on them, like predictions in void, are not false
      positives;
    * a ground truth is matched by every prediction with IoU > t; the
      highest-scoring one is a true positive and the others false positives;
      unmatched ground truths are false negatives;
    * a prediction that matches nothing is a false positive unless more than
      a fraction t of it lies in void or on ignored small instances;
    * AP integrates the PR curve of all images together the way the
      Cityscapes script does (precision times the centred recall step, with
      an artificial point at recall 0, precision 1).

    ``iAP`` is the mean over thresholds, ``iAP50`` the value at 0.5. With
    ground truth but no predictions AP is 0; with neither it is ``nan``.
    """

    def __init__(self, iou_thresholds=None, min_region_size=10):
        if iou_thresholds is None:
            iou_thresholds = np.round(np.arange(0.5, 0.951, 0.05), 2)
        self.iou_thresholds = np.asarray(iou_thresholds, dtype=np.float64)
        self.min_region_size = int(min_region_size)
        self._images = []

    def update(self, gt_instances, pred_masks, pred_scores, void=None):
        """Add one image.

        Args:
            gt_instances: int ``[H, W]``, 0 = no anomaly, k > 0 = anomaly instance k.
            pred_masks: bool ``[K, H, W]`` predicted instances (K may be 0).
            pred_scores: ``[K]`` confidence of each prediction.
            void: optional bool ``[H, W]`` of pixels to ignore.

        """
        gt = np.asarray(gt_instances)
        masks = np.asarray(pred_masks, dtype=bool).reshape(-1, *gt.shape)
        scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        if masks.shape[0] != scores.size:
            raise ValueError(f'{masks.shape[0]} masks but {scores.size} scores')
        ids, gt_index = np.unique(gt, return_inverse=True)
        gt_index = gt_index.reshape(-1)
        if ids.size and ids[0] <= 0:      # background (0) is not an instance
            gt_index = gt_index - 1
            ids = ids[1:]
        npix = gt.size
        void = np.zeros(npix, bool) if void is None else np.asarray(void, bool).reshape(-1)
        flat = masks.reshape(masks.shape[0], npix)
        inter = np.zeros((flat.shape[0], ids.size), np.int64)
        for k in range(flat.shape[0]):
            hits = gt_index[flat[k]]
            hits = hits[hits >= 0]
            inter[k] = np.bincount(hits, minlength=ids.size)[:ids.size]
        self._images.append(_ImageMatches(
            gt_sizes=np.bincount(gt_index[gt_index >= 0], minlength=ids.size)[:ids.size],
            pred_sizes=flat.sum(1).astype(np.int64),
            pred_scores=scores,
            pred_void=(flat & void[None]).sum(1).astype(np.int64),
            intersections=inter,
        ))

    def _match(self, t):
        y_true, y_score = [], []
        hard_fn = 0
        have_gt = have_pred = False
        for im in self._images:
            valid_gt = im.gt_sizes >= self.min_region_size
            have_gt |= bool(valid_gt.any())
            have_pred |= bool(im.pred_sizes.size)
            union = im.pred_sizes[:, None] + im.gt_sizes[None, :] - im.intersections
            with np.errstate(invalid='ignore', divide='ignore'):
                iou = np.where(union > 0, im.intersections / np.maximum(union, 1), 0.0)
            hit = (iou > t) & (im.intersections > 0)
            for g in np.flatnonzero(valid_gt):
                preds = np.flatnonzero(hit[:, g])
                if preds.size == 0:
                    hard_fn += 1
                    continue
                ranked = np.sort(im.pred_scores[preds])[::-1]
                y_true.append(1)
                y_score.append(ranked[0])
                y_true.extend([0] * (ranked.size - 1))
                y_score.extend(ranked[1:].tolist())
            for k in range(im.pred_sizes.size):
                if hit[k].any():
                    continue
                ignored = im.pred_void[k] + im.intersections[k, ~valid_gt].sum()
                if im.pred_sizes[k] == 0 or ignored / im.pred_sizes[k] <= t:
                    y_true.append(0)
                    y_score.append(im.pred_scores[k])
        return np.asarray(y_true), np.asarray(y_score, np.float64), hard_fn, have_gt, have_pred

    def ap_at(self, t):
        """AP at one IoU threshold."""
        y_true, y_score, hard_fn, have_gt, have_pred = self._match(t)
        if not have_gt:
            return float('nan')
        if not have_pred or y_true.sum() == 0:
            return 0.0
        order = np.argsort(y_score, kind='mergesort')
        y_true, y_score = y_true[order], y_score[order]
        cum = np.cumsum(y_true)
        n_true = int(cum[-1])
        _, first = np.unique(y_score, return_index=True)
        below = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0)
        tp = n_true - below
        fp = y_true.size - first - tp
        fn = below + hard_fn
        precision = np.append(tp / (tp + fp), 1.0)
        recall = np.append(tp / (tp + fn), 0.0)
        padded = np.concatenate([[recall[0]], recall, [0.0]])
        step = 0.5 * (padded[:-2] - padded[2:])
        return float(np.dot(precision, step))

    def results(self):
        aps = {float(t): self.ap_at(t) for t in self.iou_thresholds}
        values = np.array(list(aps.values()))
        return {
            'iAP': float(np.mean(values)) if not np.all(np.isnan(values)) else float('nan'),
            'iAP50': aps.get(0.5, float('nan')),
            'ap_per_iou': aps,
        }


# --- component-level F1 (SegmentMeIfYouCan) -------------------------------------------------


def _components(mask, connectivity):
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=connectivity)
    return count - 1, labels


class ComponentF1Accumulator:
    r"""Component-level sIoU / PPV / F1* of SegmentMeIfYouCan, over many images.

    Ground-truth components K are the anomaly instances (or the connected
    components of the anomaly mask); predicted components K̂ are the
    8-connected components of the binary prediction, with void pixels
    removed first.

    * sIoU(k) = |k ∩ K̂(k)| / |(k ∪ K̂(k)) \\ A(k)|, where K̂(k) is the
      union of predicted components touching k and A(k) the pixels of the
      other ground-truth components;
    * PPV(k̂) = |k̂ ∩ K(k̂)| / |k̂|, where K(k̂) is the union of
      ground-truth components touching k̂;
    * at threshold τ: TP = #{k: sIoU(k) > τ}, FN = #{k: sIoU(k) <= τ},
      FP = #{k̂: PPV(k̂) <= τ}, F1(τ) = 2TP / (2TP + FN + FP), counted over
      the whole dataset;
    * F1* is the mean of F1(τ) over τ = 0.25, 0.30, ..., 0.75.
    """

    def __init__(self, thresholds=None, ignore_index=VOID, connectivity=8):
        if thresholds is None:
            thresholds = np.round(np.arange(0.25, 0.751, 0.05), 2)
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.ignore_index = ignore_index
        self.connectivity = connectivity
        self.siou = []
        self.ppv = []

    def update(self, gt_labels, prediction, gt_instances=None):
        """Add one image.

        Args:
            gt_labels: uint8 ``[H, W]``: 1 anomaly, 0 normal, ``ignore_index`` void.
            prediction: bool ``[H, W]`` binary anomaly prediction.
            gt_instances: optional int ``[H, W]`` instance ids (> 0) of the
                anomalies; without it the connected components are used.

        """
        gt_labels = np.asarray(gt_labels)
        pred = np.asarray(prediction, dtype=bool) & (gt_labels != self.ignore_index)
        anomaly = gt_labels == 1
        if gt_instances is not None:
            inst = np.where(anomaly, np.asarray(gt_instances), 0)
            ids = np.unique(inst)
            ids = ids[ids > 0]
            gt_comp = np.zeros(inst.shape, np.int32)
            for n, i in enumerate(ids, start=1):
                gt_comp[inst == i] = n
            n_gt = ids.size
        else:
            n_gt, gt_comp = _components(anomaly, self.connectivity)
        n_pred, pred_comp = _components(pred, self.connectivity)

        # Joint histogram of (gt component, predicted component) ids, 0 = none.
        joint = np.bincount(gt_comp.reshape(-1).astype(np.int64) * (n_pred + 1)
                            + pred_comp.reshape(-1), minlength=(n_gt + 1) * (n_pred + 1))
        joint = joint.reshape(n_gt + 1, n_pred + 1)
        gt_size = joint.sum(1)
        pred_size = joint.sum(0)
        for g in range(1, n_gt + 1):
            touching = np.flatnonzero(joint[g, 1:]) + 1
            inter = joint[g, touching].sum()
            # Union of k and K̂(k), minus the pixels of other gt components.
            pred_union_outside_other_gt = joint[0, touching].sum() + inter
            union = gt_size[g] + pred_union_outside_other_gt - inter
            self.siou.append(inter / union if union else 0.0)
        for p in range(1, n_pred + 1):
            touching = np.flatnonzero(joint[1:, p]) + 1
            self.ppv.append(joint[touching, p].sum() / pred_size[p])

    def results(self):
        siou = np.asarray(self.siou, dtype=np.float64)
        ppv = np.asarray(self.ppv, dtype=np.float64)
        f1 = {}
        for t in self.thresholds:
            tp = int(np.sum(siou > t))
            fn = int(np.sum(siou <= t))
            fp = int(np.sum(ppv <= t))
            denom = 2 * tp + fn + fp
            f1[float(t)] = 2 * tp / denom if denom else float('nan')
        values = np.array(list(f1.values()))
        return {
            'f1_star': float(np.mean(values)) if not np.all(np.isnan(values)) else float('nan'),
            'f1_per_threshold': f1,
            'mean_siou': float(siou.mean()) if siou.size else float('nan'),
            'mean_ppv': float(ppv.mean()) if ppv.size else float('nan'),
            'n_gt_components': int(siou.size),
            'n_pred_components': int(ppv.size),
        }
