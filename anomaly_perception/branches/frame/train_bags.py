"""``train frame --bag``: learn a place from the robot's own normal patrol bags.

The chain (docs/RESULTS.md, "Learning a place from bags", has the
measurements behind each choice):

1. **Frames**: the camera topic of every bag, every ``every``-th frame,
   decoded as the node decodes it and resized to the whole 16:9 view
   (64x112 by default). Cached in the work directory.
2. **Split by time blocks** (:func:`~anomaly_perception.data.bag_frames.time_block_split`):
   every fifth 10 s block of the route is held out for validation and
   calibration, with a 1 s guard.
3. **Autoencoder** on the training blocks, with the paper's augmentations
   (flip, rotation, zoom, brightness/contrast, smooth noise).
4. **Embeddings**: each training frame once as recorded and
   ``augmented_copies`` times augmented. A density fitted on one run's
   frames alone learns that run's camera (exposure, white balance, noise)
   and calls every frame of the next run anomalous; the augmented copies
   widen it to the camera's run-to-run variation.
5. **Real-NVP**, with outlier exposure when tagged anomalous intervals are
   given (``--exposed BAG:INTERVALS.yaml``; their frames, also augmented).
   The tagged patrol's frames more than ``guard_s`` from every tag (and
   those tagged ``normal``) join the normal training frames: exposure from
   another run alone teaches the density that run's camera as anomalous
   (docs/RESULTS.md: AUROC 0.817 -> 0.893 with 8 exposed frames on one
   building).
6. **Calibration** on the held-out blocks (empirical CDF with an
   exponential tail), and the **alarm threshold**: the hazard filter's
   on-probability at which it raises the target number of false alarms per
   hour on the held-out blocks
   (:func:`~anomaly_perception.stream.hazard.on_probability_for_rate`).
   The held-out raw scores are kept in the manifest so the node and replay
   recompute the threshold for their own smoothing and target.

Every step resumes from the work directory after an interruption.
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
import hashlib
from pathlib import Path
import time

import numpy as np
import torch

from .autoencoder import standardize
from .model import MODEL_FILE
from .train import _to_tensor
from .train import Augmenter
from .train import AutoencoderConfig
from .train import compute_embeddings
from .train import density_scores
from .train import DensityConfig
from .train import load_autoencoder
from .train import load_density
from .train import select_exposed
from .train import train_autoencoder
from .train import train_density
from .train_model import assemble_frame_model
from .train_model import model_config
from ...data.bag_frames import cached_bag_frames
from ...data.bag_frames import check_patrol_length
from ...data.bag_frames import interval_frames
from ...data.bag_frames import time_block_split
from ...data.bag_frames import untagged_frames
from ...io.files import atomic_write_npy
from ...runtime.manifest import write_model_dir
from ...runtime.preprocess import as_shape
from ...scoring.calibration import EmpiricalCalibration
from ...stream.hazard import HazardConfig
from ...stream.hazard import heldout_sequences
from ...stream.hazard import on_probability_for_rate
from ...training import is_main_process
from ...training import seed_everything
from ...training import to_bytes
from ...training import training_environment
from ...training import TrainingError

#: The frame model's input for a robot's own camera: the whole 16:9 view.
BAG_INPUT_SHAPE = (64, 112)


def _bag_autoencoder():
    return AutoencoderConfig(width=8, epochs=25, input_size=list(BAG_INPUT_SHAPE))


def _bag_density():
    return DensityConfig(epochs=100)


@dataclasses.dataclass
class BagTrainingConfig:
    """Everything ``train frame --bag`` decides (defaults: docs/RESULTS.md)."""

    autoencoder: AutoencoderConfig = dataclasses.field(default_factory=_bag_autoencoder)
    density: DensityConfig = dataclasses.field(default_factory=_bag_density)
    topic: str = None
    every: int = 1
    augmented_copies: int = 4
    exposed_count: object = 'all'
    target_false_alarms_per_hour: float = 2.0
    hazard: HazardConfig = dataclasses.field(default_factory=HazardConfig)
    hysteresis: float = 0.1
    block_s: float = 10.0
    val_every: int = 5
    guard_s: float = 1.0
    tail_quantile: float = 0.9
    exposed_normals: bool = True
    seed: int = 0


@dataclasses.dataclass
class ExposedSource:
    """One ``--exposed BAG:INTERVALS.yaml``."""

    bag: str
    intervals: str

    @classmethod
    def parse(cls, text):
        bag, sep, intervals = str(text).rpartition(':')
        if not sep or not bag or not intervals:
            raise ValueError(f'expected BAG:INTERVALS.yaml, got {text!r}')
        return cls(bag, intervals)


def load_exposed(sources, shape, *, topic=None, every=1, count='all', seed=0):
    """Tagged anomalous frames of ``sources`` (:class:`ExposedSource`), ``count`` of them.

    Types take turns (as :func:`~anomaly_perception.branches.frame.train.select_exposed`),
    so a handful of frames covers as many tagged types as possible.

    Returns:
        ``(images uint8 [N, h, w, 3], labels, provenance)``.

    """
    images, labels, info = [], [], []
    for source in sources:
        frames, names = interval_frames(source.bag, source.intervals, shape, topic=topic,
                                        every=every)
        images.append(frames.images)
        labels += names
        info.append({'bag': Path(source.bag).name, 'intervals': Path(source.intervals).name,
                     'frames': len(frames), 'labels': sorted(set(names))})
    images = np.concatenate(images) if images else np.zeros((0, *shape, 3), np.uint8)
    records = [_Tagged(i, name) for i, name in enumerate(labels)]
    chosen = select_exposed(records, count, seed)
    index = np.array(sorted(r.index for r in chosen), np.int64)
    return images[index], [labels[i] for i in index], info


@dataclasses.dataclass
class _Tagged:
    index: int
    label_name: str
    is_anomaly: bool = True


@torch.no_grad()
def augmented_embeddings(model, images, copies, seed, shape):
    """Embeddings of ``images`` as recorded, then ``copies`` augmented passes (seeded)."""
    out = [compute_embeddings(model, images)]
    augment = Augmenter(shape, np.random.default_rng(seed))
    for _ in range(copies):
        chunks = []
        for start in range(0, len(images), 256):
            x = augment(_to_tensor(images[start:start + 256]))
            chunks.append(model.encoder(standardize(x)))
        out.append(torch.cat(chunks).numpy())
    return np.concatenate(out)


def _cached(path, make):
    path = Path(path)
    if path.is_file():
        return np.load(path, allow_pickle=False)
    arr = make()
    atomic_write_npy(path, arr)
    return arr


def train_frame_from_bags(bags, model_dir, work_dir, config=None, *, exposed=(),
                          overwrite=False, show_progress=True, command=None, device='cpu'):
    """Run the chain of the module docs; write ``model_dir``; return its manifest.

    The autoencoder and the density train on ``device``. Under ``torchrun``
    every process trains and rank 0 alone calibrates and writes ``model_dir``
    (the others return None).

    Raises:
        BagFramesError / BagError / LabelsError: unusable bags or intervals
            (each message names the file and what is wrong).
        TrainingError: too few held-out frames to calibrate on.

    """
    config = config or BagTrainingConfig()
    started = time.perf_counter()
    shape = as_shape(config.autoencoder.input_size)
    ae_cfg = dataclasses.replace(config.autoencoder, seed=config.seed,
                                 input_size=list(shape))
    if not bags:
        raise TrainingError('train frame --bag needs at least one bag of normal driving.')
    for bag in list(bags) + [s.bag for s in exposed]:
        if not Path(bag).exists():
            raise TrainingError(f'Bag {str(bag)!r} does not exist.')
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    frames, extract_s = cached_bag_frames(bags, shape, work, topic=config.topic,
                                          every=config.every, show_progress=show_progress)
    check_patrol_length(frames)
    train_idx, val_idx, blocks = time_block_split(frames, config.block_s, config.val_every,
                                                  config.guard_s)
    if len(val_idx) < 20:
        raise TrainingError(f'Only {len(val_idx)} held-out frames: record a longer patrol or '
                            'lower --every.')
    ex_images, ex_labels, ex_info = np.zeros((0, *shape, 3), np.uint8), [], []
    extra = np.zeros((0, *shape, 3), np.uint8)
    if exposed and config.exposed_count != 0:
        ex_images, ex_labels, ex_info = load_exposed(
            exposed, shape, topic=config.topic, every=1, count=config.exposed_count,
            seed=config.seed)
        if config.exposed_normals:
            # The tagged patrols' own normal driving: without it, exposure from another run
            # teaches the density that run's camera (exposure, white balance) as anomalous.
            extra = np.concatenate([
                untagged_frames(s.bag, s.intervals, shape, topic=config.topic,
                                every=config.every, guard_s=config.guard_s).images
                for s in exposed])
    ae_dir, den_dir = work / 'autoencoder', work / 'density'
    ae_metrics = train_autoencoder(frames.images[train_idx], frames.images[val_idx], ae_dir,
                                   ae_cfg, show_progress, device)
    digest = hashlib.sha256((ae_dir / 'autoencoder.pt').read_bytes()).hexdigest()[:12]
    copies = config.augmented_copies
    model = load_autoencoder(ae_dir)
    z_train = _cached(work / f'z_train_{digest}_k{copies}_s{config.seed}.npy',
                      lambda: augmented_embeddings(model, frames.images[train_idx], copies,
                                                   config.seed, shape))
    if len(extra):
        key = hashlib.sha256(extra.tobytes()).hexdigest()[:12]
        z_extra = _cached(work / f'z_extra_{digest}_{key}_k{copies}_s{config.seed}.npy',
                          lambda: augmented_embeddings(model, extra, copies,
                                                       config.seed + 2, shape))
        z_train = np.concatenate([z_train, z_extra])
    z_val = compute_embeddings(model, frames.images[val_idx])
    z_exp = None
    if len(ex_images):
        z_exp = augmented_embeddings(model, ex_images, copies, config.seed + 1, shape)
    den_cfg = dataclasses.replace(config.density, seed=config.seed, oe=z_exp is not None)
    if z_exp is not None:
        # One density per exposed set, so that several few-shot runs share one work directory.
        ident = hashlib.sha256(ex_images.tobytes() + extra.tobytes()).hexdigest()[:12]
        den_dir = work / f'density_oe_{ident}'
    den_metrics = train_density(z_train, z_val, den_dir, den_cfg, z_exp, show_progress, device)
    if not is_main_process():
        return None             # rank 0 of the torchrun job calibrates and writes
    normalizer, flow = load_density(den_dir)
    val_raw = density_scores(normalizer, flow, z_val)
    calibration = EmpiricalCalibration.fit_tailed(val_raw, config.tail_quantile)
    position = {int(i): k for k, i in enumerate(val_idx)}
    heldout = {'blocks': []}
    for block in blocks:
        stamps = frames.stamps[block]
        raw = val_raw[[position[int(i)] for i in block]]
        heldout['blocks'].append({
            't_ms': [int(v) for v in (stamps - stamps[0]) // 1_000_000],
            'raw': [round(float(v), 4) for v in raw]})
    hazard = config.hazard
    on, details = on_probability_for_rate(heldout_sequences(heldout, calibration), hazard,
                                          config.target_false_alarms_per_hour,
                                          config.hysteresis)
    raw_on = float(calibration.raw_for_probability(on))
    validation = {'n_heldout': int(len(val_idx)), 'n_heldout_blocks': len(blocks),
                  'heldout_hours': details['heldout_hours'],
                  'raw_percentiles': {p: float(np.percentile(val_raw, p))
                                      for p in (50, 95, 99, 100)}}
    if z_exp is not None:
        exp_raw = density_scores(normalizer, flow, z_exp[:len(ex_images)])
        validation['exposed_above_threshold'] = float(np.mean(exp_raw > raw_on))
    deployable = assemble_frame_model(ae_dir, den_dir)
    manifest = {
        'name': Path(model_dir).name,
        'branch': 'frame',
        'architecture': model_config(ae_cfg, den_cfg),
        'preprocessing': {'input_shape': list(shape), 'crop': 'letterbox',
                          'resize': 'area', 'channel_order': 'rgb', 'dtype': 'uint8',
                          'standardize': 'per_image_channel (inside the model)'},
        'score': {'name': 'nll', 'units': 'nats', 'higher_is_anomalous': True},
        'calibration': calibration.to_dict(),
        'threshold': {'target_fpr': float(1 - on), 'raw': raw_on},
        'alarms': {
            'target_false_alarms_per_hour': float(config.target_false_alarms_per_hour),
            'on_probability': float(on), 'raw': raw_on,
            'hazard_filter': {**dataclasses.asdict(hazard), 'hysteresis': config.hysteresis},
            'fit': details, 'heldout': heldout},
        'validation': validation,
        'provenance': {
            'command': command or
            'anomaly_perception.branches.frame.train_bags.train_frame_from_bags',
            **training_environment(),
            'data': {
                'bags': [{**s, 'bag': Path(s['bag']).name} for s in frames.sources],
                'frames': len(frames), 'n_train': int(len(train_idx)),
                'n_heldout': int(len(val_idx)), 'span_s': frames.duration_s,
                'every': config.every, 'topic': frames.sources[0]['topic'],
                'exposed': {'sources': ex_info, 'n_frames': int(len(ex_images)),
                            'labels': sorted(set(ex_labels)),
                            'normal_frames': int(len(extra)),
                            'count': config.exposed_count}},
            'training': {'autoencoder': dataclasses.asdict(ae_cfg),
                         'density': dataclasses.asdict(den_cfg),
                         'augmented_copies': copies, 'seed': config.seed,
                         'split': {'block_s': config.block_s, 'val_every': config.val_every,
                                   'guard_s': config.guard_s},
                         'autoencoder_best_epoch': ae_metrics['best_epoch'],
                         'density_best_epoch': den_metrics['best_epoch'],
                         'density_best_val_nll': den_metrics['best_val_nll'],
                         'frame_extraction_s': round(extract_s, 2),
                         'frame_extraction_fps': round(len(frames) / extract_s, 1)
                         if extract_s else None,
                         'wall_s': round(time.perf_counter() - started, 1)},
        },
    }
    weights = to_bytes({'config': manifest['architecture'], 'state_dict': deployable.state_dict()})
    return write_model_dir(model_dir, manifest, {MODEL_FILE: weights}, overwrite=overwrite)
