"""Bag replay through the frame pipeline: outputs, report, metrics, bad input."""

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

from anomaly_perception.branches.registry import get_branches
from anomaly_perception.cli import main
from anomaly_perception.data.synthetic.patrol import PatrolConfig
from anomaly_perception.data.synthetic.patrol import write_patrol_bag
from anomaly_perception.errors import BagError
from anomaly_perception.io.bag_writer import BagWriter
from anomaly_perception.io.bags import BagReader
from anomaly_perception.io.files import OutputExistsError
from anomaly_perception.io.images import numpy_to_image
from anomaly_perception.io.labels import labels_from_intervals
from anomaly_perception.io.labels import LabelsError
from anomaly_perception.io.labels import read_intervals
from anomaly_perception.metrics.events import event_metrics
from anomaly_perception.replay.engine import replay
from conftest import write_image_bag
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

TOPICS = {'/robomaster/frame_anomaly/score': 'vision_msgs/msg/Classification',
          '/robomaster/frame_anomaly/hazard': 'vision_msgs/msg/Classification',
          '/robomaster/frame_anomaly/markers': 'visualization_msgs/msg/MarkerArray',
          '/diagnostics': 'diagnostic_msgs/msg/DiagnosticArray'}

FRAME = get_branches('frame')


@pytest.fixture(scope='module')
def patrol(tmp_path_factory):
    path = tmp_path_factory.mktemp('replay') / 'bag'
    # One global anomaly (lights off for 3-8 s) in 16 s: normal frames on both sides.
    write_patrol_bag(path, PatrolConfig(seconds=16.0, fps=5, resolution=(192, 108),
                                        anomaly_rate=0.5, types='darkness', seed=2),
                     progress=False)
    return path


@pytest.fixture(scope='module')
def replayed(patrol, tmp_path_factory):
    out = tmp_path_factory.mktemp('replay') / 'out'
    report = replay(patrol, out, FRAME, backend='torch', batch=8, show_progress=False)
    return out, report


def test_output_bag_has_the_node_topics_one_per_frame_with_input_stamps(patrol, replayed):
    out, report = replayed
    with BagReader(patrol) as bag:
        stamps = [f.stamp_ns for f in bag.read_images('/robomaster/camera/image_color')]
    with BagReader(out / 'outputs') as bag:
        assert {t: s.msgtype for t, s in bag.topics.items()} == TOPICS
        for topic in ('/robomaster/frame_anomaly/score', '/robomaster/frame_anomaly/hazard'):
            got = [(log, m.header.stamp.sec * 10 ** 9 + m.header.stamp.nanosec)
                   for _, log, m in bag.messages([topic])]
            assert [g[1] for g in got] == stamps and [g[0] for g in got] == stamps
        markers = [m.markers[0].header for _, _, m in
                   bag.messages(['/robomaster/frame_anomaly/markers'])]
        assert len(markers) == len(stamps)
        assert all(h.frame_id == 'robomaster/camera_optical_link' for h in markers)
        assert bag.topics['/diagnostics'].count >= 5
    assert report['frames_scored'] == len(stamps) == 80


def test_report_and_plots_match_an_independent_computation(patrol, replayed):
    out, report = replayed
    for name in ('report.json', 'roc.png', 'pr.png', 'timeline.png', 'top_frames.png'):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / 'report.json').read_text()) == json.loads(json.dumps(report))
    report = report['branches']['frame']
    with BagReader(patrol) as bag:
        labels = {m.header.stamp.sec * 10 ** 9 + m.header.stamp.nanosec: m.results[0].class_id
                  for _, _, m in bag.messages(['/robomaster/labels/frame'])}
    with BagReader(out / 'outputs') as bag:
        rows = []
        for _, log, m in bag.messages(['/robomaster/frame_anomaly/score']):
            raw = {h.class_id: h.score for h in m.results}['raw_score']
            rows.append((log, raw, labels[log]))
        flags = [m.results[0].class_id == 'hazard'
                 for _, _, m in bag.messages(['/robomaster/frame_anomaly/hazard'])]
    y = np.array([name != 'normal' for _, _, name in rows])
    scores = np.array([raw for _, raw, _ in rows])
    assert 0 < y.sum() < len(y)
    assert report['auroc'] == pytest.approx(roc_auc_score(y, scores), abs=1e-9)
    assert (report['n_normal'], report['n_anomalous']) == (int((~y).sum()), int(y.sum()))
    expected = event_metrics([r[0] for r in rows], [r[2] for r in rows], flags)
    assert report['events']['n_events'] == expected['n_events']
    assert report['events']['detected'] == expected['detected']
    assert report['events']['false_alarms'] == expected['false_alarms']


