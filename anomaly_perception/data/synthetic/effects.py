"""Global anomalies of the synthetic world: frame effects, not objects placed in the scene.

Defects (defocus, a misaligned camera, a dirty lens), mist, darkness and
dust change the whole frame; :func:`global_effect` draws a sequence's
parameters, and the renderer applies them (:func:`apply_haze`,
:func:`dirty_lens`). Objects are placed by :mod:`.anomalies`.
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


import cv2
import numpy as np

from . import textures as tx


# --- the anomaly types ----------------------------------------------------------------------


# --- global anomalies (frame effects) -------------------------------------------------------


def global_effect(type_name, rng):
    """Parameters of a global anomaly for one sequence (a small dict)."""
    if type_name == 'defects':
        kind = ['defocus', 'misaligned', 'dirty_lens'][rng.integers(3)]
        params = {'kind': kind}
        if kind == 'defocus':
            params['sigma'] = float(rng.uniform(2.0, 5.0))
        elif kind == 'misaligned':
            params['roll'] = float(np.radians(rng.uniform(15, 40)) * rng.choice([-1, 1]))
            params['pitch'] = float(np.radians(rng.uniform(-25, 15)))
        else:
            params['smudges'] = int(rng.integers(3, 9))
            params['seed'] = int(rng.integers(1 << 30))
        return params
    if type_name == 'mist':
        return {'density': float(rng.uniform(0.12, 0.45)), 'seed': int(rng.integers(1 << 30)),
                'brightness': float(rng.uniform(0.6, 1.1))}
    if type_name == 'darkness':
        return {'level': float(rng.uniform(0.04, 0.18))}
    if type_name == 'dust':
        return {'density': float(rng.uniform(0.08, 0.3)), 'seed': int(rng.integers(1 << 30)),
                'specks': int(rng.integers(150, 900))}
    raise ValueError(f'{type_name} is not a global anomaly')


def apply_haze(radiance, depth, density, brightness, noise_seed, tint=(1.0, 1.0, 1.0)):
    """Mix lit fog into the radiance: more with distance, patchy across the image."""
    h, w = depth.shape
    rng = np.random.default_rng(noise_seed)
    patch = tx.fractal_noise(rng, (h, w), max(h, w) / 3, 3)
    amount = 1 - np.exp(-np.minimum(depth, 50) * density * (0.5 + patch))
    fog = np.asarray(tint, np.float32) * brightness
    return radiance * (1 - amount[..., None]) + fog * amount[..., None]


def dirty_lens(image, smudges, seed):
    """Overlay blurred smudges on a uint8 RGB image (a dirty camera lens)."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    for _ in range(smudges):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        axes = (int(rng.uniform(0.05, 0.25) * w), int(rng.uniform(0.04, 0.2) * h))
        cv2.ellipse(mask, c, axes, rng.uniform(0, 180), 0, 360, float(rng.uniform(0.3, 0.8)),
                    -1)
    mask = cv2.GaussianBlur(mask, (0, 0), w / 30)
    blurred = cv2.GaussianBlur(image, (0, 0), 4).astype(np.float32)
    dirt = np.array([150, 135, 110], np.float32)
    out = image.astype(np.float32) * (1 - mask[..., None]) + (
        blurred * 0.6 + dirt * 0.4) * mask[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)
