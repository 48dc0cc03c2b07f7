"""``anomaly-perception train failure``: FSNet's joint stage on a trained pixel model.

Paper 004's schedule, on this package's models:

* **Stage 1** is the pixel model as ``train pixel`` trained it
  (``--pixel-model``, an ``erfnet_pixel`` model directory): its ERFNet
  and its anomaly score are kept.
* **Stage 2** (here) trains the failure head
  (:class:`~anomaly_perception.branches.pixel.fsnet.FailureHead`) and the segmenter
  together: ``L = L1 + L2``, ``L1`` the segmenter's cross-entropy (the
  pixel recipe's ENet class weights; outlier pixels labelled with the
  model's void class when it has one, as ``train pixel --void-outliers``
  trained it), ``L2`` the balanced failure loss
  (:func:`~anomaly_perception.branches.pixel.fsnet.balanced_bce`, ``beta`` =
  negatives / positives per batch). Adam at ``lr`` (2e-4, the paper's) for
  the head and at ``segmenter_lr`` (default 5e-5, a tenth of the pixel
  recipe's start) for the segmenter, poly decay per epoch; gradients
  reach the segmenter through ``L1`` and through the head's inputs ``w1``
  -``w3`` and ``S_E(x)``. ``epochs`` 0 takes half of the pixel model's
  epochs (encoder + decoder stages): the paper's 2:1.
  ``segmenter_lr`` 0 freezes the segmenter (the head alone).
* **Failure target**: the segmenter's current arg-max over the normal
  classes (of the same training-mode pass, dropout on, as the joint
  training sees it) differs from the label, on labelled pixels; anomaly pixels are
  failures (the segmenter gives them a normal class); void outside the
  image is ignored (:func:`~anomaly_perception.branches.pixel.fsnet.failure_targets`).
* Data: ``train_set`` (every ``train_every``-th frame) and ``outliers_set``
  at the pixel model's input shape, flips and 0..2 pixel shifts; the best
  epoch by validation AP-Err (failures positive) is kept; a checkpoint
  per epoch makes the run resumable.

Writes a pixel model directory of architecture ``erfnet_pixel_fsnet``
(the pixel model's fields plus ``failure_head``): its anomaly score is
recalibrated on the jointly trained segmenter, and its manifest records
the mIoU before and after joint training and the validation AP-Err.
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

import numpy as np
import torch

from . import losses
from .fsnet import balanced_bce
from .fsnet import failure_targets
from .fsnet import FailureHead
from .fsnet import FailureHeadSpec
from .fsnet import FSNet
from .fsnet import normal_channels
from .fsnet import PixelFailureModel
from .model import MODEL_FILE
from .train import _augment
from .train import load_pixel_split
from .train import PixelData
from .train import validation_miou
from .train import VOID
from .train import write_pixel_model_dir
from ...data.hazards import default_cache_dir
from ...data.hazards import HazardsDataset
from ...metrics.binary import BinaryScoreAccumulator
from ...runtime.manifest import ModelError
from ...training import CHECKPOINT
from ...training import distributed
from ...training import is_main_process
from ...training import load_checkpoint
from ...training import load_resumable
from ...training import module_device
from ...training import poly_lr
from ...training import restore_rng
from ...training import seed_everything
from ...training import shuffled_batches
from ...training import TrainingError

ANOMALY = 254       # label value carrying "anomaly pixel" through augmentation


@dataclasses.dataclass
class FailureTrainingConfig:
    """Options of ``train failure`` (see module docs)."""

    epochs: int = 0
    batch_size: int = 8
    lr: float = 2e-4
    segmenter_lr: float = 5e-5
    max_translation: int = 2
    train_every: int = 4
    head: dict = dataclasses.field(default_factory=lambda: FailureHeadSpec().as_dict())
    resnet18_weights: str = ''
    seed: int = 0


def load_pixel_network(pixel_model):
    """Load the ERFNet pixel model to put a failure head on: ``(PixelSegmenterModel, manifest)``.

    Raises:
        TrainingError: the directory is not an ERFNet pixel model (naming it
            and its architecture): the head needs ERFNet's logits and its
            encoder's features.

    """
    from ...runtime.network import load_network
    try:
        module, manifest = load_network(pixel_model, branch='pixel')
    except ModelError as err:
        raise TrainingError(str(err)) from None
    arch = manifest.get('architecture') or {}
    if arch.get('type') != 'erfnet_pixel':
        raise TrainingError(
            f'{str(pixel_model)!r} is a {arch.get("type")!r} model: the failure head needs an '
            'ERFNet pixel model (architecture erfnet_pixel, from train pixel), whose logits and '
            'encoder features it reads.')
    return module, manifest


def _labels_with_anomaly(data):
    labels = data.labels.copy()
    labels[data.anomaly] = ANOMALY
    return labels


def failure_scores(model, data, keep, batch=16):
    """Return the failure accumulator (errors positive) of an :class:`FSNet` on ``data``."""
    model.eval()
    acc, device = BinaryScoreAccumulator(), module_device(model)
    with torch.no_grad():
        for start in range(0, len(data.images), batch):
            x = torch.from_numpy(data.images[start:start + batch]).permute(0, 3, 1, 2).float()
            logits, fail = (t.cpu() for t in model(x.to(device) / 255.0))
            pred = logits[:, keep].argmax(1).numpy()
            labels = data.labels[start:start + batch]
            failures, valid = failure_targets(pred, labels, data.anomaly[start:start + batch])
            acc.update(np.where(valid, failures, VOID).astype(np.uint8),
                       torch.sigmoid(fail[:, 0]).numpy())
    return acc


def train_failure_network(segmenter, train, val, work_dir, config, epochs,
                          show_progress=True, device='cpu'):
    """Joint stage (resumable); return ``(FSNet with the best epoch's weights, state)``.

    On ``device`` (the FSNet back on the CPU at the end); under ``torchrun``
    each process trains on its part of every batch and rank 0 writes.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    job = distributed(device)
    rng = seed_everything(config.seed)
    network = segmenter.network
    outputs = network.num_classes
    keep = normal_channels(outputs, segmenter.void_index)
    head = FailureHead(outputs, keep, config.head)
    if config.resnet18_weights:
        try:
            state_dict = torch.load(config.resnet18_weights, map_location='cpu',
                                    weights_only=True)
            head.load_resnet18(state_dict)
        except (OSError, RuntimeError, ValueError, KeyError) as err:
            raise TrainingError(f'{config.resnet18_weights!r}: not usable as resnet18 weights '
                                f'for this head ({err}).') from None
    model = job.place(FSNet(network, head))
    params = [{'params': head.parameters(), 'lr': config.lr}]
    if config.segmenter_lr > 0:
        params.append({'params': network.parameters(), 'lr': config.segmenter_lr})
    else:
        for p in network.parameters():
            p.requires_grad_(False)
    opt = torch.optim.Adam(params)
    miou_before, _ = validation_miou(network, val, outputs, segmenter.void_index)
    state = {'epoch': 0, 'history': [], 'best_ap_err': -1.0, 'best_epoch': -1,
             'miou_before': miou_before}
    ckpt = work / CHECKPOINT
    saved = load_resumable(ckpt, dataclasses.asdict(config))
    if saved is not None:
        model.load_state_dict(saved['model'])
        opt.load_state_dict(saved['optimizer'])
        restore_rng(rng, saved['rng'])
        state = saved['state']
    x_train = torch.from_numpy(train.images).permute(0, 3, 1, 2).contiguous()
    y_train = torch.from_numpy(_labels_with_anomaly(train).astype(np.int64))
    class_weight = losses.class_weights([train.labels], outputs)
    ce = losses.PixelLoss('ce', class_weight=class_weight)
    batches = -(-len(x_train) // config.batch_size)
    trained = job.wrap(model)
    from tqdm import tqdm
    bar = tqdm(total=epochs * batches, initial=state['epoch'] * batches, unit='batch',
               desc='train failure', disable=not (show_progress and job.main),
               dynamic_ncols=True)
    while state['epoch'] < epochs:
        scale = poly_lr(1.0, state['epoch'], epochs)
        opt.param_groups[0]['lr'] = config.lr * scale
        if len(opt.param_groups) > 1:
            opt.param_groups[1]['lr'] = config.segmenter_lr * scale
        model.train()
        if config.segmenter_lr <= 0:
            network.eval()
        totals, count, started = np.zeros(2), 0, time.perf_counter()
        for idx in shuffled_batches(rng, len(x_train), config.batch_size):
            images, labels = _augment(x_train[idx], y_train[idx], rng, config.max_translation)
            # Every process draws the whole batch (the same generators), then its part.
            weight, images, labels = job.local(len(idx), images, labels)
            anomaly = labels == ANOMALY
            seg_labels = labels.clone()
            seg_labels[anomaly] = VOID if segmenter.void_index is None else segmenter.void_index
            labels[anomaly] = VOID
            logits, fail = trained(images.float() / 255.0)
            pred = logits.detach()[:, keep].argmax(1)
            failures, valid = failure_targets(pred, labels, anomaly)
            l1 = ce(logits, seg_labels) if config.segmenter_lr > 0 else logits.sum() * 0
            l2 = balanced_bce(fail[:, 0], failures, valid)
            loss = l1 + l2
            if not torch.isfinite(loss):
                raise TrainingError(f'train failure diverged (loss {loss.item()}) at epoch '
                                    f'{state["epoch"] + 1}; lower the learning rates.')
            opt.zero_grad()
            (loss * weight).backward()
            opt.step()
            totals += (job.mean(l1.item() * weight) * len(idx),
                       job.mean(l2.item() * weight) * len(idx))
            count += len(idx)
            bar.update(1)
            bar.set_postfix(epoch=state['epoch'] + 1, seg=f'{totals[0] / count:.3f}',
                            failure=f'{totals[1] / count:.3f}')
        state['epoch'] += 1
        curve = failure_scores(model, val, keep).curve()
        miou, _ = validation_miou(network, val, outputs, segmenter.void_index)
        entry = {'epoch': state['epoch'], 'segmenter_loss': totals[0] / count,
                 'failure_loss': totals[1] / count, 'lr': config.lr * scale,
                 'val_ap_err': curve.average_precision(), 'val_miou': miou,
                 'wall_s': time.perf_counter() - started}
        state['history'].append(entry)
        if show_progress and job.main:
            bar.write(f"epoch {state['epoch']}: AP-Err {entry['val_ap_err']:.4f}, mIoU "
                      f"{miou:.4f} (before {state['miou_before']:.4f}), "
                      f"{entry['wall_s']:.0f} s")
        improved = entry['val_ap_err'] > state['best_ap_err']
        if improved:
            state['best_ap_err'], state['best_epoch'] = entry['val_ap_err'], state['epoch']
        job.save(ckpt, dataclasses.asdict(config), model, opt, rng, state,
                 best=work / 'best.pt' if improved else None)
    bar.close()
    job.barrier()
    model.cpu()
    if (work / 'best.pt').is_file():
        model.load_state_dict(load_checkpoint(work / 'best.pt')['model'])
    return model.eval(), state


def train_failure_model(pixel_model, data_dir, model_dir, work_dir, config=None, *,
                        overwrite=False, cache_dir=None, show_progress=True, command=None,
                        device='cpu'):
    """Train FSNet's joint stage on ``pixel_model`` and write the model directory.

    On ``device``. Under ``torchrun`` every process trains and rank 0 alone
    calibrates and writes (the others return None).
    """
    config = config or FailureTrainingConfig()
    FailureHeadSpec.from_dict(config.head)             # a bad spec fails before loading data
    segmenter, manifest = load_pixel_network(pixel_model)
    arch = dict(manifest['architecture'])
    classes = list(manifest.get('classes') or [])
    if len(classes) + (arch.get('void_index') is not None) != arch['num_classes']:
        raise TrainingError(f'{str(pixel_model)!r}: {len(classes)} classes in its manifest but '
                            f'{arch["num_classes"]} network outputs.')
    data = HazardsDataset(data_dir)
    import json
    data_manifest = Path(data_dir) / 'manifest.json'
    if data_manifest.is_file():
        data_classes = json.loads(data_manifest.read_text()).get('semantic_classes')
        if data_classes and list(data_classes) != classes:
            raise TrainingError(f'{str(data_dir)!r} labels {len(data_classes)} classes '
                                f'{data_classes}; {str(pixel_model)!r} predicts '
                                f'{len(classes)}: {classes}.')
    training = manifest.get('training') or {}
    epochs = config.epochs or max(1, (int(training.get('encoder_epochs', 10)) +
                                      int(training.get('decoder_epochs', 10))) // 2)
    shape = tuple(manifest['preprocessing']['input_shape'])
    cache_dir = cache_dir or default_cache_dir()
    started = time.perf_counter()
    train = load_pixel_split(data, 'train_set', shape, cache_dir, show_progress,
                             every=config.train_every)
    if data.records('outliers_set'):
        out = load_pixel_split(data, 'outliers_set', shape, cache_dir, show_progress)
        train = PixelData(np.concatenate([train.images, out.images]),
                          np.concatenate([train.labels, out.labels]),
                          np.concatenate([train.anomaly, out.anomaly]), train.names + out.names)
    val = load_pixel_split(data, 'validation_set', shape, cache_dir, show_progress)
    if train.labels[train.labels != VOID].max() >= len(classes):
        raise TrainingError(f'{str(data_dir)!r}: labels exceed the {len(classes)} classes of '
                            f'{str(pixel_model)!r}.')
    model, state = train_failure_network(segmenter, train, val, work_dir, config, epochs,
                                         show_progress, device)
    if not is_main_process():
        return None
    deployed = PixelFailureModel(segmenter, model.head).eval()
    arch.update({'type': 'erfnet_pixel_fsnet', 'failure_head': dict(config.head)})

    @dataclasses.dataclass
    class _Recipe:           # what write_pixel_model_dir reads, plus this stage's options
        input_shape: tuple
        score: str
        target_fpr: float
        seed: int
        failure: dict
        pixel_training: dict

    recipe = _Recipe(shape, manifest['score']['name'],
                     float((manifest.get('threshold') or {}).get('target_fpr', 0.05)),
                     config.seed, {**dataclasses.asdict(config), 'epochs': epochs}, training)
    out = write_pixel_model_dir(model_dir, deployed, arch, MODEL_FILE, classes, val, recipe,
                                state, provenance={
                                    'data': str(data_dir), 'command': command,
                                    'pixel_model': str(pixel_model),
                                    'frames': {'train': len(train.images),
                                               'validation': len(val.images)},
                                    'started': started},
                                overwrite=overwrite)
    return out
