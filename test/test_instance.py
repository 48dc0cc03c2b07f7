"""The instance branch's keyframe pipeline: pixel map -> UGainS -> ids, boxes, refined map."""

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

import logging

from anomaly_perception.branches.instance import ugains
from anomaly_perception.runtime.preprocess import ImageInputError
import cv2
import numpy as np
import pytest

pytest.importorskip('segment_anything')


@pytest.fixture(scope='module')
def segmenter(tiny_pixel_model, tiny_promptable):
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    # Prompts above the tiny model's threshold at pixel FPR 0.3, so there are several.
    return InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, tiny_promptable,
                                                    backend='torch', prompt_fpr=0.3,
                                                    num_points=8)


@pytest.fixture(scope='module')
def image(tiny_pixel_data):
    path = sorted((tiny_pixel_data / 'test_set').iterdir())[0]
    return np.ascontiguousarray(cv2.imread(str(path))[..., ::-1])


def test_outputs_are_consistent_and_at_the_input_resolution(segmenter, image):
    r = segmenter.segment(image)
    h, w = image.shape[:2]
    assert r.ids.shape == r.refined.shape == r.anomaly.shape == (h, w)
    assert r.ids.dtype == np.uint16 and r.refined.dtype == np.float32
    assert len(r.points) > 0 and len(r.scores) > 0
    assert r.ids.max() <= len(r.scores) == len(r.boxes)
    assert np.all(np.diff(r.scores) <= 0), 'highest score first'
    for k, (x0, y0, x1, y1) in enumerate(r.boxes):
        ys, xs = np.nonzero(r.ids == k + 1)
        if len(xs):       # a mask fully covered by higher-scored ones has no pixel left
            assert x0 <= xs.min() and xs.max() <= x1 and y0 <= ys.min() and ys.max() <= y1
    # Prompts only where the map reaches the calibrated threshold at pixel FPR 0.3.
    threshold = segmenter.pixel.calibration.threshold_for_fpr(0.3)
    assert segmenter.config.threshold == pytest.approx(threshold)
    px = r.points.astype(int)
    assert np.all(r.anomaly[px[:, 1], px[:, 0]] >= threshold)
    # Refined = instance score + map where covered, -1 + map elsewhere (UGainS's ensemble).
    uncovered = (r.ids == 0) & np.isfinite(r.anomaly)
    np.testing.assert_allclose(r.refined[uncovered], r.anomaly[uncovered] - 1.0, atol=1e-6)
    first = (r.ids == 1) & np.isfinite(r.anomaly)
    assert first.any()
    assert np.all(r.refined[first] >= r.anomaly[first] + r.scores[0] - 1e-5)
    assert np.isnan(r.refined[~np.isfinite(r.anomaly)]).all()


def test_given_raw_map_equals_running_the_pixel_model(segmenter, image):
    raw = segmenter.pixel.segment(image)[0].anomaly
    a = segmenter.segment(image)
    b = segmenter.segment(image, anomaly_map=raw)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.refined, b.refined, equal_nan=True)
    np.testing.assert_allclose(a.scores, b.scores)


def test_equals_run_ugains_with_the_same_settings(segmenter, image):
    r = segmenter.segment(image)
    direct = ugains.run_ugains(segmenter.promptable, image, r.anomaly, segmenter.config)
    np.testing.assert_allclose(r.scores, direct.scores.numpy())
    np.testing.assert_allclose(r.refined, direct.refined.numpy(), equal_nan=True)
    np.testing.assert_array_equal(r.ids, direct.ids.numpy())


def test_map_of_another_size_is_resized_with_one_warning(segmenter, image, caplog):
    segmenter._warned_size = False
    raw = segmenter.pixel.segment(image)[0].anomaly
    small = cv2.resize(raw, (raw.shape[1] // 2, raw.shape[0] // 2))
    with caplog.at_level(logging.WARNING):
        r1 = segmenter.segment(image, anomaly_map=small)
        r2 = segmenter.segment(image, anomaly_map=small)
    assert r1.resized_map and r2.resized_map
    assert r1.ids.shape == image.shape[:2]
    assert sum('differ in size' in m for m in caplog.messages) == 1


def test_min_score_drops_low_instances(tiny_pixel_model, tiny_promptable, image):
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    all_ = InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, tiny_promptable,
                                                    backend='torch', prompt_fpr=0.3,
                                                    num_points=8).segment(image)
    cut = float(np.median(all_.scores))
    some = InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, tiny_promptable,
                                                    backend='torch', prompt_fpr=0.3,
                                                    num_points=8, min_score=cut).segment(image)
    assert np.all(some.scores >= cut)
    assert len(some.scores) == int(np.sum(all_.scores >= cut))


