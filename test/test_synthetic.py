"""The synthetic patrol world: determinism, labels, splits, bags and bad input."""

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

import filecmp
import json

from anomaly_perception.cli import main
from anomaly_perception.data.synthetic.catalog import ANOMALY_TYPES
from anomaly_perception.data.synthetic.catalog import SEMANTIC_CLASSES
from anomaly_perception.data.synthetic.catalog import TYPES_BY_NAME
from anomaly_perception.data.synthetic.compare import parse_reference_name
from anomaly_perception.data.synthetic.compare import write_comparison
from anomaly_perception.data.synthetic.dataset import plan_dataset
from anomaly_perception.data.synthetic.dataset import read_labels
from anomaly_perception.data.synthetic.dataset import SynthError
from anomaly_perception.data.synthetic.dataset import write_dataset
from anomaly_perception.data.synthetic.patrol import PatrolConfig
from anomaly_perception.data.synthetic.patrol import write_patrol_bag
from anomaly_perception.data.synthetic.stats import baseline_stats
from anomaly_perception.data.synthetic.world import Sequence
from anomaly_perception.data.synthetic.world import SequenceSpec
from anomaly_perception.io.bags import BagReader
from anomaly_perception.io.files import OutputExistsError
import cv2
import numpy as np
import pytest

SIZE = 64


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """Write a tiny dataset (all 22 types) once, with one worker."""
    out = tmp_path_factory.mktemp('synth') / 'tiny'
    write_dataset(out, preset='tiny', image_size=SIZE, seed=3, workers=1, progress=False)
    return out


def _read(root, row, folder, flags=cv2.IMREAD_UNCHANGED):
    stem = row['filename'].rsplit('.', 1)[0]
    return cv2.imread(str(root / folder / f'{stem}.png'), flags)


def test_same_seed_same_bytes_whatever_the_worker_count(tiny, tmp_path):
    again = tmp_path / 'tiny2'
    write_dataset(again, preset='tiny', image_size=SIZE, seed=3, workers=2, progress=False)
    cmp = filecmp.dircmp(tiny, again)
    files = [p.relative_to(tiny) for p in tiny.rglob('*') if p.is_file()]
    assert len(files) > 400
    match, mismatch, errors = filecmp.cmpfiles(tiny, again, [str(f) for f in files],
                                               shallow=False)
    assert not mismatch and not errors
    assert not cmp.left_only and not cmp.right_only


def test_every_anomaly_type_appears(tiny):
    rows = read_labels(tiny)
    names = {r['label_name'] for r in rows}
    assert {t.name for t in ANOMALY_TYPES} <= names
    test_names = {r['label_name'] for r in rows if r['split'] == 'test_set'}
    assert {t.name for t in ANOMALY_TYPES} <= test_names
    manifest = json.loads((tiny / 'manifest.json').read_text())
    assert manifest['frames'] == len(rows)
    assert sum(sum(c.values()) for c in manifest['counts'].values()) == len(rows)


def test_masks_instances_and_semantic_are_consistent(tiny):
    rows = read_labels(tiny)
    allowed = set(range(len(SEMANTIC_CLASSES))) | {255}
    for row in rows:
        mask = _read(tiny, row, 'masks')
        inst = _read(tiny, row, 'instances')
        sem = _read(tiny, row, 'semantic')
        assert mask.shape == inst.shape == sem.shape == (SIZE, SIZE)
        assert inst.dtype == np.uint16 and mask.dtype == np.uint8
        local = row['label'] != 0 and not TYPES_BY_NAME[row['label_name']].is_global
        # Masks are non-empty exactly for localised anomalies.
        assert mask.any() == local, row['filename']
        assert bool(row['is_global']) == (row['label'] != 0 and not local)
        np.testing.assert_array_equal(mask == 1, inst > 0)
        assert row['anomaly_px'] == int(mask.sum())
        assert row['n_instances'] == len(np.unique(inst[inst > 0]))
        assert set(np.unique(sem).tolist()) <= allowed
        # Anomaly pixels are never a training class.
        assert np.all(sem[mask == 1] == 255)
        if row['environment'] == 'corridor' and not local:
            assert not np.any(sem == 255), row['filename']


