"""``anomaly-perception train promptable``: the small promptable segmenter (SAM's kind).

SAM's recipe, scaled down to the synthetic world and a CPU:

* **Model**: :func:`~anomaly_perception.branches.promptable.small_spec`:
  ERFNet's encoder (initialised from a pixel model when ``init_from`` is
  given) under ``segment-anything``'s prompt encoder and mask decoder; or
  every weight from a promptable model of the same spec
  (``init_promptable``: a further run on a new schedule).
* **Data**: frames at the model's input (longest side ``image_size``)
  from ``train_set`` and ``outliers_set``; regions to segment are the
  anomaly *instances* (instances/<stem>.png) and the connected components
  of every semantic class (at least ``min_region`` pixels).
* **Prompts**: per frame ``prompts_per_image`` single positive points, each
  a uniform pixel of a region drawn at random (an anomaly instance with
  probability ``anomaly_share`` when the frame has one); the target is that
  region. The prompts of a whole batch go through the mask decoder in one
  call (:func:`decode_prompts`), each on its own frame's embedding.
* **Loss** (SAM's): per prompt, of the three masks the one with the lowest
  ``focal_weight * focal + dice_weight * dice`` (20 : 1) is trained, and
  the IoU head regresses every mask's actual IoU (MSE); on the decoder's
  low-resolution masks (4 / ``patch_size`` of the input) against
  area-downsampled targets.
* **Iterative prompting** (SAM's, ``refine_rounds`` > 0, default 0): after
  the first prediction, each round adds one point per prompt, drawn
  uniformly from the error region of the previous mask (the one with the
  highest predicted IoU, at the decoder's resolution): positive on a
  missed pixel, negative on a false one (a padding point when the mask is
  already exact), and feeds that mask's logits back as the mask prompt;
  every round's masks are trained (the loss is the mean over rounds).
  Deployment still prompts with one point: the rounds are extra
  supervision of the decoder, as in SAM.
* AdamW (lr 3e-4, weight decay 1e-4), a linear warm-up over the first
  ``warmup_steps`` batches (a transformer decoder trained from scratch
  without one collapsed to empty masks here), poly decay per epoch, flips; the
  best epoch by validation mask IoU of single-point prompts at the most
  interior point of each anomaly instance (the deployed best-of-three by
  predicted IoU); resumable from a checkpoint per epoch.
* ``device``: ``cpu`` or ``cuda`` (not part of the options a checkpoint
  must match: a run may resume on another device).

Writes a model directory (branch ``instance``, architecture ``sam`` with
its spec) that :func:`~anomaly_perception.branches.promptable.load_promptable`
loads.
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
import torch.nn.functional as F

from .promptable import build_sam
from .promptable import PROMPTABLE_FILE
from .promptable import PromptableSegmenter
from .promptable import small_spec
from .ugains import oracle_points
from ..pixel.train import load_pixel_split
from ..pixel.train import VOID
from ...data.hazards import default_cache_dir
from ...data.hazards import HazardsDataset
from ...runtime.manifest import write_model_dir
from ...training import CHECKPOINT
from ...training import distributed
from ...training import is_main_process
from ...training import load_checkpoint
from ...training import load_erfnet_encoder
from ...training import load_resumable
from ...training import poly_lr
from ...training import restore_rng
from ...training import seed_everything
from ...training import set_learning_rate
from ...training import training_environment
from ...training import TrainingError


@dataclasses.dataclass
class PromptableTrainingConfig:
    """Options of ``train promptable`` (see module docs)."""

    image_size: int = 256
    prompt_dim: int = 64
    patch_size: int = 8
    epochs: int = 6
    batch_size: int = 8
    prompts_per_image: int = 16
    anomaly_share: float = 0.5
    min_region: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-4
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    warmup_steps: int = 250
    train_every: int = 1
    init_from: str = ''
    init_promptable: str = ''
    seed: int = 0
    refine_rounds: int = 0


@dataclasses.dataclass
class RegionData:
    images: np.ndarray      # uint8 [N, h, w, 3]
    regions: np.ndarray     # int32 (int16: click crops) [N, h, w]: 0 none, region ids
    anomalous: list         # per frame: the set of region ids that are anomaly instances
    instances: np.ndarray   # uint16 [N, h, w] anomaly instance ids (0 none)


def first_frame_shape(data):
    """``(h, w)`` of a dataset's first ``train_set`` frame (the frames' own resolution).

    Raises:
        TrainingError: no ``train_set``, or its first frame cannot be read (named).

    """
    sample = data.records('train_set')
    if not sample:
        raise TrainingError(f'{str(data.root)!r} has no train_set.')
    first = cv2.imread(str(sample[0].path))
    if first is None:
        raise TrainingError(f'Cannot read {str(sample[0].path)!r}.')
    return first.shape[:2]


def frame_regions(labels, instances, min_region=16):
    """Region ids ``[h, w]`` (0 = none) and the ids that are anomaly instances.

    Anomaly instances (``instances`` > 0) first, then the 4-connected
    components of each semantic class; regions under ``min_region``
    pixels are dropped.
    """
    regions = np.zeros(labels.shape, np.int32)
    anomalous = set()
    next_id = 1
    for i in np.unique(instances):
        if i == 0:
            continue
        mask = instances == i
        if mask.sum() >= min_region:
            regions[mask] = next_id
            anomalous.add(next_id)
            next_id += 1
    for c in np.unique(labels):
        if c == VOID:
            continue
        n, comp = cv2.connectedComponents(((labels == c) & (regions == 0)).astype(np.uint8), 4)
        for k in range(1, n):
            mask = comp == k
            if mask.sum() >= min_region:
                regions[mask] = next_id
                next_id += 1
    return regions, anomalous


def load_region_data(data, splits, shape, cache_dir, every, min_region, show_progress):
    images, regions, anomalous, instances = [], [], [], []
    for split in splits:
        part = load_pixel_split(data, split, shape, cache_dir, show_progress,
                                every=every if split == 'train_set' else 1, instances=True)
        ids = part.instances if part.instances is not None else np.zeros(
            part.labels.shape, np.uint16)
        for j in range(len(part.images)):
            r, a = frame_regions(part.labels[j], np.where(part.anomaly[j], ids[j], 0),
                                 min_region)
            regions.append(r)
            anomalous.append(a)
        images.append(part.images)
        instances.append(np.where(part.anomaly, ids, 0).astype(np.uint16))
    return RegionData(np.concatenate(images), np.stack(regions), anomalous,
                      np.concatenate(instances))


def _sample_prompts(regions, anomalous, count, share, rng):
    """``count`` (x, y) points and their region ids for one frame."""
    ids = [int(i) for i in np.unique(regions) if i]
    if not ids:
        return np.zeros((0, 2), np.float32), []
    anomaly_ids = [i for i in ids if i in anomalous]
    points, chosen = [], []
    for _ in range(count):
        pool = anomaly_ids if anomaly_ids and rng.random() < share else ids
        rid = pool[int(rng.integers(len(pool)))]
        ys, xs = np.nonzero(regions == rid)
        k = int(rng.integers(len(ys)))
        points.append((xs[k], ys[k]))
        chosen.append(rid)
    return np.asarray(points, np.float32), chosen


def focal_loss(logits, targets, alpha=0.25, gamma=2.0):
    """Sigmoid focal loss per mask (mean over pixels): ``[P, M, h, w]`` -> ``[P, M]``."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction='none')
    pt = p * targets + (1 - p) * (1 - targets)
    weight = alpha * targets + (1 - alpha) * (1 - targets)
    return (weight * ce * (1 - pt) ** gamma).flatten(2).mean(-1)


