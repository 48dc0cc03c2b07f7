"""The pixel branch's detector: :class:`PixelAnomalySegmenter`.

uint8 images of any size, one or a batch, RGB or BGR -> letterboxed into
the model's input (the whole frame, aspect kept, the bands mirrored) -> the
model (ERFNet, the anomaly score and the arg-max class, inside the exported
graph) -> the frame's part of each map, resized back to the image, so every
pixel of any camera (4:3, 16:9, square, fisheye) is scored:

* ``anomaly``: float32 score per pixel (higher = more anomalous);
* ``probability``: the calibrated score (fraction of normal validation
  pixels scoring lower);
* ``mask``: the score above the threshold set for a target pixel
  false-positive rate on normal pixels;
* ``semantic``: uint8 class ids;
* ``failure`` (models with a failure head, ``train failure``): float32
  probability that the semantic class is wrong (FSNet); None for models
  without a head;
* ``frame_score``: a frame-level score, the ``frame_quantile`` (0.99) of the
  anomaly map over the frame's part of the input, and ``frame_probability``,
  calibrated on normal validation frames, so a replay can compare the pixel
  branch with the frame branch.

A model that learnt a place (``train pixel --bag``) carries a per-position
offset: how much hotter each part of the view is on all of the place's
normal driving (a far corridor end, a wall edge, the robot's own body).
Probability, mask and frame score are taken on the score less the offset;
the ``anomaly`` map stays the raw score, so the offset raises the bar where
the view is always hot without sinking a weak anomaly there below the
normal pixels of the rest of the view.

The score map is resized bilinearly and the classes by nearest neighbour.
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

import cv2
import numpy as np

from ...runtime.manifest import load_manifest
from ...runtime.manifest import model_input_shape
from ...runtime.manifest import ModelError
from ...runtime.network import load_network
from ...runtime.preprocess import as_batch
from ...runtime.preprocess import content_box
from ...runtime.preprocess import from_input
from ...runtime.preprocess import ImageInputError
from ...runtime.preprocess import letterbox
from ...scoring.calibration import EmpiricalCalibration
from ...stream.pipeline import Detector

VOID = 255


@dataclasses.dataclass
class PixelResult:
    """The pixel branch's output for one image (maps at the image's resolution)."""

    anomaly: np.ndarray         # float32 [H, W]
    probability: np.ndarray     # float32 [H, W] in [0, 1]
    mask: np.ndarray            # bool [H, W]
    semantic: np.ndarray        # uint8 [H, W]
    frame_score: float
    frame_probability: float
    threshold: float
    failure: np.ndarray = None  # float32 [H, W] in [0, 1]; or None


def position_offset_map(manifest, shape):
    """Return the place's per-position offset at the model input ``shape`` (float32), or None.

    A place model's manifest holds it on a coarse grid (``position_offset``:
    ``grid`` [gh, gw] and ``values``), resized bilinearly to the input.
    """
    entry = manifest.get('position_offset')
    if not entry:
        return None
    grid = np.asarray(entry['values'], np.float32).reshape(entry['grid'])
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


class PixelAnomalySegmenter(Detector):
    """Per-pixel anomaly maps and semantic ids from a pixel model directory.

    Example::

        seg = PixelAnomalySegmenter.from_model_dir('models/pixel_erfnet')
        result = seg.segment(bgr_frame, channel_order='bgr')[0]
        result.anomaly.shape == bgr_frame.shape[:2]

    Args:
        backend: runs the model (uint8 NHWC -> (anomaly, classes)).
        manifest: the model's manifest.
        target_fpr: override the manifest's pixel false-positive-rate target
            (None or 0: the manifest's).

    """

    def __init__(self, backend, manifest, *, target_fpr=None, frame_quantile=0.99):
        self.backend = backend
        self.manifest = manifest
        self.input_shape = model_input_shape(manifest['preprocessing'])
        self.calibration = EmpiricalCalibration.from_dict(manifest['calibration'])
        frame = manifest.get('frame_calibration')
        self.frame_calibration = EmpiricalCalibration.from_dict(frame) if frame else None
        self.frame_quantile = float(manifest.get('frame_quantile', frame_quantile))
        self.set_target_fpr(target_fpr)
        self.classes = list(manifest.get('classes', []))
        self.has_failure = (manifest.get('architecture') or {}).get('type') == \
            'erfnet_pixel_fsnet'
        self.offset = position_offset_map(manifest, self.input_shape)

    def set_target_fpr(self, target_fpr=None):
        """Set the mask threshold for ``target_fpr``; None or 0: the manifest's target."""
        self.target_fpr = float(target_fpr if target_fpr else
                                self.manifest['threshold']['target_fpr'])
        self.threshold = self.calibration.threshold_for_fpr(self.target_fpr)

    @classmethod
    def from_model_dir(cls, model_dir, backend='torch', *, target_fpr=None, **backend_options):
        """Load a pixel model directory and run it on ``backend`` (see runtime.backends).

        Raises:
            ModelError: missing/corrupt files (named), not a pixel model, or a
                class count that disagrees with the manifest.

        """
        from ...runtime.backends import create_backend
        manifest = load_manifest(model_dir, branch='pixel')
        arch = manifest.get('architecture', {})
        void = arch.get('void_index') is not None
        if len(manifest.get('classes', [])) + void != arch.get('num_classes'):
            raise ModelError(f'{str(model_dir)!r}: the manifest lists '
                             f'{len(manifest.get("classes", []))} classes'
                             f'{" and void" if void else ""} but the network has '
                             f'{arch.get("num_classes")}.')
        runner = create_backend(backend, model_dir, manifest,
                                lambda: load_network(model_dir, manifest)[0], **backend_options)
        return cls(runner, manifest, target_fpr=target_fpr)

    def preprocess(self, images, channel_order='rgb'):
        """Images as :meth:`segment` takes them -> uint8 ``[N, h, w, 3]`` RGB model input."""
        items = as_batch(images, channel_order)
        return np.stack([letterbox(image, self.input_shape) for image in items])

    def infer(self, batch):
        """Run the model on a preprocessed batch.

        Returns ``(anomaly [N, h, w], classes [N, h, w], failure [N, h, w] or
        None)``; the failure map comes from models with a failure head.
        """
        out = self.backend.infer(batch)
        expected = 3 if self.has_failure else 2
        if not isinstance(out, tuple) or len(out) != expected:
            raise ModelError(f'{self.name!r}: the pixel graph must return (anomaly, classes'
                             f'{", failure" if self.has_failure else ""}).')
        failure = np.asarray(out[2], np.float32) if self.has_failure else None
        return np.asarray(out[0], np.float32), np.asarray(out[1], np.uint8), failure

    def segment(self, images, channel_order='rgb'):
        """Segment one image ``uint8 [H, W, 3]``, a batch or a list; one :class:`PixelResult` each.

        Raises:
            ImageInputError: wrong dtype, channel count, or an empty batch.

        """
        if channel_order not in ('rgb', 'bgr'):
            raise ImageInputError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}.")
        items = as_batch(images, channel_order)
        anomaly, classes, failure = self.infer(np.stack([letterbox(i, self.input_shape)
                                                         for i in items]))
        failure = failure if failure is not None else [None] * len(items)
        return [self._result(image.shape[:2], a, c, f)
                for image, a, c, f in zip(items, anomaly, classes, failure)]

    def score(self, images, channel_order='rgb'):
        """Segment, as :meth:`segment` (the :class:`~.pipeline.Detector` interface)."""
        return self.segment(images, channel_order)

    def frame_score(self, anomaly):
        """Return a map's frame-level ``(score, probability)``.

        ``anomaly``: the model-resolution map of the frame's part of the input.
        The score is the map's ``frame_quantile`` over its finite pixels, the
        probability that score calibrated on normal validation frames (NaN
        where there is no finite pixel or no frame calibration).
        """
        values = np.asarray(anomaly, np.float32)
        values = values[np.isfinite(values)]
        score = float(np.quantile(values, self.frame_quantile)) if values.size else float('nan')
        prob = float(self.frame_calibration.probability(np.array([score]))[0]) \
            if self.frame_calibration is not None and np.isfinite(score) else float('nan')
        return score, prob

    def _result(self, size, anomaly, classes, failure=None):
        # The place's per-position offset moves the decision (probability, mask, frame score),
        # not the ranking: subtracting it would push weak anomalies in always-hot parts of the
        # view below every normal pixel elsewhere.
        normalised = anomaly if self.offset is None else anomaly - self.offset
        y0, x0, h, w = content_box(*size, self.input_shape)
        full = from_input(anomaly, size)
        decision = full if self.offset is None else from_input(normalised, size)
        frame_score, frame_prob = self.frame_score(normalised[y0:y0 + h, x0:x0 + w])
        prob = self.calibration.probability(decision.astype(np.float64)).astype(np.float32)
        mask = decision > self.threshold
        sem = from_input(classes, size, interp=cv2.INTER_NEAREST)
        fail = None if failure is None else from_input(failure, size)
        return PixelResult(full, prob, mask, sem, frame_score, frame_prob, self.threshold, fail)