@pytest.mark.parametrize('bad', [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8),
                                 np.zeros((0, 8, 3), np.uint8)])
def test_bad_images_are_refused(segmenter, bad):
    with pytest.raises(ImageInputError):
        segmenter.segment(bad)


def test_bad_map_is_refused(segmenter, image):
    with pytest.raises(ImageInputError, match='anomaly map'):
        segmenter.segment(image, anomaly_map=np.zeros((4, 4, 2), np.float32))


def test_bad_prompt_fpr(segmenter):
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    with pytest.raises(ValueError, match='prompt_fpr'):
        InstanceAnomalySegmenter(segmenter.pixel, segmenter.promptable, prompt_fpr=0.0)


def test_instances_placed_on_the_floor_with_a_camera(segmenter, image):
    from anomaly_perception.branches.instance.floor import FloorCamera
    h, w = image.shape[:2]
    # Looking steeply down: every pixel below the top fifth sees the floor.
    camera = FloorCamera(fx=w, fy=w, cx=w / 2, cy=h / 2, height=0.3, pitch=np.radians(40))
    r = segmenter.segment(image, camera=camera)
    placed = {hz.instance for hz in r.hazards}
    assert placed and placed <= set(range(1, len(r.scores) + 1))
    for hz in r.hazards:
        assert hz.forward > 0 and hz.width >= 0


def test_score_branch_instance_writes_ids_json_and_refined_map(tiny_pixel_model, tiny_promptable,
                                                               tiny_pixel_data, tmp_path):
    import json

    from anomaly_perception.cli import main
    images = sorted((tiny_pixel_data / 'test_set').iterdir())[:2]
    out = tmp_path / 'scored'
    assert main(['score', *map(str, images), '--branch', 'instance', '--model',
                 str(tiny_promptable), '--pixel-model', str(tiny_pixel_model), '--prompt-fpr',
                 '0.3', '--out', str(out)]) == 0
    for path in images:
        stem = path.stem
        ids = cv2.imread(str(out / f'{stem}.instances.png'), cv2.IMREAD_UNCHANGED)
        rgb = cv2.imread(str(path))
        assert ids.dtype == np.uint16 and ids.shape == rgb.shape[:2]
        meta = json.loads((out / f'{stem}.instances.json').read_text())
        assert [i['id'] for i in meta['instances']] == list(range(1, len(meta['instances']) + 1))
        assert ids.max() <= len(meta['instances'])
        refined = np.load(out / f'{stem}.anomaly.npy')
        assert refined.dtype == np.float32 and refined.shape == rgb.shape[:2]
        assert (out / f'{stem}.overlay.jpg').stat().st_size > 0
    # Without --branch, the promptable model's manifest says instance.
    assert main(['score', str(images[0]), '--model', str(tiny_promptable), '--pixel-model',
                 str(tiny_pixel_model), '--out', str(tmp_path / 'again')]) == 0
    assert (tmp_path / 'again' / f'{images[0].stem}.instances.json').is_file()


