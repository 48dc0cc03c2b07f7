"""frame_anomaly_node as users run it: its own process, fed a patrol bag by another.

The node is started from its console entry point; this test's process plays
the bag's camera topic at its recorded rate (serialized messages, as
``ros2 bag play`` does) and listens to the node's outputs. Both use the
shipped Fast DDS profile, as the launch files do.
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
import signal
import subprocess
import sys
import threading
import time

from anomaly_perception.io.bags import BagReader
import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]

IMAGE_TOPIC = '/robomaster/camera/image_color'
NODE_ARGS = ['--ros-args', '-r', '__ns:=/robomaster', '-r', 'image:=camera/image_color',
             '-p', 'backend:=onnxruntime']


def _node_executable(name='frame_anomaly_node'):
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f'the console entry point {path} is not installed (pip install -e .)')
    return str(path)


class NodeProcess:
    """``frame_anomaly_node`` in a subprocess, its output in a log file."""

    def __init__(self, env, log_path, *args, executable='frame_anomaly_node'):
        self.log_path = log_path
        self.log = open(log_path, 'w')
        self.started = time.monotonic()
        self.proc = subprocess.Popen([_node_executable(executable), *NODE_ARGS, *args], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        return Path(self.log_path).read_text()

    def stop(self, sig=signal.SIGINT, timeout_s=10.0):
        """Send ``sig``; return ``(exit code, seconds to exit)``."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code, time.monotonic() - start

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.log.closed:
            self.log.close()


