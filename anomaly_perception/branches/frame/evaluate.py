"""``evaluate frame``: a frame model on a labelled dataset split, with plots.

Writes into the report directory: ``report.json`` (AUROC, AP, FPR95
overall and per anomaly type, the flag's true/false positive rates at the
model's threshold), ``roc.png``, ``pr.png`` and ``histogram.png``.
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

import numpy as np

from .detector import FrameAnomalyDetector
from ...data.hazards import default_cache_dir
from ...data.hazards import HazardsDataset
from ...io.files import atomic_write_json
from ...metrics.binary import binary_curve
from ...metrics.binary import per_type_auroc
from ...metrics.plots import pr_plot
from ...metrics.plots import roc_plot
from ...metrics.plots import score_histogram


def evaluate_frame(model_dir, data_dir, out_dir, split='test_set', cache_dir=None,
                   show_progress=True):
    """Score ``split`` with the model in ``model_dir``; write the report; return it."""
    detector = FrameAnomalyDetector.from_model_dir(model_dir)
    data = HazardsDataset(data_dir)
    records = data.records(split)
    images = data.load_images(records, detector.input_shape, cache_dir or default_cache_dir(),
                              show_progress)
    raw = np.concatenate([detector.raw_scores(images[i:i + 256])
                          for i in range(0, len(images), 256)])
    scores = detector.scores_from_raw(raw)
    labels = np.array([r.label for r in records])
    names = [r.label_name for r in records]
    envs = [r.environment or 'unknown' for r in records]
    usable = scores.scorable
    curve = binary_curve(labels[usable] != 0, raw[usable])
    flags = scores.flag
    report = {
        'model': str(model_dir), 'data': str(data_dir), 'split': split,
        'n_frames': len(records), 'n_normal': int((labels == 0).sum()),
        'n_anomalous': int((labels != 0).sum()), 'n_unscorable': int((~usable).sum()),
        'auroc': curve.auroc(), 'ap': curve.average_precision(),
        'fpr95': curve.fpr_at_tpr(0.95), 'pr_auc_trapezoid': curve.pr_auc_trapezoid(),
        'per_type_auroc': per_type_auroc(labels[usable], np.array(names)[usable], raw[usable],
                                         np.array(envs)[usable]),
        'per_environment_auroc': _per_environment(labels[usable], np.array(envs)[usable],
                                                  raw[usable]),
        'threshold': {'raw': scores.threshold, 'target_fpr': detector.target_fpr,
                      'fpr': float(flags[labels == 0].mean()) if (labels == 0).any() else None,
                      'tpr': float(flags[labels != 0].mean()) if (labels != 0).any() else None},
    }
    out = Path(out_dir)
    atomic_write_json(out / 'report.json', report)
    roc_plot(out / 'roc.png', {detector.name: (labels[usable], raw[usable])},
             title=f'{split}: normal vs anomalous frames')
    pr_plot(out / 'pr.png', {detector.name: (labels[usable], raw[usable])})
    score_histogram(out / 'histogram.png', raw[usable & (labels == 0)],
                    raw[usable & (labels != 0)], scores.threshold, 'NLL (nats)')
    return report


def _per_environment(labels, envs, scores):
    out = {}
    for env in sorted(set(envs)):
        sel = envs == env
        if (labels[sel] != 0).any() and (labels[sel] == 0).any():
            out[env] = binary_curve(labels[sel] != 0, scores[sel]).auroc()
    return out


def format_report(report):
    """Human-readable summary lines of :func:`evaluate_frame`'s report."""
    lines = [f"{report['split']}: {report['n_normal']} normal, {report['n_anomalous']} "
             'anomalous frames',
             f"AUROC {report['auroc']:.3f}  AP {report['ap']:.3f}  FPR95 {report['fpr95']:.3f}",
             f"at the model threshold: TPR {report['threshold']['tpr']:.3f}, "
             f"FPR {report['threshold']['fpr']:.3f}",
             'per type AUROC:']
    for name, value in report['per_type_auroc'].items():
        lines.append(f'  {name:15s} {value:.3f}')
    lines.append('per environment AUROC: ' + ', '.join(
        f'{k} {v:.3f}' for k, v in report.get('per_environment_auroc', {}).items()))
    return '\n'.join(lines)
