"""``anomaly-perception train promptable --design crops``: the click-crops segmenter.

:mod:`.clickcrops`' network trained from single clicks, at the frames'
own resolution:

* **Data**: ``train_set`` and ``outliers_set`` frames (every ``every``-th
  of ``train_set``; frames of global anomaly types, whose masks cover the
  image, left out); regions to segment are the anomaly instances and the
  connected components of every semantic class (at least ``min_region``
  pixels), as ``train promptable`` (SAM) uses them.
* **Prompts**: per step ``batch_size`` clicks, each on a random frame and
  region (an anomaly instance with probability ``anomaly_share`` when the
  frame has one): half at a uniform pixel of the region, half at its most
  interior pixel (where ``experiment ugains``' oracle clicks and the
  validation click). Every click gets all of the spec's windows, each
  with its side scaled by ``exp(U(-0.25, 0.25))`` and its centre moved by
  up to ``0.15`` of the side (the click map marks where the click is);
  horizontal flips and a brightness/contrast jitter.
* **Loss**: per window, binary cross-entropy plus dice against the region
  inside the window; the IoU head regresses the IoU that window's mask,
  pasted back, has with the **whole** region (so a window too small for
  its object learns to say so) by mean squared error.
* AdamW (``lr``, weight decay 1e-4), a linear warm-up over ``warmup_steps``
  then cosine decay to 0 at ``steps``; every ``val_every`` steps the
  validation IoU: one click at the most interior pixel of each anomaly
  instance of ``validation_set`` (at least 10 pixels), the mask of the
  window with the highest predicted IoU, at the frames' resolution; the
  best is kept; a checkpoint each time (resumable, interrupted or not).

Writes a model directory (branch ``instance``, architecture
``click_crops`` with its spec) that
:func:`~.promptable.load_promptable` loads.
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
import math
from pathlib import Path
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .clickcrops import ARCHITECTURE
from .clickcrops import build_clicknet
from .clickcrops import ClickCropSegmenter
from .clickcrops import crop_grid
from .clickcrops import crops_spec
from .clickcrops import inside_image
from .clickcrops import network_input
from .clickcrops import sample_windows
from .clickcrops import window_sides
from .promptable import PROMPTABLE_FILE
from .train_promptable import first_frame_shape
from .train_promptable import frame_regions
from .train_promptable import RegionData
from .ugains import oracle_points
from ..pixel.train import load_pixel_split
from ...data.hazards import default_cache_dir
from ...data.hazards import HazardsDataset
from ...data.synthetic.catalog import GLOBAL_TYPES
from ...runtime.manifest import write_model_dir
from ...training import CHECKPOINT
from ...training import distributed
from ...training import is_main_process
from ...training import load_checkpoint
from ...training import load_resumable
from ...training import restore_rng
from ...training import seed_everything
from ...training import to_bytes
from ...training import training_environment
from ...training import TrainingError


@dataclasses.dataclass
class ClickCropsTrainingConfig:
    """Options of ``train promptable --design crops`` (see module docs)."""

    crop_size: int = 64
    scales: tuple = (0.12, 0.35, 0.9)
    widths: tuple = (16, 32, 64)
    steps: int = 6000
    batch_size: int = 32
    anomaly_share: float = 0.5
    min_region: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    iou_weight: float = 1.0
    val_every: int = 500
    val_frames: int = 200
    train_every: int = 4
    seed: int = 0


def load_click_data(data, splits, shape, cache_dir, every, min_region, show_progress,
                    limit=None, keep_instances=True):
    """:class:`~.train_promptable.RegionData` of ``splits`` (global anomaly types left out).

    ``limit`` frames per split, spread over it; ``keep_instances`` False
    leaves ``instances`` None (training needs the regions only).
    """
    images, regions, anomalous, instances = [], [], [], []
    for split in splits:
        if not data.records(split):
            continue
        part = load_pixel_split(data, split, shape, cache_dir, show_progress,
                                every=every if split == 'train_set' else 1,
                                exclude_types=GLOBAL_TYPES, instances=True)
        # ``limit`` frames spread over the split (its records are grouped by type).
        keep = np.arange(len(part.images)) if limit is None or limit >= len(part.images) \
            else np.linspace(0, len(part.images) - 1, limit).round().astype(int)
        ids = part.instances if part.instances is not None else np.zeros(
            part.labels.shape, np.uint16)
        for j in keep:
            r, a = frame_regions(part.labels[j], np.where(part.anomaly[j], ids[j], 0),
                                 min_region)
            if r.max() > np.iinfo(np.int16).max:
                raise TrainingError(f'a frame of {split} has {r.max()} regions; raise '
                                    'min_region.')
            regions.append(r.astype(np.int16))
            anomalous.append(a)
        images.append(part.images[keep])
        if keep_instances:
            instances.append(np.where(part.anomaly[keep], ids[keep], 0).astype(np.uint16))
        del part
    if not images:
        raise TrainingError(f'{str(data.root)!r} has none of {", ".join(splits)}.')
    return RegionData(np.concatenate(images), np.stack(regions), anomalous,
                      np.concatenate(instances) if keep_instances else None)


def interior_point(mask):
    """Return the ``(x, y)`` pixel of a bool mask farthest from its boundary."""
    dist = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)


def sample_clicks(data, count, share, rng):
    """``count`` clicks: ``(frame index, region id, (x, y), region area)`` each."""
    out = []
    while len(out) < count:
        f = int(rng.integers(len(data.images)))
        ids = np.unique(data.regions[f])
        ids = [int(i) for i in ids if i]
        if not ids:
            continue
        anomaly_ids = [i for i in ids if i in data.anomalous[f]]
        pool = anomaly_ids if anomaly_ids and rng.random() < share else ids
        rid = pool[int(rng.integers(len(pool)))]
        mask = data.regions[f] == rid
        if rng.random() < 0.5:
            x, y = interior_point(mask)
        else:
            ys, xs = np.nonzero(mask)
            k = int(rng.integers(len(ys)))
            x, y = float(xs[k]), float(ys[k])
        out.append((f, rid, (x, y), int(mask.sum())))
    return out


def window_batch(data, clicks, spec, rng, device='cpu', augment=True):
    """Network inputs ``[C*K, 4, S, S]``, targets, in-image masks, pixel areas and region areas."""
    size = spec['crop_size']
    frames = sorted({c[0] for c in clicks})
    slot = {f: i for i, f in enumerate(frames)}
    images = torch.from_numpy(data.images[frames]).to(device).permute(0, 3, 1, 2).float() / 255
    h, w = images.shape[-2:]
    k = len(spec['scales'])
    base = torch.tensor(window_sides(spec['scales'], (h, w)), device=device)
    n = len(clicks) * k
    owner = torch.tensor([slot[c[0]] for c in clicks], device=device).repeat_interleave(k)
    points = torch.tensor([c[2] for c in clicks], dtype=torch.float32,
                          device=device).repeat_interleave(k, dim=0)
    sides = base.repeat(len(clicks))
    offsets = torch.zeros(n, 2, device=device)
    if augment:
        sides = sides * torch.from_numpy(np.exp(rng.uniform(-0.25, 0.25, n))).float().to(device)
        offsets = torch.from_numpy(rng.uniform(-0.15, 0.15, (n, 2))).float().to(device) \
            * sides[:, None]
    grid = crop_grid(points, sides, (h, w), size, offsets)
    click = size / 2.0 - offsets / sides[:, None] * size
    membership = torch.stack([torch.from_numpy(data.regions[c[0]] == c[1]) for c in clicks])
    membership = membership.to(device).float()[:, None]
    target = sample_windows(membership, torch.arange(len(clicks), device=device)
                            .repeat_interleave(k), grid, mode='nearest')[:, 0]
    valid = inside_image(grid, (h, w))
    x = network_input(images, owner, grid, click, size)
    if augment:
        gain = torch.from_numpy(rng.uniform(0.7, 1.3, (n, 1, 1, 1))).float().to(device)
        shift = torch.from_numpy(rng.uniform(-0.15, 0.15, (n, 1, 1, 1))).float().to(device)
        x[:, :3] = (x[:, :3] * gain + shift).clamp(-0.5, 0.5)
        if rng.random() < 0.5:
            x, target, valid = x.flip(-1), target.flip(-1), valid.flip(-1)
    pixel_area = (sides / size) ** 2
    region_area = torch.tensor([float(c[3]) for c in clicks], device=device) \
        .repeat_interleave(k)
    return x, target, valid, pixel_area, region_area


def whole_region_iou(logits, target, valid, pixel_area, region_area):
    """Return each window's mask IoU (logit > 0, inside the image) with its whole region."""
    pred = (logits > 0) & valid
    inter = (pred & (target > 0.5)).flatten(1).sum(1).float() * pixel_area
    area = pred.flatten(1).sum(1).float() * pixel_area
    union = (area + region_area - inter).clamp(min=1e-6)
    return (inter / union).clamp(0, 1)


