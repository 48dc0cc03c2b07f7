"""Metrics against scikit-learn and against small cases computed by hand."""

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

from anomaly_perception.metrics.binary import auroc
from anomaly_perception.metrics.binary import average_precision
from anomaly_perception.metrics.binary import binary_curve
from anomaly_perception.metrics.binary import BinaryScoreAccumulator
from anomaly_perception.metrics.binary import fpr_at_tpr
from anomaly_perception.metrics.binary import pr_auc_trapezoid
from anomaly_perception.metrics.segmentation import ComponentF1Accumulator
from anomaly_perception.metrics.segmentation import ConfusionMatrix
from anomaly_perception.metrics.segmentation import FailureDetectionAccumulator
from anomaly_perception.metrics.segmentation import InstanceAPAccumulator
from anomaly_perception.metrics.segmentation import PerTypePixelAccumulator
import numpy as np
import pytest
from sklearn import metrics as skm


def _sk_fpr95(labels, scores):
    fpr, tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    return fpr[np.argmax(tpr >= 0.95)]


@pytest.mark.parametrize('seed', range(8))
def test_frame_metrics_equal_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 3000))
    labels = rng.random(n) < rng.uniform(0.05, 0.6)
    scores = rng.normal(size=n) + labels * rng.uniform(0, 2)
    if seed % 2:  # coarse rounding makes many ties
        scores = np.round(scores, 1)
    precision, recall, _ = skm.precision_recall_curve(labels, scores)
    assert auroc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-6)
    assert average_precision(labels, scores) == pytest.approx(
        skm.average_precision_score(labels, scores), abs=1e-6)
    assert pr_auc_trapezoid(labels, scores) == pytest.approx(skm.auc(recall, precision),
                                                             abs=1e-6)
    assert fpr_at_tpr(labels, scores) == pytest.approx(_sk_fpr95(labels, scores), abs=1e-12)
    fpr, tpr, thr = binary_curve(labels, scores).roc()
    sk_fpr, sk_tpr, _ = skm.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)


def test_fpr95_small_case_by_hand():
    # Descending thresholds: 0.9 (tp 1, fp 0), 0.8 (3, 1), 0.7 (3, 2), 0.6 (4, 2).
    # 95% of 4 positives needs all 4: first reached at 0.6, where FPR = 2/3.
    scores = [0.9, 0.8, 0.8, 0.8, 0.7, 0.6, 0.5]
    labels = [1, 1, 0, 1, 0, 1, 0]
    assert fpr_at_tpr(labels, scores) == pytest.approx(2 / 3)


def test_fpr95_counts_tied_negatives_together():
    # 10 positives: 9 at 0.9 and one at 0.5, tied with two negatives. TPR reaches
    # 95% only at 0.5, and the tie lets both negatives in with it: FPR = (2 + 2) / 10.
    scores = [0.9] * 9 + [0.5] + [0.95] * 2 + [0.5] * 2 + [0.1] * 6
    labels = [1] * 10 + [0] * 10
    assert fpr_at_tpr(labels, scores) == pytest.approx(0.4)
    assert binary_curve(labels, scores).threshold_at_tpr() == 0.5


def test_threshold_at_fpr_and_tpr_at_threshold_by_hand():
    # Same case as above: thresholds 0.9 (tp 1, fp 0), 0.8 (3, 1), 0.7 (3, 2), 0.6 (4, 2),
    # 0.5 (4, 3); three negatives.
    curve = binary_curve([1, 1, 0, 1, 0, 1, 0], [0.9, 0.8, 0.8, 0.8, 0.7, 0.6, 0.5])
    assert curve.threshold_at_fpr(0.0) == 0.9
    assert curve.threshold_at_fpr(0.5) == 0.8         # 1 of 3 negatives allowed
    assert curve.threshold_at_fpr(2 / 3) == 0.6       # 2 allowed: the lowest is 0.6
    assert curve.threshold_at_fpr(1.0) == 0.5
    assert curve.tpr_at_threshold(0.8) == 0.75
    assert curve.tpr_at_threshold(0.85) == 0.25       # between thresholds: 0.9 only
    assert curve.tpr_at_threshold(0.95) == 0.0
    assert curve.tpr_at_threshold(float('-inf')) == 1.0
    # Everything above the threshold has no negatives at all: nothing may be flagged.
    assert binary_curve([0, 1], [0.9, 0.1]).threshold_at_fpr(0.0) == float('inf')


