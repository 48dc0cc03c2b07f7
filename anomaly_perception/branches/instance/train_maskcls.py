"""``anomaly-perception train maskcls``: the mask-classification segmenter for RbA.

Trains :class:`~anomaly_perception.branches.instance.maskcls.MaskClassificationNet`
on the synthetic world's semantic labels as a *semantic* mask
classification (each class present in a frame is one target mask;
anomaly pixels are void, never a target, and no loss is taken on them):

* **Matching**: per frame and per prediction (the initial queries and every
  decoder layer: deep supervision), Hungarian matching of queries to
  targets on ``class_weight * -p(class) + mask_weight * BCE + dice_weight *
  dice`` (Mask2Former's costs and weights 2 / 5 / 5), over the non-void
  pixels at 1/4 resolution (all of them: at this size no point sampling is
  needed).
* **Loss**: cross-entropy of every query's class (unmatched queries ->
  "no object", weighted ``no_object_weight`` = 0.1) plus mask BCE and dice
  of the matched pairs.
* **Recipe**: AdamW (lr 3e-4, weight decay 1e-4), poly decay per epoch,
  the pixel branch's flips and small translations; the best epoch by
  validation mIoU; resumable from a checkpoint per epoch. ``init_from``
  starts the backbone from a pixel model's ERFNet encoder.
* **Outlier fine-tuning** (RbA's, optional: ``outlier_epochs`` > 0): after
  the first stage, the backbone and pixel decoder frozen, the transformer
  decoder and heads trained on batches of half training frames, half
  ``outliers_set`` frames (anomalies rendered into the scene, where RbA
  pastes COCO objects into Cityscapes): the set loss on the normal pixels
  plus ``outlier_weight`` x squared hinges on RbA's ``U`` at 1/4
  resolution, ``relu(U - inlier_margin)^2`` on normal pixels and
  ``relu(outlier_margin - U)^2`` on anomaly pixels (the RbA repository's
  loss form; its margins are for its tanh score, ours -0.9 and -0.1 are
  for ``U`` in [-N, 0]: "covered by a confident class" and "by none").
  Adam at ``outlier_lr`` (1e-4, RbA's), the best epoch by validation pixel
  AuPRC; resumable. Its checkpoint lives beside the first stage's, so the
  same command with ``--outlier-epochs`` reuses a finished first stage.

The model directory is a *pixel-branch* model (architecture
``maskcls_rba``): the deployed graph outputs RbA's ``U`` and the class
ids, so the pixel pipeline, node, replay and ``evaluate pixel`` run it as
they run ERFNet, and its calibration is fitted the same way.
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
from scipy.optimize import linear_sum_assignment
import torch
import torch.nn.functional as F

from .maskcls import MaskClassificationNet
from .maskcls import MaskClsSegmenterModel
from .maskcls import MODEL_FILE
from ..pixel.train import _augment
from ..pixel.train import _downsample_labels
from ..pixel.train import evaluate_segmenter
from ..pixel.train import load_pixel_split
from ..pixel.train import load_segmentation_data
from ..pixel.train import VOID
from ..pixel.train import write_pixel_model_dir
from ...training import CHECKPOINT
from ...training import distributed
from ...training import is_main_process
from ...training import load_checkpoint
from ...training import load_erfnet_encoder
from ...training import poly_lr
from ...training import restore_rng
from ...training import seed_everything
from ...training import set_learning_rate
from ...training import shuffled_batches
from ...training import TrainingError


@dataclasses.dataclass
class MaskClsTrainingConfig:
    """Options of ``train maskcls`` (see module docs)."""

    input_shape: tuple = (128, 128)
    queries: int = 16
    dim: int = 64
    layers: int = 3
    heads: int = 4
    ffn: int = 256
    epochs: int = 12
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 1e-4
    max_translation: int = 2
    train_every: int = 1
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    score: str = 'rba'
    target_fpr: float = 0.05
    init_from: str = ''
    seed: int = 0
    outlier_epochs: int = 0
    outlier_lr: float = 1e-4
    outlier_weight: float = 1.0
    inlier_margin: float = -0.9
    outlier_margin: float = -0.1

    def stage1(self):
        """Return the options the first stage depends on (its checkpoint must match them)."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if not k.startswith(('outlier_', 'inlier_'))}

    def architecture(self, num_classes):
        return {'type': 'maskcls_rba', 'num_classes': num_classes, 'queries': self.queries,
                'dim': self.dim, 'layers': self.layers, 'heads': self.heads, 'ffn': self.ffn,
                'score': self.score}


