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
from ...stream.pipeline import Pipeline


@dataclasses.dataclass
class PixelFrame:
    """The pixel branch's output for one frame: its stamp, maps, and the image they are of."""

    stamp_ns: int
    pixels: PixelResult
    image: object       # RGB uint8 [H, W, 3], for the overlay


class PixelStream(Pipeline):
    """Image messages -> :class:`PixelFrame` s, in stamp order.

    Stateless over time (each frame stands alone); ``process`` runs a batch
    through :class:`PixelAnomalySegmenter` in one call.
    """

    detector_class = PixelAnomalySegmenter
    shipped_model = SHIPPED_MODEL

    def reconfigure(self, config):
        """Apply live parameter changes (the mask threshold) without a reload."""
        self.detector.set_target_fpr(config.target_fpr)
        self.config = config

    def process(self, stamps, images):
        """Segment frames (RGB ``uint8 [H, W, 3]`` each); one :class:`PixelFrame` each."""
        results = self.detector.segment(images) if len(images) else []
        return [PixelFrame(int(s), r, image) for s, r, image in zip(stamps, results, images)]
