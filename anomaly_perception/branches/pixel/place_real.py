"""Learning a place from a handful of real camera frames (``experiment pixel-place --real``).

A folder of real frames named ``<place>_<kind>[n].<ext>`` (``corridor_normal1.jpg``,
``corridor_cable.jpg``...): the ``normal`` frames of each place are its
normal driving, the rest its hazards. With so few frames, each one is
turned into many views by augmentation (random crops and scales, a small
roll, flips, brightness and contrast, blur, motion blur and noise); training
and calibration views come from different random draws.

* **Left-out normal frames.** For every place with two or more normal
  frames, each normal frame in turn is left out, the place is learnt from
  the others, and the share of the left-out frame's pixels above the
  place's threshold is measured (the generic model's share beside it).
* **Contact sheet.** The place learnt from all its normal frames scores its
  hazard frames: the image, the generic model's overlay and the place
  model's, the mask's edge in green.
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
import re

import cv2
import numpy as np

from ...io.files import image_files
from ...io.images import read_image_file
from ...runtime.preprocess import content_box
from ...runtime.preprocess import letterbox

NAME = re.compile(r'^(?P<place>[a-z]+)_(?P<kind>[a-z_]+?)(?P<n>\d*)$')
REAL_STEPS = 160            # a few frames: fewer steps than a bag's thousands


def read_places(folder):
    """``{place: {'normal': [(name, rgb)], 'hazard': [(name, rgb)]}}`` of a frames folder."""
    places = {}
    for path in image_files([folder]):
        match = NAME.match(Path(path).stem)
        if not match:
            continue
        kind = 'normal' if match['kind'] == 'normal' else 'hazard'
        rgb = np.ascontiguousarray(read_image_file(path)[..., ::-1])
        places.setdefault(match['place'], {'normal': [], 'hazard': []})[kind].append(
            (Path(path).stem, rgb))
    return places


def augmented_views(images, count, shape, seed):
    """``count`` letterboxed views of ``images`` (uint8 ``[count, h, w, 3]``)."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, *shape, 3), np.uint8)
    for k in range(count):
        image = images[int(rng.integers(len(images)))]
        h, w = image.shape[:2]
        scale = rng.uniform(0.75, 1.0)
        ch, cw = int(h * scale), int(w * scale * rng.uniform(0.9, 1.1))
        cw = min(cw, w)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        view = image[y:y + ch, x:x + cw]
        view = cv2.resize(view, (w, h), interpolation=cv2.INTER_AREA)
        angle = rng.uniform(-4, 4)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        view = cv2.warpAffine(view, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
        if rng.random() < 0.5:
            view = view[:, ::-1]
        view = view.astype(np.float32) * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20)
        if rng.random() < 0.4:
            view = cv2.GaussianBlur(view, (0, 0), rng.uniform(0.5, 2.0))
        if rng.random() < 0.3:
            length = int(rng.integers(3, 12))
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2] = 1.0 / length
            rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5),
                                          rng.uniform(0, 180), 1.0)
            kernel = cv2.warpAffine(kernel, rot, (length, length))
            view = cv2.filter2D(view, -1, kernel / max(kernel.sum(), 1e-6))
        view = view + rng.normal(0, rng.uniform(0, 4), view.shape)
        out[k] = letterbox(np.clip(view, 0, 255).astype(np.uint8), shape)
    return out


def learn_from_frames(images, model_dir, work_dir, config, *, start_dir, bank,
                      show_progress=False, train_views=240, cal_views=80):
    """Learn a place from a few real frames (augmented views); return the manifest."""
    from .place import learn_place
    from ...runtime.manifest import load_manifest
    from ...runtime.manifest import model_input_shape
    shape = model_input_shape(load_manifest(start_dir, branch='pixel')['preprocessing'])
    train = augmented_views(images, train_views, shape, config.seed)
    cal = augmented_views(images, cal_views, shape, config.seed + 1000)
    region = content_box(*images[0].shape[:2], shape)
    return learn_place(start_dir, train, cal, region, model_dir, work_dir, config,
                       provenance={'frames': 'real', 'source_frames': len(images)},
                       overwrite=True, show_progress=show_progress, bank=bank)


