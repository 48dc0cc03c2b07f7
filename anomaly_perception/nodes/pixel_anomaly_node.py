"""``pixel_anomaly_node``: per-pixel anomaly images and semantic ids for a camera.

A managed (lifecycle) node with the frame node's conventions (see
:mod:`.perception_node`): subscribes to ``image`` and publishes, each with
the image's header and at the image's resolution, ``~/anomaly_map``
(32FC1), ``~/anomaly_mask`` (mono8), ``~/semantic`` (mono8), ``~/score``
(frame-level, vision_msgs/Classification) and ``~/overlay`` (rgb8, drawn
only while something subscribes to it), plus ``~/label_info``
(vision_msgs/LabelInfo, transient local: late subscribers get it) and
``/diagnostics``. See :mod:`anomaly_perception.branches.pixel.messages`. Each
frame goes through :class:`~anomaly_perception.branches.pixel.stream.PixelStream`,
the same object ``anomaly-perception replay --pipelines pixel`` and
``score --branch pixel`` run.

    ros2 run anomaly_perception pixel_anomaly_node --ros-args -r image:=/camera/image_raw
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

from rclpy.qos import QoSDurabilityPolicy
from rclpy.qos import QoSHistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy

from .perception_node import PerceptionNode
from .perception_node import run
from ..branches.pixel.messages import LABEL_INFO_TYPE
from ..branches.pixel.messages import NODE_NAME

LABEL_INFO_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=1,
                            reliability=QoSReliabilityPolicy.RELIABLE,
                            durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)


class PixelAnomalyNode(PerceptionNode):
    """The pixel branch's node (see module docs)."""

    BRANCH = 'pixel'
    NODE_NAME = NODE_NAME

    def create_outputs(self, config):
        outputs = super().create_outputs(config)
        outputs['label_info'] = self.create_lifecycle_publisher(
            self.factory._cls(LABEL_INFO_TYPE), '~/label_info', LABEL_INFO_QOS)
        return outputs

    def on_activate(self, state):
        result = super().on_activate(state)
        header = self.factory.header(self.get_clock().now().nanoseconds, '')
        self.publish('label_info', self.builder.label_info(
            header, self.pipeline.detector.classes, self.pipeline.detector.threshold))
        return result

    def output_options(self):
        # The overlay is the only output that costs a full-size image blend: skip it unseen.
        return {'overlay': self._output_publishers['overlay'].get_subscription_count() > 0}


def main(args=None):
    """Run the node until SIGINT/SIGTERM (exit 0); exit 1 with one log line if it cannot start."""
    return run(PixelAnomalyNode, args)


if __name__ == '__main__':
    sys.exit(main())
