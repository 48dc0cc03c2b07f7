"""``train pixel --bag``: pasted cut-outs, learning a place from bags, sizes and bad input."""

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

from pathlib import Path

from anomaly_perception.branches.pixel.paste import CutoutBank
from anomaly_perception.branches.pixel.paste import PasteOptions
from anomaly_perception.branches.pixel.paste import Paster
from anomaly_perception.branches.pixel.paste import user_cutouts
from anomaly_perception.branches.pixel.place import PlaceTrainingConfig
from anomaly_perception.branches.pixel.place import position_offset
from anomaly_perception.branches.pixel.place import train_pixel_from_bags
from anomaly_perception.cli import main
from anomaly_perception.data.bag_frames import BagFramesError
from anomaly_perception.io.bag_writer import BagWriter
from anomaly_perception.io.bags import BagError
from anomaly_perception.runtime.manifest import load_manifest
from anomaly_perception.training import TrainingError
from conftest import corridor_view
from conftest import write_image_bag
import cv2
import numpy as np
import pytest

TINY = {'steps': 3, 'batch_size': 4, 'checkpoint_every': 1, 'sources': ('procedural',)}


@pytest.fixture(scope='module')
def place_bag(tmp_path_factory):
    """Write 25 s of 'normal driving' at 3 Hz from a 4:3 camera (80x60)."""
    rng = np.random.default_rng(0)
    frames = [corridor_view(rng, 60, 80, 4 * np.sin(i / 9)) for i in range(75)]
    path = tmp_path_factory.mktemp('place') / 'normal'
    write_image_bag(path, frames, period_ns=333_333_333)
    return path


# --- pasting ------------------------------------------------------------------------------------


def test_pasted_cutouts_land_in_the_frame_and_are_labelled():
    bank = CutoutBank(('world', 'procedural'))
    assert len(bank.world) > 50
    types = {name for _, name in bank.world}
    assert {'human', 'cable', 'cones'} <= types
    paster = Paster(bank)
    rng = np.random.default_rng(1)
    image = np.full((144, 256, 3), 120, np.uint8)
    region = (0, 32, 144, 192)       # a 4:3 frame letterboxed into 144x256
    changed_any = False
    for _ in range(20):
        out, void, rim = paster.paste(image, rng, region)
        assert out.shape == image.shape and void.shape == rim.shape == (144, 256)
        assert not (void & rim).any()
        assert not void[:, :32].any() and not void[:, 224:].any()    # never in the bands
        changed = np.abs(out.astype(int) - image).sum(-1) > 20
        # Pasted pixels are what changed; the rest of the frame is (almost) untouched.
        if void.any():
            changed_any = True
            assert changed[void].mean() > 0.5
            assert changed[~(void | rim)].mean() < 0.02
    assert changed_any


def test_surface_changes_alter_the_floor_itself_and_label_what_changed():
    paster = Paster(CutoutBank(('surface',)), PasteOptions(per_image=(1, 1)))
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:144, 0:256]
    image = np.stack([100 + 40 * np.sin(xx / 3.0), 90 + 30 * np.cos(yy / 4.0),
                      np.full((144, 256), 110.0)], -1).astype(np.uint8)
    region = (18, 0, 108, 256)          # a 640x270 camera letterboxed into 144x256
    labelled = 0
    for _ in range(30):
        out, void, rim = paster.paste(image, rng, region)
        assert not (void & rim).any()
        assert not void[:18].any() and not void[126:].any()      # never in the bands
        diff = np.abs(out.astype(int) - image).sum(-1)
        assert (diff > 24)[~(void | rim)].mean() < 0.01          # only the patch moved
        if void.any():
            labelled += 1
            assert (diff > 20)[void].mean() > 0.98              # (rounding to uint8)
            # A floor patch: under the horizon (35 % down the frame), wider than tall.
            ys, xs = np.nonzero(void)
            assert ys.min() >= 18 + 0.35 * 108 and np.ptp(xs) >= np.ptp(ys)
    assert labelled >= 20


def test_cutouts_also_land_off_the_floor():
    paster = Paster(CutoutBank(('procedural',)), PasteOptions(anywhere=0.3))
    rng = np.random.default_rng(4)
    image = np.full((144, 256, 3), 120, np.uint8)
    tops = []
    for _ in range(40):
        _, void, _ = paster.paste(image, rng)
        if void.any():
            tops.append(np.nonzero(void)[0].max())
    # Floor pastes end below the horizon; some (walls, ceilings) end above it.
    assert min(tops) < 0.35 * 144 and max(tops) > 0.6 * 144


