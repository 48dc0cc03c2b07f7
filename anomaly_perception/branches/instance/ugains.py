"""UGainS (paper 003): anomaly instances from an uncertainty map and a promptable segmenter.

The steps, each a function on torch tensors (CPU or GPU, no host syncs in
the per-point loops beyond what ``argmax`` needs):

1. :func:`candidate_points`: pixels whose score reaches ``threshold``
   (the public code's ``U >= -0.15`` for RbA), falling back to
   ``fallback_threshold`` (``-15``) when none does; ignore-mask pixels
   never count. Returned in raster order, as ``(y, x)``.
2. A sampler picks the prompts: :func:`farthest_point_sampling` (the
   default; 50 points; it starts at the *first raster point*, index 0, as
   the pointnet2 kernel the code calls), :func:`random_sampling` or
   :func:`kmeans_sampling` (the paper's Table 4).
3. The promptable segmenter turns each point, its own single positive
   prompt, into three masks with predicted IoUs; :func:`select_best_masks`
   keeps the one with the highest predicted IoU, binarised at logit > 0.
4. :func:`mask_scores`: the mean score under each mask (an empty mask
   scores ``empty_score``, -1 in the code).
5. :func:`mask_nms`: greedy, highest score first; a mask whose IoU with a
   kept one exceeds ``nms_iou`` (0.7) is dropped.
6. :func:`ensemble`: ``A = sum_q score_q * mask_q``; pixels no kept mask
   covers get ``uncovered_value`` (-1) instead; the refined map is
   ``A + U``. (The code marks uncovered pixels by ``A == 0``; coverage is
   used here so that a mask scoring exactly 0 still counts as covering.)

:func:`run_components` is the baseline without a promptable segmenter:
each connected region of the thresholded map (8-connected, at least
``min_area`` pixels) is one instance, scored and ensembled as above; no
prompts, no NMS (the regions are disjoint).

:func:`instance_ids` turns the kept masks into an id image (1 = the
highest-scored instance, 0 = none; where masks overlap the higher score
wins). :func:`oracle_points` (one point per ground-truth object, the
paper's Table 2 oracle) and :func:`point_precision_recall` (Table 4) are
for evaluation.
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
import torch

SAMPLERS = ('fps', 'random', 'kmeans')


@dataclasses.dataclass
class UGainSConfig:
    """Settings of the UGainS steps; the defaults are the public code's for RbA."""

    threshold: float = -0.15
    fallback_threshold: float | None = -15.0
    num_points: int = 50
    sampler: str = 'fps'
    nms_iou: float = 0.7
    empty_score: float = -1.0
    uncovered_value: float = -1.0
    mask_logit_threshold: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f'sampler {self.sampler!r}: choose from {", ".join(SAMPLERS)}')
        if self.num_points < 1:
            raise ValueError(f'num_points must be >= 1, got {self.num_points}')
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f'nms_iou must be in (0, 1], got {self.nms_iou}')


def candidate_points(score_map, threshold, fallback_threshold=None, ignore=None):
    """Return the ``(y, x)`` pixels (long ``[P, 2]``, raster order) scoring ``>= threshold``.

    With none, those scoring ``>= fallback_threshold`` (when given);
    ``ignore`` (bool ``[H, W]``) pixels never count, nor do NaN scores.
    """
    if score_map.dim() != 2:
        raise ValueError(f'expected one score map [H, W], got {tuple(score_map.shape)}')
    usable = torch.isfinite(score_map)
    if ignore is not None:
        usable &= ~torch.as_tensor(ignore, dtype=torch.bool, device=score_map.device)
    points = torch.nonzero(usable & (score_map >= threshold))
    if len(points) == 0 and fallback_threshold is not None:
        points = torch.nonzero(usable & (score_map >= fallback_threshold))
    return points


def farthest_point_sampling(points, k, start=0):
    """Pick ``k`` point indices (fewer if there are fewer), each farthest from those taken.

    ``points``: float or long ``[P, D]``. The first index is ``start``;
    every next one maximises the squared Euclidean distance to the nearest
    point already taken (ties: the lowest index). Vectorised over the
    points, one step per sample, on the points' device.
    """
    n = len(points)
    k = min(int(k), n)
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=points.device)
    pts = points.to(torch.float32)
    chosen = torch.empty(k, dtype=torch.long, device=points.device)
    nearest = torch.full((n,), float('inf'), device=points.device)
    current = torch.as_tensor(start, dtype=torch.long, device=points.device)
    for i in range(k):
        chosen[i] = current
        d = ((pts - pts[current]) ** 2).sum(dim=1)
        nearest = torch.minimum(nearest, d)
        current = torch.argmax(nearest)
    return chosen


