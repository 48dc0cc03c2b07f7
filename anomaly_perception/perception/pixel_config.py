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

"""The pixel node's parameters, as one typed configuration (node, replay and YAML alike)."""

import dataclasses

from .frame_config import BACKEND_CHOICES
from ..config import config_from_dict
from ..config import field
from ..config import parameter_file_of
from ..config import parameter_specs_of


@dataclasses.dataclass
class PixelNodeConfig:
    """Parameters of ``pixel_anomaly_node``.

    ``configure_time`` parameters are read by the lifecycle ``configure``
    transition and can change only while the node is unconfigured; the
    others change live.
    """

    autostart: bool = field(True, 'configure and activate when the node starts (false: wait '
                            'for a lifecycle manager)', configure_time=True)
    model_dir: str = field('', 'pixel model directory; empty = the shipped pixel_erfnet',
                           configure_time=True)
    backend: str = field('auto', 'inference backend', choices=BACKEND_CHOICES,
                         configure_time=True)
    device: str = field('cpu', 'torch device for the torch backend', choices=('cpu', 'cuda'),
                        configure_time=True)
    input_transport: str = field('raw', "'raw' (sensor_msgs/Image) or 'compressed' "
                                 '(sensor_msgs/CompressedImage)',
                                 choices=('raw', 'compressed'), configure_time=True)
    qos_reliability: str = field('best_effort', 'image subscription reliability (best_effort '
                                 'also receives from reliable publishers)',
                                 choices=('best_effort', 'reliable'), configure_time=True)
    qos_depth: int = field(1, 'image subscription queue depth', range=(1, 1000),
                           configure_time=True)
    process_all_frames: bool = field(False, 'process every frame in order (bag replay) '
                                     'instead of only the latest', configure_time=True)
    max_rate_hz: float = field(0.0, 'process at most this many frames per second (0 = all '
                               'that the model keeps up with)', range=(0.0, 1000.0))
    target_fpr: float = field(0.05, 'share of normal pixels above the anomaly mask threshold',
                              range=(0.0001, 0.5))
    overlay_alpha: float = field(0.5, 'opacity of the red tint on ~/overlay', range=(0.0, 1.0))
    diagnostics_period_s: float = field(1.0, 'seconds between /diagnostics messages',
                                        range=(0.1, 60.0))


def config_from_parameters(values, source='ROS parameters'):
    """Build a :class:`PixelNodeConfig` from a ``{name: value}`` dict, checked strictly."""
    return config_from_dict(PixelNodeConfig, values, source=source)


def parameter_specs():
    """``(name, default, description, range, choices, configure_time)`` per parameter."""
    return parameter_specs_of(PixelNodeConfig)


def parameter_file():
    """Return config/pixel_anomaly.yaml's text: every parameter, its default and help."""
    return parameter_file_of(PixelNodeConfig, 'pixel_anomaly_node')
