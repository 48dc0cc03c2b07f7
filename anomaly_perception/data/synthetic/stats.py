"""``synth stats``: how hard a dataset is for trivial detectors.

Two baselines that know nothing about anomalies score the test split
against the normal training frames:

* ``intensity``: global intensity statistics (per-channel mean and standard
  deviation, 6 numbers per frame), scored by Mahalanobis distance to the
  training frames' statistics;
* ``nn16``: raw pixels at 16x16 (768 numbers), scored by the Euclidean
  distance to the nearest training frame.

If either separated anomalies well, the dataset would be too easy to say
anything about real detectors. AUROC is reported overall and per type
(the frames of that type vs the normal test frames of the same
environments, see docs/METRICS.md).
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

import cv2
import numpy as np

from .dataset import read_labels
from ...errors import AnomalyPerceptionError
from ...io.files import atomic_write_json
from ...io.files import atomic_write_text
from ...metrics.binary import auroc
from ...metrics.binary import per_type_auroc


def _load(root, rows, size):
    out = np.zeros((len(rows), size, size, 3), np.float32)
    for i, row in enumerate(rows):
        path = Path(root) / row['split'] / row['filename']
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise AnomalyPerceptionError(f'Cannot read image {str(path)!r}.')
        out[i] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) / 255.0
    return out


def intensity_features(images):
    """Per-channel mean and standard deviation: ``[N, 6]``."""
    flat = images.reshape(len(images), -1, 3)
    return np.concatenate([flat.mean(1), flat.std(1)], 1)


def mahalanobis_scores(train, test):
    mean = train.mean(0)
    cov = np.cov(train, rowvar=False) + 1e-6 * np.eye(train.shape[1])
    inv = np.linalg.inv(cov)
    diff = test - mean
    return np.sqrt(np.einsum('ij,jk,ik->i', diff, inv, diff))


def nearest_neighbour_scores(train, test, batch=256):
    train = train.reshape(len(train), -1)
    test = test.reshape(len(test), -1)
    t2 = (train ** 2).sum(1)
    scores = np.empty(len(test), np.float64)
    for i in range(0, len(test), batch):
        chunk = test[i:i + batch]
        d2 = (chunk ** 2).sum(1)[:, None] - 2 * chunk @ train.T + t2[None]
        scores[i:i + batch] = np.sqrt(np.maximum(d2.min(1), 0))
    return scores


def baseline_stats(root, split='test_set'):
    """Compute both baselines' AUROC overall and per type; return a dict."""
    root = Path(root)
    try:
        rows = read_labels(root)
    except OSError as err:
        raise AnomalyPerceptionError(
            f'{str(root)!r} is not a synthetic dataset: cannot read '
            f'metadata/frames_labels.csv ({err.strerror}).') from None
    train = [r for r in rows if r['split'] == 'train_set' and r['label'] == 0]
    test = [r for r in rows if r['split'] == split]
    if not train or not test:
        raise AnomalyPerceptionError(f'{str(root)!r} needs normal train_set frames and '
                                     f'{split} frames.')
    labels = np.array([r['label'] for r in test])
    names = [r['label_name'] for r in test]
    train16, test16 = _load(root, train, 16), _load(root, test, 16)
    scores = {
        'intensity': mahalanobis_scores(intensity_features(train16),
                                        intensity_features(test16)),
        'nn16': nearest_neighbour_scores(train16, test16),
    }
    result = {'split': split, 'n_train': len(train), 'n_test': len(test), 'baselines': {}}
    envs = np.array([r.get('environment') or 'unknown' for r in test])
    for name, s in scores.items():
        result['baselines'][name] = {
            'overall_auroc': auroc((labels != 0).astype(int), s),
            'per_type_auroc': per_type_auroc(labels, names, s, envs),
        }
    return result


def format_table(result):
    """Format the per-type AUROCs of both baselines as a markdown table."""
    b = result['baselines']
    lines = ['| type | intensity statistics | nearest neighbour 16x16 |', '|---|---|---|']
    for t in b['intensity']['per_type_auroc']:
        lines.append(f"| {t} | {b['intensity']['per_type_auroc'][t]:.3f} | "
                     f"{b['nn16']['per_type_auroc'][t]:.3f} |")
    lines.append(f"| **overall** | **{b['intensity']['overall_auroc']:.3f}** | "
                 f"**{b['nn16']['overall_auroc']:.3f}** |")
    return '\n'.join(lines) + '\n'


def write_stats(root, split='test_set'):
    """Compute, write ``stats.json`` and ``stats.md`` into the dataset; return the dict."""
    result = baseline_stats(root, split)
    atomic_write_json(Path(root) / 'stats.json', result)
    atomic_write_text(Path(root) / 'stats.md', format_table(result))
    return result
