"""``experiment synthesis``: paper 001's Table I, the rows that make sense here.

A fixed subset of a split (normal and local anomaly types; every
``every``-th frame, at most ``limit``), each frame edited three times (the
guidances reverse, forward and mismatched, same seed and steps); from those
edits:

* ``ssim``, ``rgb``: the reverse edit compared in SSIM / RGB (Table I rows 1
  and 9), no refinement;
* ``features``: the reverse edit in the feature space (ERFNet by default),
  no refinement (row 8, "w/o SAM");
* ``features + slic`` and ``features + promptable``: refined by SLIC
  superpixels or by the promptable segmenter on a grid (row 15's SAM);
* ``forward matching`` and ``mismatched``: the baselines' edits through the
  default analysis (features + the default refinement; rows 5 and 6);
* side by side on the same frames: the pixel branch's anomaly map and the
  instance branch's refined map (``pixel branch``, ``instance branch``).

Metrics per row: pixel AUC-PR (average precision), AUROC and FPR95 over
the frames' pixels inside the model crop, and SegmentMeIfYouCan's F1* of
the mask at each row's threshold where ``mask_fpr`` of the normal pixels
of ``calib_frames`` normal validation frames score above it (the same rule
for every row, calibrated off the test frames). Writes synthesis.json,
synthesis.md, a PR plot and a contact sheet of panels.
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

from ..pixel import SHIPPED_MODEL as PIXEL_MODEL
from ...data.hazards import HazardsDataset
from ...data.synthetic.catalog import GLOBAL_TYPES
from ...io.files import atomic_write_bytes
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text
from ...metrics.binary import BinaryScoreAccumulator
from ...metrics.segmentation import ComponentF1Accumulator

GUIDED = ('reverse', 'forward', 'mismatched')
MASK_FPR = 0.05


def experiment_frames(data_dir, split='test_set', every=8, limit=24):
    """Return the fixed subset: records of ``split`` (normal and local types), every n-th.

    Of the every-n-th frames (by file name), ``limit`` spread evenly over
    the whole split: a dataset's sequences are grouped (normal ones first in
    ours), so the first ``limit`` would all be normal.
    """
    data = HazardsDataset(data_dir)
    records = [r for r in data.records(split) if r.label_name not in GLOBAL_TYPES]
    records = sorted(records, key=lambda r: r.filename)[::every]
    if limit and len(records) > limit:
        picks = np.linspace(0, len(records) - 1, limit).round().astype(int)
        records = [records[i] for i in picks]
    return data, records


def _label(record, shape):
    from .report import label_mask_for
    mask = label_mask_for(record.path)          # <root>/masks/<stem>.png; none: normal
    return np.zeros(shape, np.uint8) if mask is None else mask.astype(np.uint8)


def _read(record):
    bgr = cv2.imread(str(record.path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'cannot decode {str(record.path)!r}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def row_names(refinements=('slic', 'promptable'), branches=True):
    """Return the table's rows in order."""
    rows = ['ssim', 'rgb', 'features']
    rows += [f'features + {r}' for r in refinements]
    rows += ['forward matching', 'mismatched']
    if branches:
        rows += ['pixel branch', 'instance branch']
    return rows


class _Maps:
    """Every row's map of one frame, at the frame's resolution (NaN outside the crop)."""

    def __init__(self, synth, branches, refinements):
        self.synth = synth
        self.branches = branches
        self.refinements = refinements

    def __call__(self, rgb):
        from .analysis import refine_by_segments
        from ...runtime.preprocess import fit_resize
        s = self.synth
        size = rgb.shape[:2]
        small = fit_resize(rgb, s.input_shape)
        edits = {g: s.edit(small[None], guidance=g)[0] for g in GUIDED}
        maps = {}
        for kind in ('ssim', 'rgb'):
            maps[kind] = s.to_input(s.distance(small, edits['reverse'], kind)[0], size)
        features = s.options.features if s.options.features not in ('rgb', 'ssim') \
            else 'erfnet'
        distance, analysed = s.distance(small, edits['reverse'], features)
        maps['features'] = s.to_input(distance, size)
        segments = {r: s.segments(analysed, r) for r in self.refinements}
        for r, seg in segments.items():
            maps[f'features + {r}'] = s.to_input(refine_by_segments(distance, seg), size)
        default = self.refinements[0]
        for g, name in (('forward', 'forward matching'), ('mismatched', 'mismatched')):
            d, _ = s.distance(small, edits[g], features)
            maps[name] = s.to_input(refine_by_segments(d, segments[default]), size)
        if self.branches:
            pixel, instance = self.branches
            maps['pixel branch'] = pixel.segment(rgb)[0].anomaly
            maps['instance branch'] = instance.segment(rgb).refined
        return maps, edits['reverse']


