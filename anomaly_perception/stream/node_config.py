"""Parameters every camera node shares: lifecycle, model, backend, transport, QoS, rate.

Each branch's node configuration (``FrameNodeConfig``, ``PixelNodeConfig``)
extends :class:`CameraNodeConfig` and redefines ``model_dir`` to name its
own shipped default; a redefined field keeps its place, so the branches'
parameter files list the shared parameters first and in the same order.
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

from .hazard import HazardConfig
from ..config import field

BACKEND_CHOICES = ('auto', 'torch', 'onnxruntime', 'tensorrt')


@dataclasses.dataclass
class CameraNodeConfig:
    """Parameters of every node that subscribes to a camera (see the subclasses)."""

    autostart: bool = field(True, 'configure and activate when the node starts (false: wait '
                            'for a lifecycle manager)', configure_time=True)
    model_dir: str = field('', "model directory; empty = the branch's shipped model",
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
    diagnostics_period_s: float = field(1.0, 'seconds between /diagnostics messages',
                                        range=(0.1, 60.0))


@dataclasses.dataclass
class FlagNodeConfig(CameraNodeConfig):
    """Parameters of camera nodes that raise a hazard flag (frame, pixel).

    The flag is the :class:`~.hazard.HazardFilter` over the frame's
    calibrated probability; its on probability comes from a false-alarm rate
    on the held-out normal patrol of a model learnt from bags, or from the
    branch's fixed level for other models (:class:`~.hazard.AlarmLevels`).
    """

    target_false_alarms_per_hour: float = field(
        0.0, 'false alarms per hour of normal driving that set the on probability, measured '
        'with this smoothing on the held-out normal patrol of a model learnt from bags '
        '(`train frame --bag`, `train pixel --bag`; 0 = the rate the model was trained for; '
        'other models use a fixed level)', range=(0.0, 3600.0))
    hysteresis: float = field(0.1, 'the flag turns off this much below the on probability',
                              range=(0.0, 0.5))
    smoothing: float = field(0.3, 'weight of the newest probability in the moving average',
                             range=(0.01, 1.0))
    min_on_s: float = field(0.3, 'seconds above the on probability before the flag turns on',
                            range=(0.0, 60.0))
    min_off_s: float = field(1.0, 'seconds below the off probability before it turns off',
                             range=(0.0, 60.0))
    run_baseline_s: float = field(
        120.0, "seconds of this run's own driving whose median frame score is moved onto the "
        "level of the model's held-out normal driving before the flag (another day's "
        'exposure and route; 0 = off; models not learnt from bags have no held-out driving '
        'and run without it)', range=(0.0, 3600.0))
    run_baseline_warmup_s: float = field(
        20.0, 'seconds at the start of a run in which the run baseline learns every frame, '
        'flagged or not (later, frames under the flag are not learnt)', range=(0.0, 600.0))

    def flag_config(self, on_probability):
        """Return the :class:`~.hazard.HazardConfig` of this smoothing at ``on_probability``."""
        on = float(on_probability)
        return HazardConfig(smoothing=self.smoothing, on_probability=on,
                            off_probability=max(0.0, on - self.hysteresis),
                            min_on_s=self.min_on_s, min_off_s=self.min_off_s)
