"""``train pixel --bag``: adapt the pixel model to a place from its unlabelled normal bags.

A robot has hours of normal driving of its building and no pixel labels.
Every pixel of a normal frame is normal; the anomalies come from synthesis:

1. **Frames.** The bags' camera frames are letterboxed to the model's
   input (the whole view, as the node sees it) and split by time blocks:
   every fifth 10 s block is held out for calibration (neighbouring frames
   are near-copies, so a random split would calibrate on training frames).
   Training frames are flipped and their brightness jittered (``warp``
   also changes the pose of a share of them; off by default, measured in
   docs/RESULTS.md).
2. **Pasted-anomaly exposure** (:mod:`.paste`): cut-outs are pasted onto
   the place's own frames; pasted pixels are the void (anomaly) class.
3. **Classes kept.** The other pixels get the starting model's confident
   pseudo-labels (its arg-max over the normal classes, computed on the
   unpasted frame; pixels below ``pseudo_confidence`` are left out), so the
   semantic classes are not forgotten while the void class learns the place.
4. **Calibration** on the held-out blocks, scored as driven and as
   another run would see them (one small pose change per block): a
   per-position offset (the ``position_quantile`` of each cell of a coarse grid over the view, less
   the median cell: far corridor ends, wall edges and the robot's own body
   that are hot on all normal driving), then the per-pixel calibration of
   the offset map (threshold at ``target_fpr`` of normal pixels) and the
   frame-level calibration of its 0.99 quantile. The held-out blocks' frame
   scores are kept in the manifest, so the node sets its hazard flag for a
   false-alarm rate per hour (2 by default) with its own smoothing.

It fine-tunes the starting model (the shipped ``pixel_erfnet`` or
``--init-from``), which must have a void class; a failure head (FSNet)
is carried over unchanged. Progress shows rate and ETA; an interrupted run
resumes from its last checkpoint in the work directory.
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

import copy
import dataclasses
from pathlib import Path
import time

import cv2
import numpy as np
import torch

from .paste import CutoutBank
from .paste import IGNORE
from .paste import PasteOptions
from .paste import Paster
from ...data.bag_frames import cached_bag_frames
from ...data.bag_frames import check_patrol_length
from ...data.bag_frames import time_block_split
from ...metrics.binary import BinaryScoreAccumulator
from ...runtime.export import export_model
from ...runtime.export import store_fp16_weights
from ...runtime.manifest import load_manifest
from ...runtime.manifest import model_input_shape
from ...runtime.manifest import write_model_dir
from ...runtime.network import architecture_of
from ...runtime.network import load_network
from ...runtime.preprocess import content_box
from ...runtime.preprocess import LETTERBOX
from ...scoring.calibration import EmpiricalCalibration
from ...scoring.pixel import fit_pixel_calibration
from ...stream.hazard import HazardConfig
from ...stream.hazard import heldout_record
from ...stream.hazard import heldout_sequences
from ...stream.hazard import on_probability_for_rate
from ...training import CHECKPOINT
from ...training import cpu_state
from ...training import distributed
from ...training import is_main_process
from ...training import load_resumable
from ...training import module_device
from ...training import restore_rng
from ...training import rng_state
from ...training import save_checkpoint
from ...training import seed_everything
from ...training import to_bytes
from ...training import training_environment
from ...training import TrainingError

FRAME_QUANTILE = 0.99
MIN_PLACE_S = 20.0          # normal driving a place needs at the least
MIN_CALIBRATION_FRAMES = 10


@dataclasses.dataclass
class PlaceTrainingConfig:
    """Options of ``train pixel --bag`` (defaults: 5 min of 10 Hz bags in < 10 min on 2 cores)."""

    steps: int = 480                    # optimiser steps (batches), whatever the frame count
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-4
    paste_share: float = 0.75           # share of training frames that get pasted cut-outs
    void_weight: float = 3.0            # loss weight of pasted pixels
    pseudo_confidence: float = 0.5      # keep the starting model's labels above this softmax
    sources: tuple = ('world', 'procedural')
    jitter: float = 0.2                 # brightness / contrast jitter of training frames
    warp: float = 0.0                   # share of training frames given a pose change
    target_fpr: float = 0.002           # the mask's share of normal pixels above threshold
    target_false_alarms_per_hour: float = 2.0   # the hazard flag on the held-out blocks
    position_grid: tuple = (18, 32)     # per-position offset cells over the input
    position_quantile: float = 0.99
    block_s: float = 10.0               # time blocks; every 5th held out for calibration
    every: int = 1                      # every n-th frame of the bags
    topic: str = None
    checkpoint_every: int = 25
    seed: int = 0


def _network(module):
    """Return the ERFNet and the segmenter wrapper of a pixel module (failure head or not)."""
    segmenter = getattr(module, 'segmenter', module)
    return segmenter.network, segmenter


def pose_change(rng):
    """Draw a small change of the camera's pose: ``(dx, dy, degrees, scale)`` (shares of size)."""
    return (rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(-6, 6),
            rng.uniform(0.9, 1.15))


