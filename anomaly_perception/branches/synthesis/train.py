"""``train diffusion``: the synthesis branch's DDPM of the normal world (paper 001).

Normal frames only: a dataset's ``train_set`` frames labelled normal
(``--data``), or every frame of recorded bags (``--bag``: a patrol known to
be normal), centre-cropped and resized to the model input as every branch
does, scaled to [-1, 1], flipped left-right at random. The standard
epsilon loss ``|| eps - eps(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t) ||^2``
with ``t`` uniform; AdamW with a linear warm-up, gradients clipped to norm
1, an exponential moving average of the weights (the model shipped).

Every ``checkpoint_every`` steps a resumable checkpoint (weights, EMA,
optimiser, random state, history) is written atomically to the work
directory; every ``sample_every`` steps the EMA model samples a grid
(unguided, on a respaced chain) to ``work/samples/step_NNNNNN.png``, and a
held-out loss on normal validation frames (fixed noise and timesteps) is
recorded. The model directory holds the EMA weights (fp16 when
``fp16_weights``), the manifest and the last sample grid.
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

from .ddpm import build_scheduler
from .ddpm import DEFAULT_GUIDANCE
from .ddpm import DEFAULT_SCHEDULER
from .ddpm import DEFAULT_UNET
from .ddpm import downsampling
from .ddpm import EpsilonModel
from .ddpm import MODEL_FILE
from .ddpm import to_model_range
from .ddpm import to_uint8
from ...io.files import atomic_write_bytes
from ...runtime.manifest import write_model_dir
from ...runtime.preprocess import as_shape
from ...training import CHECKPOINT
from ...training import load_resumable
from ...training import restore_rng
from ...training import rng_state
from ...training import save_checkpoint
from ...training import seed_everything
from ...training import to_bytes
from ...training import TrainingError

SAMPLES = 'samples.png'


@dataclasses.dataclass
class DiffusionTrainingConfig:
    """Options of ``train diffusion`` (module docs)."""

    input_shape: tuple = (64, 112)
    steps: int = 5000
    batch_size: int = 16
    lr: float = 2e-4
    warmup_steps: int = 200
    weight_decay: float = 0.0
    ema_decay: float = 0.995
    every: int = 1
    checkpoint_every: int = 250
    sample_every: int = 1000
    sample_steps: int = 50
    samples: int = 8
    val_frames: int = 64
    fp16_weights: bool = True
    unet: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_UNET))
    scheduler: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_SCHEDULER))
    guidance: dict = dataclasses.field(default_factory=lambda: dict(DEFAULT_GUIDANCE))
    seed: int = 0

    def architecture(self):
        return {'type': 'ddpm_unet', 'input_shape': list(as_shape(self.input_shape)),
                'unet': dict(self.unet), 'scheduler': {**DEFAULT_SCHEDULER, **self.scheduler}}

    def check(self):
        height, width = as_shape(self.input_shape)
        factor = downsampling(self.architecture())
        if height % factor or width % factor:
            raise TrainingError(f'input {height}x{width}: both sides must be divisible by '
                                f'{factor} (the UNet halves them {factor.bit_length() - 1} '
                                'times).')
        for name in ('steps', 'batch_size', 'every', 'checkpoint_every', 'sample_every',
                     'samples'):
            if getattr(self, name) < 1:
                raise TrainingError(f'{name} must be at least 1, got {getattr(self, name)}.')
        if not 0.0 <= self.ema_decay < 1.0:
            raise TrainingError(f'ema_decay {self.ema_decay}: in [0, 1).')


def image_grid(images, columns=4):
    """Tile uint8 ``[N, H, W, 3]`` images into one (rows of ``columns``, 2 px gaps)."""
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + 2) - 2, columns * (w + 2) - 2, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = img
    return grid


def png_bytes(rgb):
    """Encode a uint8 RGB image as PNG bytes."""
    ok, data = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise TrainingError(f'cannot encode a {rgb.shape} image as PNG.')
    return data.tobytes()


def write_png(path, rgb):
    """Write a uint8 RGB image as a PNG, atomically."""
    atomic_write_bytes(path, png_bytes(rgb))


def load_normal_frames(data=None, bags=(), shape=(64, 112), *, every=1, topic=None,
                       show_progress=True):
    """Return ``(train, validation)`` uint8 frames of the normal world.

    ``data``: a dataset's normal ``train_set`` / ``validation_set`` frames;
    ``bags``: every frame (every ``every``-th), the last 10 % held out.
    """
    if (data is None) == (not bags):
        raise TrainingError('give a dataset (--data) or bags (--bag), one of the two.')
    if data is not None:
        from ...data.hazards import HazardsDataset
        ds = HazardsDataset(data)
        train = ds.records('train_set', anomalous=False)[::every]
        val = ds.records('validation_set', anomalous=False)
        if not train:
            raise TrainingError(f'{str(data)!r} has no normal train_set frames.')
        return (ds.load_images(train, shape, progress=show_progress),
                ds.load_images(val, shape, progress=show_progress) if val else None)
    from ...data.bag_frames import extract_bag_frames
    frames = extract_bag_frames([str(b) for b in bags], shape, topic=topic, every=every,
                                show_progress=show_progress, crop='center_aspect').images
    if len(frames) < 2:
        raise TrainingError(f'the bags hold {len(frames)} frame(s): too few to train on.')
    split = max(1, int(round(0.9 * len(frames))))
    return frames[:split], (frames[split:] if split < len(frames) else None)


def _ema_update(ema, model, decay):
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def _fixed_validation(val, scheduler, count, seed):
    """Held-out frames with fixed noise and timesteps: a loss comparable across steps."""
    if val is None or not len(val):
        return None
    gen = torch.Generator().manual_seed(seed + 1)
    idx = torch.randperm(len(val), generator=gen)[:count].numpy()
    x0 = to_model_range(val[np.sort(idx)])
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(x0),), generator=gen)
    return scheduler.add_noise(x0, noise, t), noise, t


def validation_loss(model, fixed, batch=16):
    if fixed is None:
        return None
    x_t, noise, t = fixed
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x_t), batch):
            total += F.mse_loss(model(x_t[i:i + batch], t[i:i + batch]),
                                noise[i:i + batch], reduction='sum').item()
    return total / noise.numel()


def sample_grid(model, scheduler, config, shape):
    """Unguided samples of ``model`` on a respaced chain: a uint8 grid."""
    from .detector import GuidanceConfig
    from .detector import guided_edit
    model.eval()
    blank = torch.zeros((config.samples, 3, *shape))
    with torch.no_grad():
        x = guided_edit(model, scheduler, blank,
                        GuidanceConfig('none', 0.0, steps=config.sample_steps, seed=config.seed))
    return image_grid(to_uint8(x))


def train_diffusion_model(out_dir, work_dir, config, *, data=None, bags=(), topic=None,
                          overwrite=False, command=None, show_progress=True, device='cpu'):
    """Train the DDPM (resumable from ``work_dir``) and write its model directory.

    Under ``torchrun --nproc_per_node N`` the global batch (``batch_size``)
    is split into N equal parts, one per process (see
    :class:`~...training.Distributed`).

    Returns:
        The manifest written (None in the other processes of a torchrun job).

    Raises:
        TrainingError: bad options, no normal frames, a checkpoint of other options.

    """
    from tqdm import tqdm

    from ...training import distributed
    from ...training import training_environment
    config.check()
    job = distributed(device)
    job.check_batch(config.batch_size)
    device = job.device
    out, work = Path(out_dir), Path(work_dir)
    if out.exists() and not overwrite:
        raise TrainingError(f'{str(out)!r} exists; pass --overwrite to replace it.')
    started = time.perf_counter()
    shape = as_shape(config.input_shape)
    train, val = load_normal_frames(data, bags, shape, every=config.every, topic=topic,
                                    show_progress=show_progress)
    arch = config.architecture()
    from .ddpm import build_unet
    rng = seed_everything(config.seed)
    model = EpsilonModel(build_unet(arch, shape)).to(device)
    ema = EpsilonModel(build_unet(arch, shape)).to(device)
    ema.load_state_dict(model.state_dict())
    scheduler = build_scheduler(arch)
    trained = job.wrap(model)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state = {'step': 0, 'history': [], 'train_s': 0.0}
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / CHECKPOINT
    saved = load_resumable(ckpt, dataclasses.asdict(config))
    if saved is not None:
        model.load_state_dict(saved['model'])
        ema.load_state_dict(saved['ema'])
        opt.load_state_dict(saved['optimizer'])
        restore_rng(rng, saved['rng'])
        state = saved['state']
    fixed = _fixed_validation(val, scheduler, config.val_frames, config.seed)
    total_t = scheduler.config.num_train_timesteps
    bar = tqdm(total=config.steps, initial=state['step'], unit='step', desc='train diffusion',
               disable=not (show_progress and job.main), dynamic_ncols=True)
    part = job.shard(config.batch_size)
    running, count, tick = 0.0, 0, time.perf_counter()
    while state['step'] < config.steps:
        step = state['step']
        model.train()
        for group in opt.param_groups:
            group['lr'] = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
        idx = rng.integers(0, len(train), config.batch_size)
        x0 = to_model_range(train[idx])
        flip = torch.from_numpy(rng.random(len(idx)) < 0.5)
        x0[flip] = x0[flip].flip(-1)
        noise = torch.randn_like(x0)
        t = torch.randint(0, total_t, (len(idx),))
        # Every process draws the whole batch (the same generators), then trains on its part.
        x0, noise, t = x0[part].to(device), noise[part].to(device), t[part].to(device)
        loss = F.mse_loss(trained(scheduler.add_noise(x0, noise, t), t), noise)
        if not torch.isfinite(loss):
            raise TrainingError(f'the loss is {loss.item()} at step {step + 1}: lower --lr.')
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        _ema_update(ema, model, config.ema_decay if step >= config.warmup_steps else 0.0)
        state['step'] = step + 1
        running, count = running + job.mean(loss.item()), count + 1
        bar.update(1)
        bar.set_postfix(loss=f'{running / count:.4f}')
        if state['step'] % config.sample_every == 0 or state['step'] == config.steps:
            row = {'step': state['step'], 'loss': running / count,
                   'val_loss': validation_loss(ema, fixed) if job.main else None}
            state['history'].append(row)
            running, count = 0.0, 0
            if job.main:
                write_png(work / 'samples' / f'step_{state["step"]:06d}.png',
                          sample_grid(ema, scheduler, config, shape))
        if state['step'] % config.checkpoint_every == 0 or state['step'] == config.steps:
            now = time.perf_counter()
            state['train_s'] += now - tick
            tick = now
            if job.main:
                save_checkpoint(ckpt, {'config': dataclasses.asdict(config),
                                       'model': model.state_dict(), 'ema': ema.state_dict(),
                                       'optimizer': opt.state_dict(), 'rng': rng_state(rng),
                                       'state': state})
            job.barrier()
    bar.close()
    if not job.main:
        job.barrier()           # rank 0 writes the model directory
        return None
    weights = {k: (v.half() if config.fp16_weights and v.is_floating_point() else v).cpu()
               for k, v in ema.state_dict().items()}
    png = png_bytes(sample_grid(ema, scheduler, config, shape))
    manifest = {
        'name': out.name, 'branch': 'synthesis', 'architecture': arch,
        'preprocessing': {'input_shape': list(shape), 'crop': 'center_aspect',
                          'resize': 'area', 'scale': '1/127.5 - 1', 'channels': 'rgb'},
        'guidance': dict(config.guidance),
        'training': dataclasses.asdict(config),
        'metrics': {'history': state['history'], 'train_s': state['train_s'],
                    'frames': len(train), 'validation_frames': 0 if val is None else len(val),
                    'parameters': sum(p.numel() for p in ema.parameters())},
        'provenance': {'data': str(data) if data is not None else None,
                       'bags': [str(b) for b in bags], 'command': command,
                       'wall_s': time.perf_counter() - started, **training_environment()},
    }
    if job.world > 1:
        manifest['provenance'].update(processes=job.world, backend=job.backend)
    files = {MODEL_FILE: to_bytes({'config': arch, 'state_dict': weights}), SAMPLES: png}
    written = write_model_dir(out, manifest, files, overwrite=overwrite)
    job.barrier()
    return written
