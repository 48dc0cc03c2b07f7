"""What the frame node does, tested without ROS 2: parameters, hand-off, hazard, messages."""

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

import math
import threading
import time

from anomaly_perception.branches.frame.config import config_from_parameters
from anomaly_perception.branches.frame.config import FrameNodeConfig
from anomaly_perception.branches.frame.config import parameter_specs
from anomaly_perception.branches.frame.messages import FrameMessageBuilder
from anomaly_perception.branches.frame.messages import output_topics
from anomaly_perception.errors import ConfigError
from anomaly_perception.io.messages import RosbagsMessageFactory
from anomaly_perception.stream.flow import FrameSlot
from anomaly_perception.stream.flow import MalformedCounter
from anomaly_perception.stream.flow import RateLimiter
from anomaly_perception.stream.flow import StreamStats
from anomaly_perception.stream.flow import TransportGapCounter
from anomaly_perception.stream.hazard import HazardConfig
from anomaly_perception.stream.hazard import HazardFilter
import numpy as np
import pytest


# --- parameters -------------------------------------------------------------------------------


def test_defaults_are_valid_and_every_parameter_is_described():
    cfg = config_from_parameters({})
    assert cfg == FrameNodeConfig()
    hazard = cfg.hazard_config()
    assert hazard.on_probability == pytest.approx(0.95)
    assert hazard.off_probability == pytest.approx(0.85)
    for name, default, description, rng, choices, read_only in parameter_specs():
        assert description, name
        if rng is not None:
            assert rng[0] <= default <= rng[1], name


@pytest.mark.parametrize('values,match', [
    ({'max_rate_hz': -1.0}, r'max_rate_hz: -1.0 is out of range \[0.0, 1000.0\]'),
    ({'target_fpr': 0.9}, r'target_fpr: 0.9 is out of range'),
    ({'qos_depth': 0}, r'qos_depth: 0 is out of range \[1, 1000\]'),
    ({'backend': 'tflite'}, r"backend: expected one of 'auto', 'torch'"),
    ({'input_transport': 'theora'}, r"input_transport: expected one of 'raw', 'compressed'"),
    ({'smoothing': 'fast'}, r"smoothing: expected a number, got str 'fast'"),
    ({'max_rate': 10.0}, r"max_rate: unknown key \(did you mean 'max_rate_hz'\?\)"),
])
def test_parameter_mapping_rejects_bad_values(values, match):
    with pytest.raises(ConfigError, match=match):
        config_from_parameters(values, 'node /robomaster/frame_anomaly')


def test_hazard_config_refuses_off_above_on():
    with pytest.raises(ValueError, match='off_probability'):
        HazardConfig(on_probability=0.5, off_probability=0.6)


# --- the hand-off slot and the rate cap -------------------------------------------------------


def test_latest_slot_keeps_only_the_newest_frame():
    slot = FrameSlot('latest')
    for i in range(100):
        slot.put(i)
    assert slot.get(timeout=0) == 99
    assert slot.dropped == 99
    assert slot.get(timeout=0.01) is None


def test_latest_slot_never_blocks_the_subscriber_under_load():
    slot = FrameSlot('latest')
    seen, worst_put = [], [0.0]

    def slow_worker():
        while True:
            item = slot.get(timeout=0.5)
            if item is None:
                return
            seen.append(item)
            time.sleep(0.002)  # a model slower than the camera

    worker = threading.Thread(target=slow_worker)
    worker.start()
    for i in range(500):
        start = time.perf_counter()
        slot.put(i)
        worst_put[0] = max(worst_put[0], time.perf_counter() - start)
        time.sleep(0.0002)
    slot.close()
    worker.join()
    assert worst_put[0] < 0.05
    assert seen == sorted(seen) and seen[-1] == 499
    assert len(seen) + slot.dropped == 500 and slot.dropped > 100


def test_all_mode_keeps_every_frame_in_order():
    slot = FrameSlot('all')
    for i in range(10):
        slot.put(i)
    assert [slot.get(0) for _ in range(10)] == list(range(10)) and slot.dropped == 0


def test_rate_cap_uses_stamps():
    limiter = RateLimiter(10.0)
    stamps = [int(i * 1e9 / 30) for i in range(30)]  # 1 s of a 30 Hz camera
    passed = [s for s in stamps if limiter.allow(s)]
    assert len(passed) == 10 and limiter.skipped == 20
    assert all(RateLimiter(0).allow(s) for s in stamps)


# --- hazard flag --------------------------------------------------------------------------------