def run_real_frames(folder, out, config, *, show_progress=True, steps=REAL_STEPS):
    """Leave-one-out shares and the contact sheet of the module docs; return the results."""
    from .detector import PixelAnomalySegmenter
    from .paste import CutoutBank
    from .place_eval import write_overlays
    from ...runtime.manifest import shipped_model_dir
    from . import SHIPPED_MODEL
    out = Path(out)
    config = dataclasses.replace(config, steps=steps)
    start = shipped_model_dir(SHIPPED_MODEL)
    generic = PixelAnomalySegmenter.from_model_dir(start)
    bank = CutoutBank(config.sources)
    places = read_places(folder)
    results = {'steps': steps, 'left_out': {}, 'hazards': {}}
    sheet = []
    for place, frames in sorted(places.items()):
        normals = frames['normal']
        if len(normals) >= 2:
            for k, (name, rgb) in enumerate(normals):
                rest = [img for j, (_, img) in enumerate(normals) if j != k]
                model = out / f'{place}_without_{name}'
                learn_from_frames(rest, model, out / 'work' / model.name, config,
                                  start_dir=start, bank=bank, show_progress=show_progress)
                seg = PixelAnomalySegmenter.from_model_dir(model)
                results['left_out'][name] = {
                    'place': place, 'learnt_from': len(rest),
                    'flagged': float(seg.segment(rgb)[0].mask.mean()),
                    'generic_flagged': float(generic.segment(rgb)[0].mask.mean())}
                print(f"real {name}: left out, {100 * results['left_out'][name]['flagged']:.2f}"
                      ' % of its pixels flagged (generic '
                      f"{100 * results['left_out'][name]['generic_flagged']:.1f} %)",
                      flush=True)
        if not normals:
            continue
        model = out / f'{place}_all'
        learn_from_frames([img for _, img in normals], model, out / 'work' / model.name,
                          config, start_dir=start, bank=bank, show_progress=show_progress)
        seg = PixelAnomalySegmenter.from_model_dir(model)
        for name, rgb in frames['hazard'] + normals:
            g, p = generic.segment(rgb)[0], seg.segment(rgb)[0]
            results['hazards'][name] = {'place': place, 'flagged': float(p.mask.mean()),
                                        'generic_flagged': float(g.mask.mean())}
            maps = [(r.anomaly, r.mask, (float(np.quantile(r.anomaly, 0.5)),
                                         float(np.quantile(r.anomaly, 0.999))))
                    for r in (g, p)]
            sheet.append((rgb, maps))
    write_overlays(out / 'contact_sheet.jpg', sheet, width=256)
    return results


def format_real_frames(results):
    """Markdown lines for the real-frames part of the results."""
    lines = ['## Real frames', '',
             f"Each place learnt from its other normal frames ({results['steps']} steps on "
             "augmented views); share of the left-out normal frame's pixels above the "
             "place's threshold.", '',
             '| left-out frame | learnt from | place model | generic model |', '|---|---|---|---|']
    for name, r in results['left_out'].items():
        lines.append(f"| {name} | {r['learnt_from']} frames | {100 * r['flagged']:.2f} % | "
                     f"{100 * r['generic_flagged']:.1f} % |")
    lines += ['', 'Share of pixels flagged on every frame, by the place learnt from all its '
              'normal frames (normal frames here were trained on):', '',
              '| frame | place model | generic model |', '|---|---|---|']
    for name, r in results['hazards'].items():
        lines.append(f"| {name} | {100 * r['flagged']:.2f} % | "
                     f"{100 * r['generic_flagged']:.1f} % |")
    return lines
