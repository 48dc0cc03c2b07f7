"""``evaluate bags``: many bags on Ray, pooled as if merged by hand from serial replays."""

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
import subprocess
import sys

from anomaly_perception.cli import main
from anomaly_perception.data.synthetic.patrol import PatrolConfig
from anomaly_perception.data.synthetic.patrol import write_patrol_bag
from anomaly_perception.errors import UsageError
from anomaly_perception.fleet.evaluate import bag_names
from anomaly_perception.fleet.evaluate import read_bag_list
from anomaly_perception.io.bags import BagReader
from anomaly_perception.io.messages import stamp_to_ns
from anomaly_perception.metrics.binary import binary_curve
from anomaly_perception.metrics.binary import BinaryScoreAccumulator
import numpy as np
import pytest
from sklearn.metrics import average_precision_score
from sklearn.metrics import roc_auc_score

ray = pytest.importorskip('ray')
N_BAGS = 8


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('fleet_bags')
    paths = []
    for k in range(N_BAGS):
        # 8 s at 5 Hz, lights off for a while in most of them: normal frames on both sides.
        config = PatrolConfig(seconds=8.0, fps=5, resolution=(192, 108), anomaly_rate=0.5,
                              types='darkness', seed=k)
        write_patrol_bag(root / f'run{k}', config, progress=False)
        paths.append(root / f'run{k}')
    (root / 'corrupt').mkdir()
    (root / 'corrupt' / 'corrupt.mcap').write_bytes(b'\x89MCAP0\r\n' + b'\x00garbage' * 64)
    return paths, root / 'corrupt'


@pytest.fixture(scope='module')
def ray_session():
    yield
    if ray.is_initialized():
        ray.shutdown()


def _by_hand(bag, replay_dir):
    """One serial replay's raw scores and flags from its output bag, labels from the input."""
    with BagReader(bag) as reader:
        labels = {stamp_to_ns(m.header.stamp): m.results[0].class_id
                  for _, _, m in reader.messages(['/robomaster/labels/frame'])}
    with BagReader(replay_dir / 'outputs') as reader:
        raw = [({h.class_id: h.score for h in m.results}['raw_score'],
                labels[stamp_to_ns(m.header.stamp)])
               for _, _, m in reader.messages(['/robomaster/frame_anomaly/score'])]
    return raw


def test_a_fleet_on_ray_pools_what_serial_replays_merged_by_hand(bags, ray_session, tmp_path,
                                                                 capsys):
    paths, corrupt = bags
    rows, events = [], []
    for k, bag in enumerate(paths):
        out = tmp_path / 'serial' / f'run{k}'
        assert main(['replay', str(bag), '--out', str(out), '--no-progress']) == 0
        rows += _by_hand(bag, out)
        events.append(json.loads((out / 'report.json').read_text())['branches']['frame'])
    capsys.readouterr()
    fleet_dir = tmp_path / 'fleet'
    listing = tmp_path / 'bags.txt'
    listing.write_text('# the fleet\n' + '\n'.join(str(p) for p in paths[4:]) + '\n\n')
    code = main(['evaluate', 'bags', *map(str, paths[:4]), str(corrupt), '--list', str(listing),
                 '--out', str(fleet_dir), '--workers', '2', '--no-progress'])
    printed = capsys.readouterr().out
    # The corrupt bag is reported with its cause; the others finish; the exit code says so.
    assert code == 1
    assert f'1 of {N_BAGS + 1} bag(s) not evaluated' in printed and 'corrupt' in printed
    fleet = json.loads((fleet_dir / 'fleet_report.json').read_text())
    assert [f['name'] for f in fleet['failed']] == ['corrupt']
    assert 'BagError' in fleet['failed'][0]['cause']
    assert fleet['bags'] == fleet['labelled_bags'] == N_BAGS and fleet['replayed_now'] == 9
    assert (fleet_dir / 'fleet.png').stat().st_size > 0
    # Pooled = every labelled frame of every bag together, computed here with scikit-learn
    # from the serial replays' published raw scores.
    y = np.array([label != 'normal' for _, label in rows])
    scores = np.array([raw for raw, _ in rows])
    assert 0 < y.sum() < len(y) and fleet['frames'] == len(rows) == N_BAGS * 40
    frame = fleet['branches']['frame']['frame']
    assert frame['auroc'] == pytest.approx(roc_auc_score(y, scores), abs=1e-9)
    assert frame['ap'] == pytest.approx(average_precision_score(y, scores), abs=1e-9)
    assert (frame['n_normal'], frame['n_anomalous']) == (int((~y).sum()), int(y.sum()))
    pooled = fleet['branches']['frame']['events']
    for key in ('n_events', 'detected', 'false_alarms'):
        assert pooled[key] == sum(e['events'][key] for e in events)
    hours = sum(e['events']['normal_hours'] for e in events)
    assert pooled['normal_hours'] == pytest.approx(hours)
    assert pooled['alarm_time_fraction'] == pytest.approx(sum(
        e['events']['alarm_time_fraction'] * e['events']['normal_hours'] for e in events) / hours)
    # Each bag's row is its own replay's numbers.
    assert [r['branches']['frame']['frame_auroc'] for r in fleet['rows']] == \
        pytest.approx([e['auroc'] for e in events])
    # A rerun resumes: only the failed bag is tried again, and the pooled numbers stay.
    assert main(['evaluate', 'bags', *map(str, paths), str(corrupt), '--out', str(fleet_dir),
                 '--no-progress']) == 1
    again = json.loads((fleet_dir / 'fleet_report.json').read_text())
    assert again['replayed_now'] == 1 and again['resumed'] == N_BAGS
    assert again['branches'] == fleet['branches']


