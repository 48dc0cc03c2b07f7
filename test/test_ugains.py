"""UGainS steps and the RbA score on hand-made cases."""

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

from anomaly_perception.branches.instance import ugains
from anomaly_perception.scoring.rba import rba_score
import numpy as np
import pytest
import torch


def test_rba_score_by_hand():
    # One image, two queries, K = 2 classes + no object, a 1x2 image.
    cls = torch.log(torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]]))
    masks = torch.logit(torch.tensor([[[[0.9, 0.5]], [[0.5, 1.0 - 1e-6]]]]))
    u = rba_score(cls, masks)
    # pixel 0: -(0.9 * (0.7 + 0.2) + 0.5 * (0.1 + 0.1)); pixel 1: -(0.5 * 0.9 + 1 * 0.2)
    np.testing.assert_allclose(u.numpy(), [[[-0.91, -0.65]]], atol=1e-5)
    # The RbA repository's form: tanh of each class's evidence first.
    t = rba_score(cls, masks, tanh=True)
    expect = -(np.tanh(0.9 * 0.7 + 0.5 * 0.1) + np.tanh(0.9 * 0.2 + 0.5 * 0.1))
    assert t[0, 0, 0].item() == pytest.approx(expect, abs=1e-5)
    assert (u <= 0).all() and (u >= -2).all()                # U in [-N, 0]
    with pytest.raises(ValueError, match='queries'):
        rba_score(cls, masks[:, :1])


def test_candidates_are_raster_ordered_thresholded_and_fall_back():
    score = torch.tensor([[0.0, -0.1, -1.0], [-0.2, -0.05, float('nan')]])
    pts = ugains.candidate_points(score, -0.15)
    assert pts.tolist() == [[0, 0], [0, 1], [1, 1]]
    ignore = torch.zeros(2, 3, dtype=torch.bool)
    ignore[0, 0] = True
    assert ugains.candidate_points(score, -0.15, ignore=ignore).tolist() == [[0, 1], [1, 1]]
    # Nothing reaches 0.5: the fallback threshold applies (NaN never counts).
    assert ugains.candidate_points(score, 0.5, -0.5).tolist() == [[0, 0], [0, 1], [1, 0],
                                                                  [1, 1]]
    assert len(ugains.candidate_points(score, 0.5)) == 0


def test_fps_starts_at_the_first_point_and_takes_the_farthest_each_step():
    pts = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    # From 0: 10 is farthest; then 2 (4 from 0) beats 1 (1 from 0).
    assert ugains.farthest_point_sampling(pts, 3).tolist() == [0, 3, 2]
    rng = np.random.default_rng(0)
    pts = torch.from_numpy(rng.integers(0, 200, (300, 2))).float()
    chosen = ugains.farthest_point_sampling(pts, 25).tolist()
    assert chosen[0] == 0 and len(set(chosen)) == 25
    for i in range(1, len(chosen)):
        taken = pts[chosen[:i]]
        nearest = torch.cdist(pts, taken).min(dim=1).values
        assert nearest[chosen[i]] == pytest.approx(nearest.max().item())
    assert len(ugains.farthest_point_sampling(pts[:4], 50)) == 4      # fewer points than k
    assert len(ugains.farthest_point_sampling(pts[:0], 50)) == 0


def test_random_and_kmeans_samplers():
    cluster_a = torch.tensor([[y, x] for y in range(5) for x in range(5)])
    cluster_b = cluster_a + 100
    pts = torch.cat([cluster_a, cluster_b])
    idx = ugains.kmeans_sampling(pts, 2)
    centres = pts[idx].float()
    # One prompt per cluster, at the candidate nearest each centre (2, 2) and (102, 102).
    assert sorted(centres.tolist()) == [[2.0, 2.0], [102.0, 102.0]]
    r1, r2 = ugains.random_sampling(pts, 7, seed=3), ugains.random_sampling(pts, 7, seed=3)
    assert r1.tolist() == r2.tolist() and len(set(r1.tolist())) == 7


