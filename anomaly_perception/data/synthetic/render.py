"""Ray-cast renderer of the synthetic world (numpy + OpenCV, CPU only).

One ray per pixel is intersected with the scene's shell (a corridor box or a
tunnel vault with a floor), textured from mip-mapped atlases, lit by a
simple per-environment model, mirrored in glossy floors, and composited
with the scene's decals, sprites and boxes with a depth test. Labels come
out of the same pass: semantic class, anomaly mask and instance id per
pixel. Camera effects (exposure, noise, blur, JPEG) are applied afterwards
by :func:`camera_effects`.
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
import functools

import cv2
import numpy as np

from .catalog import SEMANTIC_IDS
from .catalog import VOID
from .textures import remap_points

FLOOR, CEILING, LEFT, RIGHT, END, VAULT = range(6)
_FAR = 1e4


@dataclasses.dataclass
class RenderOutput:
    """What one render produces (all ``[H, W]`` unless stated).

    Attributes:
        radiance: float32 ``[H, W, 3]`` linear RGB (before camera effects).
        semantic: uint8 class ids (:data:`~.catalog.SEMANTIC_CLASSES`),
            255 where an anomaly covers the scene or outside a fisheye circle.
        instances: uint16 anomaly instance ids, 0 = none.
        depth: float32 ray distance (m).
        valid: bool, False outside a fisheye image circle.
        background: uint8 class of the surface behind any anomaly.

    """

    radiance: np.ndarray
    semantic: np.ndarray
    instances: np.ndarray
    depth: np.ndarray
    valid: np.ndarray = None
    background: np.ndarray = None


def _shell_box(scene, o, d):
    w2, h, length = scene.width / 2, scene.height, scene.length
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        # One candidate per axis: the wall the ray is heading for on that axis.
        ty = np.where(dy < 0, -o[1], h - o[1]) / dy
        tx = np.where(dx < 0, -w2 - o[0], w2 - o[0]) / dx
        tz = np.where(dz > 0, (length - o[2]) / dz, np.inf)
    ty[~np.isfinite(ty) | (ty < 0)] = np.inf
    tx[~np.isfinite(tx) | (tx < 0)] = np.inf
    t = np.minimum(np.minimum(ty, tx), tz)
    surf = np.full(d.shape[0], END, np.int8)
    on_x = tx <= t
    surf[on_x] = np.where(dx[on_x] < 0, LEFT, RIGHT)
    on_y = (ty <= t) & ~on_x
    surf[on_y] = np.where(dy[on_y] < 0, FLOOR, CEILING)
    return t, surf


def _shell_tunnel(scene, o, d):
    r, yc = scene.radius, scene.axis_height
    oy = o[1] - yc
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (o[0] * d[:, 0] + oy * d[:, 1])
    c = o[0] ** 2 + oy ** 2 - r * r
    disc = np.maximum(b * b - 4 * a * c, 0)
    with np.errstate(divide='ignore', invalid='ignore'):
        t_vault = (-b + np.sqrt(disc)) / (2 * a)
        t_floor = np.where(d[:, 1] < -1e-6, -o[1] / d[:, 1], np.inf)
        t_end = np.where(d[:, 2] > 1e-6, (scene.length - o[2]) / d[:, 2], np.inf)
    t_vault = np.where(np.isfinite(t_vault) & (t_vault > 0), t_vault, np.inf)
    cand = np.stack([t_floor, t_vault, t_end], 1)
    idx = cand.argmin(1)
    t = cand[np.arange(d.shape[0]), idx]
    surf = np.array([FLOOR, VAULT, END], np.int8)[idx]
    return t, surf


def _surface_coords(scene, surf_id, p):
    """Texture coordinates (u along, v across/down) in metres for hit points ``p``."""
    if surf_id in (FLOOR, CEILING):
        return p[:, 2], p[:, 0] + scene.width / 2
    if surf_id in (LEFT, RIGHT):
        return p[:, 2], scene.height - p[:, 1]
    if surf_id == END:
        return p[:, 0] + scene.width / 2, scene.height - p[:, 1]
    # Tunnel vault: arc length from the left floor edge.
    ang = np.arctan2(p[:, 1] - scene.axis_height, p[:, 0])
    return p[:, 2], (np.pi - ang) * scene.radius


def _normals(scene, surf_id, p):
    if surf_id == FLOOR:
        return np.array([0, 1, 0], np.float32)
    if surf_id == CEILING:
        return np.array([0, -1, 0], np.float32)
    if surf_id == LEFT:
        return np.array([1, 0, 0], np.float32)
    if surf_id == RIGHT:
        return np.array([-1, 0, 0], np.float32)
    if surf_id == END:
        return np.array([0, 0, -1], np.float32)
    n = np.stack([-p[:, 0], scene.axis_height - p[:, 1], np.zeros(len(p), np.float32)], 1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-6)


_DECAL_SURFACE = {'floor': FLOOR, 'left': LEFT, 'right': RIGHT}


def _illumination(scene, surf_id, p, t, d, cam_forward):
    """Light arriving at hit points (scalar per point)."""
    lit = scene.lighting
    n = len(p)
    if lit.headlamp > 0:
        cos = np.clip(d @ cam_forward, 0, 1)
        spot = np.exp(-((1 - cos) / lit.spot_width) ** 2)
        return lit.ambient + lit.headlamp * spot / (1 + (t / lit.falloff_m) ** 2)
    base = np.full(n, lit.level, np.float32)
    if surf_id == FLOOR and scene.ceiling is not None and scene.ceiling.emission is not None:
        u, v = p[:, 2], p[:, 0] + scene.width / 2
        pool = scene.ceiling.emission_at(u, v, blurred=True)
        base *= 0.8 + lit.pools * pool
    elif surf_id in (LEFT, RIGHT):
        base *= 0.62 + 0.38 * np.clip(p[:, 1] / scene.height, 0, 1)
        base *= lit.left_gain if surf_id == LEFT else lit.right_gain
    elif surf_id == CEILING:
        base *= lit.ceiling_gain
    elif surf_id == END:
        base *= lit.end_gain
    return lit.ambient + base


def render(scene, pose, intr):
    """Render the scene seen from ``pose`` with camera ``intr``; see :class:`RenderOutput`."""
    d, valid = pose.rays(intr)
    o = pose.origin
    n_px = d.shape[0]
    if scene.shape == 'tunnel':
        t, surf = _shell_tunnel(scene, o, d)
    else:
        t, surf = _shell_box(scene, o, d)
    t = np.where(np.isfinite(t), t, _FAR).astype(np.float32)
    p = o + d * t[:, None]
    forward = pose.rays(dataclasses.replace(intr, width=1, height=1, fisheye=False))[0][0]

    albedo = np.zeros((n_px, 3), np.float32)
    light = np.zeros(n_px, np.float32)
    emission = np.zeros(n_px, np.float32)
    semantic = np.full(n_px, SEMANTIC_IDS['other'], np.uint8)
    instances = np.zeros(n_px, np.uint16)
    gloss = np.zeros(n_px, np.float32)
    sharp = np.zeros(n_px, np.float32)
    pix_angle = intr.pixel_angle

    for surf_id, tex in scene.textures().items():
        sel = np.flatnonzero(surf == surf_id)
        if sel.size == 0:
            continue
        ps, ts, ds = p[sel], t[sel], d[sel]
        u, v = _surface_coords(scene, surf_id, ps)
        normal = _normals(scene, surf_id, ps)
        cos = np.abs(ds @ normal) if normal.ndim == 1 else np.abs(np.sum(ds * normal, 1))
        footprint = ts * pix_angle / np.maximum(cos, 0.03)
        col = tex.sample(u, v, footprint)
        lab = tex.label_at(u, v)
        lit = _illumination(scene, surf_id, ps, ts, ds, forward)
        if tex.emission is not None:
            emission[sel] = tex.emission_at(u, v) * scene.lighting.lamp_radiance
        if surf_id == FLOOR:
            gloss[sel] = scene.floor_gloss
            sharp[sel] = scene.floor_sharpness
        # Decals lying on this surface.
        for decal in scene.decals:
            if _DECAL_SURFACE.get(decal.surface) != surf_id:
                continue
            a, b = (ps[:, 0], ps[:, 2]) if surf_id == FLOOR else (ps[:, 2], ps[:, 1])
            inside, rgba, ids = decal.sample(a, b)
            if rgba is None:
                continue
            idx = np.flatnonzero(inside)
            alpha = rgba[:, 3:4]
            if decal.darken_only:
                col[idx] *= 1 - alpha
                continue
            col[idx] = col[idx] * (1 - alpha) + rgba[:, :3] * alpha
            gloss_here = gloss[sel[idx]]
            gloss[sel[idx]] = gloss_here * (1 - alpha[:, 0]) + decal.gloss * alpha[:, 0]
            sharp[sel[idx]] = np.maximum(sharp[sel[idx]], decal.sharpness * (alpha[:, 0] > 0.3))
            if ids is not None:   # the decal's id map is its exact mask
                inst, mark = ids, ids > 0
            else:
                inst = np.full(idx.size, decal.instance, np.uint16)
                mark = (alpha[:, 0] >= 0.5) & (inst > 0)
            instances[sel[idx[mark]]] = inst[mark]
        albedo[sel] = col
        light[sel] = lit
        semantic[sel] = lab
    background = semantic.copy()
    semantic[instances > 0] = VOID

    radiance = albedo * light[:, None] + emission[:, None]
    _floor_reflections(scene, o, d, t, p, surf, gloss, sharp, radiance)

    # Upright things, nearest last so they cover what is behind them.
    things = sorted(scene.sprites + scene.boxes,
                    key=lambda obj: -float(np.hypot(obj.x - o[0], obj.z - o[2])))
    things = list(scene.pipes) + things  # endless pipes first: everything is nearer
    for obj in things:
        _composite(scene, obj, o, d, t, radiance, semantic, instances, forward, (pose, intr))

    if scene.shape == 'tunnel':
        far = t >= _FAR * 0.5
        radiance[far] = 0.0
    h, w = intr.height, intr.width
    semantic = semantic.reshape(h, w)
    if not valid.all():
        radiance[~valid] = 0.0
        semantic.reshape(-1)[~valid] = VOID
        instances[~valid] = 0
    background = background.reshape(h, w)
    if not valid.all():
        background.reshape(-1)[~valid] = VOID
    return RenderOutput(radiance.reshape(h, w, 3), semantic, instances.reshape(h, w),
                        t.reshape(h, w), valid.reshape(h, w), background)


def _floor_reflections(scene, o, d, t, p, surf, gloss, sharp, radiance):
    """Mirror the ceiling lights (or the headlamp) in glossy floor areas."""
    sel = np.flatnonzero((surf == FLOOR) & (gloss > 0))
    if sel.size == 0:
        return
    ds = d[sel]
    cos = np.clip(-ds[:, 1], 0, 1)
    k = 1 - cos
    k2 = k * k
    strength = gloss[sel] * (np.float32(0.39) + np.float32(0.96) * k2 * k2 * k)
    if scene.shape == 'tunnel' or scene.ceiling is None or scene.ceiling.emission is None:
        # Wet rock under a headlamp: a glint where the mirrored ray meets the lamp.
        glint = np.exp(-((ds[:, 0] * 6) ** 2)) * np.exp(-((cos - 0.18) * 9) ** 2)
        radiance[sel] += (strength * glint * scene.lighting.headlamp * 2.5)[:, None]
        return
    ps = p[sel]
    with np.errstate(divide='ignore'):
        t2 = (scene.height - ps[:, 1]) / np.maximum(-ds[:, 1], 1e-4)
    hx = ps[:, 0] + ds[:, 0] * t2
    hz = ps[:, 2] + ds[:, 2] * t2
    inside = np.abs(hx) < scene.width / 2
    u, v = hz, hx + scene.width / 2
    tex = scene.ceiling
    s = sharp[sel]
    e = tex.emission_mixed_at(u, v, scene.floor_sharpness)
    other = np.flatnonzero(s != np.float32(scene.floor_sharpness))
    if other.size:   # decals with their own gloss (water): a sharper mirror there
        e[other] = tex.emission_mixed_at(u[other], v[other], 1.0) * s[other] + (
            tex.emission_mixed_at(u[other], v[other], 0.0) * (1 - s[other]))
    e *= inside
    radiance[sel] += (strength * e * scene.lighting.lamp_radiance * 0.55)[:, None]
    # Walls and dark ceiling seen in the mirror tint the floor towards grey.
    radiance[sel] += (strength * 0.12 * scene.lighting.level)[:, None]


def _screen_rows(obj, pose_intr):
    """Pixel indices covered by the object's projected bounding box (None: all pixels)."""
    pose, intr = pose_intr
    if intr.fisheye:
        return None
    px, depth = pose.project(obj.corners(), intr)
    if np.all(depth <= 1e-3):
        return np.zeros(0, np.int64)
    if np.any(depth <= 1e-3):
        return None   # straddles the camera plane: test every pixel
    x0, y0 = np.floor(px.min(0)).astype(int) - 1
    x1, y1 = np.ceil(px.max(0)).astype(int) + 2
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, intr.width), min(y1, intr.height)
    if x0 >= x1 or y0 >= y1:
        return np.zeros(0, np.int64)
    cols = np.arange(x0, x1)
    return (np.arange(y0, y1)[:, None] * intr.width + cols[None, :]).reshape(-1)