def test_normal_training_frames_contain_no_anomaly(tiny):
    rows = [r for r in read_labels(tiny) if r['split'] == 'train_set']
    assert rows and all(r['label'] == 0 and r['anomaly_px'] == 0 for r in rows)
    tasks = plan_dataset('tiny', seed=3)
    assert all(t.spec.anomaly is None and not t.spec.events
               for t in tasks if t.split == 'train_set')


def test_splits_are_disjoint_by_sequence_and_test_scenes_are_unseen(tiny):
    rows = read_labels(tiny)
    seqs = {}
    for row in rows:
        seqs.setdefault(row['sequence'], set()).add(row['split'])
    assert all(len(splits) == 1 for splits in seqs.values())
    scenes = {}
    for row in rows:
        scenes.setdefault(row['split'], set()).add(row['scene_seed'])
    for other in ('train_set', 'validation_set', 'outliers_set'):
        assert not scenes['test_set'] & scenes[other]
    assert not scenes['validation_set'] & scenes['train_set']
    for row in rows:
        assert (tiny / row['split'] / row['filename']).is_file()


def test_seen_protocol_tests_new_patrols_of_the_training_scenes():
    unseen = plan_dataset('small', seed=4)
    seen = plan_dataset('small', seed=4, test_scenes='seen')

    def of(tasks, split):
        return [t for t in tasks if t.split == split]

    # Train and outliers are the same sequences; only validation and test move.
    for split in ('train_set', 'outliers_set'):
        assert of(seen, split) == of(unseen, split)
    train_scenes = {t.spec.scene_seed for t in of(seen, 'train_set')}
    train_runs = {t.spec.seed for t in of(seen, 'train_set')}
    for split in ('validation_set', 'test_set'):
        assert {t.spec.scene_seed for t in of(seen, split)} <= train_scenes
        assert not {t.spec.scene_seed for t in of(unseen, split)} & train_scenes
        # Disjoint patrols: no sequence of the training split is tested.
        assert not {t.spec.seed for t in of(seen, split)} & train_runs
        seen_runs = [t.spec.seed for t in of(seen, split)]
        assert seen_runs == [t.spec.seed for t in of(unseen, split)]
    with pytest.raises(SynthError, match="Unknown test scenes 'same'"):
        plan_dataset('tiny', test_scenes='same')


def test_frames_render_labels_for_every_type():
    for kind in ANOMALY_TYPES:
        env = kind.environments[0]
        seq = Sequence(SequenceSpec(seed=kind.id, environment=env, scene_seed=kind.id,
                                    anomaly=kind.name, duration_s=12))
        rng = np.random.default_rng(0)
        times = [*seq.candidate_times(rng, 8), *seq.candidate_times(rng, 8, near=True)]
        frames = [seq.frame(float(t), 96, 96) for t in times]
        assert any(f.label == kind.id for f in frames), kind.name


def test_patrol_bag_reads_back(tmp_path):
    config = PatrolConfig(seconds=4.0, fps=10, resolution=(160, 90), anomaly_rate=1.0,
                          seed=4, types='boxes,darkness,cones')
    summary = write_patrol_bag(tmp_path / 'bag', config, progress=False)
    assert summary['frames'] == 40
    with BagReader(tmp_path / 'bag') as bag:
        topics = bag.topics
        assert {t: topics[t].msgtype for t in topics} == {
            '/robomaster/camera/image_color': 'sensor_msgs/msg/Image',
            '/robomaster/camera/camera_info': 'sensor_msgs/msg/CameraInfo',
            '/robomaster/labels/frame': 'vision_msgs/msg/Classification',
            '/robomaster/labels/instances': 'sensor_msgs/msg/Image',
            '/robomaster/labels/semantic': 'sensor_msgs/msg/Image',
        }
        assert all(t.count == 40 for t in topics.values())
        assert bag.image_topics == ['/robomaster/camera/image_color',
                                    '/robomaster/labels/instances',
                                    '/robomaster/labels/semantic']
        frames = list(bag.read_images('/robomaster/camera/image_color', output='passthrough'))
        assert all(f.encoding == 'bgr8' and f.image.shape == (90, 160, 3) for f in frames)
        assert all(f.frame_id == 'robomaster/camera_optical_link' for f in frames)
        stamps = [f.stamp_ns for f in frames]
        assert all(b - a == 100_000_000 for a, b in zip(stamps, stamps[1:]))
        labels = [(stamp, msg.results[0].class_id) for _, stamp, msg in
                  bag.messages(['/robomaster/labels/frame'])]
        assert [s for s, _ in labels] == stamps
        masks = list(bag.read_images('/robomaster/labels/instances', output='passthrough'))
        assert [m.stamp_ns for m in masks] == stamps
        for (_, name), mask in zip(labels, masks):
            assert mask.encoding == '16UC1'
            local = name != 'normal' and not TYPES_BY_NAME[name].is_global
            assert mask.image.any() == local
        assert json.loads(bag.custom_data['anomaly_perception.synthetic_patrol'])['seed'] == 4


