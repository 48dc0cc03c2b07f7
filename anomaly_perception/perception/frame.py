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

"""The frame branch's one inference pipeline: :class:`FrameAnomalyDetector`.

uint8 images of any size, one or a batch, RGB or BGR -> centre square crop
and resize as trained -> the model (standardisation, encoder, Real-NVP)
-> raw score (NLL, nats) -> calibrated probability (fraction of normal
validation frames scoring lower) -> hazard flag at a threshold set as a
target false-positive rate on normal frames.

A frame whose embedding or score is NaN/inf is *unscorable*: its raw score
and probability are NaN and its flag is raised (fail-safe), never "normal".
"""

import dataclasses
from pathlib import Path

import numpy as np
import torch

from .preprocess import as_batch
from .preprocess import square_resize
from ..models.frame import FrameDensityModel
from ..runtime.manifest import load_manifest
from ..runtime.manifest import ModelError
from ..scoring.calibration import EmpiricalCalibration

MODEL_FILE = 'frame_model.pt'


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


def load_frame_model(model_dir):
    """Verify a frame model directory and build its network.

    Returns:
        ``(FrameDensityModel in eval mode, manifest dict)``.

    Raises:
        ModelError: missing/corrupt files (named), or not a frame model.

    """
    manifest = load_manifest(model_dir, branch='frame')
    arch = manifest.get('architecture', {})
    if arch.get('type') != 'frame_rnvp_oe':
        raise ModelError(f'{str(model_dir)!r}: unknown frame architecture {arch.get("type")!r}.')
    if MODEL_FILE not in manifest.get('files', {}):
        raise ModelError(f'{str(model_dir)!r}: the manifest lists no {MODEL_FILE}.')
    path = Path(model_dir) / MODEL_FILE
    try:
        saved = torch.load(path, map_location='cpu', weights_only=True)
        model = FrameDensityModel.build(
            width=arch['autoencoder']['width'], embedding_dim=arch['autoencoder']['embedding_dim'],
            input_size=arch['autoencoder']['input_size'],
            n_couplings=arch['realnvp']['n_couplings'], hidden=arch['realnvp']['hidden'])
        model.load_state_dict(saved['state_dict'])
    except (KeyError, RuntimeError, ValueError, OSError) as err:
        raise ModelError(f'{str(path)!r} does not hold the weights its manifest describes: '
                         f'{err}') from None
    model.eval()
    return model, manifest


class FrameAnomalyDetector:
    """Per-frame anomaly scores from a frame model directory.

    Example::

        detector = FrameAnomalyDetector.from_model_dir('models/frame_rnvp_oe')
        scores = detector.score(bgr_frame, channel_order='bgr')
        print(scores.probability[0], scores.flag[0])

    Args:
        model: a :class:`FrameDensityModel` (uint8 NHWC -> NLL).
        manifest: its manifest (preprocessing, calibration, threshold).
        target_fpr: override the manifest's false-positive-rate target.
        threshold: override with a raw-score threshold.
        device: torch device for inference.

    """

    def __init__(self, model, manifest, *, target_fpr=None, threshold=None, device='cpu'):
        self.model = model.to(device).eval()
        self.manifest = manifest
        self.device = torch.device(device)
        prep = manifest['preprocessing']
        self.input_size = int(prep['input_size'])
        self.calibration = EmpiricalCalibration.from_dict(manifest['calibration'])
        if threshold is not None:
            self.threshold = float(threshold)
            self.target_fpr = None
        else:
            self.target_fpr = float(target_fpr if target_fpr is not None
                                    else manifest['threshold']['target_fpr'])
            self.threshold = self.calibration.threshold_for_fpr(self.target_fpr)

    @classmethod
    def from_model_dir(cls, model_dir, **kwargs):
        model, manifest = load_frame_model(model_dir)
        return cls(model, manifest, **kwargs)

    @property
    def name(self):
        return self.manifest.get('name', 'frame')

    def preprocess(self, images, channel_order='rgb'):
        """Images as accepted by :meth:`score` -> uint8 ``[N, S, S, 3]`` RGB model input."""
        items = as_batch(images, channel_order)
        out = np.empty((len(items), self.input_size, self.input_size, 3), np.uint8)
        for i, image in enumerate(items):
            out[i] = square_resize(image, self.input_size)
        return out

    @torch.inference_mode()
    def raw_scores(self, batch):
        """NLL of preprocessed uint8 ``[N, S, S, 3]`` frames (float64, NaN if unscorable)."""
        x = torch.from_numpy(batch).to(self.device)
        raw = self.model(x).double().cpu().numpy()
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
