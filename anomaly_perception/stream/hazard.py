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
import math

import numpy as np

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


def count_alarms(sequences, config):
    """Alarm episodes the filter raises on ``sequences`` of normal frames, and their hours.

    Args:
        sequences: ``[(stamps_ns, probabilities)]``, each a stretch of driving
            (e.g. one held-out block); the filter starts afresh in each.
        config: a :class:`HazardConfig`.

    """
    episodes, seconds = 0, 0.0
    for stamps, probs in sequences:
        stamps = np.asarray(stamps, np.int64)
        if stamps.size < 2:
            continue
        hazard = HazardFilter(config)
        flag = False
        for stamp, p in zip(stamps, probs):
            state = hazard.update(int(stamp), float(p))
            episodes += state.flag and not flag
            flag = state.flag
        seconds += (stamps[-1] - stamps[0]) / 1e9 + float(np.median(np.diff(stamps))) / 1e9
    return episodes, seconds / 3600


def on_probability_for_rate(sequences, config, target_per_hour, hysteresis=0.1):
    """Return the on-probability at which the filter raises ``target_per_hour`` false alarms.

    The filter (with ``config``'s smoothing and minimum durations) runs on
    held-out normal ``sequences`` for on-levels spaced in "nines"
    (``u = -log10(1 - p)``: 0.9 -> 1, 0.99 -> 2...). Held-out data is short
    (a minute holds no alarm at a few per hour), so the rate is extrapolated
    from the highest level that still raises alarms, ``(u_a, r_a)``, by one
    decade per nine: ``u = u_a + log10(r_a / target)``. That is the decay the
    calibration's exponential tail gives the frames' exceedances (each nine
    is ten times rarer), scaled by how the filter groups exceedances into
    alarms on this route. The level is never below the first one with no
    alarm at all on the held-out data.

    (A first version fitted ``log(rate)`` against ``u`` over all alarming
    levels; the bulk of the distribution, where smoothing merges alarms,
    decays much more slowly than the tail, and the fit asked for 5-7 nines,
    far above every held-out score: docs/RESULTS.md has the numbers.)

    Returns:
        ``(on_probability, details)``; details hold the measured rates, the
        anchor and the held-out hours, for the manifest.

    """
    if target_per_hour <= 0:
        raise ValueError(f'target false alarms per hour must be > 0, got {target_per_hour}')
    levels = np.round(np.arange(0.5, 9.01, 0.05), 4)
    rates, hours = [], 0.0
    for u in levels:
        on = 1 - 10.0 ** -u
        cfg = dataclasses.replace(config, on_probability=on,
                                  off_probability=max(0.0, on - hysteresis))
        episodes, hours = count_alarms(sequences, cfg)
        rates.append(episodes / hours if hours > 0 else float('nan'))
    rates = np.asarray(rates)
    if not hours:
        raise ValueError('no held-out sequence of two or more frames to measure alarms on')
    alarming = np.flatnonzero(rates > 0)
    # Held-out probabilities of exactly 1 (scores above every calibration value) alarm at
    # every level: the highest level is then the quietest there is.
    first_quiet = float(levels[min(alarming[-1] + 1, len(levels) - 1)]) if alarming.size \
        else float(levels[0])
    anchor = None
    if alarming.size:
        u_a, r_a = float(levels[alarming[-1]]), float(rates[alarming[-1]])
        anchor = {'nines': u_a, 'alarms_per_hour': r_a}
        u_target = u_a + np.log10(r_a / target_per_hour)
    else:
        u_target = float(levels[0])
    u = float(min(max(u_target, first_quiet), levels[-1]))
    details = {'target_false_alarms_per_hour': float(target_per_hour),
               'heldout_hours': float(hours), 'level_nines': u,
               'first_quiet_level_nines': first_quiet,
               'extrapolation': 'one decade per nine from the highest alarming level',
               'anchor': anchor,
               'measured': [{'nines': float(v), 'alarms_per_hour': float(r)}
                            for v, r in zip(levels, rates) if r > 0]}
    return 1 - 10.0 ** -u, details


def heldout_sequences(heldout, calibration):
    """Return ``[(stamps_ns, probabilities)]`` per block of a manifest's ``alarms.heldout``.

    ``heldout['blocks']`` hold ``t_ms`` (milliseconds from the block's first
    frame) and ``raw`` scores; ``calibration`` maps them to probabilities.
    """
    out = []
    for block in heldout['blocks']:
        stamps = np.asarray(block['t_ms'], np.int64) * 1_000_000
        out.append((stamps, calibration.probability(np.asarray(block['raw'], np.float64))))
    return out


def heldout_record(stamps_per_block, raw_per_block):
    """Return a manifest's ``alarms.heldout`` from held-out blocks' stamps (ns) and raw scores.

    The inverse of :func:`heldout_sequences`: what a model trained on bags
    keeps of its held-out normal driving so that a node can measure alarm
    rates for any filter setting.
    """
    blocks = []
    for stamps, raw in zip(stamps_per_block, raw_per_block):
        stamps = np.asarray(stamps, np.int64)
        blocks.append({'t_ms': [int(v) for v in (stamps - stamps[0]) // 1_000_000],
                       'raw': [round(float(v), 4) for v in raw]})
    return {'blocks': blocks}


class AlarmLevels:
    """The hazard flag's on probability for a model and a node configuration (cached).

    A model learnt from bags (``train frame --bag``, ``train pixel --bag``)
    keeps its held-out normal patrol (``alarms`` in its manifest): the on
    probability is where the filter, with the node's smoothing and
    durations, raises ``target_false_alarms_per_hour`` (0 = the rate the
    model was trained for) on it. Other models use a fixed on probability.
    """

    def __init__(self):
        self._cache = {}

    def on_probability(self, manifest, calibration, config, rate, hysteresis, fixed_on):
        """Return ``(on_probability, details)``; details are None for a fixed level.

        Args:
            manifest: the model's manifest.
            calibration: maps the held-out raw scores to probabilities.
            config: the filter's :class:`HazardConfig` (smoothing, durations).
            rate: false alarms per hour asked for (0 = the model's own).
            hysteresis: how far below the on probability the flag turns off.
            fixed_on: the on probability of a model without a held-out patrol.

        Raises:
            ValueError: a rate is asked of a model without a held-out patrol.

        """
        alarms = manifest.get('alarms')
        if not alarms or 'heldout' not in alarms:
            if rate:
                raise ValueError(
                    f'target_false_alarms_per_hour={rate:g} needs a model learnt from bags '
                    f'(it keeps a held-out normal patrol to measure alarm rates on); '
                    f'{manifest.get("name")!r} has none.')
            return float(fixed_on), None
        rate = rate or float(alarms['target_false_alarms_per_hour'])
        key = (rate, config.smoothing, config.min_on_s, config.min_off_s, hysteresis)
        if key not in self._cache:
            sequences = heldout_sequences(alarms['heldout'], calibration)
            self._cache[key] = on_probability_for_rate(sequences, config, rate, hysteresis)
        return self._cache[key]
