"""One fleet report from many replays: a row per bag, metrics pooled over all of them.

Each replay directory holds ``report.json`` and ``pooled.npz`` (the frames'
stamps and labels, each branch's per-frame score, the pixel branch's
per-pixel counts). Pooling is not averaging: the frame-level AUROC / AP /
FPR95 are computed on every labelled frame of every bag together, the pixel
AuPRC / FPR95 / AUROC on the summed per-pixel counts, and the events on the
summed counts, so that false alarms per hour and the flag's on-time are over
all normal driving of the fleet.
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

import json
from pathlib import Path
import zipfile

import numpy as np

from ..errors import AnomalyPerceptionError
from ..metrics.binary import binary_curve
from ..metrics.binary import BinaryScoreAccumulator
from ..replay.engine import POOLED_FILE

#: Branches whose replay writes a per-frame score (``<branch>.raw``).
SCORED_BRANCHES = ('frame', 'pixel')


class FleetError(AnomalyPerceptionError):
    """A replay directory of a fleet cannot be read (named)."""


def read_replay(path):
    """Return ``(report, pooled arrays)`` of one replay directory.

    Raises:
        FleetError: a missing or unreadable ``report.json`` or ``pooled.npz``
            (the file named).

    """
    path = Path(path)
    try:
        report = json.loads((path / 'report.json').read_text())
    except (OSError, ValueError) as err:
        raise FleetError(f'{str(path / "report.json")!r}: {err}') from None
    try:
        with np.load(path / POOLED_FILE, allow_pickle=False) as data:
            pooled = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise FleetError(f'{str(path / POOLED_FILE)!r}: {err}') from None
    return report, pooled


def _frames(pooled, branch):
    """Return ``(anomalous?, raw score)`` of every frame of ``pooled`` (labelled replays)."""
    return (np.concatenate([p['labels'] != 'normal' for p in pooled]),
            np.concatenate([p[f'{branch}.raw'] for p in pooled]))


def _frame_metrics(labels, scores):
    usable = np.isfinite(scores)
    y, s = labels[usable], scores[usable]
    out = {'n_normal': int((~y).sum()), 'n_anomalous': int(y.sum())}
    if y.any() and (~y).any():
        curve = binary_curve(y, s)
        out.update(auroc=curve.auroc(), ap=curve.average_precision(),
                   fpr95=curve.fpr_at_tpr(0.95))
    return out


def pool_events(parts):
    """Sum event metrics of several bags (``replay``'s ``events`` dicts) into one."""
    n_events = sum(p['n_events'] for p in parts)
    detected = sum(p['detected'] for p in parts)
    false_alarms = sum(p['false_alarms'] for p in parts)
    hours = sum(p['normal_hours'] for p in parts)
    alarm_h = sum(p['alarm_time_fraction'] * p['normal_hours'] for p in parts
                  if p['normal_hours'] > 0)
    return {'bags': len(parts), 'n_events': n_events, 'detected': detected,
            'recall': detected / n_events if n_events else float('nan'),
            'false_alarms': false_alarms, 'normal_hours': hours,
            'false_alarms_per_hour': false_alarms / hours if hours > 0 else float('nan'),
            'alarm_time_fraction': alarm_h / hours if hours > 0 else float('nan')}


def _branch_events(name, part):
    return part.get('events') if name in SCORED_BRANCHES else None


def bag_row(name, report):
    """Return the fleet report's row of one replayed bag."""
    row = {'name': name, 'bag': report['bag'], 'status': 'ok' if 'labels' in report
           else 'unlabelled', 'frames': report['frames_scored'],
           'duration_s': report['duration_s'], 'malformed': report['malformed']['count'],
           'wall_s': report['wall_s'], 'branches': {}}
    for branch, part in report['branches'].items():
        cells = {}
        auroc = part.get('auroc', (part.get('frame') or {}).get('auroc'))
        if auroc is not None:
            cells['frame_auroc'] = auroc
        events = _branch_events(branch, part)
        if events:
            cells.update(events=f"{events['detected']}/{events['n_events']}",
                         false_alarms_per_hour=events['false_alarms_per_hour'])
        if 'pixels' in part:
            cells['pixel_auprc'] = part['pixels']['auprc']
        row['branches'][branch] = cells
    if 'monitor' in report and 'events' in report['monitor']:
        ev = report['monitor']['events']
        row['branches']['monitor'] = {'events': f"{ev['detected']}/{ev['n_events']}",
                                      'false_alarms_per_hour': ev['false_alarms_per_hour']}
    return row


def pool(replays):
    """Pool ``replays`` (``[(name, report, pooled)]``, labelled or not) into the fleet metrics.

    Bags without labels get a row but add nothing to the pooled metrics.
    """
    rows = [bag_row(name, report) for name, report, _ in replays]
    labelled = [(r, p) for _, r, p in replays if 'labels' in r and 'labels' in p]
    out = {'bags': len(rows), 'labelled_bags': len(labelled),
           'frames': int(sum(r['frames_scored'] for _, r, _ in replays)),
           'duration_s': float(sum(r['duration_s'] for _, r, _ in replays)),
           'malformed': int(sum(r['malformed']['count'] for _, r, _ in replays)),
           'branches': {}, 'rows': rows}
    branches = sorted({b for r, _ in labelled for b in r['branches']})
    for branch in branches:
        have = [(r, p) for r, p in labelled if branch in r['branches']]
        part = {}
        if all(f'{branch}.raw' in p for _, p in have) and branch in SCORED_BRANCHES:
            part['frame'] = _frame_metrics(*_frames([p for _, p in have], branch))
        events = [_branch_events(branch, r['branches'][branch]) for r, _ in have]
        if events and all(events):
            part['events'] = pool_events(events)
        states = [p for _, p in have if f'{branch}.pixels.keys' in p]
        if states:
            accs = [BinaryScoreAccumulator.from_state(
                {k: p[f'{branch}.pixels.{k}'] for k in ('shift', 'keys', 'pos', 'neg')})
                for p in states]
            acc = accs[0]
            for other in accs[1:]:
                acc.merge(other)
            curve = acc.curve()
            part['pixels'] = {'bags': len(states), 'auprc': curve.average_precision(),
                              'fpr95': curve.fpr_at_tpr(0.95), 'auroc': curve.auroc()}
        out['branches'][branch] = part
    monitors = [r['monitor']['events'] for r, _ in labelled
                if 'events' in r.get('monitor', {})]
    if monitors:
        out['monitor'] = {'events': pool_events(monitors)}
    return out


def pooled_curves(replays):
    """Return ``{branch: (labels, scores)}`` of every labelled frame, for the fleet's plots."""
    curves = {}
    for branch in SCORED_BRANCHES:
        have = [p for _, r, p in replays if 'labels' in p and f'{branch}.raw' in p]
        if not have:
            continue
        labels, scores = _frames(have, branch)
        usable = np.isfinite(scores)
        if labels[usable].any() and (~labels[usable]).any():
            curves[branch] = (labels[usable], scores[usable])
    return curves
