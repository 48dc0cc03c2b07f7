"""Training under torchrun: 2 gloo processes take the steps one process takes on the same batch.

Every training command accepts ``--device``; a GPU cannot be tested here
(no CUDA on the test machines): ``--device cuda`` is checked to fail
clearly, and the CPU runs check what the device code shares with it (the
parts of each batch, rank 0 writing, the models back on the CPU).
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

import os
from pathlib import Path
import subprocess
import sys

from anomaly_perception.training import Distributed
from anomaly_perception.training import distributed
from anomaly_perception.training import load_checkpoint
from anomaly_perception.training import TrainingError
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
TORCHRUN = Path(sys.executable).parent / 'torchrun'


def _run(args, tmp_path, name):
    env = {k: v for k, v in os.environ.items()
           if k not in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env['OMP_NUM_THREADS'] = '1'
    env['PYTHONPATH'] = os.pathsep.join([str(HERE), env.get('PYTHONPATH', '')])
    done = subprocess.run(args + [str(HERE / 'ddp_train.py'), str(tmp_path / 'data'),
                                  str(tmp_path / name)],
                          env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp_path / name


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob('*')
                  if p.is_file() and 'cache' not in p.parts)


def _same_weights(one, two):
    floats = [k for k, v in one.items() if v.is_floating_point()]
    assert floats
    for key in floats:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-6, msg=key)


def test_two_gloo_processes_take_the_steps_of_one_process(tiny_pixel_data, tmp_path):
    """Check the same global batches: the losses and the weights are equal.

    The DDPM, the autoencoder, Real-NVP+OE and the classifier (their last
    batches split unevenly); ERFNet, FSNet, the mask-classification
    segmenter and the promptable segmenter (BatchNorm, parts left unused)
    run, with rank 0 writing.
    """
    if not TORCHRUN.exists():
        pytest.skip('torchrun is not installed beside this Python')
    os.symlink(tiny_pixel_data, tmp_path / 'data')
    one = _run([sys.executable], tmp_path, 'one')
    two = _run([str(TORCHRUN), '--standalone', '--nproc_per_node', '2'], tmp_path, 'two')
    ckpt = {name: [load_checkpoint(root / name / 'checkpoint.pt') for root in (one, two)]
            for name in ('work_diffusion', 'autoencoder', 'density', 'bclass', 'work_pixel')}
    # The DDPM: the same losses (each process's half averaged) and weights after 4 steps.
    a, b = ckpt['work_diffusion']
    assert [h['step'] for h in a['state']['history']] == [2, 4]
    assert [h['loss'] for h in b['state']['history']] == pytest.approx(
        [h['loss'] for h in a['state']['history']], rel=1e-5)
    _same_weights(a['model'], b['model'])
    # The frame branch: 3 batches an epoch, the last one 5 frames (3 + 2) or 5 embeddings.
    for name, key, column in (('autoencoder', 'model', 'train_loss'),
                              ('density', 'flow', 'train_loss'), ('bclass', 'model', 'val_bce')):
        a, b = ckpt[name]
        assert len(a['state']['history']) == 2
        assert [h[column] for h in b['state']['history']] == pytest.approx(
            [h[column] for h in a['state']['history']], rel=1e-5), name
        _same_weights(a[key], b[key])
    # ERFNet normalises each process's part of a batch on CPUs (SyncBatchNorm is GPU-only):
    # it trains both stages and writes what one process writes.
    a, b = ckpt['work_pixel']
    assert b['state']['stage'] == 2 and [h['stage'] for h in b['state']['history']] == [
        'encoder', 'decoder']
    for root in (one, two):
        assert load_checkpoint(root / 'work_failure' / 'checkpoint.pt')['state']['epoch'] == 1
        outliers = load_checkpoint(root / 'work_maskcls' / 'outlier_checkpoint.pt')
        assert outliers['state']['epoch'] == 1
        promptable = load_checkpoint(root / 'work_promptable' / 'checkpoint.pt')['state']
        assert promptable['epoch'] == 1 and np.isfinite(promptable['history'][0]['loss'])
    # Only rank 0 wrote, the same files as one process.
    assert _files(two) == _files(one)
    assert not list(two.rglob('*.partial'))


def test_every_training_command_takes_a_device(capsys):
    from anomaly_perception.cli import build_parser
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices['train']._actions
                 if a.dest == 'train_command')
    assert len(train.choices) >= 10
    for name, sub in train.choices.items():
        options = {o for a in sub._actions for o in a.option_strings}
        assert '--device' in options, name


def test_a_cuda_device_without_a_gpu_fails_clearly(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(TrainingError, match='--device cuda: PyTorch sees no CUDA GPU'):
        distributed('cuda')
    # From the command line: before any data is read (the dataset does not even exist).
    from anomaly_perception.cli import main
    assert main(['train', 'autoencoder', '--data', str(tmp_path / 'none'), '--out',
                 str(tmp_path / 'ae'), '--device', 'cuda']) == 1
    assert 'PyTorch sees no CUDA GPU here' in capsys.readouterr().err
    assert not (tmp_path / 'ae').exists()


def test_one_process_alone_and_the_shards_of_a_batch(monkeypatch):
    for key in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)
    alone = distributed('cpu')
    assert (alone.rank, alone.world, alone.main) == (0, 1, True)
    model = torch.nn.Linear(2, 2)
    assert alone.wrap(model) is model and alone.mean(3.5) == 3.5
    assert alone.shard(8) == slice(0, 8)
    job = Distributed(rank=1, world=4)
    assert job.shard(8) == slice(2, 4) and not job.main
    with pytest.raises(TrainingError, match='multiple of the 4 processes'):
        job.check_batch(6)
    # Uneven batches: the first n % world processes take one more; the weights sum to world.
    parts = [Distributed(rank=r, world=4).part(10) for r in range(4)]
    assert [p for p, _ in parts] == [slice(0, 3), slice(3, 6), slice(6, 8), slice(8, 10)]
    assert [w for _, w in parts] == pytest.approx([1.2, 1.2, 0.8, 0.8])
    # Fewer samples than processes: the idle one joins with weight 0.
    assert Distributed(rank=3, world=4).part(2) == (slice(0, 1), 0.0)
    assert Distributed(rank=1, world=4).part(2) == (slice(1, 2), 2.0)


def test_a_training_command_under_torchrun(tiny_pixel_data, tmp_path):
    """Run ``train frame`` from the command line in 2 processes: rank 0 writes and reports."""
    if not TORCHRUN.exists():
        pytest.skip('torchrun is not installed beside this Python')
    env = {k: v for k, v in os.environ.items()
           if k not in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env['OMP_NUM_THREADS'] = '1'
    cli = Path(sys.executable).parent / 'anomaly-perception'
    done = subprocess.run(
        [str(TORCHRUN), '--standalone', '--nproc_per_node', '2', '--no-python', str(cli),
         'train', 'frame', '--data', str(tiny_pixel_data), '--out', str(tmp_path / 'model'),
         '--work', str(tmp_path / 'work'), '--ae-epochs', '1', '--density-epochs', '2'],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count('written ') == 1
    from anomaly_perception.runtime.manifest import load_manifest
    manifest = load_manifest(tmp_path / 'model', branch='frame')
    assert manifest['provenance']['training']['density_best_epoch'] >= 1
    assert not list(tmp_path.rglob('*.partial'))
