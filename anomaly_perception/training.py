"""What every training loop shares: seeds, resumable checkpoints, progress, provenance.

A training run owns an output directory. After every epoch it writes
``checkpoint.pt`` atomically with everything needed to continue exactly
where it stopped: model and optimiser state, scheduler, epoch, best score,
history, and the random generators (torch and numpy). Started again with
the same output directory, a run resumes from that checkpoint and produces
the same weights as an uninterrupted run.
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
import datetime
import io
import os
from pathlib import Path
import platform
import random
import sys

import numpy as np
import torch

from . import __version__
from .errors import AnomalyPerceptionError
from .io.files import atomic_write_bytes

CHECKPOINT = 'checkpoint.pt'


class TrainingError(AnomalyPerceptionError):
    """Training cannot start or continue (bad data, bad options, bad checkpoint)."""


@dataclasses.dataclass
class Distributed:
    """This process's place in a ``torchrun`` job (one process alone by default).

    Every process draws the same global batch from the same generators, and
    trains on its ``shard`` of it under DistributedDataParallel, which
    averages the gradients: with equal shards, the steps are those of one
    process on the whole batch. Only the ``main`` process (rank 0) writes
    checkpoints, samples and the model; every process resumes from the same
    checkpoint.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = 'cpu'
    backend: str = ''

    @property
    def main(self):
        return self.rank == 0

    def check_batch(self, batch_size):
        """Raise TrainingError unless ``batch_size`` splits into equal shards."""
        if batch_size % self.world:
            raise TrainingError(f'--batch-size {batch_size} (the global batch) must be a '
                                f'multiple of the {self.world} processes.')

    def shard(self, n):
        """Return this process's slice of a global batch of ``n``."""
        per = n // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def part(self, n):
        """Return ``(slice, weight)``: this process's part of a global batch of ``n``.

        Any ``n``: the first ``n % world`` processes take one sample more.
        Multiplying this process's mean loss by ``weight`` (its share of the
        batch times ``world``) makes DistributedDataParallel's average of the
        gradients the gradient of the mean over the whole batch. A process
        left without a sample (``n < world``) takes the first one with weight
        0, so that every process still joins the gradients' reduction.
        """
        per, extra = divmod(n, self.world)
        size = per + (self.rank < extra)
        if size == 0:
            return slice(0, 1), 0.0
        start = self.rank * per + min(self.rank, extra)
        return slice(start, start + size), size * self.world / n

    def local(self, n, *tensors):
        """Return ``(weight, tensors...)``: each tensor's part (:meth:`part`) on the device."""
        part, weight = self.part(n)
        return (weight, *(t[part].to(self.device) for t in tensors))

    def wrap(self, model):
        """Return ``model`` under DistributedDataParallel (itself when alone).

        Parts a training leaves unused (an ERFNet encoder's 1/8 head inside
        a larger network, a frozen segmenter) are found at each step
        (``find_unused_parameters``).
        """
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.local_rank] if self.device.startswith('cuda') else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def place(self, model):
        """Move ``model`` to the device; return it.

        Several processes on GPUs share their BatchNorm statistics
        (SyncBatchNorm), so they normalise over the whole batch as one
        process would. PyTorch synchronises BatchNorm on GPUs only: on CPU
        processes (gloo) each normalises its own part of the batch.
        """
        model.to(self.device)
        if self.world > 1 and self.device.startswith('cuda'):
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def prepare(self, model):
        """Place ``model`` (:meth:`place`); return the module to train it through."""
        return self.wrap(self.place(model))

    def save(self, checkpoint, config, model, optimizer, rng, state, best=None):
        """Write the resumable ``checkpoint`` (rank 0 alone), and ``best`` first when given.

        ``best``: the path of the best weights so far (``{'model': ...}``),
        written when this epoch improved on them. Tensors go to the CPU.
        """
        if not self.main:
            return
        if best is not None:
            save_checkpoint(best, {'model': cpu_state(model)})
        save_checkpoint(checkpoint, {'config': config, 'model': cpu_state(model),
                                     'optimizer': optimizer.state_dict(),
                                     'rng': rng_state(rng), 'state': state})

    def mean(self, value):
        """Return the mean of ``value`` over the processes (a float)."""
        if self.world == 1:
            return float(value)
        import torch.distributed as dist
        t = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def barrier(self):
        if self.world > 1:
            import torch.distributed as dist
            dist.barrier()

    def close(self):
        """Leave the process group (after the last collective)."""
        if self.world > 1:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()


def distributed(device='cpu'):
    """Join the job ``torchrun`` started (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), if any.

    NCCL on CUDA (each process on GPU ``LOCAL_RANK``), gloo on CPUs. Returns
    a :class:`Distributed` (one process alone without torchrun).
    """
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise TrainingError(f'--device {device}: PyTorch sees no CUDA GPU here (torch '
                            f'{torch.__version__}); train with --device cpu.')
    world = int(os.environ.get('WORLD_SIZE', '1') or 1)
    if world <= 1:
        return Distributed(device=str(device))
    import torch.distributed as dist
    rank, local = int(os.environ['RANK']), int(os.environ.get('LOCAL_RANK', '0'))
    backend = 'gloo'
    if str(device).startswith('cuda'):
        torch.cuda.set_device(local)
        device, backend = f'cuda:{local}', 'nccl'
    if not dist.is_initialized():
        # Rank 0 alone calibrates and writes after training while the others wait.
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=2))
    return Distributed(rank, world, local, str(device), backend)


