"""Benchmark the frame branch on CPU.

* ``FrameAnomalyDetector.score`` on one 640x360 bgr8 frame (the Robomaster
  camera's default): median and p99 latency of the whole path (crop,
  resize, standardise, encoder, Real-NVP, calibration); the model alone on
  an already-resized 64x64 frame is the in-process reference;
* throughput at batch 32;
* embedding extraction throughput (the encoder on 64x64 frames, batch 256),
  as during training.

Uses the shipped model ``models/frame_rnvp_oe`` (or ``--model``).

Run: ``python benchmarks/bench_frame.py`` (or ``make bench``).
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

from anomaly_perception.branches.frame.detector import FrameAnomalyDetector
from anomaly_perception.branches.frame.train import compute_embeddings
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402, I100
from common import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--model', default=str(ROOT / 'models' / 'frame_rnvp_oe'))
    parser.add_argument('--threads', type=int, default=None,
                        help='torch threads (default: torch decides)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    det = FrameAnomalyDetector.from_model_dir(args.model)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    batch = rng.integers(0, 256, (32, 360, 640, 3), dtype=np.uint8)
    small = det.preprocess(frame, 'bgr')

    single = measure(lambda: det.score(frame, channel_order='bgr'), seconds=3.0)
    model_only = measure(lambda: det.raw_scores(small), seconds=3.0)
    batched = measure(lambda: det.score(batch, channel_order='bgr'), seconds=3.0)
    frames64 = rng.integers(0, 256, (1024, 64, 64, 3), dtype=np.uint8)
    encoder = torch.nn.Module()
    encoder.encoder = det.backend.module.encoder
    encoder.config = {'embedding_dim': 128}
    embed = measure(lambda: compute_embeddings(encoder, frames64), repeats=5, warmup=1)
    results = {
        'model': args.model, 'torch_threads': torch.get_num_threads(),
        'whole_path_640x360_ms': {k: v * 1e3 for k, v in single.items() if k.endswith('_s')},
        'model_only_64x64_ms': {k: v * 1e3 for k, v in model_only.items() if k.endswith('_s')},
        'batch32_frames_per_s': 32 / batched['median_s'],
        'batch32_ms_per_frame': batched['median_s'] / 32 * 1e3,
        'embedding_frames_per_s': 1024 / embed['median_s'],
        'ratio_whole_path_over_model_only': single['median_s'] / model_only['median_s'],
    }
    w = results['whole_path_640x360_ms']
    print(f"whole frame path, 640x360 bgr8: median {w['median_s']:.2f} ms, p99 {w['p99_s']:.2f} "
          f"ms ({single['runs']} runs, {torch.get_num_threads()} threads)")
    print(f"model alone on a 64x64 frame: median {model_only['median_s'] * 1e3:.2f} ms "
          f"(whole path / model = {results['ratio_whole_path_over_model_only']:.2f})")
    print(f"batch 32: {results['batch32_frames_per_s']:.0f} frames/s "
          f"({results['batch32_ms_per_frame']:.2f} ms per frame)")
    print(f"embedding extraction (training): {results['embedding_frames_per_s']:.0f} frames/s")
    print('written', write_report('frame', results))


if __name__ == '__main__':
    main()
