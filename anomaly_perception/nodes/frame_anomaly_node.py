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

"""``frame_anomaly_node``: per-frame anomaly scores and a hazard flag for a camera.

A managed (lifecycle) node (see :mod:`.perception_node`): subscribes to
``image`` (sensor_msgs/Image, or CompressedImage with ``input_transport:
compressed``) and publishes ``~/score``, ``~/hazard``, ``~/markers`` (see
:mod:`anomaly_perception.io.frame_messages`), each stamped with the image's
header, and ``/diagnostics``. Each frame goes through
:class:`~anomaly_perception.perception.frame_stream.FrameStream`, the same
object ``anomaly-perception replay`` runs.

    ros2 run anomaly_perception frame_anomaly_node --ros-args -r image:=/camera/image_raw
"""

import sys
import time

from .perception_node import PerceptionNode
from .perception_node import run
from ..io.frame_messages import FrameMessageBuilder
from ..io.frame_messages import NODE_NAME
from ..io.frame_messages import OUTPUT_TYPES
from ..perception.frame_config import config_from_parameters
from ..perception.frame_config import parameter_specs
from ..perception.frame_stream import FrameStream


class FrameAnomalyNode(PerceptionNode):
    """Wires topics and parameters to :class:`FrameStream` (see module docs)."""

    NODE_NAME = NODE_NAME

    def __init__(self, **kwargs):
        self.builder = None
        super().__init__(NODE_NAME, **kwargs)

    def parameter_specs(self):
        return parameter_specs()

    def make_config(self, values, source):
        return config_from_parameters(values, source)

    def load(self, config):
        stream = FrameStream.from_config(config)
        self.builder = FrameMessageBuilder(self.factory, config.marker_distance_m)
        return stream

    def create_outputs(self, config):
        return {key: self.create_lifecycle_publisher(self.factory._cls(msgtype), f'~/{key}', 10)
                for key, msgtype in OUTPUT_TYPES.items()}

    def reconfigure(self, config):
        self.pipeline.reconfigure(config)
        self.builder.marker_distance_m = config.marker_distance_m

    def describe_pipeline(self):
        if self.pipeline is None:
            return {}, ''
        return (self.pipeline.detector.backend.describe(),
                f'{self.pipeline.name} ({self.pipeline.model_dir})')

    def process_frame(self, msg, stamp_ns, received):
        stream = self.pipeline
        image = stream.decode(msg)
        result = stream.process([stamp_ns], [image])[0]
        for key, out in self.builder.outputs(msg.header, result).items():
            self.publish(key, out)
        self.stats.frame_processed(time.monotonic() - received)
        if result.state.changed:
            self.get_logger().info(f"hazard flag {'ON' if result.state.flag else 'off'} "
                                   f'(smoothed probability {result.state.smoothed:.2f})')

    def build_diagnostics(self, header, snapshot):
        backend, model = self.describe_pipeline()
        builder = self.builder or FrameMessageBuilder(self.factory)
        return builder.diagnostics(header, snapshot, backend, model,
                                   model_ok=not self.model_error)


def main(args=None):
    """Run the node until SIGINT/SIGTERM (exit 0); exit 1 with one log line if it cannot start."""
    return run(FrameAnomalyNode, args)


if __name__ == '__main__':
    sys.exit(main())
