"""The instance branch's messages: detections, ids, refined map, hazards and markers."""

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

from anomaly_perception.branches.instance.detector import InstanceFrameResult
from anomaly_perception.branches.instance.floor import FloorCamera
from anomaly_perception.branches.instance.floor import place_instances
from anomaly_perception.branches.instance.messages import InstanceMessageBuilder
from anomaly_perception.branches.instance.messages import MARKER_DELETEALL
from anomaly_perception.branches.instance.messages import output_topics
from anomaly_perception.branches.instance.messages import OUTPUT_TYPES
from anomaly_perception.io.images import image_to_numpy
import numpy as np
import pytest


def _result():
    ids = np.zeros((40, 60), np.uint16)
    ids[30:36, 10:20] = 1          # low in the image: on the floor
    ids[5:9, 40:50] = 2            # above the horizon: not placed
    camera = FloorCamera(fx=50.0, fy=50.0, cx=29.5, cy=19.5, height=0.3, pitch=0.0)
    hazards, not_placed = place_instances(ids, camera)
    assert [h.instance for h in hazards] == [1] and not_placed == [2]
    refined = np.linspace(-1, 2, ids.size, dtype=np.float32).reshape(ids.shape)
    refined[0, 0] = np.nan
    return InstanceFrameResult(
        ids=ids, scores=np.array([0.9, 0.6], np.float32),
        boxes=np.array([[10, 30, 19, 35], [40, 5, 49, 8]]), refined=refined,
        anomaly=np.zeros(ids.shape, np.float32), points=np.zeros((2, 2), np.float32),
        hazards=hazards)


def test_outputs_carry_the_header_and_the_result(factory):
    result = _result()
    builder = InstanceMessageBuilder(factory, marker_lifetime_s=1.5)
    header = factory.header(1_234_567_890, 'robomaster/camera_optical_link')
    image = np.full((40, 60, 3), 100, np.uint8)
    out = builder.outputs(header, result, image=image, overlay=True)
    assert set(out) == set(OUTPUT_TYPES)
    for name, msg in out.items():
        h = msg.markers[1].header if name == 'markers' else msg.header
        stamp = (h.stamp.sec, h.stamp.nanosec, h.frame_id)
        assert stamp == (1, 234_567_890, 'robomaster/camera_optical_link')
        raw = factory.typestore.serialize_cdr(msg, OUTPUT_TYPES[name])
        assert len(raw) > 0
    np.testing.assert_array_equal(image_to_numpy(out['instance_ids'], output='passthrough'),
                                  result.ids)
    np.testing.assert_array_equal(image_to_numpy(out['refined_map'], output='passthrough'),
                                  result.refined)
    dets = out['instances'].detections
    assert [d.id for d in dets] == ['1', '2']
    assert dets[0].results[0].hypothesis.class_id == 'anomaly'
    assert dets[0].results[0].hypothesis.score == pytest.approx(0.9)
    assert (dets[0].bbox.center.position.x, dets[0].bbox.center.position.y) == (14.5, 32.5)
    assert (dets[0].bbox.size_x, dets[0].bbox.size_y) == (10.0, 6.0)
    (pose,) = out['hazards'].poses
    assert (pose.position.x, pose.position.y, pose.position.z) == pytest.approx(
        result.hazards[0].position)
    markers = out['markers'].markers
    assert markers[0].action == MARKER_DELETEALL
    assert len(markers) == 3                        # one disc and one label per placed one
    for m in markers[1:]:
        assert (m.lifetime.sec, m.lifetime.nanosec) == (1, 500_000_000)
    assert markers[1].scale.x == pytest.approx(max(result.hazards[0].width, 0.05))
    overlay = image_to_numpy(out['overlay'])
    assert overlay.shape == image.shape and not np.array_equal(overlay, image)


def test_overlay_only_when_asked(factory):
    out = InstanceMessageBuilder(factory).outputs(factory.header(0, 'cam'), _result(),
                                                  image=np.zeros((40, 60, 3), np.uint8))
    assert 'overlay' not in out


def test_no_instances_still_clears_the_markers(factory):
    empty = InstanceFrameResult(
        ids=np.zeros((4, 4), np.uint16), scores=np.zeros(0, np.float32),
        boxes=np.zeros((0, 4), np.int64), refined=np.zeros((4, 4), np.float32),
        anomaly=np.zeros((4, 4), np.float32), points=np.zeros((0, 2), np.float32))
    out = InstanceMessageBuilder(factory).outputs(factory.header(5, 'cam'), empty)
    assert out['instances'].detections == [] and out['hazards'].poses == []
    (clear,) = out['markers'].markers
    assert clear.action == MARKER_DELETEALL and clear.header.frame_id == 'cam'


def test_topics():
    topics = output_topics('robomaster')
    assert topics['instances'] == '/robomaster/instance_anomaly/instances'
    assert topics['diagnostics'] == '/diagnostics'