def test_without_a_promptable_model_the_regions_of_the_map_are_the_instances(
        tiny_pixel_model, tiny_pixel_data, image, tmp_path):
    import json

    from anomaly_perception.branches.instance.config import InstanceNodeConfig
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    from anomaly_perception.branches.instance.stream import InstanceStream
    from anomaly_perception.cli import main
    seg = InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, 'components',
                                                   backend='torch', prompt_fpr=0.3,
                                                   peak_ratio=0.2)
    assert seg.promptable is None and seg.manifest['name'] == 'components'
    # The regions of the pixel model's own mask (not the prompts' looser threshold) that
    # peak above the threshold at a fifth of the mask's FPR (hysteresis). A map with three
    # squares: one peaks above both thresholds, one only above the mask's, one is under it.
    mask_t, peak_t = seg.pixel.threshold, seg.min_peak
    assert seg.components_config().threshold == mask_t > seg.config.threshold
    assert peak_t == pytest.approx(seg.pixel.calibration.threshold_for_fpr(
        seg.pixel.target_fpr * 0.2)) and peak_t > mask_t
    low = float(seg.pixel.calibration.threshold_for_fpr(0.9))
    u = np.full(image.shape[:2], low, np.float32)
    u[4:12, 4:12] = mask_t + 0.5 * (peak_t - mask_t)
    u[7, 7] = peak_t + 1.0                      # its peak
    u[20:30, 20:30] = mask_t + 0.5 * (peak_t - mask_t)
    u[40:50, 40:50] = 0.5 * (low + mask_t)
    r = seg.segment(image, anomaly_map=u)
    first_square = (u > mask_t) & (np.arange(64) < 12)[:, None]
    assert len(r.scores) == 1 and r.ids[7, 7] == 1 and np.all((r.ids > 0) == first_square)
    direct = ugains.run_components(u, seg.components_config(), min_peak=peak_t)
    np.testing.assert_array_equal(r.ids, direct.ids.numpy())
    np.testing.assert_allclose(r.scores, direct.scores.numpy())
    np.testing.assert_allclose(r.refined, direct.refined.numpy(), equal_nan=True)
    loose = InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, 'components',
                                                     backend='torch', peak_ratio=1.0)
    assert loose.min_peak is None and len(loose.segment(image, anomaly_map=u).scores) == 2
    # The node's stream and score --branch instance take model_dir 'components'.
    stream = InstanceStream.from_config(InstanceNodeConfig(
        backend='torch', prompt_fpr=0.3, instance_fpr=1.0, model_dir='components',
        pixel_model_dir=str(tiny_pixel_model)))
    frame = stream.keyframe(0, image, u)
    np.testing.assert_array_equal(frame.instances.ids, r.ids)
    # It is the default: no promptable model configured, none loaded, the same instances.
    default = InstanceStream.from_config(InstanceNodeConfig(
        backend='torch', prompt_fpr=0.3, instance_fpr=1.0,
        pixel_model_dir=str(tiny_pixel_model)))
    assert default.detector.promptable is None and default.model_dir == 'components'
    np.testing.assert_array_equal(default.keyframe(0, image, u).instances.ids, r.ids)
    r = seg.segment(image)          # the pixel model's own map, as score computes it
    out = tmp_path / 'scored'
    path = sorted((tiny_pixel_data / 'test_set').iterdir())[0]
    assert main(['score', str(path), '--branch', 'instance', '--model', 'components',
                 '--pixel-model', str(tiny_pixel_model), '--prompt-fpr', '0.3',
                 '--instance-fpr', '1', '--out', str(out)]) == 0
    meta = json.loads((out / f'{path.stem}.instances.json').read_text())
    assert len(meta['instances']) == len(r.scores)
    # score --branch instance without --model runs it too.
    assert main(['score', str(path), '--branch', 'instance', '--pixel-model',
                 str(tiny_pixel_model), '--prompt-fpr', '0.3', '--instance-fpr', '1',
                 '--out', str(tmp_path / 'scored_default')]) == 0
    assert json.loads((tmp_path / 'scored_default' / f'{path.stem}.instances.json')
                      .read_text()) == meta


