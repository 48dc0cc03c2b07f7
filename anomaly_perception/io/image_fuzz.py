"""Random and mutated image messages, to fuzz a message path (a node's, replay's).

:func:`fuzz_cases` yields seeded ``sensor_msgs/Image`` and
``CompressedImage`` messages, built with any message factory (rclpy's or
rosbags'), each with what a correct consumer must do with it:

* ``'valid'``: a well-formed colour frame that must be scored;
* ``'invalid'``: a message that must be refused and counted (wrong data
  length, step too small, zero size, unknown or non-colour encoding,
  smaller than 2x2, missing stamp, empty or compressedDepth payload);
* ``'either'``: truncated or bit-flipped JPEG/PNG bytes, which a decoder may
  still read; it must be scored or counted, never crash anything.

:func:`drive` feeds cases one at a time to a consumer and checks each
outcome, the consumer's counters and its memory (resident set size).
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
import os
import time

import cv2
import numpy as np

from .images import ENCODINGS

COLOUR_LAYOUTS = ('rgb', 'bgr', 'rgba', 'bgra', 'bayer')
MIN_SIDE = 2  # the pipelines' smallest width and height
STAMP0 = 1_767_225_600_000_000_000
_FORMATS = ('jpeg', 'png', 'bgr8; jpeg compressed bgr8', 'rgb8; png compressed rgb8', 'jpg')


@dataclasses.dataclass
class FuzzCase:
    """One message and what its consumer must do with it."""

    index: int
    msg: object
    expect: str          # 'valid', 'invalid' or 'either'
    mutation: str


def _size(rng):
    if rng.random() < 0.05:
        return int(rng.integers(100, 360)), int(rng.integers(100, 640))
    return int(rng.integers(1, 48)), int(rng.integers(1, 48))


def _pixels(rng, height, width, channels, dtype):
    shape = (height, width) if channels == 1 else (height, width, channels)
    if np.dtype(dtype).kind == 'f':
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def _raw_case(rng, factory, stamp):
    name = str(rng.choice(list(ENCODINGS)))
    enc = ENCODINGS[name]
    height, width = _size(rng)
    bigendian = bool(rng.random() < 0.3) and enc.dtype != 'u1'
    dtype = np.dtype(('>' if bigendian else '<') + enc.dtype)
    row = width * enc.bytes_per_pixel
    pad = int(rng.integers(0, 9)) if rng.random() < 0.3 else 0
    step = row + pad
    pixels = _pixels(rng, height, width, enc.channels, dtype)
    rows = np.zeros((height, step), np.uint8)
    rows[:, :row] = pixels.reshape(height, -1).view(np.uint8)
    data = rows.tobytes()
    expect = 'valid' if enc.layout in COLOUR_LAYOUTS else 'invalid'
    mutation = 'none' if expect == 'valid' else 'not colour'
    if min(height, width) < MIN_SIDE:
        expect, mutation = 'invalid', 'too small'
    roll = rng.random()
    if roll < 0.15:
        cut = int(rng.integers(1, max(2, len(data))))
        data = data[:-cut] if rng.random() < 0.5 else data + bytes(cut)
        expect, mutation = 'invalid', 'wrong data length'
    elif roll < 0.25:
        step = max(0, row - int(rng.integers(1, row + 1)))
        data = bytes(height * step)
        expect, mutation = 'invalid', 'step too small'
    elif roll < 0.32:
        height, width, step, data = (0, width, step, b'') if rng.random() < 0.5 else (
            height, 0, 0, b'')
        expect, mutation = 'invalid', 'zero size'
    elif roll < 0.40:
        name = rng.choice(['yuv422_yuy2x', 'BGR8', 'rgb 8', '', 'jpeg', 'bayer_xyzw8',
                           ''.join(chr(c) for c in rng.integers(33, 126, 8))])
        expect, mutation = 'invalid', 'unknown encoding'
    elif roll < 0.45:
        height = int(rng.choice([2 ** 31 - 1, 2 ** 32 - 1, 65536]))
        expect, mutation = 'invalid', 'huge height'
    fields = {'height': height, 'width': width, 'encoding': str(name),
              'is_bigendian': int(bigendian), 'step': step, 'data': np.frombuffer(data, np.uint8)}
    return factory.new('sensor_msgs/msg/Image', header=factory.header(stamp, 'fuzz_camera'),
                       **fields), expect, mutation


def _compressed_case(rng, factory, stamp):
    height, width = _size(rng)
    fmt = str(rng.choice(_FORMATS))
    codec = '.png' if 'png' in fmt else '.jpg'
    grey = rng.random() < 0.1
    image = _pixels(rng, height, width, 1 if grey else 3, np.uint8)
    data = cv2.imencode(codec, image)[1].reshape(-1).tobytes()
    expect, mutation = ('invalid', 'grey') if grey else ('valid', 'none')
    if min(height, width) < MIN_SIDE:
        expect, mutation = 'invalid', 'too small'
    roll = rng.random()
    if roll < 0.25:
        data = data[:int(rng.integers(0, len(data)))]
        expect, mutation = ('invalid', 'empty') if not data else ('either', 'truncated')
    elif roll < 0.40:
        flipped = bytearray(data)
        for pos in rng.integers(0, len(flipped), int(rng.integers(1, 16))):
            flipped[pos] ^= int(rng.integers(1, 256))
        data = bytes(flipped)
        expect, mutation = 'either', 'bit flips'
    elif roll < 0.48:
        data = rng.integers(0, 256, int(rng.integers(0, 4096)), dtype=np.uint8).tobytes()
        expect, mutation = ('invalid', 'empty') if not data else ('either', 'random bytes')
    elif roll < 0.53:
        fmt = '16UC1; compressedDepth png'
        expect, mutation = 'invalid', 'compressedDepth'
    return factory.new('sensor_msgs/msg/CompressedImage',
                       header=factory.header(stamp, 'fuzz_camera'), format=fmt,
                       data=np.frombuffer(data, np.uint8)), expect, mutation


def fuzz_cases(factory, count, seed=0, compressed=None):
    """Yield ``count`` :class:`FuzzCase` s (see module docs).

    Args:
        factory: a message factory (``new``, ``header``).
        compressed: True for CompressedImage only, False for Image only, None
            for both (a node subscribes to one type; replay reads either).

    """
    rng = np.random.default_rng(seed)
    for index in range(count):
        stamp = STAMP0 + index * 33_333_333
        use_compressed = rng.random() < 0.4 if compressed is None else compressed
        make = _compressed_case if use_compressed else _raw_case
        msg, expect, mutation = make(rng, factory, stamp)
        if rng.random() < 0.04:
            msg.header.stamp.sec, msg.header.stamp.nanosec = 0, 0
            expect, mutation = 'invalid', 'missing stamp'
        yield FuzzCase(index, msg, expect, mutation)


def resident_mb():
    """Resident set size of this process in MiB (Linux), NaN elsewhere."""
    try:
        with open('/proc/self/statm') as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return float('nan')
    return pages * os.sysconf('SC_PAGE_SIZE') / 2 ** 20


@dataclasses.dataclass
class FuzzReport:
    """What :func:`drive` saw."""

    cases: int = 0
    scored: int = 0
    refused: int = 0
    by_kind: dict = dataclasses.field(default_factory=dict)
    wrong: list = dataclasses.field(default_factory=list)
    rss_mb: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def rss_growth_mb(self):
        """RSS growth from the end of the first quarter (warm-up) to the end."""
        if len(self.rss_mb) < 2:
            return 0.0
        return self.rss_mb[-1] - self.rss_mb[0]


def drive(cases, feed, outcome, timeout_s=10.0):
    """Feed each case and check what became of it.

    Args:
        cases: :class:`FuzzCase` s (a list, so its length is known).
        feed: ``msg -> None``: hand one message to the consumer.
        outcome: ``() -> (scored count, {malformed kind: count})``: the
            consumer's counters, polled until one of them moves.

    Returns:
        a :class:`FuzzReport`; ``wrong`` lists cases whose outcome broke
        their expectation, or that nothing accounted for within ``timeout_s``.

    """
    report = FuzzReport()
    start = time.monotonic()
    scored, kinds = outcome()
    checkpoints = {len(cases) // 4, len(cases) - 1}
    for case in cases:
        feed(case.msg)
        deadline = time.monotonic() + timeout_s
        while True:
            now_scored, now_kinds = outcome()
            if now_scored != scored or now_kinds != kinds:
                break
            if time.monotonic() > deadline:
                report.wrong.append((case.index, case.mutation, case.expect, 'no outcome'))
                break
            time.sleep(0.0002)
        new_kinds = {k: v - kinds.get(k, 0) for k, v in now_kinds.items() if v != kinds.get(k, 0)}
        got = 'valid' if now_scored > scored else 'invalid'
        for kind, count in new_kinds.items():
            report.by_kind[kind] = report.by_kind.get(kind, 0) + count
        if case.expect != 'either' and got != case.expect:
            report.wrong.append((case.index, case.mutation, case.expect, got, new_kinds))
        report.scored += got == 'valid'
        report.refused += got == 'invalid'
        report.cases += 1
        scored, kinds = now_scored, now_kinds
        if case.index in checkpoints:
            report.rss_mb.append(resident_mb())
    report.seconds = time.monotonic() - start
    return report
