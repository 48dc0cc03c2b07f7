"""``hazard_monitor``: one hazard flag for a place, from its frame and pixel nodes.

A managed (lifecycle) node. ``configure`` loads the place (``place``
parameter: a directory written by ``train place``; a missing, changed or
mismatched place fails the transition with one line naming the file).
``activate`` subscribes to ``frame/score`` and ``pixel/score``
(vision_msgs/Classification: the frame and pixel nodes' ``~/score``; remap
them to the nodes' topics, the launch files do). Each report goes to
:class:`~anomaly_perception.stream.fusion.HazardMonitor`, the object
``anomaly-perception replay --place`` runs, which pairs the two branches by
stamp. Each stamp it decides is published on ``~/hazard``
(:func:`~anomaly_perception.replay.monitor.monitor_classification`:
``hazard``/``clear`` with the smoothed fused probability, then each
branch's probability, the one that raised the flag first) and ``~/markers``
(visualization_msgs/MarkerArray: the flag as red or green text in front of
the camera, for rviz), and flag changes are logged. A message without a
result is counted as malformed and skipped. ``/diagnostics`` carries the
counts.

    ros2 run anomaly_perception hazard_monitor --ros-args -p place:=PLACE
        -r frame/score:=/robomaster/frame_anomaly/score
        -r pixel/score:=/robomaster/pixel_anomaly/score       (one command line)
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

import sys
import types

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn

from .perception_node import run
from .rclpy_messages import RclpyMessageFactory
from ..branches.place.directory import load_place
from ..errors import AnomalyPerceptionError
from ..io.messages import stamp_to_ns
from ..replay.monitor import HAZARD_TYPE
from ..replay.monitor import MARKERS_TYPE
from ..replay.monitor import monitor_classification
from ..replay.monitor import monitor_diagnostics
from ..replay.monitor import monitor_markers
from ..replay.monitor import MONITOR_PARAMETERS
from ..replay.monitor import NODE_NAME
from ..replay.monitor import score_probability
from ..stream.fusion import HazardMonitor


class HazardMonitorNode(LifecycleNode):
    """The place's fused flag (see module docs)."""

    NODE_NAME = NODE_NAME

    def __init__(self, node_name=NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self.f = RclpyMessageFactory()
        for name, default, text in MONITOR_PARAMETERS:
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        self.monitor = None
        self.place = None
        self.error = ''
        self.state = 'unconfigured'
        self.counts = {'received': 0, 'decided': 0, 'malformed': 0, 'alarms': 0}
        self.last_reason = ''
        self.frame_ids = {}
        self._subscriptions = []
        self._hazard = None
        self._markers = None
        self._diagnostics = self.create_publisher(
            self.f._cls('diagnostic_msgs/msg/DiagnosticArray'), '/diagnostics', 10)
        period = float(self.get_parameter('diagnostics_period_s').value)
        self._timer = self.create_timer(period, self._publish_diagnostics)

    @property
    def config(self):
        """Return what :func:`~.perception_node.run` reads of the node's settings."""
        return types.SimpleNamespace(autostart=bool(self.get_parameter('autostart').value))

    @property
    def model_error(self):
        return self.error

    def autostart(self):
        """Configure and activate; return False (after logging why) if that fails."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def close(self):
        """Stop listening and destroy the node (safe after rclpy shutdown)."""
        self._unsubscribe()
        self.destroy_node()

    def on_configure(self, state):
        try:
            path = str(self.get_parameter('place').value)
            if not path:
                raise AnomalyPerceptionError('the place parameter is empty: give the '
                                             'directory `train place` wrote.')
            self.place = load_place(path)
            self.monitor = HazardMonitor(
                self.place.hazard_config(), tuple(self.place.fusion['branches']),
                self.place.fusion['rule'], float(self.get_parameter('max_age_s').value),
                float(self.get_parameter('max_wait_s').value))
        except (AnomalyPerceptionError, ValueError) as err:
            self.error = ' '.join(str(err).split())
            self.get_logger().error(f'configure failed: {self.error}')
            return TransitionCallbackReturn.FAILURE
        self.error = ''
        self._hazard = self.create_lifecycle_publisher(self.f._cls(HAZARD_TYPE), '~/hazard', 10)
        self._markers = self.create_lifecycle_publisher(self.f._cls(MARKERS_TYPE), '~/markers',
                                                        10)
        self.state = 'inactive'
        self.get_logger().info(f'configured: place {self.place.path} (fused on probability '
                               f"{self.place.fusion['on_probability']:.6g})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        cls = self.f._cls('vision_msgs/msg/Classification')
        self._subscriptions = [
            self.create_subscription(cls, f'{branch}/score',
                                     lambda msg, b=branch: self.on_score(b, msg), 50)
            for branch in self.monitor.branches]
        self.state = 'active'
        return super().on_activate(state)

    def on_deactivate(self, state):
        self._unsubscribe()
        self.state = 'inactive'
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._unsubscribe()
        for publisher in (self._hazard, self._markers):
            if publisher is not None:
                self.destroy_lifecycle_publisher(publisher)
        self._hazard = self._markers = None
        self.monitor, self.place, self.state = None, None, 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self._unsubscribe()
        return TransitionCallbackReturn.SUCCESS

    def _unsubscribe(self):
        for sub in self._subscriptions:
            self.destroy_subscription(sub)
        self._subscriptions = []

    def on_score(self, branch, msg):
        """Hand one branch's ``~/score`` to the monitor; publish what it decides."""
        self.counts['received'] += 1
        try:
            probability = score_probability(msg)
            stamp = stamp_to_ns(msg.header.stamp)
        except (ValueError, AttributeError) as err:
            self.counts['malformed'] += 1
            self.last_reason = f'{branch}/score: {err}'
            return
        self.frame_ids.setdefault(stamp, msg.header.frame_id)
        for decided in self.monitor.add(branch, stamp, probability):
            header = self.f.header(decided.stamp_ns, self.frame_ids.pop(decided.stamp_ns, ''))
            self._hazard.publish(monitor_classification(self.f, header, decided))
            self._markers.publish(monitor_markers(self.f, header, decided))
            self.counts['decided'] += 1
            if decided.state.changed:
                self.counts['alarms'] += decided.state.flag
                self.get_logger().info(
                    f"hazard flag {'ON' if decided.state.flag else 'off'} (raised by "
                    f'{decided.state.source}, smoothed {decided.state.smoothed:.3f})')
        for old in [s for s in self.frame_ids if s < stamp - 10**10]:
            del self.frame_ids[old]         # stamps no branch will complete

    def _publish_diagnostics(self):
        try:
            header = self.f.header(self.get_clock().now().nanoseconds, '')
            self._diagnostics.publish(monitor_diagnostics(
                self.f, header, self.state, self.error, self.counts, self.last_reason,
                str(self.place.path) if self.place else ''))
        except Exception as err:  # noqa: B902 - diagnostics must never stop the node
            self.get_logger().warning(f'could not publish diagnostics: {err}',
                                      throttle_duration_sec=30.0)


def main(args=None):
    """Run the node until SIGINT/SIGTERM (exit 0); exit 1 with one log line if it cannot start."""
    return run(HazardMonitorNode, args)


if __name__ == '__main__':
    sys.exit(main())