def run_synthesis_experiment(model_dir, data_dir, out_dir, *, options=None, split='test_set',
                             every=8, limit=24, calib_frames=8, branches=True,
                             refinements=('slic', 'promptable'), show_progress=True):
    """Run the experiment (module docs); return the report dict."""
    from tqdm import tqdm

    from .detector import AnomalySynthesizer
    from .detector import SynthesisOptions
    options = options or SynthesisOptions()
    synth = AnomalySynthesizer.from_model_dir(model_dir, options=options)
    pixel = instance = None
    if branches:
        from ..instance.config import InstanceNodeConfig
        from ..instance.detector import InstanceAnomalySegmenter
        from ..pixel.detector import PixelAnomalySegmenter
        from ...runtime.manifest import shipped_model_dir
        pixel_dir = options.pixel_model or shipped_model_dir(PIXEL_MODEL)
        pixel = PixelAnomalySegmenter.from_model_dir(pixel_dir)
        node = InstanceNodeConfig()
        instance = InstanceAnomalySegmenter.from_model_dirs(
            pixel_dir, options.promptable or None, prompt_fpr=node.prompt_fpr,
            instance_fpr=node.instance_fpr, num_points=node.num_points, nms_iou=node.nms_iou)
    maps_of = _Maps(synth, (pixel, instance) if branches else None, tuple(refinements))
    rows = row_names(refinements, branches)
    data, records = experiment_frames(data_dir, split, every, limit)
    if not records:
        raise ValueError(f'{str(data_dir)!r} has no {split} frames to evaluate.')
    calib = data.records('validation_set', anomalous=False)[:calib_frames]
    if not calib:
        raise ValueError(f'{str(data_dir)!r} has no normal validation frames to set the '
                         'F1* thresholds on.')
    bar = tqdm(total=len(calib) + len(records), desc='experiment synthesis', unit='frame',
               disable=not show_progress, dynamic_ncols=True)
    normal = {r: [] for r in rows}
    started = time.perf_counter()
    for rec in calib:
        maps, _ = maps_of(_read(rec))
        for r in rows:
            v = maps[r][np.isfinite(maps[r])]
            normal[r].append(v[::4])
        bar.update(1)
    thresholds = {r: float(np.quantile(np.concatenate(normal[r]), 1 - MASK_FPR)) for r in rows}
    curves = {r: BinaryScoreAccumulator() for r in rows}
    comps = {r: ComponentF1Accumulator() for r in rows}
    sheet = []
    for rec in records:
        rgb = _read(rec)
        label = _label(rec, rgb.shape[:2])
        maps, edit = maps_of(rgb)
        for r in rows:
            valid = np.isfinite(maps[r])
            curves[r].update(label, np.where(valid, maps[r], 0.0), valid)
            comps[r].update(np.where(valid, label, 255).astype(np.uint8),
                            valid & (np.nan_to_num(maps[r], nan=-np.inf) > thresholds[r]))
        if label.any() and len(sheet) < 6:
            sheet.append((rgb, edit, maps, label))
        bar.update(1)
    bar.close()
    wall = time.perf_counter() - started
    report = {
        'model': str(model_dir), 'data': str(data_dir), 'split': split, 'every': every,
        'frames': len(records), 'anomalous_frames': sum(r.is_anomaly for r in records),
        'calibration_frames': len(calib), 'mask_fpr': MASK_FPR,
        'guidance': {'strength': synth.guidance.strength,
                     'steps': synth.guidance.steps
                     or synth.scheduler.config.num_train_timesteps,
                     'seed': synth.guidance.seed},
        'features': options.features, 'refinements': list(refinements),
        'analysis_shape': list(synth.analysis_shape),
        'rows': {}, 'wall_s': wall,
        'seconds_per_frame': wall / (len(records) + len(calib)),
    }
    for r in rows:
        curve = curves[r].curve()
        comp = comps[r].results()
        report['rows'][r] = {'auprc': curve.average_precision(), 'auroc': curve.auroc(),
                             'fpr95': curve.fpr_at_tpr(0.95), 'f1_star': comp['f1_star'],
                             'threshold': thresholds[r]}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / 'synthesis.json', report)
    atomic_write_text(out / 'synthesis.md', format_synthesis_report(report) + '\n')
    from ...metrics.plots import pr_plot
    pr_plot(out / 'synthesis_pr.png', {r: curves[r].curve() for r in rows},
            title='Anomalies by synthesis: pixel precision-recall')
    if sheet:
        _contact_sheet(out / 'contact_sheet.jpg', sheet, synth)
    return report