def test_a_bag_without_labels_is_reported_and_left_out_of_the_pooled_metrics(
        bags, ray_session, tmp_path, capsys):
    from conftest import write_image_bag
    paths, _ = bags
    rng = np.random.default_rng(0)
    write_image_bag(tmp_path / 'unlabelled',
                    [rng.integers(0, 255, (108, 192, 3), dtype=np.uint8) for _ in range(6)])
    out = tmp_path / 'fleet'
    assert main(['evaluate', 'bags', str(paths[0]), str(tmp_path / 'unlabelled'), '--out',
                 str(out), '--workers', '1', '--no-progress']) == 1
    fleet = json.loads((out / 'fleet_report.json').read_text())
    assert fleet['bags'] == 2 and fleet['labelled_bags'] == 1
    assert fleet['failed'][0]['name'] == 'unlabelled' and 'no labels' in \
        fleet['failed'][0]['cause']
    assert [r['status'] for r in fleet['rows']] == ['ok', 'unlabelled']
    assert fleet['frames'] == 46
    assert fleet['branches']['frame']['frame']['n_normal'] + \
        fleet['branches']['frame']['frame']['n_anomalous'] == 40


def test_bag_names_lists_and_bad_options(tmp_path):
    assert bag_names(['a/run1', 'b/run2.mcap']) == ['run1', 'run2']
    twins = bag_names(['a/run', 'b/run'])
    assert len(set(twins)) == 2 and all(n.startswith('run-') for n in twins)
    with pytest.raises(UsageError, match='listed twice'):
        bag_names(['a/run', 'a/run'])
    listing = tmp_path / 'list.txt'
    listing.write_text('one  # first\n\n# none\ntwo\n')
    assert read_bag_list(listing) == ['one', 'two']
    with pytest.raises(UsageError, match='nowhere'):
        read_bag_list(tmp_path / 'nowhere')
    assert main(['evaluate', 'bags', '--out', str(tmp_path / 'o')]) == 1
    assert main(['evaluate', 'bags', 'x', '--pipelines', 'frame,frame', '--out',
                 str(tmp_path / 'o')]) == 1


def test_pixel_counts_pool_exactly_across_bags():
    rng = np.random.default_rng(3)
    whole, parts = BinaryScoreAccumulator(), []
    for _ in range(3):
        labels = rng.random((20, 30)) < 0.1
        scores = rng.normal(size=(20, 30)) + labels
        whole.update(labels, scores)
        part = BinaryScoreAccumulator()
        part.update(labels, scores)
        parts.append(BinaryScoreAccumulator.from_state(
            {k: np.asarray(v) for k, v in part.state().items()}))
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    assert merged.curve().average_precision() == whole.curve().average_precision()
    assert merged.curve().auroc() == whole.curve().auroc()
    with pytest.raises(ValueError, match='not an accumulator state'):
        BinaryScoreAccumulator.from_state({'shift': 11, 'keys': np.array([2, 1]),
                                           'pos': np.array([1, 1]), 'neg': np.array([0, 0])})
    assert binary_curve(np.array([True, False]), np.array([1.0, 0.0])).auroc() == 1.0


@pytest.mark.ros
def test_a_robot_s_nodes_do_not_import_ray_and_the_monitor_not_even_torch():
    code = ('import sys\n'
            'import anomaly_perception.nodes.{}\n'
            "print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'ray', 'torch'}}), "
            "[m for m in sys.modules if m.startswith('anomaly_perception.fleet')])\n")
    for node, expected in (('frame_anomaly_node', None), ('pixel_anomaly_node', None),
                           ('instance_anomaly_node', None),
                           ('hazard_monitor_node', '[] []')):
        out = subprocess.run([sys.executable, '-c', code.format(node)], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        loaded, fleet = out.stdout.strip().split('] [')
        assert 'ray' not in loaded and fleet == ']', (node, out.stdout)
        if expected is not None:
            # The fused flag needs no model: its process stays small (no PyTorch).
            assert out.stdout.strip() == expected, (node, out.stdout)
