"""The instance node's parameters, as one typed configuration (node, replay and YAML alike)."""

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
from ...stream.node_config import CameraNodeConfig


@dataclasses.dataclass
class InstanceNodeConfig(CameraNodeConfig):
    """Parameters of ``instance_anomaly_node``.

    ``configure_time`` parameters are read by the lifecycle ``configure``
    transition and can change only while the node is unconfigured; the
    others change live. ``backend`` runs the pixel model (its calibration
    sets the prompt threshold, and replay runs it when no pixel pipeline
    gives the map); ``device`` runs the promptable segmenter.
    """

    model_dir: str = field('', 'promptable segmenter directory (e.g. the shipped '
                           'models/instance_sam_small); empty or components = none: each '
                           "connected region of the pixel model's own mask is an instance "
                           '(the default while no promptable model beats it)',
                           configure_time=True)
    pixel_model_dir: str = field('', 'the pixel model whose ~/anomaly_map drives the prompts '
                                 '(its calibration sets the prompt threshold); empty = the '
                                 'shipped pixel_erfnet', configure_time=True)
    prompt_fpr: float = field(0.05, "prompts where the map is above the pixel model's "
                              'threshold at this share of normal pixels', range=(0.0001, 0.5))
    num_points: int = field(50, 'farthest-point prompts per keyframe', range=(1, 1000))
    instance_fpr: float = field(0.0, 'publish an instance only when its score (the mean map '
                                'under its mask) is above the pixel threshold at this share '
                                "of normal pixels; 0 = the pixel model's own mask threshold "
                                "(a place model's calibrated target); 1 = every mask (UGainS "
                                'as published)', range=(0.0, 1.0))
    component_peak_ratio: float = field(
        0.2, 'without a promptable model: publish a region of the mask only when its highest '
        "score passes the pixel threshold at this share of the mask's false-positive rate "
        '(hysteresis; 0.2 keeps the same instances with far fewer on normal frames, chosen on '
        'validation frames); 1 = every region', range=(0.001, 1.0))
    nms_iou: float = field(0.7, 'greedy mask NMS: drop a mask overlapping a better one by '
                           'more than this IoU', range=(0.05, 1.0))
    prompt_batch: int = field(64, 'prompts per mask-decoder call', range=(1, 1024),
                              configure_time=True)
    keyframe_period_s: float = field(2.0, 'a keyframe at least this often (stamp time, s)',
                                     range=(0.0, 3600.0))
    keyframe_rise: float = field(0.2, "a keyframe at once when the map's calibrated "
                                 'frame-level probability rises this much above the last '
                                 "keyframe's", range=(0.001, 1.0))
    keyframe_buffer: int = field(4, 'keyframes waiting for the worker (latest wins; overflow '
                                 'is counted)', range=(1, 100), configure_time=True)
    match_capacity: int = field(30, 'unpaired images / maps kept while waiting for their '
                                'partner of the same stamp', range=(1, 1000),
                                configure_time=True)
    place_on_floor: bool = field(True, 'place instances on the floor (needs camera_info)')
    camera_height_m: float = field(0.13, 'camera centre above the floor (m; the Robomaster '
                                   "S1's gimbal camera)", range=(0.01, 10.0))
    camera_pitch_deg: float = field(7.0, 'downward tilt of the optical axis (degrees, '
                                    'positive = looking down)', range=(-89.0, 89.0))
    marker_lifetime_s: float = field(4.0, 'rviz keeps a hazard marker this long (s; longer '
                                     'than keyframe_period_s, or markers blink)',
                                     range=(0.1, 3600.0))
    overlay_alpha: float = field(0.5, 'opacity of the instance tints on ~/overlay',
                                 range=(0.0, 1.0))


PARAMETERS = NodeParameters(InstanceNodeConfig, 'instance_anomaly_node')
config_from_parameters = PARAMETERS.config_from_parameters
parameter_specs = PARAMETERS.parameter_specs
parameter_file = PARAMETERS.parameter_file
