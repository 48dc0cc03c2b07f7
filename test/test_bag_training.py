"""``train frame --bag``: frames from bags, time blocks, tagged intervals, resuming."""

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

from anomaly_perception import training as common
from anomaly_perception.branches.frame.config import FrameNodeConfig
from anomaly_perception.branches.frame.detector import FrameAnomalyDetector
from anomaly_perception.branches.frame.stream import FrameStream
from anomaly_perception.branches.frame.train import AutoencoderConfig
from anomaly_perception.branches.frame.train import DensityConfig
from anomaly_perception.branches.frame.train_bags import BagTrainingConfig
from anomaly_perception.branches.frame.train_bags import train_frame_from_bags
from anomaly_perception.cli import main
from anomaly_perception.data.bag_frames import BagFrames
from anomaly_perception.data.bag_frames import BagFramesError
from anomaly_perception.data.bag_frames import check_patrol_length
from anomaly_perception.data.bag_frames import extract_bag_frames
from anomaly_perception.data.bag_frames import interval_frames
from anomaly_perception.data.bag_frames import time_block_split
from anomaly_perception.data.bag_frames import untagged_frames
from anomaly_perception.errors import BagError
from anomaly_perception.io.bag_writer import BagWriter
from anomaly_perception.io.labels import LabelsError
from anomaly_perception.runtime.manifest import load_manifest
from anomaly_perception.runtime.preprocess import letterbox
from anomaly_perception.scoring.calibration import EmpiricalCalibration
from anomaly_perception.stream.hazard import count_alarms
from anomaly_perception.stream.hazard import heldout_sequences
from anomaly_perception.stream.hazard import on_probability_for_rate
from conftest import write_image_bag
import cv2
import numpy as np
import pytest
import torch

START = 1_700_000_000_000_000_000
TOPIC = '/robomaster/camera/image_color'


