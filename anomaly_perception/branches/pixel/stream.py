"""The pixel branch over a stream of image messages: what the pixel node and replay run."""

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

from . import SHIPPED_MODEL
from .detector import PixelAnomalySegmenter
from .detector import PixelResult
from ...runtime.manifest import ModelError
from ...stream.baseline import baseline_probability
from ...stream.baseline import keep_baseline
from ...stream.hazard import AlarmLevels
from ...stream.hazard import HazardFilter
from ...stream.hazard import HazardState
from ...stream.pipeline import Pipeline


@dataclasses.dataclass
class PixelFrame:
    """The pixel branch's output for one frame: its stamp, maps, and the image they are of."""

    stamp_ns: int
    pixels: PixelResult
    image: object       # RGB uint8 [H, W, 3], for the overlay
    state: HazardState = None   # the hazard flag; None for a model without frame calibration


class PixelStream(Pipeline):
    """Image messages -> :class:`PixelFrame` s, in stamp order.

    The maps are stateless over time (each frame stands alone); ``process``
    runs a batch through :class:`PixelAnomalySegmenter` in one call. The
    hazard flag runs the :class:`HazardFilter` over the frames' calibrated
    frame-level probability, its on probability set for a false-alarm rate
    on the held-out patrol of a place model (``train pixel --bag``), else at
    ``1 - frame_target_fpr``.
    """

    detector_class = PixelAnomalySegmenter
    shipped_model = SHIPPED_MODEL

    def __init__(self, detector, config):
        super().__init__(detector, config)
        self.alarm_levels = AlarmLevels()
        self.alarm_details = None
        self.hazard = HazardFilter()
        self.hazard.config = self._hazard_config(config)     # None: no flag
        self.baseline = self._baseline(None, config)

    def reconfigure(self, config):
        """Apply live parameter changes (mask threshold, hazard filter) without a reload."""
        self.hazard.config = self._hazard_config(config)     # sets the mask threshold too
        self.baseline = self._baseline(self.baseline, config)
        self.config = config

    def _baseline(self, current, config):
        if self.hazard.config is None:
            return None
        return keep_baseline(current, config, self.detector.manifest)

    def _hazard_config(self, config):
        """Return the hazard filter's settings for ``config`` (None: the model has no flag).

        Raises:
            ModelError: a rate is asked of a model without a held-out patrol.

        """
        self.detector.set_target_fpr(config.target_fpr)
        if self.detector.frame_calibration is None:
            self.alarm_details = None
            return None
        try:
            on, self.alarm_details = self.alarm_levels.on_probability(
                self.detector.manifest, self.detector.frame_calibration,
                config.flag_config(1 - config.frame_target_fpr),
                config.target_false_alarms_per_hour, config.hysteresis,
                1 - config.frame_target_fpr)
        except ValueError as exc:
            raise ModelError(f'{exc} Set frame_target_fpr instead.') from None
        return config.flag_config(on)

    def process(self, stamps, images):
        """Segment frames (RGB ``uint8 [H, W, 3]`` each); one :class:`PixelFrame` each."""
        results = self.detector.segment(images) if len(images) else []
        out = []
        for stamp, result, image in zip(stamps, results, images):
            state = None
            if self.hazard.config is not None:
                prob = result.frame_probability
                if self.baseline is not None:
                    prob = baseline_probability(self.baseline, self.detector.frame_calibration,
                                                result.frame_score, prob)
                    result = dataclasses.replace(result, frame_probability=prob)
                state = self.hazard.update(int(stamp), prob)
                if self.baseline is not None:
                    self.baseline.learn(int(stamp), result.frame_score, state.flag)
            out.append(PixelFrame(int(stamp), result, image, state))
        return out
