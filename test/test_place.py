"""`train place`: both branches and the fused flag from one set of bags; the place directory."""

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

import shutil

from anomaly_perception.branches.place.directory import load_place
from anomaly_perception.branches.place.directory import PlaceError
from anomaly_perception.cli import main
from anomaly_perception.runtime.manifest import sha256_file
from anomaly_perception.scoring.calibration import EmpiricalCalibration
from anomaly_perception.stream.fusion import fuse
from anomaly_perception.stream.fusion import FusedHazard
from anomaly_perception.stream.fusion import paired_heldout
from anomaly_perception.stream.hazard import count_alarms
from anomaly_perception.stream.hazard import HazardConfig
from anomaly_perception.stream.hazard import heldout_sequences
from conftest import corridor_view
from conftest import write_image_bag
import numpy as np
import pytest
import yaml


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('place_bags')
    rng = np.random.default_rng(0)
    # 70 s of normal driving at 2 Hz from a 4:3 camera (80x60).
    write_image_bag(root / 'normal', [corridor_view(rng, 60, 80, 4 * np.sin(i / 9))
                                      for i in range(140)], period_ns=500_000_000)
    # Another camera (96x54): must not join the same place.
    write_image_bag(root / 'other_camera', [corridor_view(rng, 54, 96, 0.0) for _ in range(10)],
                    period_ns=500_000_000)
    return root


@pytest.fixture(scope='module')
def place(bags, tiny_void_model, tmp_path_factory):
    out = tmp_path_factory.mktemp('place')
    code = main(['train', 'place', '--bag', str(bags / 'normal'), '--out', str(out / 'place'),
                 '--work', str(out / 'work'), '--init-from', str(tiny_void_model),
                 '--pixel-steps', '2', '--frame-epochs', '2', '--density-epochs', '4'])
    assert code == 0
    return out / 'place'


def test_train_place_writes_both_branches_and_a_fused_flag_that_loads(place):
    loaded = load_place(place)
    assert loaded.frame_dir == place / 'frame' and loaded.pixel_dir == place / 'pixel'
    spec = yaml.safe_load((place / 'place.yaml').read_text())
    assert spec['camera']['resolution'] == [80, 60]
    assert spec['provenance']['bags'] == ['normal']
    fusion = spec['fusion']
    assert fusion['rule'] == 'max_probability' and fusion['target_false_alarms_per_hour'] == 2.0
    # Every file is hashed in the manifest, and nothing else lies in the directory.
    files = yaml.safe_load((place / 'manifest.yaml').read_text())['files']
    on_disk = {str(p.relative_to(place)) for p in place.rglob('*') if p.is_file()}
    assert set(files) == on_disk - {'manifest.yaml'}
    assert files['place.yaml']['sha256'] == sha256_file(place / 'place.yaml')
    # The level was fitted on the two branches' held-out blocks, paired frame by frame: the
    # fused flag raises no alarm there.
    frame = yaml.safe_load((place / 'frame' / 'manifest.yaml').read_text())
    pixel = yaml.safe_load((place / 'pixel' / 'manifest.yaml').read_text())
    blocks = frame['alarms']['heldout']['blocks']
    assert fusion['heldout_frames'] == sum(len(b['raw']) for b in blocks) == 20
    fused = paired_heldout({
        'frame': heldout_sequences(frame['alarms']['heldout'],
                                   EmpiricalCalibration.from_dict(frame['calibration'])),
        'pixel': heldout_sequences({'blocks': pixel['alarms']['heldout']['blocks'][:len(blocks)]},
                                   EmpiricalCalibration.from_dict(pixel['frame_calibration']))})
    config = loaded.hazard_config()
    assert config.on_probability == fusion['on_probability'] > 0.5
    assert config.off_probability == pytest.approx(fusion['on_probability'] - 0.1)
    episodes, hours = count_alarms(fused, config)
    assert episodes == 0 and hours == pytest.approx(20 * 0.5 / 3600)


