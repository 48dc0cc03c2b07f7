"""``experiment painted``: the instance branch as a new user meets it, on objects it never saw.

Normal frames of a dataset split (a synthetic seed the models never trained
on) are taken in order; every other one gets one procedural cut-out pasted
onto its floor (:class:`~..pixel.paste.Paster`: random blobs, polygons,
strokes and thin curves with flat, noisy, striped or checked fills, blended
into the frame; no such object is in the synthetic world). Each frame then
goes through the same detector ``score --branch instance`` and the node run
(:meth:`~.detector.InstanceAnomalySegmenter.from_model_dirs`, the node's
prompt and instance thresholds), once per instance design:

* **recall at IoU 0.5**: the share of painted objects with an instance of
  IoU >= 0.5 (the feathered rim of the paste counts neither way);
* **false instances per normal image**: instances on the frames left
  unpainted (every one of them is false);
* the median IoU of the best instance per painted object, and the extra
  instances on painted frames.

Writes ``painted.json``, ``painted.md`` and a contact sheet per design
(image with prompts | driving map | instances over the object's outline).
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
from pathlib import Path
import time

import numpy as np

from .experiments import contact_sheet
from ...data.hazards import HazardsDataset
from ...errors import AnomalyPerceptionError
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text
from ...io.images import read_image_file

SHEET_FRAMES = 6


def paint_frames(rgbs, seed=0):
    """Paste one procedural cut-out on every other frame; return ``[(rgb, void, rim)]``.

    Frames 1, 3, 5 ... are painted (``void``: the object's pixels, ``rim``:
    its feathered edge; a paste that falls off the frame is drawn again);
    the others are returned as they are, with empty masks. Deterministic
    for a ``seed``.
    """
    from ..pixel.paste import CutoutBank
    from ..pixel.paste import PasteOptions
    from ..pixel.paste import Paster
    paster = Paster(CutoutBank(('procedural',)), PasteOptions(per_image=(1, 1)))
    out = []
    for i, rgb in enumerate(rgbs):
        empty = np.zeros(rgb.shape[:2], bool)
        if i % 2 == 0:
            out.append((rgb, empty, empty))
            continue
        out.append(paster.paste_visible(rgb, np.random.default_rng([seed, i])))
    return out


def best_iou(ids, void, rim):
    """Return the highest IoU of any instance in ``ids`` with ``void`` (``rim`` ignored)."""
    care = ~rim
    best = 0.0
    for k in np.unique(ids[void]):
        if k == 0:
            continue
        m = ids == k
        union = ((m | void) & care).sum()
        best = max(best, float((m & void & care).sum()) / max(1, union))
    return best


def run_painted_experiment(pixel_model, designs, data_dir, out_dir, *, split='test_set',
                           every=1, limit=None, seed=0, prompt_fpr=None, instance_fpr=None,
                           show_progress=True):
    """Run the module's measurement for each ``{name: promptable dir or 'components'}``.

    ``prompt_fpr``, ``instance_fpr``: None takes the node's defaults (as
    ``score`` does), and its ``component_peak_ratio`` too.
    """
    from tqdm import tqdm

    from .config import InstanceNodeConfig
    from .detector import InstanceAnomalySegmenter
    node = InstanceNodeConfig()
    prompt_fpr = node.prompt_fpr if prompt_fpr is None else prompt_fpr
    instance_fpr = node.instance_fpr if instance_fpr is None else instance_fpr
    node = dataclasses.replace(node, pixel_model_dir=str(pixel_model or ''),
                               prompt_fpr=prompt_fpr, instance_fpr=instance_fpr)
    data = HazardsDataset(data_dir)
    records = data.records(split, anomalous=False)[::every]
    if limit:
        records = records[:limit]
    if len(records) < 2:
        raise AnomalyPerceptionError(f'{str(data_dir)!r} has {len(records)} normal {split} '
                                     'frames; at least 2 are needed (one painted, one not).')
    frames = paint_frames([np.ascontiguousarray(read_image_file(r.path)[..., ::-1])
                           for r in records], seed)
    out_dir = Path(out_dir)
    report = {'data': str(data_dir), 'split': split, 'frames': len(frames), 'seed': seed,
              'prompt_fpr': prompt_fpr, 'instance_fpr': instance_fpr,
              'pixel_model': str(pixel_model), 'designs': {}}
    for name, model in designs.items():
        seg = InstanceAnomalySegmenter.from_config(node, model)
        ious, extra, false, seconds, sheet = [], [], [], [], []
        for i, (rgb, void, rim) in enumerate(tqdm(frames, desc=f'experiment painted {name}',
                                                  unit='frame', disable=not show_progress,
                                                  dynamic_ncols=True)):
            started = time.perf_counter()
            r = seg.segment(rgb)
            seconds.append(time.perf_counter() - started)
            if void.any():
                ious.append(best_iou(r.ids, void, rim))
                hit = set(np.unique(r.ids[void]).tolist()) - {0}
                extra.append(len(r.scores) - min(1, len(hit)))
                if len(sheet) < SHEET_FRAMES:
                    masks = [r.ids == k + 1 for k in range(len(r.scores))]
                    sheet.append((rgb, r.anomaly, void, masks, r.points))
            else:
                false.append(len(r.scores))
        ious = np.array(ious)
        row = {'model': str(model), 'painted': len(ious), 'normal': len(false),
               'recall_iou50': float((ious >= 0.5).mean()),
               'median_best_iou': float(np.median(ious)),
               'false_per_normal_image': float(np.mean(false)),
               'normal_images_with_instances': float(np.mean(np.array(false) > 0)),
               'extra_per_painted_image': float(np.mean(extra)),
               'median_seconds': float(np.median(seconds))}
        report['designs'][name] = row
        if sheet:
            contact_sheet(out_dir / f'painted_{name}.jpg', sheet)
        if show_progress:
            print(f"{name}: recall at IoU 0.5 {row['recall_iou50']:.3f} ({row['painted']} "
                  f"painted), {row['false_per_normal_image']:.2f} false instances per normal "
                  f"image ({row['normal']})", flush=True)
        atomic_write_json(out_dir / 'painted.json', report)
    atomic_write_text(out_dir / 'painted.md', format_painted_report(report) + '\n')
    return report


def format_painted_report(report):
    """Return the Markdown table of :func:`run_painted_experiment`'s report."""
    lines = [f"Painted objects on {report['frames']} normal frames of {report['split']} "
             f"(every other one painted, seed {report['seed']}); prompt_fpr "
             f"{report['prompt_fpr']}, instance_fpr {report['instance_fpr']}.", '',
             '| design | recall at IoU 0.5 | median best IoU | false instances per normal '
             'image | normal images with any | extra instances per painted image | '
             'median s per frame |', '|---|---:|---:|---:|---:|---:|---:|']
    for name, r in report['designs'].items():
        lines.append(f"| {name} | {r['recall_iou50']:.3f} | {r['median_best_iou']:.3f} | "
                     f"{r['false_per_normal_image']:.2f} | "
                     f"{100 * r['normal_images_with_instances']:.0f} % | "
                     f"{r['extra_per_painted_image']:.2f} | {r['median_seconds']:.3f} |")
    return '\n'.join(lines)
