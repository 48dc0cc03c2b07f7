"""A small vector canvas in metric units: how the anomaly sprites and decals are drawn."""

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


class Canvas:
    """Draw an RGBA picture (and an instance-id map) in metric units, anti-aliased.

    ``flip_y`` puts y = 0 at the bottom (upright sprites); otherwise row 0
    is y = 0 (floor decals, whose rows run along +z).
    """

    def __init__(self, width_m, height_m, px_per_m=220, flip_y=True, ss=2):
        self.ppm = px_per_m * ss
        self.ss = ss
        self.w = max(2, int(round(width_m * self.ppm)))
        self.h = max(2, int(round(height_m * self.ppm)))
        self.flip_y = flip_y
        self.rgba = np.zeros((self.h, self.w, 4), np.uint8)
        self.ids = np.zeros((self.h, self.w), np.uint16)

    def _px(self, pts):
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        x = pts[:, 0] * self.ppm
        y = (self.h - pts[:, 1] * self.ppm) if self.flip_y else pts[:, 1] * self.ppm
        return np.stack([x, y], 1).round().astype(np.int32)

    @staticmethod
    def _col(rgb, alpha=1.0):
        return tuple(int(np.clip(c * 255, 0, 255)) for c in (*rgb, alpha))

    def poly(self, pts, rgb, alpha=1.0, ident=0):
        px = self._px(pts)
        cv2.fillPoly(self.rgba, [px], self._col(rgb, alpha), cv2.LINE_AA)
        if ident:
            cv2.fillPoly(self.ids, [px], int(ident))

    def line(self, pts, rgb, thickness_m, alpha=1.0, ident=0):
        px = self._px(pts)
        th = max(1, int(round(thickness_m * self.ppm)))
        cv2.polylines(self.rgba, [px], False, self._col(rgb, alpha), th, cv2.LINE_AA)
        if ident:
            cv2.polylines(self.ids, [px], False, int(ident), th)

    def ellipse(self, centre, axes_m, angle_deg, rgb, alpha=1.0, ident=0):
        c = tuple(int(v) for v in self._px([centre])[0])
        axes = (max(1, int(axes_m[0] * self.ppm)), max(1, int(axes_m[1] * self.ppm)))
        cv2.ellipse(self.rgba, c, axes, angle_deg, 0, 360, self._col(rgb, alpha), -1,
                    cv2.LINE_AA)
        if ident:
            cv2.ellipse(self.ids, c, axes, angle_deg, 0, 360, int(ident), -1)

    def finish(self):
        size = (self.w // self.ss, self.h // self.ss)
        rgba = cv2.resize(self.rgba, size, interpolation=cv2.INTER_AREA)
        ids = cv2.resize(self.ids, size, interpolation=cv2.INTER_NEAREST)
        return rgba, ids


# --- the anomaly types ----------------------------------------------------------------------
