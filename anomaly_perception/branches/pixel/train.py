"""``anomaly-perception train pixel``: ERFNet on the synthetic world's semantic labels.

The reference recipe of ERFNet (Romera et al.), scaled to what a CPU can
train (see docs/PERFORMANCE.md for what it costs):

1. **Encoder stage**: the encoder with its 1x1 head on labels at 1/8 of the
   input resolution (nearest), weighted cross-entropy with ENet weights of
   those labels. Always cross-entropy, as in the reference.
2. **Decoder stage**: the whole network on full-resolution labels with the
   loss under study (:class:`~anomaly_perception.branches.pixel.losses.PixelLoss`: ``ce``,
   ``focal``, ``eiml``, ``logitnorm`` or a sum), class weights from the
   training labels for the terms that take them.

Both stages: Adam (lr 5e-4, betas 0.9/0.999, eps 1e-8, weight decay 1e-4),
learning rate ``lr * (1 - epoch / epochs) ** 0.9`` per epoch, horizontal
flips and translations of 0..2 pixels (image padded with 0, labels with
void). Anomaly pixels are void in the semantic labels, never a class. The
best decoder-stage epoch by validation mIoU (normal classes, void ignored)
is kept. A checkpoint after every epoch makes the run resumable: started
again with the same work directory it continues exactly where it stopped.

The model directory gets ``pixel_model.pt`` (the deployed
:class:`~anomaly_perception.branches.pixel.model.PixelSegmenterModel`) and a
manifest: classes, preprocessing, the anomaly score and its calibration on
the normal pixels of the validation split, validation mIoU and pixel
AuPRC / FPR95, and provenance.
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
import time

import cv2
import numpy as np
import torch

from . import losses
from .model import MODEL_FILE
from .model import PixelSegmenterModel
from ...data.hazards import default_cache_dir
from ...data.hazards import HazardsDataset
from ...metrics.binary import BinaryScoreAccumulator
from ...metrics.segmentation import ConfusionMatrix
from ...models.erfnet import ERFNet
from ...runtime.manifest import write_model_dir
from ...runtime.preprocess import as_shape
from ...runtime.preprocess import center_crop
from ...scoring.calibration import EmpiricalCalibration
from ...scoring.pixel import fit_pixel_calibration
from ...training import CHECKPOINT
from ...training import cpu_state
from ...training import distributed
from ...training import is_main_process
from ...training import load_checkpoint
from ...training import load_resumable
from ...training import module_device
from ...training import poly_lr
from ...training import restore_rng
from ...training import rng_state
from ...training import save_checkpoint
from ...training import seed_everything
from ...training import set_learning_rate
from ...training import shuffled_batches
from ...training import to_bytes
from ...training import training_environment
from ...training import TrainingError

VOID = losses.IGNORE_INDEX
FRAME_QUANTILE = 0.99
DEFAULT_CLASSES = ('floor', 'wall', 'ceiling', 'door', 'light', 'robot', 'other')


@dataclasses.dataclass
class PixelTrainingConfig:
    """Options of ``train pixel`` (defaults: what 2 CPU cores can afford, see module docs)."""

    input_shape: tuple = (128, 128)     # model input [h, w], multiples of 8
    loss: str = 'ce'
    loss_weights: dict = dataclasses.field(default_factory=dict)
    gamma: float = 2.0                  # focal
    tau: float = 1.0                    # LogitNorm
    entropic_scale: float = 10.0        # EIML
    score: str = 'maxlogit'             # the deployed anomaly score
    encoder_epochs: int = 10
    decoder_epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-4
    weight_decay: float = 1e-4
    max_translation: int = 2
    train_every: int = 1                # every n-th training frame (patrol frames are sequences)
    void_outliers: bool = False         # a void class trained on outliers_set's anomaly pixels
    target_fpr: float = 0.05            # the mask's pixel false-positive rate
    seed: int = 0

    def head(self):
        """Return ERFNet's last layer for this loss: IsoMax+ whenever EIML is a term."""
        return 'isomax' if losses.PixelLoss(self.loss).needs_isomax else 'linear'


@dataclasses.dataclass
class PixelData:
    images: np.ndarray      # uint8 [N, h, w, 3] RGB
    labels: np.ndarray      # uint8 [N, h, w] class ids, 255 void
    anomaly: np.ndarray     # bool [N, h, w]
    names: list
    types: list = None      # anomaly type name per frame ('normal' for normal frames)
    instances: np.ndarray = None    # uint16 [N, h, w] anomaly instance ids, when asked


