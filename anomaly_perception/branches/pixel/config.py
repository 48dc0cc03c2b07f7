"""The pixel node's parameters, as one typed configuration (node, replay and YAML alike)."""

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
class PixelNodeConfig(FlagNodeConfig):
    """Parameters of ``pixel_anomaly_node``.

    ``configure_time`` parameters are read by the lifecycle ``configure``
    transition and can change only while the node is unconfigured; the
    others change live. The hazard flag (``~/hazard``) is the frame-level
    score's: see :class:`~...stream.node_config.FlagNodeConfig`.
    """

    model_dir: str = field('', 'pixel model directory; empty = the shipped pixel_erfnet',
                           configure_time=True)
    target_fpr: float = field(0.0, 'share of normal pixels above the anomaly mask threshold; '
                              "0 = the model's own (a place model's calibrated target)",
                              range=(0.0, 0.5))
    frame_target_fpr: float = field(0.01, 'share of normal frames whose score turns the hazard '
                                    'flag on, for a model without a held-out patrol (on '
                                    'probability = 1 - frame_target_fpr)', range=(0.0001, 0.5))
    overlay_alpha: float = field(0.5, 'opacity of the red tint on ~/overlay', range=(0.0, 1.0))


PARAMETERS = NodeParameters(PixelNodeConfig, 'pixel_anomaly_node')
config_from_parameters = PARAMETERS.config_from_parameters
parameter_specs = PARAMETERS.parameter_specs
parameter_file = PARAMETERS.parameter_file