def is_main_process():
    """Return False in the processes of rank > 0 of a ``torchrun`` job (they write nothing)."""
    return int(os.environ.get('RANK', '0') or 0) == 0


def seed_everything(seed):
    """Seed Python, numpy and torch; return a numpy Generator for data order."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def to_bytes(obj):
    """``torch.save`` into bytes (for atomic writes)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_checkpoint(path, state):
    atomic_write_bytes(path, to_bytes(state))


def load_checkpoint(path):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        TrainingError: the file is unreadable or corrupt (names the file).

    """
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:  # noqa: B902 - pickle, zip and torch errors alike
        raise TrainingError(f'Checkpoint {str(path)!r} cannot be loaded ({err}); delete it '
                            'to start this training from scratch.') from None


def load_resumable(path, config):
    """Return the checkpoint at ``path`` to resume from, or None when there is none.

    ``config``: the options of this run as a dict; a checkpoint written with
    other options is refused, so a run never continues on another recipe.

    Raises:
        TrainingError: unreadable, or written with other options (names the file).

    """
    path = Path(path)
    if not path.is_file():
        return None
    saved = load_checkpoint(path)
    if saved.get('config') != config:
        raise TrainingError(f'{str(path)!r} was written with other options '
                            f'({saved.get("config")}); use another work directory or '
                            'delete it to start over.')
    return saved


def rng_state(gen):
    state = {'numpy': gen.bit_generator.state, 'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def restore_rng(gen, state):
    gen.bit_generator.state = state['numpy']
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


def module_device(module):
    """Return the device of ``module``'s first parameter (the CPU when it has none)."""
    for p in module.parameters():
        return p.device
    return torch.device('cpu')


def cpu_state(module):
    """Return ``module``'s state dict with every tensor on the CPU (for the files it ships)."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def finish_jobs(wait=True):
    """Leave a ``torchrun`` job's process group, if this process joined one.

    ``wait``: first wait for the other processes (rank 0 writing); a process
    that failed leaves at once, so that torchrun stops the job.
    """
    dist = sys.modules.get('torch.distributed')
    if dist is not None and dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def load_erfnet_encoder(pixel_model_dir):
    """Return the ERFNet encoder of a pixel model, with or without a failure head.

    Both ``erfnet_pixel`` (train pixel) and ``erfnet_pixel_fsnet`` (train
    failure, whose segmenter was trained on with the head) carry one; other
    models raise :class:`TrainingError` naming the directory.
    """
    from .runtime.network import load_network
    module, manifest = load_network(pixel_model_dir)
    kind = (manifest.get('architecture') or {}).get('type')
    if kind == 'erfnet_pixel':
        return module.network.encoder
    if kind == 'erfnet_pixel_fsnet':
        return module.segmenter.network.encoder
    raise TrainingError(f'{str(pixel_model_dir)!r} is a {kind!r} model, not an ERFNet pixel '
                        'model (erfnet_pixel or erfnet_pixel_fsnet).')


def progress(total, desc, enabled=True):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit='epoch', disable=not enabled, dynamic_ncols=True)


class PlateauScheduler:
    """Divide the learning rate by ``factor`` after ``patience`` epochs without improvement.

    A small, state-dict-able version of ReduceLROnPlateau (mode 'min').
    """

    def __init__(self, optimizer, factor=0.1, patience=10, min_lr=1e-6):
        self.optimizer = optimizer
        self.factor = factor
        self.patience = patience
        self.min_lr = min_lr
        self.best = float('inf')
        self.bad_epochs = 0

    def step(self, value):
        if value < self.best - 1e-12:
            self.best = value
            self.bad_epochs = 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            for group in self.optimizer.param_groups:
                group['lr'] = max(group['lr'] * self.factor, self.min_lr)
            self.bad_epochs = 0

    @property
    def lr(self):
        return self.optimizer.param_groups[0]['lr']

    def state_dict(self):
        return {'best': self.best, 'bad_epochs': self.bad_epochs}

    def load_state_dict(self, state):
        self.best = state['best']
        self.bad_epochs = state['bad_epochs']


def training_environment():
    """Return the date and software/machine facts a manifest's provenance records."""
    return {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'package_version': __version__, 'torch': torch.__version__,
            'python': sys.version.split()[0], 'machine': platform.machine(),
            'cpu_threads': torch.get_num_threads(), 'cpus': os.cpu_count()}


def poly_lr(base, epoch, epochs, power=0.9):
    """Return the poly schedule's learning rate: ``base * (1 - epoch / epochs) ** power``."""
    return base * (1.0 - epoch / epochs) ** power


def set_learning_rate(optimizer, lr):
    """Set every parameter group of ``optimizer`` to ``lr``; return ``lr``."""
    for group in optimizer.param_groups:
        group['lr'] = lr
    return lr


def shuffled_batches(rng, n, batch_size):
    """Yield one epoch's batches of indices into ``n`` samples (int64 tensors), shuffled.

    The permutation is drawn from ``rng`` when the first batch is asked for.
    """
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield torch.from_numpy(order[start:start + batch_size])
