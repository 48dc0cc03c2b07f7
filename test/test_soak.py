"""The soak of the nodes, short: benchmarks/soak_nodes.py for 2 minutes (60 in PERFORMANCE)."""

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

import json
from pathlib import Path
import subprocess
import sys

from anomaly_perception.cli import main
from conftest import corridor_view
from conftest import write_image_bag
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]
SCRIPT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'soak_nodes.py'


@pytest.fixture(scope='module')
def small_place(tiny_void_model, tmp_path_factory):
    """Learn a place for the monitor (its flag's levels; the nodes run the shipped models)."""
    root = tmp_path_factory.mktemp('soak_place')
    rng = np.random.default_rng(0)
    write_image_bag(root / 'normal', [corridor_view(rng, 60, 80, 4 * np.sin(i / 9))
                                      for i in range(140)], period_ns=500_000_000)
    assert main(['train', 'place', '--bag', str(root / 'normal'), '--out', str(root / 'place'),
                 '--work', str(root / 'work'), '--init-from', str(tiny_void_model),
                 '--pixel-steps', '2', '--frame-epochs', '2', '--density-epochs', '4']) == 0
    return root / 'place'


def test_two_minutes_at_10_hz_lose_no_frame_and_grow_no_memory(ros_env, small_place, tmp_path):
    out = tmp_path / 'soak'
    done = subprocess.run(
        [sys.executable, str(SCRIPT), '--minutes', '2', '--out', str(out), '--place',
         str(small_place), '--window-s', '30', '--sample-s', '2', '--warmup-s', '30',
         '--max-growth', '10', '--settle-s', '8', '--domain', str(ros_env.domain_id)],
        env=ros_env.env, capture_output=True, text=True, timeout=330)
    report = json.loads((out / 'soak.json').read_text())
    message = done.stdout[-3000:] + done.stderr[-3000:]
    checks = report['checks']
    # Memory within 10 % of its level after warm-up, every frame accounted for (the corrupt
    # ones as malformed), no node died and each exits 0 on SIGINT.
    assert checks['memory']['passed'], (report['memory'], message)
    assert checks['accounted']['passed'], (report['accounting'], message)
    assert checks['alive']['passed'], (report['exit_codes'], message)
    assert done.returncode == 0, message
    camera = report['camera']
    assert camera['sent'] >= 0.9 * 120 * 10 and camera['corrupt'] == camera['sent'] // 100
    for name in ('frame', 'pixel'):
        acc = report['accounting'][name]
        assert acc['processed'] > 0 and acc['unaccounted'] == 0
        assert camera['corrupt'] - acc['dropped'] <= acc['malformed'] <= camera['corrupt']
    assert sum(w['monitor']['n'] for w in report['windows']) > 0     # the fused flag decided
    assert len(report['windows']) >= 4 and (out / 'soak.png').stat().st_size > 0
