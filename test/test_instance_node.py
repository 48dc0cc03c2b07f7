"""The instance branch end to end: its stream's keyframes, replay, and the node under rclpy.

The node's refined map must equal ``score --branch instance``'s for the same
image and pixel map, and replay's instance topics the stream's: what is
evaluated offline is what runs on the robot.
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

pytest.importorskip('segment_anything')

STAMP0 = 1_767_225_600_000_000_000
SECOND = 1_000_000_000


def _config(**changes):
    from anomaly_perception.branches.instance.config import InstanceNodeConfig
    values = {'backend': 'torch', 'prompt_fpr': 0.3, 'num_points': 8}
    values.update(changes)
    return InstanceNodeConfig(**values)


@pytest.fixture(scope='module')
def stream(tiny_pixel_model, tiny_promptable):
    from anomaly_perception.branches.instance.stream import InstanceStream
    return InstanceStream.from_config(_config(model_dir=str(tiny_promptable),
                                              pixel_model_dir=str(tiny_pixel_model)))


@pytest.fixture(scope='module')
def rgb(tiny_pixel_data):
    path = sorted((tiny_pixel_data / 'test_set').iterdir())[0]
    bgr = cv2.resize(cv2.imread(str(path)), (160, 96), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(bgr[..., ::-1])


def test_keyframes_by_period_and_by_a_rise_of_the_frame_probability(stream, rgb, monkeypatch):
    from anomaly_perception.stream.keyframes import KeyframePolicy
    stream.policy = KeyframePolicy(period_s=2.0, rise=0.2)
    probabilities = iter([0.1, 0.15, 0.2, 0.5, 0.55, 0.6, 0.1])
    monkeypatch.setattr(stream.detector, 'frame_probability', lambda m: next(probabilities))
    stamps = [STAMP0 + int(t * SECOND) for t in (0.0, 0.5, 1.0, 1.2, 1.5, 3.3, 3.6)]
    anomaly_map = np.zeros(rgb.shape[:2], np.float32)
    frames = stream.process(stamps, [rgb] * len(stamps), [anomaly_map] * len(stamps))
    assert [(f.keyframe, f.reason) for f in frames] == [
        (True, 'first'), (False, ''), (False, ''), (True, 'rise'), (False, ''),
        (True, 'period'), (False, '')]
    for frame in frames:
        assert (frame.instances is not None) == frame.keyframe
        assert (frame.image is not None) == frame.keyframe
    key = frames[0].instances
    assert key.ids.shape == key.refined.shape == rgb.shape[:2]


def test_frame_probability_reads_the_pixel_models_frame_calibration(stream, rgb):
    pixel = stream.detector.pixel
    result = pixel.segment(rgb)[0]
    probability = stream.detector.frame_probability(result.anomaly)
    assert 0.0 <= probability <= 1.0
    # The full-size map's quantile, calibrated as the pixel model's own frame score.
    q = np.quantile(result.anomaly[np.isfinite(result.anomaly)], pixel.frame_quantile)
    assert probability == pytest.approx(float(pixel.frame_calibration.probability(
        np.array([q]))[0]))
    assert np.isnan(stream.detector.frame_probability(np.full((4, 4), np.nan, np.float32)))


def test_live_reconfigure_moves_the_prompt_threshold_and_the_policy(stream):
    import dataclasses
    before = stream.detector.config.threshold
    stream.reconfigure(dataclasses.replace(stream.config, prompt_fpr=0.05, num_points=20,
                                           keyframe_period_s=5.0))
    try:
        assert stream.detector.config.threshold > before
        assert stream.detector.config.num_points == 20
        assert stream.policy.period_ns == 5 * SECOND
    finally:
        stream.reconfigure(_config(model_dir=stream.config.model_dir,
                                   pixel_model_dir=stream.config.pixel_model_dir))


def test_camera_info_is_rescaled_to_the_image_and_checked(stream):
    from anomaly_perception.branches.instance.floor import FloorProjectionError
    assert stream.camera_for((96, 160, 3)) is None or stream.camera_info is not None
    stream.set_camera_info([320.0, 0, 319.5, 0, 320.0, 179.5, 0, 0, 1], 640, 360)
    camera = stream.camera_for((180, 320, 3))
    assert (camera.fx, camera.cx, camera.cy) == (160.0, 159.75, 89.75)
    assert camera.height == pytest.approx(0.13) and camera.pitch == pytest.approx(
        np.radians(7.0))
    with pytest.raises(FloorProjectionError, match='calibrated'):
        stream.set_camera_info([0.0] * 9, 640, 360)


def test_instance_filter_keeps_what_is_as_anomalous_as_a_flagged_pixel(stream, rgb):
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    det = stream.detector
    # The default, 0: the pixel model's own mask threshold.
    assert det.instance_fpr == 0.0 and det.min_score == pytest.approx(det.pixel.threshold)
    det.set_instance_fpr(0.05)
    assert det.min_score == pytest.approx(det.pixel.calibration.threshold_for_fpr(0.05))
    anomaly_map = det.pixel.segment(rgb)[0].anomaly
    kept = det.segment(rgb, anomaly_map)
    det.set_instance_fpr(1.0)                    # every mask: UGainS as published
    try:
        everything = det.segment(rgb, anomaly_map)
    finally:
        det.set_instance_fpr(0.05)
    assert det.min_score is not None
    assert len(kept.scores) == int(np.sum(everything.scores >= det.min_score))
    assert np.all(kept.scores >= det.min_score)
    with pytest.raises(ValueError, match='not both'):
        InstanceAnomalySegmenter(det.pixel, det.promptable, min_score=0.0, instance_fpr=0.1)


def test_bench_points_the_instance_branch_to_its_benchmark(capsys):
    from anomaly_perception.cli import main
    assert main(['bench', '--branch', 'instance']) == 1
    assert 'benchmarks/bench_instance.py' in capsys.readouterr().err


def test_replay_runs_frame_pixel_and_instance_on_the_same_frames(
        tiny_pixel_model, tiny_promptable, patrol_bag_5s, tmp_path):
    from anomaly_perception.branches.instance.config import InstanceNodeConfig
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.branches.registry import get_branches
    from anomaly_perception.io.bags import BagReader
    from anomaly_perception.io.images import image_to_numpy
    from anomaly_perception.replay.engine import replay
    config = InstanceNodeConfig(pixel_model_dir=str(tiny_pixel_model), prompt_fpr=0.3,
                                num_points=8, keyframe_period_s=1.0)
    report = replay(patrol_bag_5s, tmp_path / 'r', get_branches('frame,pixel,instance'),
                    model_dirs={'pixel': tiny_pixel_model, 'instance': tiny_promptable},
                    configs={'instance': config}, backend='torch', show_progress=False)
    inst = report['branches']['instance']
    # Both read the bag's per-pixel labels: neither takes them from the other.
    assert report['branches']['pixel']['pixels']['frames'] > 0
    assert inst['maps_from'].startswith('the pixel pipeline')
    # 5 s at one keyframe per second at least (rises may add more).
    assert inst['keyframes'] >= 5 and inst['keyframe_reasons']['first'] == 1
    assert sum(inst['keyframe_reasons'].values()) == inst['keyframes']
    assert inst['camera_info'] == 'from the bag'
    assert inst['keyframe_latency_ms']['median'] > 0
    m = inst['instances']
    assert 0 < m['keyframes'] <= inst['keyframes']
    for key in ('iap50', 'pixel_ap_input', 'pixel_ap_refined'):
        assert 0.0 <= m[key] <= 1.0, key
    assert (tmp_path / 'r' / inst['contact_sheet']).stat().st_size > 0
    topics = inst['output_topics']
    with BagReader(tmp_path / 'r' / 'outputs') as out:
        for key in ('instances', 'instance_ids', 'refined_map', 'overlay', 'hazards',
                    'markers'):
            assert out.topics[topics[key]].count == inst['keyframes'], key
        first = next(m for _, _, m in out.messages([topics['refined_map']]))
        pixel_map = next(m for _, _, m in out.messages(
            [report['branches']['pixel']['output_topics']['anomaly_map']]))
    with BagReader(patrol_bag_5s) as bag:
        image = next(iter(bag.read_images()))
    assert first.header.stamp == image.header.stamp
    # The first keyframe's refined map is UGainS on the pixel pipeline's map of that frame.
    seg = InstanceAnomalySegmenter.from_model_dirs(tiny_pixel_model, tiny_promptable,
                                                   backend='torch', prompt_fpr=0.3,
                                                   num_points=8, instance_fpr=0.05)
    assert seg.pixel.threshold == PixelAnomalySegmenter.from_model_dir(
        tiny_pixel_model).threshold
    direct = seg.segment(image.image, image_to_numpy(pixel_map))
    np.testing.assert_allclose(image_to_numpy(first), direct.refined, rtol=1e-5, atol=1e-5)


def test_replay_of_the_instance_branch_alone_runs_the_pixel_model(
        tiny_pixel_model, tiny_promptable, patrol_bag_5s, tmp_path):
    from anomaly_perception.branches.instance.config import InstanceNodeConfig
    from anomaly_perception.branches.registry import get_branches
    from anomaly_perception.replay.engine import replay
    config = InstanceNodeConfig(pixel_model_dir=str(tiny_pixel_model), prompt_fpr=0.3,
                                num_points=8, keyframe_period_s=3.0, keyframe_rise=1.0)
    report = replay(patrol_bag_5s, tmp_path / 'r', get_branches('instance'),
                    model_dir=tiny_promptable, config=config, backend='torch',
                    show_progress=False)
    inst = report['branches']['instance']
    assert inst['maps_from'] == 'the instance pipeline'
    assert inst['keyframes'] == 2 and inst['keyframe_reasons'] == {'first': 1, 'period': 1}


@pytest.mark.ros
def test_instance_node_pairs_by_stamp_and_publishes_every_topic_with_the_image_header(
        tiny_pixel_model, tiny_promptable, ros_context, rgb, tmp_path):
    from anomaly_perception.branches.pixel.detector import PixelAnomalySegmenter
    from anomaly_perception.cli import main
    from anomaly_perception.io.images import image_to_numpy
    from anomaly_perception.io.images import numpy_to_image_fields
    from anomaly_perception.nodes.instance_anomaly_node import InstanceAnomalyNode
    from anomaly_perception.nodes.rclpy_messages import RclpyMessageFactory
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    node = InstanceAnomalyNode(context=ros_context, parameter_overrides=[
        Parameter('model_dir', value=str(tiny_promptable)),
        Parameter('pixel_model_dir', value=str(tiny_pixel_model)),
        Parameter('backend', value='torch'), Parameter('prompt_fpr', value=0.3),
        Parameter('qos_reliability', value='reliable')])
    helper = rclpy.create_node('instance_node_test_helper', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(helper)
    f = RclpyMessageFactory()
    got = {}
    types = {'instances': 'vision_msgs/msg/Detection2DArray',
             'instance_ids': 'sensor_msgs/msg/Image', 'refined_map': 'sensor_msgs/msg/Image',
             'overlay': 'sensor_msgs/msg/Image', 'hazards': 'geometry_msgs/msg/PoseArray',
             'markers': 'visualization_msgs/msg/MarkerArray'}
    pixel_map = PixelAnomalySegmenter.from_model_dir(tiny_pixel_model).segment(rgb)[0].anomaly
    bgr = np.ascontiguousarray(rgb[..., ::-1])

    def image_msg(stamp):
        return f.new('sensor_msgs/msg/Image', header=f.header(stamp, 'robot/camera_optical'),
                     **numpy_to_image_fields(bgr, 'bgr8'))

    def map_msg(stamp, encoding='32FC1'):
        values = pixel_map if encoding == '32FC1' else np.zeros(pixel_map.shape, np.uint8)
        return f.new('sensor_msgs/msg/Image', header=f.header(stamp, 'robot/camera_optical'),
                     **numpy_to_image_fields(values, encoding))

    try:
        assert node.autostart()
        for key, msgtype in types.items():
            helper.create_subscription(f._cls(msgtype), f'/instance_anomaly/{key}',
                                       lambda m, k=key: got.setdefault(k, []).append(m), 10)
        images = helper.create_publisher(f._cls('sensor_msgs/msg/Image'), '/image', 10)
        maps = helper.create_publisher(f._cls('sensor_msgs/msg/Image'), '/anomaly_map', 10)
        info = helper.create_publisher(f._cls('sensor_msgs/msg/CameraInfo'), '/camera_info',
                                       10)
        assert spin_until(executor, lambda: images.get_subscription_count() > 0
                          and maps.get_subscription_count() > 0
                          and info.get_subscription_count() > 0
                          and node._output_publishers['overlay'].get_subscription_count() > 0,
                          10)
        info.publish(f.new('sensor_msgs/msg/CameraInfo', header=f.header(STAMP0, 'cam'),
                           width=160, height=96,
                           k=[80.0, 0.0, 79.5, 0.0, 80.0, 47.5, 0.0, 0.0, 1.0]))
        assert spin_until(executor, lambda: node._camera_info_seen is not None, 10)
        # An image whose map never comes, then a map in the wrong encoding.
        images.publish(image_msg(STAMP0))
        assert spin_until(executor, lambda: node.pipeline.matcher.pending()['image'] == 1, 10)
        maps.publish(map_msg(STAMP0 + SECOND, 'mono8'))
        assert spin_until(executor, lambda: node.malformed.total == 1, 10)
        # A pair: the keyframe; the unpaired older image is dropped and counted.
        images.publish(image_msg(STAMP0 + 2 * SECOND))
        maps.publish(map_msg(STAMP0 + 2 * SECOND))
        assert spin_until(executor, lambda: all(k in got for k in types), 60), sorted(got)
        # A map whose image never comes waits (bounded), counted as waiting.
        maps.publish(map_msg(STAMP0 + 3 * SECOND))
        assert spin_until(executor, lambda: node.pipeline.matcher.pending()['map'] == 1, 10)
        snap = node.diagnostics_snapshot()
    finally:
        node.close()
        helper.destroy_node()
        executor.shutdown()
    extra = snap['extra']
    assert extra['pairs_matched'] == 1 and extra['keyframes_taken'] == 1
    assert extra['unmatched_images_dropped'] == 1 and extra['waiting_maps'] == 1
    assert extra['keyframes_by_reason'] == 'first 1' and extra['camera_info'] == 'received'
    assert extra['promptable'] == 'loaded' and extra['prompts_outside_image_skipped'] == 0
    assert snap['malformed_by_kind'] == {'malformed anomaly map': 1}
    assert snap['processed'] == 1 and snap['latency_median_ms'] > 0
    for key in types:
        if key == 'markers':
            headers = [m.header for m in got[key][0].markers]
        else:
            headers = [got[key][0].header]
        for header in headers:
            assert (header.stamp.sec, header.stamp.nanosec) == (
                (STAMP0 + 2 * SECOND) // SECOND, 0), key
            assert header.frame_id == 'robot/camera_optical', key
    ids, refined = got['instance_ids'][0], got['refined_map'][0]
    assert (ids.encoding, refined.encoding, got['overlay'][0].encoding) == (
        '16UC1', '32FC1', 'rgb8')
    assert (refined.height, refined.width) == rgb.shape[:2]
    n = len(got['instances'][0].detections)
    assert image_to_numpy(ids).max() <= n
    markers = got['markers'][0].markers
    assert markers[0].action == 3                            # DELETEALL first
    assert all(m.lifetime.sec + m.lifetime.nanosec > 0 for m in markers[1:])
    # The node's refined map equals `score --branch instance`'s for the same image.
    cv2.imwrite(str(tmp_path / 'same.png'), bgr)
    assert main(['score', '--branch', 'instance', '--model', str(tiny_promptable),
                 '--pixel-model', str(tiny_pixel_model), '--prompt-fpr', '0.3',
                 str(tmp_path / 'same.png'), '--out', str(tmp_path / 's')]) == 0
    np.testing.assert_array_equal(image_to_numpy(refined),
                                  np.load(tmp_path / 's' / 'same.anomaly.npy'))
    np.testing.assert_array_equal(image_to_numpy(ids), cv2.imread(
        str(tmp_path / 's' / 'same.instances.png'), cv2.IMREAD_UNCHANGED))
