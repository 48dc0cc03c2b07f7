"""Benchmark ``evaluate bags`` on Ray against the same bags replayed one after another.

Eight synthetic patrol bags (640x360 at 10 Hz, ``--seconds`` each, default
15; written once into ``out/bench/fleet_bags``) through ``--pipelines``
(default ``frame``, the command's own default; ``frame,pixel`` is the
compute-bound case, where one replay already keeps both cores of a small
machine busy):

* the reference: eight ``anomaly-perception replay`` commands run one after
  another, as a user without a fleet would (process starts included);
* ``anomaly-perception evaluate bags --workers N`` on a local Ray instance
  (Ray's start, the pooling and the fleet plot included).

Both run ``--repeats`` times, alternately; the report gives the medians and
their ratio (the speed-up), and checks that the fleet's per-bag frame AUROC
equals each serial replay's. Where the fleet's time goes, from its report:
Ray's start, the tasks, and the rest of the command (the process start and
imports, pooling, the plot, Ray's shutdown at exit). The environment
reaches the commands: ``RAY_USAGE_STATS_ENABLED=0`` times the local
instance without Ray's usage report.

Writes ``out/bench/fleet_<pipelines>.json``.

Run: ``python benchmarks/bench_fleet.py [--pipelines frame] [--seconds 15] [--workers 2]
[--repeats 3]``.
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
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import time

from anomaly_perception.data.synthetic.patrol import PatrolConfig
from anomaly_perception.data.synthetic.patrol import write_patrol_bag
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OUT  # noqa: E402, I100
from common import write_report  # noqa: E402

COMMAND = [sys.executable, '-m', 'anomaly_perception']


def _bags(seconds, count=8):
    root = OUT / 'fleet_bags'
    paths = []
    for k in range(count):
        path = root / f'patrol{k}_{seconds:g}s'
        if not path.exists():
            print(f'writing {path.name}', flush=True)
            write_patrol_bag(path, PatrolConfig(seconds=seconds, fps=10.0, seed=100 + k),
                             progress=False)
        paths.append(path)
    return paths


def _run(args):
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f'{" ".join(map(str, args))} failed:\n{done.stderr[-2000:]}')
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=15.0)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--pipelines', default='frame')
    args = parser.parse_args()
    bags = _bags(args.seconds)
    serial, fleet, phases = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(args.repeats):
            shutil.rmtree(tmp / 'serial', ignore_errors=True)
            shutil.rmtree(tmp / 'fleet', ignore_errors=True)
            serial.append(sum(_run(COMMAND + ['replay', str(b), '--pipelines', args.pipelines,
                                              '--out', str(tmp / 'serial' / b.name),
                                              '--no-progress']) for b in bags))
            fleet.append(_run(COMMAND + ['evaluate', 'bags', *map(str, bags), '--pipelines',
                                         args.pipelines, '--out', str(tmp / 'fleet'),
                                         '--workers', str(args.workers), '--no-progress']))
            done = json.loads((tmp / 'fleet' / 'fleet_report.json').read_text())
            phases.append({'ray_start_s': done['ray_start_s'], 'tasks_s': done['tasks_s'],
                           'rest_s': fleet[-1] - done['ray_start_s'] - done['tasks_s']})
            print(f'repeat {r + 1}/{args.repeats}: serial {serial[-1]:.1f} s, fleet '
                  f'{fleet[-1]:.1f} s ({serial[-1] / fleet[-1]:.2f}x)', flush=True)
        report = json.loads((tmp / 'fleet' / 'fleet_report.json').read_text())
        serial_auroc = [json.loads((tmp / 'serial' / b.name / 'report.json').read_text())
                        ['branches']['frame']['auroc'] for b in bags]
    frames = report['frames']
    results = {
        'bags': len(bags), 'seconds_per_bag': args.seconds, 'frames': frames,
        'pipelines': args.pipelines, 'workers': args.workers, 'repeats': args.repeats,
        'serial_replays_s': {'median': float(np.median(serial)), 'runs': serial},
        'evaluate_bags_s': {'median': float(np.median(fleet)), 'runs': fleet},
        'speedup': float(np.median(serial) / np.median(fleet)),
        'fleet_phases_s': {key: float(np.median([p[key] for p in phases]))
                           for key in ('ray_start_s', 'tasks_s', 'rest_s')},
        'ray_usage_stats': os.environ.get('RAY_USAGE_STATS_ENABLED', "Ray's default"),
        'frames_per_s': {'serial': frames / float(np.median(serial)),
                         'fleet': frames / float(np.median(fleet))},
        # NaN where a bag has no anomalous frame (in both runs).
        'same_per_bag_auroc': bool(np.allclose(
            np.asarray([row['branches']['frame']['frame_auroc'] for row in report['rows']],
                       float), np.asarray(serial_auroc, float), equal_nan=True)),
    }
    path = write_report('fleet_' + args.pipelines.replace(',', '_'), results)
    print(f'{len(bags)} bags, {frames} frames ({args.pipelines}): serial replays '
          f"{results['serial_replays_s']['median']:.1f} s, evaluate bags --workers "
          f"{args.workers} {results['evaluate_bags_s']['median']:.1f} s: "
          f"{results['speedup']:.2f}x; per-bag AUROC equal: {results['same_per_bag_auroc']}")
    p = results['fleet_phases_s']
    print(f"the fleet's time (medians): Ray's start {p['ray_start_s']:.1f} s, the tasks "
          f"{p['tasks_s']:.1f} s, the rest {p['rest_s']:.1f} s")
    print(f'written {path}')


if __name__ == '__main__':
    main()
