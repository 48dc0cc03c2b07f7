"""Training of the frame branch's models.

The autoencoder, Real-NVP (with and without outlier exposure) and the
binary-classifier baseline.

Each ``train_*`` function owns an output directory, checkpoints every epoch
(resumable, see :mod:`...training`), keeps the best epoch by validation loss and
writes ``metrics.json``. The ``anomaly-perception train ...`` commands are
thin wrappers around them.
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
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import losses
from .autoencoder import ConvAutoencoder
from .autoencoder import standardize
from .classifier import EmbeddingClassifier
from .model import EmbeddingNormalizer
from .realnvp import RealNVP
from ...io.files import atomic_write_bytes
from ...io.files import atomic_write_json
from ...io.files import atomic_write_npy
from ...metrics.binary import binary_curve
from ...runtime.preprocess import as_shape
from ...training import CHECKPOINT
from ...training import cpu_state
from ...training import distributed
from ...training import load_checkpoint
from ...training import module_device
from ...training import PlateauScheduler
from ...training import progress
from ...training import restore_rng
from ...training import rng_state
from ...training import save_checkpoint
from ...training import seed_everything
from ...training import shuffled_batches
from ...training import to_bytes
from ...training import TrainingError


def _to_tensor(images):
    """uint8 NHWC numpy -> float NCHW tensor (0-255)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


# --- augmentation -----------------------------------------------------------------------------


class Augmenter:
    """The RNVP+OE paper's augmentations, on a batch, in torch.

    Horizontal flip (p = 0.5), rotation within +-10 degrees, a random crop
    (zoom 1-1.15x with a random offset), brightness/contrast (+-15%) and
    mild smooth (Perlin-like) noise.
    """

    def __init__(self, size, rng, noise_bank=16):
        self.size = as_shape(size)
        self.rng = rng
        coarse = torch.from_numpy(rng.standard_normal((noise_bank, 1, 6, 6)).astype(np.float32))
        self.noise = F.interpolate(coarse, size=self.size, mode='bicubic', align_corners=False)

    def __call__(self, x):
        n = x.shape[0]
        rng = self.rng
        angle = np.radians(rng.uniform(-10, 10, n))
        zoom = 1.0 / rng.uniform(1.0, 1.15, n)
        flip = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        shift = rng.uniform(-1, 1, (n, 2)) * (1 - zoom)[:, None]
        cos, sin = np.cos(angle) * zoom, np.sin(angle) * zoom
        theta = np.zeros((n, 2, 3), np.float32)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos * flip, -sin, shift[:, 0]
        theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin * flip, cos, shift[:, 1]
        grid = F.affine_grid(torch.from_numpy(theta), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode='bilinear', padding_mode='reflection',
                          align_corners=False)
        gain = torch.from_numpy(rng.uniform(0.85, 1.15, (n, 1, 1, 1)).astype(np.float32))
        bias = torch.from_numpy(rng.uniform(-20, 20, (n, 1, 1, 1)).astype(np.float32))
        idx = torch.from_numpy(rng.integers(0, self.noise.shape[0], n))
        amp = torch.from_numpy(rng.uniform(0, 6, (n, 1, 1, 1)).astype(np.float32))
        return (x * gain + bias + self.noise[idx] * amp).clamp(0, 255)


# --- autoencoder --------------------------------------------------------------------------------


@dataclasses.dataclass
class AutoencoderConfig:
    """Autoencoder training options (defaults: docs/RESULTS.md explains them)."""

    width: int = 16
    embedding_dim: int = 128
    input_size: object = 64     # a side (square) or [height, width]
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    plateau_patience: int = 5
    augment: bool = True
    seed: int = 0


def _check_images(images, what, size):
    height, width = as_shape(size)
    if images is None or len(images) == 0:
        raise TrainingError(f'No {what}: training needs at least one.')
    if images.dtype != np.uint8 or images.shape[1:] != (height, width, 3):
        raise TrainingError(f'{what} must be uint8 [N, {height}, {width}, 3], got '
                            f'{images.dtype} {list(images.shape)}.')


