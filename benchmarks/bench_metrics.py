"""Benchmark exact AUROC + AP over 10 million pixel scores.

The reference is scikit-learn (``roc_auc_score`` + ``average_precision_score``)
on the same data in the same process; the report gives both times and their
ratio, and checks the values agree. The streaming accumulator (20 images of
500k pixels, 12 mantissa bits) is timed too.

Run: ``python benchmarks/bench_metrics.py`` (or ``make bench``).
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
import sys
import time

from anomaly_perception.metrics.binary import binary_curve
from anomaly_perception.metrics.binary import BinaryScoreAccumulator
import numpy as np
from sklearn import metrics as skm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_report  # noqa: E402, I100

N = 10_000_000
REPEATS = 3


def _timed(fn):
    times, value = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), value


def main():
    rng = np.random.default_rng(0)
    labels = rng.random(N) < 0.05
    scores = (rng.normal(size=N) + 1.5 * labels).astype(np.float32)

    def ours():
        curve = binary_curve(labels, scores)
        return curve.auroc(), curve.average_precision()

    def sklearn():
        return skm.roc_auc_score(labels, scores), skm.average_precision_score(labels, scores)

    t_ours, v_ours = _timed(ours)
    t_sk, v_sk = _timed(sklearn)

    def streaming():
        acc = BinaryScoreAccumulator()
        for part in range(20):
            acc.update(labels[part::20], scores[part::20])
        summary = acc.summary()
        return summary['auroc'], summary['ap']

    t_stream, v_stream = _timed(streaming)
    results = {
        'n_scores': N,
        'exact_auroc_ap_s': t_ours,
        'sklearn_auroc_ap_s': t_sk,
        'ratio_sklearn_over_ours': t_sk / t_ours,
        'streaming_12bit_s': t_stream,
        'auroc': v_ours[0], 'ap': v_ours[1],
        'abs_diff_vs_sklearn': [abs(v_ours[0] - v_sk[0]), abs(v_ours[1] - v_sk[1])],
        'abs_diff_streaming_vs_exact': [abs(v_stream[0] - v_ours[0]),
                                        abs(v_stream[1] - v_ours[1])],
    }
    print(f'AUROC + AP over {N:,} scores: ours {t_ours:.2f} s, scikit-learn {t_sk:.2f} s '
          f'({t_sk / t_ours:.1f}x); streaming (12-bit bins, 20 images) {t_stream:.2f} s')
    print(f"values agree with scikit-learn to {max(results['abs_diff_vs_sklearn']):.1e}; "
          f"streaming differs by {max(results['abs_diff_streaming_vs_exact']):.1e}")
    print('written', write_report('metrics', results))


if __name__ == '__main__':
    main()
