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

"""The hazard flag: smoothing, hysteresis and minimum durations over time.

Per-frame probabilities flicker; a robot should react to a hazard that
persists. :class:`HazardFilter` smooths the calibrated probability with an
exponential moving average, turns the flag **on** once the smoothed value
has stayed at or above ``on_probability`` for ``min_on_s`` seconds, and
**off** once it has stayed at or below ``off_probability`` for ``min_off_s``
seconds; in between, the flag keeps its state (hysteresis). Time comes from
the frames' stamps, so replayed bags and simulated time behave like live
cameras. An unscorable frame counts as probability 1 (fail-safe).
"""

import dataclasses
import math

from ..config import field


@dataclasses.dataclass
class HazardConfig:
    """Hazard-flag parameters (also ROS parameters of the frame node)."""

    smoothing: float = field(0.3, 'weight of the newest probability in the moving average '
                             '(1 = no smoothing)', range=(0.01, 1.0))
    on_probability: float = field(0.95, 'smoothed probability that turns the flag on',
                                  range=(0.0, 1.0))
    off_probability: float = field(0.85, 'smoothed probability that turns the flag off',
                                   range=(0.0, 1.0))
    min_on_s: float = field(0.3, 'seconds above on_probability before the flag turns on',
                            range=(0.0, 60.0))
    min_off_s: float = field(1.0, 'seconds below off_probability before the flag turns off',
                             range=(0.0, 60.0))

    def __post_init__(self):
        if self.off_probability > self.on_probability:
            raise ValueError(f'off_probability ({self.off_probability}) must not exceed '
                             f'on_probability ({self.on_probability})')


@dataclasses.dataclass
class HazardState:
    """The filter's output for one frame."""

    flag: bool
    smoothed: float
    changed: bool


class HazardFilter:
    """Feed ``(stamp_ns, probability)`` in time order; get the flag (see module docs)."""

    def __init__(self, config=None):
        self.config = config or HazardConfig()
        self.reset()

    def reset(self):
        self.flag = False
        self.smoothed = None
        self._above_since = None
        self._below_since = None
        self._last_ns = None

    def update(self, stamp_ns, probability):
        cfg = self.config
        p = 1.0 if probability is None or not math.isfinite(probability) else float(probability)
        if self._last_ns is not None and stamp_ns < self._last_ns:
            # Time went backwards (a bag looped, sim time reset): start over.
            self.reset()
        self._last_ns = stamp_ns
        self.smoothed = p if self.smoothed is None else (
            cfg.smoothing * p + (1 - cfg.smoothing) * self.smoothed)
        s = self.smoothed
        self._above_since = (self._above_since if self._above_since is not None else stamp_ns) \
            if s >= cfg.on_probability else None
        self._below_since = (self._below_since if self._below_since is not None else stamp_ns) \
            if s <= cfg.off_probability else None
        changed = False
        if not self.flag and self._above_since is not None and (
                stamp_ns - self._above_since >= cfg.min_on_s * 1e9):
            self.flag, changed = True, True
        elif self.flag and self._below_since is not None and (
                stamp_ns - self._below_since >= cfg.min_off_s * 1e9):
            self.flag, changed = False, True
        return HazardState(self.flag, s, changed)