def test_stats_gives_aurocs(tiny):
    result = baseline_stats(tiny)
    for name in ('intensity', 'nn16'):
        b = result['baselines'][name]
        assert 0.0 <= b['overall_auroc'] <= 1.0
        assert len(b['per_type_auroc']) == len(ANOMALY_TYPES)


def test_reference_names_and_comparison(tmp_path):
    assert parse_reference_name('corridor_box.jpg') == ('corridor', 'boxes')
    assert parse_reference_name('tunnel_root1.jpg') == ('tunnel', 'roots')
    assert parse_reference_name('factory_normal2.jpg') == ('factory', None)
    assert parse_reference_name('corridor_hanging_cable.jpg') == ('corridor', 'hanging_cable')
    assert parse_reference_name('notes.jpg') is None
    ref = tmp_path / 'ref'
    ref.mkdir()
    for name in ('corridor_cones.jpg', 'tunnel_normal1.jpg'):
        cv2.imwrite(str(ref / name), np.full((100, 100, 3), 128, np.uint8))
    path, pairs = write_comparison(ref, tmp_path / 'build' / 'cmp.png')
    assert pairs == 2 and cv2.imread(str(path)).shape[0] == 256


# --- bad input ------------------------------------------------------------------------------


def test_unknown_type_is_named(tmp_path):
    with pytest.raises(SynthError, match="Unknown anomaly type 'lava'; known types: water"):
        write_dataset(tmp_path / 'd', preset='tiny', types='water,lava', progress=False)


@pytest.mark.parametrize('kwargs,match', [
    ({'preset': 'huge'}, "Unknown preset 'huge'"),
    ({'preset': 'tiny', 'image_size': 8}, 'image-size must be between 32'),
    ({'preset': 'tiny', 'frames': 20}, 'at least 69 frames'),
])
def test_datasets_that_cannot_be_made(tmp_path, kwargs, match):
    with pytest.raises(SynthError, match=match):
        write_dataset(tmp_path / 'd', progress=False, **kwargs)
    assert not (tmp_path / 'd').exists()


def test_existing_output_is_refused_unless_overwrite(tiny, tmp_path):
    with pytest.raises(OutputExistsError, match='--overwrite'):
        write_dataset(tiny, preset='tiny', progress=False)


def test_cli_errors_are_one_line(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    cases = [
        (['synth', 'dataset', '--out', str(blocker / 'x'), '--preset', 'tiny'],
         'Cannot create the folder'),
        (['synth', 'dataset', '--out', str(tmp_path / 'x'), '--types', 'lava'],
         "Unknown anomaly type 'lava'"),
        (['synth', 'bag', '--out', str(tmp_path / 'b'), '--resolution', '640by360'],
         'expected WIDTHxHEIGHT'),
        (['synth', 'bag', '--out', str(tmp_path / 'b'), '--anomaly-rate', '2'],
         'anomaly-rate must be between 0 and 1'),
    ]
    for argv, match in cases:
        try:
            code = main(argv)
        except SystemExit as exit_info:
            code = exit_info.code
        err = capsys.readouterr().err.strip()
        assert code != 0 and len(err.splitlines()) == 1 and match in err, (argv, err)
