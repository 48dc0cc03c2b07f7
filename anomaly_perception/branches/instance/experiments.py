"""``anomaly-perception experiment ugains``: paper 003's Tables 2, 4 and 5 on our test split.

One pass over the test frames of local anomaly types (normal frames too:
pixel metrics need them). Per frame: the driving map ``U`` from a pixel
model at the image's resolution (RbA from a ``maskcls_rba`` model, or any
pixel model's map with a threshold that suits it), the promptable
segmenter's image embedding once, and every prompt of every row through
the mask decoder in batches; the rows then differ only in which masks they
keep and how they score them:

* **Baseline** (in Table 2, first): ``components+ensemble``, no
  promptable model: each connected region of the map above the prompt
  threshold is an instance (:func:`~.ugains.run_components`, what the node
  runs with ``model_dir:=components``), scored and ensembled as UGainS;
  with ``instance_fpr``, ``components+ensemble+instance_filter`` too. The
  promptable default must beat it;
* **Table 2**: ``oracle`` (one point per ground-truth instance, its most
  interior pixel; every mask scored 1), ``oracle + scoring`` (mask score =
  mean ``U``), ``FPS 50 + scoring``, ``+ NMS``, ``+ ensemble`` (UGainS);
* **Table 4**: random, k-means and FPS samplers, 50 points, full pipeline;
* **Table 5**: FPS with 10, 20, 50, 100 and 200 points, full pipeline (the
  FPS sets are nested: the first k of 200 farthest points are the k
  farthest points);
* with ``instance_fpr``, one more Table 2 row, ``+ instance filter``: the
  ensemble row keeping only instances whose score reaches the score
  model's calibrated threshold at that pixel false-positive rate (what
  the instance node does by default; not in paper 003).

Per row: pixel AP and FPR95 of the row's pixel map (the instance map ``A``
with uncovered pixels at -1; ``A + U`` for the ensemble rows), iAP and
iAP50 (Cityscapes protocol, regions under 10 px ignored, pixels outside the
model's view void), point precision and recall; the input map's own pixel
AP / FPR95 as the reference. Writes ``ugains.json``, ``ugains.md`` and a
contact sheet of the full pipeline.
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

from pathlib import Path
import time

import cv2
import numpy as np
import torch

from . import ugains
from ...data.hazards import HazardsDataset
from ...data.synthetic.catalog import GLOBAL_TYPES
from ...errors import AnomalyPerceptionError
from ...io.files import atomic_write_bytes
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text
from ...metrics.binary import BinaryScoreAccumulator
from ...metrics.segmentation import InstanceAPAccumulator

POINTS = (10, 20, 50, 100, 200)
FILTER_ROW = 'fps50+scoring+nms+ensemble+instance_filter'
BASELINE_ROW = 'components+ensemble'
BASELINE_FILTER_ROW = 'components+ensemble+instance_filter'
ALIASES = {'fps50': 'fps50+scoring+nms+ensemble'}     # one row, in Tables 2, 4 and 5
VOID = 255
SIZE_BINS = (10, 100, 300, 1000, 3000)   # instance areas in pixels; the last bin is open
CEILING_THRESHOLDS = np.linspace(0.05, 0.95, 19)


def decoder_shape(spec, shape):
    """``(h, w)`` of a SAM spec's low-resolution masks for an image of ``shape``.

    (A click-crops spec: the image's own, where its windows' masks are pasted.)

    SAM resizes the longest side to ``image_size`` and its mask decoder
    returns masks at 4 / ``patch_size`` of that input.
    """
    h, w = shape[:2]
    if 'crop_size' in spec:        # click_crops: masks pasted at the image's own resolution
        return h, w
    factor = spec['image_size'] / max(h, w) * 4 / int(spec['encoder'].get('patch_size', 16))
    return max(1, int(round(h * factor))), max(1, int(round(w * factor)))


def resolution_ceiling(region, low_shape):
    """Return the IoU of the best mask of ``region`` that a ``low_shape`` grid can express.

    The region's coverage of each grid cell (area downsampling), bilinearly
    upsampled back, thresholded at the best of 19 levels (0.05 .. 0.95):
    a decoder whose logits rank pixels by coverage. Small objects, which
    cover no cell well, cannot come back whole.
    """
    region = np.asarray(region, bool)
    h, w = region.shape
    cover = cv2.resize(region.astype(np.float32), (low_shape[1], low_shape[0]),
                       interpolation=cv2.INTER_AREA)
    up = cv2.resize(cover, (w, h), interpolation=cv2.INTER_LINEAR)
    best = 0.0
    for t in CEILING_THRESHOLDS:
        pred = up > t
        union = (pred | region).sum()
        best = max(best, float((pred & region).sum() / union) if union else 0.0)
    return best


class _MaskSizes:
    """Per instance: area, oracle-point mask IoU, and two resolution ceilings."""

    def __init__(self):
        self.rows = []

    def add(self, gt_ids, ids, masks, low_shape, sam_shape):
        for m, i in zip(masks, ids):
            region = gt_ids == i
            union = (m | region).sum()
            self.rows.append((int(region.sum()), float((m & region).sum() / max(1, union)),
                              resolution_ceiling(region, low_shape),
                              resolution_ceiling(region, sam_shape)))

    def result(self):
        r = np.asarray(self.rows, float).reshape(-1, 4)
        edges = list(SIZE_BINS) + [np.inf]
        bins = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            sel = r[(r[:, 0] >= lo) & (r[:, 0] < hi)]
            bins.append({
                'area': [int(lo), None if not np.isfinite(hi) else int(hi)],
                'instances': len(sel),
                'share': len(sel) / len(r) if len(r) else None,
                'mask_iou': float(sel[:, 1].mean()) if len(sel) else None,
                'mask_iou50': float((sel[:, 1] >= 0.5).mean()) if len(sel) else None,
                'ceiling_iou': float(sel[:, 2].mean()) if len(sel) else None,
                'ceiling_iou50': float((sel[:, 2] >= 0.5).mean()) if len(sel) else None,
                'sam_ceiling_iou50': float((sel[:, 3] >= 0.5).mean()) if len(sel) else None})
        return {'instances': len(r),
                'median_area': float(np.median(r[:, 0])) if len(r) else None,
                'mask_iou': float(r[:, 1].mean()) if len(r) else None,
                'mask_iou50': float((r[:, 1] >= 0.5).mean()) if len(r) else None,
                'ceiling_iou50': float((r[:, 2] >= 0.5).mean()) if len(r) else None,
                'sam_ceiling_iou50': float((r[:, 3] >= 0.5).mean()) if len(r) else None,
                'bins': bins}


def _rows(points):
    rows = {'table2': [BASELINE_ROW, 'oracle', 'oracle+scoring', 'fps50+scoring',
                       'fps50+scoring+nms', 'fps50+scoring+nms+ensemble'],
            'table4': ['random50', 'kmeans50', 'fps50'],
            'table5': [f'fps{k}' for k in points]}
    return rows


class _Row:

    def __init__(self):
        self.pixels = BinaryScoreAccumulator()
        self.instances = InstanceAPAccumulator()
        self.precision, self.recall = [], []

    def add(self, truth, pixel_map, gt_ids, masks, scores, void, points=None, anomaly=None):
        self.pixels.update(truth, pixel_map)
        self.instances.update(gt_ids, masks, scores, void)
        if points is not None and anomaly.any():
            p, r = ugains.point_precision_recall(points, anomaly, gt_ids)
            if np.isfinite(p):
                self.precision.append(p)
            if np.isfinite(r):
                self.recall.append(r)

    def result(self):
        curve = self.pixels.curve()
        inst = self.instances.results()
        out = {'pixel_ap': curve.average_precision(), 'pixel_fpr95': curve.fpr_at_tpr(0.95),
               'iap': inst['iAP'], 'iap50': inst['iAP50']}
        if self.precision or self.recall:
            out['point_precision'] = float(np.mean(self.precision)) if self.precision else None
            out['point_recall'] = float(np.mean(self.recall)) if self.recall else None
        return out


def _instance_map(masks, scores, uncovered):
    """Return ``A`` of the kept masks, uncovered pixels at ``uncovered`` (no ``U`` added)."""
    zero = torch.zeros(masks.shape[1:])
    return (ugains.ensemble(zero, masks, scores, uncovered)).numpy()


def run_ugains_experiment(score_model, promptable_model, data_dir, out_dir, *, config=None,
                          split='test_set', every=1, limit=None, points=POINTS,
                          show_progress=True, prompt_batch=64, prompt_fpr=None,
                          instance_fpr=None, peak_ratio=None):
    """Run the three tables (see module docs); return the report.

    ``prompt_fpr``: instead of ``config.threshold``, take prompt candidates
    above the score model's calibrated threshold at this pixel
    false-positive rate (from its normal validation pixels; no fallback).
    ``peak_ratio``: the baseline rows' hysteresis (None: the node's
    ``component_peak_ratio``; 1: every region of the mask).
    """
    import dataclasses

    from tqdm import tqdm

    from .config import InstanceNodeConfig
    from .detector import InstanceAnomalySegmenter
    from .promptable import load_promptable
    from ..pixel.detector import PixelAnomalySegmenter
    config = config or ugains.UGainSConfig()
    peak_ratio = InstanceNodeConfig().component_peak_ratio if peak_ratio is None else peak_ratio
    pixel = PixelAnomalySegmenter.from_model_dir(score_model)
    if prompt_fpr is not None:
        calibrated = PixelAnomalySegmenter.from_model_dir(score_model, target_fpr=prompt_fpr)
        config = dataclasses.replace(config, threshold=float(calibrated.threshold),
                                     fallback_threshold=None)
    seg, prompt_manifest = load_promptable(promptable_model, prompt_batch=prompt_batch)
    data = HazardsDataset(data_dir)
    records = [r for r in data.records(split) if r.label_name not in GLOBAL_TYPES][::every]
    if limit:
        records = records[:limit]
    if not records:
        raise AnomalyPerceptionError(f'{str(data_dir)!r} has no {split} frames of local types.')
    groups = _rows(points)
    # The baseline as the node runs it: regions of the pixel model's own mask, with its
    # hysteresis (InstanceNodeConfig.component_peak_ratio).
    baseline = InstanceAnomalySegmenter(pixel, None, peak_ratio=peak_ratio)
    mask_config = dataclasses.replace(config, threshold=float(pixel.threshold))
    min_peak = baseline.min_peak
    min_score = None
    if instance_fpr is not None:
        min_score = float(pixel.calibration.threshold_for_fpr(instance_fpr))
        groups['table2'].append(FILTER_ROW)
        groups['table2'].insert(1, BASELINE_FILTER_ROW)
    rows = {name: _Row() for names in groups.values() for name in names
            if ALIASES.get(name, name) == name}
    reference = BinaryScoreAccumulator()
    sizes = _MaskSizes()
    spec = prompt_manifest['architecture']['spec']
    most = max(points)
    sheet = []
    started = time.perf_counter()
    for i, r in enumerate(tqdm(records, desc='experiment ugains', unit='frame',
                               disable=not show_progress, dynamic_ncols=True)):
        bgr = cv2.imread(str(r.path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise AnomalyPerceptionError(f'Cannot read the image {str(r.path)!r}.')
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        stem = Path(r.filename).stem
        mask_path = data.root / 'masks' / f'{stem}.png'
        inst_path = data.root / 'instances' / f'{stem}.png'
        anomaly = (cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED) > 0
                   if mask_path.is_file() else np.zeros(bgr.shape[:2], bool))
        gt_ids = (cv2.imread(str(inst_path), cv2.IMREAD_UNCHANGED).astype(np.int64)
                  if inst_path.is_file() else np.zeros(bgr.shape[:2], np.int64))
        gt_ids = np.where(anomaly, gt_ids, 0)
        u = pixel.segment(rgb)[0].anomaly
        valid = np.isfinite(u)
        void = ~valid
        gt_ids = np.where(valid, gt_ids, 0)
        truth = np.where(valid, anomaly.astype(np.uint8), VOID).astype(np.uint8)
        reference.update(truth, np.nan_to_num(u, nan=0.0))
        ut = torch.from_numpy(u)
        cand = ugains.candidate_points(ut, config.threshold, config.fallback_threshold,
                                       torch.from_numpy(void))
        fps = cand[ugains.farthest_point_sampling(cand, most)].flip(1).float()
        rnd = cand[ugains.random_sampling(cand, 50, seed=config.seed + i)].flip(1).float()
        km = cand[ugains.kmeans_sampling(cand, 50)].flip(1).float()
        oracle_xy, oracle_ids = ugains.oracle_points(gt_ids)
        oracle = torch.from_numpy(oracle_xy)
        sets = [fps, rnd, km, oracle]
        seg.set_image(rgb)
        masks, _ = seg.masks_for_points(torch.cat(sets))
        masks = masks.cpu()
        fps_m, rnd_m, km_m, or_m = torch.split(masks, [len(s) for s in sets])
        safe_u = torch.nan_to_num(ut, nan=float(config.uncovered_value))
        for name, floor in ((BASELINE_ROW, None), (BASELINE_FILTER_ROW, min_score)):
            if name in rows:        # the regions of the pixel model's own mask, as the node
                cc = ugains.run_components(safe_u, mask_config, ignore=void, min_score=floor,
                                           min_peak=min_peak)
                rows[name].add(truth, cc.refined.numpy(), gt_ids, cc.masks.numpy(),
                               cc.scores.numpy(), void)

        def scored(m):
            return ugains.mask_scores(m, ut, config.empty_score)

        def full(name, m, pts):
            s = scored(m)
            keep = ugains.mask_nms(m, s, config.nms_iou)
            refined = ugains.ensemble(safe_u, m[keep], s[keep], config.uncovered_value).numpy()
            rows[name].add(truth, refined, gt_ids, m[keep].numpy(), s[keep].numpy(), void,
                           pts.numpy(), anomaly & valid)
            return keep, s

        sizes.add(gt_ids, oracle_ids, or_m.numpy(), decoder_shape(spec, gt_ids.shape),
                  decoder_shape({'image_size': 1024, 'encoder': {'patch_size': 16}},
                                gt_ids.shape))
        ones = torch.ones(len(or_m))
        rows['oracle'].add(truth, _instance_map(or_m, ones, -1.0), gt_ids, or_m.numpy(),
                           ones.numpy(), void)
        s_or = scored(or_m)
        rows['oracle+scoring'].add(truth, _instance_map(or_m, s_or, -1.0), gt_ids, or_m.numpy(),
                                   s_or.numpy(), void)
        f50, p50 = fps_m[:50], fps[:50]
        s50 = scored(f50)
        rows['fps50+scoring'].add(truth, _instance_map(f50, s50, -1.0), gt_ids, f50.numpy(),
                                  s50.numpy(), void, p50.numpy(), anomaly & valid)
        keep = ugains.mask_nms(f50, s50, config.nms_iou)
        rows['fps50+scoring+nms'].add(truth, _instance_map(f50[keep], s50[keep], -1.0), gt_ids,
                                      f50[keep].numpy(), s50[keep].numpy(), void)
        keep50, _ = full('fps50+scoring+nms+ensemble', f50, p50)
        if min_score is not None:
            sel = keep50[s50[keep50] >= min_score]
            refined = ugains.ensemble(safe_u, f50[sel], s50[sel], config.uncovered_value).numpy()
            rows[FILTER_ROW].add(truth, refined, gt_ids, f50[sel].numpy(), s50[sel].numpy(),
                                 void, p50.numpy(), anomaly & valid)
        full('random50', rnd_m, rnd)
        full('kmeans50', km_m, km)
        for k in points:
            if f'fps{k}' in rows:
                full(f'fps{k}', fps_m[:k], fps[:k])
        if anomaly.any() and len(sheet) < 6:
            sheet.append((rgb, u, anomaly, f50[keep50].numpy(), p50.numpy()))
    wall = time.perf_counter() - started
    curve = reference.curve()
    report = {
        'score_model': str(score_model), 'promptable_model': str(promptable_model),
        'data': str(data_dir), 'split': split, 'frames': len(records), 'every': every,
        'config': dict(config.__dict__), 'prompt_fpr': prompt_fpr,
        'instance_fpr': instance_fpr, 'instance_min_score': min_score,
        'baseline': {'mask_threshold': float(pixel.threshold), 'peak_ratio': peak_ratio,
                     'min_peak': min_peak},
        'input_map': {'pixel_ap': curve.average_precision(),
                      'pixel_fpr95': curve.fpr_at_tpr(0.95)},
        'tables': {t: {name: rows[ALIASES.get(name, name)].result() for name in names}
                   for t, names in groups.items()},
        'mask_sizes': sizes.result(),
        'wall_s': wall, 'seconds_per_frame': wall / len(records),
        'promptable': {'name': prompt_manifest.get('name'),
                       'variant': prompt_manifest['architecture']['spec'].get('variant')},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / 'ugains.json', report)
    atomic_write_text(out / 'ugains.md', format_ugains_report(report) + '\n')
    if sheet:
        contact_sheet(out / 'contact_sheet.jpg', sheet)
        report['contact_sheet'] = 'contact_sheet.jpg'
    return report


def contact_sheet(path, frames, width=320):
    """Per frame: image with prompts | driving map | instances over the label outline."""
    rows = []
    for rgb, u, anomaly, masks, pts in frames:
        h, w = anomaly.shape
        scale = width / w
        size = (width, int(round(h * scale)))
        img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).copy()
        for x, y in pts:
            cv2.circle(img, (int(x), int(y)), 4, (0, 255, 255), -1)
        finite = np.isfinite(u)
        lo, hi = (np.nanpercentile(u, 1), np.nanpercentile(u, 99.9)) if finite.any() else (0, 1)
        norm = np.clip((np.nan_to_num(u, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
        heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
        inst = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).copy() // 2
        colours = np.random.default_rng(0).integers(60, 255, (max(1, len(masks)), 3))
        for k, m in enumerate(masks):
            inst[m] = colours[k]
        contours, _ = cv2.findContours(anomaly.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(inst, contours, -1, (255, 255, 255), 2)
        rows.append(np.hstack([cv2.resize(p, size, interpolation=cv2.INTER_AREA)
                               for p in (img, heat, inst)]))
    atomic_write_bytes(path, cv2.imencode('.jpg', np.vstack(rows))[1].tobytes())


def format_ugains_report(report):
    """Markdown tables of an ``experiment ugains`` report."""
    def fmt(v):
        return '-' if v is None or (isinstance(v, float) and not np.isfinite(v)) else \
            f'{100 * v:.2f}'
    ref = report['input_map']
    lines = [f"{report['frames']} frames of {report['split']} (local types); input map: pixel "
             f"AP {fmt(ref['pixel_ap'])}, FPR95 {fmt(ref['pixel_fpr95'])} (percent)", '']
    titles = {'table2': 'Table 2 (pipeline steps)', 'table4': 'Table 4 (samplers, 50 points)',
              'table5': 'Table 5 (number of FPS points)'}
    for t, rows in report['tables'].items():
        lines += [f'**{titles[t]}**', '',
                  '| row | pixel AP | FPR95 | iAP | iAP50 | point P | point R |',
                  '|---|---|---|---|---|---|---|']
        for name, m in rows.items():
            lines.append(f"| {name} | {fmt(m['pixel_ap'])} | {fmt(m['pixel_fpr95'])} | "
                         f"{fmt(m['iap'])} | {fmt(m['iap50'])} | "
                         f"{fmt(m.get('point_precision'))} | {fmt(m.get('point_recall'))} |")
        lines.append('')
    sizes = report.get('mask_sizes')
    if sizes and sizes['instances']:
        lines += [f"**Masks by instance size** ({sizes['instances']} instances, median area "
                  f"{sizes['median_area']:.0f} px; percent)", '',
                  '| area (px) | share | oracle-point mask IoU | IoU >= 0.5 | resolution '
                  'ceiling IoU | ceiling >= 0.5 | SAM-grid ceiling >= 0.5 |',
                  '|---|---|---|---|---|---|---|']
        for b in sizes['bins']:
            lo, hi = b['area']
            lines.append(f"| {lo}-{hi if hi else ''} | {fmt(b['share'])} | "
                         f"{fmt(b['mask_iou'])} | {fmt(b['mask_iou50'])} | "
                         f"{fmt(b['ceiling_iou'])} | {fmt(b['ceiling_iou50'])} | "
                         f"{fmt(b['sam_ceiling_iou50'])} |")
        lines.append(f"| all | 100.00 | {fmt(sizes['mask_iou'])} | {fmt(sizes['mask_iou50'])} "
                     f"| | {fmt(sizes['ceiling_iou50'])} | {fmt(sizes['sam_ceiling_iou50'])} |")
        lines.append('')
    return '\n'.join(lines)
