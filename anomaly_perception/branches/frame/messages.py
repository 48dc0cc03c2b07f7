"""The frame node's output messages, built the same way live and in replay.

Topics, relative to the node (``frame_anomaly``), every message stamped
with the input image's header (a MarkerArray carries it in its marker):

* ``~/score`` (vision_msgs/Classification): ``anomaly`` with the calibrated
  probability and ``raw_score`` with the NLL in nats, or ``unscorable``
  when the frame could not be scored;
* ``~/hazard`` (vision_msgs/Classification): ``hazard`` or ``clear`` with
  the smoothed probability, after hysteresis;
* ``~/markers`` (visualization_msgs/MarkerArray): a text marker in the
  camera frame showing the state and score, coloured by it;
* ``/diagnostics`` (diagnostic_msgs/DiagnosticArray): rates, drops,
  latency, backend and model.
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

import math

from ...io.diagnostics import diagnostics_message
from ...io.diagnostics import DIAGNOSTICS_TOPIC
from ...io.diagnostics import DIAGNOSTICS_TYPE  # noqa: F401 - a messages module names it
from ...io.messages import hazard_classification
from ...io.messages import score_classification

NODE_NAME = 'frame_anomaly'
OUTPUT_TYPES = {
    'score': 'vision_msgs/msg/Classification',
    'hazard': 'vision_msgs/msg/Classification',
    'markers': 'visualization_msgs/msg/MarkerArray',
}


def output_topics(namespace=''):
    """Full topic names of the node's outputs in ``namespace`` ('' = root)."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    topics = {k: f'{ns}/{NODE_NAME}/{k}' for k in OUTPUT_TYPES}
    topics['diagnostics'] = DIAGNOSTICS_TOPIC
    return topics


class FrameMessageBuilder:
    """Build the node's messages with a message factory (rosbags or rclpy)."""

    def __init__(self, factory, marker_distance_m=1.5):
        self.f = factory
        self.marker_distance_m = marker_distance_m

    @classmethod
    def from_config(cls, factory, config):
        """Build with the settings of a :class:`~.config.FrameNodeConfig`."""
        return cls(factory, config.marker_distance_m)

    def reconfigure(self, config):
        """Take live parameter changes (the marker's distance)."""
        self.marker_distance_m = config.marker_distance_m

    def score(self, header, probability, raw):
        """``~/score``: calibrated probability and raw score of one frame."""
        return score_classification(self.f, header, probability, raw)

    def hazard(self, header, state):
        """``~/hazard``: the flag after smoothing and hysteresis."""
        return hazard_classification(self.f, header, state)

    def markers(self, header, state, probability):
        """``~/markers``: a text marker floating in front of the camera."""
        f = self.f
        if state.flag:
            colour, text = (1.0, 0.15, 0.1), f'HAZARD {state.smoothed:.2f}'
        else:
            colour, text = (0.2, 0.9, 0.3), f'clear {state.smoothed:.2f}'
        if probability is None or not math.isfinite(probability):
            text += ' (unscorable frame)'
        marker = f.new(
            'visualization_msgs/msg/Marker', header=header, ns=NODE_NAME, id=0,
            type=9, action=0,  # TEXT_VIEW_FACING, ADD
            pose=f.new('geometry_msgs/msg/Pose',
                       position=f.new('geometry_msgs/msg/Point', x=0.0, y=-0.3,
                                      z=float(self.marker_distance_m)),
                       orientation=f.new('geometry_msgs/msg/Quaternion', w=1.0)),
            scale=f.new('geometry_msgs/msg/Vector3', x=0.0, y=0.0, z=0.15),
            color=f.new('std_msgs/msg/ColorRGBA', r=colour[0], g=colour[1], b=colour[2],
                        a=1.0),
            text=text)
        return f.new('visualization_msgs/msg/MarkerArray', markers=[marker])

    def outputs(self, header, result):
        """Build the per-frame messages for one :class:`~.stream.FrameResult`.

        Returns:
            ``{'score': ..., 'hazard': ..., 'markers': ...}`` (keys of
            :data:`OUTPUT_TYPES`), each stamped with ``header``.

        """
        return {
            'score': self.score(header, result.probability, result.raw),
            'hazard': self.hazard(header, result.state),
            'markers': self.markers(header, result.state, result.probability),
        }

    def diagnostics(self, header, snapshot, backend, model_name, model_ok=True):
        """``/diagnostics``: see :func:`~...io.diagnostics.diagnostics_message`."""
        return diagnostics_message(self.f, NODE_NAME, header, snapshot, backend, model_name,
                                   model_ok)
