"""The frame branch over a stream of image messages: what the node and replay both run.

:class:`FrameStream` takes image messages (rclpy's or rosbags', Image or
CompressedImage) and turns them into :class:`FrameResult` s: it checks the
stamp, decodes to RGB, scores with :class:`FrameAnomalyDetector` and runs
the :class:`HazardFilter` over time. ``frame_anomaly_node`` calls it one
frame at a time, ``anomaly-perception replay`` in batches; the detector's
ONNX Runtime path gives the same numbers either way (tested), so what is
evaluated offline is what runs on the robot.
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

from . import SHIPPED_MODEL
from .detector import FrameAnomalyDetector
from ...runtime.manifest import ModelError
from ...stream.baseline import baseline_probability
from ...stream.baseline import keep_baseline
from ...stream.hazard import AlarmLevels
from ...stream.hazard import HazardFilter
from ...stream.hazard import HazardState
from ...stream.pipeline import Pipeline


@dataclasses.dataclass
class FrameResult:
    """The frame branch's output for one frame.

    Attributes:
        stamp_ns: the input frame's stamp.
        probability: calibrated anomaly probability (NaN if unscorable).
        raw: raw score, NLL in nats (NaN if unscorable).
        state: the hazard flag after smoothing and hysteresis.

    """

    stamp_ns: int
    probability: float
    raw: float
    state: HazardState


class FrameStream(Pipeline):
    """Image messages -> :class:`FrameResult` s, in stamp order (see module docs).

    Example::

        stream = FrameStream.from_config(FrameNodeConfig(backend='onnxruntime'))
        image = stream.decode(msg)          # ImageMessageError if malformed
        result = stream.process([message_stamp(msg)], [image])[0]

    """

    detector_class = FrameAnomalyDetector
    shipped_model = SHIPPED_MODEL

    def __init__(self, detector, config):
        super().__init__(detector, config)
        self.alarm_levels = AlarmLevels()
        self.alarm_details = None
        self.hazard = HazardFilter(self._hazard_config(config))
        self.baseline = keep_baseline(None, config, detector.manifest)

    def reconfigure(self, config):
        """Apply live parameter changes (threshold, flag, run baseline) without a reload."""
        self.hazard.config = self._hazard_config(config)
        self.baseline = keep_baseline(self.baseline, config, self.detector.manifest)
        self.config = config

    def _hazard_config(self, config):
        """Return the hazard filter's settings for ``config``; set the detector's raw threshold.

        A model trained with ``train frame --bag`` carries its held-out normal
        patrol: the on probability is where the filter, with ``config``'s
        smoothing and durations, raises ``target_false_alarms_per_hour`` (or
        the rate the model was trained for) on it. Other models use
        ``1 - target_fpr``.

        Raises:
            ModelError: a rate is asked of a model without a held-out patrol.

        """
        base = config.hazard_config()
        try:
            on, self.alarm_details = self.alarm_levels.on_probability(
                self.detector.manifest, self.detector.calibration, base,
                config.target_false_alarms_per_hour, config.hysteresis, 1 - config.target_fpr)
        except ValueError as exc:
            raise ModelError(f'{exc} Set target_fpr instead.') from None
        if self.alarm_details is None:
            self.detector.threshold = self.detector.calibration.threshold_for_fpr(
                config.target_fpr)
            return base
        self.detector.threshold = float(self.detector.calibration.raw_for_probability(on))
        return config.hazard_config(on)

    def process(self, stamps, images):
        """Score frames (RGB ``uint8 [H, W, 3]`` each) in stamp order; one result each."""
        scores = self.detector.score(images) if len(images) else None
        results = []
        for i, stamp in enumerate(stamps):
            prob, raw = float(scores.probability[i]), float(scores.raw[i])
            if self.baseline is not None:
                prob = baseline_probability(self.baseline, self.detector.calibration, raw, prob)
            state = self.hazard.update(stamp, prob)
            if self.baseline is not None:
                self.baseline.learn(stamp, raw, state.flag)
            results.append(FrameResult(int(stamp), prob, raw, state))
        return results
