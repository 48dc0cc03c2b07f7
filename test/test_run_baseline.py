"""The run baseline: another run's level is taken off; a hazard of seconds is not learnt."""

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

from anomaly_perception.stream.baseline import RunBaseline
import numpy as np
import pytest

HZ = 10
NS = 1_000_000_000 // HZ


def drive(baseline, raws, flags=None, start=0):
    """Feed raws at 10 Hz; return the adjusted scores."""
    out = []
    for i, raw in enumerate(raws):
        out.append(baseline.adjust(raw))
        baseline.learn((start + i) * NS, raw, bool(flags[i]) if flags is not None else False)
    return np.array(out)


def test_another_runs_level_is_taken_off_after_a_few_seconds():
    rng = np.random.default_rng(0)
    base = RunBaseline(reference=10.0, window_s=60, warmup_s=5, min_samples=5)
    raws = 25.0 + rng.normal(0, 1, 60 * HZ)            # this run sits 15 above the place
    adjusted = drive(base, raws)
    assert adjusted[0] == raws[0]                       # nothing measured yet: no shift
    assert abs(adjusted[1] - 10.0) < 3                  # then the run's own frames so far
    assert abs(np.median(adjusted[2:5 * HZ]) - 10.0) < 0.5
    assert abs(np.median(adjusted[20 * HZ:]) - 10.0) < 0.5
    assert abs(base.shift - 15.0) < 0.5
    assert base.state()['samples'] >= 50


def test_a_hazard_of_seconds_barely_moves_the_level_and_a_flagged_one_not_at_all():
    rng = np.random.default_rng(1)
    normal = 10.0 + rng.normal(0, 1, 120 * HZ)
    raws = normal.copy()
    raws[100 * HZ:110 * HZ] = 80.0                     # a 10 s hazard after 100 s
    unflagged = RunBaseline(10.0, window_s=120, warmup_s=5)
    drive(unflagged, raws)
    assert abs(unflagged.shift) < 1.0                  # 10 of 120 samples: the median holds
    flags = np.zeros(raws.size, bool)
    flags[100 * HZ:115 * HZ] = True
    flagged = RunBaseline(10.0, window_s=120, warmup_s=5)
    clean = RunBaseline(10.0, window_s=120, warmup_s=5)
    drive(flagged, raws, flags)
    drive(clean, normal, flags)
    assert flagged.shift == pytest.approx(clean.shift)


def test_a_run_that_starts_hot_with_its_flag_on_settles_during_the_warm_up():
    raws = np.full(40 * HZ, 30.0)
    warm = RunBaseline(10.0, window_s=60, warmup_s=20)
    cold = RunBaseline(10.0, window_s=60, warmup_s=0)
    on = np.ones(raws.size, bool)
    assert drive(warm, raws, on)[-1] == pytest.approx(10.0)
    assert drive(cold, raws, on)[-1] == pytest.approx(30.0)   # nothing learnt while on


def test_old_seconds_leave_the_window_and_time_going_back_starts_over():
    base = RunBaseline(0.0, window_s=30, warmup_s=0, min_samples=3)
    drive(base, np.full(60 * HZ, 5.0))
    drive(base, np.full(60 * HZ, 9.0), start=60 * HZ)
    assert base.shift == pytest.approx(9.0)              # the first minute has left the window
    base.learn(0, 1.0, False)                           # the bag looped: a new run
    assert base.state()['samples'] == 0 and base.shift == pytest.approx(1.0)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match='reference'):
        RunBaseline(float('nan'))
    with pytest.raises(ValueError, match='window_s'):
        RunBaseline(0.0, window_s=0)
