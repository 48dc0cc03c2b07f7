"""Hazards on the floor: an instance mask's ground contact projected onto the floor plane.

A flat floor, a pinhole camera (``camera_info``'s K) mounted ``height`` metres
above it and pitched ``pitch`` radians down (positive = looking down; roll
assumed zero). The ground contact of an instance is the bottom of its mask
(the lowest rows, where an object meets the floor or a flat hazard begins);
its ray is intersected with the floor. Results are in the camera's optical
frame (ROS convention: x right, y down, z forward), so a marker with the
image's ``frame_id`` lands where the hazard is; ``forward`` and ``lateral``
are the same point on the level floor (metres ahead of the camera's foot
point and to its right).

What limits the accuracy (measured in docs/RESULTS.md "Hazards on the
floor"): the floor distance of a pixel at depression angle ``a`` below the
horizon is ``height / tan(a)``; a pitch error ``e`` changes it by about
``e / a`` relative, so a low camera (the Robomaster's is 13 cm above the
floor) is sensitive to vibration far ahead, and points at or above the
horizon have no floor position at all (they are reported as not placed).
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

from ...errors import AnomalyPerceptionError


class FloorProjectionError(AnomalyPerceptionError):
    """Camera parameters that cannot place anything on the floor."""


@dataclasses.dataclass(frozen=True)
class FloorCamera:
    """A pinhole camera above a flat floor.

    Attributes:
        fx, fy, cx, cy: intrinsics in pixels (``camera_info.k``).
        height: camera centre above the floor (m), > 0.
        pitch: downward tilt of the optical axis (rad, positive = looking down).

    """

    fx: float
    fy: float
    cx: float
    cy: float
    height: float
    pitch: float = 0.0

    def __post_init__(self):
        if not (self.fx > 0 and self.fy > 0):
            raise FloorProjectionError(f'Focal lengths must be positive (fx={self.fx}, '
                                       f'fy={self.fy}); is camera_info calibrated?')
        if not self.height > 0:
            raise FloorProjectionError(f'Camera height above the floor must be positive, '
                                       f'got {self.height} m.')
        if not abs(self.pitch) < np.pi / 2:
            raise FloorProjectionError(f'Pitch must lie within +-90 degrees, got '
                                       f'{np.degrees(self.pitch):.1f}.')

    @classmethod
    def from_camera_info(cls, k, height, pitch, scale=(1.0, 1.0)):
        """Build from a row-major 3x3 K (``camera_info.k``), optionally rescaled.

        ``scale`` = (image width / calibrated width, image height / calibrated
        height) when the image was resized after calibration.
        """
        k = np.asarray(k, np.float64).reshape(3, 3)
        sx, sy = scale
        return cls(fx=k[0, 0] * sx, fy=k[1, 1] * sy, cx=k[0, 2] * sx, cy=k[1, 2] * sy,
                   height=float(height), pitch=float(pitch))

    def rays(self, u, v):
        """Optical-frame ray directions ``[N, 3]`` (not normalised) through pixels ``(u, v)``.

        ROS / OpenCV convention: pixel centres at integer coordinates.
        """
        u = np.asarray(u, np.float64)
        v = np.asarray(v, np.float64)
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], -1)

    def to_floor(self, u, v):
        """Floor points of pixels ``(u, v)``: optical-frame points ``[N, 3]`` and a validity mask.

        Invalid (NaN) where the ray does not go down towards the floor.
        """
        d = self.rays(u, v)
        c, s = np.cos(self.pitch), np.sin(self.pitch)
        # Level frame (x right, y down, z forward horizontal): the optical axis is
        # tilted down by pitch, so a ray's downward component is y cos + z sin.
        down = d[:, 1] * c + d[:, 2] * s
        valid = down > 1e-6
        t = np.where(valid, self.height / np.where(valid, down, 1.0), np.nan)
        return d * t[:, None], valid

    def level(self, points):
        """Optical-frame points -> (forward, lateral) on the level floor, ``[N, 2]``."""
        points = np.asarray(points, np.float64)
        c, s = np.cos(self.pitch), np.sin(self.pitch)
        forward = -points[:, 1] * s + points[:, 2] * c
        return np.stack([forward, points[:, 0]], -1)


@dataclasses.dataclass(frozen=True)
class FloorHazard:
    """One instance placed on the floor (optical frame, metres).

    Attributes:
        instance: the instance id.
        position: ground contact point ``(x, y, z)`` in the camera's optical frame.
        forward, lateral: the same point on the level floor (ahead, to the right).
        width: lateral extent of the contact (m).
        contact_px: ``(u, v)`` pixel of the contact point.

    """

    instance: int
    position: tuple
    forward: float
    lateral: float
    width: float
    contact_px: tuple

    @property
    def distance(self):
        return float(np.hypot(self.forward, self.lateral))


def contact_band(mask, band=0.1, min_rows=2):
    """Pixels ``(u, v)`` of the bottom of one instance mask, or None if it is empty.

    The bottom ``band`` of the mask's height (at least ``min_rows`` rows):
    where an upright object meets the floor, or the near edge of a flat one.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    top, bottom = rows[0], rows[-1]
    depth = max(min_rows, int(round((bottom - top + 1) * band)))
    first = max(top, bottom - depth + 1)
    ys, xs = np.nonzero(mask[first:bottom + 1])
    return xs.astype(np.float64), (ys + first).astype(np.float64)


def place_instances(instance_ids, camera, min_pixels=10):
    """Place every instance of an id map ``[H, W]`` (0 = none) on the floor.

    The contact point is the floor point nearest to the camera among the
    projections of the mask's bottom band (:func:`contact_band`), what the
    robot would reach first; the width is the band's lateral extent there.

    Returns:
        (placed, not_placed): a list of :class:`FloorHazard` and a list of ids
        whose contact lies at or above the horizon (or that are smaller than
        ``min_pixels``).

    """
    ids = np.asarray(instance_ids)
    placed, not_placed = [], []
    for ident in np.unique(ids[ids > 0]):
        mask = ids == ident
        if np.count_nonzero(mask) < min_pixels:
            not_placed.append(int(ident))
            continue
        u, v = contact_band(mask)
        points, valid = camera.to_floor(u, v)
        if not valid.any():
            not_placed.append(int(ident))
            continue
        points, u, v = points[valid], u[valid], v[valid]
        level = camera.level(points)
        best = int(np.argmin(np.hypot(level[:, 0], level[:, 1])))
        # Pixel edges, not centres, bound the width.
        edges, _ = camera.to_floor([u.min() - 0.5, u.max() + 0.5], [v[best], v[best]])
        width = float(abs(np.diff(camera.level(edges)[:, 1])[0]))
        placed.append(FloorHazard(
            instance=int(ident), position=tuple(float(p) for p in points[best]),
            forward=float(level[best, 0]), lateral=float(level[best, 1]),
            width=width, contact_px=(float(u[best]), float(v[best]))))
    return placed, not_placed
