"""Anomalies of the synthetic world, built from decals, sprites and boxes.

``place(type_name, rng, scene, z, x, next_id)`` returns a
:class:`Placement` with the primitives to add to the scene around
``(x, z)``; every anomaly pixel carries an instance id. Global anomalies
(defects, mist, darkness, dust) are not placed: they are frame effects
(:mod:`.effects`).
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

import numpy as np

from . import textures as tx
from .canvas import Canvas
from .catalog import anomaly_type
from .primitives import Box
from .primitives import Decal
from .primitives import Sprite


@dataclasses.dataclass
class Placement:
    """Primitives making up one placed anomaly, and the instance ids it used."""

    decals: list = dataclasses.field(default_factory=list)
    sprites: list = dataclasses.field(default_factory=list)
    boxes: list = dataclasses.field(default_factory=list)
    instances: list = dataclasses.field(default_factory=list)


def _shade(rgb, k):
    return tuple(float(np.clip(c * k, 0, 1)) for c in rgb)


def _blob(rng, size_px, roughness=0.35):
    """Return a smooth random blob mask (float32 in [0, 1]) of ``size_px`` (h, w)."""
    h, w = size_px
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2)
    noise = tx.fractal_noise(rng, (h, w), max(h, w) / 2.5, 3)
    field = 1.0 - r + roughness * (noise - 0.5)
    return np.clip(field * 6, 0, 1)


# --- the anomaly types ----------------------------------------------------------------------


def _water(rng, scene, z, x, ids, glossy=1.0, tint=(0.16, 0.18, 0.2)):
    w, length = rng.uniform(0.5, 1.6), rng.uniform(0.6, 2.2)
    ppm = 120
    shape = (int(length * ppm), int(w * ppm))
    blob = _blob(rng, shape, 0.8)
    ident = next(ids)
    rgba = np.zeros((*shape, 4), np.uint8)
    rgba[..., :3] = (np.asarray(tint) * 255).astype(np.uint8)
    rgba[..., 3] = (blob * 255 * rng.uniform(0.3, 0.6)).astype(np.uint8)
    idmap = np.where(blob > 0.5, ident, 0).astype(np.uint16)
    decal = Decal('floor', (x, z), (w, length), rgba, angle=rng.uniform(-0.6, 0.6), ids=idmap,
                  gloss=glossy, sharpness=1.0)
    return Placement(decals=[decal], instances=[ident])


def _wet(rng, scene, z, x, ids):
    placement = _water(rng, scene, z, x, ids, glossy=1.0, tint=(0.12, 0.12, 0.12))
    decal = placement.decals[0]
    # Under a headlamp, wet rock shows as dark patches full of tiny glints.
    h, w = decal.rgba.shape[:2]
    glints = rng.random((h, w)) > 0.985
    inside = decal.ids > 0
    decal.rgba[..., 3] = np.where(inside, 200, decal.rgba[..., 3])
    decal.rgba[glints & inside, :3] = 255
    return placement


def _random_curve(rng, start, n, step, turn):
    pts = [np.asarray(start, np.float64)]
    heading = rng.uniform(0, 2 * np.pi)
    for _ in range(n):
        heading += rng.normal(0, turn)
        pts.append(pts[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
    return np.array(pts)


def _cable(rng, scene, z, x, ids):
    size = rng.uniform(1.0, 2.0)
    canvas = Canvas(size, size, 250, flip_y=False)
    ident = next(ids)
    colour = [(0.05, 0.05, 0.05), (0.85, 0.85, 0.82), (0.15, 0.15, 0.6),
              (0.55, 0.55, 0.55)][rng.integers(4)]
    for _ in range(rng.integers(2, 4)):
        pts = _random_curve(rng, (size / 2, size / 2), 70, size / 40, 0.35)
        pts = np.clip(pts, 0.03, size - 0.03)
        th = rng.uniform(0.01, 0.02)
        canvas.line(pts, _shade(colour, 0.7), th * 1.3, ident=ident)
        canvas.line(pts, colour, th)
    rgba, idmap = canvas.finish()
    decal = Decal('floor', (x, z), (size, size), rgba, angle=rng.uniform(0, np.pi), ids=idmap)
    return Placement(decals=[decal], instances=[ident])


def _hanging_cable(rng, scene, z, x, ids):
    height = scene.height if scene.shape == 'box' else scene.axis_height + scene.radius * 0.9
    end = rng.uniform(0.05, 0.8)
    width = 0.6
    canvas = Canvas(width, height, 150)
    ident = next(ids)
    n = 40
    ys = np.linspace(height, end, n)
    sway = np.cumsum(rng.normal(0, 0.004, n)) + width / 2
    sway += np.sin(np.linspace(0, np.pi, n)) * rng.uniform(-0.12, 0.12)
    pts = np.stack([np.clip(sway, 0.02, width - 0.02), ys], 1)
    colour = [(0.05, 0.05, 0.05), (0.75, 0.75, 0.72), (0.2, 0.2, 0.22)][rng.integers(3)]
    canvas.line(pts, colour, rng.uniform(0.008, 0.018), ident=ident)
    if rng.random() < 0.6:
        canvas.ellipse(pts[-1] + [0, -0.04], (0.035, 0.05), 0, colour, ident=ident)
    rgba, idmap = canvas.finish()
    sprite = Sprite(x, z, width, height, rgba, yaw=rng.uniform(-0.4, 0.4), ids=idmap)
    return Placement(sprites=[sprite], instances=[ident])


def _cellophane(rng, scene, z, x, ids):
    ident = next(ids)
    if rng.random() < 0.5:
        size = rng.uniform(0.8, 1.5)
        canvas = Canvas(size, size, 160, flip_y=False)
    else:
        size = rng.uniform(0.9, 1.6)
        canvas = Canvas(size, size, 120)
    centre = np.array([size / 2, size / 2])
    ang = np.sort(rng.uniform(0, 2 * np.pi, 14))
    rad = size / 2 * rng.uniform(0.55, 0.98, 14)
    outline = centre + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)
    canvas.poly(outline, (0.92, 0.93, 0.95), alpha=rng.uniform(0.18, 0.32), ident=ident)
    for _ in range(rng.integers(8, 18)):
        a, b = outline[rng.integers(len(outline))], centre + rng.normal(0, size / 6, 2)
        canvas.line([a, (a + b) / 2 + rng.normal(0, size / 20, 2), b], (1, 1, 1),
                    rng.uniform(0.003, 0.008), alpha=rng.uniform(0.5, 0.9))
    rgba, idmap = canvas.finish()
    if not canvas.flip_y:
        decal = Decal('floor', (x, z), (size, size), rgba, angle=rng.uniform(0, np.pi),
                      ids=idmap, gloss=0.8, sharpness=0.9)
        return Placement(decals=[decal], instances=[ident])
    bottom = rng.uniform(0.3, max(0.4, scene.height - size - 0.2)) if scene.shape == 'box' \
        else 0.5
    sprite = Sprite(x, z, size, size, rgba, bottom=bottom, yaw=rng.uniform(-0.5, 0.5),
                    ids=idmap, emissive=0.25)
    return Placement(sprites=[sprite], instances=[ident])


def _rug(rng, scene, z, x, ids):
    w, length = rng.uniform(0.6, 1.3), rng.uniform(1.6, 3.5)
    canvas = Canvas(w, length, 120, flip_y=False)
    ident = next(ids)
    palette = rng.uniform(0.1, 0.9, (4, 3)).astype(float)
    canvas.poly([(0, 0), (w, 0), (w, length), (0, length)], palette[0], ident=ident)
    border = 0.06
    canvas.poly([(border, border), (w - border, border), (w - border, length - border),
                 (border, length - border)], palette[1])
    cell = rng.uniform(0.12, 0.3)
    for i, zz in enumerate(np.arange(border + cell / 2, length - border, cell)):
        for j, xx in enumerate(np.arange(border + cell / 2, w - border, cell)):
            c = palette[2 + (i + j) % 2]
            r = cell * 0.45
            canvas.poly([(xx, zz - r), (xx + r, zz), (xx, zz + r), (xx - r, zz)], c)
    rgba, idmap = canvas.finish()
    noise = tx.fractal_noise(rng, rgba.shape[:2], 8, 2)
    rgba[..., :3] = (rgba[..., :3] * (0.85 + 0.25 * noise[..., None])).clip(0, 255)
    decal = Decal('floor', (x, z), (w, length), rgba, angle=rng.uniform(-0.15, 0.15), ids=idmap,
                  gloss=0.0)
    return Placement(decals=[decal], instances=[ident])


def _person(rng, canvas, ident, cx):
    trousers = [(0.15, 0.2, 0.35), (0.08, 0.08, 0.1), (0.6, 0.55, 0.45),
                (0.3, 0.3, 0.32)][rng.integers(4)]
    shirt = tuple(rng.uniform(0.1, 0.9, 3))
    skin = [(0.85, 0.65, 0.5), (0.55, 0.38, 0.28), (0.95, 0.78, 0.65)][rng.integers(3)]
    shoes = [(0.9, 0.9, 0.9), (0.1, 0.1, 0.1), (0.35, 0.2, 0.1)][rng.integers(3)]
    stride = rng.uniform(0.0, 0.18)
    hip = rng.uniform(0.85, 0.98)
    for sign in (-1, 1):
        foot = cx + sign * (0.07 + stride / 2)
        canvas.poly([(cx + sign * 0.02, hip), (cx + sign * 0.16, hip), (foot + sign * 0.05, 0.08),
                     (foot - sign * 0.05, 0.08)], _shade(trousers, 1 + 0.1 * sign), ident=ident)
        canvas.poly([(foot - 0.07, 0.0), (foot + 0.07, 0.0), (foot + 0.06, 0.09),
                     (foot - 0.06, 0.09)], shoes, ident=ident)
    shoulder = hip + rng.uniform(0.5, 0.6)
    canvas.poly([(cx - 0.2, hip - 0.05), (cx + 0.2, hip - 0.05), (cx + 0.22, shoulder),
                 (cx - 0.22, shoulder)], shirt, ident=ident)
    for sign in (-1, 1):
        canvas.poly([(cx + sign * 0.2, shoulder), (cx + sign * 0.27, shoulder - 0.05),
                     (cx + sign * 0.26, hip - 0.1), (cx + sign * 0.2, hip - 0.1)],
                    _shade(shirt, 0.85), ident=ident)
        canvas.ellipse((cx + sign * 0.235, hip - 0.13), (0.035, 0.05), 0, skin, ident=ident)
    canvas.ellipse((cx, shoulder + 0.14), (0.085, 0.11), 0, skin, ident=ident)
    canvas.ellipse((cx, shoulder + 0.2), (0.09, 0.06), 0, tuple(rng.uniform(0.05, 0.4, 3)),
                   ident=ident)


def _human(rng, scene, z, x, ids):
    placement = Placement()
    for k in range(1 if rng.random() < 0.75 else 2):
        ident = next(ids)
        canvas = Canvas(0.6, 1.9, 160)
        _person(rng, canvas, ident, 0.3)
        rgba, idmap = canvas.finish()
        sprite = Sprite(x + k * rng.uniform(0.5, 0.9) * rng.choice([-1, 1]),
                        z + k * rng.uniform(0.3, 1.5), 0.6, 1.9, rgba,
                        yaw=rng.uniform(-0.3, 0.3), ids=idmap)
        placement.sprites.append(sprite)
        placement.instances.append(ident)
    return placement


def _screws(rng, scene, z, x, ids):
    size = rng.uniform(0.3, 0.6)
    canvas = Canvas(size, size, 500, flip_y=False)
    placement = Placement()
    metal = [(0.15, 0.15, 0.17), (0.3, 0.3, 0.32), (0.45, 0.38, 0.25)]
    for _ in range(rng.integers(25, 60)):
        ident = next(ids)
        p = rng.uniform(0.03, size - 0.03, 2)
        c = metal[rng.integers(3)]
        if rng.random() < 0.7:
            length = rng.uniform(0.03, 0.07)
            a = rng.uniform(0, np.pi)
            d = np.array([np.cos(a), np.sin(a)]) * length / 2
            canvas.line([p - d, p + d], _shade(c, 0.6), rng.uniform(0.006, 0.011), ident=ident)
            canvas.ellipse(p - d, (0.009, 0.009), 0, c, ident=ident)
        else:
            r = rng.uniform(0.009, 0.018)
            canvas.ellipse(p, (r, r), 0, c, ident=ident)
            canvas.ellipse(p, (r * 0.4, r * 0.4), 0, _shade(c, 0.3))
        placement.instances.append(ident)
    rgba, idmap = canvas.finish()
    placement.decals.append(Decal('floor', (x, z), (size, size), rgba,
                                  angle=rng.uniform(0, np.pi), ids=idmap))
    return placement


def _shadow(x, z, w, length, strength=0.45, angle=0.0):
    size = 64
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.sqrt(((xx - size / 2) / (size / 2)) ** 2 + ((yy - size / 2) / (size / 2)) ** 2)
    alpha = np.clip(1 - r, 0, 1) ** 1.5 * strength
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 3] = (alpha * 255).astype(np.uint8)
    return Decal('floor', (x, z), (w, length), rgba, angle=angle, darken_only=True)


def _boxes(rng, scene, z, x, ids):
    placement = Placement()
    base = np.array([0.66, 0.5, 0.32])
    for k in range(rng.integers(1, 4)):
        ident = next(ids)
        size = (rng.uniform(0.3, 0.65), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.6))
        bx, bz = x + rng.uniform(-0.4, 0.4) * k, z + rng.uniform(-0.3, 0.6) * k
        colour = tuple(base * rng.uniform(0.8, 1.15) * [1, rng.uniform(0.9, 1.05), 1])
        placement.boxes.append(Box(bx, bz, size, colour, yaw=rng.uniform(-0.6, 0.6),
                                   instance=ident, tape=rng.random() < 0.7,
                                   texture_seed=int(rng.integers(1 << 30))))
        placement.decals.append(_shadow(bx, bz, size[0] * 1.5, size[2] * 1.5))
        placement.instances.append(ident)
    return placement


def _door(rng, scene, z, x, ids):
    near = [(side, dz) for side, dz in scene.doors
            if abs(((dz - z + 12) % 24) - 12) < 6] or [(rng.choice(['left', 'right']), z)]
    side, dz = near[rng.integers(len(near))]
    dz = z + ((dz - z + 12) % 24) - 12  # the door copy nearest to z (atlases tile)
    ident = next(ids)
    width, height = rng.uniform(0.9, 1.05), rng.uniform(2.05, 2.2)
    inner = rng.uniform(0.05, 0.8)
    hole = np.zeros((64, 64, 4), np.uint8)
    hole[..., :3] = int(inner * 255)
    hole[..., 3] = 255
    hole_ids = np.full((64, 64), ident, np.uint16)
    wall = Decal(side, (dz, height / 2), (width, height), hole, ids=hole_ids)
    opening = np.radians(rng.uniform(50, 100))
    wall_x = -scene.width / 2 if side == 'left' else scene.width / 2
    inward = 1 if side == 'left' else -1
    tangent = np.array([inward * np.sin(opening), np.cos(opening)])
    hinge = np.array([wall_x, dz - width / 2])
    centre = hinge + tangent * width / 2
    yaw = float(np.arctan2(tangent[1], tangent[0]))
    colour = [(0.6, 0.38, 0.18), (0.8, 0.8, 0.78), (0.35, 0.45, 0.55)][rng.integers(3)]
    canvas = Canvas(width, height, 80)
    canvas.poly([(0, 0), (width, 0), (width, height), (0, height)], colour, ident=ident)
    canvas.line([(width * 0.85, 1.0), (width * 0.75, 1.0)], (0.2, 0.2, 0.2), 0.02)
    rgba, idmap = canvas.finish()
    panel = Sprite(float(centre[0]), float(centre[1]), width, height, rgba, yaw=yaw, ids=idmap)
    return Placement(decals=[wall], sprites=[panel], instances=[ident])


def _cones(rng, scene, z, x, ids):
    placement = Placement()
    n = rng.integers(1, 5)
    spacing = rng.uniform(0.5, 1.2)
    for k in range(n):
        ident = next(ids)
        h = rng.uniform(0.35, 0.75)
        canvas = Canvas(0.4, h, 260)
        base_w = 0.36
        orange = (1.0, rng.uniform(0.3, 0.45), 0.05)
        canvas.poly([(0.02, 0), (0.38, 0), (0.38, 0.04), (0.02, 0.04)], (0.15, 0.15, 0.15),
                    ident=ident)
        canvas.poly([(0.2 - base_w * 0.35, 0.04), (0.2 + base_w * 0.35, 0.04), (0.215, h),
                     (0.185, h)], orange, ident=ident)
        for band in (0.45, 0.7):
            y0, y1 = h * band, h * band + h * 0.1
            w0, w1 = base_w * 0.35 * (1 - band), base_w * 0.35 * (1 - band - 0.1)
            canvas.poly([(0.2 - w0, y0), (0.2 + w0, y0), (0.2 + w1, y1), (0.2 - w1, y1)],
                        (0.95, 0.95, 0.95))
        rgba, idmap = canvas.finish()
        cx = x + (k - n / 2) * spacing * rng.uniform(0.6, 1.2) * rng.choice([-1, 1])
        cz = z + rng.uniform(-0.3, 0.6) * k
        placement.sprites.append(Sprite(cx, cz, 0.4, h, rgba, ids=idmap))
        placement.decals.append(_shadow(cx, cz, 0.5, 0.5))
        placement.instances.append(ident)
    return placement


def _tape(rng, scene, z, x, ids):
    ident = next(ids)
    colours = [((0.05, 0.05, 0.05), (0.95, 0.8, 0.05)), ((0.9, 0.1, 0.1), (0.95, 0.95, 0.95)),
               ((0.05, 0.05, 0.05), (0.95, 0.95, 0.95))][rng.integers(3)]
    if rng.random() < 0.65:
        width = scene.width if scene.shape == 'box' else scene.width * 0.9
        height = 0.5
        canvas = Canvas(width, height, 150)
        n = 60
        xs = np.linspace(0, width, n)
        sag = rng.uniform(0.05, 0.3)
        ys = height - 0.05 - sag * np.sin(np.linspace(0, np.pi, n))
        band = rng.uniform(0.04, 0.08)
        stripe = rng.uniform(0.08, 0.15)
        for i in range(n - 1):
            c = colours[int(xs[i] / stripe) % 2]
            canvas.line([(xs[i], ys[i]), (xs[i + 1], ys[i + 1])], c, band, ident=ident)
        rgba, idmap = canvas.finish()
        sprite = Sprite(0.0, z, width, height, rgba, bottom=rng.uniform(0.1, 0.9), ids=idmap)
        return Placement(sprites=[sprite], instances=[ident])
    width = scene.width * rng.uniform(0.5, 0.95)
    band = rng.uniform(0.05, 0.1)
    canvas = Canvas(width, band * 3, 200, flip_y=False)
    stripe = rng.uniform(0.06, 0.12)
    for k, x0 in enumerate(np.arange(0, width, stripe)):
        canvas.poly([(x0, band), (x0 + stripe, band), (x0 + stripe, 2 * band), (x0, 2 * band)],
                    colours[k % 2], ident=ident)
    rgba, idmap = canvas.finish()
    decal = Decal('floor', (x, z), (width, band * 3), rgba, angle=rng.uniform(-0.3, 0.3),
                  ids=idmap)
    return Placement(decals=[decal], instances=[ident])


def _trolley(rng, scene, z, x, ids):
    ident = next(ids)
    w, h = rng.uniform(0.7, 1.0), rng.uniform(0.8, 1.0)
    canvas = Canvas(w, h, 200)
    frame = [(0.7, 0.7, 0.72), (0.2, 0.2, 0.22), (0.2, 0.3, 0.6)][rng.integers(3)]
    shelf = _shade(frame, rng.uniform(0.7, 1.1))
    for y in (0.18, h * 0.55, h - 0.05):
        canvas.poly([(0.02, y - 0.03), (w - 0.02, y - 0.03), (w - 0.02, y), (0.02, y)], shelf,
                    ident=ident)
    for xx in (0.04, w - 0.04):
        canvas.line([(xx, 0.1), (xx, h + 0.0)], frame, 0.025, ident=ident)
    for xx in (0.08, w - 0.08):
        canvas.ellipse((xx, 0.05), (0.05, 0.05), 0, (0.05, 0.05, 0.05), ident=ident)
    if rng.random() < 0.6:
        canvas.poly([(0.15, h * 0.55), (0.45, h * 0.55), (0.45, h * 0.8), (0.15, h * 0.8)],
                    tuple(rng.uniform(0.2, 0.9, 3)), ident=ident)
    rgba, idmap = canvas.finish()
    sprite = Sprite(x, z, w, h, rgba, yaw=rng.uniform(-0.5, 0.5), ids=idmap)
    return Placement(sprites=[sprite], decals=[_shadow(x, z, w * 1.2, 0.8)], instances=[ident])


def _debris(rng, scene, z, x, ids):
    placement = Placement()
    for _ in range(rng.integers(4, 10)):
        ident = next(ids)
        px, pz = x + rng.uniform(-0.5, 0.5), z + rng.uniform(-0.4, 0.6)
        kind = rng.integers(3)
        if kind == 0:      # a paper cup, standing or fallen
            w, h = rng.uniform(0.08, 0.12), rng.uniform(0.1, 0.16)
            canvas = Canvas(w, h, 400)
            body = (0.95, 0.95, 0.93)
            canvas.poly([(w * 0.15, 0), (w * 0.85, 0), (w, h), (0, h)], body, ident=ident)
            canvas.poly([(w * 0.08, h * 0.4), (w * 0.92, h * 0.4), (w * 0.95, h * 0.6),
                         (w * 0.05, h * 0.6)], tuple(rng.uniform(0.1, 0.9, 3)), ident=ident)
            rgba, idmap = canvas.finish()
            placement.sprites.append(Sprite(px, pz, w, h, rgba, ids=idmap))
        elif kind == 1:    # a bottle
            w, h = rng.uniform(0.06, 0.08), rng.uniform(0.18, 0.28)
            canvas = Canvas(w, h, 300)
            col = tuple(rng.uniform(0.3, 0.9, 3))
            canvas.poly([(0, 0), (w, 0), (w, h * 0.7), (w * 0.65, h * 0.85), (w * 0.65, h),
                         (w * 0.35, h), (w * 0.35, h * 0.85), (0, h * 0.7)], col, alpha=0.85,
                        ident=ident)
            rgba, idmap = canvas.finish()
            placement.sprites.append(Sprite(px, pz, w, h, rgba, ids=idmap, emissive=0.1))
        else:              # crumpled paper / wrapper on the floor
            s = rng.uniform(0.12, 0.35)
            canvas = Canvas(s, s, 300, flip_y=False)
            ang = np.sort(rng.uniform(0, 2 * np.pi, 9))
            rad = s / 2 * rng.uniform(0.4, 0.95, 9)
            pts = s / 2 + np.stack([np.cos(ang) * rad, np.sin(ang) * rad], 1)
            canvas.poly(pts, tuple(rng.uniform(0.5, 1.0, 3)), ident=ident)
            rgba, idmap = canvas.finish()
            placement.decals.append(Decal('floor', (px, pz), (s, s), rgba, ids=idmap,
                                          angle=rng.uniform(0, np.pi)))
        placement.instances.append(ident)
    return placement


def _sawdust(rng, scene, z, x, ids):
    w, length = rng.uniform(0.5, 1.1), rng.uniform(0.5, 1.1)
    ppm = 250
    shape = (int(length * ppm), int(w * ppm))
    blob = _blob(rng, shape, 0.9)
    grain = rng.random(shape, dtype=np.float32)
    ident = next(ids)
    base = np.array([0.85, 0.68, 0.45]) * rng.uniform(0.85, 1.1)
    rgba = np.zeros((*shape, 4), np.uint8)
    rgba[..., :3] = np.clip(base * (0.75 + 0.4 * grain[..., None]) * 255, 0, 255)
    rgba[..., 3] = np.clip(blob * 1.3 * 255, 0, 255).astype(np.uint8)
    idmap = np.where(blob > 0.4, ident, 0).astype(np.uint16)
    angle = rng.uniform(-0.3, 0.3)
    decal = Decal('floor', (x, z), (w, length), rgba, angle=angle, ids=idmap)
    # The heap itself: a low mound facing the robot.
    height = rng.uniform(0.06, 0.16)
    canvas = Canvas(w, height, 300)
    xs = np.linspace(0, w, 30)
    profile = height * np.sin(np.linspace(0, np.pi, 30)) ** 0.7 * rng.uniform(0.7, 1.0, 30)
    canvas.poly(np.concatenate([np.stack([xs, profile], 1), [(w, 0), (0, 0)]]),
                tuple(base * 0.95), ident=ident)
    mound, mound_ids = canvas.finish()
    grain = rng.random(mound.shape[:2], dtype=np.float32)
    mound[..., :3] = np.clip(mound[..., :3] * (0.8 + 0.35 * grain[..., None]), 0, 255)
    sprite = Sprite(x, z + length * 0.1, w * 0.9, height, mound, ids=mound_ids)
    return Placement(decals=[decal], sprites=[sprite], instances=[ident])


def _foam(rng, scene, z, x, ids):
    placement = Placement()
    for k in range(rng.integers(1, 4)):
        ident = next(ids)
        size = (rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.35), rng.uniform(0.2, 0.6))
        fx, fz = x + rng.uniform(-0.5, 0.5) * k, z + rng.uniform(-0.3, 0.5) * k
        colour = (0.97, 0.97, 0.95) if rng.random() < 0.7 else (0.95, 0.9, 0.6)
        placement.boxes.append(Box(fx, fz, size, colour, yaw=rng.uniform(0, np.pi),
                                   instance=ident, tape=False,
                                   texture_seed=int(rng.integers(1 << 30))))
        placement.decals.append(_shadow(fx, fz, size[0] * 1.6, size[2] * 1.6, 0.35))
        placement.instances.append(ident)
    return placement


def _chair(canvas, rng, ident, colour, table=False):
    w, h = canvas.w / canvas.ppm, canvas.h / canvas.ppm
    leg = 0.025
    if table:
        top = rng.uniform(0.7, 0.78)
        canvas.poly([(0, top - 0.04), (w, top - 0.04), (w, top), (0, top)],
                    tuple(rng.uniform(0.5, 0.95, 3)), ident=ident)
        for xx in (0.04, w - 0.04):
            canvas.line([(xx, 0), (xx, top - 0.04)], colour, leg, ident=ident)
        return
    seat = rng.uniform(0.42, 0.48)
    for xx in (0.05, w - 0.05):
        canvas.line([(xx, 0), (xx, seat)], colour, leg, ident=ident)
        canvas.line([(xx + (0.03 if xx < w / 2 else -0.03), 0), (xx, seat)],
                    _shade(colour, 0.8), leg, ident=ident)
    canvas.poly([(0.02, seat - 0.03), (w - 0.02, seat - 0.03), (w - 0.02, seat + 0.02),
                 (0.02, seat + 0.02)], _shade(colour, 1.1), ident=ident)
    canvas.poly([(0.04, seat + 0.18), (w - 0.04, seat + 0.18), (w - 0.04, h - 0.02),
                 (0.04, h - 0.02)], colour, ident=ident)
    for xx in (0.05, w - 0.05):
        canvas.line([(xx, seat), (xx, h - 0.02)], colour, leg, ident=ident)


def _clutter(rng, scene, z, x, ids):
    placement = Placement()
    colour = [(0.25, 0.45, 0.25), (0.3, 0.3, 0.32), (0.1, 0.1, 0.1),
              (0.6, 0.6, 0.62)][rng.integers(4)]
    for k in range(rng.integers(1, 4)):
        ident = next(ids)
        table = rng.random() < 0.3
        w, h = (rng.uniform(0.7, 1.2), 0.8) if table else (rng.uniform(0.42, 0.55), 0.88)
        canvas = Canvas(w, h, 200)
        _chair(canvas, rng, ident, colour, table)
        rgba, idmap = canvas.finish()
        cx, cz = x + rng.uniform(-0.8, 0.8) * (k > 0), z + k * rng.uniform(0.4, 1.5)
        placement.sprites.append(Sprite(cx, cz, w, h, rgba, yaw=rng.uniform(-0.8, 0.8),
                                        ids=idmap))
        placement.decals.append(_shadow(cx, cz, w * 1.1, 0.6, 0.3))
        placement.instances.append(ident)
    return placement


def _roots(rng, scene, z, x, ids):
    placement = Placement()
    top = scene.axis_height + scene.radius * 0.95 if scene.shape == 'tunnel' else scene.height
    for _ in range(rng.integers(2, 5)):
        ident = next(ids)
        length = rng.uniform(0.9, top - 0.1)
        width = rng.uniform(0.5, 1.0)
        canvas = Canvas(width, length, 150)
        colour = (0.62, 0.55, 0.45)

        def grow(p, angle, size, depth):
            if depth == 0 or size < 0.03:
                return
            end = p + size * np.array([np.sin(angle), -np.cos(angle)])
            canvas.line([p, end], colour, 0.006 + 0.006 * depth, ident=ident)
            for _ in range(2):
                grow(end, angle + rng.normal(0, 0.5), size * rng.uniform(0.5, 0.8), depth - 1)

        grow(np.array([width / 2, length]), rng.normal(0, 0.2), length * 0.45, 5)
        rgba, idmap = canvas.finish()
        placement.sprites.append(Sprite(x + rng.uniform(-0.6, 0.6), z + rng.uniform(-0.5, 0.5),
                                        width, length, rgba, bottom=top - length,
                                        yaw=rng.uniform(-0.5, 0.5), ids=idmap))
        placement.instances.append(ident)
    return placement


PLACERS = {
    'water': _water, 'cable': _cable, 'hanging_cable': _hanging_cable,
    'cellophane': _cellophane, 'floor': _rug, 'human': _human, 'screws': _screws,
    'boxes': _boxes, 'door': _door, 'cones': _cones, 'tape': _tape, 'trolley': _trolley,
    'debris': _debris, 'sawdust': _sawdust, 'foam': _foam, 'clutter': _clutter,
    'roots': _roots, 'wet': _wet,
}


def place(type_name, rng, scene, z, x, ids):
    """Create the primitives of one anomaly of ``type_name`` near ``(x, z)``.

    Args:
        type_name: a local anomaly type (see :mod:`.catalog`).
        rng: numpy Generator (the placement's own stream).
        scene: the :class:`~.scene.Scene` it goes into.
        z, x: where, in metres.
        ids: an iterator of fresh instance ids.

    """
    kind = anomaly_type(type_name)
    if kind.is_global:
        raise ValueError(f'{type_name} is a global anomaly; it is a frame effect, not placed')
    return PLACERS[type_name](rng, scene, z, x, ids)
