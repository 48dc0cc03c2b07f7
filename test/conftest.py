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

"""Shared fixtures: message factories and small bags."""

from anomaly_perception.io.bags import BagWriter
from anomaly_perception.io.images import numpy_to_image
from anomaly_perception.io.messages import RosbagsMessageFactory
import numpy as np
import pytest


@pytest.fixture(params=['humble', 'jazzy'])
def factory(request):
    """Yield a rosbags message factory for each supported distribution."""
    return RosbagsMessageFactory(request.param)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def write_image_bag(path, frames, *, storage='mcap', distro='humble',
                    topic='/robomaster/camera/image_color', frame_id='camera_optical_link',
                    start_ns=1_700_000_000_000_000_000, period_ns=33_333_333):
    """Write RGB frames (uint8 [H, W, 3]) as a bgr8 image topic; return their stamps."""
    stamps = []
    with BagWriter(path, storage=storage, distro=distro) as bag:
        bag.add_topic(topic, 'sensor_msgs/msg/Image')
        for i, rgb in enumerate(frames):
            stamp = start_ns + i * period_ns
            header = bag.factory.header(stamp, frame_id)
            bag.write(topic, numpy_to_image(np.ascontiguousarray(rgb[..., ::-1]), 'bgr8',
                                            header, bag.factory))
            stamps.append(stamp)
    return stamps