def clickcrops_loss(logits, iou_pred, target, valid, pixel_area, region_area, config):
    """BCE + dice per window on the region inside it, plus the whole-region IoU regression."""
    weight = valid.float()
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction='none') * weight) \
        .flatten(1).sum(1) / weight.flatten(1).sum(1).clamp(min=1)
    p = logits.sigmoid() * weight
    dice = 1 - (2 * (p * target).flatten(1).sum(1) + 1) / (
        p.flatten(1).sum(1) + target.flatten(1).sum(1) + 1)
    with torch.no_grad():
        actual = whole_region_iou(logits, target, valid, pixel_area, region_area)
    return (bce + dice).mean() + config.iou_weight * F.mse_loss(iou_pred, actual), actual


def one_point_iou(segmenter, images, instances, min_region=10):
    """Mean IoU of the mask from one click at each anomaly instance's most interior pixel."""
    ious = []
    for image, inst in zip(images, instances):
        points, ids = oracle_points(inst, min_region)
        if not len(ids):
            continue
        segmenter.set_image(image)
        masks, _ = segmenter.masks_for_points(torch.from_numpy(points))
        for m, i in zip(masks.cpu().numpy(), ids):
            truth = inst == i
            ious.append((m & truth).sum() / max(1, (m | truth).sum()))
    return float(np.mean(ious)) if ious else float('nan'), len(ious)