def _run(filter_, probabilities, hz=10.0):
    return [filter_.update(int(i * 1e9 / hz), p) for i, p in enumerate(probabilities)]


def test_hysteresis_and_minimum_durations():
    f = HazardFilter(HazardConfig(smoothing=1.0, on_probability=0.9, off_probability=0.5,
                                  min_on_s=0.3, min_off_s=1.0))
    probs = ([0.1] * 5          # 0.0-0.4 s: clear
             + [0.95] * 3       # 0.5-0.7 s: above, but only 0.2 s: stays clear
             + [0.1] * 2        # 0.8-0.9 s
             + [0.95] * 5       # 1.0-1.4 s: on at 1.3 s (0.3 s above)
             + [0.7] * 10       # between the thresholds: stays on
             + [0.3] * 15)      # below off from 2.5 s: off at 3.5 s
    states = _run(f, probs)
    flags = [s.flag for s in states]
    on_at = flags.index(True)
    assert on_at == 13  # t = 1.3 s
    assert not any(flags[:13])
    off_at = on_at + flags[on_at:].index(False)
    assert off_at == 35  # t = 3.5 s: 1.0 s after dropping below 0.5 at 2.5 s
    assert [i for i, s in enumerate(states) if s.changed] == [13, 35]


def test_smoothing_is_an_exponential_moving_average():
    f = HazardFilter(HazardConfig(smoothing=0.5, on_probability=0.99, off_probability=0.0,
                                  min_on_s=0.0, min_off_s=0.0))
    states = _run(f, [0.0, 1.0, 1.0])
    assert [s.smoothed for s in states] == pytest.approx([0.0, 0.5, 0.75])


def test_unscorable_frames_count_as_hazard_and_time_reset():
    f = HazardFilter(HazardConfig(smoothing=1.0, on_probability=0.9, off_probability=0.5,
                                  min_on_s=0.0, min_off_s=0.0))
    assert f.update(0, float('nan')).flag
    assert not f.update(100, 0.1).flag
    f.update(200, 0.95)
    assert f.update(50, 0.1).smoothed == 0.1  # stamps went backwards: a fresh start


# --- diagnostics and messages -------------------------------------------------------------------


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_diagnostics_numbers_match_a_scripted_run():
    clock = _Clock()
    stats = StreamStats(window_s=5.0, clock=clock)
    for i in range(100):           # 10 s of a 10 Hz camera; every other frame processed
        clock.t = i * 0.1
        stats.frame_received()
        if i % 2 == 0:
            stats.frame_processed(0.010 + 0.001 * (i % 10))
    stats.frame_malformed('Image data has 7 bytes but height * step = 12')
    clock.t = 12.0
    snap = stats.snapshot()
    assert (snap['received'], snap['processed'], snap['malformed']) == (100, 50, 1)
    assert snap['since_last_frame_s'] == pytest.approx(2.1)
    # The 5 s window ending at 12 s holds the frames from 7.0 s on.
    assert snap['input_rate_hz'] == pytest.approx(30 / 5.0)
    assert snap['processed_rate_hz'] == pytest.approx(15 / 5.0)
    lat = [0.010 + 0.001 * (i % 10) for i in range(0, 100, 2)]
    assert snap['latency_median_ms'] == pytest.approx(np.median(lat) * 1e3)
    assert snap['latency_p99_ms'] == pytest.approx(np.percentile(lat, 99) * 1e3)
    f = RosbagsMessageFactory()
    msg = FrameMessageBuilder(f).diagnostics(
        f.header(12_000_000_000, ''), {**snap, 'dropped': 3}, {'backend': 'onnxruntime'},
        'frame_rnvp_oe')
    status = msg.status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == 1 and 'no image for 2.1 s' in status.message
    assert values['received'] == '100' and values['dropped'] == '3'
    assert values['processed_rate_hz'] == '3.0' and values['backend'] == 'onnxruntime'


def test_messages_carry_the_input_header():
    f = RosbagsMessageFactory()
    header = f.header(1_767_225_600_123_456_789, 'robomaster/camera_optical_link')
    builder = FrameMessageBuilder(f, marker_distance_m=2.0)
    state = HazardFilter().update(0, 0.99)
    score = builder.score(header, 0.97, 412.5)
    hazard = builder.hazard(header, state)
    markers = builder.markers(header, state, 0.97)
    for msg in (score, hazard, markers.markers[0]):
        assert msg.header is header
    pairs = [(h.class_id, h.score) for h in score.results]
    assert pairs == [('anomaly', 0.97), ('raw_score', 412.5)]
    assert hazard.results[0].class_id in ('hazard', 'clear')
    marker = markers.markers[0]
    assert marker.pose.position.z == 2.0 and marker.pose.orientation.w == 1.0
    assert marker.text.split()[0] in ('HAZARD', 'clear')
    unscorable = builder.score(header, float('nan'), float('nan'))
    assert [h.class_id for h in unscorable.results] == ['unscorable']
    for msgtype, msg in (('vision_msgs/msg/Classification', score),
                         ('visualization_msgs/msg/MarkerArray', markers)):
        f.typestore.serialize_cdr(msg, msgtype)  # well-formed for a bag


