"""Benchmark replay (in process and as a command) and the node's per-frame path.

On a synthetic patrol bag, 640x360 bgr8 at 30 Hz (``--seconds``, default
120 as in the ROS 2 issue's target; generating it takes about 2.5 minutes):

* ``anomaly-perception replay`` as a user runs it, **process start
  included**, ONNX Runtime: wall time and multiple of real time; the same
  command on a one-frame bag is the fixed start-up and finishing cost
  (imports, model load, plots), reported beside it;
* ``replay`` in this process for the ONNX Runtime and PyTorch backends;
  reading and decoding the same bag alone is the in-process reference;
* the node's per-frame path without ROS transport, exactly what
  ``frame_anomaly_node`` does with a message
  (:meth:`FrameStream.decode` -> :meth:`FrameStream.process` -> the three
  output messages built): median and p99, decoding alone as the reference;
  for ONNX Runtime also with its threads busy-waiting (``spin``), the
  setting the package turned off to save a core while streaming.

Run: ``python benchmarks/bench_replay.py [--seconds 120]`` (or ``make bench``).
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
import subprocess
import sys
import tempfile
import time

from anomaly_perception.branches.frame.config import FrameNodeConfig
from anomaly_perception.branches.frame.messages import FrameMessageBuilder
from anomaly_perception.branches.frame.stream import FrameStream
from anomaly_perception.branches.registry import get_branches
from anomaly_perception.data.synthetic.patrol import PatrolConfig
from anomaly_perception.data.synthetic.patrol import write_patrol_bag
from anomaly_perception.io.bags import BagReader
from anomaly_perception.io.images import image_to_numpy
from anomaly_perception.replay.engine import replay

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402, I100
from common import write_report  # noqa: E402

TOPIC = '/robomaster/camera/image_color'


def _command_wall_s(bag, out):
    command = [str(Path(sys.executable).parent / 'anomaly-perception'), 'replay', str(bag),
               '--out', str(out), '--backend', 'onnxruntime', '--no-progress', '--overwrite']
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=120.0)
    args = parser.parse_args(argv)
    results = {'bag_seconds': args.seconds}
    with tempfile.TemporaryDirectory() as tmp:
        bag, one = Path(tmp) / 'bag', Path(tmp) / 'one_frame'
        print(f'writing a {args.seconds:.0f} s patrol bag ...', flush=True)
        write_patrol_bag(bag, PatrolConfig(seconds=args.seconds, anomaly_rate=0.4), workers=2,
                         progress=False)
        write_patrol_bag(one, PatrolConfig(seconds=1 / 30, anomaly_rate=0.0), progress=False)
        walls = [_command_wall_s(bag, Path(tmp) / 'cmd') for _ in range(3)]
        fixed = [_command_wall_s(one, Path(tmp) / 'cmd_one') for _ in range(3)]
        wall = sorted(walls)[1]
        results['replay_command_onnxruntime'] = {
            'wall_s_runs': walls, 'wall_s_median': wall,
            'realtime_factor': args.seconds / wall,
            'one_frame_bag_wall_s_median': sorted(fixed)[1]}

        start = time.perf_counter()
        with BagReader(bag) as reader:
            n = sum(1 for _ in reader.read_images(TOPIC))
        read_s = time.perf_counter() - start
        results['read_decode'] = {'frames': n, 'frames_per_s': n / read_s,
                                  'realtime_factor': args.seconds / read_s}
        for backend in ('onnxruntime', 'torch'):
            report = replay(bag, Path(tmp) / f'out_{backend}', get_branches('frame'),
                            backend=backend,
                            show_progress=False)
            results[f'replay_{backend}'] = {
                'frames': report['frames_scored'], 'wall_s': report['wall_s'],
                'frames_per_s': report['frames_per_s'],
                'realtime_factor': report['realtime_factor'],
                'ratio_to_read_decode': report['frames_per_s'] / results['read_decode'][
                    'frames_per_s']}
        with BagReader(bag) as reader:
            msg = next(m for _, _, m in reader.messages([TOPIC]))
            factory = reader.factory
        for name, backend, options in (('onnxruntime', 'onnxruntime', {}),
                                       ('onnxruntime_spin', 'onnxruntime', {'spin': True}),
                                       ('torch', 'torch', {})):
            stream = FrameStream.from_config(FrameNodeConfig(backend=backend), **options)
            builder = FrameMessageBuilder(factory)
            stamp = [msg.header.stamp.sec * 10 ** 9]

            def node_path():
                image = stream.decode(msg)
                stamp[0] += 33_333_333
                result = stream.process([stamp[0]], [image])[0]
                builder.outputs(msg.header, result)

            timing = measure(node_path, seconds=3.0)
            results[f'node_path_{name}_ms'] = {k: v * 1e3 for k, v in timing.items()
                                               if k.endswith('_s')}
            stream = None  # release the backend before the next one is measured
        decode = measure(lambda: image_to_numpy(msg), seconds=2.0)
        results['decode_only_ms'] = decode['median_s'] * 1e3
    r = results
    c = r['replay_command_onnxruntime']
    print(f'replay command, {args.seconds:.0f} s bag, process start included: '
          f"{c['wall_s_median']:.2f} s ({c['realtime_factor']:.1f}x real time; runs "
          f"{', '.join(f'{w:.2f}' for w in c['wall_s_runs'])} s); a one-frame bag takes "
          f"{c['one_frame_bag_wall_s_median']:.2f} s")
    print(f"read + decode alone: {r['read_decode']['frames_per_s']:.0f} frames/s "
          f"({r['read_decode']['realtime_factor']:.0f}x real time)")
    for backend in ('onnxruntime', 'torch'):
        x = r[f'replay_{backend}']
        print(f"replay in process ({backend}): {x['frames_per_s']:.0f} frames/s, "
              f"{x['realtime_factor']:.1f}x real time ({x['ratio_to_read_decode']:.2f} of "
              'read + decode alone)')
    for name in ('onnxruntime', 'onnxruntime_spin', 'torch'):
        p = r[f'node_path_{name}_ms']
        print(f"node path ({name}): median {p['median_s']:.2f} ms, p99 {p['p99_s']:.2f} ms "
              f"(decode alone {r['decode_only_ms']:.3f} ms)")
    print('written', write_report('replay', results))


if __name__ == '__main__':
    main()
