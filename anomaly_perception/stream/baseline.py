"""A run's own baseline: the frame score of this run's normal driving, over minutes.

A place is learnt from some runs and scored on others. Each run has its own
camera exposure, white balance, noise, JPEG quality and route, and a
model's frame score of normal driving sits at a different level in each:
the held-out blocks of the training run are quieter than another day's
driving of the same building (docs/RESULTS.md, "A place across runs").

:class:`RunBaseline` measures the current run's level and moves the raw
score by how far it sits from the level of the place's held-out driving
(its ``reference``), before calibration and the hazard flag:

* every second of frames gives one sample, the median of its raw scores
  (so the frame rate does not weigh in);
* the level is the median of the samples of the last ``window_s`` seconds;
  the shift is ``level - reference``, and the score the flag sees is
  ``raw - shift``;
* a second in which the flag was on teaches nothing (a hazard does not
  become the baseline), except during the first ``warmup_s`` seconds, when
  every second counts, so that a run which starts hotter than the reference
  can settle instead of keeping its flag on;
* until ``min_samples`` seconds have been measured, the shift follows the
  median of every frame learnt so far, so that a run's first seconds
  already sit on the reference (a new run raises no alarm at its start).

A hazard lasting seconds moves a median over minutes by little: a 10 s
event fills 10 of the 120 samples of the default window. A hazard in view
for longer than half the window would be learnt as normal, if the flag were
off during it; the flag keeps it out once on. The price: a robot that
starts its run facing a hazard learns it as its baseline (the warm-up).
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

import collections
import math

import numpy as np


class RunBaseline:
    """Shift a run's raw frame scores onto the place's reference level (see module docs)."""

    def __init__(self, reference, window_s=120.0, warmup_s=20.0, min_samples=5):
        if not math.isfinite(reference):
            raise ValueError(f'the reference level must be finite, got {reference}')
        if window_s <= 0:
            raise ValueError(f'window_s must be > 0, got {window_s}')
        self.reference = float(reference)
        self.window_s = float(window_s)
        self.warmup_s = float(warmup_s)
        self.min_samples = int(min_samples)
        self.reset()

    def reset(self):
        self.shift = 0.0
        self._samples = collections.deque()      # (second's start ns, median raw)
        self._second = []
        self._second_start = None
        self._first_ns = None
        self._last_ns = None
        self._early = []        # every frame learnt until min_samples seconds are measured

    def adjust(self, raw):
        """Return ``raw`` as the flag should see it (the current shift taken off)."""
        return float(raw) - self.shift

    def learn(self, stamp_ns, raw, flag_on):
        """Add a frame's raw score; ``flag_on``: the flag's state after this frame."""
        stamp_ns = int(stamp_ns)
        if self._last_ns is not None and stamp_ns < self._last_ns:
            self.reset()        # time went backwards (a bag looped): a new run
        self._last_ns = stamp_ns
        if self._first_ns is None:
            self._first_ns = stamp_ns
        if self._second_start is None:
            self._second_start = stamp_ns
        if stamp_ns - self._second_start >= 1_000_000_000:
            self._close_second(stamp_ns)
        warming = stamp_ns - self._first_ns < self.warmup_s * 1e9
        if math.isfinite(raw) and (warming or not flag_on):
            self._second.append(float(raw))
            if len(self._samples) < self.min_samples:
                self._early.append(float(raw))
                self.shift = float(np.median(self._early)) - self.reference

    def _close_second(self, stamp_ns):
        if self._second:
            self._samples.append((self._second_start, float(np.median(self._second))))
        self._second, self._second_start = [], stamp_ns
        while self._samples and stamp_ns - self._samples[0][0] > self.window_s * 1e9:
            self._samples.popleft()
        if len(self._samples) >= self.min_samples:
            self.shift = float(np.median([v for _, v in self._samples])) - self.reference
            self._early = []

    def state(self):
        """Return what diagnostics show: the shift and the seconds it rests on."""
        return {'shift': self.shift, 'samples': len(self._samples),
                'reference': self.reference}


def reference_level(manifest):
    """Return the median raw frame score of the model's held-out driving (None: it has none).

    Only a model learnt from bags keeps its held-out driving (``alarms.heldout``
    in its manifest). Other models' calibrations are of other data (the
    synthetic test split): moving a building's level onto theirs lost every
    event of a development tunnel's patrol for the shipped pixel model
    (docs/RESULTS.md, "A place across runs"), so they run without a baseline.
    """
    alarms = manifest.get('alarms') or {}
    blocks = (alarms.get('heldout') or {}).get('blocks') or []
    raw = [v for block in blocks for v in block['raw']]
    return float(np.median(raw)) if raw else None


def keep_baseline(current, config, manifest):
    """Return the stream's baseline after a (re)configuration: kept while its settings hold.

    ``config``: a node config with ``run_baseline_s`` and ``run_baseline_warmup_s``
    (:class:`~.node_config.FlagNodeConfig`). A live parameter change to
    anything else keeps what the run has learnt. None (no baseline) when
    ``run_baseline_s`` is 0 or the model keeps no held-out driving.
    """
    window, warmup = float(config.run_baseline_s), float(config.run_baseline_warmup_s)
    reference = reference_level(manifest)
    if not window or reference is None:
        return None
    if current is not None and (current.window_s, current.warmup_s) == (window, warmup):
        return current
    return RunBaseline(reference, window, warmup)


def baseline_probability(baseline, calibration, raw, probability):
    """Return the calibrated probability of ``raw`` less the run's shift (NaN stays as given)."""
    if not math.isfinite(raw):
        return probability
    return float(calibration.probability(np.array([baseline.adjust(raw)]))[0])