def test_a_changed_missing_or_mismatched_place_is_refused_naming_the_file(place, tmp_path):
    broken = tmp_path / 'broken'
    shutil.copytree(place, broken)
    weights = next((broken / 'pixel').glob('*.pt'))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PlaceError, match=str(weights).replace('.', r'\.')):
        load_place(broken)
    shutil.rmtree(broken)
    shutil.copytree(place, broken)
    (broken / 'place.yaml').unlink()
    with pytest.raises(PlaceError, match='place.yaml.*missing'):
        load_place(broken)
    # A place.yaml that says another camera, re-hashed so that only the mismatch is left.
    shutil.rmtree(broken)
    shutil.copytree(place, broken)
    spec = yaml.safe_load((broken / 'place.yaml').read_text())
    spec['camera']['resolution'] = [640, 480]
    (broken / 'place.yaml').write_text(yaml.safe_dump(spec, sort_keys=False))
    manifest = yaml.safe_load((broken / 'manifest.yaml').read_text())
    manifest['files']['place.yaml'] = {'sha256': sha256_file(broken / 'place.yaml'),
                                       'bytes': (broken / 'place.yaml').stat().st_size}
    (broken / 'manifest.yaml').write_text(yaml.safe_dump(manifest))
    with pytest.raises(PlaceError, match='frame.*80x60 camera.*640x480.*do not belong'):
        load_place(broken)
    (broken / 'manifest.yaml').write_text('format: [unclosed')
    with pytest.raises(PlaceError, match='manifest.yaml.*not valid YAML'):
        load_place(broken)
    with pytest.raises(PlaceError, match='does not exist'):
        load_place(tmp_path / 'nowhere')


def test_the_fused_flag_needs_both_branches_to_hold_out_the_same_frames(place):
    from anomaly_perception.branches.place.place import fit_fusion
    from anomaly_perception.branches.place.place import PlaceConfig
    from anomaly_perception.training import TrainingError
    frame = yaml.safe_load((place / 'frame' / 'manifest.yaml').read_text())
    pixel = yaml.safe_load((place / 'pixel' / 'manifest.yaml').read_text())
    assert fit_fusion(frame, pixel, PlaceConfig())['heldout_frames'] == 20
    pixel['alarms']['heldout']['blocks'][0]['t_ms'][1] += 1
    with pytest.raises(TrainingError, match='held out different frames'):
        fit_fusion(frame, pixel, PlaceConfig())


def test_bags_of_two_cameras_are_refused_before_any_training(bags, tmp_path, capsys):
    code = main(['train', 'place', '--bag', str(bags / 'normal'), '--bag',
                 str(bags / 'other_camera'), '--out', str(tmp_path / 'place'),
                 '--work', str(tmp_path / 'work')])
    err = capsys.readouterr().err
    assert code != 0 and 'different cameras' in err
    assert '80x60' in err and '96x54' in err and 'other_camera' in err
    assert not (tmp_path / 'place').exists() and not (tmp_path / 'work').exists()


def test_the_fused_flag_takes_the_most_surprised_branch_and_says_which():
    assert fuse({'frame': 0.2, 'pixel': 0.97}) == (0.97, 'pixel')
    assert fuse({'frame': float('nan'), 'pixel': 0.1}) == (1.0, 'frame')   # fail-safe
    with pytest.raises(ValueError, match='unknown fusion rule'):
        fuse({'frame': 0.1}, 'mean')
    hazard = FusedHazard(HazardConfig(smoothing=1.0, on_probability=0.9, off_probability=0.8,
                                      min_on_s=0.0, min_off_s=0.0))
    states = [hazard.update(i * 10**8, p) for i, p in enumerate([
        {'frame': 0.1, 'pixel': 0.2}, {'frame': 0.1, 'pixel': 0.95},
        {'frame': 0.99, 'pixel': 0.95}, {'frame': 0.1, 'pixel': 0.1}])]
    assert [s.flag for s in states] == [False, True, True, False]
    assert states[1].source == 'pixel' and states[1].changed
    assert states[2].source == 'pixel'          # raised by the pixel branch, still on