def test_undefined_metrics_are_nan_not_numbers():
    assert np.isnan(auroc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(fpr_at_tpr([0, 0], [0.1, 0.2]))
    assert np.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_bad_metric_input_is_refused():
    with pytest.raises(ValueError, match='NaN'):
        auroc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match='0/1'):
        auroc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match='differ in length'):
        auroc([0, 1, 1], [0.1, 0.2])


def _pixel_data(seed, n_images=6, shape=(24, 32)):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        label = (rng.random(shape) < 0.2).astype(np.uint8)
        label[rng.random(shape) < 0.1] = 255
        score = (rng.normal(size=shape) + (label == 1) * 1.5).astype(np.float32)
        images.append((label, score))
    return images


def test_pixel_metrics_ignore_void():
    label = np.array([[1, 0, 255, 255]], np.uint8)
    score = np.array([[0.9, 0.1, 0.0, 5.0]], np.float32)  # void scores would flip AUROC
    acc = BinaryScoreAccumulator(mantissa_bits=23)
    acc.update(label, score)
    curve = acc.curve()
    assert (curve.n_pos, curve.n_neg) == (1, 1)
    assert curve.auroc() == 1.0


@pytest.mark.parametrize('bits', [23, 12])
def test_streaming_pixel_metrics_equal_one_shot(bits):
    images = _pixel_data(0)
    streamed = BinaryScoreAccumulator(mantissa_bits=bits)
    for label, score in reversed(images):  # order must not matter
        streamed.update(label, score)
    one_shot = BinaryScoreAccumulator(mantissa_bits=bits)
    one_shot.update(np.concatenate([lab for lab, _ in images]),
                    np.concatenate([s for _, s in images]))
    assert streamed.summary() == one_shot.summary()

    valid = np.concatenate([lab.reshape(-1) for lab, _ in images]) != 255
    labels = np.concatenate([lab.reshape(-1) for lab, _ in images])[valid]
    scores = np.concatenate([s.reshape(-1) for _, s in images])[valid]
    exact = {'auroc': skm.roc_auc_score(labels, scores),
             'ap': skm.average_precision_score(labels, scores)}
    tol = 1e-9 if bits == 23 else 1e-3
    assert streamed.summary()['auroc'] == pytest.approx(exact['auroc'], abs=tol)
    assert streamed.summary()['ap'] == pytest.approx(exact['ap'], abs=tol)
    assert streamed.summary()['fpr95'] == pytest.approx(_sk_fpr95(labels, scores), abs=tol * 10)


def test_accumulators_merge():
    images = _pixel_data(3)
    a, b, whole = BinaryScoreAccumulator(), BinaryScoreAccumulator(), BinaryScoreAccumulator()
    for i, (label, score) in enumerate(images):
        (a if i % 2 else b).update(label, score)
        whole.update(label, score)
    a.merge(b)
    assert a.summary() == whole.summary()


def test_per_type_pixel_metrics_equal_one_shot_per_type():
    rng = np.random.default_rng(3)
    acc = PerTypePixelAccumulator(mantissa_bits=23)
    frames = []
    for kind in ['normal', 'cable', 'water', 'cable', 'normal', 'water']:
        truth = np.zeros((12, 16), np.uint8)
        if kind != 'normal':
            truth[rng.integers(0, 8):, rng.integers(0, 10):][:3, :5] = 1
        truth[0, :2] = 255                                  # void is ignored everywhere
        scores = rng.random(truth.shape).astype(np.float32) + (truth == 1) * (
            0.5 if kind == 'water' else 0.1)
        acc.update(truth, scores, kind)
        frames.append((truth, scores, kind))
    truth = np.concatenate([f[0].ravel() for f in frames])
    scores = np.concatenate([f[1].ravel() for f in frames])
    kinds = np.concatenate([[f[2]] * f[0].size for f in frames])
    keep = truth != 255
    pooled = binary_curve(truth[keep], scores[keep])
    assert acc.curve().average_precision() == pytest.approx(pooled.average_precision())
    per_type = acc.per_type(pooled_fpr=0.2)
    assert set(per_type) == {'cable', 'water'}              # normal frames have no positives
    threshold = pooled.threshold_at_fpr(0.2)
    for kind, m in per_type.items():
        # That type's anomaly pixels against every normal pixel of the split.
        sel = keep & ((truth == 0) | (kinds == kind))
        one = binary_curve(truth[sel], scores[sel])
        assert m['auprc'] == pytest.approx(one.average_precision())
        assert m['fpr95'] == pytest.approx(one.fpr_at_tpr(0.95))
        assert m['pixels'] == int((truth[sel] == 1).sum())
        assert m['recall_at_pooled_fpr'] == pytest.approx(one.tpr_at_threshold(threshold))
    assert per_type['water']['auprc'] > per_type['cable']['auprc']
    assert sum(m['share'] for m in per_type.values()) == pytest.approx(1.0)
    assert sum(m['missed_share_at_pooled_fpr'] for m in per_type.values()) == pytest.approx(
        1.0 - pooled.tpr_at_threshold(threshold))
    assert acc.per_type() == {k: {n: v for n, v in m.items() if 'pooled' not in n}
                              for k, m in per_type.items()}   # asking twice changes nothing


