"""Camera models and smooth robot motion for the synthetic world.

World frame: x to the right, y up, z along the corridor (forward).
Camera frame: x right, y up, z forward (the renderer flips image rows).
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

import numpy as np


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """Pinhole (rectilinear) or equidistant fisheye camera.

    Attributes:
        width, height: image size in pixels.
        hfov_deg: horizontal field of view (pinhole) or the full field of
            view across the image width (fisheye).
        fisheye: equidistant fisheye projection (r = f * theta).

    """

    width: int
    height: int
    hfov_deg: float
    fisheye: bool = False

    @property
    def focal(self):
        half = np.radians(self.hfov_deg) / 2
        if self.fisheye:
            return (self.width / 2) / half
        return (self.width / 2) / np.tan(half)

    @property
    def pixel_angle(self):
        """Angle subtended by one pixel at the image centre (rad)."""
        return 1.0 / self.focal


@functools.lru_cache(maxsize=16)
def _camera_rays(intr):
    """Return unit ray directions in the camera frame, ``float32 [H*W, 3]``, plus validity."""
    ys, xs = np.mgrid[0:intr.height, 0:intr.width].astype(np.float32)
    u = (xs + 0.5 - intr.width / 2) / intr.focal
    v = -(ys + 0.5 - intr.height / 2) / intr.focal
    if intr.fisheye:
        theta = np.sqrt(u * u + v * v)
        valid = theta < np.pi / 2 * 0.999
        phi = np.arctan2(v, u)
        s = np.sin(np.minimum(theta, np.pi / 2))
        d = np.stack([s * np.cos(phi), s * np.sin(phi), np.cos(np.minimum(theta, np.pi / 2))],
                     -1)
    else:
        valid = np.ones(u.shape, bool)
        d = np.stack([u, v, np.ones_like(u)], -1)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
    d = d.reshape(-1, 3).astype(np.float32)
    d.flags.writeable = False
    valid = valid.reshape(-1)
    valid.flags.writeable = False
    return d, valid


def rotation(yaw, pitch, roll):
    """Camera-to-world rotation for yaw (left +), pitch (up +), roll (clockwise +), radians."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    r_roll = np.array([[cr, sr, 0], [-sr, cr, 0], [0, 0, 1]])
    return (r_yaw @ r_pitch @ r_roll).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Pose:
    """Camera position (m) and orientation (rad) in the world."""

    x: float
    y: float
    z: float
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    @property
    def origin(self):
        return np.array([self.x, self.y, self.z], np.float32)

    def rays(self, intr):
        """World-frame unit ray per pixel (``float32 [H*W, 3]``) and validity mask."""
        d, valid = _camera_rays(intr)
        return d @ rotation(self.yaw, self.pitch, self.roll).T, valid

    def rays_of(self, intr, index):
        """World-frame unit rays of the pixels at flat ``index`` only (``float32 [N, 3]``)."""
        d, _ = _camera_rays(intr)
        return d[index] @ rotation(self.yaw, self.pitch, self.roll).T

    def project(self, points, intr):
        """Project world points ``[N, 3]`` to pixel coordinates ``[N, 2]`` and depth ``[N]``."""
        rot = rotation(self.yaw, self.pitch, self.roll)
        cam = (np.asarray(points, np.float32) - self.origin) @ rot
        z = cam[:, 2]
        if intr.fisheye:
            norm = np.linalg.norm(cam, axis=1)
            theta = np.arccos(np.clip(z / np.maximum(norm, 1e-9), -1, 1))
            phi = np.arctan2(cam[:, 1], cam[:, 0])
            r = intr.focal * theta
            px = intr.width / 2 + r * np.cos(phi)
            py = intr.height / 2 - r * np.sin(phi)
        else:
            zz = np.where(z > 1e-6, z, 1e-6)
            px = intr.width / 2 + intr.focal * cam[:, 0] / zz
            py = intr.height / 2 - intr.focal * cam[:, 1] / zz
        return np.stack([px, py], 1), z


class SmoothNoise:
    """Deterministic smooth 1-D noise: a sum of sines with random phases."""

    def __init__(self, rng, amplitude, frequency, n=4):
        self.amp = amplitude * rng.uniform(0.5, 1.0, n) / np.sqrt(n)
        self.freq = frequency * rng.uniform(0.5, 2.0, n)
        self.phase = rng.uniform(0, 2 * np.pi, n)

    def __call__(self, t):
        return float(np.sum(self.amp * np.sin(2 * np.pi * self.freq * t + self.phase)))


class Trajectory:
    """The robot driving along the corridor: forward speed, weave, vibration."""

    def __init__(self, rng, *, start_z, speed, lateral, camera_height, pitch, lateral_range,
                 yaw_amplitude=0.05, shake=1.0):
        self.start_z = start_z
        self.speed = speed
        self.lateral = lateral
        self.camera_height = camera_height
        self.pitch = pitch
        self.weave = SmoothNoise(rng, lateral_range, 0.05)
        self.yaw = SmoothNoise(rng, yaw_amplitude, 0.08)
        self.pitch_jitter = SmoothNoise(rng, 0.012 * shake, 1.5)
        self.roll_jitter = SmoothNoise(rng, 0.015 * shake, 1.2)
        self.bounce = SmoothNoise(rng, 0.003 * shake, 2.0)

    def pose(self, t):
        x = self.lateral + self.weave(t)
        # Heading follows the weave, as a differential-drive robot's would.
        dx = (self.weave(t + 0.05) - self.weave(t - 0.05)) / 0.1
        yaw = -np.arctan2(dx, max(self.speed, 0.05)) * 0.6 + self.yaw(t)
        return Pose(x=x, y=self.camera_height + self.bounce(t), z=self.start_z + self.speed * t,
                    yaw=float(yaw), pitch=self.pitch + self.pitch_jitter(t),
                    roll=self.roll_jitter(t))