def _lr(config, step):
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def plain_config(config):
    """Return ``config`` as plain JSON/YAML values (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(config).items()}


def train_clickcrops_network(train, val, work_dir, config, show_progress=True, device='cpu',
                             init_state=None):
    """Train (resumable); return ``(best network, state, spec)``.

    ``init_state``: weights to start from (a model of the same spec), e.g.
    the model a place is tuned from; a checkpoint in ``work_dir`` wins.
    Under ``torchrun`` each process trains on its part of every batch of
    clicks and rank 0 writes.
    """
    from tqdm import tqdm
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    job = distributed(device)
    device = job.device
    rng = seed_everything(config.seed)
    spec = crops_spec(config.crop_size, config.scales, config.widths)
    net = build_clicknet(spec)
    if init_state is not None:
        net.load_state_dict(init_state)
    net = job.place(net)
    trained = job.wrap(net)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state = {'step': 0, 'history': [], 'best_iou': -1.0, 'best_step': -1, 'wall_s': 0.0}
    ckpt = work / CHECKPOINT
    saved = load_resumable(ckpt, plain_config(config))
    if saved is not None:
        net.load_state_dict(saved['model'])
        opt.load_state_dict(saved['optimizer'])
        restore_rng(rng, saved['rng'])
        state = saved['state']
    bar = tqdm(total=config.steps, initial=state['step'], unit='step',
               desc='train promptable (crops)', disable=not (show_progress and job.main),
               dynamic_ncols=True)
    val_seg = ClickCropSegmenter(net, spec, device=device, prompt_batch=256)
    total, count, started = 0.0, 0, time.perf_counter()
    while state['step'] < config.steps:
        net.train()
        for group in opt.param_groups:
            group['lr'] = _lr(config, state['step'])
        clicks = sample_clicks(train, config.batch_size, config.anomaly_share, rng)
        batch = window_batch(train, clicks, spec, rng, device)
        # Every process draws every click (the same generators), then trains on its part.
        weight, x, target, valid, pixel_area, region_area = job.local(len(batch[0]), *batch)
        logits, iou = trained(x)
        loss, _ = clickcrops_loss(logits, iou, target, valid, pixel_area, region_area, config)
        if not torch.isfinite(loss):
            raise TrainingError(f'train promptable --design crops diverged (loss '
                                f'{float(loss)}) at step {state["step"] + 1}; lower --lr.')
        opt.zero_grad()
        (loss * weight).backward()
        opt.step()
        state['step'] += 1
        total += job.mean(loss.item() * weight)
        count += 1
        bar.update(1)
        bar.set_postfix(loss=f'{total / count:.3f}')
        if state['step'] % config.val_every == 0 or state['step'] == config.steps:
            net.eval()
            val_iou, n = one_point_iou(val_seg, val.images, val.instances)
            state['wall_s'] += time.perf_counter() - started
            entry = {'step': state['step'], 'loss': total / count, 'val_anomaly_iou': val_iou,
                     'val_instances': n, 'wall_s': state['wall_s']}
            state['history'].append(entry)
            if show_progress and job.main:
                bar.write(f"step {state['step']}: loss {entry['loss']:.3f}, validation mask "
                          f'IoU from one point per anomaly {val_iou:.3f} ({n} instances), '
                          f"{state['wall_s']:.0f} s")
            improved = np.isfinite(val_iou) and val_iou > state['best_iou']
            if improved:
                state['best_iou'], state['best_step'] = val_iou, state['step']
            job.save(ckpt, plain_config(config), net, opt, rng, state,
                     best=work / 'best.pt' if improved else None)
            total, count, started = 0.0, 0, time.perf_counter()
    bar.close()
    job.barrier()
    if (work / 'best.pt').is_file():
        net.load_state_dict(load_checkpoint(work / 'best.pt')['model'])
    return net.eval(), state, spec


def train_clickcrops_model(data_dir, model_dir, work_dir, config=None, *, overwrite=False,
                           cache_dir=None, show_progress=True, command=None, device='cpu'):
    """Train and write a click-crops model directory; return its manifest."""
    config = config or ClickCropsTrainingConfig()
    data = HazardsDataset(data_dir)
    shape = first_frame_shape(data)
    cache_dir = cache_dir or default_cache_dir()
    started = time.perf_counter()
    train = load_click_data(data, ['train_set', 'outliers_set'], shape, cache_dir,
                            config.train_every, config.min_region, show_progress,
                            keep_instances=False)
    val = load_click_data(data, ['validation_set'], shape, cache_dir, 1, config.min_region,
                          show_progress, limit=config.val_frames)
    net, state, spec = train_clickcrops_network(train, val, work_dir, config, show_progress,
                                                device)
    if not is_main_process():
        return None
    manifest = {
        'name': Path(model_dir).name, 'branch': 'instance',
        'architecture': {'type': ARCHITECTURE, 'spec': spec},
        'training': plain_config(config),
        'metrics': {'validation_anomaly_iou': state['best_iou'],
                    'best_step': state['best_step'], 'history': state['history']},
        'provenance': {'data': str(data_dir), 'command': command,
                       'frames': {'train': len(train.images), 'validation': len(val.images),
                                  'input': list(shape)},
                       'wall_s': time.perf_counter() - started, 'device': str(device),
                       **training_environment()},
    }
    weights = {k: v.cpu() for k, v in net.state_dict().items()}
    return write_model_dir(model_dir, manifest, {PROMPTABLE_FILE: to_bytes(weights)},
                           overwrite=overwrite)