def test_event_metrics_by_hand():
    ns = 10 ** 9
    stamps = [i * ns // 10 for i in range(100)]                 # 10 s at 10 Hz
    labels = ['normal'] * 20 + ['cable'] * 20 + ['normal'] * 60  # cable 2.0-3.9 s
    flags = [False] * 25 + [True] * 10 + [False] * 40 + [True] * 5 + [False] * 20
    m = event_metrics(stamps, labels, flags, grace_s=1.0)
    assert (m['n_events'], m['detected'], m['recall']) == (1, 1, 1.0)
    assert m['detection_delay_s']['median'] == pytest.approx(0.5)
    assert m['false_alarms'] == 1   # the episode at 7.5-7.9 s overlaps no event
    # Normal driving: outside the event widened by 1 s, i.e. 0-0.9 s and 5.0-9.9 s.
    assert m['normal_hours'] == pytest.approx(6.0 / 3600)
    assert m['alarm_time_fraction'] == pytest.approx(0.5 / 6.0)


def test_a_flag_that_never_turns_off_is_charged_for_every_stretch_of_normal_driving():
    ns = 10 ** 9
    stamps = [i * ns // 10 for i in range(300)]                  # 30 s at 10 Hz
    labels = (['normal'] * 80 + ['cable'] * 20 + ['normal'] * 100 + ['water'] * 30
              + ['normal'] * 70)
    m = event_metrics(stamps, labels, [True] * 300, grace_s=1.0)
    assert (m['detected'], m['n_events']) == (2, 2)
    assert m['false_alarms'] == 3   # before, between and after the two events
    assert m['alarm_time_fraction'] == pytest.approx(1.0)
    assert m['false_alarms_per_hour'] == pytest.approx(3 / m['normal_hours'])
    # An alarm that outlasts its event (and the 1 s grace) by more than release_s (5 s) is
    # charged for the stretch after it; the filter's own short release is not.
    flags = [False] * 85 + [True] * 85 + [False] * 130       # on 8.5-16.9 s, cable 8-9.9 s
    late = event_metrics(stamps, labels, flags, grace_s=1.0)
    assert late['detected'] == 1 and late['false_alarms'] == 1
    flags = [False] * 85 + [True] * 30 + [False] * 185       # on 8.5-11.4 s
    short = event_metrics(stamps, labels, flags, grace_s=1.0)
    assert short['false_alarms'] == 0 and short['alarm_time_fraction'] > 0


def test_hand_written_intervals_replace_the_bag_labels(patrol, tmp_path):
    labels = tmp_path / 'labels.yaml'
    labels.write_text('intervals:\n  - {start: 1.0, end: 2.5, label: trolley}\n')
    report = replay(patrol, tmp_path / 'out', FRAME, backend='torch', labels=labels,
                    show_progress=False)
    assert report['labels'] == str(labels)
    frame = report['branches']['frame']
    assert frame['n_anomalous'] == 8  # frames at 1.0, 1.2, ..., 2.4 s
    assert list(frame['per_type_auroc']) == ['trolley']


def test_intervals_outside_the_bag_are_refused(patrol, tmp_path):
    labels = tmp_path / 'labels.yaml'
    labels.write_text('intervals:\n  - {start: 4.0, end: 30.0, label: water}\n')
    with pytest.raises(LabelsError, match=r'falls outside the bag, which spans 0-15.80 s'):
        replay(patrol, tmp_path / 'out', FRAME, backend='torch', labels=labels,
               show_progress=False)
    assert not (tmp_path / 'out').exists()


def _hazard_flags(out):
    with BagReader(out / 'outputs') as bag:
        return [m.results[0].class_id == 'hazard' for _, _, m in
                bag.messages(['/robomaster/frame_anomaly/hazard'])]


def test_tag_round_trips_with_replay_labels(patrol, replayed, tmp_path, capsys):
    out, report = replayed
    flags = _hazard_flags(out)
    assert any(flags) and not all(flags)   # the darkness raises an alarm, normal driving not
    episodes = report['branches']['frame']['alarm_episodes']
    assert len(episodes) >= 1
    tags = tmp_path / 'tags.yaml'
    assert main(['tag', str(patrol), '--from-report', str(out), '--out', str(tags)]) == 0
    assert f'{len(episodes)} interval(s) written' in capsys.readouterr().out
    with BagReader(patrol) as bag:
        stamps = [f.stamp_ns for f in bag.read_images('/robomaster/camera/image_color')]
    # Read back as replay --labels reads it: exactly the frames the flag was on for.
    labels = labels_from_intervals(stamps, read_intervals(tags, stamps[0], stamps[-1]))
    assert [name == 'flagged' for name in labels] == flags
    again = replay(patrol, tmp_path / 'again', FRAME, backend='torch', labels=tags,
                   show_progress=False)
    again = again['branches']['frame']
    assert again['n_anomalous'] == sum(flags)
    assert again['events']['detected'] == again['events']['n_events'] >= 1
    # Tagging against another bag is refused; an existing file is kept.
    other = tmp_path / 'other'
    write_image_bag(other, [np.zeros((36, 64, 3), np.uint8)] * 3,
                    start_ns=report['first_stamp_ns'] + 10**9)
    assert main(['tag', str(other), '--from-report', str(out), '--out',
                 str(tmp_path / 'x.yaml')]) == 1
    assert 'report is of another bag' in capsys.readouterr().err
    assert main(['tag', str(patrol), '--from-report', str(out), '--out', str(tags)]) == 1
    assert 'exists' in capsys.readouterr().err


def test_malformed_frames_are_counted_skipped_and_reported(tmp_path):
    path = tmp_path / 'bag'
    rng = np.random.default_rng(0)
    with BagWriter(path) as bag:
        f = bag.factory
        bag.add_topic('/cam/image', 'sensor_msgs/msg/Image')
        for i in range(6):
            header = f.header(10 ** 9 + i * 10 ** 8, 'cam')
            if i in (2, 4):
                bag.write('/cam/image', f.new('sensor_msgs/msg/Image', header=header, height=8,
                                              width=8, encoding='rgb8', step=24,
                                              data=np.zeros(5, np.uint8)))
            else:
                image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
                bag.write('/cam/image', numpy_to_image(image, 'rgb8', header, f))
    report = replay(path, tmp_path / 'out', FRAME, backend='torch', show_progress=False)
    assert report['frames_scored'] == 4
    assert report['malformed']['count'] == 2
    assert [m['index'] for m in report['malformed']['frames']] == [2, 4]
    assert 'auroc' not in report['branches']['frame']  # no labels in this bag
    assert 'labels' not in report
    with BagReader(tmp_path / 'out' / 'outputs') as bag:
        assert bag.topics['/frame_anomaly/score'].count == 4


def test_bag_without_image_topic_lists_its_topics(tmp_path):
    with BagWriter(tmp_path / 'bag') as bag:
        bag.add_topic('/odom_score', 'vision_msgs/msg/Classification')
    with pytest.raises(BagError, match=r'no Image or CompressedImage topic.*/odom_score'):
        replay(tmp_path / 'bag', tmp_path / 'out', FRAME, backend='torch', show_progress=False)


def test_existing_output_needs_overwrite(patrol, replayed):
    with pytest.raises(OutputExistsError, match='--overwrite'):
        replay(patrol, replayed[0], FRAME, backend='torch', show_progress=False)


def test_replay_command(patrol, tmp_path, capsys):
    assert main(['replay', str(patrol), '--out', str(tmp_path / 'out'), '--backend',
                 'onnxruntime', '--no-progress']) == 0
    text = capsys.readouterr().out
    assert 'frame AUROC' in text and 'output bag' in text
    labels = tmp_path / 'bad.yaml'
    labels.write_text('intervals:\n  - {start: -3, end: 1, label: water}\n')
    code = main(['replay', str(patrol), '--out', str(tmp_path / 'o2'), '--labels',
                 str(labels), '--no-progress', '--backend', 'torch'])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and 'outside the bag' in err


def test_runs_of_one_label_a_moment_apart_are_one_event():
    ns = 10 ** 9
    stamps = [i * ns // 10 for i in range(100)]
    labels = ['normal'] * 20 + ['cable'] * 10 + ['normal'] * 5 + ['cable'] * 10 + \
        ['normal'] * 30 + ['cable'] * 10 + ['normal'] * 15
    m = event_metrics(stamps, labels, [False] * 100, grace_s=1.0)
    assert m['n_events'] == 2   # 0.5 s apart: one cable; 3 s apart: another
    assert [e['start_s'] for e in m['events']] == [2.0, 7.5]