def test_held_out_blocks_are_paired_by_stamp():
    frame = [(np.array([0, 10, 20]), np.array([0.1, 0.5, 0.2]))]
    pixel = [(np.array([10, 20, 30]), np.array([0.3, 0.1, 0.9]))]
    (stamps, probs), = paired_heldout({'frame': frame, 'pixel': pixel})
    assert stamps.tolist() == [10, 20] and probs.tolist() == [0.5, 0.2]
    with pytest.raises(ValueError, match='different held-out blocks'):
        paired_heldout({'frame': frame, 'pixel': pixel * 2})


def _monitor():
    from anomaly_perception.stream.fusion import HazardMonitor
    return HazardMonitor(HazardConfig(smoothing=1.0, on_probability=0.9, off_probability=0.8,
                                      min_on_s=0.0, min_off_s=0.0), ('frame', 'pixel'),
                         max_age_s=0.25, max_wait_s=1.0)


def _decisions(monitor, reports):
    out = []
    for branch, stamp, p in reports:
        out += [(r.stamp_ns, r.state.flag, r.state.source, dict(r.evidence))
                for r in monitor.add(branch, stamp, p)]
    return out


def test_the_monitor_decides_the_same_whatever_order_the_branches_report_in():
    ms = 10**8
    frame = [('frame', i * ms, 0.95 if i in (4, 5) else 0.1) for i in range(10)]
    # The pixel branch is rate-capped: every other frame, and it sees a hazard at frame 8.
    pixel = [('pixel', i * ms, 0.99 if i == 8 else 0.2) for i in range(0, 10, 2)]
    in_order = _decisions(_monitor(), sorted(frame + pixel, key=lambda r: (r[1], r[0])))
    pixel_late = _decisions(_monitor(), frame[:3] + pixel[:1] + frame[3:] + pixel[1:])
    assert in_order == pixel_late
    stamps = [d[0] for d in in_order]
    assert stamps == [i * ms for i in range(9)]      # frame 9 waits for the pixel branch
    flags = {d[0] // ms: (d[1], d[2]) for d in in_order}
    assert flags[4] == (True, 'frame') and flags[8] == (True, 'pixel') and not flags[6][0]
    # Frame 3 has no pixel report: it borrows frame 2's (0.1 s old); evidence older than
    # max_age_s is left out.
    assert in_order[3][3] == {'frame': 0.1, 'pixel': 0.2}


def test_a_silent_branch_does_not_stall_the_flag_and_a_loop_starts_over():
    ms = 10**8
    monitor = _monitor()
    decided = _decisions(monitor, [('frame', i * ms, 0.1) for i in range(15)])
    # Nothing from the pixel branch: stamps are decided once 1 s old, on the frame alone.
    assert [d[0] // ms for d in decided] == list(range(5))
    assert decided[0][3] == {'frame': 0.1}
    again = _decisions(monitor, [('frame', 0, 0.97), ('pixel', 0, 0.1)])
    assert again == [(0, True, 'frame', {'frame': 0.97, 'pixel': 0.1})]
    with pytest.raises(ValueError, match='unknown branch'):
        monitor.add('instance', 0, 0.5)


@pytest.fixture(scope='module')
def replayed(place, bags, tmp_path_factory):
    """Replay the normal bag with the place; return (report, scores per branch, hazards)."""
    from anomaly_perception.io.bags import BagReader
    from anomaly_perception.io.messages import stamp_to_ns
    import json
    out = tmp_path_factory.mktemp('replay') / 'replay'
    assert main(['replay', str(bags / 'normal'), '--place', str(place), '--out', str(out),
                 '--no-progress']) == 0
    report = json.loads((out / 'report.json').read_text())
    topics = {'frame': '/robomaster/frame_anomaly/score',
              'pixel': '/robomaster/pixel_anomaly/score'}
    hazard = '/robomaster/hazard_monitor/hazard'
    with BagReader(out / 'outputs') as bag:
        scores = {b: [(stamp_to_ns(m.header.stamp), m.results[0].score)
                      for _, _, m in bag.messages([t])] for b, t in topics.items()}
        published = [(stamp_to_ns(m.header.stamp), m.results[0].class_id,
                      [(h.class_id, h.score) for h in m.results[1:]])
                     for _, _, m in bag.messages([hazard])]
        markers = [(stamp_to_ns(m.markers[0].header.stamp), m.markers[0].text)
                   for _, _, m in bag.messages(['/robomaster/hazard_monitor/markers'])]
    return report, scores, published, markers


def test_replay_with_a_place_runs_both_branches_and_the_monitor_as_the_node_would(
        place, replayed):
    from anomaly_perception.stream.fusion import HazardMonitor
    report, scores, published, markers = replayed
    assert set(report['branches']) == {'frame', 'pixel'}
    assert report['branches']['pixel']['model'] == str(place / 'pixel')
    assert report['monitor']['frames_decided'] == report['frames_scored'] == 140
    # The node's way: the branches' published ~/score messages into the monitor object,
    # the pixel branch's 1.5 s late (under max_wait_s); the same flags and evidence as the
    # replay wrote.
    monitor = HazardMonitor(load_place(place).hazard_config(), ('frame', 'pixel'))
    decided = [r for s, p in scores['frame'][:3] for r in monitor.add('frame', s, p)]
    for (sf, pf), (sp, pp) in zip(scores['frame'][3:], scores['pixel']):
        decided += monitor.add('frame', sf, pf) + monitor.add('pixel', sp, pp)
    decided += [r for s, p in scores['pixel'][-3:] for r in monitor.add('pixel', s, p)]
    assert len(published) == len(decided) == 140
    assert [(r.stamp_ns, 'hazard' if r.state.flag else 'clear',
             sorted(r.evidence.items())) for r in decided] == \
        [(s, c, sorted((b, pytest.approx(p)) for b, p in ev)) for s, c, ev in published]
    assert all({c for c, _ in ev} == {'frame', 'pixel'} for _, _, ev in published)
    # rviz text for every decided stamp: the flag, its smoothed probability, who raised it.
    assert [s for s, _ in markers] == [s for s, _, _ in published]
    for r, (_, text) in zip(decided, markers):
        assert text == (f'HAZARD {r.state.smoothed:.2f} ({r.state.source})' if r.state.flag
                        else f'clear {r.state.smoothed:.2f}')


@pytest.mark.ros
def test_the_monitor_node_publishes_what_replay_wrote(place, replayed, ros_context, tmp_path):
    from anomaly_perception.io.messages import hypothesis
    from anomaly_perception.io.messages import stamp_to_ns
    from anomaly_perception.nodes.hazard_monitor_node import HazardMonitorNode
    from anomaly_perception.nodes.rclpy_messages import RclpyMessageFactory
    from conftest import spin_until
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    _, scores, published, markers = replayed
    f = RclpyMessageFactory()
    node = HazardMonitorNode(context=ros_context,
                             parameter_overrides=[Parameter('place', value=str(place))])
    broken = HazardMonitorNode(node_name='broken_monitor', context=ros_context,
                               parameter_overrides=[Parameter('place', value=str(tmp_path))])
    helper = rclpy.create_node('monitor_test_helper', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    for n in (node, broken, helper):
        executor.add_node(n)
    got = []
    try:
        # A place that is not one fails the configure transition, naming the directory.
        assert broken.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert str(tmp_path) in broken.error and 'not a place directory' in broken.error
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        cls = f._cls('vision_msgs/msg/Classification')
        helper.create_subscription(cls, '/hazard_monitor/hazard', got.append, 200)
        texts = []
        helper.create_subscription(f._cls('visualization_msgs/msg/MarkerArray'),
                                   '/hazard_monitor/markers',
                                   lambda m: texts.append(m.markers[0].text), 200)
        pubs = {b: helper.create_publisher(cls, f'/{b}/score', 200) for b in scores}
        assert spin_until(executor, lambda: all(p.get_subscription_count() for p in
                                                pubs.values()), 10)

        def score(stamp, p):
            return f.new('vision_msgs/msg/Classification', header=f.header(stamp, 'cam'),
                         results=[hypothesis(f, 'anomaly', p)])
        pubs['frame'].publish(cls())            # no results: counted, skipped
        for k, ((sf, pf), (sp, pp)) in enumerate(zip(scores['frame'], scores['pixel'])):
            pubs['frame'].publish(score(sf, pf))
            pubs['pixel'].publish(score(sp, pp))
            assert spin_until(executor, lambda: node.counts['received'] >= 3 + 2 * k, 10)
        assert spin_until(executor, lambda: len(got) >= 139 and len(texts) >= 139, 20), \
            len(got)
    finally:
        for n in (node, broken, helper):
            n.destroy_node()
        executor.shutdown()
    assert node.counts['malformed'] == 1
    # Every stamp but the last (no branch has reported a later one) is decided, as in replay.
    mine = [(stamp_to_ns(m.header.stamp), m.results[0].class_id,
             sorted((h.class_id, h.score) for h in m.results[1:])) for m in got]
    assert mine == [(s, c, sorted((b, pytest.approx(p)) for b, p in ev))
                    for s, c, ev in published[:len(mine)]]
    assert len(mine) == 139 and all(m.header.frame_id == 'cam' for m in got)
    assert texts == [t for _, t in markers[:139]]


@pytest.mark.ros
@pytest.mark.parametrize('sig', ['SIGINT', 'SIGTERM'])
def test_the_monitor_process_exits_0_on_a_signal_and_1_with_one_line_for_a_bad_place(
        place, ros_env, ros_context, tmp_path, sig):
    import signal
    import subprocess
    import sys
    import time
    from anomaly_perception.nodes.rclpy_messages import RclpyMessageFactory
    from conftest import spin_until
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    executable = __import__('pathlib').Path(sys.executable).parent / 'hazard_monitor'
    if not executable.exists():
        pytest.skip(f'the console entry point {executable} is not installed (pip install -e .)')
    log = tmp_path / 'node.log'
    with open(log, 'w') as out:
        proc = subprocess.Popen([str(executable), '--ros-args', '-p', f'place:={place}'],
                                env=ros_env.env, stdout=out, stderr=subprocess.STDOUT)
    helper = rclpy.create_node('monitor_process_helper', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(helper)
    try:
        pub = helper.create_publisher(
            RclpyMessageFactory()._cls('vision_msgs/msg/Classification'), '/frame/score', 10)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 30), \
            log.read_text()
        start = time.monotonic()
        proc.send_signal(getattr(signal, sig))
        code = proc.wait(10)
        assert code == 0 and time.monotonic() - start < 5.0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        helper.destroy_node()
        executor.shutdown()
    bad = subprocess.run([str(executable), '--ros-args', '-p', f'place:={tmp_path}'],
                         env=ros_env.env, capture_output=True, text=True, timeout=30)
    lines = (bad.stdout + bad.stderr).splitlines()
    fatal = [line for line in lines if 'cannot start' in line]
    assert bad.returncode == 1 and 'Traceback' not in bad.stdout + bad.stderr
    assert len(fatal) == 1 and str(tmp_path) in fatal[0]


@pytest.fixture(scope='module')
def tuned_place(place, bags, tiny_void_model):
    """Learn the same place again, plus a tiny click-crops promptable model tuned on its bag."""
    from anomaly_perception.branches.instance import clickcrops
    from anomaly_perception.runtime.manifest import write_model_dir
    from anomaly_perception.training import to_bytes
    import torch
    torch.manual_seed(0)
    spec = clickcrops.crops_spec(24, (0.2, 0.5), (8, 8, 16))
    init = place.parent / 'crops_init'
    write_model_dir(init, {'name': 'init', 'branch': 'instance',
                           'architecture': {'type': 'click_crops', 'spec': spec}},
                    {'promptable.pt': to_bytes(clickcrops.build_clicknet(spec).state_dict())})
    # The same work directory: the frame and pixel branches resume from their finished runs.
    code = main(['train', 'place', '--bag', str(bags / 'normal'), '--out',
                 str(place.parent / 'tuned'), '--work', str(place.parent / 'work'),
                 '--init-from', str(tiny_void_model), '--pixel-steps', '2', '--frame-epochs',
                 '2', '--density-epochs', '4', '--promptable', str(init),
                 '--promptable-steps', '2'])
    assert code == 0
    return place.parent / 'tuned'


def test_a_place_can_carry_a_promptable_model_tuned_on_its_bags(place, tuned_place, capsys):
    from anomaly_perception.runtime.manifest import load_manifest
    loaded = load_place(tuned_place)
    assert loaded.instance_dir == tuned_place / 'instance'
    assert loaded.model_dirs() == {'frame': tuned_place / 'frame', 'pixel': tuned_place / 'pixel',
                                   'instance': tuned_place / 'instance'}
    assert load_place(place).instance_dir is None and 'instance' not in \
        load_place(place).model_dirs()
    spec = yaml.safe_load((tuned_place / 'place.yaml').read_text())
    assert spec['branches']['instance'] == 'instance' and spec['provenance']['wall_s']['instance']
    manifest = load_manifest(tuned_place / 'instance', branch='instance')
    assert manifest['training']['place'] and manifest['training']['steps'] == 2
    assert manifest['provenance']['bags'][0]['resolution'] == [80, 60]
    # Every one of its files is hashed; the frame and pixel weights are the resumed runs'.
    files = yaml.safe_load((tuned_place / 'manifest.yaml').read_text())['files']
    assert {'instance/promptable.pt', 'instance/manifest.yaml'} <= set(files)
    before = yaml.safe_load((place / 'manifest.yaml').read_text())['files']
    weights = [k for k in before if k.endswith('.pt')]
    assert weights and all(files[k] == before[k] for k in weights)
    # The promptable tuning needs a model to tune.
    assert main(['train', 'place', '--bag', 'x', '--out', 'y', '--promptable-steps', '3']) == 1
    assert '--promptable' in capsys.readouterr().err


def test_replay_with_a_place_runs_its_promptable_model_on_its_pixel_map(
        place, tuned_place, bags, tmp_path, capsys):
    import json
    from anomaly_perception.branches.instance import COMPONENTS
    for where, expected in ((tuned_place, str(tuned_place / 'instance')),
                            (place, COMPONENTS)):
        out = tmp_path / where.name
        assert main(['replay', str(bags / 'normal'), '--place', str(where), '--pipelines',
                     'instance', '--out', str(out), '--no-progress']) == 0
        report = json.loads((out / 'report.json').read_text())
        part = report['branches']['instance']
        assert set(report['branches']) == {'frame', 'pixel', 'instance'}
        # The instance branch thresholds the place's map with the place's pixel model, as the
        # launch files wire the node (pixel_model_dir = the pixel node's model).
        assert part['model'] == expected and part['pixel_model'] == str(where / 'pixel')
        assert report['branches']['pixel']['model'] == str(where / 'pixel')
    assert main(['replay', str(bags / 'normal'), '--place', str(tuned_place), '--pipelines',
                 'instance', '--model', f'instance={tuned_place}/instance', '--out',
                 str(tmp_path / 'clash'), '--no-progress']) == 1
    assert '--place gives the frame and instance and pixel models' in capsys.readouterr().err