def test_output_topics_follow_the_namespace():
    assert output_topics('robomaster') == {
        'score': '/robomaster/frame_anomaly/score', 'hazard': '/robomaster/frame_anomaly/hazard',
        'markers': '/robomaster/frame_anomaly/markers', 'diagnostics': '/diagnostics'}
    assert output_topics('')['score'] == '/frame_anomaly/score'
    assert math.isfinite(FrameNodeConfig().marker_distance_m)


def test_malformed_messages_are_counted_per_kind_and_logged_once_per_period():
    clock = _Clock()
    counter = MalformedCounter(period_s=10.0, clock=clock)
    lines = []
    for i in range(30):
        clock.t = i * 0.5                      # 15 s of a bad stream, 2 Hz, two kinds
        lines.append(counter.add('wrong data length', f'frame {i} has 7 bytes'))
        if i % 3 == 0:
            lines.append(counter.add('missing stamp', 'zero stamp'))
    logged = [line for line in lines if line]
    assert counter.snapshot() == {'wrong data length': 30, 'missing stamp': 10}
    assert counter.total == 40
    # Each kind at once, then again after 10 s with the number seen since.
    assert logged[0] == 'skipped a malformed image (wrong data length): frame 0 has 7 bytes'
    assert logged[1] == 'skipped a malformed image (missing stamp): zero stamp'
    assert logged[2:] == [
        'skipped a malformed image (wrong data length) (20 of this kind since the last '
        'report): frame 20 has 7 bytes',
        'skipped a malformed image (missing stamp) (7 of this kind since the last report): '
        'zero stamp']
    assert counter.last_reason == 'frame 29 has 7 bytes'


def test_transport_losses_come_from_sequence_numbers_or_stamp_gaps():
    seq = TransportGapCounter()
    for n in (1, 2, 3, 6, 7, 10):             # 4, 5, 8 and 9 never arrived
        seq.observe(1_000 * n, sequence=n)
    assert seq.dropped == 4 and seq.method == 'publisher sequence numbers'
    seq.observe(11_000, sequence=1)           # a restarted publisher starts over
    seq.observe(12_000, sequence=2)
    assert seq.dropped == 4

    stamps = TransportGapCounter()
    period = 33_333_333
    frames = [i for i in range(40) if i not in (12, 13, 30)]
    for i in frames:
        stamps.observe(1_700_000_000_000_000_000 + i * period)
    assert stamps.dropped == 3 and stamps.method == 'image stamps'
    jittered = TransportGapCounter()
    rng = np.random.default_rng(0)
    t = 0
    for _ in range(200):                      # +-20 % jitter is no loss
        t += int(period * rng.uniform(0.8, 1.2))
        jittered.observe(t)
    assert jittered.dropped == 0


def test_frame_stream_refuses_what_it_cannot_score_with_a_kind(factory):
    from anomaly_perception.branches.frame.stream import FrameStream
    from anomaly_perception.errors import ImageMessageError
    from anomaly_perception.io.images import numpy_to_image
    header = factory.header(1_767_225_600_000_000_000, 'cam')
    cases = {
        'missing stamp': numpy_to_image(np.zeros((4, 4, 3), np.uint8), 'bgr8',
                                        factory.header(0, 'cam'), factory),
        'not a colour image': numpy_to_image(np.zeros((4, 4), np.uint8), 'mono8', header,
                                             factory),
        'image too small': numpy_to_image(np.zeros((1, 9, 3), np.uint8), 'rgb8', header,
                                          factory),
    }
    for kind, msg in cases.items():
        with pytest.raises(ImageMessageError) as err:
            FrameStream.decode(msg)
        assert err.value.kind == kind
    deep = np.full((4, 4), 0xABCD, np.uint16)
    rgb = FrameStream.decode(numpy_to_image(deep, 'bayer_rggb16', header, factory))
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 4, 3) and (rgb == 0xAB).all()
