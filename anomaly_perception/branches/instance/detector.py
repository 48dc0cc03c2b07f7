"""The instance branch on one keyframe: a pixel map -> UGainS -> instances (and the floor).

Example::

    seg = InstanceAnomalySegmenter.from_model_dirs()      # shipped pixel model, no promptable
    result = seg.segment(rgb)                             # runs the pixel model too
    result.ids        # uint16 [H, W], 0 = none, 1 = the highest-scored instance
    result.refined    # float32 [H, W], the UGainS ensemble, higher = more anomalous

The driving map is the pixel model's own map (its raw score, higher = more
anomalous, as the pixel node publishes it on ``~/anomaly_map``). Prompts go
where it reaches the pixel model's calibrated threshold at ``prompt_fpr``
(the share of normal validation pixels above it, from the model's
manifest: UGainS thresholds RbA's score at a fixed -0.15, a threshold that
means nothing for another map); each mask's score is the mean map under
it; the refined map is ``instance score + map`` where an instance covers
the pixel and ``-1 + map`` elsewhere (UGainS's ensemble). This is what
``experiment ugains --prompt-fpr`` evaluates.

Without a promptable model (``promptable=None``, or the model directory
``components``), each connected region of the pixel model's own mask (the
map above its calibrated threshold, as the pixel node's ``~/mask``) is one
instance (:func:`~.ugains.run_components`): the baseline
row of every UGainS table, and the default of the node, ``score`` and
replay while no promptable model beats it (``DEFAULT_MODEL``; a promptable
model runs when its directory is named, e.g. ``models/instance_sam_small``).
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
import logging

import numpy as np

from . import COMPONENTS
from . import DEFAULT_MODEL
from .floor import place_instances
from .ugains import run_components
from .ugains import run_ugains
from .ugains import UGainSConfig
from ..pixel import SHIPPED_MODEL as PIXEL_MODEL
from ...runtime.preprocess import as_batch
from ...runtime.preprocess import ImageInputError
from ...stream.pipeline import Detector

LOG = logging.getLogger(__name__)

DEFAULT_PROMPT_FPR = 0.05
COMPONENTS_MANIFEST = {'name': COMPONENTS, 'kind': 'instance',
                       'architecture': {'name': 'connected_components'}}


@dataclasses.dataclass
class InstanceFrameResult:
    """The instance branch's output for one keyframe (all at the image's resolution).

    Attributes:
        ids: uint16 ``[H, W]``: 0 = none, ``k`` = ``scores[k - 1]``'s instance.
        scores: float32 ``[Q]``, highest first (mean map under the mask).
        boxes: int ``[Q, 4]`` ``(x0, y0, x1, y1)``, inclusive bounds of each whole
            mask (NMS keeps masks overlapping up to IoU 0.7; ``ids`` gives each
            overlapped pixel to the higher score).
        refined: float32 ``[H, W]`` ensembled map (NaN where the pixel map has none).
        anomaly: float32 ``[H, W]`` the driving map (the pixel model's score).
        points: float32 ``[P, 2]`` the prompts ``(x, y)``.
        hazards: :class:`~.floor.FloorHazard` per placed instance (with a camera).
        resized_map: the given anomaly map had another size and was resized.

    """

    ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    refined: np.ndarray
    anomaly: np.ndarray
    points: np.ndarray
    hazards: list = dataclasses.field(default_factory=list)
    resized_map: bool = False


class InstanceAnomalySegmenter(Detector):
    """UGainS on keyframes: a pixel segmenter's map drives a promptable segmenter.

    The :class:`~.pipeline.Detector` of the instance branch: its ``manifest``
    is the promptable model's, its ``backend`` the pixel model's (the
    promptable segmenter runs on PyTorch, on ``device``).

    Args:
        pixel: a :class:`~..pixel.detector.PixelAnomalySegmenter` (its model and calibration).
        promptable: a :class:`~.promptable.PromptableSegmenter`, or None for the
            connected regions of the thresholded map (the baseline).
        prompt_fpr: prompts where the map is above the pixel model's calibrated
            threshold at this pixel false-positive rate.
        num_points, nms_iou: UGainS settings (50 and 0.7, the paper's).
        min_score: instances scoring lower are dropped (None keeps all; the
            score is on the map's scale).
        instance_fpr: instead of ``min_score``, drop instances whose score (the
            mean map under the mask) is below the pixel model's calibrated
            threshold at this pixel false-positive rate; 0: below the pixel
            model's own mask threshold (its manifest's ``target_fpr``, what
            the pixel node's ``~/mask`` uses): an instance must be, on
            average, as anomalous as a flagged pixel. UGainS keeps every
            mask (None, the default here); the node filters
            (``InstanceNodeConfig.instance_fpr``, 0).
        peak_ratio: without a promptable model, keep a region of the mask only
            when its highest score passes the pixel threshold at this share of
            the mask's false-positive rate (0.2: a mask at 5 % of normal pixels,
            peaks at 1 %; 1, the default here, keeps every region). The node's
            default is ``InstanceNodeConfig.component_peak_ratio``.
        manifest: the promptable model's manifest.

    Without a promptable model the instances are the connected regions of
    the pixel model's own mask (``map > pixel.threshold``, the pixel node's
    ``~/mask``) that pass the ``peak_ratio`` hysteresis; the prompts are not
    used.
    """

    def __init__(self, pixel, promptable, *, prompt_fpr=DEFAULT_PROMPT_FPR, num_points=50,
                 nms_iou=0.7, min_score=None, instance_fpr=None, peak_ratio=1.0,
                 manifest=None):
        if instance_fpr is not None and min_score is not None:
            raise ValueError('give min_score or instance_fpr, not both')
        self.pixel = pixel
        self.promptable = promptable
        self.backend = pixel.backend
        self.manifest = manifest or (dict(COMPONENTS_MANIFEST) if promptable is None
                                     else {'name': 'promptable segmenter'})
        self.min_score = None if min_score is None else float(min_score)
        self.instance_fpr = None
        if instance_fpr is not None:
            self.set_instance_fpr(instance_fpr)
        self.set_peak_ratio(peak_ratio)
        self.set_prompts(prompt_fpr, num_points, nms_iou)
        self._warned_size = False

    def set_prompts(self, prompt_fpr, num_points, nms_iou):
        """Prompt where the map passes its threshold at ``prompt_fpr``; set points and NMS IoU."""
        if not 0.0 < prompt_fpr < 1.0:
            raise ValueError(f'prompt_fpr must be in (0, 1), got {prompt_fpr}')
        self.prompt_fpr = float(prompt_fpr)
        self.config = UGainSConfig(
            threshold=float(self.pixel.calibration.threshold_for_fpr(self.prompt_fpr)),
            fallback_threshold=None, num_points=int(num_points), nms_iou=float(nms_iou))

    def set_peak_ratio(self, peak_ratio):
        """Set the baseline's hysteresis: regions must peak at ``peak_ratio`` x the mask's FPR."""
        if not 0.0 < peak_ratio <= 1.0:
            raise ValueError(f'peak_ratio must be in (0, 1], got {peak_ratio}')
        self.peak_ratio = float(peak_ratio)
        self.min_peak = None if peak_ratio == 1.0 else float(
            self.pixel.calibration.threshold_for_fpr(self.pixel.target_fpr * peak_ratio))

    def components_config(self):
        """Return the UGainS settings of the baseline: regions of the pixel model's mask."""
        return dataclasses.replace(self.config, threshold=float(self.pixel.threshold))

    def set_instance_fpr(self, instance_fpr):
        """Keep instances scoring above the pixel threshold at ``instance_fpr`` (None: all).

        0 keeps those above the pixel model's own mask threshold.
        """
        if instance_fpr is None or instance_fpr >= 1.0:
            self.instance_fpr, self.min_score = None, None
            return
        if not 0.0 <= instance_fpr < 1.0:
            raise ValueError(f'instance_fpr must be in [0, 1], got {instance_fpr}')
        self.instance_fpr = float(instance_fpr)
        self.min_score = float(self.pixel.threshold if instance_fpr == 0.0 else
                               self.pixel.calibration.threshold_for_fpr(self.instance_fpr))

    @classmethod
    def from_model_dirs(cls, pixel_dir=None, promptable_dir=None, backend='auto', device='cpu',
                        prompt_batch=64, **options):
        """Load a pixel and a promptable model directory (default: shipped pixel, no promptable).

        ``promptable_dir`` ``'components'`` (the default, ``DEFAULT_MODEL``)
        loads no promptable model: the connected regions of the thresholded
        map are the instances.

        Raises:
            ModelError: a missing or corrupt model (named).

        """
        from .promptable import load_promptable
        from ..pixel.detector import PixelAnomalySegmenter
        from ...runtime.manifest import shipped_model_dir
        pixel_dir = pixel_dir or shipped_model_dir(PIXEL_MODEL)
        promptable_dir = promptable_dir or DEFAULT_MODEL
        pixel = PixelAnomalySegmenter.from_model_dir(pixel_dir, backend)
        if str(promptable_dir) == COMPONENTS:
            return cls(pixel, None, **options)
        promptable, manifest = load_promptable(promptable_dir, device=device,
                                               prompt_batch=prompt_batch)
        return cls(pixel, promptable, manifest=manifest, **options)

    @classmethod
    def from_config(cls, config, model_dir=None):
        """Load what an :class:`~.config.InstanceNodeConfig` names, with its settings.

        The node, replay, ``score`` and the experiments build their detector
        here, so that all run the same thresholds. ``model_dir`` overrides
        ``config.model_dir``; empty directories: the shipped pixel model and
        no promptable model (``DEFAULT_MODEL``).

        Raises:
            ModelError: a missing or corrupt model (named).

        """
        return cls.from_model_dirs(
            config.pixel_model_dir or None, model_dir or config.model_dir or DEFAULT_MODEL,
            backend=config.backend, device=config.device, prompt_batch=config.prompt_batch,
            prompt_fpr=config.prompt_fpr, num_points=config.num_points, nms_iou=config.nms_iou,
            instance_fpr=config.instance_fpr, peak_ratio=config.component_peak_ratio)

    @classmethod
    def from_model_dir(cls, model_dir, backend='auto', *, pixel_model_dir=None, device='cpu',
                       prompt_batch=64, **options):
        """Load the promptable ``model_dir`` with ``pixel_model_dir`` (the Detector interface).

        ``backend`` runs the pixel model; ``device`` the promptable segmenter.

        Raises:
            ModelError: a missing or corrupt model (named).

        """
        return cls.from_model_dirs(pixel_model_dir, model_dir, backend=backend, device=device,
                                   prompt_batch=prompt_batch, **options)

    def preprocess(self, images, channel_order='rgb'):
        """Images -> the pixel model's input batch (the first stage of :meth:`score`)."""
        return self.pixel.preprocess(images, channel_order)

    def score(self, images, channel_order='rgb'):
        """Segment each image (one, a batch or a list); one :class:`InstanceFrameResult` each."""
        return [self.segment(np.ascontiguousarray(image))
                for image in as_batch(images, channel_order)]

    def frame_probability(self, anomaly_map):
        """Return the pixel model's calibrated frame-level probability of a full-size map.

        The map's ``frame_quantile`` (0.99) over its finite pixels, calibrated on
        normal validation frames (NaN when the model has no frame calibration
        or the map no finite pixel): what the keyframe policy's ``rise`` reads.
        """
        return self.pixel.frame_score(anomaly_map)[1]

    def segment(self, rgb, anomaly_map=None, camera=None):
        """Instances of one RGB uint8 image ``[H, W, 3]``.

        Args:
            anomaly_map: the pixel model's raw map for this image (e.g. the pixel
                node's ``~/anomaly_map``); None runs the pixel model here. A map
                of another size is resized to the image (bilinear) with a
                one-time warning.
            camera: a :class:`~.floor.FloorCamera` for this image size, to place
                instances on the floor.

        Raises:
            ImageInputError: not an RGB uint8 image, or a map that is not 2-D.

        """
        import cv2
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
            raise ImageInputError(f'expected an RGB uint8 image [H, W, 3], got '
                                  f'{rgb.dtype} {rgb.shape}')
        height, width = rgb.shape[:2]
        resized = False
        if anomaly_map is None:
            raw = self.pixel.segment(rgb)[0].anomaly
        else:
            raw = np.array(anomaly_map, np.float32)      # a writable copy (torch needs one)
            if raw.ndim != 2:
                raise ImageInputError(f'expected an anomaly map [H, W], got {raw.shape}')
            if raw.shape != (height, width):
                resized = True
                if not self._warned_size:
                    LOG.warning('anomaly map %s and image %s differ in size; resizing the map '
                                '(warned once)', raw.shape, (height, width))
                    self._warned_size = True
                raw = cv2.resize(raw, (width, height), interpolation=cv2.INTER_LINEAR)
        if self.promptable is None:
            result = run_components(raw, self.components_config(), min_score=self.min_score,
                                    min_peak=self.min_peak)
        else:
            result = run_ugains(self.promptable, np.ascontiguousarray(rgb), raw, self.config,
                                min_score=self.min_score)
        ids = result.ids.cpu().numpy().astype(np.uint16)
        hazards = place_instances(ids, camera)[0] if camera is not None else []
        return InstanceFrameResult(
            ids=ids, scores=result.scores.cpu().numpy().astype(np.float32),
            boxes=result.boxes().numpy(),
            refined=result.refined.cpu().numpy().astype(np.float32), anomaly=raw,
            points=result.points.cpu().numpy().astype(np.float32), hazards=hazards,
            resized_map=resized)
