"""``anomaly-perception bench``: a branch's path on each backend, side by side.

For every backend and batch size: warm-up, then repeated timing of

* the whole path: 640x360 bgr8 frames (the Robomaster camera's default)
  -> the branch detector's ``score`` (for the frame branch: crop, resize,
  inference, calibration -> scores);
* the model alone: the backend on the already-resized batch;

reporting median / p90 / p99 latency per call, frames per second, the
process's resident memory after the case (and the CUDA peak on GPU), and
each backend's ratio to PyTorch eager on the same device and batch.
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

import time

import numpy as np

from .backends import BackendError

FRAME_SHAPE = (360, 640, 3)


def _rss_mb():
    try:
        with open('/proc/self/statm') as handle:
            pages = int(handle.read().split()[1])
        import os
        return pages * os.sysconf('SC_PAGE_SIZE') / 2 ** 20
    except (OSError, ValueError):
        return float('nan')


def _time(fn, seconds, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    t = np.asarray(times)
    return {'median_ms': float(np.median(t) * 1e3), 'p90_ms': float(np.percentile(t, 90) * 1e3),
            'p99_ms': float(np.percentile(t, 99) * 1e3), 'runs': int(t.size)}


def run_bench(branch, model_dir, backends, batches, seconds=3.0, device='cpu',
              precision='fp32'):
    """Benchmark ``branch``'s detector on ``backends`` x ``batches``; return a results dict.

    ``branch``: a :class:`~..branches.branch.Branch` entry whose detector
    loads one graph per backend (``from_model_dir``, ``preprocess``,
    ``score``, ``backend.infer``); ``model_dir`` None runs its shipped model.
    """
    model_dir = model_dir or branch.shipped_model_dir()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (max(batches), *FRAME_SHAPE), dtype=np.uint8)
    results = {'branch': branch.name, 'model': str(model_dir), 'device': device,
               'precision': precision, 'frame': list(FRAME_SHAPE), 'cases': [], 'skipped': {}}
    for name in backends:
        try:
            det = branch.detector.from_model_dir(model_dir, name, device=device,
                                                 precision=precision)
        except BackendError as err:
            results['skipped'][name] = str(err)
            continue
        info = det.backend.describe()
        if getattr(det.backend, 'auto_choice', None):
            info['auto_choice'] = det.backend.auto_choice
        for n in batches:
            batch = frames[:n]
            small = det.preprocess(batch, 'bgr')
            whole = _time(lambda: det.score(batch, channel_order='bgr'), seconds)
            model = _time(lambda: det.backend.infer(small), seconds)
            case = {'backend': name, 'resolved': info['backend'], 'batch': n,
                    'whole_path': whole, 'model_only': model,
                    'frames_per_s': n / (whole['median_ms'] / 1e3), 'rss_mb': _rss_mb(),
                    'describe': info}
            if str(info.get('device', '')).startswith('cuda'):
                import torch
                case['cuda_peak_mb'] = torch.cuda.max_memory_allocated() / 2 ** 20
            results['cases'].append(case)
    reference = {c['batch']: c for c in results['cases'] if c['backend'] == 'torch'}
    for case in results['cases']:
        ref = reference.get(case['batch'])
        if ref:
            case['speedup_vs_torch_whole'] = (ref['whole_path']['median_ms']
                                              / case['whole_path']['median_ms'])
            case['speedup_vs_torch_model'] = (ref['model_only']['median_ms']
                                              / case['model_only']['median_ms'])
    return results


def format_table(results):
    """Format the results as a text table."""
    head = (f"{'backend':<22} {'batch':>5} {'whole ms':>9} {'p99':>7} {'model ms':>9} "
            f"{'frames/s':>9} {'x torch':>8} {'x torch (model)':>15} {'RSS MB':>7}")
    lines = [f"model {results['model']} on {results['device']} ({results['precision']})", head]
    for c in results['cases']:
        label = c['backend'] if c['backend'] == c['resolved'] else (
            f"{c['backend']}->{c['resolved']}")
        lines.append(
            f"{label:<22} {c['batch']:>5} {c['whole_path']['median_ms']:>9.3f} "
            f"{c['whole_path']['p99_ms']:>7.3f} {c['model_only']['median_ms']:>9.3f} "
            f"{c['frames_per_s']:>9.0f} {c.get('speedup_vs_torch_whole', float('nan')):>8.2f} "
            f"{c.get('speedup_vs_torch_model', float('nan')):>15.2f} {c['rss_mb']:>7.0f}")
    for name, reason in results['skipped'].items():
        lines.append(f'{name}: skipped ({reason})')
    return '\n'.join(lines)
