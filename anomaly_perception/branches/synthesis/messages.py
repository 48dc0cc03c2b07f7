"""The synthesis branch's output messages (written by ``replay --pipelines synthesis``).

Topics, relative to ``synthesis_anomaly`` (no node publishes them live: the
branch runs offline), one message per keyframe, stamped with the keyframe
image's header:

* ``~/anomaly_map`` (sensor_msgs/Image, 32FC1, the image's resolution): the
  input-edit distance averaged over segments (NaN outside the model's
  centre crop), as ``synthesize`` writes to ``<stem>.anomaly.npy``;
* ``~/distance_map`` (32FC1): the distance before segment refinement;
* ``~/edit`` (rgb8, the model's resolution): the DDPM's edit of the frame,
  its idea of the same place without the anomaly.
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

import numpy as np

from ...io.diagnostics import diagnostics_message
from ...io.diagnostics import DIAGNOSTICS_TOPIC
from ...io.diagnostics import DIAGNOSTICS_TYPE  # noqa: F401 - a messages module names it
from ...io.images import numpy_to_image

NODE_NAME = 'synthesis_anomaly'
OUTPUT_TYPES = {
    'anomaly_map': 'sensor_msgs/msg/Image',
    'distance_map': 'sensor_msgs/msg/Image',
    'edit': 'sensor_msgs/msg/Image',
}


def output_topics(namespace=''):
    """Full topic names of the branch's outputs in ``namespace`` ('' = root)."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    topics = {k: f'{ns}/{NODE_NAME}/{k}' for k in OUTPUT_TYPES}
    topics['diagnostics'] = DIAGNOSTICS_TOPIC
    return topics


class SynthesisMessageBuilder:
    """Build the synthesis branch's messages with a message factory (rosbags or rclpy)."""

    def __init__(self, factory):
        self.f = factory

    @classmethod
    def from_config(cls, factory, config):
        """Build for a ``SynthesisConfig`` (nothing in it changes the messages)."""
        return cls(factory)

    def outputs(self, header, result):
        """Build one keyframe's messages from a ``SynthesisFrame`` or a ``SynthesisResult``.

        Raises:
            ValueError: a frame that was no keyframe (it has no edit).

        """
        if hasattr(result, 'synthesis'):
            if result.synthesis is None:
                raise ValueError('not a keyframe: it has no edit to publish')
            result = result.synthesis
        return {
            'anomaly_map': numpy_to_image(np.asarray(result.anomaly, np.float32), '32FC1',
                                          header, self.f),
            'distance_map': numpy_to_image(np.asarray(result.distance, np.float32), '32FC1',
                                           header, self.f),
            'edit': numpy_to_image(np.ascontiguousarray(result.edit, np.uint8), 'rgb8', header,
                                   self.f),
        }

    def diagnostics(self, header, snapshot, backend, model_name, model_ok=True):
        """``/diagnostics``: see :func:`~...io.diagnostics.diagnostics_message`."""
        return diagnostics_message(self.f, NODE_NAME, header, snapshot, backend, model_name,
                                   model_ok)