def _contact_sheet(path, frames, synth, width=240):
    from .report import heat
    rows = []
    for rgb, edit, maps, label in frames:
        h, w = rgb.shape[:2]
        size = (width, int(round(h * width / w)))
        contours, _ = cv2.findContours(label, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        tiles = [cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                 cv2.cvtColor(cv2.resize(edit, (w, h), interpolation=cv2.INTER_LINEAR),
                              cv2.COLOR_RGB2BGR)]
        for name in ('rgb', 'features', f'features + {synth.options.refine}'
                     if f'features + {synth.options.refine}' in maps else 'features',
                     'pixel branch'):
            if name not in maps:
                continue
            m = maps[name]
            finite = m[np.isfinite(m)]
            lo, hi = (np.percentile(finite, 1), np.percentile(finite, 99.5)) if finite.size \
                else (0, 1)
            tiles.append(heat(m, lo, hi))
        for t in tiles:
            cv2.drawContours(t, contours, -1, (0, 255, 0), 2)
        rows.append(np.hstack([cv2.resize(t, size, interpolation=cv2.INTER_AREA)
                               for t in tiles]))
    atomic_write_bytes(path, cv2.imencode('.jpg', np.vstack(rows))[1].tobytes())


def format_synthesis_report(report):
    """Markdown table of an ``experiment synthesis`` report."""
    def pct(v):
        return '-' if v is None or not np.isfinite(v) else f'{100 * v:.2f}'
    g = report['guidance']
    lines = [f"{report['frames']} frames of {report['split']} ({report['anomalous_frames']} with "
             f"local anomalies), every {report['every']}; {g['steps']} reverse steps, lambda "
             f"{g['strength']:g}; feature space {report['features']}; F1* at each row's "
             f"{100 * report['mask_fpr']:g} % pixel FPR on {report['calibration_frames']} "
             'normal validation frames. Percent:', '',
             '| row | AUC-PR | AUROC | FPR95 | F1* |', '|---|---|---|---|---|']
    for name, m in report['rows'].items():
        lines.append(f"| {name} | {pct(m['auprc'])} | {pct(m['auroc'])} | {pct(m['fpr95'])} | "
                     f"{pct(m['f1_star'])} |")
    return '\n'.join(lines)


def run_strength_sweep(model_dir, data_dir, out_dir, strengths, *, options=None,
                       split='validation_set', every=8, limit=16, show_progress=True):
    """Choose the guidance strength lambda on ``split`` (not the test frames).

    Each frame of the fixed subset (:func:`experiment_frames` of ``split``)
    is edited with the configured guidance at every strength (same seed and
    steps) and analysed as the branch does (features, default refinement);
    the strength with the highest pixel AUC-PR is ``chosen``. Writes
    strength.json and strength.png (AUC-PR and AUROC against lambda).
    """
    import dataclasses

    from tqdm import tqdm

    from .detector import AnomalySynthesizer
    from .detector import SynthesisOptions
    strengths = [float(s) for s in strengths]
    if not strengths or min(strengths) < 0:
        raise ValueError(f'strengths {strengths}: one or more numbers >= 0.')
    options = options or SynthesisOptions()
    synths = [AnomalySynthesizer.from_model_dir(
        model_dir, options=dataclasses.replace(options, strength=s)) for s in strengths]
    for other in synths[1:]:        # one feature extractor and segmenter for all
        other._extractors, other._segmenter = synths[0]._extractors, synths[0]._segmenter
    data, records = experiment_frames(data_dir, split, every, limit)
    if not records or not any(r.is_anomaly for r in records):
        raise ValueError(f'{str(data_dir)!r}: no {split} frames with local anomalies to '
                         'choose lambda on.')
    curves = [BinaryScoreAccumulator() for _ in strengths]
    bar = tqdm(total=len(records) * len(strengths), desc='lambda sweep', unit='edit',
               disable=not show_progress, dynamic_ncols=True)
    started = time.perf_counter()
    for rec in records:
        rgb = _read(rec)
        label = _label(rec, rgb.shape[:2])
        for synth, curve in zip(synths, curves):
            m = synth.process(rgb).anomaly
            valid = np.isfinite(m)
            curve.update(label, np.where(valid, m, 0.0), valid)
            bar.update(1)
    bar.close()
    g = synths[0].guidance
    rows = []
    for s, acc in zip(strengths, curves):
        curve = acc.curve()
        rows.append({'strength': s, 'auprc': curve.average_precision(),
                     'auroc': curve.auroc(), 'fpr95': curve.fpr_at_tpr(0.95)})
    best = max(rows, key=lambda r: r['auprc'])
    report = {'model': str(model_dir), 'data': str(data_dir), 'split': split, 'every': every,
              'frames': len(records), 'anomalous_frames': sum(r.is_anomaly for r in records),
              'guidance': g.guidance,
              'steps': g.steps or synths[0].scheduler.config.num_train_timesteps,
              'features': options.features, 'refine': options.refine, 'rows': rows,
              'chosen': best['strength'], 'wall_s': time.perf_counter() - started}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / 'strength.json', report)
    from ...metrics.plots import series_plot
    series_plot(out / 'strength.png', [f'{s:g}' for s in strengths],
                {m: ([r[m] for r in rows], [0.0] * len(rows)) for m in ('auprc', 'auroc')},
                'guidance strength lambda', 'pixel metric',
                title=f"{split}: {report['frames']} frames, {report['steps']} steps")
    return report
