"""The pixel branch end to end: ``score --branch pixel``, replay, and the node under rclpy.

The node's maps must equal ``score``'s for the same image, and replay's for
the same bag: what is evaluated offline is what runs on the robot.
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

from conftest import spin_until
import cv2
import numpy as np
import pytest

STAMP0 = 1_767_225_600_000_000_000


def _frame(seed=0, shape=(90, 160)):
    rng = np.random.default_rng(seed)
    frame = np.zeros((*shape, 3), np.uint8)
    frame[shape[0] // 2:] = (90, 110, 120)
    frame[:shape[0] // 2] = (200, 190, 180)
    noise = rng.integers(0, 40, frame.shape, dtype=np.uint8)
    return frame + noise


def test_score_writes_maps_at_the_input_resolution(tiny_pixel_model, tmp_path, capsys):
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.cli import main
    bgr = _frame(1, (120, 200))
    cv2.imwrite(str(tmp_path / 'a.png'), bgr)
    out = tmp_path / 'out'
    assert main(['score', '--branch', 'pixel', '--model', str(tiny_pixel_model),
                 str(tmp_path / 'a.png'), '--out', str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ['a.anomaly.npy', 'a.overlay.jpg',
                                                     'a.semantic.png']
    anomaly = np.load(out / 'a.anomaly.npy')
    assert anomaly.dtype == np.float32 and anomaly.shape == (120, 200)
    semantic = cv2.imread(str(out / 'a.semantic.png'), cv2.IMREAD_UNCHANGED)
    assert semantic.shape == (120, 200) and semantic.dtype == np.uint8
    assert cv2.imread(str(out / 'a.overlay.jpg')).shape == (120, 200, 3)
    direct = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model).segment(
        bgr, channel_order='bgr')[0]
    np.testing.assert_array_equal(anomaly, direct.anomaly)
    np.testing.assert_array_equal(semantic, direct.semantic)
    assert main(['score', '--branch', 'pixel', '--model', str(tiny_pixel_model),
                 str(tmp_path / 'a.png')]) == 1
    assert '--out' in capsys.readouterr().err


def test_replay_runs_frame_and_pixel_on_the_same_frames(tiny_pixel_model, patrol_bag_5s,
                                                        tmp_path):
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.branches.pixel.recorder import GLOBAL_TYPES
    from anomaly_perception.branches.registry import get_branches
    from anomaly_perception.io.bags import BagReader
    from anomaly_perception.replay.engine import replay
    report = replay(patrol_bag_5s, tmp_path / 'r', get_branches('frame,pixel'),
                    model_dirs={'pixel': tiny_pixel_model}, backend='torch',
                    show_progress=False)
    assert report['pipelines'] == ['frame', 'pixel']
    frame, pixel = report['branches']['frame'], report['branches']['pixel']
    assert 'auroc' in frame and 'hazard' in frame
    assert pixel['model'] == str(tiny_pixel_model)
    px = pixel['pixels']
    with BagReader(patrol_bag_5s) as bag:
        kinds = [m.results[0].class_id for _, _, m in bag.messages(['/robomaster/labels/frame'])]
    assert px['frames'] == sum(k not in GLOBAL_TYPES for k in kinds) > 0
    for key in ('auprc', 'fpr95', 'auroc', 'f1_star'):
        assert 0.0 <= px[key] <= 1.0, key
    assert 0 <= px['events_located'] <= px['n_local_events']
    assert 0.0 <= pixel['frame']['auroc'] <= 1.0
    topics = pixel['output_topics']
    for key in ('anomaly_map', 'anomaly_mask', 'semantic', 'overlay', 'score', 'label_info'):
        assert topics[key] == f'/robomaster/pixel_anomaly/{key}'
    assert frame['output_topics']['score'] == '/robomaster/frame_anomaly/score'
    seg = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model)
    with BagReader(patrol_bag_5s) as bag:
        first = next(iter(bag.read_images()))
    with BagReader(tmp_path / 'r' / 'outputs') as out:
        maps = [m for _, _, m in out.messages([topics['anomaly_map']])]
        counts = {k: out.topics[topics[k]].count for k in ('anomaly_mask', 'semantic', 'overlay')}
        assert out.topics[topics['label_info']].count == 1
        assert out.topics[frame['output_topics']['score']].count == len(maps)
    assert len(maps) == report['frames_scored'] and set(counts.values()) == {len(maps)}
    from anomaly_perception.io.images import image_to_numpy
    assert maps[0].header.stamp == first.header.stamp
    # Replay runs batches of 32, the node one frame at a time: equal to float32 rounding.
    np.testing.assert_allclose(image_to_numpy(maps[0]), seg.segment(first.image)[0].anomaly,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.ros
def test_pixel_node_publishes_every_topic_with_the_input_header_and_scores_maps(
        tiny_pixel_model, ros_context, tmp_path):
    from anomaly_perception.cli import main
    from anomaly_perception.io.images import image_to_numpy
    from anomaly_perception.io.images import numpy_to_image_fields
    from anomaly_perception.nodes.pixel_anomaly_node import PixelAnomalyNode
    from anomaly_perception.nodes.rclpy_messages import RclpyMessageFactory
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSDurabilityPolicy
    from rclpy.qos import QoSProfile

    node = PixelAnomalyNode(context=ros_context, parameter_overrides=[
        Parameter('model_dir', value=str(tiny_pixel_model)),
        Parameter('backend', value='onnxruntime'),
        Parameter('qos_reliability', value='reliable')])
    helper = rclpy.create_node('pixel_node_test_helper', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(helper)
    f = RclpyMessageFactory()
    got = {}
    keys = ('anomaly_map', 'anomaly_mask', 'semantic', 'overlay')
    try:
        assert node.autostart()
        for key in keys:
            helper.create_subscription(f._cls('sensor_msgs/msg/Image'), f'/pixel_anomaly/{key}',
                                       lambda m, k=key: got.setdefault(k, []).append(m), 10)
        for key in ('score', 'hazard'):
            helper.create_subscription(f._cls('vision_msgs/msg/Classification'),
                                       f'/pixel_anomaly/{key}',
                                       lambda m, k=key: got.setdefault(k, []).append(m), 10)
        # A late subscriber still gets the label info (transient local).
        helper.create_subscription(
            f._cls('vision_msgs/msg/LabelInfo'), '/pixel_anomaly/label_info',
            lambda m: got.setdefault('label_info', []).append(m),
            QoSProfile(depth=1, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL))
        pub = helper.create_publisher(f._cls('sensor_msgs/msg/Image'), '/image', 10)
        overlay_pub = node._output_publishers['overlay']
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0
                          and overlay_pub.get_subscription_count() > 0, 10)
        bgr = _frame(2)
        header = f.header(STAMP0, 'robot/camera_optical_link')
        pub.publish(f.new('sensor_msgs/msg/Image', header=header,
                          **numpy_to_image_fields(bgr, 'bgr8')))
        wanted = (*keys, 'score', 'hazard', 'label_info')
        assert spin_until(executor, lambda: all(k in got for k in wanted), 30), sorted(got)
    finally:
        node.close()
        helper.destroy_node()
        executor.shutdown()
    for key in (*keys, 'score', 'hazard'):
        msg = got[key][0]
        assert msg.header.stamp.sec == header.stamp.sec, key
        assert msg.header.stamp.nanosec == header.stamp.nanosec, key
        assert msg.header.frame_id == 'robot/camera_optical_link', key
    for key, encoding in (('anomaly_map', '32FC1'), ('anomaly_mask', 'mono8'),
                          ('semantic', 'mono8'), ('overlay', 'rgb8')):
        assert got[key][0].encoding == encoding and (got[key][0].height,
                                                     got[key][0].width) == (90, 160), key
    names = [c.class_name for c in got['label_info'][0].class_map]
    assert names[:2] == ['floor', 'wall']
    assert [r.class_id for r in got['score'][0].results] in (['anomaly', 'raw_score'],
                                                             ['unscorable'])
    # The hazard flag: one frame cannot turn it on (it must persist for min_on_s).
    assert [r.class_id for r in got['hazard'][0].results] == ['clear']
    # The node's maps equal `score --branch pixel`'s for the same image and backend.
    cv2.imwrite(str(tmp_path / 'same.png'), bgr)
    assert main(['score', '--branch', 'pixel', '--model', str(tiny_pixel_model), '--backend',
                 'onnxruntime', str(tmp_path / 'same.png'), '--out', str(tmp_path / 's')]) == 0
    np.testing.assert_array_equal(image_to_numpy(got['anomaly_map'][0]),
                                  np.load(tmp_path / 's' / 'same.anomaly.npy'))
    np.testing.assert_array_equal(image_to_numpy(got['semantic'][0]),
                                  cv2.imread(str(tmp_path / 's' / 'same.semantic.png'),
                                             cv2.IMREAD_UNCHANGED))


def test_evaluate_pixel_scores_the_deployed_pipeline_at_full_resolution(
        tiny_pixel_model, tiny_pixel_data, tmp_path):
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.branches.pixel.evaluate import evaluate_pixel
    from anomaly_perception.branches.pixel.evaluate import GLOBAL_TYPES
    from anomaly_perception.data.hazards import HazardsDataset
    from anomaly_perception.metrics.binary import binary_curve
    report = evaluate_pixel(tiny_pixel_model, tiny_pixel_data, tmp_path / 'e',
                            show_progress=False)
    assert {p.name for p in (tmp_path / 'e').iterdir()} >= {'report.json', 'pr.png'}
    assert not set(report['per_type']) & GLOBAL_TYPES
    for key in ('miou', 'pixel_auprc', 'pixel_fpr95', 'pixel_auroc'):
        assert 0.0 <= report[key] <= 1.0, key
    # The same AP computed directly, one shot, from the segmenter's full-resolution maps.
    seg = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model)
    records = [r for r in HazardsDataset(tiny_pixel_data).records('test_set')
               if r.label_name not in GLOBAL_TYPES]
    assert report['frames'] == len(records)
    labels, scores = [], []
    for r in records:
        result = seg.segment(cv2.imread(str(r.path)), channel_order='bgr')[0]
        mask = tiny_pixel_data / 'masks' / (r.path.stem + '.png')
        truth = (cv2.imread(str(mask), cv2.IMREAD_UNCHANGED) > 0 if mask.is_file()
                 else np.zeros(result.anomaly.shape, bool))
        valid = np.isfinite(result.anomaly)
        labels.append(truth[valid])
        scores.append(result.anomaly[valid])
    direct = binary_curve(np.concatenate(labels), np.concatenate(scores))
    assert report['pixel_auprc'] == pytest.approx(direct.average_precision(), abs=2e-3)
    assert report['pixel_fpr95'] == pytest.approx(direct.fpr_at_tpr(0.95), abs=2e-3)
    # What FPR95 is made of: the types split the anomaly pixels and the pooled misses.
    pooled = report['pooled_fpr']
    assert pooled['recall'] == pytest.approx(
        direct.tpr_at_threshold(direct.threshold_at_fpr(pooled['fpr'])), abs=2e-3)
    per_type = report['per_type'].values()
    assert sum(m['pixels'] for m in per_type) == direct.n_pos
    assert sum(m['share'] for m in per_type) == pytest.approx(1.0)
    assert sum(m['missed_share_at_pooled_fpr'] for m in per_type) == pytest.approx(
        1.0 - pooled['recall'])


def test_evaluate_pixel_on_a_common_region(tiny_pixel_model, tiny_pixel_data, tmp_path):
    from anomaly_perception.branches.pixel.evaluate import evaluate_pixel
    full = evaluate_pixel(tiny_pixel_model, tiny_pixel_data, tmp_path / 'a',
                          show_progress=False)
    strip = evaluate_pixel(tiny_pixel_model, tiny_pixel_data, tmp_path / 'b',
                           show_progress=False, region_aspect=16 / 9)
    # The 16:9 strip (64x36 of the 64x64 frames); the model sees every pixel (letterboxed).
    assert strip['region_aspect'] == pytest.approx(16 / 9)
    n_full = sum(m['pixels'] for m in full['per_type'].values())
    n_strip = sum(m['pixels'] for m in strip['per_type'].values())
    assert 0 < n_strip < n_full
    square = evaluate_pixel(tiny_pixel_model, tiny_pixel_data, tmp_path / 'c',
                            show_progress=False, region_aspect=1.0)
    assert sum(m['pixels'] for m in square['per_type'].values()) == n_full


def test_pixel_loss_study_shares_one_encoder_and_scores_every_loss(tiny_pixel_data, tmp_path):
    import torch

    from anomaly_perception.branches.pixel.experiments import run_pixel_losses
    from anomaly_perception.branches.pixel.experiments import STUDY_SCORES
    from anomaly_perception.branches.pixel.train import PixelTrainingConfig
    from anomaly_perception.training import load_checkpoint
    config = PixelTrainingConfig(input_shape=(32, 32), encoder_epochs=1, decoder_epochs=1,
                                 batch_size=16, train_every=2)
    results = run_pixel_losses(tiny_pixel_data, tmp_path / 'x', config, ('ce', 'eiml+focal'),
                               cache_dir=tmp_path / 'cache', show_progress=False)
    assert list(results['losses']) == ['ce', 'eiml+focal']
    for row in results['losses'].values():
        assert set(row['scores']) == set(STUDY_SCORES)
        for m in row['scores'].values():
            assert 0.0 <= m['auprc'] <= 1.0 and 0.0 <= m['fpr95'] <= 1.0
    # Both decoder stages started from the one shared encoder stage.
    shared = load_checkpoint(tmp_path / 'x' / 'work' / 'encoder' / 'checkpoint.pt')['model']
    for loss in ('ce', 'eiml_focal'):
        state = load_checkpoint(tmp_path / 'x' / 'work' / loss / 'checkpoint.pt')['state']
        assert state['encoder_from'].endswith('checkpoint.pt')
        assert [h['stage'] for h in state['history']].count('encoder') == 1
    key = next(k for k in shared if k.startswith('encoder.') and k.endswith('weight'))
    assert torch.is_tensor(shared[key])
    assert (tmp_path / 'x' / 'pixel_losses.md').read_text().count('| ce |') == len(STUDY_SCORES)
    # Started again, nothing is trained twice.
    before = (tmp_path / 'x' / 'models' / 'ce' / 'manifest.yaml').stat().st_mtime_ns
    run_pixel_losses(tiny_pixel_data, tmp_path / 'x', config, ('ce',),
                     cache_dir=tmp_path / 'cache', show_progress=False, evaluate=False)
    assert (tmp_path / 'x' / 'models' / 'ce' / 'manifest.yaml').stat().st_mtime_ns == before


def test_bench_runs_the_pixel_branch_on_each_backend(tiny_pixel_model):
    from anomaly_perception.branches.registry import get_branch
    from anomaly_perception.runtime.bench import run_bench
    results = run_bench(get_branch('pixel'), tiny_pixel_model, ['torch', 'onnxruntime'], [1, 2],
                        seconds=0.2)
    assert results['branch'] == 'pixel' and not results['skipped']
    assert {(c['backend'], c['batch']) for c in results['cases']} == {
        ('torch', 1), ('torch', 2), ('onnxruntime', 1), ('onnxruntime', 2)}
    for case in results['cases']:
        assert case['frames_per_s'] > 0 and case['speedup_vs_torch_whole'] > 0
