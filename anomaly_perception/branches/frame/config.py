"""The frame node's parameters, as one typed configuration.

The ROS 2 node declares exactly these fields as parameters (with their
descriptions, ranges and read-only flags), ``config/frame_anomaly.yaml``
sets them, and ``replay`` uses the same dataclass, so a value means the same
on the robot and offline.
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

from ...config import field
from ...config import NodeParameters
from ...stream.node_config import FlagNodeConfig


@dataclasses.dataclass
class FrameNodeConfig(FlagNodeConfig):
    """Parameters of ``frame_anomaly_node`` (see config/frame_anomaly.yaml).

    ``configure_time`` parameters are read by the lifecycle ``configure``
    transition and can change only while the node is unconfigured; the
    others change live.
    """

    model_dir: str = field('', 'frame model directory; empty = the shipped frame_rnvp_oe',
                           configure_time=True)
    target_fpr: float = field(0.05, 'false-alarm rate on normal frames that turns the flag '
                              'on (on probability = 1 - target_fpr)', range=(0.0001, 0.5))
    marker_distance_m: float = field(1.5, 'how far in front of the camera the text marker '
                                     'floats', range=(0.1, 50.0))

    def hazard_config(self, on_probability=None):
        """Return the hazard filter's settings (on probability ``1 - target_fpr`` unless given)."""
        return self.flag_config(1.0 - self.target_fpr if on_probability is None
                                else on_probability)


PARAMETERS = NodeParameters(FrameNodeConfig, 'frame_anomaly_node')
config_from_parameters = PARAMETERS.config_from_parameters
parameter_specs = PARAMETERS.parameter_specs
parameter_file = PARAMETERS.parameter_file
