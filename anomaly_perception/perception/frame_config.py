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

"""The frame node's parameters, as one typed configuration.

The ROS 2 node declares exactly these fields as parameters (with their
descriptions, ranges and read-only flags), ``config/frame_anomaly.yaml``
sets them, and ``replay`` uses the same dataclass, so a value means the same
on the robot and offline.
"""

import dataclasses

from .hazard import HazardConfig
from ..config import config_from_dict
from ..config import field

BACKEND_CHOICES = ('auto', 'torch', 'onnxruntime', 'tensorrt')


@dataclasses.dataclass
class FrameNodeConfig:
    """Parameters of ``frame_anomaly_node`` (see config/frame_anomaly.yaml)."""

    model_dir: str = field('', 'frame model directory; empty = the shipped frame_rnvp_oe',
                           read_only=True)
    backend: str = field('auto', 'inference backend', choices=BACKEND_CHOICES, read_only=True)
    device: str = field('cpu', 'torch device for the torch backend', choices=('cpu', 'cuda'),
                        read_only=True)
    input_transport: str = field('raw', "'raw' (sensor_msgs/Image) or 'compressed' "
                                 '(sensor_msgs/CompressedImage)',
                                 choices=('raw', 'compressed'), read_only=True)
    qos_reliability: str = field('best_effort', 'image subscription reliability (best_effort '
                                 'also receives from reliable publishers)',
                                 choices=('best_effort', 'reliable'), read_only=True)
    qos_depth: int = field(1, 'image subscription queue depth', range=(1, 1000),
                           read_only=True)
    process_all_frames: bool = field(False, 'score every frame in order (bag replay) instead '
                                     'of only the latest', read_only=True)
    max_rate_hz: float = field(0.0, 'score at most this many frames per second (0 = all '
                               'that the model keeps up with)', range=(0.0, 1000.0))
    target_fpr: float = field(0.05, 'false-alarm rate on normal frames that turns the flag '
                              'on (on probability = 1 - target_fpr)', range=(0.0001, 0.5))
    hysteresis: float = field(0.1, 'the flag turns off this much below the on probability',
                              range=(0.0, 0.5))
    smoothing: float = field(0.3, 'weight of the newest probability in the moving average',
                             range=(0.01, 1.0))
    min_on_s: float = field(0.3, 'seconds above the on probability before the flag turns on',
                            range=(0.0, 60.0))
    min_off_s: float = field(1.0, 'seconds below the off probability before it turns off',
                             range=(0.0, 60.0))
    diagnostics_period_s: float = field(1.0, 'seconds between /diagnostics messages',
                                        range=(0.1, 60.0))
    marker_distance_m: float = field(1.5, 'how far in front of the camera the text marker '
                                     'floats', range=(0.1, 50.0))

    def hazard_config(self):
        on = 1.0 - self.target_fpr
        return HazardConfig(smoothing=self.smoothing, on_probability=on,
                            off_probability=max(0.0, on - self.hysteresis),
                            min_on_s=self.min_on_s, min_off_s=self.min_off_s)


def config_from_parameters(values, source='ROS parameters'):
    """Build a :class:`FrameNodeConfig` from a ``{name: value}`` dict, checked strictly."""
    return config_from_dict(FrameNodeConfig, values, source=source)


def parameter_specs():
    """``(name, default, description, range, choices, read_only)`` for every parameter."""
    specs = []
    for f in dataclasses.fields(FrameNodeConfig):
        meta = f.metadata
        specs.append((f.name, f.default, meta.get('description', ''), meta.get('range'),
                      meta.get('choices'), meta.get('read_only', False)))
    return specs
