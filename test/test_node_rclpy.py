"""frame_anomaly_node under rclpy, in one process: lifecycle, parameters, bad input, QoS.

The node and a helper node share an executor; the helper publishes images
and talks to the node the way ``ros2 lifecycle`` and ``ros2 param`` do, over
the node's services.
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

from pathlib import Path
import shutil

from conftest import spin_until
import numpy as np
import pytest

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]
STAMP0 = 1_767_225_600_000_000_000
PERIOD = 100_000_000


@pytest.fixture
def world(ros_context):
    """Make frame nodes (autostart off, ONNX Runtime) beside a helper node, one executor."""
    from anomaly_perception.nodes.frame_anomaly_node import FrameAnomalyNode
    from anomaly_perception.nodes.rclpy_messages import RclpyMessageFactory
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    made = []

    def make(**params):
        from rclpy.parameter import Parameter
        values = {'autostart': False, 'backend': 'onnxruntime', **params}
        node = FrameAnomalyNode(context=ros_context, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()])
        world.executor.add_node(node)
        made.append(node)
        return node

    class World:
        pass

    world = World()
    world.make = make
    world.factory = RclpyMessageFactory()
    world.executor = SingleThreadedExecutor(context=ros_context)
    world.helper = rclpy.create_node('frame_anomaly_test_helper', context=ros_context)
    world.executor.add_node(world.helper)
    world.outputs = {'score': [], 'hazard': [], 'markers': [], 'diagnostics': []}
    f = world.factory
    for key in ('score', 'hazard'):
        world.helper.create_subscription(f._cls('vision_msgs/msg/Classification'),
                                         f'/frame_anomaly/{key}', world.outputs[key].append, 50)
    world.helper.create_subscription(f._cls('visualization_msgs/msg/MarkerArray'),
                                     '/frame_anomaly/markers', world.outputs['markers'].append,
                                     50)
    world.helper.create_subscription(f._cls('diagnostic_msgs/msg/DiagnosticArray'),
                                     '/diagnostics', world.outputs['diagnostics'].append, 50)
    world.spin_until = lambda pred, timeout_s=20.0: spin_until(world.executor, pred, timeout_s)
    yield world
    for node in made:
        node.close()
    world.helper.destroy_node()
    world.executor.shutdown()


def _image(factory, stamp_ns, frame=None, **fields):
    from anomaly_perception.io.images import numpy_to_image_fields
    if frame is None:
        frame = np.random.default_rng(stamp_ns % 1000).integers(0, 255, (90, 160, 3), np.uint8)
    values = numpy_to_image_fields(frame, 'bgr8')
    values.update(fields)
    return factory.new('sensor_msgs/msg/Image',
                       header=factory.header(stamp_ns, 'robot/camera_optical_link'), **values)


def _publisher(world, qos_reliability='reliable'):
    from rclpy.qos import QoSProfile
    from rclpy.qos import ReliabilityPolicy
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE
                     if qos_reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT)
    return world.helper.create_publisher(world.factory._cls('sensor_msgs/msg/Image'), '/image',
                                         qos)


def _wait_matched(world, pub):
    assert world.spin_until(lambda: pub.get_subscription_count() > 0, 10), 'not matched'


def _change_state(world, transition):
    from lifecycle_msgs.srv import ChangeState
    client = world.helper.create_client(ChangeState, '/frame_anomaly/change_state')
    assert world.spin_until(lambda: client.service_is_ready(), 10), 'no change_state service'
    request = ChangeState.Request()
    request.transition.label = transition
    future = client.call_async(request)
    assert world.spin_until(future.done, 30)
    world.helper.destroy_client(client)
    return future.result().success


def _get_state(world):
    from lifecycle_msgs.srv import GetState
    client = world.helper.create_client(GetState, '/frame_anomaly/get_state')
    assert world.spin_until(lambda: client.service_is_ready(), 10)
    future = client.call_async(GetState.Request())
    assert world.spin_until(future.done, 10)
    world.helper.destroy_client(client)
    return future.result().current_state.label


def _set_parameter(world, name, value):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    client = AsyncParameterClient(world.helper, '/frame_anomaly')
    assert world.spin_until(lambda: client.services_are_ready(), 10)
    future = client.set_parameters([Parameter(name, value=value)])
    assert world.spin_until(future.done, 10)
    return future.result().results[0]


def _publish_until_scored(world, pub, stamps, timeout_s=20.0):
    """Publish frames one at a time, each until its score arrives; return the scores."""
    scores = world.outputs['score']
    _wait_matched(world, pub)
    for stamp in stamps:
        pub.publish(_image(world.factory, stamp))
        got = world.spin_until(lambda: any(_stamp(m) == stamp for m in scores), timeout_s)
        assert got, f'no score for the frame stamped {stamp}'
    return [m for m in scores if _stamp(m) in set(stamps)]


def _stamp(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _latest_diagnostics(world, after_count=0):
    assert world.spin_until(lambda: len(world.outputs['diagnostics']) > after_count, 10)
    status = world.outputs['diagnostics'][-1].status[0]
    return status, {kv.key: kv.value for kv in status.values}


def test_lifecycle_transitions_gate_inference_and_outputs_carry_the_input_header(world):
    node = world.make()
    pub = _publisher(world)
    assert _get_state(world) == 'unconfigured'
    assert node.pipeline is None

    assert _change_state(world, 'configure')
    assert _get_state(world) == 'inactive' and node.pipeline is not None
    pub.publish(_image(world.factory, STAMP0))
    world.spin_until(lambda: False, 0.5)
    assert world.outputs['score'] == [], 'an inactive node must not score'

    assert _change_state(world, 'activate')
    assert _get_state(world) == 'active'
    scores = _publish_until_scored(world, pub, [STAMP0 + PERIOD, STAMP0 + 2 * PERIOD])
    assert world.spin_until(lambda: len(world.outputs['hazard']) >= 2
                            and len(world.outputs['markers']) >= 2)
    for msg in scores + world.outputs['hazard']:
        assert msg.header.frame_id == 'robot/camera_optical_link'
    assert {_stamp(m) for m in world.outputs['hazard']} >= {STAMP0 + PERIOD, STAMP0 + 2 * PERIOD}
    assert world.outputs['markers'][0].markers[0].header.frame_id == 'robot/camera_optical_link'
    result = scores[0].results
    assert result[0].class_id == 'anomaly' and 0.0 <= result[0].score <= 1.0
    assert result[1].class_id == 'raw_score' and np.isfinite(result[1].score)

    model = node.pipeline
    assert _change_state(world, 'deactivate')
    assert _get_state(world) == 'inactive' and node.pipeline is model, 'model kept'
    before = len(world.outputs['score'])
    pub.publish(_image(world.factory, STAMP0 + 3 * PERIOD))
    world.spin_until(lambda: False, 0.5)
    assert len(world.outputs['score']) == before

    assert _change_state(world, 'activate')
    _publish_until_scored(world, pub, [STAMP0 + 4 * PERIOD])

    assert _change_state(world, 'deactivate') and _change_state(world, 'cleanup')
    assert _get_state(world) == 'unconfigured' and node.pipeline is None
    assert _change_state(world, 'shutdown')
    assert _get_state(world) == 'finalized'


def test_parameters_change_live_and_invalid_changes_are_rejected_with_the_documented_message(
        world):
    from anomaly_perception.nodes.perception_node import configure_time_message
    node = world.make(autostart=True)
    assert node.autostart()
    threshold = node.pipeline.detector.threshold

    result = _set_parameter(world, 'target_fpr', 0.2)
    assert result.successful
    assert node.pipeline.detector.threshold < threshold
    assert node.pipeline.hazard.config.on_probability == pytest.approx(0.8)
    assert _set_parameter(world, 'max_rate_hz', 2.0).successful
    assert node.rate.max_rate_hz == 2.0

    out_of_range = _set_parameter(world, 'target_fpr', 0.9)
    assert not out_of_range.successful and 'target_fpr' in out_of_range.reason
    wrong_choice = _set_parameter(world, 'input_transport', 'theora')
    assert not wrong_choice.successful
    assert node.pipeline.hazard.config.on_probability == pytest.approx(0.8)

    fixed = _set_parameter(world, 'backend', 'torch')
    assert not fixed.successful
    assert fixed.reason == configure_time_message(['backend'])
    assert node.pipeline.detector.backend.name == 'onnxruntime'

    assert _change_state(world, 'deactivate') and _change_state(world, 'cleanup')
    wrong_choice = _set_parameter(world, 'backend', 'openvino')
    assert not wrong_choice.successful and "'openvino'" in wrong_choice.reason
    assert _set_parameter(world, 'backend', 'torch').successful
    assert _change_state(world, 'configure')
    assert node.pipeline.detector.backend.name == 'torch'
    assert node.pipeline.hazard.config.on_probability == pytest.approx(0.8), 'kept'


def test_malformed_messages_are_counted_by_kind_with_one_warning_each_and_never_stop_the_node(
        world, capfd):
    node = world.make(autostart=True, diagnostics_period_s=0.2)
    assert node.autostart()
    pub = _publisher(world)
    f = world.factory
    good = np.zeros((90, 160, 3), np.uint8)
    bad = {
        'wrong data length': lambda s: _image(f, s, good, data=bytes(100)),
        'unknown encoding': lambda s: _image(f, s, good, encoding='yuv_banana'),
        'empty image': lambda s: _image(f, s, good, height=0, width=0, step=0, data=b''),
        'missing stamp': lambda s: _image(f, 0, good),
        'not a colour image': lambda s: f.new(
            'sensor_msgs/msg/Image', header=f.header(s, 'cam'), height=4, width=4,
            encoding='mono8', step=4, data=bytes(16)),
    }
    stamp = STAMP0
    _wait_matched(world, pub)
    for _ in range(3):
        for make_bad in bad.values():
            stamp += PERIOD
            pub.publish(make_bad(stamp))
            world.spin_until(lambda: False, 0.02)
    stamp += PERIOD
    _publish_until_scored(world, pub, [stamp])

    assert world.spin_until(lambda: node.malformed.total == 3 * len(bad))
    assert node.malformed.snapshot() == dict.fromkeys(bad, 3)
    seen = len(world.outputs['diagnostics'])
    status, values = _latest_diagnostics(world, seen)
    for kind in bad:
        assert values[f'malformed: {kind}'] == '3'
    assert values['malformed'] == str(3 * len(bad))
    assert values['processed'] == '1'
    assert status.level == b'\x01' and 'malformed' in status.message

    log = capfd.readouterr().err
    for kind in bad:
        assert log.count(f'skipped a malformed image ({kind})') == 1, (kind, log)
    assert 'Traceback' not in log


def test_a_publisher_with_incompatible_qos_is_reported_in_the_log_and_diagnostics(
        world, capfd):
    node = world.make(autostart=True, qos_reliability='reliable', diagnostics_period_s=0.2)
    assert node.autostart()
    _publisher(world, qos_reliability='best_effort')
    assert world.spin_until(lambda: node.qos_incompatible >= 1, 15)
    assert node.qos_incompatible_policy == 'RELIABILITY'
    status, values = _latest_diagnostics(world, len(world.outputs['diagnostics']))
    assert status.level == b'\x02' and 'incompatible' in status.message
    assert values['qos_incompatible'] == '1'
    log = capfd.readouterr().err
    assert 'offers QoS incompatible' in log and 'qos_reliability:=best_effort' in log


def test_a_model_that_fails_its_hash_fails_configure_with_the_file_named(world, tmp_path,
                                                                         capfd):
    model = tmp_path / 'frame_model'
    shutil.copytree(ROOT / 'models' / 'frame_rnvp_oe', model)
    onnx = model / 'model.onnx'
    data = bytearray(onnx.read_bytes())
    data[200] ^= 0xFF
    onnx.write_bytes(bytes(data))
    node = world.make(model_dir=str(model), diagnostics_period_s=0.2)

    assert not _change_state(world, 'configure')
    assert _get_state(world) == 'unconfigured' and node.pipeline is None
    status, _ = _latest_diagnostics(world, len(world.outputs['diagnostics']))
    assert status.level == b'\x02' and str(onnx) in status.message
    log = capfd.readouterr().err
    lines = [ln for ln in log.splitlines() if 'configure failed' in ln]
    assert len(lines) == 1 and str(onnx) in lines[0] and 'sha256' in lines[0]
    assert 'Traceback' not in log

    # Fixed while unconfigured, the same node configures.
    assert _set_parameter(world, 'model_dir', '').successful
    assert _change_state(world, 'configure')
