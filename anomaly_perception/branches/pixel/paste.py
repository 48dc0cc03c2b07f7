"""Pasted-anomaly exposure: cut-outs pasted onto a place's own normal frames.

A robot has no pixel labels of its building, but every pixel of its normal
driving is normal. :class:`Paster` turns such a frame into a training pair
by pasting one to three cut-outs (RGBA pictures) onto it; the pasted pixels
are the anomaly (void) class. Three sources of cut-outs (:class:`CutoutBank`):

* ``world``: the synthetic world's local anomaly types, rendered on their
  own as RGBA pictures with their masks (the sprites and decals an anomaly
  is made of, before any scene, light or perspective). A patrol's in-scene
  anomalies are rendered by the world's ray caster with its lighting,
  reflections and perspective: a different generator, kept so;
* ``procedural``: random blobs, polygons, strokes and thin curves filled
  with flat colours, noise, stripes, checkers or a patch of another frame;
* ``surface``: no cut-out but a change of the place's own floor under a
  soft blob (:func:`surface_change`): darker and glossier with a blurred
  mirror of the view above it (a wet patch), a sheen, a colour stain, or
  its texture smoothed away. Anomalies that are the floor itself, changed,
  have no outline for a cut-out to teach;
* ``user``: a folder of RGBA images (PNG with alpha) a user supplies.

So that the seam is not the cue, every paste is blended into the frame:
its edge feathered, its colour and brightness pulled towards the place
under it, blurred and noised like the camera, and scaled by where it lands
on the floor (larger near the bottom of the view; ``anywhere`` sends a
share anywhere in the view, as what hangs from a ceiling or sits on a
wall). The few pixels of the
feathered rim are left out of the loss (``IGNORE``).
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
import itertools
from pathlib import Path

import cv2
import numpy as np

from ...training import TrainingError

IGNORE = 255
VISIBLE = 24            # summed |change| over RGB for a pasted pixel to count as anomalous
SOURCES = ('world', 'procedural', 'surface', 'user')
WORLD_CUTOUT_SEED = 7919     # the cut-outs' own scenes, no patrol's building


def world_cutouts(count=240, seed=WORLD_CUTOUT_SEED):
    """RGBA cut-outs of the synthetic world's local anomaly types: ``[(rgba, type)]``.

    Each anomaly is placed in a scene of its own (seed ``seed``), and the
    pictures it is made of (sprites and decals, not the shadows) are kept
    as they are drawn; floor decals are squashed vertically as the floor's
    perspective would. Pictures under 6 px or almost transparent are dropped.
    """
    from ...data.synthetic.anomalies import place
    from ...data.synthetic.catalog import ANOMALY_TYPES
    from ...data.synthetic.catalog import types_for
    from ...data.synthetic.scene import build_scene
    rng = np.random.default_rng(seed)
    local = [t.name for t in ANOMALY_TYPES if not t.is_global]
    scenes = {env: build_scene(env, seed + i) for i, env in
              enumerate(('corridor', 'factory', 'tunnel'))}
    out, ids = [], itertools.count(1)
    for attempt in itertools.count():
        if len(out) >= count or attempt > count * 4:
            break
        env = list(scenes)[attempt % len(scenes)]
        here = {t.name for t in types_for(env)}
        names = [n for n in local if n in here] or local
        name = names[int(rng.integers(len(names)))]
        try:
            placed = place(name, rng, scenes[env], float(rng.uniform(3, 8)), 0.0, ids)
        except (ValueError, KeyError):
            continue
        pictures = [(s.rgba, 1.0) for s in placed.sprites]
        pictures += [(d.rgba, float(rng.uniform(0.25, 0.6))) for d in placed.decals
                     if not d.darken_only and d.surface == 'floor']
        for rgba, squash in pictures:
            if squash < 1:
                h, w = rgba.shape[:2]
                rgba = cv2.resize(rgba, (w, max(2, int(h * squash))),
                                  interpolation=cv2.INTER_AREA)
            if min(rgba.shape[:2]) >= 6 and (rgba[..., 3] > 127).mean() > 0.05:
                out.append((np.ascontiguousarray(rgba), name))
    return out[:count]


def user_cutouts(folder):
    """RGBA cut-outs from a folder of images with an alpha channel: ``[(rgba, name)]``.

    Raises:
        TrainingError: the folder is missing, or holds no readable RGBA image
            (named, with the reason).

    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingError(f'--cutouts {str(folder)!r} is not a folder.')
    out, refused = [], []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in ('.png', '.webp', '.tif', '.tiff'):
            continue
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.ndim != 3 or image.shape[2] != 4:
            refused.append(path.name)
            continue
        rgba = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
        if image.dtype != np.uint8:
            rgba = (rgba / 257).astype(np.uint8)
        if (rgba[..., 3] > 127).sum() < 16:
            refused.append(path.name)
            continue
        out.append((rgba, path.stem))
    if not out:
        why = f' ({", ".join(refused[:5])} have no alpha or an empty one)' if refused else ''
        raise TrainingError(f'--cutouts {str(folder)!r} holds no RGBA image (PNG with an '
                            f'alpha channel){why}.')
    return out


