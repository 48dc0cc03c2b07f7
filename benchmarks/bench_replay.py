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

"""Benchmark replay and the node's per-frame path, on a 640x360 30 Hz patrol bag.

* ``replay`` end to end (read, decode, infer, hazard, write the output
  bag) for the ONNX Runtime and PyTorch backends: frames per second and
  multiple of real time; reading and decoding the same bag alone is the
  in-process reference.
* The node path without ROS transport: an Image message in -> decoded ->
  scored -> hazard updated -> the three output messages built; median and
  p99 per frame, with decoding alone as the reference.

Run: ``python benchmarks/bench_replay.py`` (or ``make bench``).
"""

from pathlib import Path
import sys
import tempfile
import time

from anomaly_perception.data.synthetic.patrol import PatrolConfig
from anomaly_perception.data.synthetic.patrol import write_patrol_bag
from anomaly_perception.evaluation.replay import replay
from anomaly_perception.io.bags import BagReader
from anomaly_perception.io.frame_messages import FrameMessageBuilder
from anomaly_perception.io.images import image_to_numpy
from anomaly_perception.perception.frame import FrameAnomalyDetector
from anomaly_perception.perception.hazard import HazardFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402, I100
from common import write_report  # noqa: E402

SECONDS = 20.0
TOPIC = '/robomaster/camera/image_color'


def main():
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / 'bag'
        write_patrol_bag(bag, PatrolConfig(seconds=SECONDS, anomaly_rate=0.4), workers=2,
                         progress=False)
        start = time.perf_counter()
        with BagReader(bag) as reader:
            n = sum(1 for _ in reader.read_images(TOPIC))
        read_s = time.perf_counter() - start
        results['read_decode'] = {'frames': n, 'frames_per_s': n / read_s,
                                  'realtime_factor': SECONDS / read_s}
        for backend in ('onnxruntime', 'torch'):
            report = replay(bag, Path(tmp) / f'out_{backend}', backend=backend,
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
        for backend in ('onnxruntime', 'torch'):
            det = FrameAnomalyDetector.from_model_dir(
                Path(__file__).resolve().parents[1] / 'models' / 'frame_rnvp_oe', backend)
            hazard = HazardFilter()
            builder = FrameMessageBuilder(factory)
            stamp = [0]

            def node_path():
                image = image_to_numpy(msg)
                s = det.score(image)
                stamp[0] += 33_333_333
                state = hazard.update(stamp[0], float(s.probability[0]))
                builder.score(msg.header, float(s.probability[0]), float(s.raw[0]))
                builder.hazard(msg.header, state)
                builder.markers(msg.header, state, float(s.probability[0]))

            timing = measure(node_path, seconds=3.0)
            results[f'node_path_{backend}_ms'] = {k: v * 1e3 for k, v in timing.items()
                                                  if k.endswith('_s')}
        decode = measure(lambda: image_to_numpy(msg), seconds=2.0)
        results['decode_only_ms'] = decode['median_s'] * 1e3
    r = results
    print(f"read + decode alone: {r['read_decode']['frames_per_s']:.0f} frames/s "
          f"({r['read_decode']['realtime_factor']:.0f}x real time)")
    for backend in ('onnxruntime', 'torch'):
        x = r[f'replay_{backend}']
        print(f"replay ({backend}): {x['frames_per_s']:.0f} frames/s, "
              f"{x['realtime_factor']:.1f}x real time ({x['ratio_to_read_decode']:.2f} of "
              'read + decode alone)')
        p = r[f'node_path_{backend}_ms']
        print(f"node path ({backend}): median {p['median_s']:.2f} ms, p99 {p['p99_s']:.2f} ms "
              f"(decode alone {r['decode_only_ms']:.3f} ms)")
    print('written', write_report('replay', results))


if __name__ == '__main__':
    main()
