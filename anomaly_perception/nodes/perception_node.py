"""What every perception node of the package shares: a managed (lifecycle) node.

:class:`PerceptionNode` declares the node's parameters from its typed config
(descriptions, ranges, choices), subscribes to ``image`` with QoS from
parameters, hands frames to one worker thread, counts what goes wrong and
publishes ``/diagnostics``. A branch's node names its branch (``BRANCH``,
see :mod:`..branches.registry`): the base takes the parameters from the
branch's config module, loads its pipeline, creates the publishers of its
message module's outputs and, for each frame, runs ``decode`` ->
``process`` -> the message builder's ``outputs(header, result)``. A node
overrides :meth:`on_result` for what else it does with a result (the frame
node logs hazard flag changes).

Lifecycle (the managed-node pattern of ROS 2 perception packages):

* ``configure`` reads and validates the parameters and loads the model; a
  model or parameter error fails the transition with one log line (the node
  stays unconfigured, and diagnostics say why);
* ``activate`` creates the image subscription and activates the output
  publishers; ``deactivate`` stops inference, keeping the model loaded;
* ``cleanup`` frees the model; ``shutdown`` stops everything.

With ``autostart`` (default true) :func:`run` configures and activates at
start, so ``ros2 run`` and the launch files need no lifecycle manager;
then a model that does not load ends the process with exit code 1.
Parameters marked ``configure_time`` can change only while unconfigured;
the others change live. SIGINT and SIGTERM end the node with exit code 0.

Everything that is not ROS plumbing lives in ROS-free modules and is tested
without ROS 2 (:mod:`..stream.flow`, the branch pipelines, the message
builders in :mod:`..io`).
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

import statistics
import threading
import time

from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import qos_policy_name_from_kind
from rclpy.qos import QoSDurabilityPolicy
from rclpy.qos import QoSHistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy

from .rclpy_messages import RclpyMessageFactory
from ..branches.registry import get_branch
from ..errors import AnomalyPerceptionError
from ..errors import ConfigError
from ..errors import ImageMessageError
from ..io.images import message_stamp
from ..stream.flow import FrameSlot
from ..stream.flow import MalformedCounter
from ..stream.flow import RateLimiter
from ..stream.flow import StreamStats
from ..stream.flow import TransportGapCounter

IMAGE_TOPIC = 'image'
DIAGNOSTICS_TOPIC = '/diagnostics'
OUTPUT_QOS_DEPTH = 10
WORKER_JOIN_S = 3.0

UNCONFIGURED, INACTIVE, ACTIVE, FINALIZED = 'unconfigured', 'inactive', 'active', 'finalized'


def configure_time_message(names):
    """Return the documented reason for refusing to change configure-time parameters."""
    return (f'{", ".join(names)} can change only while the node is unconfigured: '
            'deactivate and clean it up (ros2 lifecycle set <node> deactivate, then cleanup), '
            'set the parameter, then configure and activate.')


class PerceptionNode(LifecycleNode):
    """Lifecycle base of the perception nodes (see module docs).

    Subclasses set ``BRANCH`` (and ``NODE_NAME``, the branch messages'
    ``NODE_NAME``) and may override :meth:`on_result`; every other hook has a
    default from the branch's registry entry.
    """

    BRANCH = None

    def __init__(self, node_name=None, **kwargs):
        self.branch = get_branch(self.BRANCH)
        self.builder = None
        super().__init__(node_name or self.branch.messages.NODE_NAME, **kwargs)
        self.factory = RclpyMessageFactory()
        self.lifecycle_state = UNCONFIGURED
        self.model_error = ''
        self.pipeline = None
        self.image_subscription = None
        self.worker = None
        self._running = False
        self._output_publishers = {}
        self._new_counters()
        self.config = self._declare_parameters()
        self._diagnostics_publisher = self.create_publisher(
            self.factory._cls('diagnostic_msgs/msg/DiagnosticArray'), DIAGNOSTICS_TOPIC,
            OUTPUT_QOS_DEPTH)
        self._diagnostics_timer = self.create_timer(self.config.diagnostics_period_s,
                                                    self._publish_diagnostics)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # --- what a branch provides (defaults from its registry entry) ---------------------------

    def parameter_specs(self):
        """``(name, default, description, range, choices, configure_time)`` per parameter."""
        return self.branch.config_module.parameter_specs()

    def make_config(self, values, source):
        """Build the typed config from ``{name: value}``; ConfigError when invalid."""
        return self.branch.config_module.config_from_parameters(values, source)

    def load(self, config):
        """Load the pipeline (model) for ``config``; AnomalyPerceptionError on failure."""
        pipeline = self.branch.stream.from_config(config)
        self.builder = self.branch.builder.from_config(self.factory, config)
        return pipeline

    def create_outputs(self, config):
        """Return ``{key: lifecycle publisher}`` for the node's outputs."""
        return {key: self.create_lifecycle_publisher(self.factory._cls(msgtype), f'~/{key}',
                                                     OUTPUT_QOS_DEPTH)
                for key, msgtype in self.branch.messages.OUTPUT_TYPES.items()}

    def process_frame(self, msg, stamp_ns, received):
        """Process one frame in the worker thread; ImageMessageError if malformed."""
        image = self.pipeline.decode(msg)
        result = self.pipeline.process([stamp_ns], [image])[0]
        for key, out in self.builder.outputs(msg.header, result,
                                             **self.output_options()).items():
            self.publish(key, out)
        self.stats.frame_processed(time.monotonic() - received)
        self.on_result(result)

    def output_options(self):
        """Keyword options of the builder's ``outputs`` for this frame (default: none)."""
        return {}

    def on_result(self, result):
        """Do whatever else the node does with a published result (default: nothing)."""

    def reconfigure(self, config):
        """Apply a live parameter change to the loaded pipeline."""
        self.pipeline.reconfigure(config)
        self.builder.reconfigure(config)

    def release(self):
        """Free the pipeline's resources (the model)."""
        self.pipeline = None

    def describe_pipeline(self):
        """``(backend description dict, model name)`` for diagnostics."""
        if self.pipeline is None:
            return {}, ''
        return (self.pipeline.detector.backend.describe(),
                f'{self.pipeline.name} ({self.pipeline.model_dir})')

    # --- parameters -------------------------------------------------------------------------

    def _declare_parameters(self):
        values = {}
        for name, default, desc, rng, choices, configure_time in self.parameter_specs():
            text = desc + (f" (one of: {', '.join(choices)})" if choices else '')
            if configure_time:
                text += ' [changes only while unconfigured]'
            descriptor = ParameterDescriptor(description=text)
            if rng is not None and isinstance(default, float):
                descriptor.floating_point_range = [FloatingPointRange(
                    from_value=float(rng[0]), to_value=float(rng[1]), step=0.0)]
            elif rng is not None and isinstance(default, int) and not isinstance(default, bool):
                descriptor.integer_range = [IntegerRange(
                    from_value=int(rng[0]), to_value=int(rng[1]), step=1)]
            try:
                values[name] = self.declare_parameter(name, default, descriptor).value
            except (ParameterException, TypeError, ValueError) as err:
                raise ConfigError(f'parameter {name!r} of node '
                                  f'{self.get_fully_qualified_name()}: {err}') from None
        return self.make_config(values, f'node {self.get_fully_qualified_name()}')

    def _current_values(self):
        return {name: self.get_parameter(name).value for name, *_ in self.parameter_specs()}

    def _on_set_parameters(self, params):
        specs = {name: configure_time for name, *_, configure_time in self.parameter_specs()}
        changes = {p.name: p.value for p in params if p.name in specs}
        if not changes:
            return SetParametersResult(successful=True)
        fixed = sorted(n for n in changes if specs[n])
        if fixed and self.lifecycle_state != UNCONFIGURED:
            return SetParametersResult(successful=False, reason=configure_time_message(fixed))
        values = self._current_values()
        values.update(changes)
        try:
            config = self.make_config(values, 'parameter update')
        except (ConfigError, ValueError) as err:
            return SetParametersResult(successful=False, reason=str(err))
        previous = self.config
        self.config = config
        if config.diagnostics_period_s != previous.diagnostics_period_s:
            self._diagnostics_timer.cancel()
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = self.create_timer(config.diagnostics_period_s,
                                                        self._publish_diagnostics)
        if self.rate is not None:
            self.rate.max_rate_hz = config.max_rate_hz
        if self.pipeline is not None:
            self.reconfigure(config)
        return SetParametersResult(successful=True)

    # --- lifecycle --------------------------------------------------------------------------

    def on_configure(self, state):
        start = time.monotonic()
        try:
            self.config = self.make_config(self._current_values(), 'configure')
            self.pipeline = self.load(self.config)
            self._output_publishers = self.create_outputs(self.config)
        except Exception as err:  # noqa: B902 - rclpy would swallow it without a word
            text = ' '.join(str(err).split())
            if not isinstance(err, AnomalyPerceptionError):
                text = f'{type(err).__name__}: {text}'
            self.model_error = text
            self.get_logger().error(f'configure failed: {self.model_error}')
            self._release_all()
            return TransitionCallbackReturn.FAILURE
        self.model_error = ''
        self.lifecycle_state = INACTIVE
        backend, model = self.describe_pipeline()
        self.get_logger().info(f'configured in {time.monotonic() - start:.2f} s: model {model} '
                               f"on {backend.get('backend', '?')} "
                               f"({backend.get('device', '?')}, {backend.get('precision', '?')})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state):
        self._new_counters()
        self.slot = FrameSlot('all' if self.config.process_all_frames else 'latest')
        self.rate = RateLimiter(self.config.max_rate_hz)
        self._running = True
        self.worker = threading.Thread(target=self._work, name=f'{self.get_name()}-inference',
                                       daemon=True)
        self.worker.start()
        self.image_subscription = self._subscribe(self.config)
        self.lifecycle_state = ACTIVE
        self.get_logger().info(
            f'active: listening on {self.image_topic} ({self.config.qos_reliability}, depth '
            f'{self.config.qos_depth}, {self._image_type_name})')
        return super().on_activate(state)

    def on_deactivate(self, state):
        self._stop_inference()
        self.lifecycle_state = INACTIVE
        self.get_logger().info('inactive: inference stopped, model kept')
        return super().on_deactivate(state)

    def on_cleanup(self, state):
        self._release_all()
        self.lifecycle_state = UNCONFIGURED
        self.get_logger().info('unconfigured: model released')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state):
        self._release_all()
        self.lifecycle_state = FINALIZED
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state):
        self.get_logger().error(f'error in lifecycle state {state.label}; releasing the model')
        self._release_all()
        self.lifecycle_state = UNCONFIGURED
        return TransitionCallbackReturn.SUCCESS

    def autostart(self):
        """Configure and activate; return False (after logging why) if that fails."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def close(self):
        """Stop inference, free the model and destroy the node (safe after rclpy shutdown)."""
        self._release_all()
        self.lifecycle_state = FINALIZED
        self.destroy_node()

    def _release_all(self):
        self._stop_inference()
        for publisher in self._output_publishers.values():
            self.destroy_lifecycle_publisher(publisher)
        self._output_publishers = {}
        if self.pipeline is not None:
            self.release()
        self.pipeline = None

    # --- images in, work out ----------------------------------------------------------------

    def _new_counters(self):
        self.stats = StreamStats()
        self.malformed = MalformedCounter()
        self.gaps = TransportGapCounter()
        self.transport_latency = []
        self.qos_incompatible = 0
        self.qos_incompatible_policy = ''
        self.dds_messages_lost = 0
        self.slot = None
        self.rate = None

    @property
    def image_topic(self):
        return self.resolve_topic_name(IMAGE_TOPIC)

    @property
    def _image_type_name(self):
        return ('sensor_msgs/msg/CompressedImage' if self.config.input_transport == 'compressed'
                else 'sensor_msgs/msg/Image')

    def _subscribe(self, config):
        qos = QoSProfile(
            history=QoSHistoryPolicy.KEEP_LAST, depth=config.qos_depth,
            reliability=(QoSReliabilityPolicy.RELIABLE if config.qos_reliability == 'reliable'
                         else QoSReliabilityPolicy.BEST_EFFORT),
            durability=QoSDurabilityPolicy.VOLATILE)
        events = SubscriptionEventCallbacks(
            incompatible_qos=self._on_incompatible_qos,
            incompatible_type=self._on_incompatible_type,
            message_lost=self._on_message_lost)
        return self.create_subscription(self.factory._cls(self._image_type_name), IMAGE_TOPIC,
                                        self._on_image, qos, event_callbacks=events)

    def _on_incompatible_qos(self, info):
        self.qos_incompatible = info.total_count
        self.qos_incompatible_policy = qos_policy_name_from_kind(info.last_policy_kind)
        hint = (' Set qos_reliability:=best_effort (it receives from any publisher).'
                if self.qos_incompatible_policy == 'RELIABILITY' else '')
        self.get_logger().warning(
            f"a publisher of {self.image_topic} offers QoS incompatible with this node's "
            f'subscription ({self.config.qos_reliability}, depth {self.config.qos_depth}): '
            f'policy {self.qos_incompatible_policy}. Its images will never arrive.{hint}')

    def _on_incompatible_type(self, info):
        self.get_logger().warning(
            f'{self.image_topic} is published with a type other than {self._image_type_name}; '
            "set input_transport to 'raw' (sensor_msgs/Image) or 'compressed' "
            '(sensor_msgs/CompressedImage), or remap image to the right topic.')

    def _on_message_lost(self, info):
        self.dds_messages_lost = info.total_count

    def _count_malformed(self, err):
        line = self.malformed.add(getattr(err, 'kind', 'malformed image'), str(err))
        self.stats.frame_malformed(str(err))
        if line is not None:
            self.get_logger().warning(line)

    def _on_image(self, msg, info):
        # Two parameters: rclpy then passes the message info (sequence numbers, timestamps).
        stamp = self._receive(msg, info)
        if stamp is not None and self.rate.allow(stamp):
            self.slot.put((msg, stamp, time.monotonic()))

    def _receive(self, msg, info):
        """Count an image, check its stamp, note transport gaps and latency; its stamp or None."""
        self.stats.frame_received()
        sequence = info.get('publication_sequence_number')
        try:
            stamp = message_stamp(msg)
        except ImageMessageError as err:
            self.gaps.observe(None, sequence)
            self._count_malformed(err)
            return None
        self.gaps.observe(stamp, sequence)
        sent, got = info.get('source_timestamp'), info.get('received_timestamp')
        if sent and got:
            self.transport_latency.append((got - sent) / 1e6)
            del self.transport_latency[:-200]
        return stamp

    def take_work(self):
        """Return the next item for :meth:`process_frame` (None after a short wait)."""
        return self.slot.get(timeout=0.2)

    def _work(self):
        while self._running:
            item = self.take_work()
            if item is None:
                continue
            try:
                self.process_frame(*item)
            except ImageMessageError as err:
                self._count_malformed(err)
            except AnomalyPerceptionError as err:
                self._count_malformed(ImageMessageError(str(err), 'unusable image'))
            except Exception as err:  # noqa: B902 - the worker must outlive a bad frame
                self._count_malformed(ImageMessageError(
                    f'{type(err).__name__}: {err}', 'processing error'))

    def _stop_inference(self):
        self._running = False
        if self.image_subscription is not None:
            self.destroy_subscription(self.image_subscription)
            self.image_subscription = None
        if self.slot is not None:
            self.slot.close()
        if self.worker is not None:
            self.worker.join(timeout=WORKER_JOIN_S)
            self.worker = None

    def publish(self, key, msg):
        """Publish an output message on the output ``key``."""
        self._output_publishers[key].publish(msg)

    # --- diagnostics ------------------------------------------------------------------------

    def diagnostics_snapshot(self):
        snap = self.stats.snapshot()
        snap.update({
            'lifecycle_state': self.lifecycle_state,
            'model_error': self.model_error,
            'dropped': self.slot.dropped if self.slot is not None else 0,
            'rate_skipped': self.rate.skipped if self.rate is not None else 0,
            'malformed_by_kind': self.malformed.snapshot(),
            'dropped_in_transport': self.gaps.dropped,
            'transport_loss_method': self.gaps.method,
            'dds_messages_lost': self.dds_messages_lost,
            'qos_incompatible': self.qos_incompatible,
            'qos_incompatible_policy': self.qos_incompatible_policy,
            'publishers': self.count_publishers(self.image_topic),
            'transport_latency_median_ms': (statistics.median(self.transport_latency)
                                            if self.transport_latency else float('nan')),
        })
        return snap

    def build_diagnostics(self, header, snapshot):
        """Return the DiagnosticArray for ``snapshot`` (built by the branch's message builder)."""
        backend, model = self.describe_pipeline()
        builder = self.builder or self.branch.builder(self.factory)
        return builder.diagnostics(header, snapshot, backend, model,
                                   model_ok=not self.model_error)

    def _publish_diagnostics(self):
        try:
            header = self.factory.header(self.get_clock().now().nanoseconds, '')
            self._diagnostics_publisher.publish(
                self.build_diagnostics(header, self.diagnostics_snapshot()))
        except Exception as err:  # noqa: B902 - diagnostics must never stop the node
            self.get_logger().warning(f'could not publish diagnostics: {err}',
                                      throttle_duration_sec=30.0)


def run(node_class, args=None):
    """Run a perception node (its ``main()``): exit 0 on SIGINT/SIGTERM, 1 if it cannot start."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = node_class()
        if node.config.autostart and not node.autostart():
            node.get_logger().fatal(f'cannot start: {node.model_error or "activation failed"}')
            code = 1
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except _rclpy.RCLError:
        # A signal shut the context down while the executor was building its wait set
        # (a race inside rclpy, seen under load); anything else is a real error.
        if rclpy.ok():
            raise
    except ConfigError as err:
        rclpy.logging.get_logger(getattr(node_class, 'NODE_NAME', 'node')).fatal(
            f'cannot start: {" ".join(str(err).split())}')
        code = 1
    finally:
        if node is not None:
            node.close()
        rclpy.try_shutdown()
    return code
