"""``score --branch pixel``: per image the anomaly map, semantic ids, an overlay (and failure map).

Per image in ``--out``: ``<stem>.anomaly.npy`` (float32 at the input's
resolution), ``<stem>.semantic.png``, ``<stem>.overlay.jpg``, and
``<stem>.failure.npy`` from a model with FSNet's head.
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

import cv2
import numpy as np

from .detector import PixelAnomalySegmenter
from .messages import overlay_image
from ...io.files import atomic_write_bytes
from ...io.files import atomic_write_npy
from ...io.files import output_folder
from ...io.images import encode_image
from ...io.images import read_image_file


def write_scores(model_dir, files, args):
    """Segment ``files`` with the pixel model in ``model_dir`` into ``args.out``; exit code."""
    out = output_folder(args.out, 'score --branch pixel')
    detector = PixelAnomalySegmenter.from_model_dir(model_dir, args.backend,
                                                    target_fpr=args.target_fpr)
    print(f"{'image':<40}  {'frame score':>11}  {'prob':>6}  {'mask %':>6}   (model "
          f'{model_dir}, backend {detector.backend.name}, mask at pixel FPR '
          f'{detector.target_fpr:g})')
    for f in files:
        bgr = read_image_file(f)
        r = detector.segment(bgr, channel_order='bgr')[0]
        stem = Path(f).stem
        atomic_write_npy(out / f'{stem}.anomaly.npy', r.anomaly.astype(np.float32))
        atomic_write_bytes(out / f'{stem}.semantic.png', encode_image('.png', r.semantic))
        if r.failure is not None:
            atomic_write_npy(out / f'{stem}.failure.npy', r.failure.astype(np.float32))
        overlay = overlay_image(bgr[..., ::-1], r)
        atomic_write_bytes(out / f'{stem}.overlay.jpg',
                           encode_image('.jpg', cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)))
        print(f'{str(f):<40}  {r.frame_score:11.3f}  {r.frame_probability:6.3f}  '
              f'{100.0 * r.mask.mean():6.2f}')
    extra = ', .failure.npy' if detector.has_failure else ''
    print(f'written {out}/<stem>.anomaly.npy, .semantic.png{extra}, .overlay.jpg for '
          f'{len(files)} image(s)')
    return 0
