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

"""``frame_anomaly_node``: per-frame anomaly scores and a hazard flag for a camera.

Subscribes to ``image`` (sensor_msgs/Image, or CompressedImage with
``input_transport: compressed``) and publishes ``~/score``, ``~/hazard``,
``~/markers`` and ``/diagnostics`` (see
:mod:`anomaly_perception.io.frame_messages`), each stamped with the image's
header. One worker thread runs :class:`FrameAnomalyDetector`; frames reach
it through a latest-frame-wins slot (or, with ``process_all_frames``, a
queue), so a slow model never blocks the subscriber.

Everything that is not ROS plumbing lives in ``anomaly_perception`` and is
tested without ROS 2: the parameters (:mod:`..perception.frame_config`),
the slot and rate cap (:mod:`..perception.stream`), the hazard filter
(:mod:`..perception.hazard`) and the messages
(:mod:`..io.frame_messages`). This module needs rclpy; it has not been run
where the project is developed (no ROS 2 there); tests that start it skip
cleanly without rclpy.
"""

import sys
import threading
import time

from .rclpy_messages import RclpyMessageFactory
from ..errors import AnomalyPerceptionError
from ..errors import ConfigError
from ..io.frame_messages import FrameMessageBuilder
from ..io.frame_messages import NODE_NAME
from ..io.images import compressed_to_numpy
from ..io.images import image_to_numpy
from ..io.messages import stamp_to_ns
from ..perception.frame import FrameAnomalyDetector
from ..perception.frame_config import config_from_parameters
from ..perception.frame_config import parameter_specs
from ..perception.hazard import HazardFilter
from ..perception.stream import FrameSlot
from ..perception.stream import RateLimiter
from ..perception.stream import StreamStats
from ..runtime.manifest import shipped_model_dir

_LIVE = ('max_rate_hz', 'target_fpr', 'hysteresis', 'smoothing', 'min_on_s', 'min_off_s')