def test_pixel_accumulator_memory_is_bounded():
    acc = BinaryScoreAccumulator()  # 12 mantissa bits
    rng = np.random.default_rng(0)
    for _ in range(5):
        acc.update(rng.random(200_000) < 0.5, rng.uniform(0.5, 1.0, 200_000).astype(np.float32))
    assert acc.n_bins <= 2 ** 12 + 1  # one octave of scores -> at most 4096 bins


def test_miou_matches_sklearn_and_ignores_void():
    rng = np.random.default_rng(5)
    target = rng.integers(0, 4, size=(40, 50))
    target[rng.random(target.shape) < 0.1] = 255
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 4, target.shape))
    pred[target == 255] = rng.integers(0, 4, size=int((target == 255).sum()))
    cm = ConfusionMatrix(num_classes=5)
    cm.update(pred[:20], target[:20])
    cm.update(pred[20:], target[20:])
    keep = target != 255
    sk = skm.jaccard_score(target[keep], pred[keep], labels=[0, 1, 2, 3], average=None)
    np.testing.assert_allclose(cm.iou()[:4], sk)
    assert np.isnan(cm.iou()[4])  # class 4 never appears: left out of the mean
    assert cm.miou() == pytest.approx(sk.mean())
    with pytest.raises(ValueError, match='outside 0..4'):
        cm.update(np.full((2, 2), 7), np.zeros((2, 2)))


def test_failure_detection_metrics_follow_their_definitions():
    rng = np.random.default_rng(2)
    target = rng.integers(0, 3, size=(30, 30))
    target[:3] = 255
    pred = np.where(rng.random(target.shape) < 0.75, target, (target + 1) % 3)
    error = (pred != target) & (target != 255)
    failure = (rng.normal(size=target.shape) + error * 1.2).astype(np.float32)
    acc = FailureDetectionAccumulator(mantissa_bits=23)
    acc.update(failure, pred, target)
    res = acc.results()
    keep = target != 255
    err, score = error[keep], failure[keep]
    assert res['ap_err'] == pytest.approx(skm.average_precision_score(err, score), abs=1e-9)
    assert res['ap_suc'] == pytest.approx(skm.average_precision_score(~err, -score), abs=1e-9)
    assert res['auroc'] == pytest.approx(skm.roc_auc_score(err, score), abs=1e-9)
    assert res['fpr95'] == pytest.approx(_sk_fpr95(~err, -score), abs=1e-9)
    assert res['n_errors'] == int(err.sum())
    # Risk-coverage: the error rate of the k most confident pixels, by sorting.
    order = np.argsort(score, kind='stable')
    for coverage, risk in res['risk_coverage']:
        k = int(round(coverage * len(score)))
        assert risk == pytest.approx(err[order[:k]].mean(), abs=1e-9)
    assert [round(c, 1) for c, _ in res['risk_coverage']] == list(acc.COVERAGE)
    assert res['risk_coverage'][-1] == pytest.approx((1.0, err.mean()))
    assert res['risk_coverage'][0][1] < err.mean()      # confident pixels err less


