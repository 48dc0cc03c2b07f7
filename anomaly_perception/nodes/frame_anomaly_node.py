"""``frame_anomaly_node``: per-frame anomaly scores and a hazard flag for a camera.

A managed (lifecycle) node (see :mod:`.perception_node`): subscribes to
``image`` (sensor_msgs/Image, or CompressedImage with ``input_transport:
compressed``) and publishes ``~/score``, ``~/hazard``, ``~/markers`` (see
:mod:`anomaly_perception.branches.frame.messages`), each stamped with the image's
header, and ``/diagnostics``. Each frame goes through
:class:`~anomaly_perception.branches.frame.stream.FrameStream`, the same
object ``anomaly-perception replay`` runs.

    ros2 run anomaly_perception frame_anomaly_node --ros-args -r image:=/camera/image_raw
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

import sys

from .perception_node import PerceptionNode
from .perception_node import run
from ..branches.frame.messages import NODE_NAME


class FrameAnomalyNode(PerceptionNode):
    """The frame branch's node (see module docs); logs each change of the hazard flag."""

    BRANCH = 'frame'
    NODE_NAME = NODE_NAME

    def on_result(self, result):
        if result.state.changed:
            self.get_logger().info(f"hazard flag {'ON' if result.state.flag else 'off'} "
                                   f'(smoothed probability {result.state.smoothed:.2f})')


def main(args=None):
    """Run the node until SIGINT/SIGTERM (exit 0); exit 1 with one log line if it cannot start."""
    return run(FrameAnomalyNode, args)


if __name__ == '__main__':
    sys.exit(main())
