"""The synthesis branch over a stream of frames, on keyframes: what replay runs.

A guided edit costs seconds to minutes per image on a CPU, so
:class:`SynthesisStream` edits keyframes only: the first frame, then one
whenever ``keyframe_period_s`` of stamp time has passed since the last
(:class:`~.keyframes.KeyframePolicy` on the period alone). Each keyframe
goes through :meth:`~.synthesis.AnomalySynthesizer.process`, the same call
as ``synthesize`` and ``experiment synthesis``.
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

from .config import synthesis_options
from .detector import AnomalySynthesizer
from .detector import SynthesisResult
from ...stream.keyframes import KeyframePolicy
from ...stream.pipeline import Pipeline


@dataclasses.dataclass
class SynthesisFrame:
    """One frame of the synthesis branch: whether it was a keyframe, and its maps.

    Attributes:
        stamp_ns: the frame's stamp.
        keyframe: the policy took it.
        reason: why ('first' or 'period'; '' when not a keyframe).
        synthesis: a :class:`~.detector.SynthesisResult` on keyframes, else None.
        image: RGB uint8 ``[H, W, 3]`` on keyframes (for panels), else None.

    """

    stamp_ns: int
    keyframe: bool
    reason: str
    synthesis: SynthesisResult = None
    image: object = None


class SynthesisStream(Pipeline):
    """Frames -> :class:`SynthesisFrame` s in stamp order, edited on keyframes."""

    detector_class = AnomalySynthesizer

    def __init__(self, detector, config):
        self.detector = detector
        self.config = config
        # The period alone decides (no score rises above 2 in [0, 1]).
        self.policy = KeyframePolicy(config.keyframe_period_s, rise=2.0)

    @classmethod
    def from_config(cls, config, model_dir=None, **backend_options):
        """Load the DDPM ``config`` names (or the shipped one) and its feature extractor.

        Raises:
            ModelError: a missing or corrupt model file (named), or another
                branch's model.
            BackendError: a backend other than PyTorch.

        """
        model_dir = model_dir or config.model_dir or None
        detector = AnomalySynthesizer.from_model_dir(
            model_dir, backend=config.backend, options=synthesis_options(config),
            device=config.device)
        stream = cls(detector, config)
        stream.model_dir = detector.model_dir
        return stream

    def reconfigure(self, config):
        """Take a new keyframe period (the model and its options stay as loaded)."""
        self.policy.period_ns = int(config.keyframe_period_s * 1e9)
        self.config = config

    def process(self, stamps, images):
        """Frames (RGB ``uint8 [H, W, 3]``) -> a :class:`SynthesisFrame` each; edits keyframes."""
        out = []
        for stamp, image in zip(stamps, images):
            keyframe, reason = self.policy.decide(int(stamp), None)
            if keyframe:
                out.append(SynthesisFrame(int(stamp), True, reason,
                                          self.detector.process(image), image))
            else:
                out.append(SynthesisFrame(int(stamp), False, ''))
        return out