def test_sample_prompts_returns_xy():
    score = torch.full((4, 6), -1.0)
    score[1, 4] = 0.0
    cfg = ugains.UGainSConfig(num_points=5)
    assert ugains.sample_prompts(score, cfg).tolist() == [[4.0, 1.0]]
    with pytest.raises(ValueError, match='sampler'):
        ugains.UGainSConfig(sampler='grid')


def test_best_of_three_by_predicted_iou():
    logits = torch.full((2, 3, 2, 2), -5.0)
    logits[0, 1, 0, 0] = 3.0
    logits[1, 2, 1, :] = 1.0
    iou = torch.tensor([[0.1, 0.9, 0.5], [0.2, 0.3, 0.4]])
    masks = ugains.select_best_masks(logits, iou)
    assert masks[0].tolist() == [[True, False], [False, False]]
    assert masks[1].tolist() == [[False, False], [True, True]]


def test_mask_scores_nms_ensemble_and_ids_by_hand():
    u = torch.tensor([[-0.1, -0.1, -2.0, -2.0],
                      [-0.1, -0.1, -2.0, -2.0]])
    a = torch.zeros(2, 4, dtype=torch.bool)
    a[:, :2] = True                                  # the anomaly
    b = a.clone()
    b[0, 2] = True                                   # a near duplicate, IoU 4/5 = 0.8
    c = torch.zeros(2, 4, dtype=torch.bool)
    c[:, 3] = True                                   # elsewhere
    empty = torch.zeros(2, 4, dtype=torch.bool)
    masks = torch.stack([b, a, c, empty])
    scores = ugains.mask_scores(masks, u)
    np.testing.assert_allclose(scores.numpy(), [-0.48, -0.1, -2.0, -1.0], atol=1e-6)
    keep = ugains.mask_nms(masks, scores, 0.7)
    assert keep.tolist() == [1, 2]                   # b is a's duplicate; empty dropped
    assert ugains.mask_nms(masks, scores, 0.9).tolist() == [1, 0, 2]
    refined = ugains.ensemble(u, masks[keep], scores[keep])
    # covered by a: -0.1 + -0.1; by c: -2 + -2; uncovered: -1 + U
    np.testing.assert_allclose(refined.numpy(), [[-0.2, -0.2, -3.0, -4.0],
                                                 [-0.2, -0.2, -3.0, -4.0]], atol=1e-6)
    ids = ugains.instance_ids(masks[[0, 1]], scores[[0, 1]])
    # a (score -0.1) is instance 1 and wins the overlap; b only adds pixel (0, 2).
    assert ids.tolist() == [[1, 1, 2, 0], [1, 1, 0, 0]]
    assert ugains.ensemble(u, masks[:0], scores[:0]).tolist() == (u - 1).tolist()


def test_oracle_points_lie_inside_and_point_precision_recall():
    inst = np.zeros((40, 40), np.int32)
    inst[5:35, 5:35] = 1
    inst[12:28, 12:28] = 0                           # a ring: its centroid is outside it
    inst[36:38, 36:38] = 2                           # 4 px: ignored
    pts, ids = ugains.oracle_points(inst)
    assert ids.tolist() == [1]
    x, y = pts[0].astype(int)
    assert inst[y, x] == 1
    anomaly = inst > 0
    precision, recall = ugains.point_precision_recall([[x, y], [0, 0]], anomaly, inst)
    assert (precision, recall) == (0.5, 1.0)
    assert ugains.point_precision_recall([[0, 0]], anomaly, inst) == (0.0, 0.0)


class _OracleSegmenter:
    """A stand-in promptable segmenter: the ground-truth component under each point."""

    device = torch.device('cpu')

    def __init__(self, instances):
        self.instances = torch.as_tensor(instances)

    def set_image(self, rgb):
        self.shape = rgb.shape[:2]

    def masks_for_points(self, points):
        masks = [(self.instances == self.instances[int(y), int(x)]) & (self.instances > 0)
                 for x, y in points.tolist()]
        masks = torch.stack(masks) if masks else torch.zeros(0, *self.shape, dtype=torch.bool)
        return masks, torch.ones(len(masks))


