"""Things placed in the world: floor/wall decals, upright sprites, boxes.

Each primitive carries an RGBA texture and, optionally, an instance-id map,
so one primitive can hold several instances (a scatter of screws, two
chairs). Anomalies are built from these; so are contact shadows, which
carry no instance.
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

import cv2
import numpy as np

from .textures import remap_points


@dataclasses.dataclass
class Decal:
    """A flat picture lying on a surface (floor or a wall).

    Attributes:
        surface: ``'floor'``, ``'left'`` or ``'right'``.
        centre: (x, z) on the floor, or (z, y) on a wall, metres.
        size: (across, along) extent in metres: for the floor (x, z) before
            rotation, for a wall (z, y).
        angle: rotation on the floor (rad).
        rgba: uint8 ``[H, W, 4]``; rows run along the second size axis.
        ids: optional uint16 ``[H, W]`` instance ids (0 = not an instance).
        instance: id for the whole decal where alpha >= 0.5 (if ``ids`` is None).
        gloss: added mirror reflectance where the decal is (water, plastic).
        sharpness: 0 = blurred reflections, 1 = mirror-sharp.
        darken_only: a shadow: multiplies the surface by (1 - alpha).

    """

    surface: str
    centre: tuple
    size: tuple
    rgba: np.ndarray
    angle: float = 0.0
    ids: np.ndarray = None
    instance: int = 0
    gloss: float = 0.0
    sharpness: float = 0.0
    darken_only: bool = False

    def local_uv(self, a, b):
        """Texture coordinates in [0, 1] for surface coordinates ``a, b``."""
        ca, cb = self.centre
        da, db = a - ca, b - cb
        if self.angle:
            c, s = np.cos(self.angle), np.sin(self.angle)
            da, db = c * da + s * db, -s * da + c * db
        return da / self.size[0] + 0.5, db / self.size[1] + 0.5

    def sample(self, a, b):
        """Return (inside mask, rgba float [M, 4], ids [M]) for surface points."""
        u, v = self.local_uv(a, b)
        inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
        if not inside.any():
            return inside, None, None
        h, w = self.rgba.shape[:2]
        mx, my = u[inside] * w - 0.5, v[inside] * h - 0.5
        rgba = remap_points(self.rgba, mx, my, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT)
        rgba = rgba.astype(np.float32) * (1.0 / 255.0)
        ids = None
        if self.ids is not None:
            ids = remap_points(self.ids, mx + 0.5, my + 0.5, cv2.INTER_NEAREST,
                               cv2.BORDER_CONSTANT)
        return inside, rgba, ids


@dataclasses.dataclass
class Sprite:
    """An upright picture standing in the world (a person, a cone, a hanging cable).

    The quad's bottom edge is centred at ``(x, bottom, z)``, it is
    ``width`` by ``height`` metres and turned by ``yaw`` about the vertical
    (0 = facing -z, towards a robot driving along +z).
    """

    x: float
    z: float
    width: float
    height: float
    rgba: np.ndarray
    bottom: float = 0.0
    yaw: float = 0.0
    ids: np.ndarray = None
    instance: int = 0
    emissive: float = 0.0
    label: int = 255        # semantic class of pixels that are not an instance

    def corners(self):
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        half = self.width / 2
        pts = []
        for du in (-half, half):
            for y in (self.bottom, self.bottom + self.height):
                pts.append((self.x + c * du, y, self.z + s * du))
        return np.array(pts, np.float32)

    def intersect(self, origin, dirs):
        """Ray hits: (t [N] with inf where missed, u [N], v [N]) in texture space."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        normal = np.array([-s, 0.0, c], np.float32)
        tangent = np.array([c, 0.0, s], np.float32)
        p0 = np.array([self.x, self.bottom, self.z], np.float32)
        denom = dirs @ normal
        with np.errstate(divide='ignore', invalid='ignore'):
            t = ((p0 - origin) @ normal) / denom
        t = np.where(np.abs(denom) > 1e-6, t, np.inf)
        hit = origin + dirs * np.where(np.isfinite(t), t, 0)[:, None]
        u = ((hit - p0) @ tangent) / self.width + 0.5
        v = 1.0 - (hit[:, 1] - self.bottom) / self.height
        ok = (t > 1e-3) & (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
        return np.where(ok, t, np.inf), u, v


@dataclasses.dataclass
class Pipe:
    """An endless pipe (cylinder) running along the way, e.g. in a tunnel.

    Normal scenery, never an anomaly: pixels get semantic class ``label``.
    """

    x: float
    y: float
    radius: float
    colour: tuple
    label: int = 255
    instance: int = 0

    @property
    def z(self):
        return 0.0

    def intersect(self, origin, dirs):
        """Nearest hit along each ray: (t [N], unit normal [N, 3])."""
        ox, oy = origin[0] - self.x, origin[1] - self.y
        dx, dy = dirs[:, 0], dirs[:, 1]
        a = dx * dx + dy * dy
        b = 2 * (ox * dx + oy * dy)
        c = ox * ox + oy * oy - self.radius ** 2
        disc = b * b - 4 * a * c
        with np.errstate(invalid='ignore', divide='ignore'):
            t = (-b - np.sqrt(disc)) / (2 * a)
        t = np.where((disc > 0) & (t > 1e-3), t, np.inf).astype(np.float32)
        return t


@dataclasses.dataclass
class Box:
    """A solid box standing on the floor (cardboard boxes, a trolley body).

    Attributes:
        x, z: centre of the footprint; size: (sx, sy, sz) metres; yaw: rad.
        colour: RGB in [0, 1]; tape: draw packing tape on the top and front.

    """

    x: float
    z: float
    size: tuple
    colour: tuple
    yaw: float = 0.0
    instance: int = 0
    tape: bool = True
    bottom: float = 0.0
    texture_seed: int = 0
    label: int = 255        # semantic class when not an anomaly instance

    def corners(self):
        sx, sy, sz = self.size
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        pts = []
        for dx in (-sx / 2, sx / 2):
            for dz in (-sz / 2, sz / 2):
                for y in (self.bottom, self.bottom + sy):
                    pts.append((self.x + c * dx - s * dz, y, self.z + s * dx + c * dz))
        return np.array(pts, np.float32)

    def intersect(self, origin, dirs):
        """Slab test in the box frame: (t [N], face [N] 0..5, local hit point [N, 3])."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)  # world -> box
        centre = np.array([self.x, self.bottom + self.size[1] / 2, self.z], np.float32)
        o = (origin - centre) @ rot.T
        d = dirs @ rot.T
        half = np.array(self.size, np.float32) / 2
        with np.errstate(divide='ignore', invalid='ignore'):
            inv = 1.0 / d
            t1 = (-half - o) * inv
            t2 = (half - o) * inv
        tmin = np.minimum(t1, t2)
        tmax = np.maximum(t1, t2)
        tmin = np.nan_to_num(tmin, nan=-np.inf)
        tmax = np.nan_to_num(tmax, nan=np.inf)
        t_near = tmin.max(1)
        t_far = tmax.min(1)
        axis = tmin.argmax(1)
        ok = (t_near <= t_far) & (t_near > 1e-3)
        t = np.where(ok, t_near, np.inf)
        local = o + d * np.where(ok, t_near, 0)[:, None]
        sign = np.take_along_axis(np.sign(local), axis[:, None], 1)[:, 0]
        face = axis * 2 + (sign > 0)
        return t, face, local