def dice_per_mask(logits, targets):
    """Dice loss per mask: ``[P, M, h, w]`` -> ``[P, M]``."""
    p = logits.sigmoid().flatten(2)
    t = targets.flatten(2)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def promptable_loss(low_res, iou_pred, targets, config):
    """Return SAM's loss: the best of the masks per prompt, plus IoU regression on all.

    ``low_res`` ``[P, M, h, w]`` logits; ``iou_pred`` ``[P, M]``; ``targets``
    ``[P, 1, h, w]`` in [0, 1].
    """
    t = targets.expand_as(low_res)
    per_mask = config.focal_weight * focal_loss(low_res, t) + config.dice_weight * \
        dice_per_mask(low_res, t)
    best = per_mask.min(dim=1).values.mean()
    with torch.no_grad():
        pred, truth = low_res > 0, t > 0.5
        inter = (pred & truth).flatten(2).sum(-1).float()
        union = (pred | truth).flatten(2).sum(-1).float()
        actual = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    return best + config.iou_weight * F.mse_loss(iou_pred, actual)


def decode_prompts(sam, embeddings, image_index, points_xy, labels=None, mask_inputs=None):
    """Mask logits ``[P, 3, h, w]`` and IoU ``[P, 3]`` for prompts on several embeddings.

    ``embeddings`` ``[B, D, g, g]``; prompt ``p`` is the single positive
    point ``points_xy[p]`` (model input coordinates) on
    ``embeddings[image_index[p]]``; or, with ``points_xy`` ``[P, n, 2]``,
    ``n`` points labelled by ``labels`` ``[P, n]`` (1 positive, 0 negative,
    -1 padding) and optionally a mask prompt ``mask_inputs`` ``[P, 1, h, w]``
    (the decoder's own low-resolution logits, as SAM's iterative prompting
    feeds them back). The computation of
    ``MaskDecoder.predict_masks`` with ``multimask_output=True``, except
    that each prompt takes its own frame's embedding instead of one shared
    (``predict_masks`` repeats a single embedding for every prompt): a
    whole batch's prompts in one decoder call.
    """
    dec = sam.mask_decoder
    if points_xy.dim() == 2:
        points_xy = points_xy[:, None, :]
    if labels is None:
        labels = torch.ones(points_xy.shape[:2], dtype=torch.int64, device=points_xy.device)
    sparse, dense = sam.prompt_encoder(points=(points_xy, labels), boxes=None,
                                       masks=mask_inputs)
    tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    tokens = torch.cat([tokens.unsqueeze(0).expand(len(sparse), -1, -1), sparse], dim=1)
    src = embeddings[image_index] + dense
    pos = sam.prompt_encoder.get_dense_pe().expand(len(sparse), -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = dec.transformer(src, pos, tokens)
    upscaled = dec.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper = torch.stack([mlp(hs[:, 1 + i, :]) for i, mlp in
                         enumerate(dec.output_hypernetworks_mlps)], dim=1)
    b, c, h, w = upscaled.shape
    masks = (hyper @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    iou = dec.iou_prediction_head(hs[:, 0, :])
    return masks[:, 1:], iou[:, 1:]


@torch.no_grad()
def correction_points(mask_logits, targets, rng):
    """One corrective point per prompt from the error region of ``mask_logits``.

    ``mask_logits``, ``targets``: ``[P, 1, h, w]`` (targets in [0, 1]).
    Returns ``(points [P, 2] as (x, y) at that resolution, labels [P])``: a
    uniform pixel of the missed region (label 1) or the false one (label 0),
    by their share of the error; label -1 (padding) where there is no error.
    """
    pred = (mask_logits > 0)[:, 0].cpu().numpy()
    truth = (targets > 0.5)[:, 0].cpu().numpy()
    points = np.zeros((len(pred), 2), np.float32)
    labels = np.full(len(pred), -1, np.int64)
    for p in range(len(pred)):
        error = pred[p] != truth[p]
        ys, xs = np.nonzero(error)
        if not len(ys):
            continue
        k = int(rng.integers(len(ys)))
        points[p] = (xs[k], ys[k])
        labels[p] = int(truth[p][ys[k], xs[k]])
    return points, labels


def single_point_iou(sam, images, instances, min_region=10):
    """Mean IoU of best-of-three masks from the most interior point of each anomaly instance."""
    seg = PromptableSegmenter(sam.eval(), device=sam.device)
    ious = []
    for image, inst in zip(images, instances):
        points, ids = oracle_points(inst, min_region)
        if not len(ids):
            continue
        seg.set_image(image)
        masks, _ = seg.masks_for_points(torch.from_numpy(points))
        for m, i in zip(masks.cpu().numpy(), ids):
            truth = inst == i
            ious.append((m & truth).sum() / max(1, (m | truth).sum()))
    return float(np.mean(ious)) if ious else float('nan'), len(ious)


class _PromptStep(torch.nn.Module):
    """One step's loss as one forward (what DistributedDataParallel wraps).

    The image encoder on ``images``, then the prompts decoded on their own
    frame's embedding in ``1 + refine_rounds`` rounds, each later round
    adding a corrective point drawn by ``rng`` from the previous mask's
    error (SAM's iterative prompting). Without prompts (a process whose
    part of the batch has none) the loss is 0 and the decoder takes no part.
    """

    def __init__(self, sam, config, size, low):
        super().__init__()
        self.sam, self.config, self.size, self.low = sam, config, size, low

    def forward(self, images, owner, coords, targets, rng):
        sam, config = self.sam, self.config
        embeddings = sam.image_encoder(sam.preprocess(images))
        if not len(owner):
            return embeddings.sum() * 0.0
        device = embeddings.device
        labels = torch.ones(coords.shape[:2], dtype=torch.int64, device=device)
        low_res, iou = decode_prompts(sam, embeddings, owner, coords, labels)
        loss = promptable_loss(low_res, iou, targets, config)
        for _ in range(config.refine_rounds):
            rows = torch.arange(len(iou), device=device)
            previous = low_res[rows, iou.argmax(dim=1)][:, None].detach()
            xy, lab = correction_points(previous, targets, rng)
            scale = self.size / self.low       # the decoder's grid -> model input pixels
            coords = torch.cat([coords, (torch.from_numpy(xy).to(device)[:, None, :]
                                         + 0.5) * scale], dim=1)
            labels = torch.cat([labels, torch.from_numpy(lab).to(device)[:, None]], dim=1)
            low_res, iou = decode_prompts(sam, embeddings, owner, coords, labels, previous)
            loss = loss + promptable_loss(low_res, iou, targets, config)
        return loss / (1 + config.refine_rounds)


def _warmup_lr(lr, step, warmup_steps):
    return lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else lr


def train_promptable_network(train, val, work_dir, config, show_progress=True, device='cpu'):
    """Train (resumable); return ``(best SAM, state, spec)``.

    On ``device``. Under ``torchrun`` every process draws the whole batch
    and its prompts, then trains on its part of the frames with their
    prompts, its loss weighted by its share of the batch's prompts; rank 0
    writes. The corrective points of ``refine_rounds`` are drawn from a
    generator of the seed, the step and the process.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    job = distributed(device)
    device = job.device
    rng = seed_everything(config.seed)
    spec = small_spec(config.image_size, config.prompt_dim, config.patch_size)
    sam = build_sam(spec)
    if config.init_promptable:
        from .promptable import load_promptable
        start, manifest = load_promptable(config.init_promptable)
        if manifest['architecture']['spec'] != spec:
            raise TrainingError(f'{config.init_promptable!r} has another spec '
                                f"({manifest['architecture']['spec']}) than these options "
                                f'({spec}).')
        sam.load_state_dict(start.sam.state_dict())
    elif config.init_from:
        own = sam.image_encoder.encoder.state_dict()
        sam.image_encoder.encoder.load_state_dict(
            {k: v for k, v in load_erfnet_encoder(config.init_from).state_dict().items()
             if k in own and own[k].shape == v.shape}, strict=False)
    sam = job.place(sam)
    opt = torch.optim.AdamW(sam.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state = {'epoch': 0, 'history': [], 'best_iou': -1.0, 'best_epoch': -1}
    ckpt = work / CHECKPOINT
    saved = load_resumable(ckpt, dataclasses.asdict(config))
    if saved is not None:
        sam.load_state_dict(saved['model'])
        opt = torch.optim.AdamW(sam.parameters(), lr=config.lr,
                                weight_decay=config.weight_decay)
        opt.load_state_dict(saved['optimizer'])
        restore_rng(rng, saved['rng'])
        state = saved['state']
    size = config.image_size
    low = 4 * size // int(spec['encoder']['patch_size'])   # the decoder's masks
    batches = -(-len(train.images) // config.batch_size)
    trained = job.wrap(_PromptStep(sam, config, size, low))
    from tqdm import tqdm
    bar = tqdm(total=config.epochs * batches, initial=state['epoch'] * batches, unit='batch',
               desc='train promptable', disable=not (show_progress and job.main),
               dynamic_ncols=True)
    while state['epoch'] < config.epochs:
        lr = set_learning_rate(opt, poly_lr(config.lr, state['epoch'], config.epochs))
        sam.train()
        order = rng.permutation(len(train.images))
        total, count, started = 0.0, 0, time.perf_counter()
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            step = state['epoch'] * batches + start // config.batch_size
            for group in opt.param_groups:
                group['lr'] = _warmup_lr(lr, step, config.warmup_steps)
            images = torch.from_numpy(train.images[idx]).permute(0, 3, 1, 2).float()
            regions = train.regions[idx]
            if rng.random() < 0.5:
                images, regions = images.flip(-1), regions[..., ::-1].copy()
            points, owner, masks = [], [], []
            for b in range(len(idx)):
                pts, rids = _sample_prompts(regions[b], train.anomalous[idx[b]],
                                            config.prompts_per_image, config.anomaly_share, rng)
                points.append(pts)
                owner += [b] * len(rids)
                masks += [regions[b] == r for r in rids]
            if not owner:
                bar.update(1)
                continue
            # This process's frames and their prompts, its loss weighted by its share of them.
            part, share = job.part(len(idx))
            owner = np.asarray(owner)
            mine = (owner >= part.start) & (owner < part.stop) & (share > 0)
            weight = mine.sum() * job.world / len(owner)
            targets = None
            if mine.any():
                masks = torch.from_numpy(np.stack(masks)[mine]).to(device).float()
                h, w = masks.shape[-2:]
                masks = F.pad(masks, (0, size - w, 0, size - h))[:, None]
                targets = F.interpolate(masks, size=(low, low), mode='area')
            owner_t = torch.from_numpy(owner[mine] - part.start).to(device)
            coords = torch.from_numpy(np.concatenate(points)[mine]).to(device)[:, None, :]
            corrections = np.random.default_rng([config.seed, step, job.rank])
            loss = trained(images[part].to(device), owner_t, coords, targets, corrections)
            if not torch.isfinite(loss):
                raise TrainingError(f'train promptable diverged (loss {float(loss)}) at epoch '
                                    f'{state["epoch"] + 1}; lower the learning rate.')
            opt.zero_grad()
            (loss * weight).backward()
            opt.step()
            total += job.mean(loss.item() * weight) * len(idx)
            count += len(idx)
            bar.update(1)
            bar.set_postfix(epoch=state['epoch'] + 1, loss=f'{total / count:.3f}')
        state['epoch'] += 1
        val_iou, n = single_point_iou(sam, val.images, val.instances)
        entry = {'epoch': state['epoch'], 'loss': total / count, 'lr': lr,
                 'val_anomaly_iou': val_iou, 'val_instances': n,
                 'wall_s': time.perf_counter() - started}
        state['history'].append(entry)
        if show_progress and job.main:
            bar.write(f"epoch {state['epoch']}: loss {entry['loss']:.3f}, validation mask IoU "
                      f'from one point per anomaly {val_iou:.3f} ({n} instances), '
                      f"{entry['wall_s']:.0f} s")
        improved = not np.isfinite(val_iou) or val_iou > state['best_iou']
        if improved:
            state['best_iou'] = val_iou if np.isfinite(val_iou) else state['best_iou']
            state['best_epoch'] = state['epoch']
        job.save(ckpt, dataclasses.asdict(config), sam, opt, rng, state,
                 best=work / 'best.pt' if improved else None)
    bar.close()
    job.barrier()
    if (work / 'best.pt').is_file():
        sam.load_state_dict(load_checkpoint(work / 'best.pt')['model'])
    return sam.eval(), state, spec


def _device_name(device):
    if str(device).startswith('cuda'):
        return f'cuda ({torch.cuda.get_device_name(torch.device(device))})'
    return str(device)


def train_promptable_model(data_dir, model_dir, work_dir, config=None, *, overwrite=False,
                           cache_dir=None, show_progress=True, command=None, device='cpu'):
    """Train and write a promptable-segmenter model directory; return its manifest."""
    config = config or PromptableTrainingConfig()
    data = HazardsDataset(data_dir)
    h, w = first_frame_shape(data)
    scale = config.image_size / max(h, w)
    shape = (max(8, int(round(h * scale / 8)) * 8), max(8, int(round(w * scale / 8)) * 8))
    cache_dir = cache_dir or default_cache_dir()
    started = time.perf_counter()
    splits = ['train_set'] + (['outliers_set'] if data.records('outliers_set') else [])
    train = load_region_data(data, splits, shape, cache_dir, config.train_every,
                             config.min_region, show_progress)
    val = load_region_data(data, ['validation_set'], shape, cache_dir, 1, config.min_region,
                           show_progress)
    sam, state, spec = train_promptable_network(train, val, work_dir, config, show_progress,
                                                device)
    if not is_main_process():
        return None
    manifest = {
        'name': Path(model_dir).name, 'branch': 'instance',
        'architecture': {'type': 'sam', 'spec': spec},
        'training': dataclasses.asdict(config),
        'metrics': {'validation_anomaly_iou': state['best_iou'],
                    'best_epoch': state['best_epoch'], 'history': state['history']},
        'provenance': {'data': str(data_dir), 'command': command,
                       'frames': {'train': len(train.images), 'validation': len(val.images),
                                  'input': list(shape)},
                       'wall_s': time.perf_counter() - started, 'device': _device_name(device),
                       **training_environment()},
    }
    import io
    buf = io.BytesIO()
    torch.save({k: v.cpu() for k, v in sam.state_dict().items()}, buf)
    return write_model_dir(model_dir, manifest, {PROMPTABLE_FILE: buf.getvalue()},
                           overwrite=overwrite)