def test_user_cutouts_need_rgba_images(tmp_path):
    with pytest.raises(TrainingError, match='is not a folder'):
        user_cutouts(tmp_path / 'nowhere')
    cv2.imwrite(str(tmp_path / 'flat.png'), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(TrainingError, match='no RGBA image.*flat.png'):
        user_cutouts(tmp_path)
    rgba = np.zeros((30, 20, 4), np.uint8)
    rgba[5:25, 5:15] = (0, 0, 255, 255)            # BGRA red box
    cv2.imwrite(str(tmp_path / 'box.png'), rgba)
    cuts = user_cutouts(tmp_path)
    assert [name for _, name in cuts] == ['box']
    assert cuts[0][0][10, 10].tolist() == [255, 0, 0, 255]    # RGBA


def test_other_run_views_change_the_pose_once_per_block():
    from anomaly_perception.branches.pixel.place import other_run_views
    rng = np.random.default_rng(0)
    images = np.stack([corridor_view(rng, 60, 80, 0.0)] * 6)
    views = other_run_views(images, [np.arange(3), np.arange(3, 6)], seed=0)
    assert views.shape == images.shape and views.dtype == np.uint8
    assert (views[0] == views[1]).all() and (views[3] == views[5]).all()   # one pose a block
    assert not (views[0] == views[3]).all() and not (views[0] == images[0]).all()
    assert len({v.tobytes() for v in other_run_views(images, None, seed=0)}) == 6


def test_position_offset_is_what_is_always_hot():
    maps = np.random.default_rng(0).random((40, 32, 64)).astype(np.float32) * 0.1
    maps[:, 0:8, 0:8] += 0.8          # a corner that is hot on all normal driving
    offset = position_offset(maps, (0, 0, 32, 64), (4, 8), 0.99)
    assert offset.shape == (4, 8)
    assert offset[0, 0] > 0.7 and np.all(offset.ravel()[1:] < 0.05)
    # Cells in a letterbox band (outside the frame) get nothing.
    assert position_offset(maps, (0, 16, 32, 32), (4, 8), 0.99)[:, 0].tolist() == [0.0] * 4


# --- learning a place ---------------------------------------------------------------------------


def test_train_pixel_from_bags_learns_calibrates_and_resumes(tiny_void_model, place_bag,
                                                             tmp_path, monkeypatch):
    import anomaly_perception.branches.pixel.place as place
    config = PlaceTrainingConfig(**TINY)
    calls = {'n': 0}
    real = place.make_batch

    def interrupted(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(place, 'make_batch', interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_pixel_from_bags([place_bag], tmp_path / 'place', tmp_path / 'work', config,
                              init_from=tiny_void_model, show_progress=False)
    assert not (tmp_path / 'place').exists()          # nothing half-written
    calls['n'] = -100                                  # resumed: steps 3 of 3 only
    monkeypatch.setattr(place, 'make_batch', lambda *a, **k: (calls.__setitem__(
        'n', calls['n'] + 1), real(*a, **k))[1])
    manifest = train_pixel_from_bags([place_bag], tmp_path / 'place', tmp_path / 'work', config,
                                     init_from=tiny_void_model, show_progress=False)
    assert calls['n'] == -99
    assert [h['step'] for h in manifest['metrics']['history']] == [1, 2, 3]
    assert manifest['preprocessing']['crop'] == 'letterbox'
    prov = manifest['provenance']
    assert prov['resolution'] == [80, 60] and prov['region'] == [0, 6, 32, 43]
    assert prov['frames']['train'] + prov['frames']['calibration'] <= 75
    assert prov['frames']['calibration'] >= 10
    grid = manifest['position_offset']
    assert len(grid['values']) == grid['grid'][0] * grid['grid'][1]
    assert manifest['threshold']['target_fpr'] == config.target_fpr
    assert 'pasted_auprc' in manifest['metrics']['held_out']
    # Exported, stored at half size, and the ONNX path agrees with PyTorch on every pixel.
    assert manifest['weights_storage'] == 'fp16'
    assert manifest['exports']['onnx_fp32']['weights'] == 'fp16'
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    image = corridor_view(np.random.default_rng(5), 60, 80, 0.0)
    a = PixelAnomalySegmenter.from_model_dir(tmp_path / 'place', 'torch').segment(image)[0]
    b = PixelAnomalySegmenter.from_model_dir(tmp_path / 'place', 'onnxruntime').segment(image)[0]
    assert np.isfinite(a.anomaly).all() and a.anomaly.shape == (60, 80)
    np.testing.assert_allclose(b.anomaly, a.anomaly, rtol=1e-4, atol=1e-5)
    # The place's threshold holds on its own held-out driving: the mask stays small.
    frames = [corridor_view(np.random.default_rng(9 + i), 60, 80, 4 * np.sin(i)) for i in range(6)]
    shares = [r.mask.mean() for r in PixelAnomalySegmenter.from_model_dir(
        tmp_path / 'place').segment(frames)]
    assert np.mean(shares) < 0.1
    # The held-out blocks are kept for the hazard flag: the node sets its level for a rate.
    alarms = manifest['alarms']
    assert alarms['target_false_alarms_per_hour'] == config.target_false_alarms_per_hour
    blocks = alarms['heldout']['blocks']
    # Each held-out block as driven, then as another run would see it (a pose change).
    assert sum(len(b['raw']) for b in blocks) == 2 * prov['frames']['calibration']
    half = len(blocks) // 2
    assert [b['t_ms'] for b in blocks[:half]] == [b['t_ms'] for b in blocks[half:]]
    assert all(b['t_ms'][0] == 0 and np.all(np.diff(b['t_ms']) > 0) for b in blocks)
    from anomaly_perception.branches.pixel.config import PixelNodeConfig
    from anomaly_perception.branches.pixel.stream import PixelStream
    stream = PixelStream.from_config(PixelNodeConfig(model_dir=str(tmp_path / 'place')))
    assert stream.alarm_details['target_false_alarms_per_hour'] == 2.0
    on = stream.hazard.config.on_probability
    assert on == pytest.approx(1 - 10 ** -stream.alarm_details['level_nines'])
    states = [r.state for r in stream.process([i * 10**8 for i in range(6)], frames)]
    assert all(s is not None for s in states) and not any(s.flag for s in states)
    # The run baseline starts from the held-out driving's level and learns this run's frames.
    held = [v for b in blocks for v in b['raw']]
    assert stream.baseline.reference == pytest.approx(np.median(held))
    scores = [r.pixels.frame_score for r in stream.process([10**9 + i * 10**8 for i in range(6)],
                                                           frames)]
    assert stream.baseline.shift == pytest.approx(np.median(scores) - np.median(held))
    off = PixelStream.from_config(PixelNodeConfig(model_dir=str(tmp_path / 'place'),
                                                  run_baseline_s=0.0))
    assert off.baseline is None
    stream.reconfigure(PixelNodeConfig(model_dir=str(tmp_path / 'place'),
                                       target_false_alarms_per_hour=50.0))
    assert stream.hazard.config.on_probability <= on


def test_train_pixel_bag_bad_input_gives_one_clear_error(tiny_void_model, tiny_pixel_model,
                                                         place_bag, tmp_path, capsys):
    config = PlaceTrainingConfig(**TINY)
    # A bag without an image topic.
    empty = tmp_path / 'no_images'
    with BagWriter(empty, storage='mcap') as bag:
        bag.add_topic('/chatter', 'std_msgs/msg/String')
    with pytest.raises(BagError, match='image'):
        train_pixel_from_bags([empty], tmp_path / 'm1', tmp_path / 'w1', config,
                              init_from=tiny_void_model, show_progress=False)
    # Too few frames.
    short = tmp_path / 'short'
    write_image_bag(short, [np.zeros((60, 80, 3), np.uint8)] * 12, period_ns=100_000_000)
    with pytest.raises(BagFramesError, match='Too little normal driving'):
        train_pixel_from_bags([short], tmp_path / 'm2', tmp_path / 'w2', config,
                              init_from=tiny_void_model, show_progress=False)
    # Two cameras of different sizes.
    other = tmp_path / 'other'
    write_image_bag(other, [np.zeros((72, 128, 3), np.uint8)] * 75, period_ns=333_333_333)
    with pytest.raises(BagFramesError, match='different sizes.*80x60'):
        train_pixel_from_bags([place_bag, other], tmp_path / 'm3', tmp_path / 'w3', config,
                              init_from=tiny_void_model, show_progress=False)
    # A starting model without a void class.
    with pytest.raises(TrainingError, match='no void class'):
        train_pixel_from_bags([place_bag], tmp_path / 'm4', tmp_path / 'w4', config,
                              init_from=tiny_pixel_model, show_progress=False)
    for k in range(1, 5):
        assert not (tmp_path / f'm{k}').exists()
    # The CLI says it in one line and returns 1.
    assert main(['train', 'pixel', '--bag', str(short), '--out', str(tmp_path / 'm5'),
                 '--init-from', str(tiny_void_model), '--sources', 'procedural']) == 1
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith('frames from bags')]      # the progress bar
    assert len(err) == 1 and 'Too little normal driving' in err[0]
    assert main(['train', 'pixel', '--data', 'x', '--out', str(tmp_path / 'm6'),
                 '--cutouts', 'y']) == 1
    assert '--cutouts is an option of learning a place' in capsys.readouterr().err
    assert not (tmp_path / 'm5').exists() and not (tmp_path / 'm6').exists()


# --- the shipped model --------------------------------------------------------------------------


def test_shipped_pixel_model_is_small_and_its_graph_agrees():
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.runtime.manifest import shipped_model_dir
    model = shipped_model_dir('pixel_erfnet')
    manifest = load_manifest(model)
    total = sum(f['bytes'] for f in manifest['files'].values())
    assert total <= 20e6, f'{total / 1e6:.1f} MB'
    assert sum(p.stat().st_size for p in Path(model).iterdir()) <= 20.2e6
    image = np.random.default_rng(3).integers(0, 255, (480, 640, 3), np.uint8)
    a = PixelAnomalySegmenter.from_model_dir(model, 'torch').segment(image)[0]
    b = PixelAnomalySegmenter.from_model_dir(model, 'onnxruntime').segment(image)[0]
    np.testing.assert_allclose(b.anomaly, a.anomaly, rtol=1e-3, atol=1e-4)
    assert (a.semantic == b.semantic).mean() > 0.999
    assert np.abs(b.failure - a.failure).max() < 1e-3


def test_evaluate_bag_scores_every_labelled_frame_with_any_scorer(patrol_bag_5s):
    from anomaly_perception.branches.pixel.place_eval import evaluate_bag
    from anomaly_perception.branches.pixel.place_eval import labelled_frames
    frames = list(labelled_frames(patrol_bag_5s))
    assert len(frames) == 120 and frames[0][1].shape == (360, 640, 3)
    truth = {stamp: ids > 0 for stamp, _, ids, _ in frames}
    order = iter([stamp for stamp, _, _, _ in frames])

    def oracle(stamps, images):      # the label itself as the score: a perfect scorer
        out = []
        for stamp in stamps:
            assert stamp == next(order)
            mask = truth[stamp]
            out.append((mask.astype(np.float32), mask, False))
        return out

    row, examples = evaluate_bag(patrol_bag_5s, oracle, keep_examples={frames[3][0]})
    assert row['frames'] == 120 and list(examples) == [frames[3][0]]
    if any(t.any() for t in truth.values()):
        assert row['auprc'] == pytest.approx(1.0) and row['fpr95'] == pytest.approx(0.0)
    assert row['normal_pixels_flagged'] == 0.0 and row['events']['false_alarms'] == 0


def test_train_pixel_bag_command_writes_a_place_model(tiny_void_model, place_bag, tmp_path,
                                                      capsys):
    assert main(['train', 'pixel', '--bag', str(place_bag), '--out', str(tmp_path / 'm'),
                 '--work', str(tmp_path / 'w'), '--init-from', str(tiny_void_model),
                 '--sources', 'procedural', '--steps', '2', '--batch-size', '4',
                 '--target-fpr', '0.01']) == 0
    out = capsys.readouterr().out
    assert f"written {tmp_path / 'm'}: learnt from" in out and 'held-out frames' in out
    manifest = load_manifest(tmp_path / 'm')
    assert manifest['threshold']['target_fpr'] == 0.01
    assert manifest['training']['steps'] == 2 and manifest['training']['lr'] == 1e-4
    assert manifest['provenance']['resolution'] == [80, 60]