class BagPlayer:
    """Plays a bag's image topic at its recorded rate; collects the node's outputs."""

    def __init__(self, context, namespace='/robomaster'):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile
        from rclpy.qos import ReliabilityPolicy
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Classification
        self.node = rclpy.create_node('bag_player', context=context)
        # The Robomaster driver's camera QoS: reliable, depth 1.
        self.publisher = self.node.create_publisher(
            Image, IMAGE_TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.outputs = {'score': {}, 'hazard': {}}
        for key in self.outputs:
            self.node.create_subscription(
                Classification, f'{namespace}/frame_anomaly/{key}',
                lambda msg, key=key: self.outputs[key].__setitem__(_stamp(msg), msg), 100)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self._spinning = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        while self._spinning:
            self.executor.spin_once(timeout_sec=0.05)

    def wait_for(self, predicate, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.02)
        return predicate()

    def play(self, bag_path):
        """Publish every frame at its recorded time; return the stamps sent."""
        with BagReader(bag_path) as bag:
            messages = [(log_time, raw) for _, _, log_time, raw in bag.raw_messages([IMAGE_TOPIC])]
            stamps = [f.stamp_ns for f in bag.read_images(IMAGE_TOPIC)]
        start, first = time.monotonic(), messages[0][0]
        for log_time, raw in messages:
            delay = start + (log_time - first) / 1e9 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.publisher.publish(bytes(raw))
        return stamps

    def close(self):
        self._spinning = False
        self.thread.join()
        self.node.destroy_node()
        self.executor.shutdown()


def _stamp(msg):
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.fixture
def player(ros_context):
    p = BagPlayer(ros_context)
    yield p
    p.close()


def test_node_scores_a_patrol_played_at_its_rate_and_exits_0_on_sigint(
        ros_env, player, patrol_bag_5s, tmp_path):
    node = NodeProcess(ros_env.env, tmp_path / 'node.log')
    try:
        assert player.wait_for(lambda: player.publisher.get_subscription_count() > 0, 30), \
            'the node never subscribed:\n' + node.output()
        active_s = time.monotonic() - node.started
        sent = player.play(patrol_bag_5s)
        player.wait_for(lambda: len(player.outputs['score']) >= len(sent), 5)
        scored = set(player.outputs['score']) & set(sent)
        assert len(scored) >= 0.99 * len(sent), (len(scored), len(sent), node.output())
        code, exit_s = node.stop(signal.SIGINT)
    finally:
        node.kill()
    log = node.output()
    assert code == 0, log
    assert exit_s < 5.0
    assert 'Traceback' not in log and 'KeyError' not in log
    print(f'node active {active_s:.1f} s after start; scored {len(scored)}/{len(sent)}; '
          f'exit {exit_s:.2f} s after SIGINT')


@pytest.mark.parametrize('executable, sig', [('frame_anomaly_node', signal.SIGTERM),
                                             ('pixel_anomaly_node', signal.SIGINT),
                                             ('pixel_anomaly_node', signal.SIGTERM),
                                             ('instance_anomaly_node', signal.SIGINT),
                                             ('instance_anomaly_node', signal.SIGTERM)])
def test_node_exits_0_on_a_signal_while_waiting_for_images(
        ros_env, player, tmp_path, executable, sig):
    node = NodeProcess(ros_env.env, tmp_path / 'node.log', executable=executable)
    try:
        assert player.wait_for(lambda: player.publisher.get_subscription_count() > 0, 30), \
            node.output()
        code, exit_s = node.stop(sig)
    finally:
        node.kill()
    assert code == 0, node.output()
    assert exit_s < 5.0


def test_a_model_that_does_not_load_ends_the_process_with_code_1_and_one_line(ros_env, tmp_path):
    node = NodeProcess(ros_env.env, tmp_path / 'node.log', '-p',
                       f'model_dir:={tmp_path / "no_such_model"}')
    try:
        code = node.proc.wait(30)
    finally:
        node.kill()
    log = node.output()
    assert code == 1, log
    assert 'Traceback' not in log
    fatal = [ln for ln in log.splitlines() if 'cannot start' in ln]
    assert len(fatal) == 1 and 'no_such_model' in fatal[0]


def test_node_outputs_equal_replay_for_the_same_bag(ros_env, player, patrol_bag_5s, tmp_path):
    """What is evaluated offline is what runs on the robot: same stamps, same values."""
    from anomaly_perception.branches.frame.config import FrameNodeConfig
    from anomaly_perception.branches.registry import get_branches
    from anomaly_perception.replay.engine import replay

    # The replay launch file's settings: every frame, in order, nothing dropped.
    node = NodeProcess(ros_env.env, tmp_path / 'node.log', '-p', 'process_all_frames:=true',
                       '-p', 'qos_reliability:=reliable', '-p', 'qos_depth:=100')
    try:
        assert player.wait_for(lambda: player.publisher.get_subscription_count() > 0, 30), \
            node.output()
        sent = player.play(patrol_bag_5s)
        assert player.wait_for(lambda: len(player.outputs['hazard']) >= len(sent), 10), \
            (len(player.outputs['hazard']), len(sent))
    finally:
        code, _ = node.stop()
    assert code == 0

    config = FrameNodeConfig(process_all_frames=True, qos_reliability='reliable', qos_depth=100)
    replay(patrol_bag_5s, tmp_path / 'replay', get_branches('frame'), backend='onnxruntime',
           config=config,
           show_progress=False)
    offline = {'score': {}, 'hazard': {}}
    with BagReader(tmp_path / 'replay' / 'outputs') as bag:
        for key in offline:
            for _, _, msg in bag.messages([f'/robomaster/frame_anomaly/{key}']):
                offline[key][_stamp(msg)] = msg

    for key in ('score', 'hazard'):
        live = player.outputs[key]
        assert sorted(live) == sorted(offline[key]) == sorted(sent), key
        for stamp in sent:
            a, b = live[stamp].results, offline[key][stamp].results
            assert [r.class_id for r in a] == [r.class_id for r in b], (key, stamp)
            np.testing.assert_allclose([r.score for r in a], [r.score for r in b],
                                       rtol=1e-6, atol=1e-6, err_msg=f'{key} at {stamp}')
    flags = [offline['hazard'][s].results[0].class_id for s in sent]
    print(f'{len(sent)} frames equal; hazard flags: {flags.count("hazard")} on')
