"""Benchmark the synthesis branch per image: a guided edit and its analysis, per schedule.

One 640x360 frame (random pixels: the cost does not depend on them) through
``AnomalySynthesizer.process``, what ``synthesize``, ``replay --pipelines
synthesis`` and ``experiment synthesis`` run: centre crop and resize, the
guided edit (reverse timestep matching), the ERFNet feature distance and
SLIC refinement. Per number of reverse steps (the model's full schedule and
respaced ones), median seconds per image over ``--repeats`` runs; the
ratios are to the full schedule measured in the same run. The unguided
sampler at the fewest steps is the reference for what the guidance costs.

Run: ``python benchmarks/bench_synthesis.py [--model DIR] [--steps 1000,100,50]``.
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

import argparse
from pathlib import Path
import sys
import time

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402, I100
from common import write_report  # noqa: E402


def frame():
    """Return one 640x360 RGB frame of random pixels (a fixed seed)."""
    import numpy as np
    return np.random.default_rng(1).integers(0, 256, (360, 640, 3), dtype=np.uint8)


def main():
    from anomaly_perception.branches.synthesis.detector import AnomalySynthesizer
    from anomaly_perception.branches.synthesis.detector import SynthesisOptions
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=None, help='default: models/synthesis_ddpm')
    parser.add_argument('--steps', default='1000,100,50',
                        help='comma-separated reverse steps (the first is the reference)')
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    image = frame()
    cases = [('reverse', int(s)) for s in args.steps.split(',')]
    cases.append(('none', min(s for _, s in cases)))
    rows = []
    for guidance, steps in cases:
        synth = AnomalySynthesizer.from_model_dir(args.model, options=SynthesisOptions(
            guidance=guidance, steps=steps))
        repeats = 1 if steps >= 500 else args.repeats
        started = time.perf_counter()
        t = measure(lambda: synth.process(image), repeats=repeats, warmup=0)
        rows.append({'guidance': guidance, 'steps': steps, 'repeats': repeats,
                     'seconds_per_image': t['median_s'],
                     'wall_s': time.perf_counter() - started})
    ref = rows[0]['seconds_per_image']
    for r in rows:
        r['vs_first'] = r['seconds_per_image'] / ref
        print(f"{r['guidance']:<8} {r['steps']:>5} steps: {r['seconds_per_image']:.2f} s per "
              f"image ({r['vs_first']:.3f}x the first row; {r['repeats']} runs)")
    print(f'written {write_report("synthesis", {"rows": rows, "frame": list(image.shape)})}')


if __name__ == '__main__':
    main()
