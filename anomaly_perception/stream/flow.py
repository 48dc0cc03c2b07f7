"""Streaming helpers of a perception node, free of ROS.

* :class:`FrameSlot` hands frames from the subscriber to one inference
  worker. In ``latest`` mode it holds one frame and a newer one replaces it
  (counted as dropped), so a slow model never builds a queue and the
  subscriber never blocks; in ``all`` mode (bag replay through
  ``ros2 bag play``) every frame is kept in order.
* :class:`RateLimiter` lets at most ``max_rate_hz`` frames through, by
  their stamps.
* :class:`StreamStats` keeps the numbers diagnostics report: input and
  processed rates, drops, malformed messages, inference latency.
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
import time

import numpy as np


class FrameSlot:
    """Subscriber-to-worker hand-off: latest frame wins, or keep all (see module docs)."""

    def __init__(self, mode='latest'):
        if mode not in ('latest', 'all'):
            raise ValueError(f"mode must be 'latest' or 'all', got {mode!r}")
        self.mode = mode
        self._items = collections.deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self._closed = False

    def put(self, item):
        """Offer a frame; never blocks. Returns True if an older frame was dropped."""
        with self._cond:
            dropped = False
            if self.mode == 'latest' and self._items:
                self._items.clear()
                self.dropped += 1
                dropped = True
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, timeout=None):
        """Take the next frame; None on timeout or after :meth:`close`."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            if self._items:
                return self._items.popleft()
            return None

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self):
        with self._cond:
            return len(self._items)


class RateLimiter:
    """Pass frames at most ``max_rate_hz`` apart in stamp time (0 = no limit)."""

    def __init__(self, max_rate_hz=0.0):
        self.max_rate_hz = float(max_rate_hz)
        self._last_ns = None
        self.skipped = 0

    def allow(self, stamp_ns):
        if self.max_rate_hz <= 0:
            return True
        if self._last_ns is not None and 0 <= stamp_ns - self._last_ns < 1e9 / self.max_rate_hz:
            self.skipped += 1
            return False
        self._last_ns = stamp_ns
        return True


class StreamStats:
    """Counters and recent timings for diagnostics (wall clock unless told)."""

    def __init__(self, window_s=5.0, latency_samples=200, clock=time.monotonic):
        self.window_s = window_s
        self.clock = clock
        self.received = 0
        self.processed = 0
        self.malformed = 0
        self.last_malformed_reason = ''
        self._in_times = collections.deque()
        self._out_times = collections.deque()
        self._latencies = collections.deque(maxlen=latency_samples)
        self._last_frame = None
        self._lock = threading.Lock()

    def frame_received(self):
        with self._lock:
            now = self.clock()
            self.received += 1
            self._last_frame = now
            self._in_times.append(now)
            self._trim(self._in_times, now)

    def frame_malformed(self, reason):
        with self._lock:
            self.malformed += 1
            self.last_malformed_reason = reason

    def frame_processed(self, latency_s):
        with self._lock:
            now = self.clock()
            self.processed += 1
            self._out_times.append(now)
            self._trim(self._out_times, now)
            self._latencies.append(latency_s)

    def _trim(self, times, now):
        while times and now - times[0] > self.window_s:
            times.popleft()

    def snapshot(self):
        """Return a dict of the current numbers (rates in Hz, latencies in ms)."""
        with self._lock:
            now = self.clock()
            self._trim(self._in_times, now)
            self._trim(self._out_times, now)
            lat = np.asarray(self._latencies, float) * 1e3
            return {
                'received': self.received, 'processed': self.processed,
                'malformed': self.malformed,
                'input_rate_hz': len(self._in_times) / self.window_s,
                'processed_rate_hz': len(self._out_times) / self.window_s,
                'latency_median_ms': float(np.median(lat)) if lat.size else float('nan'),
                'latency_p99_ms': float(np.percentile(lat, 99)) if lat.size else float('nan'),
                'since_last_frame_s': (now - self._last_frame) if self._last_frame is not None
                else float('inf'),
                'last_malformed_reason': self.last_malformed_reason,
            }


class MalformedCounter:
    """Counts bad input messages by kind and says when each kind deserves a log line.

    A camera that sends one bad frame usually sends thousands: the first
    message of each kind is logged at once, later ones at most once per
    ``period_s`` per kind, with the number seen since the last line, so a
    log stays readable and no kind hides another.
    """

    def __init__(self, period_s=10.0, clock=time.monotonic):
        self.period_s = float(period_s)
        self.clock = clock
        self.by_kind = collections.Counter()
        self.last_reason = ''
        self._last_logged = {}
        self._since_logged = collections.Counter()
        self._lock = threading.Lock()

    @property
    def total(self):
        with self._lock:
            return sum(self.by_kind.values())

    def add(self, kind, reason):
        """Count one bad message; return the line to log now, or None (throttled)."""
        with self._lock:
            self.by_kind[kind] += 1
            self.last_reason = reason
            self._since_logged[kind] += 1
            now = self.clock()
            last = self._last_logged.get(kind)
            if last is not None and now - last < self.period_s:
                return None
            count = self._since_logged.pop(kind)
            self._last_logged[kind] = now
        more = f' ({count} of this kind since the last report)' if count > 1 else ''
        return f'skipped a malformed image ({kind}){more}: {reason}'

    def snapshot(self):
        with self._lock:
            return dict(self.by_kind)


class TransportGapCounter:
    """Frames lost between the camera and the node, inferred where that is possible.

    With the publisher's sequence numbers (rclpy's message info, Fast DDS and
    Cyclone DDS provide them), a jump from ``n`` to ``n + k`` means ``k - 1``
    frames were lost in transport or overwritten in the subscription's
    queue. A number that goes back means another publisher or a restarted
    one: counting restarts there. Without sequence numbers, a gap in the
    stamps larger than 1.5 times the recent median period counts as
    ``round(gap / period) - 1`` lost frames.
    """

    def __init__(self, history=30):
        self.dropped = 0
        self.method = 'none yet'
        self._last_seq = None
        self._last_stamp = None
        self._periods = collections.deque(maxlen=history)

    def observe(self, stamp_ns, sequence=None):
        """Record one received frame; return how many were inferred lost before it."""
        lost = 0
        if sequence is not None and sequence > 0:
            self.method = 'publisher sequence numbers'
            if self._last_seq is not None and sequence > self._last_seq:
                lost = sequence - self._last_seq - 1
            self._last_seq = sequence
        elif stamp_ns is not None:
            self.method = 'image stamps'
            if self._last_stamp is not None and stamp_ns > self._last_stamp:
                delta = stamp_ns - self._last_stamp
                if len(self._periods) >= 5:
                    period = float(np.median(self._periods))
                    if delta > 1.5 * period:
                        lost = int(round(delta / period)) - 1
                    else:
                        self._periods.append(delta)
                else:
                    self._periods.append(delta)
        if stamp_ns is not None:
            self._last_stamp = stamp_ns
        self.dropped += lost
        return lost