def _make_node_class():
    from rcl_interfaces.msg import FloatingPointRange
    from rcl_interfaces.msg import IntegerRange
    from rcl_interfaces.msg import ParameterDescriptor
    from rcl_interfaces.msg import SetParametersResult
    from rclpy.node import Node
    from rclpy.qos import QoSHistoryPolicy
    from rclpy.qos import QoSProfile
    from rclpy.qos import QoSReliabilityPolicy

    class FrameAnomalyNode(Node):
        """Wires topics and parameters to the frame pipeline (see module docs)."""

        def __init__(self):
            super().__init__(NODE_NAME)
            self.config = self._declare_parameters()
            cfg = self.config
            model_dir = cfg.model_dir or shipped_model_dir('frame_rnvp_oe')
            self.detector = FrameAnomalyDetector.from_model_dir(
                model_dir, cfg.backend, device=cfg.device, target_fpr=cfg.target_fpr)
            self.model_name = f'{self.detector.name} ({model_dir})'
            self.get_logger().info(
                f'model {self.model_name} on {self.detector.backend.describe()}')
            self.factory = RclpyMessageFactory()
            self.builder = FrameMessageBuilder(self.factory, cfg.marker_distance_m)
            self.hazard = HazardFilter(cfg.hazard_config())
            self.slot = FrameSlot('all' if cfg.process_all_frames else 'latest')
            self.rate = RateLimiter(cfg.max_rate_hz)
            self.stats = StreamStats()
            self.compressed = cfg.input_transport == 'compressed'
            self._publishers = {
                'score': self._publisher('vision_msgs', 'Classification', '~/score'),
                'hazard': self._publisher('vision_msgs', 'Classification', '~/hazard'),
                'markers': self._publisher('visualization_msgs', 'MarkerArray', '~/markers'),
                'diagnostics': self._publisher('diagnostic_msgs', 'DiagnosticArray',
                                               '/diagnostics'),
            }
            qos = QoSProfile(
                history=QoSHistoryPolicy.KEEP_LAST, depth=cfg.qos_depth,
                reliability=QoSReliabilityPolicy.RELIABLE if cfg.qos_reliability == 'reliable'
                else QoSReliabilityPolicy.BEST_EFFORT)
            image_type = self.factory._cls('sensor_msgs/msg/CompressedImage' if self.compressed
                                           else 'sensor_msgs/msg/Image')
            self.subscription = self.create_subscription(image_type, 'image', self._on_image,
                                                         qos)
            self.timer = self.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics)
            self.add_on_set_parameters_callback(self._on_set_parameters)
            self._running = True
            self.worker = threading.Thread(target=self._work, name='frame-inference',
                                           daemon=True)
            self.worker.start()

        def _publisher(self, package, name, topic):
            cls = self.factory._cls(f'{package}/msg/{name}')
            return self.create_publisher(cls, topic, 10)

        def _declare_parameters(self):
            values = {}
            for name, default, desc, rng, choices, read_only in parameter_specs():
                text = desc + (f" (one of: {', '.join(choices)})" if choices else '')
                descriptor = ParameterDescriptor(description=text, read_only=read_only)
                if rng is not None and isinstance(default, float):
                    descriptor.floating_point_range = [
                        FloatingPointRange(from_value=float(rng[0]), to_value=float(rng[1]),
                                           step=0.0)]
                elif rng is not None and isinstance(default, int) and not isinstance(
                        default, bool):
                    descriptor.integer_range = [
                        IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]), step=1)]
                values[name] = self.declare_parameter(name, default, descriptor).value
            return config_from_parameters(values, f'node {self.get_fully_qualified_name()}')

        def _on_set_parameters(self, params):
            changes = {p.name: p.value for p in params}
            frozen = sorted(set(changes) - set(_LIVE) - {'use_sim_time'})
            if frozen:
                return SetParametersResult(successful=False, reason=(
                    f'{", ".join(frozen)} cannot change while the node runs; restart it.'))
            values = {k: getattr(self.config, k) for k, *_ in parameter_specs()}
            values.update({k: v for k, v in changes.items() if k in values})
            try:
                config = config_from_parameters(values, 'parameter update')
                hazard = config.hazard_config()
            except (ConfigError, ValueError) as err:
                return SetParametersResult(successful=False, reason=str(err))
            self.config = config
            self.rate.max_rate_hz = config.max_rate_hz
            self.hazard.config = hazard
            self.detector.threshold = self.detector.calibration.threshold_for_fpr(
                config.target_fpr)
            return SetParametersResult(successful=True)

        def _on_image(self, msg):
            self.stats.frame_received()
            try:
                stamp = stamp_to_ns(msg.header.stamp)
            except (AttributeError, TypeError, ValueError):
                self.stats.frame_malformed('no usable header stamp')
                return
            if self.rate.allow(stamp):
                self.slot.put((msg, stamp, time.monotonic()))

        def _work(self):
            while self._running:
                item = self.slot.get(timeout=0.2)
                if item is None:
                    continue
                msg, stamp, received = item
                try:
                    image = (compressed_to_numpy(msg) if self.compressed
                             else image_to_numpy(msg))
                    if image.ndim != 3:
                        raise AnomalyPerceptionError(
                            f'expected a colour image, got {getattr(msg, "encoding", "?")}')
                    scores = self.detector.score(image)
                except AnomalyPerceptionError as err:
                    self.stats.frame_malformed(str(err))
                    self.get_logger().warning(f'skipped a malformed image: {err}',
                                              throttle_duration_sec=5.0)
                    continue
                prob = float(scores.probability[0])
                raw = float(scores.raw[0])
                state = self.hazard.update(stamp, prob)
                header = msg.header
                self._publishers['score'].publish(self.builder.score(header, prob, raw))
                self._publishers['hazard'].publish(self.builder.hazard(header, state))
                self._publishers['markers'].publish(self.builder.markers(header, state, prob))
                self.stats.frame_processed(time.monotonic() - received)
                if state.changed:
                    self.get_logger().info(
                        f"hazard flag {'ON' if state.flag else 'off'} "
                        f'(smoothed probability {state.smoothed:.2f})')

        def _publish_diagnostics(self):
            snap = self.stats.snapshot()
            snap['dropped'] = self.slot.dropped
            snap['rate_skipped'] = self.rate.skipped
            now = self.get_clock().now().nanoseconds
            header = self.factory.header(now, '')
            self._publishers['diagnostics'].publish(self.builder.diagnostics(
                header, snap, self.detector.backend.describe(), self.model_name))

        def shutdown(self):
            self._running = False
            self.slot.close()
            self.worker.join(timeout=2.0)

    return FrameAnomalyNode


def main(args=None):
    """Run the node; exit code 1 with one clear log line when it cannot start."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    try:
        node = _make_node_class()()
    except AnomalyPerceptionError as err:
        one_line = ' '.join(str(err).split())
        rclpy.logging.get_logger(NODE_NAME).fatal(f'cannot start: {one_line}')
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
