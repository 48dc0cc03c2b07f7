"""``train frame``: the whole frame-branch chain into a deployable model directory.

Autoencoder on normal training frames -> embeddings (cached) -> Real-NVP
with outlier exposure -> calibration on normal validation frames ->
``MODEL_DIR`` (``manifest.yaml`` + ``frame_model.pt``). Intermediate steps
live in a work directory and resume after an interruption.
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
from pathlib import Path

import numpy as np

from .model import FrameDensityModel
from .model import MODEL_FILE
from .train import auroc_summary
from .train import AutoencoderConfig
from .train import cached_embeddings
from .train import density_scores
from .train import DensityConfig
from .train import load_autoencoder
from .train import load_density
from .train import select_exposed
from .train import train_autoencoder
from .train import train_density
from ...data.hazards import default_cache_dir
from ...data.hazards import HazardsDataset
from ...runtime.manifest import write_model_dir
from ...scoring.calibration import EmpiricalCalibration
from ...training import is_main_process
from ...training import to_bytes
from ...training import training_environment
from ...training import TrainingError


@dataclasses.dataclass
class FrameTrainingConfig:
    """Everything ``train frame`` decides."""

    autoencoder: AutoencoderConfig = dataclasses.field(default_factory=AutoencoderConfig)
    density: DensityConfig = dataclasses.field(default_factory=DensityConfig)
    exposed: object = 'all'
    target_fpr: float = 0.05
    seed: int = 0


@dataclasses.dataclass
class FrameData:
    """The arrays a frame-branch training needs, from one dataset."""

    train: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    val_names: list
    exposed: np.ndarray
    records: dict


def load_frame_data(data_dir, size=64, exposed='all', seed=0, cache_dir=None,
                    show_progress=True):
    """Load normal training frames, validation frames and exposed anomalies.

    Raises:
        TrainingError: no normal training frames, no validation set, or no
            normal validation frames.

    """
    data = HazardsDataset(data_dir)
    train = data.records('train_set', anomalous=False)
    if not train:
        raise TrainingError(f'{str(data_dir)!r} has no normal frames in train_set/: the '
                            'density is learnt from normal frames only.')
    val = data.records('validation_set')
    if not val:
        raise TrainingError(f'{str(data_dir)!r} has no validation_set/: it is needed to pick '
                            'the best epoch and to calibrate scores.')
    if not any(not r.is_anomaly for r in val):
        raise TrainingError(f'{str(data_dir)!r}: validation_set/ has no normal frames to '
                            'calibrate on.')
    exposed_records = select_exposed(data.records('outliers_set'), exposed, seed) \
        if exposed != 0 else []
    cache = cache_dir or default_cache_dir()
    load = lambda recs: data.load_images(recs, size, cache, show_progress)  # noqa: E731
    return FrameData(
        train=load(train), val=load(val),
        val_labels=np.array([r.label for r in val]),
        val_names=[r.label_name for r in val],
        exposed=load(exposed_records) if exposed_records else np.zeros((0, size, size, 3),
                                                                       np.uint8),
        records={'train': train, 'val': val, 'exposed': exposed_records})


def assemble_frame_model(ae_dir, density_dir):
    """Combine a trained encoder and density into the deployable :class:`FrameDensityModel`."""
    ae = load_autoencoder(ae_dir)
    normalizer, flow = load_density(density_dir)
    model = FrameDensityModel(ae.encoder, normalizer, flow)
    model.eval()
    return model


def model_config(ae_config, density_config):
    return {
        'type': 'frame_rnvp_oe',
        'autoencoder': {'width': ae_config.width, 'embedding_dim': ae_config.embedding_dim,
                        'input_size': ae_config.input_size},
        'realnvp': {'n_couplings': density_config.n_couplings, 'hidden': density_config.hidden,
                    'mask': 'odds'},
    }


def train_frame_model(data_dir, model_dir, work_dir, config=None, *, overwrite=False,
                      cache_dir=None, show_progress=True, command=None, device='cpu'):
    """Run the whole chain; write ``model_dir``; return its manifest.

    The autoencoder and the density train on ``device``. Under ``torchrun``
    every process trains and rank 0 alone calibrates and writes ``model_dir``
    (the others return None).
    """
    config = config or FrameTrainingConfig()
    ae_cfg = dataclasses.replace(config.autoencoder, seed=config.seed)
    den_cfg = dataclasses.replace(config.density, seed=config.seed,
                                  oe=config.density.oe and config.exposed != 0)
    size = ae_cfg.input_size
    data = load_frame_data(data_dir, size, config.exposed, config.seed, cache_dir, show_progress)
    work = Path(work_dir)
    ae_dir, den_dir = work / 'autoencoder', work / 'density'
    ae_metrics = train_autoencoder(data.train, data.val[data.val_labels == 0], ae_dir, ae_cfg,
                                   show_progress, device)
    z_train = cached_embeddings(ae_dir, data.train, 'train')
    z_val = cached_embeddings(ae_dir, data.val, 'val')
    z_exp = cached_embeddings(ae_dir, data.exposed, 'exposed') if len(data.exposed) else None
    den_metrics = train_density(z_train, z_val[data.val_labels == 0], den_dir, den_cfg, z_exp,
                                show_progress, device)
    if not is_main_process():
        return None             # rank 0 of the torchrun job calibrates and writes
    normalizer, flow = load_density(den_dir)
    val_scores = density_scores(normalizer, flow, z_val)
    normal_scores = val_scores[data.val_labels == 0]
    calibration = EmpiricalCalibration.fit(normal_scores)
    threshold = calibration.threshold_for_fpr(config.target_fpr)
    validation = {'n_normal': int((data.val_labels == 0).sum()),
                  'n_anomalous': int((data.val_labels != 0).sum())}
    if validation['n_anomalous']:
        validation.update(auroc_summary(data.val_labels, val_scores))
        per_type = {}
        names = np.array(data.val_names)
        for name in sorted(set(data.val_names) - {'normal'}):
            sel = (data.val_labels == 0) | (names == name)
            per_type[name] = auroc_summary(data.val_labels[sel], val_scores[sel])['auroc']
        validation['per_type_auroc'] = per_type
    model = assemble_frame_model(ae_dir, den_dir)
    manifest = {
        'name': Path(model_dir).name,
        'branch': 'frame',
        'architecture': model_config(ae_cfg, den_cfg),
        'preprocessing': {'input_size': size, 'crop': 'center_square', 'resize': 'area',
                          'channel_order': 'rgb', 'dtype': 'uint8',
                          'standardize': 'per_image_channel (inside the model)'},
        'score': {'name': 'nll', 'units': 'nats', 'higher_is_anomalous': True},
        'calibration': calibration.to_dict(),
        'threshold': {'target_fpr': config.target_fpr, 'raw': threshold},
        'validation': validation,
        'provenance': {
            'command': command or
            'anomaly_perception.branches.frame.train_model.train_frame_model',
            **training_environment(),
            'data': _data_provenance(data_dir, data),
            'training': {'autoencoder': dataclasses.asdict(ae_cfg),
                         'density': dataclasses.asdict(den_cfg),
                         'exposed': config.exposed, 'seed': config.seed,
                         'autoencoder_best_epoch': ae_metrics['best_epoch'],
                         'autoencoder_best_val_loss': ae_metrics['best_val_loss'],
                         'density_best_epoch': den_metrics['best_epoch'],
                         'density_best_val_nll': den_metrics['best_val_nll']},
        },
    }
    weights = to_bytes({'config': manifest['architecture'], 'state_dict': model.state_dict()})
    return write_model_dir(model_dir, manifest, {MODEL_FILE: weights}, overwrite=overwrite)


def _data_provenance(data_dir, data):
    import json
    info = {'path': str(data_dir), 'n_train': len(data.train), 'n_val': len(data.val),
            'n_exposed': len(data.exposed)}
    manifest = Path(data_dir) / 'manifest.json'
    if manifest.is_file():
        try:
            m = json.loads(manifest.read_text())
            info.update({k: m.get(k) for k in ('generator', 'generator_version', 'preset',
                                               'seed', 'image_size', 'frames')})
        except ValueError:
            pass
    return info
