"""``score --branch instance``: UGainS instances per image, with the node's defaults.

Per image in ``--out``: ``<stem>.instances.png`` (uint16 ids, 0 = none),
``<stem>.instances.json`` (score and box per id), ``<stem>.anomaly.npy``
(the refined map) and ``<stem>.overlay.jpg``.
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

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from .config import InstanceNodeConfig
from .detector import InstanceAnomalySegmenter
from .messages import instance_overlay
from ...io.files import atomic_write_bytes
from ...io.files import atomic_write_json
from ...io.files import atomic_write_npy
from ...io.files import output_folder
from ...io.images import encode_image
from ...io.images import read_image_file


def write_scores(model_dir, files, args):
    """Find instances in ``files``; ``model_dir`` is the promptable segmenter; exit code.

    ``args.pixel_model`` is the pixel model whose map drives the prompts
    (None: the shipped one); ``args.prompt_fpr`` / ``args.instance_fpr``
    override the node's defaults.
    """
    out = output_folder(args.out, 'score --branch instance')
    # The node's defaults, so both give the same instances; the command line's overrides.
    given = {'prompt_fpr': args.prompt_fpr, 'instance_fpr': args.instance_fpr}
    node = dataclasses.replace(InstanceNodeConfig(), backend=args.backend,
                               pixel_model_dir=str(args.pixel_model or ''),
                               **{k: v for k, v in given.items() if v is not None})
    seg = InstanceAnomalySegmenter.from_config(node, model_dir)
    print(f"{'image':<40}  {'instances':>9}  {'best score':>10}   (prompts where the pixel "
          f'map >= {seg.config.threshold:.4g}, its threshold at pixel FPR {seg.prompt_fpr:g}; '
          f'{seg.config.num_points} points)')
    for f in files:
        rgb = np.ascontiguousarray(read_image_file(f)[..., ::-1])
        r = seg.segment(rgb)
        stem = Path(f).stem
        atomic_write_bytes(out / f'{stem}.instances.png', encode_image('.png', r.ids))
        atomic_write_json(out / f'{stem}.instances.json', {
            'image': Path(f).name, 'height': int(rgb.shape[0]), 'width': int(rgb.shape[1]),
            'instances': [{'id': k + 1, 'score': float(s), 'box_xyxy': [int(v) for v in b]}
                          for k, (s, b) in enumerate(zip(r.scores, r.boxes))]}, indent=1)
        atomic_write_npy(out / f'{stem}.anomaly.npy', r.refined.astype(np.float32))
        atomic_write_bytes(out / f'{stem}.overlay.jpg',
                           encode_image('.jpg', cv2.cvtColor(instance_overlay(rgb, r),
                                                             cv2.COLOR_RGB2BGR)))
        best = f'{r.scores[0]:.3f}' if len(r.scores) else '-'
        print(f'{str(f):<40}  {len(r.scores):9d}  {best:>10}')
    print(f'written {out}/<stem>.instances.png, .instances.json, .anomaly.npy, .overlay.jpg '
          f'for {len(files)} image(s)')
    return 0