def semantic_targets(labels):
    """Classes present in ``labels`` ``[h, w]`` (void excluded) and their masks ``[T, h, w]``."""
    present = torch.unique(labels)
    present = present[present != VOID]
    return present, labels[None] == present[:, None, None]


def dice_loss(mask_logits, targets):
    """Dice loss per row of ``[M, P]`` logits against ``[M, P]`` float targets."""
    p = mask_logits.sigmoid()
    return 1.0 - (2.0 * (p * targets).sum(-1) + 1.0) / (p.sum(-1) + targets.sum(-1) + 1.0)


@torch.no_grad()
def match(class_logits, mask_logits, target_classes, target_masks, config):
    """Hungarian matching of queries to targets: ``(query indices, target indices)``.

    ``class_logits`` ``[Q, K + 1]``; ``mask_logits`` ``[Q, P]``;
    ``target_classes`` ``[T]``; ``target_masks`` ``[T, P]`` float.
    """
    prob = class_logits.softmax(-1)[:, target_classes]                     # [Q, T]
    pos = F.binary_cross_entropy_with_logits(mask_logits, torch.ones_like(mask_logits),
                                             reduction='none')
    neg = F.binary_cross_entropy_with_logits(mask_logits, torch.zeros_like(mask_logits),
                                             reduction='none')
    n = mask_logits.shape[1]
    cost_bce = (pos @ target_masks.T + neg @ (1.0 - target_masks).T) / n
    p = mask_logits.sigmoid()
    cost_dice = 1.0 - (2.0 * p @ target_masks.T + 1.0) / (
        p.sum(-1)[:, None] + target_masks.sum(-1)[None, :] + 1.0)
    cost = (config.class_weight * -prob + config.mask_weight * cost_bce
            + config.dice_weight * cost_dice)
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


def set_loss(all_class_logits, all_mask_logits, labels, config):
    """Return the matched set loss, summed over predictions and averaged over frames.

    ``labels``: ``[B, h, w]`` long class ids at the masks' resolution (void =
    255, ignored).
    """
    num_classes = all_class_logits[0].shape[-1] - 1
    weight = torch.ones(num_classes + 1, device=labels.device)
    weight[-1] = config.no_object_weight
    total = 0.0
    for b in range(len(labels)):
        valid = (labels[b] != VOID).flatten()
        classes, masks = semantic_targets(labels[b])
        targets = masks.flatten(1)[:, valid].float()
        for cls, mask in zip(all_class_logits, all_mask_logits):
            cl, ml = cls[b], mask[b].flatten(1)[:, valid]
            target_cls = torch.full((len(cl),), num_classes, dtype=torch.long,
                                    device=cl.device)
            loss = 0.0
            if len(classes) and valid.any():
                rows, cols = match(cl, ml, classes, targets, config)
                target_cls[rows] = classes[cols]
                m, t = ml[rows], targets[cols]
                loss = (config.mask_weight * F.binary_cross_entropy_with_logits(m, t)
                        + config.dice_weight * dice_loss(m, t).mean())
            total = total + loss + config.class_weight * F.cross_entropy(cl, target_cls, weight)
    return total / len(labels)