def _block(shape, y0, y1, x0, x1):
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def test_instance_ap_small_case_by_hand():
    shape = (40, 60)
    gt = np.zeros(shape, np.int32)
    gt[0:10, 0:10] = 1              # A, 100 px
    gt[20:30, 20:30] = 2            # B, 100 px
    gt[35:36, 50:55] = 3            # 5 px: below the 10 px minimum, ignored
    void = _block(shape, 30, 40, 0, 10)
    preds = [
        (_block(shape, 0, 10, 0, 10), 0.9),    # A exactly: IoU 1.0
        (_block(shape, 20, 30, 20, 26), 0.8),  # 60 px of B: IoU 0.6
        (_block(shape, 12, 15, 40, 50), 0.7),  # nothing there: false positive
        (_block(shape, 0, 10, 0, 12), 0.6),    # A plus 20 px: IoU 0.833, a duplicate
        (gt == 3, 0.95),                       # the ignored small instance: not counted
        (_block(shape, 32, 38, 2, 8), 0.99),   # inside void: not counted
    ]
    acc = InstanceAPAccumulator()
    acc.update(gt, np.stack([m for m, _ in preds]), [s for _, s in preds], void=void)
    res = acc.results()
    # t = 0.50, 0.55: A and B found (TP 0.9, 0.8), FPs 0.7 and 0.6 rank below -> AP 1.0.
    # t >= 0.60: B missed (hard FN) and its partial mask is a FP at 0.8 -> AP 0.5.
    expected = [1.0, 1.0] + [0.5] * 8
    assert list(res['ap_per_iou'].values()) == pytest.approx(expected)
    assert res['iAP50'] == pytest.approx(1.0)
    assert res['iAP'] == pytest.approx(0.6)


def test_instance_ap_edge_cases():
    empty = InstanceAPAccumulator()
    empty.update(np.zeros((8, 8), int), np.zeros((0, 8, 8), bool), [])
    assert np.isnan(empty.results()['iAP'])
    missed = InstanceAPAccumulator()
    gt = np.zeros((8, 8), int)
    gt[:4, :4] = 1
    missed.update(gt, np.zeros((0, 8, 8), bool), [])
    assert missed.results()['iAP'] == 0.0


def test_component_f1_small_case_by_hand():
    shape = (40, 60)
    gt = np.zeros(shape, np.uint8)
    gt[0:10, 0:10] = 1                      # k1, 100 px
    gt[20:24, 20:24] = 1                    # k2, 16 px, never predicted
    pred = _block(shape, 0, 10, 0, 15)      # covers k1 and 50 px more: sIoU = PPV = 2/3
    pred |= _block(shape, 30, 34, 40, 45)   # 20 px on nothing: PPV 0
    acc = ComponentF1Accumulator()
    acc.update(gt, pred)
    res = acc.results()
    # tau <= 0.65: TP 1 (k1), FN 1 (k2), FP 1 -> F1 = 0.5; tau 0.70, 0.75: TP 0, FN 2,
    # FP 2 -> 0.  F1* = (9 * 0.5 + 2 * 0) / 11.
    assert res['f1_per_threshold'][0.65] == pytest.approx(0.5)
    assert res['f1_per_threshold'][0.7] == 0.0
    assert res['f1_star'] == pytest.approx(4.5 / 11)
    assert (res['n_gt_components'], res['n_pred_components']) == (2, 2)


def test_component_siou_does_not_penalise_other_ground_truth():
    shape = (12, 30)
    gt = np.zeros(shape, np.uint8)
    gt[0:10, 0:10] = 1
    gt[0:10, 12:22] = 1
    pred = _block(shape, 0, 10, 0, 22)      # one blob over both and the 20 px gap
    acc = ComponentF1Accumulator()
    acc.update(gt, pred)
    # sIoU(k1) = 100 / (220 - 100 px of k2) = 0.833, not 100 / 220.
    assert acc.siou == pytest.approx([100 / 120, 100 / 120])
    assert acc.ppv == pytest.approx([200 / 220])


def test_component_f1_drops_predictions_in_void():
    gt = np.zeros((10, 10), np.uint8)
    gt[:, 5:] = 255
    acc = ComponentF1Accumulator()
    acc.update(gt, np.ones((10, 10), bool) & (np.arange(10) >= 5)[None, :])
    assert acc.results()['n_pred_components'] == 0
