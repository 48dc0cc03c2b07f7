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

"""The node and a launch file with ROS 2 (skipped where rclpy is not installed).

These have not run where the project is developed (no ROS 2 there); they
run under ``colcon test`` on a machine with ROS 2 Humble or Jazzy.
"""

from pathlib import Path
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[1]


def test_node_processes_an_image_and_publishes_stamped_outputs():
    from anomaly_perception.io.images import numpy_to_image_fields
    from anomaly_perception.nodes.frame_anomaly_node import _make_node_class
    from anomaly_perception.nodes.rclpy_messages import RclpyMessageFactory
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init()
    node = helper = None
    try:
        node = _make_node_class()()
        helper = rclpy.create_node('frame_anomaly_test_helper')
        factory = RclpyMessageFactory()
        image_cls = factory._cls('sensor_msgs/msg/Image')
        classification = factory._cls('vision_msgs/msg/Classification')
        received = {}
        helper.create_subscription(classification, '/frame_anomaly/score',
                                   lambda m: received.setdefault('score', m), 10)
        helper.create_subscription(classification, '/frame_anomaly/hazard',
                                   lambda m: received.setdefault('hazard', m), 10)
        publisher = helper.create_publisher(image_cls, '/image', 10)
        frame = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
        header = factory.header(1_767_225_600_000_000_000, 'camera_optical_link')
        msg = factory.new('sensor_msgs/msg/Image', header=header,
                          **numpy_to_image_fields(frame, 'bgr8'))
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.add_node(helper)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(received) < 2:
            publisher.publish(msg)
            executor.spin_once(timeout_sec=0.1)
        assert set(received) == {'score', 'hazard'}
        for out in received.values():
            assert out.header.stamp.sec == 1_767_225_600
            assert out.header.frame_id == 'camera_optical_link'
        assert received['score'].results[0].class_id in ('anomaly', 'unscorable')
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        if helper is not None:
            helper.destroy_node()
        rclpy.try_shutdown()


def test_ground_robot_launch_describes_the_node():
    pytest.importorskip('launch_ros')
    from launch.launch_description_sources import get_launch_description_from_python_launch_file
    from launch_ros.actions import Node

    description = get_launch_description_from_python_launch_file(
        str(ROOT / 'launch' / 'ground_robot.launch.py'))
    nodes = [e for e in description.entities if isinstance(e, Node)]
    assert len(nodes) == 1
