"""Timing helpers shared by the benchmark scripts.

Every benchmark reports medians (and tail percentiles) of repeated runs, and
a ratio against a reference measured in the same process on the same data,
so numbers from different machines can still be compared by their ratios.
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
import os
from pathlib import Path
import platform
import time

import numpy as np

# The branches register their model architectures (model directories name them).
import anomaly_perception.branches.registry  # noqa: F401, I100

OUT = Path(__file__).resolve().parents[1] / 'out' / 'bench'


def machine():
    """Describe the machine the numbers come from."""
    cpu = platform.processor() or 'unknown CPU'
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return {
        'cpu': cpu,
        'cores': os.cpu_count(),
        'python': platform.python_version(),
        'numpy': np.__version__,
        'platform': platform.platform(),
    }


def measure(fn, *, repeats=None, seconds=2.0, warmup=3):
    """Time ``fn()`` repeatedly; return per-call seconds (median, p90, p99, runs)."""
    for _ in range(warmup):
        fn()
    times = []
    deadline = time.perf_counter() + seconds
    while (repeats is None and time.perf_counter() < deadline) or (
            repeats is not None and len(times) < repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    arr = np.asarray(times)
    return {
        'median_s': float(np.median(arr)),
        'p90_s': float(np.percentile(arr, 90)),
        'p99_s': float(np.percentile(arr, 99)),
        'runs': int(arr.size),
    }


def write_report(name, results):
    """Write ``results`` with the machine description to ``out/bench/<name>.json``."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f'{name}.json'
    path.write_text(json.dumps({'machine': machine(), 'results': results}, indent=2) + '\n')
    return path