def train_autoencoder(train_images, val_images, out_dir, config=None, show_progress=True,
                      device='cpu'):
    """Train the autoencoder on normal frames; return the metrics dict.

    Writes ``autoencoder.pt`` (best validation reconstruction loss),
    ``checkpoint.pt`` (resumable) and ``metrics.json`` into ``out_dir``.
    On ``device``; under ``torchrun``, each process trains on its part of
    every batch and rank 0 writes (:class:`~...training.Distributed`).
    """
    config = config or AutoencoderConfig()
    _check_images(train_images, 'normal training frames', config.input_size)
    _check_images(val_images, 'normal validation frames', config.input_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = distributed(device)
    rng = seed_everything(config.seed)
    model = ConvAutoencoder(config.width, config.embedding_dim, config.input_size)
    trained = job.prepare(model)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = PlateauScheduler(opt, factor=0.1, patience=config.plateau_patience)
    augment = Augmenter(config.input_size, rng)
    state = {'epoch': 0, 'best_val': float('inf'), 'best_epoch': -1, 'history': []}
    ckpt = out_dir / CHECKPOINT
    if ckpt.is_file():
        saved = load_checkpoint(ckpt)
        if saved.get('config') != dataclasses.asdict(config):
            raise TrainingError(
                f'{str(ckpt)!r} was written with other options ({saved.get("config")}); '
                'use another --out or delete it to start over.')
        model.load_state_dict(saved['model'])
        opt.load_state_dict(saved['optimizer'])
        sched.load_state_dict(saved['scheduler'])
        augment.noise = saved['noise']
        restore_rng(rng, saved['rng'])
        state = saved['state']
    x_train = _to_tensor(train_images)
    x_val = standardize(_to_tensor(val_images))
    bar = progress(config.epochs, 'autoencoder', show_progress and job.main)
    bar.update(state['epoch'])
    while state['epoch'] < config.epochs:
        model.train()
        total, count = 0.0, 0
        for idx in shuffled_batches(rng, len(x_train), config.batch_size):
            batch = x_train[idx]
            if config.augment:
                batch = augment(batch)
            # Every process draws the whole batch (the same generators), then trains on its part.
            weight, batch = job.local(len(idx), standardize(batch))
            recon, _ = trained(batch)
            loss = losses.reconstruction_loss(recon, batch) * weight
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += job.mean(loss.item()) * len(idx)
            count += len(idx)
        val = _ae_val_loss(model, x_val)
        sched.step(val)
        state['epoch'] += 1
        state['history'].append({'epoch': state['epoch'], 'train_loss': total / count,
                                 'val_loss': val, 'lr': sched.lr})
        if val < state['best_val']:
            state['best_val'], state['best_epoch'] = val, state['epoch']
            if job.main:
                atomic_write_bytes(out_dir / 'autoencoder.pt', to_bytes(
                    {'config': model.config, 'state_dict': cpu_state(model)}))
        if job.main:
            save_checkpoint(ckpt, {'config': dataclasses.asdict(config),
                                   'model': cpu_state(model), 'optimizer': opt.state_dict(),
                                   'scheduler': sched.state_dict(), 'noise': augment.noise,
                                   'rng': rng_state(rng), 'state': state})
        bar.set_postfix(train=f'{total / count:.4f}', val=f'{val:.4f}', lr=f'{sched.lr:.0e}')
        bar.update(1)
    bar.close()
    metrics = {'config': dataclasses.asdict(config), 'best_epoch': state['best_epoch'],
               'best_val_loss': state['best_val'], 'history': state['history']}
    if job.main:
        atomic_write_json(out_dir / 'metrics.json', metrics)
    job.barrier()
    return metrics


@torch.no_grad()
def _ae_val_loss(model, x_val, batch=256):
    model.eval()
    total, device = 0.0, module_device(model)
    for start in range(0, len(x_val), batch):
        chunk = x_val[start:start + batch].to(device)
        recon, _ = model(chunk)
        total += float(((recon - chunk) ** 2).mean()) * len(chunk)
    return total / len(x_val)


def load_autoencoder(ae_dir):
    """Load ``ae_dir/autoencoder.pt`` (raises TrainingError naming the file)."""
    path = Path(ae_dir) / 'autoencoder.pt'
    if not path.is_file():
        raise TrainingError(f'No trained autoencoder at {str(path)!r}; run '
                            '`anomaly-perception train autoencoder` first.')
    saved = load_checkpoint(path)
    model = ConvAutoencoder(**saved['config'])
    model.load_state_dict(saved['state_dict'])
    model.eval()
    return model


@torch.no_grad()
def compute_embeddings(model, images, batch=256):
    """Embeddings ``float32 [N, D]`` of uint8 NHWC images (no augmentation)."""
    model.eval()
    out = []
    for start in range(0, len(images), batch):
        x = standardize(_to_tensor(images[start:start + batch]))
        out.append(model.encoder(x))
    return torch.cat(out).numpy() if out else np.zeros((0, model.config['embedding_dim']),
                                                       np.float32)


@torch.no_grad()
def reconstruction_scores(model, images, batch=256):
    """AE-MSE and AE-MAE anomaly scores (per-image reconstruction errors) ``[N]`` each."""
    model.eval()
    mse, mae = [], []
    for start in range(0, len(images), batch):
        x = standardize(_to_tensor(images[start:start + batch]))
        a, b = model.reconstruction_errors(x)
        mse.append(a)
        mae.append(b)
    return torch.cat(mse).numpy(), torch.cat(mae).numpy()


def cached_embeddings(ae_dir, images, key):
    """Embeddings of ``images`` by the autoencoder in ``ae_dir``, cached there under ``key``."""
    ae_dir = Path(ae_dir)
    digest = hashlib.sha256((ae_dir / 'autoencoder.pt').read_bytes()).hexdigest()[:16]
    ident = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    path = ae_dir / 'embeddings' / f'{key}_{digest}_{ident}.npy'
    if path.is_file():
        arr = np.load(path)
        if arr.shape[0] == len(images):
            return arr
    arr = compute_embeddings(load_autoencoder(ae_dir), images)
    atomic_write_npy(path, arr)
    return arr


# --- density (Real-NVP, with and without outlier exposure) --------------------------------------


@dataclasses.dataclass
class DensityConfig:
    """Real-NVP training options (paper: 4 couplings, 128 hidden, lambda 1, gamma 100)."""

    n_couplings: int = 4
    hidden: int = 128
    epochs: int = 200
    batch_size: int = 256
    anomaly_batch: int = 64
    lr: float = 1e-3
    plateau_patience: int = 10
    oe: bool = True
    lam: float = 1.0
    gamma: float = 100.0
    seed: int = 0


def _nll(normalizer, flow, z):
    return flow.nll(normalizer(z)) + normalizer.log_scale


class _Likelihood(torch.nn.Module):
    """The NLL of embeddings as one module's forward (what DistributedDataParallel wraps)."""

    def __init__(self, normalizer, flow):
        super().__init__()
        self.normalizer, self.flow = normalizer, flow

    def forward(self, z):
        return _nll(self.normalizer, self.flow, z)


def train_density(train_emb, val_emb, out_dir, config=None, anomaly_emb=None,
                  show_progress=True, device='cpu'):
    """Train Real-NVP (+OE when ``config.oe`` and anomalies are given) on embeddings.

    The best epoch is chosen on the mean NLL of *normal* validation
    embeddings. Writes ``density.pt``, ``checkpoint.pt``, ``metrics.json``.
    On ``device``; under ``torchrun`` each process takes its part of the
    normal batch, all of the exposed anomalies, and rank 0 writes.
    """
    config = config or DensityConfig()
    if train_emb is None or len(train_emb) == 0:
        raise TrainingError('No normal training embeddings: density training needs normals.')
    if val_emb is None or len(val_emb) == 0:
        raise TrainingError('No normal validation embeddings: there is no validation set to '
                            'select the best epoch on.')
    use_oe = config.oe and anomaly_emb is not None and len(anomaly_emb) > 0
    if config.oe and not use_oe:
        raise TrainingError('Outlier exposure needs exposed anomalies (outliers_set frames), '
                            'found none; pass --no-oe to train plain Real-NVP.')
    if not all(np.all(np.isfinite(e)) for e in (train_emb, val_emb)):
        raise TrainingError('Embeddings contain NaN or inf; the autoencoder is broken.')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = distributed(device)
    rng = seed_everything(config.seed)
    dim = train_emb.shape[1]
    z_train = torch.from_numpy(np.asarray(train_emb, np.float32))
    z_val = torch.from_numpy(np.asarray(val_emb, np.float32))
    z_anom = torch.from_numpy(np.asarray(anomaly_emb, np.float32)) if use_oe else None
    normalizer = EmbeddingNormalizer(dim).fit(z_train)
    flow = RealNVP(dim, config.n_couplings, config.hidden)
    trained = job.prepare(_Likelihood(normalizer, flow))
    opt = torch.optim.Adam(flow.parameters(), lr=config.lr)
    sched = PlateauScheduler(opt, factor=0.1, patience=config.plateau_patience)
    state = {'epoch': 0, 'best_val': float('inf'), 'best_epoch': -1, 'history': []}
    ckpt = out_dir / CHECKPOINT
    if ckpt.is_file():
        saved = load_checkpoint(ckpt)
        if saved.get('config') != dataclasses.asdict(config):
            raise TrainingError(f'{str(ckpt)!r} was written with other options; use another '
                                '--out or delete it to start over.')
        flow.load_state_dict(saved['flow'])
        opt.load_state_dict(saved['optimizer'])
        sched.load_state_dict(saved['scheduler'])
        restore_rng(rng, saved['rng'])
        state = saved['state']
    bar = progress(config.epochs, 'real-nvp+oe' if use_oe else 'real-nvp',
                   show_progress and job.main)
    bar.update(state['epoch'])
    while state['epoch'] < config.epochs:
        flow.train()
        total, count = 0.0, 0
        for idx in shuffled_batches(rng, len(z_train), config.batch_size):
            # Each process: its part of the normals, every exposed anomaly (the margin's pairs).
            weight, z_n = job.local(len(idx), z_train[idx])
            if use_oe:
                pick = torch.from_numpy(rng.integers(0, len(z_anom), config.anomaly_batch))
                nll = trained(torch.cat([z_n, z_anom[pick].to(job.device)]))
                nll_n, nll_a = nll[:len(z_n)], nll[len(z_n):]
                loss = losses.outlier_exposure_loss(nll_n, nll_a, config.lam, config.gamma)
            else:
                loss = losses.nll_loss(trained(z_n))
            loss = loss * weight
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 100.0)
            opt.step()
            total += job.mean(loss.item()) * len(idx)
            count += len(idx)
        flow.eval()
        with torch.no_grad():
            val = float(_nll(normalizer, flow, z_val.to(job.device)).mean())
        sched.step(val)
        state['epoch'] += 1
        state['history'].append({'epoch': state['epoch'], 'train_loss': total / count,
                                 'val_nll': val, 'lr': sched.lr})
        if np.isfinite(val) and val < state['best_val']:
            state['best_val'], state['best_epoch'] = val, state['epoch']
            if job.main:
                atomic_write_bytes(out_dir / 'density.pt', to_bytes({
                    'config': flow.config, 'flow': cpu_state(flow),
                    'normalizer': cpu_state(normalizer), 'oe': use_oe}))
        if job.main:
            save_checkpoint(ckpt, {'config': dataclasses.asdict(config),
                                   'flow': cpu_state(flow), 'optimizer': opt.state_dict(),
                                   'scheduler': sched.state_dict(), 'rng': rng_state(rng),
                                   'state': state})
        bar.set_postfix(train=f'{total / count:.2f}', val_nll=f'{val:.2f}', lr=f'{sched.lr:.0e}')
        bar.update(1)
    bar.close()
    if state['best_epoch'] < 0:
        raise TrainingError('Real-NVP training never produced a finite validation NLL.')
    metrics = {'config': dataclasses.asdict(config), 'oe': use_oe,
               'n_train': len(z_train), 'n_exposed': 0 if z_anom is None else len(z_anom),
               'best_epoch': state['best_epoch'], 'best_val_nll': state['best_val'],
               'history': state['history']}
    if job.main:
        atomic_write_json(out_dir / 'metrics.json', metrics)
    job.barrier()
    return metrics


