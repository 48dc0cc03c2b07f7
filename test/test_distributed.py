"""Training under torchrun: 2 gloo processes take the steps one process takes on the same batch."""

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
    done = subprocess.run(args + [str(HERE / 'ddp_diffusion.py')] + [
        str(tmp_path / 'data'), str(tmp_path / name), str(tmp_path / f'work_{name}')],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return load_checkpoint(tmp_path / f'work_{name}' / 'checkpoint.pt')


def test_two_gloo_processes_take_the_steps_of_one_process(tiny_pixel_data, tmp_path):
    """The same global batch: the first steps' losses and the weights are equal."""
    if not TORCHRUN.exists():
        pytest.skip('torchrun is not installed beside this Python')
    os.symlink(tiny_pixel_data, tmp_path / 'data')
    one = _run([sys.executable], tmp_path, 'one')
    two = _run([str(TORCHRUN), '--standalone', '--nproc_per_node', '2'], tmp_path, 'two')
    # The same losses (each process's half averaged) and the same weights after 4 steps.
    losses = [(h['step'], h['loss']) for h in one['state']['history']]
    assert [s for s, _ in losses] == [2, 4]
    assert [h['loss'] for h in two['state']['history']] == pytest.approx(
        [loss for _, loss in losses], rel=1e-5)
    for key, value in one['model'].items():
        torch.testing.assert_close(two['model'][key], value, rtol=1e-4, atol=1e-6, msg=key)
    moved = [k for k, v in one['model'].items() if v.is_floating_point()]
    assert moved
    # Only rank 0 wrote the model directory, as one process does.
    assert sorted(p.name for p in (tmp_path / 'two').iterdir()) == sorted(
        p.name for p in (tmp_path / 'one').iterdir())


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
