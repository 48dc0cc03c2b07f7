"""Benchmark image decoding and bag reading.

Measures, on a 640x360 bgr8 frame (the Robomaster camera's default):

* decoding one ``sensor_msgs/Image`` to RGB with
  :func:`anomaly_perception.io.images.image_to_numpy`, against
  rosbags-image's ``message_to_cvimage`` as the in-process reference;
* decoding one ``sensor_msgs/CompressedImage`` (JPEG, PNG) to RGB with
  :func:`~anomaly_perception.io.images.compressed_to_numpy` (Pillow, quiet on
  corrupt data), against OpenCV's ``imdecode`` + ``cvtColor``;
* reading and decoding every frame of a 300-frame bag, per storage plugin
  (mcap, sqlite3), against deserialising the same messages without decoding.

Run: ``python benchmarks/bench_io.py`` (or ``make bench``).
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

from anomaly_perception.io.bag_writer import BagWriter
from anomaly_perception.io.bags import BagReader
from anomaly_perception.io.images import compressed_to_numpy
from anomaly_perception.io.images import image_to_numpy
from anomaly_perception.io.images import numpy_to_compressed
from anomaly_perception.io.images import numpy_to_image
from anomaly_perception.io.messages import RosbagsMessageFactory
import numpy as np
from rosbags.image import message_to_cvimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402, I100
from common import write_report  # noqa: E402

WIDTH, HEIGHT, FRAMES = 640, 360, 300


def _frame(rng):
    return rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)


def bench_decode(rng):
    factory = RosbagsMessageFactory()
    msg = numpy_to_image(_frame(rng), 'bgr8', factory.header(0, 'camera'), factory)
    ours = measure(lambda: image_to_numpy(msg), seconds=2.0)
    ref = measure(lambda: message_to_cvimage(msg, 'rgb8'), seconds=2.0)
    return {
        'decode_bgr8_to_rgb_640x360_us': ours['median_s'] * 1e6,
        'decode_p99_us': ours['p99_s'] * 1e6,
        'reference_rosbags_image_us': ref['median_s'] * 1e6,
        'ratio_reference_over_ours': ref['median_s'] / ours['median_s'],
    }


def bench_compressed(rng):
    """Time CompressedImage -> RGB: the package's decoder (Pillow) against OpenCV's imdecode."""
    import cv2
    factory = RosbagsMessageFactory()
    smooth = cv2.GaussianBlur(_frame(rng), (9, 9), 3)
    out = {}
    for codec in ('jpeg', 'png'):
        msg = numpy_to_compressed(smooth, factory.header(0, 'camera'), factory, codec=codec)
        data = np.frombuffer(bytes(msg.data), np.uint8)

        def opencv():
            return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
        ours = measure(lambda: compressed_to_numpy(msg), seconds=2.0)
        ref = measure(opencv, seconds=2.0)
        out[codec] = {'bytes': int(data.size), 'ours_us': ours['median_s'] * 1e6,
                      'ours_p99_us': ours['p99_s'] * 1e6,
                      'reference_opencv_us': ref['median_s'] * 1e6,
                      'ratio_ours_over_reference': ours['median_s'] / ref['median_s']}
    return out


def bench_bags(rng, tmp):
    frames = [_frame(rng) for _ in range(10)]
    results = {}
    for storage in ('mcap', 'sqlite3'):
        path = Path(tmp) / storage
        with BagWriter(path, storage=storage) as bag:
            bag.add_topic('/camera/image_color', 'sensor_msgs/msg/Image')
            for i in range(FRAMES):
                header = bag.factory.header(1_000_000_000 + i * 33_333_333, 'camera')
                bag.write('/camera/image_color',
                          numpy_to_image(frames[i % 10], 'bgr8', header, bag.factory))

        def read_decode():
            with BagReader(path) as bag:
                n = sum(1 for _ in bag.read_images('/camera/image_color'))
            assert n == FRAMES

        def read_only():
            with BagReader(path) as bag:
                n = sum(1 for _ in bag.messages(['/camera/image_color']))
            assert n == FRAMES

        full = measure(read_decode, repeats=7, warmup=1)
        bare = measure(read_only, repeats=7, warmup=1)
        results[storage] = {
            'read_decode_us_per_frame': full['median_s'] / FRAMES * 1e6,
            'read_deserialize_only_us_per_frame': bare['median_s'] / FRAMES * 1e6,
            'frames_per_s': FRAMES / full['median_s'],
        }
    return results


def main():
    rng = np.random.default_rng(0)
    results = {'decode': bench_decode(rng), 'compressed': bench_compressed(rng)}
    with tempfile.TemporaryDirectory() as tmp:
        results['bags'] = bench_bags(rng, tmp)
    d = results['decode']
    print(f"decode 640x360 bgr8 -> RGB: {d['decode_bgr8_to_rgb_640x360_us']:.1f} us median "
          f"(p99 {d['decode_p99_us']:.1f}); rosbags-image {d['reference_rosbags_image_us']:.1f}"
          f" us -> {d['ratio_reference_over_ours']:.2f}x")
    for codec, r in results['compressed'].items():
        print(f"CompressedImage {codec} 640x360 ({r['bytes']} bytes) -> RGB: {r['ours_us']:.0f} "
              f"us median (p99 {r['ours_p99_us']:.0f}); OpenCV imdecode + cvtColor "
              f"{r['reference_opencv_us']:.0f} us -> {r['ratio_ours_over_reference']:.2f}x")
    for storage, r in results['bags'].items():
        print(f"{storage:8s} read+decode {r['read_decode_us_per_frame']:.1f} us/frame "
              f"({r['frames_per_s']:.0f} frames/s); read+deserialize only "
              f"{r['read_deserialize_only_us_per_frame']:.1f} us/frame")
    print('written', write_report('io', results))


if __name__ == '__main__':
    main()