def _composite(scene, obj, o, d, t, radiance, semantic, instances, forward, pose_intr):
    from .primitives import Box
    from .primitives import Pipe

    if isinstance(obj, Pipe):
        t_obj = obj.intersect(o, d)
        idx = np.flatnonzero(t_obj < t)
        if idx.size == 0:
            return
        hit = o + d[idx] * t_obj[idx, None]
        nx = (hit[:, 0] - obj.x) / obj.radius
        ny = (hit[:, 1] - obj.y) / obj.radius
        facing = -(d[idx, 0] * nx + d[idx, 1] * ny)
        shade = 0.55 + 0.45 * np.clip(0.3 * nx + 0.8 * ny + 0.5 * facing, 0, 1)
        lit = _object_light(scene, o, d[idx], t_obj[idx], forward)
        radiance[idx] = np.asarray(obj.colour, np.float32) * (shade * lit)[:, None]
        t[idx] = t_obj[idx]
        semantic[idx] = obj.label
        instances[idx] = 0
        return

    if isinstance(obj, Box):
        rows = _screen_rows(obj, pose_intr)
        if rows is None:
            rows = np.arange(d.shape[0])
        if rows.size == 0:
            return
        t_sub, face_sub, local_sub = obj.intersect(o, d[rows])
        hit = t_sub < t[rows]
        if not hit.any():
            return
        idx = rows[hit]
        t_obj = np.full(d.shape[0], np.inf, np.float32)
        t_obj[idx] = t_sub[hit]
        face = np.zeros(d.shape[0], np.int64)
        face[idx] = face_sub[hit]
        local = np.zeros((d.shape[0], 3), np.float32)
        local[idx] = local_sub[hit]
        shade = np.array([0.62, 0.7, 0.55, 1.0, 0.78, 0.6], np.float32)[face[idx]]
        col = np.tile(np.asarray(obj.colour, np.float32), (idx.size, 1))
        loc = local[idx]
        rng = np.random.default_rng(obj.texture_seed)
        grain = rng.random(64).astype(np.float32)
        col *= (0.92 + 0.1 * grain[(np.abs(loc[:, 0] * 97 + loc[:, 2] * 53 + loc[:, 1] * 71)
                                    .astype(int)) % 64])[:, None]
        if obj.tape:
            on_top = face[idx] == 3
            upright = (face[idx] == 4) | (face[idx] == 5)
            tape = (np.abs(loc[:, 0]) < obj.size[0] * 0.08) & (on_top | upright)
            tape &= (on_top | (loc[:, 1] > obj.size[1] / 2 - obj.size[1] * 0.25))
            col[tape] = col[tape] * 0.55 + 0.35
        lit = _object_light(scene, o, d[idx], t_obj[idx], forward)
        radiance[idx] = col * (shade * lit)[:, None]
        t[idx] = t_obj[idx]
        semantic[idx] = VOID if obj.instance else obj.label
        instances[idx] = obj.instance
        return

    rows = _screen_rows(obj, pose_intr)
    if rows is None:
        t_obj, u, v = obj.intersect(o, d)
        cand = np.flatnonzero(t_obj < t)
    else:
        if rows.size == 0:
            return
        t_sub, u_sub, v_sub = obj.intersect(o, d[rows])
        keep = t_sub < t[rows]
        cand = rows[keep]
        t_obj = np.full(d.shape[0], np.inf, np.float32)
        u = np.zeros(d.shape[0], np.float32)
        v = np.zeros(d.shape[0], np.float32)
        t_obj[cand], u[cand], v[cand] = t_sub[keep], u_sub[keep], v_sub[keep]
    if cand.size == 0:
        return
    h, w = obj.rgba.shape[:2]
    mx, my = u[cand] * w - 0.5, v[cand] * h - 0.5
    rgba = remap_points(obj.rgba, mx, my, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT)
    rgba = rgba.astype(np.float32) / 255.0
    alpha = rgba[:, 3]
    keep = alpha > 0.02
    idx, rgba, alpha = cand[keep], rgba[keep], alpha[keep]
    if idx.size == 0:
        return
    vv = v[idx]
    lit = _object_light(scene, o, d[idx], t_obj[idx], forward) * (0.8 + 0.25 * (1 - vv))
    col = rgba[:, :3] * (lit + obj.emissive)[:, None]
    radiance[idx] = radiance[idx] * (1 - alpha[:, None]) + col * alpha[:, None]
    solid = alpha >= 0.5
    if obj.ids is not None:
        ids = remap_points(obj.ids, mx[keep] + 0.5, my[keep] + 0.5, cv2.INTER_NEAREST,
                           cv2.BORDER_CONSTANT)
    else:
        ids = np.full(idx.size, obj.instance, np.uint16)
    sidx = idx[solid]
    t[sidx] = t_obj[sidx]
    semantic[sidx] = np.where(ids[solid] > 0, VOID, obj.label)
    instances[sidx] = ids[solid]