def _label_map(path, shape, what):
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise TrainingError(f'Cannot read the {what} map {str(path)!r}.')
    height, width = shape
    crop = center_crop(image, width / height)
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_NEAREST)


def load_pixel_split(data, split, shape, cache_dir=None, show_progress=False, every=1,
                     exclude_types=(), instances=False):
    """Images, semantic labels and anomaly masks of a dataset split at ``shape``.

    ``every`` keeps every n-th record of the split (in the dataset's order);
    ``exclude_types`` drops frames of those anomaly types (the global ones,
    whose masks cover the whole image); ``instances`` also loads the anomaly
    instance ids (instances/<stem>.png) where the dataset has them.

    Raises:
        TrainingError: the split is empty, or its label maps are missing.

    """
    records = [r for r in data.records(split)[::every] if r.label_name not in exclude_types]
    if not records:
        raise TrainingError(f'{str(data.root)!r} has no {split}.')
    shape = as_shape(shape)
    images = data.load_images(records, shape, cache_dir, show_progress)
    labels = np.empty((len(records), *shape), np.uint8)
    anomaly = np.zeros((len(records), *shape), bool)
    ids = None
    for i, r in enumerate(records):
        stem = Path(r.filename).stem
        sem = data.root / 'semantic' / f'{stem}.png'
        if not sem.is_file():
            raise TrainingError(f'{str(sem)!r} is missing: train pixel needs the semantic '
                                'maps that synth dataset writes (semantic/<stem>.png).')
        labels[i] = _label_map(sem, shape, 'semantic')
        mask = data.root / 'masks' / f'{stem}.png'
        if mask.is_file():
            anomaly[i] = _label_map(mask, shape, 'anomaly mask') > 0
        inst = data.root / 'instances' / f'{stem}.png'
        if instances and inst.is_file():
            if ids is None:
                ids = np.zeros((len(records), *shape), np.uint16)
            ids[i] = _label_map(inst, shape, 'instance')
    labels[anomaly] = VOID      # anomalies are never a class
    return PixelData(images, labels, anomaly, [r.filename for r in records],
                     [r.label_name for r in records], ids)


def _augment(images, labels, rng, max_translation):
    """Random horizontal flip and a 0..max_translation pixel shift per sample."""
    images, labels = images.clone(), labels.clone()
    for i in range(len(images)):
        if rng.random() < 0.5:
            images[i] = images[i].flip(-1)
            labels[i] = labels[i].flip(-1)
        if max_translation:
            dx, dy = (int(v) for v in rng.integers(0, max_translation + 1, 2))
            if dx or dy:
                h, w = labels.shape[-2:]
                img = torch.zeros_like(images[i])
                lab = torch.full_like(labels[i], VOID)
                img[:, dy:, dx:] = images[i][:, :h - dy, :w - dx]
                lab[dy:, dx:] = labels[i][:h - dy, :w - dx]
                images[i], labels[i] = img, lab
    return images, labels