def _init_encoder(network, pixel_model_dir):
    """Copy a pixel model's ERFNet encoder into ``network`` (shapes must match)."""
    source = load_erfnet_encoder(pixel_model_dir).state_dict()
    own = network.encoder.state_dict()
    network.encoder.load_state_dict({k: v for k, v in source.items()
                                     if k in own and own[k].shape == v.shape}, strict=False)


def _resume(path, options, net, opt, rng, state, own=lambda saved: saved):
    """Load a stage's checkpoint at ``path`` into net/opt/rng; return its state (or ``state``).

    ``own`` maps the saved options to those that must equal ``options``.
    """
    if not path.is_file():
        return state
    saved = load_checkpoint(path)
    if own(saved.get('config') or {}) != options:
        raise TrainingError(f'{str(path)!r} was written with other options '
                            f'({saved.get("config")}); use another work directory or '
                            'delete it to start over.')
    net.load_state_dict(saved['model'])
    opt.load_state_dict(saved['optimizer'])
    restore_rng(rng, saved['rng'])
    return saved['state']


def train_maskcls_network(train, val, num_classes, work_dir, config, show_progress=True,
                          device='cpu'):
    """Train (resumable); return ``(best network, state)``.

    On ``device`` (the network stays there); under ``torchrun`` each process
    trains on its part of every batch and rank 0 writes.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    job = distributed(device)
    rng = seed_everything(config.seed)
    net = MaskClassificationNet(num_classes, config.queries, config.dim, config.layers,
                                config.heads, config.ffn)
    if config.init_from:
        _init_encoder(net, config.init_from)
    net = job.place(net)
    trained = job.wrap(net)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ckpt = work / CHECKPOINT
    state = _resume(ckpt, config.stage1(), net, opt, rng,
                    {'epoch': 0, 'history': [], 'best_miou': -1.0, 'best_epoch': -1},
                    own=lambda saved: {k: v for k, v in saved.items()
                                       if not k.startswith(('outlier_', 'inlier_'))})
    x_train = torch.from_numpy(train.images).permute(0, 3, 1, 2).contiguous()
    y_train = torch.from_numpy(train.labels.astype(np.int64))
    batches = -(-len(x_train) // config.batch_size)
    from tqdm import tqdm
    bar = tqdm(total=config.epochs * batches, initial=state['epoch'] * batches, unit='batch',
               desc='train maskcls', disable=not (show_progress and job.main),
               dynamic_ncols=True)
    segmenter = MaskClsSegmenterModel(net, config.score)
    while state['epoch'] < config.epochs:
        lr = set_learning_rate(opt, poly_lr(config.lr, state['epoch'], config.epochs))
        net.train()
        total_loss, count, started = 0.0, 0, time.perf_counter()
        for idx in shuffled_batches(rng, len(x_train), config.batch_size):
            images, labels = _augment(x_train[idx], y_train[idx], rng, config.max_translation)
            # Every process draws the whole batch (the same generators), then its part.
            weight, images, labels = job.local(len(idx), images, labels)
            cls, masks = trained(images.float() / 255.0)
            loss = set_loss(cls, masks, _downsample_labels(labels, 4), config)
            if not torch.isfinite(loss):
                raise TrainingError(f'train maskcls diverged (loss {loss.item()}) at epoch '
                                    f'{state["epoch"] + 1}; lower the learning rate.')
            opt.zero_grad()
            (loss * weight).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            total_loss += job.mean(loss.item() * weight) * len(idx)
            count += len(idx)
            bar.update(1)
            bar.set_postfix(epoch=state['epoch'] + 1, loss=f'{total_loss / count:.3f}')
        state['epoch'] += 1
        net.eval()
        metrics, _ = evaluate_segmenter(segmenter, val, num_classes)
        entry = {'epoch': state['epoch'], 'loss': total_loss / count, 'lr': lr,
                 'val_miou': metrics['miou'], 'wall_s': time.perf_counter() - started}
        if 'pixel_auprc' in metrics:
            entry['val_pixel_auprc'] = metrics['pixel_auprc']
        state['history'].append(entry)
        improved = entry['val_miou'] > state['best_miou']
        if improved:
            state['best_miou'], state['best_epoch'] = entry['val_miou'], state['epoch']
        job.save(ckpt, dataclasses.asdict(config), net, opt, rng, state,
                 best=work / 'best.pt' if improved else None)
    bar.close()
    job.barrier()
    if (work / 'best.pt').is_file():
        net.load_state_dict(load_checkpoint(work / 'best.pt')['model'])
    return net.eval(), state


def outlier_loss(u, inlier, outlier, inlier_margin=-0.9, outlier_margin=-0.1):
    """Return squared hinges on RbA's ``U`` (normal pixels up, anomalies down to a margin).

    Normal pixels are pushed to at most ``inlier_margin``, anomalies to at
    least ``outlier_margin``; each term is a mean over its pixels, 0 where a
    batch has none.
    """
    loss = u.new_zeros(())
    if inlier.any():
        loss = loss + F.relu(u[inlier] - inlier_margin).pow(2).mean()
    if outlier.any():
        loss = loss + F.relu(outlier_margin - u[outlier]).pow(2).mean()
    return loss


OUTLIER = 254       # anomaly pixels while labels are augmented (VOID is padding)


def finetune_outliers(net, train, outliers, val, num_classes, work_dir, config,
                      show_progress=True, device='cpu'):
    """Fine-tune for outliers as RbA does (see module docs), resumably; ``(network, state)``.

    On ``device``; under ``torchrun`` each process takes its part of every
    batch and rank 0 writes.
    """
    from tqdm import tqdm

    from ...scoring.rba import rba_score
    work = Path(work_dir)
    job = distributed(device)
    rng = seed_everything(config.seed + 1)
    net = job.place(net)
    frozen = (net.encoder, net.lateral8, net.lateral4, net.mask_features)
    for module in frozen:
        module.requires_grad_(False)
    trained = job.wrap(net)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.outlier_lr)
    ckpt = work / 'outlier_checkpoint.pt'
    state = _resume(ckpt, dataclasses.asdict(config), net, opt, rng,
                    {'epoch': 0, 'history': [], 'best_auprc': -1.0, 'best_epoch': -1})
    x_norm = torch.from_numpy(train.images).permute(0, 3, 1, 2).contiguous()
    y_norm = torch.from_numpy(train.labels.astype(np.int64))
    x_out = torch.from_numpy(outliers.images).permute(0, 3, 1, 2).contiguous()
    y_out = torch.from_numpy(np.where(outliers.anomaly, OUTLIER, outliers.labels)
                             .astype(np.int64))
    half = max(1, config.batch_size // 2)
    batches = -(-len(x_out) // half)
    bar = tqdm(total=config.outlier_epochs * batches, initial=state['epoch'] * batches,
               unit='batch', desc='outlier fine-tuning',
               disable=not (show_progress and job.main), dynamic_ncols=True)
    segmenter = MaskClsSegmenterModel(net, config.score)
    while state['epoch'] < config.outlier_epochs:
        net.train()
        for module in frozen:
            module.eval()           # frozen: no batch-norm statistics move either
        order = rng.permutation(len(x_out))
        total, count, started = 0.0, 0, time.perf_counter()
        for start in range(0, len(order), half):
            idx = torch.from_numpy(order[start:start + half])
            normal = torch.from_numpy(rng.integers(0, len(x_norm), len(idx)))
            images, labels = _augment(torch.cat([x_out[idx], x_norm[normal]]),
                                      torch.cat([y_out[idx], y_norm[normal]]), rng,
                                      config.max_translation)
            weight, images, labels = job.local(len(images), images, labels)
            cls, masks = trained(images.float() / 255.0)
            small = _downsample_labels(labels, 4)
            outlier = small == OUTLIER
            loss = set_loss(cls, masks, torch.where(outlier, VOID, small), config)
            u = rba_score(cls[-1], masks[-1], tanh=config.score == 'rba_tanh')
            loss = loss + config.outlier_weight * outlier_loss(
                u, (small != VOID) & ~outlier, outlier, config.inlier_margin,
                config.outlier_margin)
            if not torch.isfinite(loss):
                raise TrainingError(f'outlier fine-tuning diverged (loss {loss.item()}) at '
                                    f'epoch {state["epoch"] + 1}; lower --outlier-lr.')
            opt.zero_grad()
            (loss * weight).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total += job.mean(loss.item() * weight) * 2 * len(idx)
            count += 2 * len(idx)
            bar.update(1)
            bar.set_postfix(epoch=state['epoch'] + 1, loss=f'{total / count:.3f}')
        state['epoch'] += 1
        net.eval()
        metrics, _ = evaluate_segmenter(segmenter, val, num_classes)
        entry = {'epoch': state['epoch'], 'loss': total / count, 'val_miou': metrics['miou'],
                 'val_pixel_auprc': metrics.get('pixel_auprc', float('nan')),
                 'wall_s': time.perf_counter() - started}
        state['history'].append(entry)
        if job.main:
            bar.write(f"outlier epoch {entry['epoch']}: loss {entry['loss']:.3f}, validation "
                      f"mIoU {entry['val_miou']:.3f}, pixel AuPRC "
                      f"{entry['val_pixel_auprc']:.3f}")
        improved = entry['val_pixel_auprc'] > state['best_auprc']
        if improved:
            state['best_auprc'], state['best_epoch'] = entry['val_pixel_auprc'], state['epoch']
        job.save(ckpt, dataclasses.asdict(config), net, opt, rng, state,
                 best=work / 'outlier_best.pt' if improved else None)
    bar.close()
    job.barrier()
    if (work / 'outlier_best.pt').is_file():
        net.load_state_dict(load_checkpoint(work / 'outlier_best.pt')['model'])
    for module in frozen:
        module.requires_grad_(True)
    return net.eval(), state


def train_maskcls_model(data_dir, model_dir, work_dir, config=None, *, overwrite=False,
                        cache_dir=None, show_progress=True, command=None, device='cpu'):
    """Train, calibrate and write a ``maskcls_rba`` model directory; return its manifest.

    On ``device``. Under ``torchrun`` every process trains and rank 0 alone
    calibrates and writes (the others return None).
    """
    config = config or MaskClsTrainingConfig()
    started = time.perf_counter()
    data, shape, classes, cache_dir, train, val = load_segmentation_data(
        data_dir, config, cache_dir, show_progress)
    net, state = train_maskcls_network(train, val, len(classes), work_dir, config,
                                       show_progress, device)
    if config.outlier_epochs:
        outliers = load_pixel_split(data, 'outliers_set', shape, cache_dir, show_progress)
        if not outliers.anomaly.any():
            raise TrainingError(f'{str(data_dir)!r}: outliers_set has no anomaly pixels.')
        first = {'best_epoch': state['best_epoch'], 'best_miou': state['best_miou']}
        net, outlier_state = finetune_outliers(net, train, outliers, val, len(classes),
                                               work_dir, config, show_progress, device)
        state = dict(state, first_stage=first, outlier_history=outlier_state['history'],
                     outlier_best_epoch=outlier_state['best_epoch'])
    if not is_main_process():
        return None
    segmenter = MaskClsSegmenterModel(net.cpu(), config.score).eval()
    return write_pixel_model_dir(model_dir, segmenter, config.architecture(len(classes)),
                                 MODEL_FILE, classes, val, config, state, provenance={
                                     'data': str(data_dir), 'command': command,
                                     'frames': {'train': len(train.images),
                                                'validation': len(val.images)},
                                     'started': started},
                                 overwrite=overwrite)