def _texture(rng, h, w, frame=None):
    """Return a random fill ``uint8 [h, w, 3]``: flat, noise, stripes, checker or a patch."""
    kind = rng.choice(['flat', 'noise', 'stripes', 'checker', 'patch'],
                      p=[0.25, 0.25, 0.2, 0.1, 0.2])
    colour = rng.integers(0, 256, 3).astype(np.float32)
    if kind == 'patch' and frame is not None and frame.shape[0] > h and frame.shape[1] > w:
        y, x = rng.integers(0, frame.shape[0] - h), rng.integers(0, frame.shape[1] - w)
        patch = frame[y:y + h, x:x + w].astype(np.float32)
        patch = patch[::-1] if rng.random() < 0.5 else patch[:, ::-1]
        return np.clip(patch * rng.uniform(0.5, 1.5) + rng.uniform(-40, 40, 3), 0,
                       255).astype(np.uint8)
    if kind == 'noise':
        scale = max(2, int(rng.integers(2, 12)))
        small = rng.random((max(1, h // scale + 1), max(1, w // scale + 1), 1), np.float32)
        field = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
        other = rng.integers(0, 256, 3).astype(np.float32)
        return (colour * field + other * (1 - field)).astype(np.uint8)
    if kind in ('stripes', 'checker'):
        period = int(rng.integers(3, 14))
        yy, xx = np.mgrid[0:h, 0:w]
        angle = rng.uniform(0, np.pi)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) // period % 2
        if kind == 'checker':
            phase = (xx // period + yy // period) % 2
        other = rng.integers(0, 256, 3).astype(np.float32)
        return np.where(phase[..., None] > 0, colour, other).astype(np.uint8)
    return np.broadcast_to(colour, (h, w, 3)).astype(np.uint8)


def procedural_cutout(rng, frame=None):
    """One random RGBA shape: a blob, polygon, stroke or thin curve with a random fill."""
    h, w = (int(v) for v in rng.integers(12, 72, 2))
    alpha = np.zeros((h, w), np.uint8)
    kind = rng.choice(['blob', 'polygon', 'stroke', 'curve'])
    if kind == 'polygon':
        n = int(rng.integers(3, 9))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(0.5, 1.0, n)
        pts = np.stack([w / 2 + np.cos(angles) * radius * w / 2,
                        h / 2 + np.sin(angles) * radius * h / 2], 1)
        cv2.fillPoly(alpha, [pts.astype(np.int32)], 255)
    elif kind in ('stroke', 'curve'):
        pts = np.cumsum(rng.normal(0, 1, (int(rng.integers(4, 10)), 2)), 0)
        pts = (pts - pts.min(0)) / np.maximum(np.ptp(pts, 0), 1e-6)
        pts = (pts * [w - 4, h - 4] + 2).astype(np.int32)
        thick = 1 if kind == 'curve' else int(rng.integers(2, max(3, min(h, w) // 3)))
        cv2.polylines(alpha, [pts], False, 255, thick, cv2.LINE_AA)
    else:
        small = rng.random((4, 4), np.float32)
        field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
        yy, xx = np.mgrid[0:h, 0:w]
        r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
        alpha = ((1 - r + 0.5 * (field - 0.5)) > 0.25).astype(np.uint8) * 255
    rgba = np.dstack([_texture(rng, h, w, frame), alpha])
    return rgba


def _blob(rng, h, w):
    """Return a random blob ``float32 [h, w]`` of 0 and 1 (a spill-like outline)."""
    small = rng.random((5, 5), np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    return ((1 - r + 0.6 * (field - 0.5)) > 0.3).astype(np.float32)


def surface_change(image, rng, box, mirror_top=None):
    """Change the floor under a blob in ``box`` = ``(y, x, h, w)``; return ``(patch, alpha)``.

    ``patch`` is the changed ``float32 [h, w, 3]`` of ``image`` there and
    ``alpha`` the blob (hard, the caller feathers it). ``mirror_top``: the
    row above which the view is mirrored into a wet patch's reflection.
    """
    y, x, h, w = box
    under = image[y:y + h, x:x + w].astype(np.float32)
    alpha = _blob(rng, h, w)
    kind = rng.choice(['wet', 'sheen', 'stain', 'smooth'], p=[0.4, 0.2, 0.2, 0.2])
    if kind == 'wet':
        grey = under.mean(-1, keepdims=True)
        out = (grey + (under - grey) * rng.uniform(1.1, 1.5)) * rng.uniform(0.45, 0.8)
        top = y if mirror_top is None else mirror_top
        rows = np.clip(2 * top - np.arange(y, y + h), 0, image.shape[0] - 1)
        reflection = cv2.GaussianBlur(image[rows, x:x + w].astype(np.float32), (0, 0),
                                      rng.uniform(1.0, 4.0))
        k = rng.uniform(0.15, 0.45)
        out = out * (1 - k) + reflection * k
    elif kind == 'sheen':
        ramp = np.linspace(rng.uniform(0, 1), rng.uniform(0, 1), w, dtype=np.float32)[None]
        k = (rng.uniform(0.2, 0.5) * (0.5 + 0.5 * ramp))[..., None]
        out = under * (1 - k) + 255 * k
    elif kind == 'stain':
        out = under * rng.uniform(0.5, 1.15, 3).astype(np.float32)
    else:
        out = cv2.GaussianBlur(under, (0, 0), rng.uniform(2.0, 5.0)) * rng.uniform(0.7, 1.0)
    return np.clip(out, 0, 255), alpha


class CutoutBank:
    """Where the pasted cut-outs come from: a weighted choice among the sources.

    Args:
        sources: names from :data:`SOURCES` (``user`` needs ``user_folder``).
        user_folder: a folder of RGBA images.
        world: pre-rendered world cut-outs (:func:`world_cutouts`); rendered
            here when None and ``world`` is a source.

    """

    def __init__(self, sources=('world', 'procedural'), user_folder=None, world=None):
        unknown = [s for s in sources if s not in SOURCES]
        if unknown:
            raise TrainingError(f'Unknown cut-out source(s) {unknown}; choose from {SOURCES}.')
        self.sources = list(sources)
        if user_folder is not None and 'user' not in self.sources:
            self.sources.append('user')
        if 'user' in self.sources and user_folder is None:
            raise TrainingError("The 'user' cut-out source needs --cutouts FOLDER.")
        self.world = (world if world is not None else world_cutouts()) \
            if 'world' in self.sources else []
        self.user = user_cutouts(user_folder) if user_folder is not None else []
        if not self.sources:
            raise TrainingError('No cut-out source: give at least one.')

    def draw(self, rng, frame=None):
        """One ``(rgba, source)`` cut-out (``(None, 'surface')`` for a surface change)."""
        source = self.sources[int(rng.integers(len(self.sources)))]
        if source == 'surface':
            return None, source
        if source == 'world':
            return self.world[int(rng.integers(len(self.world)))][0], source
        if source == 'user':
            return self.user[int(rng.integers(len(self.user)))][0], source
        return procedural_cutout(rng, frame), source


def noise_level(image):
    """Estimate a frame's noise (std of its finest detail, grey levels) to match pastes."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = grey - cv2.GaussianBlur(grey, (3, 3), 0.8)
    return float(1.4826 * np.median(np.abs(detail - np.median(detail))))


@dataclasses.dataclass
class PasteOptions:
    """How cut-outs are pasted (sizes are shares of the input's height)."""

    per_image: tuple = (1, 3)           # cut-outs per pasted frame (inclusive range)
    size: tuple = (0.06, 0.45)          # cut-out height at the bottom of the view
    horizon: float = 0.35               # where the floor's perspective vanishes (share of height)
    feather: tuple = (0.4, 1.6)         # edge blur sigma (px)
    colour_match: tuple = (0.0, 0.6)    # how far colour and brightness go to the place's
    blur: tuple = (0.0, 1.2)            # camera blur sigma (px)
    opacity: tuple = (0.6, 1.0)         # translucent cut-outs (spills, cellophane)
    anywhere: float = 0.0               # share of cut-outs placed anywhere, not on the floor


class Paster:
    """Paste cut-outs onto frames; return the frame and its pasted-pixel mask."""

    def __init__(self, bank, options=None):
        self.bank = bank
        self.options = options or PasteOptions()

    def paste_visible(self, image, rng, min_pixels=1, tries=10):
        """:meth:`paste`, drawn again (up to ``tries``) until ``min_pixels`` are pasted.

        A paste can fall off a small frame or come out too small to label;
        the last draw is returned when none reaches ``min_pixels``.
        """
        for _ in range(tries):
            image_out, void, rim = self.paste(image, rng)
            if void.sum() >= min_pixels:
                break
        return image_out, void, rim

    def paste(self, image, rng, region=None):
        """Paste onto ``uint8 [H, W, 3]`` (a copy); return ``(image, void, rim)`` masks.

        ``region``: ``(y0, x0, h, w)``, the frame's part of a letterboxed input
        (pastes land inside it). ``void``: pixels that are the pasted anomaly;
        ``rim``: the feathered edge, left out of the loss.
        """
        o = self.options
        out = image.astype(np.float32)
        height, width = image.shape[:2]
        y0, x0, rh, rw = region or (0, 0, height, width)
        void = np.zeros((height, width), bool)
        rim = np.zeros((height, width), bool)
        sigma_noise = noise_level(image)
        for _ in range(int(rng.integers(o.per_image[0], o.per_image[1] + 1))):
            rgba, source = self.bank.draw(rng, image)
            # Perspective: the bottom edge lands at y; things are larger lower in the view.
            horizon = y0 + o.horizon * rh
            bottom = rng.uniform(horizon + 0.1 * rh, y0 + rh * 1.05)
            depth = (bottom - horizon) / max(1.0, y0 + rh - horizon)
            if source != 'surface' and rng.random() < o.anywhere:
                # Hanging from the ceiling, on a wall: anywhere in the view, any size.
                bottom, depth = rng.uniform(y0 + 0.15 * rh, y0 + rh), rng.uniform(0.25, 1.0)
            if source == 'surface':
                self._surface(out, image, rng, (y0, x0, rh, rw), bottom, depth, horizon,
                              void, rim)
                continue
            target_h = max(4, int(rh * rng.uniform(*o.size) * max(0.25, depth)))
            scale = target_h / rgba.shape[0]
            target_w = int(np.clip(rgba.shape[1] * scale * rng.uniform(0.8, 1.25), 3, rw * 0.6))
            cut = cv2.resize(rgba, (target_w, target_h), interpolation=cv2.INTER_AREA
                             if scale < 1 else cv2.INTER_LINEAR).astype(np.float32)
            if rng.random() < 0.5:
                cut = cut[:, ::-1]
            top = int(round(bottom)) - target_h
            left = int(rng.integers(x0 - target_w // 3, x0 + rw - 2 * target_w // 3))
            ys = slice(max(top, y0), min(top + target_h, y0 + rh))
            xs = slice(max(left, x0), min(left + target_w, x0 + rw))
            if ys.stop - ys.start < 2 or xs.stop - xs.start < 2:
                continue
            cut = cut[ys.start - top:ys.stop - top, xs.start - left:xs.stop - left]
            rgb, alpha = cut[..., :3], cut[..., 3] / 255.0
            hard = alpha > 0.5
            if hard.sum() < 4:
                continue
            under = out[ys, xs]
            t = rng.uniform(*o.colour_match)
            gain = (under.mean((0, 1)) + 1) / (rgb[hard].mean(0) + 1)
            rgb = np.clip(rgb * (1 - t + t * gain), 0, 255)
            sigma = rng.uniform(*o.blur)
            if sigma > 0.3:
                rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
            rgb = rgb + rng.normal(0, sigma_noise + 0.5, rgb.shape).astype(np.float32)
            soft = cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), rng.uniform(*o.feather))
            _blend(out, ys, xs, rgb, soft * rng.uniform(*o.opacity), void, rim)
        rim &= ~void
        return np.clip(out, 0, 255).astype(np.uint8), void, rim

    def _surface(self, out, image, rng, region, bottom, depth, horizon, void, rim):
        """Change a floor patch of ``out`` in place (see :func:`surface_change`)."""
        y0, x0, rh, rw = region
        w = int(np.clip(rw * rng.uniform(0.12, 0.55) * max(0.3, depth), 6, rw))
        h = int(np.clip(w * rng.uniform(0.2, 0.5), 4, rh))
        top = int(min(round(bottom), y0 + rh)) - h
        top = max(top, y0)
        # On the lit floor rather than in the dark: the brightest of a few places.
        lefts = rng.integers(x0, max(x0 + 1, x0 + rw - w), 4)
        left = int(max(lefts, key=lambda v: image[top:top + h, v:v + w].mean()))
        h, w = min(h, y0 + rh - top), min(w, x0 + rw - left)
        if h < 3 or w < 3:
            return
        patch, alpha = surface_change(image, rng, (top, left, h, w), mirror_top=int(horizon))
        ys, xs = slice(top, top + h), slice(left, left + w)
        _blend(out, ys, xs, patch, cv2.GaussianBlur(alpha, (0, 0), rng.uniform(1.0, 4.0)),
               void, rim)


def _blend(out, ys, xs, rgb, soft, void, rim):
    """Blend ``rgb`` into ``out[ys, xs]`` by ``soft``; mark its void core and rim (in place).

    A pasted pixel the place's own colours hide is not an anomaly to learn:
    only what the paste visibly changed is void, the rest of it is left out.
    """
    under = out[ys, xs]
    blended = under * (1 - soft[..., None]) + rgb * soft[..., None]
    visible = np.abs(blended - under).sum(-1) > VISIBLE
    out[ys, xs] = blended
    core = soft > 0.45
    void[ys, xs] |= core & visible
    rim[ys, xs] |= (soft > 0.08) & ~(core & visible)