def random_sampling(points, k, seed=0):
    """Draw ``k`` point indices uniformly without replacement (seeded)."""
    k = min(int(k), len(points))
    generator = torch.Generator(device='cpu').manual_seed(int(seed))
    return torch.randperm(len(points), generator=generator)[:k].to(points.device)


def kmeans_sampling(points, k, iterations=20):
    """Return the indices of the candidate points nearest to ``k`` k-means centres.

    Lloyd's algorithm started from the farthest-point samples
    (deterministic; the public code calls scikit-learn's KMeans with
    k-means++ seeds); each centre is then snapped to its nearest candidate
    so every prompt lies where the score passed the threshold.
    """
    k = min(int(k), len(points))
    if k == 0:
        return torch.zeros(0, dtype=torch.long, device=points.device)
    pts = points.to(torch.float32)
    centres = pts[farthest_point_sampling(pts, k)]
    for _ in range(iterations):
        assign = torch.cdist(pts, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assign, pts)
        counts = torch.bincount(assign, minlength=k).to(pts.dtype)
        moved = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres)
        if torch.equal(moved, centres):
            break
        centres = moved
    return torch.unique(torch.cdist(centres, pts).argmin(dim=1))


def sample_prompts(score_map, config, ignore=None):
    """Prompt points ``(x, y)`` (float ``[P, 2]``, SAM's order) for one score map."""
    points = candidate_points(score_map, config.threshold, config.fallback_threshold, ignore)
    if config.sampler == 'fps':
        idx = farthest_point_sampling(points, config.num_points)
    elif config.sampler == 'random':
        idx = random_sampling(points, config.num_points, config.seed)
    else:
        idx = kmeans_sampling(points, config.num_points)
    return points[idx].flip(1).to(torch.float32)


def select_best_masks(mask_logits, iou_predictions, logit_threshold=0.0):
    """Keep, per prompt, the mask with the highest predicted IoU: bool ``[P, H, W]``.

    ``mask_logits``: ``[P, M, H, W]`` (SAM: M = 3 with multimask output);
    ``iou_predictions``: ``[P, M]``.
    """
    if mask_logits.dim() != 4 or iou_predictions.shape != mask_logits.shape[:2]:
        raise ValueError(f'expected mask logits [P, M, H, W] and IoU predictions [P, M], got '
                         f'{tuple(mask_logits.shape)} and {tuple(iou_predictions.shape)}')
    best = iou_predictions.argmax(dim=1)
    chosen = mask_logits[torch.arange(len(best), device=best.device), best]
    return chosen > logit_threshold


def mask_scores(masks, score_map, empty_score=-1.0):
    """Mean of ``score_map`` under each bool mask ``[P, H, W]`` (NaN pixels left out)."""
    valid = torch.isfinite(score_map)
    m = (masks & valid).to(score_map.dtype)
    area = m.flatten(1).sum(dim=1)
    total = (m * torch.nan_to_num(score_map)).flatten(1).sum(dim=1)
    return torch.where(area > 0, total / area.clamp(min=1),
                       torch.full_like(total, float(empty_score)))