def test_painted_objects_are_measured_as_score_finds_them(tiny_pixel_data, tiny_pixel_model,
                                                          tmp_path, capsys):
    import json

    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    from anomaly_perception.branches.instance.painted import best_iou
    from anomaly_perception.branches.instance.painted import paint_frames
    from anomaly_perception.branches.instance.painted import run_painted_experiment
    from anomaly_perception.cli import main
    from anomaly_perception.data.hazards import HazardsDataset
    from anomaly_perception.io.images import read_image_file
    records = HazardsDataset(tiny_pixel_data).records('test_set', anomalous=False)[:6]
    rgbs = [np.ascontiguousarray(read_image_file(r.path)[..., ::-1]) for r in records]
    frames = paint_frames(rgbs, seed=3)
    for i, ((rgb, void, rim), original) in enumerate(zip(frames, rgbs)):
        if i % 2 == 0:      # left as it was
            assert rgb is original and not void.any() and not rim.any()
        else:               # one object pasted: its pixels changed, the rim apart from it
            assert void.any() and not (void & rim).any()
            assert np.abs(rgb.astype(int) - original)[void].max() > 0
    again = paint_frames(rgbs, seed=3)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(frames, again))
    void, rim = frames[1][1], frames[1][2]
    assert best_iou(void.astype(np.uint16), void, rim) == 1.0
    assert best_iou(np.zeros(void.shape, np.uint16), void, rim) == 0.0
    half = void & (np.cumsum(void.ravel()).reshape(void.shape) <= void.sum() / 2)
    assert best_iou(half.astype(np.uint16), void, rim) == pytest.approx(
        half.sum() / void.sum())
    # The experiment's recall and false instances are those of the score detector.
    report = run_painted_experiment(tiny_pixel_model, {'components': 'components'},
                                    tiny_pixel_data, tmp_path / 'painted', limit=6,
                                    prompt_fpr=0.3, instance_fpr=0.3, show_progress=False)
    row = report['designs']['components']
    seg = InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, 'components',
                                                   prompt_fpr=0.3, instance_fpr=0.3)
    results = [(seg.segment(rgb), void, rim) for rgb, void, rim in frames]
    hits = [best_iou(r.ids, v, m) >= 0.5 for r, v, m in results if v.any()]
    false = [len(r.scores) for r, v, _ in results if not v.any()]
    assert row['painted'] == len(hits) == 3 and row['normal'] == len(false) == 3
    assert row['recall_iou50'] == pytest.approx(np.mean(hits))
    assert row['false_per_normal_image'] == pytest.approx(np.mean(false))
    assert json.loads((tmp_path / 'painted' / 'painted.json').read_text()) == report
    assert '| components |' in (tmp_path / 'painted' / 'painted.md').read_text()
    # From the command line, a malformed --designs is one clear error.
    assert main(['experiment', 'painted', '--data', str(tiny_pixel_data), '--out',
                 str(tmp_path / 'bad'), '--designs', 'components']) == 1
    assert "--designs 'components': expected NAME=DIR" in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()


def test_real_instances_learn_each_place_and_count_what_the_node_would_publish(
        tiny_pixel_data, tmp_path, capsys):
    import json

    from anomaly_perception.branches.instance.config import InstanceNodeConfig
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    from anomaly_perception.branches.instance.real import run_real_instances
    from anomaly_perception.cli import main
    from anomaly_perception.data.hazards import HazardsDataset
    from anomaly_perception.io.images import read_image_file
    frames = tmp_path / 'frames'
    frames.mkdir()
    records = HazardsDataset(tiny_pixel_data).records('test_set')
    normal = [r for r in records if not r.is_anomaly][:2]
    hazard = [r for r in records if r.is_anomaly][:1]
    for name, r in zip(('hall_normal1', 'hall_normal2', 'hall_box'), normal + hazard):
        cv2.imwrite(str(frames / f'{name}.png'), cv2.resize(read_image_file(r.path), (128, 96)))
    report = run_real_instances(frames, tmp_path / 'out', {'components': 'components'},
                                steps=1, train_views=8, cal_views=10, show_progress=False)
    rows = report['rows']
    assert {k: r['frames'] for k, r in rows.items()} == {
        'components|generic|normal': 2, 'components|generic|hazard': 1,
        'components|place|normal': 2, 'components|place|hazard': 1,
        'components|left_out|normal': 2}
    places = tmp_path / 'out' / 'places'
    assert sorted(p.name for p in places.iterdir()) == [
        'hall_all', 'hall_without_hall_normal1', 'hall_without_hall_normal2']
    # Each count is what the node's defaults give on that frame under that place.
    node = InstanceNodeConfig()
    seg = InstanceAnomalySegmenter.from_model_dirs(
        places / 'hall_without_hall_normal2', 'components', prompt_fpr=node.prompt_fpr,
        instance_fpr=node.instance_fpr, peak_ratio=node.component_peak_ratio)
    rgb = np.ascontiguousarray(read_image_file(frames / 'hall_normal2.png')[..., ::-1])
    assert report['frames']['components|left_out|hall_normal2']['instances'] == len(
        seg.segment(rgb).scores)
    assert rows['components|place|normal']['mean'] == np.mean(
        [report['frames'][f'components|place|hall_normal{k}']['instances'] for k in (1, 2)])
    out = tmp_path / 'out'
    assert json.loads((out / 'real_instances.json').read_text()) == report
    assert '| components | left out | normal | 2 |' in (out / 'real_instances.md').read_text()
    assert (out / 'real_instances.jpg').stat().st_size > 0
    # A folder without normal frames is one clear error.
    (tmp_path / 'none').mkdir()
    assert main(['experiment', 'real-instances', '--frames', str(tmp_path / 'none'),
                 '--out', str(tmp_path / 'x')]) == 1
    assert 'no <place>_normal<n> frames' in capsys.readouterr().err
