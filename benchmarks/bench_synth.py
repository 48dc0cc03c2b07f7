"""Benchmark the synthetic world: frames per second of ``synth dataset`` and ``synth bag``.

``synth dataset`` at 512x512 is timed with 1 and 2 workers on the same
600-frame plan (the medium preset's split proportions), so the 2-worker run
has the 1-worker run of the same process as its reference. ``synth bag``
is timed at 640x360. The full 10,000-frame medium preset is a separate
command (see docs/PERFORMANCE.md) because it takes minutes.

Run: ``python benchmarks/bench_synth.py`` (or ``make bench``).
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
import tempfile
import time

from anomaly_perception.data.synthetic.dataset import write_dataset
from anomaly_perception.data.synthetic.patrol import PatrolConfig
from anomaly_perception.data.synthetic.patrol import write_patrol_bag

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_report  # noqa: E402, I100

FRAMES = 600


def main():
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            start = time.perf_counter()
            manifest = write_dataset(Path(tmp) / f'd{workers}', preset='medium', frames=FRAMES,
                                     image_size=512, seed=1, workers=workers, progress=False)
            wall = time.perf_counter() - start
            results[f'dataset_512_workers{workers}'] = {
                'frames': manifest['frames'], 'seconds': wall,
                'frames_per_s': manifest['frames'] / wall,
            }
        for workers in (1, 2):
            start = time.perf_counter()
            summary = write_patrol_bag(Path(tmp) / f'b{workers}',
                                       PatrolConfig(seconds=10, seed=1), workers=workers,
                                       progress=False)
            wall = time.perf_counter() - start
            results[f'bag_640x360_workers{workers}'] = {
                'frames': summary['frames'], 'seconds': wall,
                'frames_per_s': summary['frames'] / wall,
            }
    one, two = results['dataset_512_workers1'], results['dataset_512_workers2']
    results['dataset_speedup_2_over_1'] = two['frames_per_s'] / one['frames_per_s']
    results['projected_10000_frames_2_workers_s'] = 10000 / two['frames_per_s']
    for name, r in results.items():
        if isinstance(r, dict):
            print(f"{name:28s} {r['frames']:5d} frames in {r['seconds']:6.1f} s = "
                  f"{r['frames_per_s']:5.1f} frames/s")
    print(f"2 workers / 1 worker: {results['dataset_speedup_2_over_1']:.2f}x; "
          f"10,000 frames at 2 workers: {results['projected_10000_frames_2_workers_s']:.0f} s "
          '(projected)')
    print('written', write_report('synth', results))


if __name__ == '__main__':
    main()
