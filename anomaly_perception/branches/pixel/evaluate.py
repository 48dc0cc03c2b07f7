"""``anomaly-perception evaluate pixel``: a pixel model on a labelled dataset split.

Runs the deployed pipeline (:class:`~.detector.PixelAnomalySegmenter`:
the image at its own resolution in, maps at that resolution out, exactly
what the node publishes) on every frame of a split of normal and local
anomaly types (global types, whose mask is the whole image, are left out),
and scores against the full-resolution labels:

* mIoU on the normal classes (anomaly pixels are void);
* pixel AuPRC (AP), FPR95 and AUROC of the anomaly map, overall and per
  anomaly type (that type's anomaly pixels against every normal pixel);
* SegmentMeIfYouCan component metrics of the published mask: mean sIoU,
  mean PPV and mean F1*, with the dataset's anomaly instances as
  components;
* per frame with anomalies: its own pixel AP, for a contact sheet of the
  best, median and worst frames (image | map | mask over the label);
* where the errors are: the share of the mask's false-positive pixels
  that lie within :data:`BOUNDARY_PX` pixels of another label (a class
  edge, or an anomaly's edge) beside that share among all normal pixels,
  and which class the model gives the anomaly pixels;
* what FPR95 is made of: at the threshold where the pooled pixel FPR is
  :data:`POOLED_FPR` (the issue's FPR95 target), the recall of each type
  and its share of all anomaly pixels, so that the pooled misses (which
  must stay under 5 % for FPR95 to meet the target) are split by type.

Writes ``report.json``, ``pr.png`` and ``contact_sheet.jpg`` to OUT.
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

from .detector import PixelAnomalySegmenter
from ...data.hazards import HazardsDataset
from ...data.synthetic.catalog import GLOBAL_TYPES
from ...errors import AnomalyPerceptionError
from ...io.files import atomic_write_bytes
from ...io.files import atomic_write_json
from ...metrics.binary import binary_curve
from ...metrics.plots import pr_plot
from ...metrics.segmentation import ComponentF1Accumulator
from ...metrics.segmentation import ConfusionMatrix
from ...metrics.segmentation import PerTypePixelAccumulator
from ...runtime.preprocess import center_crop

VOID = 255
SHEET_ROWS = 3      # best, median, worst
BOUNDARY_PX = 4     # one model pixel of a 128x128 model on a 512x512 image
POOLED_FPR = 0.20   # the pixel FPR95 target of the pixel branch


def _read(path, flags, what):
    image = cv2.imread(str(path), flags)
    if image is None:
        raise AnomalyPerceptionError(f'Cannot read the {what} {str(path)!r}.')
    return image


def _frame_ap(truth, anomaly):
    valid = truth != VOID
    if not (truth[valid] == 1).any() or (truth[valid] == 1).all():
        return float('nan')
    return binary_curve(truth[valid] == 1, anomaly[valid]).average_precision()


def evaluate_pixel(model_dir, data_dir, out_dir, split='test_set', backend='torch',
                   limit=None, show_progress=True, region_aspect=None):
    """Evaluate ``model_dir`` on ``split`` of ``data_dir`` (see module docs); return the report.

    ``region_aspect`` (width / height): score only the largest centred crop
    of that aspect (the rest is void), so that models whose crops differ
    (a square model, a 16:9 model) are compared on the same pixels.
    """
    from tqdm import tqdm
    seg = PixelAnomalySegmenter.from_model_dir(model_dir, backend)
    data = HazardsDataset(data_dir)
    records = [r for r in data.records(split) if r.label_name not in GLOBAL_TYPES]
    if limit:
        records = records[:limit]
    if not records:
        raise AnomalyPerceptionError(f'{str(data_dir)!r} has no {split} frames of local types.')
    classes = seg.classes
    cm = ConfusionMatrix(len(classes), ignore_index=VOID)
    pixels = PerTypePixelAccumulator()
    components = ComponentF1Accumulator()
    per_frame = []
    fp = {'pixels': 0, 'on_boundary': 0}
    normal_px = {'pixels': 0, 'on_boundary': 0}
    predicted_as = np.zeros(len(classes), np.int64)
    kernel = np.ones((2 * BOUNDARY_PX + 1, 2 * BOUNDARY_PX + 1), np.uint8)
    started = time.perf_counter()
    for i, r in enumerate(tqdm(records, desc='evaluate pixel', unit='frame',
                               disable=not show_progress, dynamic_ncols=True)):
        stem = Path(r.filename).stem
        bgr = _read(r.path, cv2.IMREAD_COLOR, 'image')
        semantic = _read(data.root / 'semantic' / f'{stem}.png', cv2.IMREAD_UNCHANGED,
                         'semantic map')
        mask_path = data.root / 'masks' / f'{stem}.png'
        anomaly = (_read(mask_path, cv2.IMREAD_UNCHANGED, 'anomaly mask') > 0
                   if mask_path.is_file() else np.zeros(semantic.shape, bool))
        inst_path = data.root / 'instances' / f'{stem}.png'
        instances = (_read(inst_path, cv2.IMREAD_UNCHANGED, 'instance map')
                     if inst_path.is_file() else None)
        result = seg.segment(bgr, channel_order='bgr')[0]
        valid = np.isfinite(result.anomaly)
        if region_aspect is not None:
            region = np.zeros(valid.shape, bool)
            center_crop(region, region_aspect)[...] = True
            if not (valid | ~region).all():
                raise AnomalyPerceptionError(
                    f'--region-aspect {region_aspect:g}: the model does not see all of that '
                    f'region of {r.filename} (its own crop is smaller).')
            valid &= region
        truth = np.where(valid, anomaly.astype(np.uint8), VOID).astype(np.uint8)
        scores = np.nan_to_num(result.anomaly, nan=0.0)
        labels = np.where(anomaly | ~valid, VOID, semantic).astype(np.uint8)
        cm.update(result.semantic, labels)
        pixels.update(truth, scores, r.label_name)
        if (truth == 1).any():
            per_frame.append((_frame_ap(truth, scores), i))
        components.update(truth, result.mask,
                          None if instances is None else np.where(valid, instances, 0))
        full = np.where(anomaly, VOID, semantic).astype(np.uint8)
        boundary = cv2.dilate(full, kernel) != cv2.erode(full, kernel)
        normal = valid & ~anomaly
        false_pos = normal & result.mask
        fp['pixels'] += int(false_pos.sum())
        fp['on_boundary'] += int((false_pos & boundary).sum())
        normal_px['pixels'] += int(normal.sum())
        normal_px['on_boundary'] += int((normal & boundary).sum())
        predicted_as += np.bincount(result.semantic[anomaly & valid],
                                    minlength=len(classes))[:len(classes)]
    wall = time.perf_counter() - started
    curve = pixels.curve()
    comp = components.results()
    at_pooled = curve.threshold_at_fpr(POOLED_FPR)
    per_type = pixels.per_type(pooled_fpr=POOLED_FPR)
    report = {
        'model': str(model_dir), 'data': str(data_dir), 'split': split,
        'backend': seg.backend.describe(), 'frames': len(records),
        'excluded_types': sorted(GLOBAL_TYPES), 'region_aspect': region_aspect,
        'score': seg.manifest.get('score', {}),
        'miou': cm.miou(), 'iou': dict(zip(classes, (float(v) for v in cm.iou()))),
        'pixel_auprc': curve.average_precision(), 'pixel_fpr95': curve.fpr_at_tpr(0.95),
        'pixel_auroc': curve.auroc(),
        'pooled_fpr': {'fpr': POOLED_FPR, 'threshold': at_pooled,
                       'recall': curve.tpr_at_threshold(at_pooled)},
        'components': {k: comp[k] for k in ('f1_star', 'mean_siou', 'mean_ppv',
                                            'n_gt_components', 'n_pred_components')},
        'mask': {'threshold': seg.threshold, 'target_pixel_fpr': seg.target_fpr},
        'per_type': per_type, 'wall_s': wall, 'frames_per_s': len(records) / wall,
        'errors': {
            'boundary_px': BOUNDARY_PX,
            'false_positives_on_boundaries': fp['on_boundary'] / max(1, fp['pixels']),
            'normal_pixels_on_boundaries': normal_px['on_boundary'] / max(1,
                                                                          normal_px['pixels']),
            'anomaly_pixels_predicted_as': dict(zip(
                classes, (float(v) for v in predicted_as / max(1, predicted_as.sum()))))},
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pr_plot(out / 'pr.png', {f'{Path(str(model_dir)).name}': curve},
            title=f'Pixels, {split} (local types)')
    ranked = sorted((ap, i) for ap, i in per_frame if np.isfinite(ap))
    if ranked:
        picks = {'best': ranked[-1], 'median': ranked[len(ranked) // 2], 'worst': ranked[0]}
        _contact_sheet(out / 'contact_sheet.jpg', seg, records, data, picks)
        report['contact_sheet'] = {k: {'frame': records[i].filename, 'ap': ap}
                                   for k, (ap, i) in picks.items()}
    atomic_write_json(out / 'report.json', report)
    return report


def _contact_sheet(path, seg, records, data, picks, size=256):
    from .messages import overlay_image
    rows = []
    for name, (ap, i) in picks.items():
        r = records[i]
        bgr = cv2.imread(str(r.path), cv2.IMREAD_COLOR)
        result = seg.segment(bgr, channel_order='bgr')[0]
        rgb = bgr[..., ::-1]
        prob = np.nan_to_num(result.probability, nan=0.0)
        heat = cv2.applyColorMap((prob * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
        over = cv2.cvtColor(overlay_image(rgb, result), cv2.COLOR_RGB2BGR)
        stem = Path(r.filename).stem
        truth = cv2.imread(str(data.root / 'masks' / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
        if truth is not None:
            contours, _ = cv2.findContours((truth > 0).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(over, contours, -1, (0, 255, 0), 2)
        tiles = [cv2.resize(t, (size, size), interpolation=cv2.INTER_AREA)
                 for t in (bgr, heat, over)]
        row = np.hstack(tiles)
        cv2.rectangle(row, (0, 0), (3 * size, 18), (0, 0, 0), -1)
        cv2.putText(row, f'{name}: {r.label_name}, frame AP {ap:.3f} | calibrated map | mask '
                         '(red) and label (green)', (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(row)
    atomic_write_bytes(path, cv2.imencode('.jpg', np.vstack(rows))[1].tobytes())


def format_pixel_report(report):
    """Summary lines of an ``evaluate pixel`` report."""
    c = report['components']
    lines = [f"{report['frames']} frames of {report['split']} (local types), "
             f"{report['frames_per_s']:.1f} frames/s",
             f"mIoU {report['miou']:.3f}; pixel AuPRC {report['pixel_auprc']:.3f}, FPR95 "
             f"{report['pixel_fpr95']:.3f}, AUROC {report['pixel_auroc']:.3f}",
             f"mask at pixel FPR {report['mask']['target_pixel_fpr']:g}: F1* {c['f1_star']:.3f}, "
             f"sIoU {c['mean_siou']:.3f}, PPV {c['mean_ppv']:.3f}",
             f"mask false positives within {report['errors']['boundary_px']} px of a label "
             f"edge: {100 * report['errors']['false_positives_on_boundaries']:.0f}% (of all "
             f"normal pixels: {100 * report['errors']['normal_pixels_on_boundaries']:.0f}%)",
             'anomaly pixels predicted as: ' + ', '.join(
                 f'{k} {100 * v:.0f}%' for k, v in report['errors'][
                     'anomaly_pixels_predicted_as'].items()),
             f"at pooled pixel FPR {report['pooled_fpr']['fpr']:g}: recall "
             f"{report['pooled_fpr']['recall']:.3f} (FPR95 needs 0.95)",
             'per type: AuPRC / FPR95 / share of anomaly pixels / recall and share of all '
             'anomaly pixels missed at that FPR:']
    for kind, m in report['per_type'].items():
        lines.append(f"  {kind:<14} {m['auprc']:.3f} / {m['fpr95']:.3f} / "
                     f"{100 * m['share']:5.1f}% / {m['recall_at_pooled_fpr']:.3f} "
                     f"{100 * m['missed_share_at_pooled_fpr']:5.1f}%")
    return '\n'.join(lines)
