"""What ``synthesize`` writes per image, and the panel people look at.

Per image ``<stem>``, atomically: ``<stem>.edit.png`` (the edit, at the
model's resolution), ``<stem>.anomaly.npy`` (float32 at the input's
resolution, the refined distance, NaN outside the model's crop) and
``<stem>.panel.png``: input | edit | distance | refined, each map over the
same colour scale, the label's outline in green when it is known.
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

from ...io.files import atomic_write_bytes
from ...io.files import atomic_write_npy


def label_mask_for(image_path):
    """Return the anomaly mask (bool) of a dataset image (``<root>/masks/<stem>.png``) or None."""
    path = Path(image_path)
    mask = path.parent.parent / 'masks' / f'{path.stem}.png'
    if not mask.is_file():
        return None
    m = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
    return None if m is None else m > 0


def heat(values, lo, hi):
    """Return a BGR inferno heat map of ``values`` scaled to ``[lo, hi]``; NaN shows dark grey."""
    finite = np.isfinite(values)
    norm = np.clip((np.where(finite, values, lo) - lo) / max(hi - lo, 1e-9), 0, 1)
    out = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    out[~finite] = (40, 40, 40)
    return out


def panel(rgb, result, label=None, width=320):
    """Return the four tiles side by side, BGR uint8: input, edit, distance, refined map."""
    height, full_w = rgb.shape[:2]
    size = (width, max(1, int(round(height * width / full_w))))
    edit = np.full_like(rgb, 40)
    finite = np.isfinite(result.anomaly)
    ys, xs = np.nonzero(finite)
    if len(ys):
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        edit[y0:y1, x0:x1] = cv2.resize(result.edit, (x1 - x0, y1 - y0),
                                        interpolation=cv2.INTER_LINEAR)
    values = np.concatenate([result.distance[np.isfinite(result.distance)],
                             result.anomaly[finite]])
    lo, hi = (np.percentile(values, 1), np.percentile(values, 99.5)) if values.size else (0, 1)
    tiles = [cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), cv2.cvtColor(edit, cv2.COLOR_RGB2BGR),
             heat(result.distance, lo, hi), heat(result.anomaly, lo, hi)]
    if label is not None and label.shape == rgb.shape[:2]:
        contours, _ = cv2.findContours(label.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        for tile in tiles:
            cv2.drawContours(tile, contours, -1, (0, 255, 0), 2)
    tiles = [cv2.resize(t, size, interpolation=cv2.INTER_AREA) for t in tiles]
    for tile, name in zip(tiles, ('input', 'edit', 'distance', 'refined')):
        cv2.putText(tile, name, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return np.hstack(tiles)


def write_outputs(out_dir, stem, rgb, result, label=None):
    """Write ``<stem>.edit.png``, ``<stem>.anomaly.npy`` and ``<stem>.panel.png`` atomically."""
    out = Path(out_dir)
    ok, edit = cv2.imencode('.png', cv2.cvtColor(result.edit, cv2.COLOR_RGB2BGR))
    ok2, pan = cv2.imencode('.png', panel(rgb, result, label))
    if not (ok and ok2):
        raise ValueError(f'cannot encode the outputs of {stem!r}.')
    atomic_write_bytes(out / f'{stem}.edit.png', edit.tobytes())
    atomic_write_npy(out / f'{stem}.anomaly.npy', result.anomaly.astype(np.float32))
    atomic_write_bytes(out / f'{stem}.panel.png', pan.tobytes())
    return [f'{stem}.edit.png', f'{stem}.anomaly.npy', f'{stem}.panel.png']
