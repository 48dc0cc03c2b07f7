"""Procedural textures for the synthetic world (numpy + OpenCV, seeded).

Textures are uint8 RGB atlases in metric coordinates (``px_per_m``), with a
label atlas (semantic class per texel) and a mip pyramid, so the renderer
can sample them at any distance without aliasing.
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

from .catalog import SEMANTIC_IDS


def fractal_noise(rng, shape, scale, octaves=4, persistence=0.5):
    """Smooth fractal value noise in [0, 1], ``float32 [H, W]``.

    ``scale`` is the size in pixels of the coarsest features.
    """
    h, w = shape
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for octave in range(octaves):
        cell = max(scale / (2 ** octave), 1.0)
        gh, gw = int(np.ceil(h / cell)) + 2, int(np.ceil(w / cell)) + 2
        grid = rng.random((gh, gw), dtype=np.float32)
        up = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
        out += amp * up[:h, :w]
        total += amp
        amp *= persistence
    out /= total
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def remap_points(src, x, y, interpolation=cv2.INTER_LINEAR, border=cv2.BORDER_WRAP):
    """Sample ``src`` at N pixel coordinates; returns ``[N, C]`` (or ``[N]``).

    cv2.remap needs 2-D maps under 32767 on a side, so the points are laid
    out in rows of 1024.
    """
    n = x.size
    cols = 1024
    rows = -(-n // cols)
    pad = rows * cols - n
    mx = np.concatenate([x.astype(np.float32).reshape(-1), np.zeros(pad, np.float32)])
    my = np.concatenate([y.astype(np.float32).reshape(-1), np.zeros(pad, np.float32)])
    out = cv2.remap(src, mx.reshape(rows, cols), my.reshape(rows, cols), interpolation,
                    borderMode=border)
    if out.ndim == 3:
        return out.reshape(rows * cols, out.shape[2])[:n]
    return out.reshape(-1)[:n]


def _to_u8(rgb):
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


class Texture:
    """A tiling RGB texture with a mip pyramid and a label atlas.

    Attributes:
        levels: uint8 ``[H, W, 3]`` images, level 0 full resolution.
        labels: uint8 ``[H, W]`` semantic ids at level 0.
        px_per_m: texels per metre at level 0.
        emission: optional float32 ``[H, W]`` light emission (ceilings).

    """

    def __init__(self, rgb, labels, px_per_m, emission=None, n_levels=6):
        self.px_per_m = float(px_per_m)
        self.labels = labels
        self.levels = [rgb]
        for _ in range(n_levels - 1):
            if min(self.levels[-1].shape[:2]) < 8:
                break
            self.levels.append(cv2.pyrDown(self.levels[-1]))
        self.emission = emission
        self.emission_blur = None
        self._mixed = {}
        if emission is not None:
            k = int(self.px_per_m * 0.6) | 1
            self.emission_blur = cv2.GaussianBlur(emission, (k, k), 0)

    def emission_mixed_at(self, u, v, sharpness):
        """Emission blended between sharp and blurred (a glossy floor's mirror image)."""
        key = round(float(sharpness), 3)
        src = self._mixed.get(key)
        if src is None:
            src = self.emission * key + self.emission_blur * (1 - key)
            self._mixed[key] = src
        if u.size == 0:
            return np.zeros(0, np.float32)
        return remap_points(src, u * self.px_per_m - 0.5, v * self.px_per_m - 0.5)

    @property
    def size_m(self):
        h, w = self.labels.shape
        return w / self.px_per_m, h / self.px_per_m

    def sample(self, u, v, footprint):
        """Sample colours at metric coordinates.

        Args:
            u, v: float32 ``[N]`` horizontal / vertical texture coordinates (m).
            footprint: float32 ``[N]`` size of one image pixel on the
                surface (m), which selects the mip level.

        Returns:
            float32 ``[N, 3]`` RGB in [0, 1].

        """
        if u.size == 0:
            return np.zeros((0, 3), np.float32)
        # Nearest mip level (no blend between levels): sensor noise and JPEG
        # hide the level seams, and it halves the lookups.
        level = np.log2(np.maximum(footprint * self.px_per_m, 1e-6) * np.float32(1.2))
        lo = np.clip(level, 0, len(self.levels) - 1).astype(np.int32)
        present = np.flatnonzero(np.bincount(lo, minlength=len(self.levels)))
        if present.size == 1:
            return self._lookup(int(present[0]), u, v) * np.float32(1.0 / 255.0)
        out = np.empty((u.size, 3), np.float32)
        for k in present:
            sel = lo == k
            out[sel] = self._lookup(int(k), u[sel], v[sel])
        return out * np.float32(1.0 / 255.0)

    def _lookup(self, k, u, v):
        scale = self.px_per_m / (2 ** k)
        res = remap_points(self.levels[k], u * scale - 0.5, v * scale - 0.5)
        return res.astype(np.float32)

    def label_at(self, u, v):
        """Nearest-texel semantic ids at metric coordinates (``uint8 [N]``)."""
        if u.size == 0:
            return np.zeros(0, np.uint8)
        return remap_points(self.labels, u * self.px_per_m, v * self.px_per_m,
                            cv2.INTER_NEAREST)

    def emission_at(self, u, v, blurred=False):
        """Light emission in [0, 1+] at metric coordinates (``float32 [N]``)."""
        src = self.emission_blur if blurred else self.emission
        if src is None or u.size == 0:
            return np.zeros(u.size, np.float32)
        return remap_points(src, u * self.px_per_m - 0.5, v * self.px_per_m - 0.5)


# --- surfaces -------------------------------------------------------------------------------


def terrazzo(rng, width_m, length_m, px_per_m, base, speckle=1.0):
    """Terrazzo or speckled stone floor: a pale base with dense multi-coloured chips."""
    h, w = int(width_m * px_per_m), int(length_m * px_per_m)
    low = fractal_noise(rng, (h, w), px_per_m * 1.5, 3)
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = np.asarray(base, np.float32)
    rgb *= (0.93 + 0.1 * low)[..., None]
    # Chips: blobs of a thresholded, slightly blurred white-noise field; each
    # chip takes one of a few stone tones from a second noise field.
    field = cv2.GaussianBlur(rng.random((h, w), dtype=np.float32), (0, 0), 0.6)
    # Quantiles from a sample: the fields are stationary, and this is much faster.
    chips = field > np.quantile(field.reshape(-1)[::97], 1 - 0.16 * speckle)
    tone = cv2.GaussianBlur(rng.random((h, w), dtype=np.float32), (0, 0), 1.5)
    palette = np.array([[0.35, 0.33, 0.31], [0.6, 0.56, 0.5], [0.92, 0.9, 0.87],
                        [0.55, 0.42, 0.35]], np.float32)
    which = np.digitize(tone, np.quantile(tone.reshape(-1)[::97], [0.45, 0.7, 0.9]))
    rgb[chips] = palette[which[chips]] * rng.uniform(0.9, 1.08)
    img = _to_u8(cv2.GaussianBlur(rgb, (0, 0), 0.5))
    return img, np.full((h, w), SEMANTIC_IDS['floor'], np.uint8)


def polished_floor(rng, width_m, length_m, px_per_m, base):
    """Smooth polished concrete / vinyl floor with faint mottling and seams."""
    h, w = int(width_m * px_per_m), int(length_m * px_per_m)
    mott = fractal_noise(rng, (h, w), px_per_m * 0.8, 5)
    rgb = np.asarray(base, np.float32) * (0.9 + 0.16 * mott)[..., None]
    img = _to_u8(rgb)
    seam = int(rng.uniform(1.5, 3.0) * px_per_m)
    dark = tuple(int(c * 0.8) for c in _to_u8(np.asarray(base, np.float32)))
    for x in range(seam // 2, w, seam):
        cv2.line(img, (x, 0), (x, h - 1), dark, 1, cv2.LINE_AA)
    return img, np.full((h, w), SEMANTIC_IDS['floor'], np.uint8)


def gravel_floor(rng, width_m, length_m, px_per_m, base):
    """Dark uneven tunnel floor."""
    h, w = int(width_m * px_per_m), int(length_m * px_per_m)
    n1 = fractal_noise(rng, (h, w), px_per_m * 0.5, 5)
    n2 = rng.random((h, w), dtype=np.float32)
    rgb = np.asarray(base, np.float32) * (0.6 + 0.5 * n1 + 0.25 * n2)[..., None]
    return _to_u8(rgb), np.full((h, w), SEMANTIC_IDS['floor'], np.uint8)


def concrete_wall(rng, length_m, height_m, px_per_m, base):
    """Fair-faced concrete: mottled grey panels with seams and formwork tie holes."""
    h, w = int(height_m * px_per_m), int(length_m * px_per_m)
    mott = fractal_noise(rng, (h, w), px_per_m * 0.7, 5)
    rgb = np.asarray(base, np.float32) * (0.88 + 0.2 * mott)[..., None]
    img = _to_u8(rgb)
    panel_w, panel_h = rng.uniform(1.2, 2.7), rng.uniform(0.9, 1.4)
    dark = tuple(int(c * 0.75) for c in img[h // 2, w // 2])
    for x in np.arange(panel_w, length_m, panel_w):
        cv2.line(img, (int(x * px_per_m), 0), (int(x * px_per_m), h - 1), dark, 1, cv2.LINE_AA)
    for y in np.arange(panel_h, height_m, panel_h):
        cv2.line(img, (0, h - int(y * px_per_m)), (w - 1, h - int(y * px_per_m)), dark, 1,
                 cv2.LINE_AA)
    r = max(1, int(0.012 * px_per_m))
    for x in np.arange(panel_w / 4, length_m, panel_w / 2):
        for y in np.arange(panel_h / 4, height_m, panel_h / 2):
            cv2.circle(img, (int(x * px_per_m), h - int(y * px_per_m)), r,
                       tuple(int(c * 0.55) for c in dark), -1, cv2.LINE_AA)
    return img, np.full((h, w), SEMANTIC_IDS['wall'], np.uint8)


def wood_wall(rng, length_m, height_m, px_per_m, base):
    """Wooden wall panels: warm colour, vertical grain, panel joints."""
    h, w = int(height_m * px_per_m), int(length_m * px_per_m)
    grain = cv2.resize(rng.random((8, w // 2 + 2), dtype=np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    mott = fractal_noise(rng, (h, w), px_per_m * 1.2, 3)
    rgb = np.asarray(base, np.float32) * (0.82 + 0.12 * grain + 0.12 * mott)[..., None]
    img = _to_u8(rgb)
    panel_w = rng.uniform(0.6, 1.25)
    joint = tuple(int(c * 0.6) for c in img[h // 2, w // 2])
    for x in np.arange(panel_w, length_m, panel_w):
        cv2.line(img, (int(x * px_per_m), 0), (int(x * px_per_m), h - 1), joint, 1, cv2.LINE_AA)
    return img, np.full((h, w), SEMANTIC_IDS['wall'], np.uint8)


def rock_wall(rng, length_m, height_m, px_per_m, base):
    """Rough rock for the tunnel vault: fractal relief with cracks."""
    h, w = int(height_m * px_per_m), int(length_m * px_per_m)
    relief = fractal_noise(rng, (h, w), px_per_m * 0.9, 6, 0.6)
    shade = np.clip(1.2 * relief - 0.1, 0, 1)
    sob = cv2.Sobel(relief, cv2.CV_32F, 1, 1, ksize=3)
    rgb = np.asarray(base, np.float32) * (0.45 + 0.8 * shade + 4.0 * sob)[..., None]
    img = _to_u8(np.clip(rgb, 0, 1))
    for _ in range(int(length_m * 3)):
        pts = np.cumsum(rng.normal(0, 0.04 * px_per_m, (12, 2)), 0)
        pts += [rng.uniform(0, w), rng.uniform(0, h)]
        cv2.polylines(img, [pts.astype(np.int32)], False, (20, 20, 20), 1, cv2.LINE_AA)
    return img, np.full((h, w), SEMANTIC_IDS['wall'], np.uint8)


def add_doors(rng, img, labels, px_per_m, length_m, spacing, style):
    """Paint closed doors (with frames and handles) onto a wall texture.

    Returns the door centres along the wall (m), so scenes can place open
    doors exactly where closed ones are.
    """
    h = img.shape[0]
    centres = []
    z = rng.uniform(1.0, spacing)
    while z < length_m - 1.2:
        centres.append(z)
        width = rng.uniform(0.9, 1.1)
        height = rng.uniform(2.05, 2.25)
        x0, x1 = int((z - width / 2) * px_per_m), int((z + width / 2) * px_per_m)
        y0 = h - int(height * px_per_m)
        if style == 'wood':
            colour = np.array([150, 95, 45]) * rng.uniform(0.85, 1.1)
        else:
            colour = np.array([205, 205, 200]) * rng.uniform(0.85, 1.02)
        colour = tuple(int(c) for c in np.clip(colour, 0, 255))
        frame = tuple(int(c * 0.55) for c in colour)
        cv2.rectangle(img, (x0, y0), (x1, h - 1), colour, -1)
        cv2.rectangle(img, (x0, y0), (x1, h - 1), frame, max(1, int(0.03 * px_per_m)))
        hy = h - int(1.05 * px_per_m)
        hx = x1 - int(0.12 * px_per_m)
        cv2.line(img, (hx, hy), (hx - int(0.1 * px_per_m), hy), (60, 60, 60),
                 max(1, int(0.02 * px_per_m)))
        labels[y0:, max(x0, 0):x1 + 1] = SEMANTIC_IDS['door']
        z += spacing * rng.uniform(0.7, 1.3)
    return centres


def add_signs(rng, img, labels, px_per_m, length_m, count):
    """Small signs (exit signs, notices) on a wall: class 'other'."""
    h, w = labels.shape
    for _ in range(count):
        z = rng.uniform(0.5, length_m - 0.5)
        y = rng.uniform(1.3, 2.2)
        sw, sh = rng.uniform(0.2, 0.45), rng.uniform(0.15, 0.35)
        x0, y0 = int((z - sw / 2) * px_per_m), h - int((y + sh / 2) * px_per_m)
        x1, y1 = int((z + sw / 2) * px_per_m), h - int((y - sh / 2) * px_per_m)
        colour = [(40, 160, 70), (230, 230, 230), (200, 40, 40), (40, 70, 160)][rng.integers(4)]
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        cv2.rectangle(img, (x0 + 3, y0 + 3), (x1 - 3, y1 - 3),
                      tuple(255 - c for c in colour), 1)
        labels[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = SEMANTIC_IDS['other']


def corridor_ceiling(rng, width_m, length_m, px_per_m, base, n_strips, strip_w, tray):
    """Ceiling with continuous light strips along the corridor and a cable tray."""
    h, w = int(width_m * px_per_m), int(length_m * px_per_m)
    mott = fractal_noise(rng, (h, w), px_per_m * 0.5, 3)
    rgb = np.asarray(base, np.float32) * (0.85 + 0.2 * mott)[..., None]
    img = _to_u8(rgb)
    labels = np.full((h, w), SEMANTIC_IDS['ceiling'], np.uint8)
    emission = np.zeros((h, w), np.float32)
    # Ceiling panel grid.
    step = rng.uniform(0.6, 1.2)
    grid = tuple(int(c * 0.8) for c in img[h // 2, w // 2])
    for z in np.arange(step, length_m, step):
        cv2.line(img, (int(z * px_per_m), 0), (int(z * px_per_m), h - 1), grid, 1)
    if tray:
        # A dark cable tray along one side, 20-30 cm wide.
        c = rng.uniform(0.15, 0.3) * width_m * rng.choice([-1, 1]) + width_m / 2
        tw = rng.uniform(0.2, 0.3)
        y0, y1 = int((c - tw / 2) * px_per_m), int((c + tw / 2) * px_per_m)
        img[y0:y1] = (img[y0:y1] * 0.35).astype(np.uint8)
        for z in np.arange(0, length_m, 0.25):
            cv2.line(img, (int(z * px_per_m), y0), (int(z * px_per_m), y1), (70, 70, 70), 1)
        labels[y0:y1] = SEMANTIC_IDS['other']
    offsets = np.linspace(-1, 1, n_strips + 2)[1:-1] * width_m * 0.3 if n_strips > 1 else [0.0]
    gap = rng.uniform(0.0, 0.6)
    seg = rng.uniform(1.2, 3.0)
    for off in offsets:
        yc = (width_m / 2 + off) * px_per_m
        y0, y1 = int(yc - strip_w * px_per_m / 2), int(yc + strip_w * px_per_m / 2) + 1
        for z in np.arange(0, length_m, seg + gap):
            x0, x1 = int(z * px_per_m), int(min(z + seg, length_m) * px_per_m)
            img[y0:y1, x0:x1] = (250, 250, 245)
            labels[y0:y1, x0:x1] = SEMANTIC_IDS['light']
            emission[y0:y1, x0:x1] = 1.0
    return img, labels, emission