def test_run_ugains_end_to_end_on_an_oracle_segmenter():
    from anomaly_perception.metrics.binary import binary_curve
    inst = np.zeros((30, 40), np.int32)
    inst[3:10, 3:12] = 1
    inst[18:27, 25:37] = 2
    rng = np.random.default_rng(0)
    # An RbA-like map: near 0 on the objects (patchy), below -0.15 mostly elsewhere.
    u = np.where(inst > 0, rng.uniform(-0.3, 0.0, inst.shape), rng.uniform(-3.0, -0.1,
                                                                           inst.shape))
    u = u.astype(np.float32)
    rgb = np.zeros((30, 40, 3), np.uint8)
    result = ugains.run_ugains(_OracleSegmenter(inst), rgb, u, ugains.UGainSConfig())
    # Duplicate masks of the two objects are merged by NMS; background prompts give empty
    # masks (score -1) that NMS drops.
    assert len(result.masks) == 2
    assert set(np.unique(result.ids.numpy())) == {0, 1, 2}
    for q in range(2):
        assert np.unique(inst[result.masks[q].numpy()]).size == 1
    assert result.boxes().tolist() == sorted(result.boxes().tolist(),
                                             key=lambda b: -u[inst == inst[b[1], b[0]]].mean())
    truth = (inst > 0).ravel()
    before = binary_curve(truth, u.ravel()).average_precision()
    after = binary_curve(truth, result.refined.numpy().ravel()).average_precision()
    assert before < 0.9 and after == pytest.approx(1.0)
    with pytest.raises(ValueError, match='differ in size'):
        ugains.run_ugains(_OracleSegmenter(inst), rgb[:20], u)


def test_components_are_the_thresholded_regions_scored_and_ensembled_by_hand():
    u = np.full((12, 16), -1.0, np.float32)
    u[1:5, 1:5] = 2.0                       # 16 px, mean 2
    u[7:11, 9:14] = 1.0                     # 20 px, mean 1
    u[8, 9] = 3.0                           # ... one pixel higher: mean (19 + 3) / 20
    u[0, 15] = 5.0                          # 1 px: under min_area
    u[6, 0] = np.nan                        # NaN never joins a region
    ignore = np.zeros(u.shape, bool)
    ignore[1, 1] = True                     # the top-left region loses one pixel
    config = ugains.UGainSConfig(threshold=0.5, fallback_threshold=None)
    r = ugains.run_components(u, config, ignore=ignore, min_area=4)
    assert r.masks.shape == (2, 12, 16)
    np.testing.assert_allclose(r.scores.numpy(), [2.0, 22 / 20])
    assert r.masks[0].sum() == 15 and not r.masks[0, 1, 1]
    assert r.masks[1].sum() == 20 and r.masks[1, 7:11, 9:14].all()
    ids = r.ids.numpy()
    assert ids[2, 2] == 1 and ids[9, 10] == 2 and ids[0, 15] == 0 and ids[1, 1] == 0
    # One interior point per kept region, (x, y), highest score first.
    pts = r.points.numpy().round().astype(int)
    assert len(pts) == 2 and ids[pts[0, 1], pts[0, 0]] == 1 and ids[pts[1, 1], pts[1, 0]] == 2
    # UGainS's ensemble: mean score + U on a region, -1 + U elsewhere, NaN stays NaN.
    refined = r.refined.numpy()
    assert refined[2, 2] == pytest.approx(4.0) and refined[9, 10] == pytest.approx(2.1)
    assert refined[0, 15] == pytest.approx(4.0) and np.isnan(refined[6, 0])
    # The score filter and an empty map.
    strong = ugains.run_components(u, config, ignore=ignore, min_area=4, min_score=1.5)
    assert len(strong.masks) == 1 and strong.scores[0] == pytest.approx(2.0)
    none = ugains.run_components(np.zeros((5, 5), np.float32), config)
    assert none.masks.shape == (0, 5, 5) and len(none.points) == 0 and not none.ids.any()
    # 8-connected: two pixels touching at a corner are one region.
    diag = np.zeros((4, 4), np.float32)
    diag[0, 0] = diag[1, 1] = 1.0
    assert len(ugains.run_components(diag, config, min_area=2).masks) == 1