def _downsample_labels(labels, factor=8):
    """Labels at 1/factor by nearest sampling (the encoder stage's targets)."""
    h, w = labels.shape[-2:]
    rows = torch.arange(h // factor) * factor + factor // 2
    cols = torch.arange(w // factor) * factor + factor // 2
    return labels[..., rows[:, None], cols[None, :]]


@torch.no_grad()
def _predict(model, images, batch=16):
    """Logits of uint8 NHWC images (eval mode), as a float32 tensor."""
    model.eval()
    out, device = [], module_device(model)
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2).float() / 255.0
        out.append(model(x.to(device)).cpu())
    return torch.cat(out)


def validation_miou(model, data, num_classes, void_index=None):
    """Return the mIoU of ``model`` (an ERFNet) on ``data`` (void ignored).

    With a void class (``void_index``), the arg-max is over the normal
    classes, as the deployed model takes it.
    """
    keep = [c for c in range(num_classes) if c != void_index]
    cm = ConfusionMatrix(len(keep), ignore_index=VOID)
    for start in range(0, len(data.images), 16):
        logits = _predict(model, data.images[start:start + 16])[:, keep]
        cm.update(logits.argmax(1).numpy(), data.labels[start:start + 16])
    return cm.miou(), cm


def _to_tensors(data):
    x = torch.from_numpy(data.images).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(data.labels.astype(np.int64))


def train_stages(train, val, num_classes, work_dir, config, show_progress=True,
                 encoder_from=None, void_index=None, device='cpu'):
    """Run both stages (resumable); return ``(best ERFNet on the CPU, state dict of the run)``.

    On ``device``; under ``torchrun`` each process trains on its part of
    every batch (:class:`~...training.Distributed`) and rank 0 writes.

    ``encoder_from``: the checkpoint of a finished encoder stage (the same
    data and recipe) to start the decoder stage from instead of training the
    encoder again; the loss study shares one encoder stage this way, as the
    encoder stage is always cross-entropy.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    job = distributed(device)
    rng = seed_everything(config.seed)
    model = job.place(ERFNet(num_classes, head=config.head()))
    stages = [('encoder', config.encoder_epochs), ('decoder', config.decoder_epochs)]
    state = {'stage': 0, 'epoch': 0, 'history': [], 'best_miou': -1.0, 'best_epoch': -1}
    opt = None
    ckpt = work / CHECKPOINT
    saved = load_resumable(ckpt, dataclasses.asdict(config))
    if saved is not None:
        model.load_state_dict(saved['model'])
        restore_rng(rng, saved['rng'])
        state = saved['state']
    elif encoder_from is not None:
        shared = load_checkpoint(encoder_from)
        if shared.get('state', {}).get('stage', 0) < 1:
            raise TrainingError(f'{str(encoder_from)!r} has not finished its encoder stage.')
        own = model.encoder.state_dict()
        encoder = {k.removeprefix('encoder.'): v for k, v in shared['model'].items()
                   if k.startswith('encoder.')}
        # The encoder-only head (its class count) is the one part a void class changes; the
        # decoder stage does not use it.
        model.encoder.load_state_dict({k: v for k, v in encoder.items()
                                       if k in own and own[k].shape == v.shape}, strict=False)
        restore_rng(rng, shared['rng'])
        state['stage'] = 1
        state['encoder_from'] = str(encoder_from)
        state['history'] = [h for h in shared['state']['history'] if h['stage'] == 'encoder']
    x_train, y_train = _to_tensors(train)
    weights_full = losses.class_weights([train.labels], num_classes)
    weights_enc = losses.class_weights([_downsample_labels(y_train).numpy()], num_classes)
    batches = -(-len(x_train) // config.batch_size)
    from tqdm import tqdm
    total = sum(e for _, e in stages) * batches
    done = sum(e for _, e in stages[:state['stage']]) * batches + state['epoch'] * batches
    bar = tqdm(total=total, initial=done, unit='batch', desc='train pixel',
               disable=not (show_progress and job.main), dynamic_ncols=True)
    while state['stage'] < len(stages):
        stage, epochs = stages[state['stage']]
        params = model.encoder.parameters() if stage == 'encoder' else model.parameters()
        # The encoder stage trains the encoder alone: the decoder takes no part in it.
        trained = job.wrap(model.encoder if stage == 'encoder' else model)
        opt = torch.optim.Adam(params, lr=config.lr, betas=(0.9, 0.999), eps=1e-8,
                               weight_decay=config.weight_decay)
        if saved is not None and saved.get('optimizer') and saved['state']['stage'] == \
                state['stage']:
            opt.load_state_dict(saved['optimizer'])
        saved = None
        if stage == 'encoder':
            loss_fn = losses.PixelLoss('ce', class_weight=weights_enc)
        else:
            loss_fn = losses.PixelLoss(config.loss, config.loss_weights,
                                       class_weight=weights_full, gamma=config.gamma,
                                       tau=config.tau, entropic_scale=config.entropic_scale)
        while state['epoch'] < epochs:
            lr = set_learning_rate(opt, poly_lr(config.lr, state['epoch'], epochs))
            model.train()
            total_loss, count, started = 0.0, 0, time.perf_counter()
            for idx in shuffled_batches(rng, len(x_train), config.batch_size):
                images, labels = _augment(x_train[idx], y_train[idx], rng,
                                          config.max_translation)
                # Every process draws the whole batch (the same generators), then its part.
                weight, images, labels = job.local(len(idx), images, labels)
                x = images.float() / 255.0
                if stage == 'encoder':
                    loss = loss_fn(trained(x, predict=True), _downsample_labels(labels))
                else:
                    loss = loss_fn(trained(x), labels)
                if not torch.isfinite(loss):
                    raise TrainingError(f'The {stage} stage diverged (loss {loss.item()}) at '
                                        f'epoch {state["epoch"] + 1}; lower the learning rate.')
                opt.zero_grad()
                (loss * weight).backward()
                opt.step()
                total_loss += job.mean(loss.item() * weight) * len(idx)
                count += len(idx)
                bar.update(1)
                bar.set_postfix(stage=stage, epoch=state['epoch'] + 1,
                                loss=f'{total_loss / count:.4f}')
            state['epoch'] += 1
            entry = {'stage': stage, 'epoch': state['epoch'], 'loss': total_loss / count,
                     'lr': lr, 'wall_s': time.perf_counter() - started}
            improved = False
            if stage == 'decoder':
                entry['val_miou'], _ = validation_miou(model, val, num_classes, void_index)
                improved = entry['val_miou'] > state['best_miou']
                if improved:
                    state['best_miou'], state['best_epoch'] = entry['val_miou'], state['epoch']
            state['history'].append(entry)
            job.save(ckpt, dataclasses.asdict(config), model, opt, rng, state,
                     best=work / 'best.pt' if improved else None)
        state['stage'] += 1
        state['epoch'] = 0
        if job.main:
            save_checkpoint(ckpt, {'config': dataclasses.asdict(config),
                                   'model': cpu_state(model), 'optimizer': None,
                                   'rng': rng_state(rng), 'state': state})
    bar.close()
    job.barrier()
    model.cpu()
    if (work / 'best.pt').is_file():
        model.load_state_dict(load_checkpoint(work / 'best.pt')['model'])
    model.eval()
    return model, state


def evaluate_segmenter(segmenter, data, num_classes, batch=16):
    """mIoU, per-class IoU and pixel AuPRC / FPR95 of a segmenter's anomaly map."""
    cm = ConfusionMatrix(num_classes, ignore_index=VOID)
    acc = BinaryScoreAccumulator()
    maps, device = [], module_device(segmenter)
    with torch.no_grad():
        for start in range(0, len(data.images), batch):
            x = torch.from_numpy(data.images[start:start + batch]).to(device)
            anomaly, classes = (t.cpu() for t in segmenter(x)[:2])
            cm.update(classes.numpy(), data.labels[start:start + batch])
            truth = data.anomaly[start:start + batch].astype(np.uint8)
            acc.update(truth, anomaly.numpy())
            maps.append(anomaly.numpy())
    curve = acc.curve()
    metrics = {'miou': cm.miou(), 'iou': [float(v) for v in cm.iou()]}
    if data.anomaly.any():
        metrics.update({'pixel_auprc': curve.average_precision(),
                        'pixel_fpr95': curve.fpr_at_tpr(0.95), 'pixel_auroc': curve.auroc()})
    return metrics, np.concatenate(maps)


def load_segmentation_data(data_dir, config, cache_dir=None, show_progress=True):
    """Load a dataset's train and validation splits for a segmenter at ``config.input_shape``.

    Returns ``(dataset, shape, class names, cache_dir, train, validation)``;
    the class names are the dataset manifest's (the synthetic world's by
    default).

    Raises:
        TrainingError: a shape not a multiple of 8, labels all void, or
            labels beyond the classes.

    """
    shape = as_shape(config.input_shape)
    if shape[0] % 8 or shape[1] % 8:
        raise TrainingError(f'--input-shape must be multiples of 8, got {shape}.')
    data = HazardsDataset(data_dir)
    manifest_path = Path(data_dir) / 'manifest.json'
    classes = list(DEFAULT_CLASSES)
    if manifest_path.is_file():
        import json
        classes = list(json.loads(manifest_path.read_text()).get('semantic_classes', classes))
    cache_dir = cache_dir or default_cache_dir()
    train = load_pixel_split(data, 'train_set', shape, cache_dir, show_progress,
                             every=config.train_every)
    val = load_pixel_split(data, 'validation_set', shape, cache_dir, show_progress)
    if (train.labels == VOID).all():
        raise TrainingError(f'{str(data_dir)!r}: the training labels are all void.')
    if train.labels[train.labels != VOID].max() >= len(classes):
        raise TrainingError(f'{str(data_dir)!r}: labels exceed the {len(classes)} classes '
                            f'{classes}.')
    return data, shape, classes, cache_dir, train, val


def train_pixel_model(data_dir, model_dir, work_dir, config=None, *, overwrite=False,
                      cache_dir=None, show_progress=True, command=None, encoder_from=None,
                      device='cpu'):
    """Train, calibrate and write a pixel model directory; return its manifest.

    On ``device``. Under ``torchrun`` every process trains and rank 0 alone
    calibrates and writes (the others return None).
    """
    config = config or PixelTrainingConfig()
    losses.PixelLoss(config.loss, config.loss_weights)      # a bad name fails before loading
    if config.void_outliers and config.score != 'void':
        raise TrainingError('--void-outliers trains a void class: its score is void '
                            f'(got --score {config.score}).')
    started = time.perf_counter()
    data, shape, classes, cache_dir, train, val = load_segmentation_data(
        data_dir, config, cache_dir, show_progress)
    void_index = None
    if config.void_outliers:
        # Outlier exposure at the pixel level: the anomaly pixels of outliers_set become one
        # more class, "void", whose probability is the anomaly score (paper 002's void
        # classifier; in the synthetic world void pixels are exactly the anomalies).
        void_index = len(classes)
        outliers = load_pixel_split(data, 'outliers_set', shape, cache_dir, show_progress)
        outliers.labels[outliers.anomaly] = void_index
        train = PixelData(np.concatenate([train.images, outliers.images]),
                          np.concatenate([train.labels, outliers.labels]),
                          np.concatenate([train.anomaly, outliers.anomaly]),
                          train.names + outliers.names)
    outputs = len(classes) + (void_index is not None)
    network, state = train_stages(train, val, outputs, work_dir, config, show_progress,
                                  encoder_from=encoder_from, void_index=void_index,
                                  device=device)
    if not is_main_process():
        return None
    segmenter = PixelSegmenterModel(network, config.score, void_index).eval()
    arch = {'type': 'erfnet_pixel', 'num_classes': outputs, 'head': config.head(),
            'score': config.score, 'void_index': void_index}
    return write_pixel_model_dir(model_dir, segmenter, arch, MODEL_FILE, classes, val, config,
                                 state, provenance={
                                     'data': str(data_dir), 'command': command,
                                     'frames': {'train': len(train.images),
                                                'validation': len(val.images)},
                                     'started': started},
                                 overwrite=overwrite)


def write_pixel_model_dir(model_dir, segmenter, arch, weights_file, classes, val, config, state,
                          provenance, overwrite=False):
    """Calibrate a trained pixel-branch segmenter on ``val`` and write its model directory.

    Shared by every pixel-branch architecture: validation metrics, the
    per-pixel calibration on normal validation pixels, the frame-level
    calibration (the map's :data:`FRAME_QUANTILE` quantile on normal
    frames), the manifest and the weights. ``config``: the training
    configuration (a dataclass with ``input_shape``, ``score``,
    ``target_fpr``, ``seed``); ``provenance['started']``: the run's
    ``time.perf_counter()`` at its start.
    """
    metrics, maps = evaluate_segmenter(segmenter, val, len(classes))
    calibration = fit_pixel_calibration(maps, val.anomaly, seed=config.seed)
    # A frame-level score (the map's 0.99 quantile), calibrated on the normal frames.
    normal_frames = ~val.anomaly.reshape(len(val.anomaly), -1).any(axis=1)
    frame_scores = np.quantile(maps[normal_frames].reshape(normal_frames.sum(), -1),
                               FRAME_QUANTILE, axis=1) if normal_frames.any() else None
    provenance = dict(provenance)
    started = provenance.pop('started')
    manifest = {
        'name': Path(model_dir).name, 'branch': 'pixel', 'architecture': arch,
        'classes': list(classes), 'void': VOID,
        'preprocessing': {'input_shape': list(as_shape(config.input_shape)),
                          'crop': 'center_aspect', 'resize': 'area', 'scale': '1/255',
                          'channels': 'rgb'},
        'score': {'name': config.score, 'higher_is_anomalous': True},
        'calibration': calibration.to_dict(),
        'frame_quantile': FRAME_QUANTILE,
        'threshold': {'target_fpr': config.target_fpr},
        'training': dataclasses.asdict(config),
        'metrics': {'validation': metrics, 'best_epoch': state['best_epoch'],
                    'history': state['history'],
                    **{k: state[k] for k in ('first_stage', 'outlier_history',
                                             'outlier_best_epoch', 'miou_before',
                                             'best_ap_err') if k in state}},
        'provenance': {**provenance, 'wall_s': time.perf_counter() - started,
                       **training_environment()},
    }
    if frame_scores is not None:
        manifest['frame_calibration'] = EmpiricalCalibration.fit(frame_scores).to_dict()
    weights = to_bytes({'config': arch, 'state_dict': segmenter.state_dict()})
    return write_model_dir(model_dir, manifest, {weights_file: weights}, overwrite=overwrite)
