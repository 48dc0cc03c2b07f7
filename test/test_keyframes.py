"""Keyframe plumbing of the instance node: stamp pairing, policy, latest-wins buffer."""

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

import threading
import time

from anomaly_perception.stream.keyframes import KeyframePolicy
from anomaly_perception.stream.keyframes import LatestWinsBuffer
from anomaly_perception.stream.keyframes import StampMatcher
import pytest


def test_stamp_matcher_pairs_by_exact_stamp_and_counts_the_unmatched():
    m = StampMatcher(capacity=3)
    assert m.add('image', 10, 'i10') is None
    assert m.add('image', 20, 'i20') is None
    assert m.add('map', 11, 'm11') is None            # no image at 11: waits
    assert m.add('map', 20, 'm20') == ('i20', 'm20')  # exact stamp
    # i10 and m11 are older than the pair: they can no longer pair.
    assert m.dropped == {'image': 1, 'map': 1} and m.pending() == {'image': 0, 'map': 0}
    assert m.add('map', 30, 'm30') is None
    assert m.add('image', 30, 'i30') == ('i30', 'm30')  # either side may come first
    for s in range(40, 46):                           # a map stream with no images
        m.add('map', s, s)
    assert m.pending()['map'] == 3 and m.dropped['map'] == 1 + 3
    assert m.matched == 2
    with pytest.raises(ValueError):
        m.add('depth', 1, None)


def test_keyframe_policy_period_and_rise():
    p = KeyframePolicy(period_s=1.0, rise=0.2)
    s = int(1e9)
    assert p.decide(0, 0.1) == (True, 'first')
    assert p.decide(s // 2, 0.2) == (False, '')        # within the period, small rise
    assert p.decide(s // 2 + 1, 0.35) == (True, 'rise')  # 0.25 above the last keyframe
    assert p.decide(s, 0.36) == (False, '')
    assert p.decide(s // 2 + 1 + s, 0.0) == (True, 'period')
    assert p.decide(s // 2 + 2 + s, None) == (False, '')


def test_latest_wins_buffer_never_blocks_and_counts_drops():
    b = LatestWinsBuffer(capacity=2)
    for i in range(5):
        b.put(i)                                      # never blocks
    assert b.overflow == 3 and len(b) == 2
    assert b.take() == 4 and b.superseded == 1 and len(b) == 0
    assert b.take(timeout=0.01) is None
    got = []
    reader = threading.Thread(target=lambda: got.append(b.take(timeout=5)))
    reader.start()
    time.sleep(0.05)
    b.put('late')
    reader.join(5)
    assert got == ['late']