def mask_iou(masks):
    """Pairwise IoU ``[P, P]`` of bool masks ``[P, H, W]`` (0 between two empty masks)."""
    flat = masks.flatten(1).to(torch.float32)
    inter = flat @ flat.T
    area = flat.sum(dim=1)
    union = area[:, None] + area[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def mask_nms(masks, scores, iou_threshold=0.7):
    """Greedy mask NMS: indices kept, highest score first.

    A mask is dropped when its IoU with an already kept (higher-scored)
    mask exceeds ``iou_threshold``; empty masks are dropped.
    """
    if len(masks) == 0:
        return torch.zeros(0, dtype=torch.long, device=masks.device)
    order = torch.argsort(scores, descending=True, stable=True)
    iou = mask_iou(masks[order]).cpu().numpy()
    nonempty = masks[order].flatten(1).any(dim=1).cpu().numpy()
    keep = []
    for i in range(len(order)):
        if nonempty[i] and all(iou[i, j] <= iou_threshold for j in keep):
            keep.append(i)
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def ensemble(score_map, masks, scores, uncovered_value=-1.0):
    """Return the refined map ``A + U`` (see module docs).

    ``A = sum_q score_q * mask_q``; pixels no mask covers get
    ``uncovered_value`` instead.
    """
    if len(masks) == 0:
        return score_map + uncovered_value
    m = masks.to(score_map.dtype)
    a = torch.einsum('p,phw->hw', scores.to(score_map.dtype), m)
    covered = masks.any(dim=0)
    return torch.where(covered, a, torch.full_like(a, float(uncovered_value))) + score_map


def instance_ids(masks, scores):
    """Return the id image (int32 ``[H, W]``) of bool masks ``[P, H, W]``.

    1 = the highest-scored mask, 0 = none; overlaps go to the higher score.
    """
    if len(masks) == 0:
        return torch.zeros(masks.shape[1:], dtype=torch.int32, device=masks.device)
    order = torch.argsort(scores, descending=True, stable=True)
    ranked = masks[order]
    first = ranked.to(torch.uint8).argmax(dim=0)         # the best-scored mask covering a pixel
    ids = (first + 1).to(torch.int32)
    return torch.where(ranked.any(dim=0), ids, torch.zeros_like(ids))


def oracle_points(instances, min_region=10):
    """One ``(x, y)`` point per ground-truth instance, its most interior pixel.

    ``instances``: int array ``[H, W]`` (0 = none). The pixel farthest from
    the instance's boundary (the maximum of its distance transform), so the
    point lies inside even for ring-shaped or concave objects. Regions
    under ``min_region`` pixels are skipped (the evaluation ignores them).
    Returns ``(points float32 [P, 2], ids [P])``.
    """
    import cv2
    instances = np.asarray(instances)
    points, ids = [], []
    for i in np.unique(instances):
        if i == 0:
            continue
        region = (instances == i).astype(np.uint8)
        if region.sum() < min_region:
            continue
        dist = cv2.distanceTransform(np.pad(region, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        points.append((x, y))
        ids.append(int(i))
    return np.asarray(points, np.float32).reshape(-1, 2), np.asarray(ids, np.int64)


def point_precision_recall(points_xy, anomaly, instances, min_region=10):
    """Return point precision and recall of prompt points ``(x, y)``.

    Precision: the share of points on anomaly pixels; recall: the share of
    instances of at least ``min_region`` pixels hit by a point; ``nan``
    when undefined.
    """
    anomaly = np.asarray(anomaly, bool)
    instances = np.asarray(instances)
    pts = np.asarray(points_xy).reshape(-1, 2).round().astype(np.int64)
    pts[:, 0] = pts[:, 0].clip(0, anomaly.shape[1] - 1)
    pts[:, 1] = pts[:, 1].clip(0, anomaly.shape[0] - 1)
    precision = float(anomaly[pts[:, 1], pts[:, 0]].mean()) if len(pts) else float('nan')
    ids, sizes = np.unique(instances[instances > 0], return_counts=True)
    ids = ids[sizes >= min_region]
    hit = set(instances[pts[:, 1], pts[:, 0]].tolist())
    recall = float(np.mean([i in hit for i in ids])) if len(ids) else float('nan')
    return precision, recall


@dataclasses.dataclass
class InstanceResult:
    """UGainS on one keyframe (torch tensors on the segmenter's device).

    Attributes:
        points: prompt points ``(x, y)`` ``[P, 2]``.
        masks: kept instance masks, highest score first, bool ``[Q, H, W]``.
        scores: their mask scores ``[Q]`` (mean input score under the mask).
        ids: instance id image ``[H, W]`` (1 = ``masks[0]``; 0 = none).
        refined: the ensembled map ``[H, W]`` (higher = more anomalous).
        prompted: masks before NMS (``[P, H, W]``) and their scores ``[P]``.

    """

    points: torch.Tensor
    masks: torch.Tensor
    scores: torch.Tensor
    ids: torch.Tensor
    refined: torch.Tensor
    prompted: tuple

    def boxes(self):
        """Return ``[Q, 4]`` boxes ``(x0, y0, x1, y1)`` (inclusive pixel bounds) of the masks."""
        out = torch.zeros(len(self.masks), 4, dtype=torch.int64)
        for i, m in enumerate(self.masks.cpu()):
            ys, xs = torch.nonzero(m, as_tuple=True)
            out[i] = torch.stack([xs.min(), ys.min(), xs.max(), ys.max()])
        return out


def component_masks(score_map, threshold, ignore=None, min_area=10):
    """Return the connected regions of ``score_map >= threshold``: bool ``[Q, H, W]``.

    Largest first; 8-connected; NaN scores and ``ignore`` pixels are never in a region;
    regions under ``min_area`` pixels are dropped (the instance evaluation
    ignores them too). On the map's device.
    """
    import cv2
    if score_map.dim() != 2:
        raise ValueError(f'expected one score map [H, W], got {tuple(score_map.shape)}')
    usable = torch.isfinite(score_map) & (score_map >= threshold)
    if ignore is not None:
        usable &= ~torch.as_tensor(ignore, dtype=torch.bool, device=score_map.device)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        usable.cpu().numpy().astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + np.flatnonzero(areas >= min_area)
    keep = keep[np.argsort(-areas[keep - 1], kind='stable')]
    labels = torch.from_numpy(labels).to(score_map.device)
    if len(keep) == 0:
        return torch.zeros((0, *score_map.shape), dtype=torch.bool, device=score_map.device)
    ids = torch.as_tensor(keep, dtype=labels.dtype, device=score_map.device)
    return labels[None] == ids[:, None, None]


def run_components(score_map, config=None, ignore=None, min_area=10, min_score=None,
                   min_peak=None):
    """Run the baseline without a promptable segmenter: connected regions as instances.

    The regions of ``score_map >= config.threshold`` (:func:`component_masks`)
    whose highest score reaches ``min_peak`` (hysteresis, as an edge
    detector's two thresholds; None keeps all) are scored by their mean
    score, filtered by ``min_score`` as in :func:`run_ugains`, and ensembled
    the same way; ``points`` holds each
    kept region's most interior pixel ``(x, y)`` (where a click would go).
    Returns an :class:`InstanceResult` on ``score_map``'s device (CPU for
    arrays).
    """
    config = config or UGainSConfig()
    score_map = torch.as_tensor(score_map, dtype=torch.float32)
    masks = component_masks(score_map, config.threshold, ignore, min_area)
    if min_peak is not None and len(masks):
        peak = torch.where(masks, score_map.nan_to_num(nan=-torch.inf)[None], -torch.inf)
        masks = masks[peak.flatten(1).amax(dim=1) >= min_peak]
    scores = mask_scores(masks, score_map, config.empty_score)
    order = torch.argsort(scores, descending=True, stable=True)
    masks, scores = masks[order], scores[order]
    if min_score is not None:
        strong = scores >= min_score
        masks, scores = masks[strong], scores[strong]
    ids = instance_ids(masks, scores)
    points, _ = oracle_points(ids.cpu().numpy(), min_region=1)
    return InstanceResult(points=torch.from_numpy(points).to(score_map.device), masks=masks,
                          scores=scores, ids=ids,
                          refined=ensemble(score_map, masks, scores, config.uncovered_value),
                          prompted=(masks, scores))


def run_ugains(segmenter, rgb, score_map, config=None, ignore=None, points=None,
               min_score=None):
    """Run UGainS on one image: prompts from ``score_map``, masks, scores, NMS, ensemble.

    ``segmenter``: anything with ``set_image(rgb)`` and ``masks_for_points(xy)
    -> (bool masks [P, H, W], predicted IoU [P])`` (a
    :class:`~.promptable.PromptableSegmenter`). ``score_map``: float
    ``[H, W]`` at the image's resolution, higher = more anomalous (RbA's
    ``U``, or a pixel model's map with a threshold that suits it).
    ``points``: prompts to use instead of sampling them (the oracle rows).
    ``min_score``: instances scoring lower are dropped after NMS, before the
    ids and the ensemble (None keeps all, UGainS as published).
    """
    config = config or UGainSConfig()
    score_map = torch.as_tensor(score_map, dtype=torch.float32, device=segmenter.device)
    if tuple(score_map.shape) != tuple(rgb.shape[:2]):
        raise ValueError(f'score map {tuple(score_map.shape)} and image '
                         f'{tuple(rgb.shape[:2])} differ in size')
    if points is None:
        ign = None if ignore is None else torch.as_tensor(ignore, device=score_map.device)
        points = sample_prompts(score_map, config, ign)
    points = torch.as_tensor(points, dtype=torch.float32, device=segmenter.device)
    segmenter.set_image(rgb)
    masks, _ = segmenter.masks_for_points(points)
    scores = mask_scores(masks, score_map, config.empty_score)
    keep = mask_nms(masks, scores, config.nms_iou)
    kept, kept_scores = masks[keep], scores[keep]
    if min_score is not None:
        strong = kept_scores >= min_score
        kept, kept_scores = kept[strong], kept_scores[strong]
    return InstanceResult(points=points, masks=kept, scores=kept_scores,
                          ids=instance_ids(kept, kept_scores),
                          refined=ensemble(score_map, kept, kept_scores,
                                           config.uncovered_value),   # NaN stays NaN
                          prompted=(masks, scores))
