"""The frame branch's one inference pipeline: :class:`FrameAnomalyDetector`.

uint8 images of any size, one or a batch, RGB or BGR -> centre square crop
and resize as trained -> the model (standardisation, encoder, Real-NVP)
-> raw score (NLL, nats) -> calibrated probability (fraction of normal
validation frames scoring lower) -> hazard flag at a threshold set as a
target false-positive rate on normal frames.

A frame whose embedding or score is NaN/inf is *unscorable*: its raw score
and probability are NaN and its flag is raised (fail-safe), never "normal".
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

from concurrent.futures import ThreadPoolExecutor
import dataclasses
import os

import numpy as np

from ...runtime.manifest import load_manifest
from ...runtime.manifest import model_input_shape
from ...runtime.network import load_network
from ...runtime.preprocess import as_batch
from ...runtime.preprocess import ImageInputError
from ...runtime.preprocess import model_input
from ...scoring.calibration import EmpiricalCalibration
from ...stream.pipeline import Detector

_POOL = []


def _resize_pool():
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                                        thread_name_prefix='frame-preprocess'))
    return _POOL[0]


@dataclasses.dataclass
class FrameScores:
    """Scores of a batch of frames (arrays of length N).

    Attributes:
        raw: NLL in nats (NaN where unscorable).
        probability: calibrated anomaly probability in [0, 1] (NaN where unscorable).
        flag: hazard flag: raw > threshold, or unscorable.
        scorable: False where the model produced NaN/inf.
        threshold: the raw-score threshold used for ``flag``.

    """

    raw: np.ndarray
    probability: np.ndarray
    flag: np.ndarray
    scorable: np.ndarray
    threshold: float

    def __len__(self):
        return len(self.raw)


def load_frame_model(model_dir, manifest=None):
    """Verify a frame model directory (unless ``manifest`` is given) and build its network.

    Returns:
        ``(FrameDensityModel in eval mode, manifest dict)``.

    Raises:
        ModelError: missing/corrupt files (named), or not a frame model.

    """
    return load_network(model_dir, manifest, branch='frame')


class FrameAnomalyDetector(Detector):
    """Per-frame anomaly scores from a frame model directory.

    Example::

        detector = FrameAnomalyDetector.from_model_dir('models/frame_rnvp_oe',
                                                       backend='onnxruntime')
        scores = detector.score(bgr_frame, channel_order='bgr')
        print(scores.probability[0], scores.flag[0])

    Args:
        backend: a :class:`~anomaly_perception.runtime.backends.Backend`
            running the model (uint8 NHWC -> NLL).
        manifest: the model's manifest (preprocessing, calibration, threshold).
        target_fpr: override the manifest's false-positive-rate target.
        threshold: override with a raw-score threshold.

    """

    def __init__(self, backend, manifest, *, target_fpr=None, threshold=None):
        self.backend = backend
        self.manifest = manifest
        prep = manifest['preprocessing']
        self.input_shape = model_input_shape(prep)
        self.crop = prep.get('crop')
        self.calibration = EmpiricalCalibration.from_dict(manifest['calibration'])
        if threshold is not None:
            self.threshold = float(threshold)
            self.target_fpr = None
        else:
            self.target_fpr = float(target_fpr if target_fpr is not None
                                    else manifest['threshold']['target_fpr'])
            self.threshold = self.calibration.threshold_for_fpr(self.target_fpr)

    @classmethod
    def from_model_dir(cls, model_dir, backend='torch', *, target_fpr=None, threshold=None,
                       **backend_options):
        """Load a model directory and run it on ``backend`` (see runtime.backends).

        ``backend_options`` go to :func:`~anomaly_perception.runtime.backends.create_backend`
        (``device``, ``precision``, ``threads``, ``max_batch``, ``cache_dir``).
        """
        from ...runtime.backends import create_backend
        manifest = load_manifest(model_dir, branch='frame')
        runner = create_backend(backend, model_dir, manifest,
                                lambda: load_frame_model(model_dir, manifest)[0],
                                **backend_options)
        return cls(runner, manifest, target_fpr=target_fpr, threshold=threshold)

    def preprocess(self, images, channel_order='rgb'):
        """Images as accepted by :meth:`score` -> uint8 ``[N, S, S, 3]`` RGB model input."""
        if channel_order not in ('rgb', 'bgr'):
            raise ImageInputError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}.")
        items = as_batch(images, 'rgb')  # channel order is swapped after resizing: cheaper
        out = np.empty((len(items), *self.input_shape, 3), np.uint8)

        def one(i):
            small = model_input(items[i], self.input_shape, self.crop)
            out[i] = small[..., ::-1] if channel_order == 'bgr' else small

        if len(items) >= 4:
            # OpenCV releases the GIL: resizing a batch on all cores is ~1.8x faster on two.
            list(_resize_pool().map(one, range(len(items))))
        else:
            for i in range(len(items)):
                one(i)
        return out

    def raw_scores(self, batch):
        """NLL of preprocessed uint8 ``[N, S, S, 3]`` frames (float64, NaN if unscorable)."""
        raw = np.asarray(self.backend.infer(batch), np.float64)
        return np.where(np.isfinite(raw), raw, np.nan)

    def score(self, images, channel_order='rgb'):
        """Score one frame (``uint8 [H, W, 3]``), a batch ``[N, H, W, 3]`` or a list.

        Raises:
            ImageInputError: wrong dtype, channel count, or an empty batch.

        """
        return self.scores_from_raw(self.raw_scores(self.preprocess(images, channel_order)))

    def scores_from_raw(self, raw):
        raw = np.asarray(raw, np.float64)
        scorable = np.isfinite(raw)
        probability = self.calibration.probability(raw)
        flag = ~scorable | (np.where(scorable, raw, -np.inf) > self.threshold)
        return FrameScores(raw, probability, flag, scorable, self.threshold)
