"""The instance branch over a stream of frames: what the instance node and replay run.

Every frame comes with the pixel model's anomaly map (the pixel node's
``~/anomaly_map`` of the same stamp, or, where no map is given, the pixel
model run here). :class:`InstanceStream` then

1. reads the map's calibrated frame-level probability
   (:meth:`~.detector.InstanceAnomalySegmenter.frame_probability`);
2. asks its :class:`~...stream.keyframes.KeyframePolicy` whether the frame is a
   keyframe (none for ``keyframe_period_s``, or the probability rose by
   ``keyframe_rise`` above the last keyframe's);
3. on keyframes only, runs UGainS (:class:`~.detector.InstanceAnomalySegmenter`)
   and, with a camera (``camera_info`` and the mounting parameters), places
   the instances on the floor.

Before 1, :meth:`pair` pairs each image with its map by *exact* stamp (a
:class:`~...stream.keyframes.StampMatcher`; unpaired ones are dropped and
counted). The node splits pairing and 1-2 (:meth:`pair`, in the
subscription callbacks, cheap) from 3 (:meth:`keyframe`, in its worker,
behind a latest-wins buffer); ``process`` runs the same calls in order on a
batch, as replay does.
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
import math
import time
import typing

import numpy as np

from . import DEFAULT_MODEL
from .detector import InstanceAnomalySegmenter
from .detector import InstanceFrameResult
from .floor import FloorCamera
from .floor import FloorProjectionError
from ..pixel import SHIPPED_MODEL as PIXEL_MODEL
from ...runtime.manifest import shipped_model_dir
from ...stream.keyframes import KeyframePolicy
from ...stream.keyframes import StampMatcher
from ...stream.pipeline import Pipeline


@dataclasses.dataclass
class InstanceFrame:
    """One frame of the instance branch: whether it was a keyframe, and its instances.

    Attributes:
        stamp_ns: the frame's stamp.
        keyframe: the policy took it.
        reason: why ('first', 'period', 'rise'; '' when not a keyframe).
        frame_probability: the map's calibrated frame-level probability (NaN if none).
        instances: an :class:`~.detector.InstanceFrameResult` on keyframes, else None.
        image: RGB uint8 ``[H, W, 3]`` on keyframes (for the overlay), else None.
        seconds: UGainS and the floor placement on this keyframe, wall time (0 else).

    """

    stamp_ns: int
    keyframe: bool
    reason: str
    frame_probability: float
    instances: InstanceFrameResult = None
    image: object = None
    seconds: float = 0.0


class Pairing(typing.NamedTuple):
    """An image paired with its anomaly map, and the keyframe policy's decision on it."""

    image: object
    anomaly_map: object
    keyframe: bool
    reason: str
    probability: float


class InstanceStream(Pipeline):
    """Frames (and their pixel maps) -> :class:`InstanceFrame` s, in stamp order."""

    detector_class = InstanceAnomalySegmenter

    def __init__(self, detector, config):
        self.detector = detector
        self.config = config
        self.policy = KeyframePolicy(config.keyframe_period_s, config.keyframe_rise)
        self.camera_info = None         # (row-major K [9], calibrated width, height)
        self.matcher = StampMatcher(config.match_capacity)

    def reset_pairing(self):
        """Forget the images and maps waiting for their partner (the node, on activation)."""
        self.matcher = StampMatcher(self.config.match_capacity)

    def pair(self, side, stamp_ns, item):
        """Offer one side of a frame: ``'image'`` (any item) or ``'map'`` (float ``[H, W]``).

        Returns None while the other side of ``stamp_ns`` has not come, else a
        :class:`Pairing`: the image's item, the map, and whether the frame is a
        keyframe (:meth:`select`).
        """
        pair = self.matcher.add(side, int(stamp_ns), item)
        if pair is None:
            return None
        image, anomaly_map = pair
        keyframe, reason, probability = self.select(stamp_ns, anomaly_map)
        return Pairing(image, anomaly_map, keyframe, reason, probability)

    @classmethod
    def from_config(cls, config, model_dir=None, **backend_options):
        """Load the promptable and pixel models ``config`` names (or the shipped ones).

        Raises:
            ModelError: a missing or corrupt model file (named).
            BackendError: the pixel model's backend is not available.

        """
        model_dir = model_dir or config.model_dir or DEFAULT_MODEL
        pixel_dir = config.pixel_model_dir or shipped_model_dir(PIXEL_MODEL)
        detector = InstanceAnomalySegmenter.from_config(config, model_dir)
        stream = cls(detector, config)
        stream.model_dir = str(model_dir)
        stream.pixel_model_dir = str(pixel_dir)
        return stream

    def reconfigure(self, config):
        """Apply live parameter changes (UGainS settings, keyframe policy) without a reload."""
        self.detector.set_prompts(config.prompt_fpr, config.num_points, config.nms_iou)
        self.detector.set_instance_fpr(config.instance_fpr)
        self.detector.set_peak_ratio(config.component_peak_ratio)
        self.policy.period_ns = int(config.keyframe_period_s * 1e9)
        self.policy.rise = float(config.keyframe_rise)
        self.config = config

    def set_camera_info(self, k, width, height):
        """Take the camera's intrinsics (``camera_info.k``, row-major) and calibrated size."""
        k = [float(v) for v in k]
        if len(k) != 9 or not (k[0] > 0 and k[4] > 0) or width <= 0 or height <= 0:
            raise FloorProjectionError(f'camera_info without a usable K ({k}) or size '
                                       f'({width}x{height}): is the camera calibrated?')
        self.camera_info = (k, int(width), int(height))

    def camera_for(self, shape):
        """Return the :class:`~.floor.FloorCamera` for an image of ``shape`` (None: no camera).

        K is rescaled when the image's size differs from the calibrated one.
        """
        if self.camera_info is None or not self.config.place_on_floor:
            return None
        k, width, height = self.camera_info
        return FloorCamera.from_camera_info(
            k, self.config.camera_height_m, math.radians(self.config.camera_pitch_deg),
            scale=(shape[1] / width, shape[0] / height))

    def select(self, stamp_ns, anomaly_map):
        """Decide on one frame: ``(keyframe?, reason, frame probability)``."""
        probability = self.detector.frame_probability(anomaly_map)
        score = probability if np.isfinite(probability) else None
        keyframe, reason = self.policy.decide(int(stamp_ns), score)
        return keyframe, reason, probability

    def keyframe(self, stamp_ns, image, anomaly_map, reason='', probability=float('nan')):
        """Run UGainS on one keyframe; return its :class:`InstanceFrame`."""
        started = time.perf_counter()
        result = self.detector.segment(image, anomaly_map, camera=self.camera_for(image.shape))
        return InstanceFrame(int(stamp_ns), True, reason, probability, result, image,
                             time.perf_counter() - started)

    def process(self, stamps, images, maps=None):
        """Frames (RGB ``uint8 [H, W, 3]``) and their pixel maps -> an :class:`InstanceFrame` each.

        ``maps`` None runs the pixel model on the batch (one call).
        """
        if maps is None:
            maps = [r.anomaly for r in self.detector.pixel.segment(images)] if len(images) \
                else []
        out = []
        for stamp, image, anomaly_map in zip(stamps, images, maps):
            self.pair('image', stamp, image)
            p = self.pair('map', stamp, anomaly_map)
            if p.keyframe:
                out.append(self.keyframe(stamp, p.image, p.anomaly_map, p.reason,
                                         p.probability))
            else:
                out.append(InstanceFrame(int(stamp), False, '', p.probability))
        return out