def _object_light(scene, o, d, t, forward):
    lit = scene.lighting
    if lit.headlamp > 0:
        cos = np.clip(d @ forward, 0, 1)
        spot = np.exp(-((1 - cos) / lit.spot_width) ** 2)
        return lit.ambient + lit.headlamp * spot / (1 + (t / lit.falloff_m) ** 2)
    return np.full(len(t), lit.ambient + lit.level * 0.95, np.float32)


# --- camera effects -----------------------------------------------------------------------


@dataclasses.dataclass
class CameraLook:
    """Per-frame photometric settings.

    Attributes:
        exposure: multiplies radiance before clipping.
        white_balance: RGB gains.
        gamma: display gamma applied after clipping.
        noise: sensor noise standard deviation (in [0, 1] units).
        blur_px: motion blur length in pixels (0 = none); blur_angle in rad.
        jpeg_quality: 0 disables JPEG compression artefacts.
        vignette: darkening towards the corners (0..1).
        grayscale: monochrome camera (factory and tunnel cameras).

    """

    exposure: float = 1.0
    white_balance: tuple = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    noise: float = 0.01
    blur_px: float = 0.0
    blur_angle: float = 0.0
    jpeg_quality: int = 90
    vignette: float = 0.2
    grayscale: bool = False


@functools.lru_cache(maxsize=16)
def _vignette(height, width, strength):
    # Radial in units of the shorter side: a wide frame's centre square is
    # vignetted exactly like a square frame of the same camera.
    yy, xx = np.ogrid[0:height, 0:width]
    half = min(width, height) / 2
    r2 = ((xx - width / 2) / half) ** 2 + ((yy - height / 2) / half) ** 2
    v = (1 - strength * np.clip(r2 / 2, 0, 1)).astype(np.float32)[..., None]
    v.flags.writeable = False
    return v