def change_pose(image, pose):
    """Tilt, zoom and shift ``image`` by ``pose`` (:func:`pose_change`), the edges mirrored."""
    h, w = image.shape[:2]
    dx, dy, angle, scale = pose
    m = cv2.getRotationMatrix2D((w / 2 + dx * w, h / 2 + dy * h), angle, scale)
    return cv2.warpAffine(np.ascontiguousarray(image), m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def _augment(image, rng, jitter, warp=0.5):
    """Flip, change the pose (the views another run of the route sees), light jitter."""
    if rng.random() < 0.5:
        image = image[:, ::-1]
    if rng.random() < warp:
        image = change_pose(image, pose_change(rng))
    if jitter:
        gain = 1 + rng.uniform(-jitter, jitter)
        bias = rng.uniform(-jitter, jitter) * 64
        image = np.clip(image.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def other_run_views(images, blocks, seed):
    """Return the held-out frames as another run would see them: one pose change per block.

    ``blocks``: position arrays into ``images`` (a stretch of driving each);
    None: every frame a block of its own. Returns uint8 ``[N, h, w, 3]``.
    """
    rng = np.random.default_rng(seed + 11)
    blocks = [np.array([i]) for i in range(len(images))] if blocks is None else blocks
    out = np.empty_like(images)
    for block in blocks:
        pose = pose_change(rng)
        for i in block:
            out[i] = change_pose(images[i], pose)
    return out


def _to_input(images):
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def _keep_region(labels, region):
    """Set label pixels outside the frame's part of a letterboxed input to IGNORE."""
    y0, x0, h, w = region
    out = np.full_like(labels, IGNORE)
    out[:, y0:y0 + h, x0:x0 + w] = labels[:, y0:y0 + h, x0:x0 + w]
    return out


def make_batch(images, rng, paster, teacher, void_index, region, config, part=slice(None)):
    """One training batch: augmented, pasted frames and their labels (tensors).

    ``part``: the samples this process trains on (all by default). Every
    sample is drawn, so that the processes of a ``torchrun`` job keep the
    same generator; the teacher labels this process's part alone. The
    tensors are on the teacher's device.
    """
    clean = [_augment(images[i], rng, config.jitter, config.warp) for i in range(len(images))]
    mine = range(len(clean))[part]
    device = module_device(teacher)
    with torch.no_grad():
        logits = teacher(_to_input([clean[k] for k in mine]).to(device)).cpu()
    keep = [c for c in range(logits.shape[1]) if c != void_index]
    prob = torch.softmax(logits[:, keep], 1)
    conf, arg = prob.max(1)
    normal = torch.tensor(keep)[arg].numpy().astype(np.uint8)
    labels = np.where(conf.numpy() >= config.pseudo_confidence, normal, IGNORE).astype(np.uint8)
    pasted = []
    for k, image in enumerate(clean):
        if rng.random() < config.paste_share:
            image, void, rim = paster.paste(image, rng, region)
            if k in mine:
                labels[k - mine.start][void] = void_index
                labels[k - mine.start][rim] = IGNORE
        if k in mine:
            pasted.append(image)
    labels = _keep_region(labels, region)
    return _to_input(pasted).to(device), torch.from_numpy(labels.astype(np.int64)).to(device)


@torch.no_grad()
def score_maps(segmenter, images, batch=16):
    """Return the deployed graph's anomaly maps of uint8 NHWC images (float32 ``[N, h, w]``)."""
    segmenter.eval()
    out = []
    for start in range(0, len(images), batch):
        result = segmenter(torch.from_numpy(np.ascontiguousarray(images[start:start + batch])))
        out.append(result[0].numpy())
    return np.concatenate(out) if out else np.zeros((0, *images.shape[1:3]), np.float32)


def position_offset(maps, region, grid, quantile):
    """Per-cell offsets over the input: each cell's ``quantile`` less the median cell's, >= 0.

    ``maps``: held-out normal maps ``[N, h, w]``; cells outside the frame's
    part of the input (letterbox bands) get 0. Returns ``float32 [gh, gw]``.
    """
    n, h, w = maps.shape
    gh, gw = grid
    y0, x0, rh, rw = region
    values = np.zeros(grid, np.float32)
    inside = np.zeros(grid, bool)
    for i in range(gh):
        for j in range(gw):
            ys = slice(i * h // gh, (i + 1) * h // gh)
            xs = slice(j * w // gw, (j + 1) * w // gw)
            cy, cx = (ys.start + ys.stop) / 2, (xs.start + xs.stop) / 2
            if y0 <= cy < y0 + rh and x0 <= cx < x0 + rw:
                values[i, j] = np.quantile(maps[:, ys, xs], quantile)
                inside[i, j] = True
    if not inside.any():
        return np.zeros(grid, np.float32)
    offset = np.where(inside, np.maximum(values - np.median(values[inside]), 0.0), 0.0)
    return offset.astype(np.float32)


def pasted_validation(segmenter, images, paster, region, seed, count=64):
    """Pixel AuPRC of pasted cut-outs on held-out frames (a check of learning, not of hazards)."""
    rng = np.random.default_rng(seed + 7)
    take = rng.choice(len(images), min(count, len(images)), replace=False)
    pasted, truth = [], []
    for i in take:
        image, void, rim = paster.paste(images[i], rng, region)
        pasted.append(image)
        truth.append(np.where(rim, 2, void).astype(np.uint8))
    maps = score_maps(segmenter, np.stack(pasted))
    y0, x0, h, w = region
    acc = BinaryScoreAccumulator()
    for m, t in zip(maps, truth):
        t, m = t[y0:y0 + h, x0:x0 + w], m[y0:y0 + h, x0:x0 + w]
        keep = t < 2
        acc.update(t[keep], m[keep])
    curve = acc.curve()
    return {'pasted_auprc': curve.average_precision(), 'pasted_fpr95': curve.fpr_at_tpr(0.95),
            'frames': int(len(take))}


def adapt_to_place(module, void_index, num_classes, train_images, region, work_dir, config,
                   bank, show_progress=True, device='cpu'):
    """Fine-tune ``module``'s ERFNet on a place's frames (resumable); return the run's state.

    ``train_images``: letterboxed uint8 ``[N, h, w, 3]``; ``region``: the
    frame's part of the input. On ``device``, the network back on the CPU
    at the end; under ``torchrun`` each process trains on its part of every
    batch and rank 0 writes the checkpoints.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    job = distributed(device)
    rng = seed_everything(config.seed)
    network, _ = _network(module)
    network = job.place(network)
    teacher = copy.deepcopy(network).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    paster = Paster(bank)
    opt = torch.optim.Adam(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state = {'step': 0, 'history': []}
    ckpt = work / CHECKPOINT
    saved = load_resumable(ckpt, _config_key(config, len(train_images)))
    if saved is not None:
        network.load_state_dict(saved['model'])
        opt.load_state_dict(saved['optimizer'])
        restore_rng(rng, saved['rng'])
        state = saved['state']
    weights = torch.ones(int(num_classes))
    weights[void_index] = config.void_weight
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights.to(job.device), ignore_index=IGNORE)
    trained = job.wrap(network)
    part, share = job.part(config.batch_size)
    from tqdm import tqdm
    bar = tqdm(total=config.steps, initial=state['step'], unit='step', desc='learn the place',
               disable=not (show_progress and job.main), dynamic_ncols=True)
    running, started = [], time.perf_counter()
    while state['step'] < config.steps:
        network.train()
        # Cosine decay over the run: a resumed run continues the same schedule.
        lr = config.lr * 0.5 * (1 + np.cos(np.pi * state['step'] / config.steps))
        for group in opt.param_groups:
            group['lr'] = lr
        idx = rng.integers(0, len(train_images), config.batch_size)
        x, y = make_batch(train_images[idx], rng, paster, teacher, void_index, region, config,
                          part)
        loss = loss_fn(trained(x), y)
        if not torch.isfinite(loss):
            raise TrainingError(f'Place training diverged (loss {loss.item()}) at step '
                                f'{state["step"] + 1}; lower --lr.')
        opt.zero_grad()
        (loss * share).backward()
        opt.step()
        state['step'] += 1
        running.append(job.mean(loss.item() * share))
        bar.update(1)
        bar.set_postfix(loss=f'{np.mean(running[-20:]):.4f}')
        if state['step'] % config.checkpoint_every == 0 or state['step'] == config.steps:
            state['history'].append({'step': state['step'], 'loss': float(np.mean(running)),
                                     'lr': lr, 'wall_s': time.perf_counter() - started})
            running, started = [], time.perf_counter()
            if job.main:
                save_checkpoint(ckpt, {'config': _config_key(config, len(train_images)),
                                       'model': cpu_state(network),
                                       'optimizer': opt.state_dict(), 'rng': rng_state(rng),
                                       'state': state})
    bar.close()
    job.barrier()
    network.cpu()
    network.eval()
    return state


def _config_key(config, frames):
    key = dataclasses.asdict(config)
    key['frames'] = int(frames)
    return key


def calibrate_place(segmenter, images, region, config, blocks=None):
    """Per-position offset, pixel and frame calibrations from held-out normal frames.

    The held-out frames are scored as they are and as another run of the
    route would see them (:func:`other_run_views`, one pose change per
    block of ``blocks``): the same place from a few degrees and centimetres
    away runs hotter, and a threshold set on one run alone does not hold on
    the next one.

    Returns ``(offset [gh, gw], pixel calibration, frame calibration, frame
    scores [2N])``: the frame scores of the frames, then of their views; both
    calibrations are of the score less the offset, as the detector decides.
    """
    views = other_run_views(images, blocks, config.seed)
    maps = score_maps(segmenter, np.concatenate([images, views]))
    offset = position_offset(maps, region, config.position_grid, config.position_quantile)
    h, w = maps.shape[1:]
    offset_map = cv2.resize(offset, (w, h), interpolation=cv2.INTER_LINEAR)
    normalised = maps - offset_map
    y0, x0, rh, rw = region
    valid = np.zeros((h, w), bool)
    valid[y0:y0 + rh, x0:x0 + rw] = True
    calibration = fit_pixel_calibration(normalised, np.zeros(maps.shape, bool),
                                        np.broadcast_to(valid, maps.shape), seed=config.seed)
    inside = normalised[:, y0:y0 + rh, x0:x0 + rw].reshape(len(maps), -1)
    scores = np.quantile(inside, FRAME_QUANTILE, axis=1)
    return offset, calibration, EmpiricalCalibration.fit_tailed(scores), scores


def learn_place(start_dir, train_images, cal_images, region, model_dir, work_dir, config=None,
                *, cutouts=None, provenance=None, overwrite=False, show_progress=True,
                bank=None, heldout_blocks=None, device='cpu'):
    """Adapt ``start_dir``'s pixel model to a place, calibrate it, write ``model_dir``.

    ``train_images`` / ``cal_images``: letterboxed uint8 frames of the place's
    normal driving (disjoint time blocks); ``region``: the frame's part of the
    input; ``heldout_blocks``: ``[(stamps_ns, positions in cal_images)]``, the
    held-out driving in time order, kept for the hazard flag's false-alarm
    rate (:class:`~...stream.hazard.AlarmLevels`); None for frames without
    time (the node then uses its fixed level). Returns the manifest written.

    Trains on ``device``; under ``torchrun`` every process trains and rank 0
    alone calibrates and writes (the others return None).
    """
    config = config or PlaceTrainingConfig()
    started = time.perf_counter()
    module, manifest = load_network(start_dir, branch='pixel')
    arch = dict(manifest['architecture'])
    void_index = arch.get('void_index')
    if void_index is None:
        raise TrainingError(f'{str(start_dir)!r} has no void class to learn anomalies with; '
                            'start from a model trained with --void-outliers (the shipped '
                            'pixel_erfnet has one).')
    if len(cal_images) < MIN_CALIBRATION_FRAMES:
        raise TrainingError(f'{len(cal_images)} held-out frames are too few to calibrate on '
                            f'(at least {MIN_CALIBRATION_FRAMES}); give more normal driving.')
    bank = bank or CutoutBank(config.sources, cutouts)
    state = adapt_to_place(module, void_index, arch['num_classes'], train_images, region,
                           work_dir, config, bank, show_progress, device)
    if not is_main_process():
        return None
    module.eval()
    positions = None if not heldout_blocks else [p for _, p in heldout_blocks]
    offset, calibration, frame_cal, frame_scores = calibrate_place(module, cal_images, region,
                                                                   config, positions)
    check = pasted_validation(module, cal_images, Paster(bank, PasteOptions()), region,
                              config.seed)
    out = {k: v for k, v in manifest.items() if k not in ('files', 'format', 'exports')}
    out.update({
        'name': Path(model_dir).name,
        'preprocessing': {**manifest['preprocessing'], 'crop': LETTERBOX},
        'calibration': calibration.to_dict(),
        'frame_calibration': frame_cal.to_dict(),
        'frame_quantile': FRAME_QUANTILE,
        'position_offset': {'grid': list(config.position_grid),
                            'quantile': config.position_quantile,
                            'values': [round(float(v), 6) for v in offset.ravel()]},
        'threshold': {'target_fpr': config.target_fpr},
        'training': {**dataclasses.asdict(config), 'recipe': 'place (pasted-anomaly exposure)',
                     'start_from': str(start_dir)},
        'metrics': {'held_out': check, 'history': state['history']},
        'provenance': {**(provenance or {}), 'frames': {'train': int(len(train_images)),
                                                        'calibration': int(len(cal_images))},
                       'region': [int(v) for v in region],
                       'wall_s': round(time.perf_counter() - started, 1),
                       **training_environment()},
    })
    if heldout_blocks:
        out['alarms'] = _alarms(heldout_blocks, frame_scores, frame_cal, config)
    weights = to_bytes({'config': arch, 'state_dict': module.state_dict()})
    weights_file = architecture_of(start_dir, manifest).weights_file
    write_model_dir(model_dir, out, {weights_file: weights}, overwrite=overwrite)
    # The graph the node runs on ONNX Runtime, and half-size storage (float32 arithmetic).
    export_model(model_dir)
    return store_fp16_weights(model_dir)


def _alarms(blocks, frame_scores, frame_cal, config):
    """Return the manifest's ``alarms``: held-out blocks' frame scores, the default flag's fit.

    ``frame_scores``: of the held-out frames, then of their other-run views
    (:func:`calibrate_place`); each block is kept twice, as driven and as
    seen from its other pose.
    """
    n = len(frame_scores) // 2
    stamps = [s for s, _ in blocks] * 2
    raw = [frame_scores[p] for _, p in blocks] + [frame_scores[n + p] for _, p in blocks]
    heldout = heldout_record(stamps, raw)
    hazard = HazardConfig()
    hysteresis = hazard.on_probability - hazard.off_probability
    on, details = on_probability_for_rate(heldout_sequences(heldout, frame_cal), hazard,
                                          config.target_false_alarms_per_hour, hysteresis)
    return {'target_false_alarms_per_hour': float(config.target_false_alarms_per_hour),
            'on_probability': float(on), 'hazard_filter': dataclasses.asdict(hazard),
            'fit': details, 'heldout': heldout,
            'heldout_views': 'each block as driven, then with one pose change'}


def train_pixel_from_bags(bags, model_dir, work_dir, config=None, *, init_from=None,
                          cutouts=None, overwrite=False, show_progress=True, command=None,
                          device='cpu'):
    """``train pixel --bag``: learn a place from its normal bags; return the manifest.

    On ``device``; under ``torchrun`` the processes of rank > 0 return None.

    Raises:
        BagError: a bag without an image topic or a corrupt bag (named).
        BagFramesError: images changing size, or too little driving.
        TrainingError: a starting model without a void class, bad options.

    """
    config = config or PlaceTrainingConfig()
    started = time.perf_counter()
    if Path(model_dir).exists() and not overwrite:
        raise TrainingError(f'{str(model_dir)!r} exists; give --overwrite to replace it.')
    start = Path(init_from) if init_from else _shipped()
    shape = model_input_shape(load_manifest(start, branch='pixel')['preprocessing'])
    bank = CutoutBank(config.sources, cutouts)      # bad cut-outs fail before reading bags
    frames, extract_s = cached_bag_frames([str(b) for b in bags], shape, work_dir,
                                          topic=config.topic, every=config.every,
                                          show_progress=show_progress)
    check_patrol_length(frames, MIN_PLACE_S)
    sizes = {tuple(s['resolution']) for s in frames.sources if s['resolution']}
    if len(sizes) > 1:
        from ...data.bag_frames import BagFramesError
        raise BagFramesError('The bags come from cameras of different sizes '
                             f'({", ".join(f"{w}x{h}" for w, h in sorted(sizes))}); one model '
                             'learns one camera: train one place model per camera.')
    width, height = sizes.pop()
    train, val, blocks = time_block_split(frames, config.block_s)
    position = {int(i): k for k, i in enumerate(val)}
    heldout = [(frames.stamps[b], np.array([position[int(i)] for i in b])) for b in blocks]
    region = content_box(height, width, shape)
    provenance = {'bags': [s['bag'] for s in frames.sources], 'topics':
                  sorted({s['topic'] for s in frames.sources}), 'resolution': [width, height],
                  'driving_s': round(frames.duration_s, 1), 'extract_s': round(extract_s, 1),
                  'command': command}
    manifest = learn_place(start, frames.images[train], frames.images[val], region, model_dir,
                           work_dir, config, provenance=provenance, overwrite=overwrite,
                           show_progress=show_progress, bank=bank, heldout_blocks=heldout,
                           device=device)
    if manifest is not None:
        manifest['provenance']['total_wall_s'] = round(time.perf_counter() - started, 1)
    return manifest


def _shipped():
    from . import SHIPPED_MODEL
    from ...runtime.manifest import shipped_model_dir
    return shipped_model_dir(SHIPPED_MODEL)
