"""Keyframe plumbing of the instance node, free of ROS: stamp pairing, policy, buffer.

* :class:`StampMatcher`: pairs an image stream with the pixel node's
  anomaly-map stream by *exact* header stamp (the pixel node copies the
  image's header, so equal stamps mean the same frame). Each side keeps at
  most ``capacity`` unmatched items; when a pair forms, everything older
  on both sides can no longer pair (streams arrive in stamp order) and is
  dropped. Every dropped item is counted, per side, for diagnostics.
  (``message_filters`` does this in ROS; it is not on the registries.)
* :class:`KeyframePolicy`: a frame becomes a keyframe when none was taken
  for ``period_s`` seconds, or at once when its score rises ``rise`` above
  the score of the last keyframe (calibrated scores in [0, 1]: a new
  hazard does not wait for the period).
* :class:`LatestWinsBuffer`: a bounded buffer between the callbacks and the
  slow instance worker; ``put`` never blocks; when full, the oldest item
  is dropped and counted; ``take`` returns the newest item and drops (and
  counts) the older ones, so the worker always works on the latest
  keyframe.
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
import threading


class StampMatcher:
    """Pair two streams by exact stamp (see module docs)."""

    def __init__(self, capacity=30):
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self.capacity = int(capacity)
        self._sides = {'image': collections.OrderedDict(), 'map': collections.OrderedDict()}
        self.dropped = {'image': 0, 'map': 0}
        self.matched = 0

    def add(self, side, stamp_ns, item):
        """Add ``item`` of ``side`` ('image' or 'map'); return ``(image, map)`` when paired."""
        other = 'map' if side == 'image' else 'image'
        if side not in self._sides:
            raise ValueError(f"side must be 'image' or 'map', got {side!r}")
        mine, theirs = self._sides[side], self._sides[other]
        if stamp_ns in theirs:
            partner = theirs.pop(stamp_ns)
            self._drop_older(stamp_ns)
            self.matched += 1
            return (item, partner) if side == 'image' else (partner, item)
        if stamp_ns in mine:            # a repeated stamp replaces the older message
            mine.pop(stamp_ns)
            self.dropped[side] += 1
        mine[stamp_ns] = item
        while len(mine) > self.capacity:
            mine.popitem(last=False)
            self.dropped[side] += 1
        return None

    def _drop_older(self, stamp_ns):
        for side, items in self._sides.items():
            for stamp in [s for s in items if s < stamp_ns]:
                del items[stamp]
                self.dropped[side] += 1

    def pending(self):
        """Return the unmatched items waiting per side."""
        return {side: len(items) for side, items in self._sides.items()}


class KeyframePolicy:
    """Decide which frames become keyframes (see module docs)."""

    def __init__(self, period_s=2.0, rise=0.2):
        if period_s < 0 or rise <= 0:
            raise ValueError(f'period_s must be >= 0 and rise > 0, got {period_s}, {rise}')
        self.period_ns = int(period_s * 1e9)
        self.rise = float(rise)
        self.last_stamp = None
        self.last_score = None

    def decide(self, stamp_ns, score):
        """Return ``(keyframe?, reason)``; the reason is 'first', 'period', 'rise' or ''."""
        if self.last_stamp is None:
            reason = 'first'
        elif stamp_ns - self.last_stamp >= self.period_ns:
            reason = 'period'
        elif score is not None and self.last_score is not None and \
                score - self.last_score >= self.rise:
            reason = 'rise'
        else:
            return False, ''
        self.last_stamp, self.last_score = stamp_ns, score
        return True, reason


class LatestWinsBuffer:
    """Bounded, never-blocking buffer whose reader takes the newest item (see module docs)."""

    def __init__(self, capacity=4):
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self._items = collections.deque()
        self._capacity = int(capacity)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self.overflow = 0       # dropped because the buffer was full
        self.superseded = 0     # dropped because a newer item was taken

    def put(self, item):
        """Add ``item``; drop (and count) the oldest when full. Never blocks."""
        with self._lock:
            self._items.append(item)
            while len(self._items) > self._capacity:
                self._items.popleft()
                self.overflow += 1
            self._ready.notify()

    def take(self, timeout=None):
        """Return the newest item (``None`` after ``timeout`` s with none); drop the rest."""
        with self._lock:
            if not self._items and not self._ready.wait_for(lambda: self._items, timeout):
                return None
            item = self._items.pop()
            self.superseded += len(self._items)
            self._items.clear()
            return item

    def __len__(self):
        with self._lock:
            return len(self._items)