@functools.lru_cache(maxsize=4)
def _noise_bank(height, width):
    """Gaussian noise twice the frame size; frames take random windows of it."""
    bank = np.random.default_rng(20261121).standard_normal((2 * height, 2 * width, 3),
                                                           dtype=np.float32)
    bank.flags.writeable = False
    return bank


def _noise_patch(height, width, rng):
    bank = _noise_bank(height, width)
    y, x = rng.integers(0, height), rng.integers(0, width)
    patch = bank[y:y + height, x:x + width]
    return patch[:, ::-1] if rng.random() < 0.5 else patch


@functools.lru_cache(maxsize=16)
def _gamma_lut(gamma):
    x = np.arange(256, dtype=np.float32) / 255.0
    return np.clip(x ** (1.0 / gamma) * 255 + 0.5, 0, 255).astype(np.uint8)


def camera_effects(radiance, look, rng):
    """Turn linear radiance into a uint8 RGB frame as a small robot camera would."""
    h, w = radiance.shape[:2]
    gain = np.asarray(look.white_balance, np.float32) * np.float32(look.exposure)
    img = radiance * gain
    if look.vignette:
        img *= _vignette(h, w, round(float(look.vignette), 3))
    # Soft shoulder so highlights bloom instead of clipping hard.
    hi = img > 0.8
    if hi.any():
        img[hi] = 0.8 + 0.2 * np.tanh((img[hi] - 0.8) / 0.2)
    if look.blur_px >= 1.5:
        k = int(look.blur_px) | 1
        kernel = np.zeros((k, k), np.float32)
        c = k // 2
        dx, dy = np.cos(look.blur_angle), np.sin(look.blur_angle)
        cv2.line(kernel, (int(round(c - dx * c)), int(round(c - dy * c))),
                 (int(round(c + dx * c)), int(round(c + dy * c))), 1.0, 1)
        kernel /= kernel.sum()
        img = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
    if look.grayscale:
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        img = cv2.merge([g, g, g])
    if look.noise:
        # Signal-dependent sensor noise: a read-noise floor plus a shot-noise slope.
        noise = _noise_patch(h, w, rng)
        img += noise * (np.float32(look.noise) * (np.float32(0.5) + np.float32(0.7) * img))
    out = cv2.convertScaleAbs(np.clip(img, 0, 1), alpha=255.0)
    if look.gamma != 1.0:
        out = cv2.LUT(out, _gamma_lut(round(float(look.gamma), 3)))
    if look.jpeg_quality:
        ok, buf = cv2.imencode('.jpg', cv2.cvtColor(out, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, int(look.jpeg_quality)])
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out