def _corridor(n, rng, size=(180, 320), square_at=()):
    """Smooth frames that drift slowly (a patrol), with a bright square at ``square_at``."""
    h, w = size
    base = cv2.resize(rng.integers(40, 200, (9, 16, 3)).astype(np.uint8), (w + 64, h),
                      interpolation=cv2.INTER_CUBIC)
    frames = []
    for i in range(n):
        x = int(32 + 30 * np.sin(i / 9.0))
        frame = base[:, x:x + w].copy()
        if i in square_at:
            frame[h // 3:h // 3 + 40, w // 2:w // 2 + 40] = 255
        frames.append(frame)
    return frames


def _intervals(path, *entries):
    lines = ['intervals:'] + [f'  - {{start: {a}, end: {b}, label: {label}}}'
                              for a, b, label in entries]
    path.write_text('\n'.join(lines) + '\n')
    return path


# --- time blocks -----------------------------------------------------------------------------


def test_time_blocks_hold_out_whole_stretches_with_a_guard_and_no_overlap():
    # Two bags: 100 s at 10 Hz and 35 s at 4 Hz.
    stamps = np.concatenate([START + np.arange(1000) * 100_000_000,
                             START + 10**12 + np.arange(140) * 250_000_000])
    owners = np.r_[np.zeros(1000, int), np.ones(140, int)]
    frames = BagFrames(np.zeros((1140, 1, 1, 3), np.uint8), stamps, owners, [])
    train, val, blocks = time_block_split(frames, block_s=10.0, val_every=5, guard_s=1.0)
    assert not set(train) & set(val)
    assert sorted(np.concatenate(blocks)) == sorted(val)
    # Bag 0: blocks 2 and 7 (20-30 s, 70-80 s) held out; bag 1 (3.5 blocks): block 2.
    t = (stamps - np.where(owners == 0, START, START + 10**12)) / 1e9
    held = sorted({(int(owners[i]), int(t[i] // 10)) for i in val})
    assert held == [(0, 2), (0, 7), (1, 2)]
    assert [len(b) for b in blocks] == [100, 100, 40]
    for b in blocks:  # no training frame of the same bag within 1 s of a held-out block
        mine = train[owners[train] == owners[b[0]]]
        gap = np.maximum(stamps[b[0]] - stamps[mine], stamps[mine] - stamps[b[-1]])
        assert gap.min() >= 1e9
    # What is neither trained on nor held out is exactly the guard band.
    assert len(train) + len(val) == 1140 - 4 * 10 - 2 * 4


def test_a_short_patrol_is_refused_with_the_minimum():
    frames = BagFrames(np.zeros((300, 1, 1, 3), np.uint8), START + np.arange(300) * 10**8,
                       np.zeros(300, int), [{'bag': 'b', 'span_s': 29.9, 'frames': 300}])
    with pytest.raises(BagFramesError, match=r'29.9 s.*at least 60 s'):
        check_patrol_length(frames)


# --- bags -------------------------------------------------------------------------------------


def test_interval_frames_are_exact_at_the_boundaries(tmp_path, rng):
    stamps = write_image_bag(tmp_path / 'bag', _corridor(20, rng, (36, 64)),
                             start_ns=START, period_ns=100_000_000)
    tags = _intervals(tmp_path / 'tags.yaml', (0.5, 1.0, 'cable'), (1.2, 1.3, 'normal'),
                      (1.5, 1.55, 'water'))
    frames, labels = interval_frames(tmp_path / 'bag', tags, (16, 32))
    # [0.5, 1.0] holds frames 5..10 (both ends exactly on a frame); 'normal' is not exposed;
    # [1.5, 1.55] holds frame 15 only.
    assert list(frames.stamps) == [stamps[i] for i in (5, 6, 7, 8, 9, 10, 15)]
    assert labels == ['cable'] * 6 + ['water']
    assert frames.images.shape == (7, 16, 32, 3)


def test_the_tagged_patrols_normal_driving_is_what_lies_away_from_its_tags(tmp_path, rng):
    stamps = write_image_bag(tmp_path / 'bag', _corridor(20, rng, (36, 64)),
                             start_ns=START, period_ns=100_000_000)
    tags = _intervals(tmp_path / 'tags.yaml', (0.5, 1.0, 'cable'), (1.2, 1.3, 'normal'),
                      (1.5, 1.55, 'water'))
    frames = untagged_frames(tmp_path / 'bag', tags, (16, 32), guard_s=0.1)
    # Tags widened by 0.1 s: 0.4-1.1 s and 1.4-1.65 s are left out; 'normal' is kept.
    assert list(frames.stamps) == [stamps[i] for i in (0, 1, 2, 3, 12, 13, 17, 18, 19)]


def test_tagged_intervals_that_hold_nothing_or_leave_the_bag_are_refused(tmp_path, rng):
    write_image_bag(tmp_path / 'bag', _corridor(20, rng, (36, 64)), start_ns=START,
                    period_ns=100_000_000)
    between = _intervals(tmp_path / 'between.yaml', (0.51, 0.59, 'cable'))
    with pytest.raises(BagFramesError, match='No frame .* falls inside'):
        interval_frames(tmp_path / 'bag', between, (16, 32))
    outside = _intervals(tmp_path / 'outside.yaml', (1.0, 5.0, 'cable'))
    with pytest.raises(LabelsError, match='outside the bag'):
        interval_frames(tmp_path / 'bag', outside, (16, 32))


def test_a_bag_without_images_names_its_topics(tmp_path):
    with BagWriter(tmp_path / 'bag') as bag:
        bag.add_topic('/chatter', 'std_msgs/msg/String')
        bag.write('/chatter', bag.factory.new('std_msgs/msg/String', data='hi'), START)
    with pytest.raises(BagError, match=r'no Image or CompressedImage topic.*/chatter'):
        extract_bag_frames([tmp_path / 'bag'], (16, 32), show_progress=False)


def test_images_that_change_size_mid_way_are_refused(tmp_path, rng):
    frames = _corridor(5, rng, (36, 64)) + _corridor(3, rng, (72, 128))
    write_image_bag(tmp_path / 'bag', frames, start_ns=START)
    with pytest.raises(BagFramesError, match=r'change size at message 5 \(64x36 -> 128x72\)'):
        extract_bag_frames([tmp_path / 'bag'], (16, 32), show_progress=False)


def test_compressed_images_are_read_like_raw_ones(tmp_path, rng):
    from anomaly_perception.io.images import numpy_to_compressed
    images = _corridor(4, rng, (36, 64))
    with BagWriter(tmp_path / 'bag') as bag:
        bag.add_topic('/cam/image/compressed', 'sensor_msgs/msg/CompressedImage')
        for i, rgb in enumerate(images):
            header = bag.factory.header(START + i * 10**8, 'cam')
            bag.write('/cam/image/compressed',
                      numpy_to_compressed(rgb[..., ::-1], header, bag.factory, codec='png'))
    frames = extract_bag_frames([tmp_path / 'bag'], (16, 32), show_progress=False)
    assert frames.sources[0]['topic'] == '/cam/image/compressed'
    np.testing.assert_array_equal(frames.images[2], letterbox(images[2], (16, 32)))


# --- training ---------------------------------------------------------------------------------


def _tiny_config(**extra):
    return BagTrainingConfig(
        autoencoder=AutoencoderConfig(width=4, epochs=2, batch_size=32, input_size=[64, 112]),
        density=DensityConfig(hidden=16, epochs=4, batch_size=64, anomaly_batch=8,
                              gamma=5.0),
        augmented_copies=1, **extra)


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp('bags')
    rng = np.random.default_rng(5)
    # 70 s of normal driving at 2 Hz, 320x180 (16:9).
    write_image_bag(root / 'normal', _corridor(140, rng), start_ns=START,
                    period_ns=500_000_000)
    # Another patrol where a bright square shows for frames 10-14.
    write_image_bag(root / 'tagged', _corridor(30, np.random.default_rng(5),
                                               square_at=range(10, 15)),
                    start_ns=START + 10**12, period_ns=500_000_000)
    _intervals(root / 'tags.yaml', (5.0, 7.0, 'debris'))
    return root


@pytest.fixture(scope='module')
def trained(bags, tmp_path_factory):
    out = tmp_path_factory.mktemp('trained')
    manifest = train_frame_from_bags(
        [bags / 'normal'], out / 'model', out / 'work', _tiny_config(),
        exposed=[_source(bags)], show_progress=False)
    return out, manifest


def _source(bags):
    from anomaly_perception.branches.frame.train_bags import ExposedSource
    return ExposedSource.parse(f"{bags / 'tagged'}:{bags / 'tags.yaml'}")


def test_the_manifest_says_where_the_model_learnt_and_how_it_sees(trained):
    out, manifest = trained
    data = manifest['provenance']['data']
    assert [b['bag'] for b in data['bags']] == ['normal']
    assert data['topic'] == TOPIC and data['frames'] == 140
    assert data['span_s'] == pytest.approx(69.5)
    assert data['bags'][0]['resolution'] == [320, 180]
    assert data['exposed']['n_frames'] == 5 and data['exposed']['labels'] == ['debris']
    assert manifest['preprocessing']['input_shape'] == [64, 112]
    assert manifest['preprocessing']['crop'] == 'letterbox'
    assert manifest['architecture']['autoencoder']['input_size'] == [64, 112]
    held = manifest['alarms']['heldout']['blocks']
    assert sum(len(b['raw']) for b in held) == data['n_heldout'] == 20
    assert data['n_train'] == 140 - 20 - 2 * 2   # the 1 s guard on both sides of the block
    assert manifest['provenance']['training']['density']['oe'] is True


def test_the_alarm_threshold_meets_its_rate_on_the_heldout_blocks(trained):
    out, manifest = trained
    alarms = manifest['alarms']
    calibration = EmpiricalCalibration.from_dict(manifest['calibration'])
    sequences = heldout_sequences(alarms['heldout'], calibration)
    from anomaly_perception.stream.hazard import HazardConfig
    import dataclasses
    on = alarms['on_probability']
    episodes, hours = count_alarms(sequences, dataclasses.replace(
        HazardConfig(), on_probability=on, off_probability=on - 0.1))
    assert episodes == 0 and hours == pytest.approx(10.0 / 3600)
    assert alarms['raw'] == pytest.approx(calibration.raw_for_probability(on))
    # The stream recomputes the same threshold from the manifest for the same settings...
    stream = FrameStream.from_config(FrameNodeConfig(backend='torch'), out / 'model')
    assert stream.hazard.config.on_probability == pytest.approx(on)
    assert stream.detector.threshold == pytest.approx(alarms['raw'])
    # ... and for other settings, the rate measured on the held-out patrol with them.
    other = FrameNodeConfig(backend='torch', target_false_alarms_per_hour=50.0, smoothing=0.8,
                            min_on_s=0.0)
    stream = FrameStream.from_config(other, out / 'model')
    expected, _ = on_probability_for_rate(sequences, other.hazard_config(), 50.0,
                                          other.hysteresis)
    assert stream.hazard.config.on_probability == expected
    assert stream.hazard.config.smoothing == 0.8


def _flags_on(stream, raws, period_s=0.1):
    """Feed ``raws`` as the detector's scores at 10 Hz; return the flag after each frame."""
    stream.detector.score = lambda images: stream.detector.scores_from_raw(next(feed))
    feed = iter([[r] for r in raws])
    frame = np.zeros((180, 320, 3), np.uint8)
    return np.array([stream.process([START + int(i * period_s * 1e9)], [frame])[0].state.flag
                     for i in range(len(raws))])


def test_another_runs_level_is_taken_off_before_the_flag_and_a_hazard_still_raises_it(trained):
    out, manifest = trained
    raw = np.concatenate([b['raw'] for b in manifest['alarms']['heldout']['blocks']])
    spread = float(np.percentile(raw, 95) - np.median(raw))
    # Another day: the same normal driving scored well above the held-out level...
    rng = np.random.default_rng(3)
    run = np.median(raw) + 4 * spread + max(abs(np.max(raw) - np.median(raw)), 1.0) \
        + rng.normal(0, spread / 4, 1200)
    # ... and a 6 s hazard 90 s in.
    run[900:960] += 50 * max(spread, 1.0)
    plain = FrameStream.from_config(FrameNodeConfig(backend='torch', run_baseline_s=0.0),
                                    out / 'model')
    assert plain.baseline is None
    flags = _flags_on(plain, run)
    assert flags[:900].mean() > 0.9                     # without it: on all day
    adjusted = FrameStream.from_config(FrameNodeConfig(backend='torch'), out / 'model')
    assert adjusted.baseline.reference == pytest.approx(np.median(raw))
    flags = _flags_on(adjusted, run)
    assert not flags[:900].any() and flags[930:960].all()    # up within 3 s
    assert not flags[1000:].any()
    # A live change to the flag keeps what the run has learnt; a new window starts over.
    learnt = adjusted.baseline
    adjusted.reconfigure(FrameNodeConfig(backend='torch', smoothing=0.5))
    assert adjusted.baseline is learnt
    adjusted.reconfigure(FrameNodeConfig(backend='torch', run_baseline_s=60.0))
    assert adjusted.baseline is not learnt and adjusted.baseline.shift == 0.0
    # The shipped model keeps no held-out driving of a building: no baseline.
    assert FrameStream.from_config(FrameNodeConfig(backend='torch')).baseline is None


def test_a_rate_target_needs_a_model_with_a_heldout_patrol():
    from anomaly_perception.runtime.manifest import ModelError
    with pytest.raises(ModelError, match='needs a model learnt from bags'):
        FrameStream.from_config(FrameNodeConfig(backend='torch',
                                                target_false_alarms_per_hour=3.0))


def test_pipeline_manifest_and_exported_graph_agree_on_a_640x360_frame(trained, rng):
    out, manifest = trained
    from anomaly_perception.runtime.export import export_model
    import onnx
    frame = cv2.resize(rng.integers(0, 255, (9, 16, 3)).astype(np.uint8), (640, 360),
                       interpolation=cv2.INTER_CUBIC)
    frame[:, :5] = 255     # the edges are seen too: the whole view, letterboxed
    frame[:, -5:] = 0
    # 640x360 -> 112x63 by pixel areas, then one mirrored row below (7:4 is a little taller).
    small = cv2.resize(frame, (112, 63), interpolation=cv2.INTER_AREA)
    expected = np.concatenate([small, small[-2:-1]])
    detector = FrameAnomalyDetector.from_model_dir(out / 'model', 'torch')
    np.testing.assert_array_equal(detector.preprocess([frame])[0], expected)
    assert detector.preprocess([frame])[0][:, 0].min() > 200     # the left edge is in view
    # A 4:3 camera: the whole frame in the middle of the input, nothing cropped away.
    four_three = np.zeros((480, 640, 3), np.uint8)
    four_three[:, :20] = 255
    seen = detector.preprocess([four_three])[0]
    assert seen[:, 13:14].min() > 200 and seen[:, 20:90].max() == 0
    entry = export_model(out / 'model')
    graph = onnx.load(str(out / 'model' / entry['file']))
    dims = [d.dim_value or d.dim_param for d in
            graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [64, 112, 3] and entry['inputs'][0]['shape'] == ['batch', 64, 112, 3]
    meta = {p.key: p.value for p in graph.metadata_props}
    assert json.loads(meta['anomaly_perception.preprocessing']) == manifest['preprocessing']
    onnx_detector = FrameAnomalyDetector.from_model_dir(out / 'model', 'onnxruntime')
    a = detector.score([frame]).raw
    b = onnx_detector.score([frame]).raw
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


class _Interrupt(Exception):
    pass


def test_interrupted_training_resumes_identically(bags, trained, tmp_path, monkeypatch):
    out, manifest = trained
    import anomaly_perception.branches.frame.train as frame_module
    real = common.progress

    def interrupting(total, desc, enabled=True):
        bar = real(total, desc, False)
        update = bar.update
        done = [0]

        def counted(n=1):
            update(n)
            done[0] += n
            if desc.startswith('real-nvp') and n and done[0] == 2:
                raise _Interrupt
        bar.update = counted
        return bar
    monkeypatch.setattr(frame_module, 'progress', interrupting)
    with pytest.raises(_Interrupt):
        train_frame_from_bags([bags / 'normal'], tmp_path / 'model', tmp_path / 'work',
                              _tiny_config(), exposed=[_source(bags)], show_progress=False)
    assert not (tmp_path / 'model').exists()   # nothing half-written
    monkeypatch.undo()
    resumed = train_frame_from_bags([bags / 'normal'], tmp_path / 'model', tmp_path / 'work',
                                    _tiny_config(), exposed=[_source(bags)],
                                    show_progress=False)
    a = torch.load(out / 'model' / 'frame_model.pt', weights_only=False)['state_dict']
    b = torch.load(tmp_path / 'model' / 'frame_model.pt', weights_only=False)['state_dict']
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed['calibration'] == manifest['calibration']
    assert resumed['alarms']['on_probability'] == manifest['alarms']['on_probability']


def test_cli_trains_from_bags_and_refuses_bad_input(bags, tmp_path, capsys):
    common_args = ['train', 'frame', '--bag', str(bags / 'normal'), '--work',
                   str(tmp_path / 'w'), '--width', '4', '--ae-epochs', '1',
                   '--density-epochs', '2']
    tagged = f"{bags / 'tagged'}:{bags / 'tags.yaml'}"
    assert main(common_args + ['--out', str(tmp_path / 'm'), '--exposed', tagged,
                               '--exposed-count', '2']) == 0
    printed = capsys.readouterr().out
    assert 'learnt from 140 frames (70 s) of 1 bag(s)' in printed
    assert '2 exposed anomalous frames' in printed
    manifest = load_manifest(tmp_path / 'm')
    assert manifest['provenance']['data']['exposed']['n_frames'] == 2
    # A patrol too short to learn from, and a tagged interval past the bag's end.
    assert main(['train', 'frame', '--bag', str(bags / 'tagged'), '--out',
                 str(tmp_path / 'short')]) == 1
    assert 'give at least 60 s' in capsys.readouterr().err
    late = _intervals(tmp_path / 'late.yaml', (10.0, 20.0, 'debris'))
    assert main(common_args + ['--out', str(tmp_path / 'm2'), '--exposed',
                               f"{bags / 'tagged'}:{late}"]) == 1
    assert 'outside the bag' in capsys.readouterr().err
    assert main(common_args + ['--out', str(tmp_path / 'm3'), '--exposed', 'no-colon']) == 1
    assert 'BAG:INTERVALS.yaml' in capsys.readouterr().err
    assert not (tmp_path / 'm2').exists() and not (tmp_path / 'm3').exists()


def test_every_keeps_every_nth_frame_of_each_bag(bags):
    frames = extract_bag_frames([bags / 'normal', bags / 'tagged'], (16, 32), every=3,
                                show_progress=False)
    assert [s['frames'] for s in frames.sources] == [47, 10]
    assert list(frames.bag_index) == [0] * 47 + [1] * 10
    assert np.all(np.diff(frames.stamps[:47]) == 1_500_000_000)


def test_the_alarm_rate_is_extrapolated_one_decade_per_nine_from_the_last_alarming_level():
    from anomaly_perception.stream.hazard import HazardConfig
    # Ten minutes of held-out driving at 10 Hz, one 1 s excursion to p = 0.99 per minute.
    sequences = []
    for _ in range(10):
        p = np.full(600, 0.5)
        p[300:310] = 0.99
        sequences.append((START + np.arange(600) * 100_000_000, p))
    on, details = on_probability_for_rate(sequences, HazardConfig(), 6.0)
    # The smoothed excursion peaks at 0.5 + 0.49 * (1 - 0.7 ** 10) = 0.9862 (1.86 nines) and
    # must stay above the level for min_on_s: the last alarming level is below that peak, at
    # one alarm per excursion (60 per hour).
    anchor = details['anchor']
    assert 1.0 < anchor['nines'] < 1.86
    assert anchor['alarms_per_hour'] == pytest.approx(60.0, rel=0.01)
    assert details['first_quiet_level_nines'] == pytest.approx(anchor['nines'] + 0.05)
    # 60/h -> 6/h is one decade: one nine higher.
    assert details['level_nines'] == pytest.approx(anchor['nines'] + 1.0, abs=0.01)
    assert on == pytest.approx(1 - 10 ** -details['level_nines'], rel=1e-9)
    # A target above the measured rate never goes below the first quiet level.
    _, loose = on_probability_for_rate(sequences, HazardConfig(), 600.0)
    assert loose['level_nines'] == pytest.approx(anchor['nines'] + 0.05)