def load_density(density_dir):
    """Load ``density.pt``: returns ``(normalizer, flow)`` in eval mode."""
    path = Path(density_dir) / 'density.pt'
    if not path.is_file():
        raise TrainingError(f'No trained density at {str(path)!r}; run '
                            '`anomaly-perception train density` first.')
    saved = load_checkpoint(path)
    flow = RealNVP(**saved['config'])
    flow.load_state_dict(saved['flow'])
    normalizer = EmbeddingNormalizer(saved['config']['dim'])
    normalizer.load_state_dict(saved['normalizer'])
    flow.eval()
    return normalizer, flow


@torch.no_grad()
def density_scores(normalizer, flow, embeddings, batch=4096):
    """NLL scores ``[N]`` (nats) of embeddings."""
    z = torch.from_numpy(np.asarray(embeddings, np.float32))
    return torch.cat([_nll(normalizer, flow, z[s:s + batch])
                      for s in range(0, len(z), batch)]).numpy()


# --- BCLASS --------------------------------------------------------------------------------------


@dataclasses.dataclass
class ClassifierConfig:
    """Binary-classifier baseline options."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    plateau_patience: int = 10
    seed: int = 0


def train_bclass(normal_emb, anomaly_emb, val_emb, val_labels, out_dir, config=None,
                 show_progress=True, device='cpu'):
    """Train BCLASS on normal (0) vs exposed anomalous (1) embeddings, balanced batches.

    The best epoch is chosen on the binary cross-entropy of the validation
    embeddings (``val_labels``: 1 = anomaly). On ``device``; under
    ``torchrun`` each process takes its part of every batch, rank 0 writes.
    """
    config = config or ClassifierConfig()
    if normal_emb is None or len(normal_emb) == 0:
        raise TrainingError('No normal training embeddings for the classifier.')
    if anomaly_emb is None or len(anomaly_emb) == 0:
        raise TrainingError('A binary classifier needs exposed anomalies; found none.')
    if val_emb is None or len(val_emb) == 0:
        raise TrainingError('No validation embeddings for the classifier.')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = distributed(device)
    rng = seed_everything(config.seed)
    zn = torch.from_numpy(np.asarray(normal_emb, np.float32))
    za = torch.from_numpy(np.asarray(anomaly_emb, np.float32))
    zv = torch.from_numpy(np.asarray(val_emb, np.float32))
    yv = torch.from_numpy(np.asarray(val_labels, np.float32))
    normalizer = EmbeddingNormalizer(zn.shape[1]).fit(zn)
    model = EmbeddingClassifier(zn.shape[1])
    normalizer.to(job.device)
    trained = job.prepare(model)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = PlateauScheduler(opt, factor=0.1, patience=config.plateau_patience)
    state = {'epoch': 0, 'best_val': float('inf'), 'best_epoch': -1, 'history': []}
    ckpt = out_dir / CHECKPOINT
    if ckpt.is_file():
        saved = load_checkpoint(ckpt)
        if saved.get('config') != dataclasses.asdict(config):
            raise TrainingError(f'{str(ckpt)!r} was written with other options.')
        model.load_state_dict(saved['model'])
        opt.load_state_dict(saved['optimizer'])
        sched.load_state_dict(saved['scheduler'])
        restore_rng(rng, saved['rng'])
        state = saved['state']
    half = max(1, config.batch_size // 2)
    bar = progress(config.epochs, 'bclass', show_progress and job.main)
    bar.update(state['epoch'])
    while state['epoch'] < config.epochs:
        model.train()
        order = rng.permutation(len(zn))
        for start in range(0, len(order), half):
            idx = torch.from_numpy(order[start:start + half])
            pick = torch.from_numpy(rng.integers(0, len(za), len(idx)))
            x = torch.cat([zn[idx], za[pick]])
            y = torch.cat([torch.zeros(len(idx)), torch.ones(len(idx))])
            weight, x, y = job.local(len(x), x, y)
            loss = losses.binary_classifier_loss(trained(normalizer(x)), y) * weight
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(losses.binary_classifier_loss(model(normalizer(zv.to(job.device))),
                                                      yv.to(job.device)))
        sched.step(val)
        state['epoch'] += 1
        state['history'].append({'epoch': state['epoch'], 'val_bce': val, 'lr': sched.lr})
        if val < state['best_val']:
            state['best_val'], state['best_epoch'] = val, state['epoch']
            if job.main:
                atomic_write_bytes(out_dir / 'bclass.pt', to_bytes({
                    'config': model.config, 'model': cpu_state(model),
                    'normalizer': cpu_state(normalizer)}))
        if job.main:
            save_checkpoint(ckpt, {'config': dataclasses.asdict(config),
                                   'model': cpu_state(model), 'optimizer': opt.state_dict(),
                                   'scheduler': sched.state_dict(), 'rng': rng_state(rng),
                                   'state': state})
        bar.set_postfix(val_bce=f'{val:.4f}')
        bar.update(1)
    bar.close()
    metrics = {'config': dataclasses.asdict(config), 'n_normal': len(zn), 'n_exposed': len(za),
               'best_epoch': state['best_epoch'], 'best_val_bce': state['best_val'],
               'history': state['history']}
    if job.main:
        atomic_write_json(out_dir / 'metrics.json', metrics)
    job.barrier()
    return metrics


@torch.no_grad()
def bclass_scores(bclass_dir, embeddings):
    """P(anomaly) ``[N]`` from a trained classifier directory."""
    saved = load_checkpoint(Path(bclass_dir) / 'bclass.pt')
    model = EmbeddingClassifier(**saved['config'])
    model.load_state_dict(saved['model'])
    normalizer = EmbeddingNormalizer(saved['config']['dim'])
    normalizer.load_state_dict(saved['normalizer'])
    model.eval()
    z = torch.from_numpy(np.asarray(embeddings, np.float32))
    return torch.sigmoid(model(normalizer(z))).numpy()


# --- exposure selection and evaluation helpers ---------------------------------------------------


def select_exposed(records, count, seed):
    """Pick ``count`` ('all' or an int) anomalous records for outlier exposure.

    Types take turns (in a seeded random order) so that a handful of exposed
    frames covers as many types as possible; within a type the frames are
    drawn at random.
    """
    anomalies = [r for r in records if r.is_anomaly]
    if count == 'all':
        return anomalies
    count = int(count)
    if count < 0:
        raise TrainingError(f'--exposed must be >= 0 or "all", got {count}.')
    if count > len(anomalies):
        raise TrainingError(f'--exposed {count} but only {len(anomalies)} anomalous frames '
                            'are available in outliers_set.')
    rng = np.random.default_rng(seed)
    by_type = {}
    for r in anomalies:
        by_type.setdefault(r.label_name, []).append(r)
    pools = [list(rng.permutation(by_type[t])) for t in rng.permutation(sorted(by_type))]
    chosen = []
    while len(chosen) < count:
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(pool.pop())
    return chosen


def auroc_summary(labels, scores):
    curve = binary_curve(np.asarray(labels) != 0, scores)
    return {'auroc': curve.auroc(), 'ap': curve.average_precision(),
            'fpr95': curve.fpr_at_tpr(0.95)}


def write_json(path, obj):
    atomic_write_json(path, json.loads(json.dumps(obj, default=float)))
