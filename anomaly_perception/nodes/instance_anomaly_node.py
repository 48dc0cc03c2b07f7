"""``instance_anomaly_node``: anomaly instances on keyframes, and hazards placed on the floor.

A managed (lifecycle) node with the other nodes' conventions (see
:mod:`.perception_node`). It subscribes to

* ``image`` (sensor_msgs/Image or CompressedImage, ``input_transport``),
* ``anomaly_map`` (sensor_msgs/Image 32FC1: the pixel node's
  ``~/anomaly_map``, whose header is the image's),
* ``camera_info`` (sensor_msgs/CameraInfo, for the floor placement),

and hands each image and map to its pipeline
(:class:`~..branches.instance.stream.InstanceStream`, the object ``replay
--pipelines ...,instance`` runs), which pairs them by *exact* stamp
(unpaired ones are dropped and counted) and lets the keyframe policy pick
keyframes (every ``keyframe_period_s``, and at once when the map's
frame-level probability rises by ``keyframe_rise``). Keyframes go to one
worker through a bounded latest-wins buffer (overflow counted, never
blocking), which runs UGainS on them (the same pipeline) and publishes, with the image's
header: ``~/instances`` (vision_msgs/Detection2DArray), ``~/instance_ids``
(16UC1), ``~/refined_map`` (32FC1), ``~/hazards`` (PoseArray),
``~/markers`` (MarkerArray with lifetimes) and ``~/overlay`` (rgb8, only
while subscribed); see :mod:`anomaly_perception.branches.instance.messages`.
``/diagnostics`` adds the keyframe latency (pair formed -> published), the
keyframe, pairing and buffer counts, and the prompts skipped outside the image.

    ros2 run anomaly_perception instance_anomaly_node --ros-args -r image:=/camera/image_raw
        -r anomaly_map:=/pixel_anomaly/anomaly_map -r camera_info:=/camera/camera_info
        (one line)
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

import collections
import sys
import threading
import time

from rclpy.qos import QoSDurabilityPolicy
from rclpy.qos import QoSHistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import QoSReliabilityPolicy

from .perception_node import PerceptionNode
from .perception_node import run
from ..branches.instance.messages import NODE_NAME
from ..errors import AnomalyPerceptionError
from ..errors import ImageMessageError
from ..io.images import image_to_numpy
from ..io.images import message_stamp
from ..stream.keyframes import LatestWinsBuffer
from ..stream.keyframes import StampMatcher

MAP_TOPIC = 'anomaly_map'
CAMERA_INFO_TOPIC = 'camera_info'


class InstanceAnomalyNode(PerceptionNode):
    """The instance branch's node (see module docs)."""

    BRANCH = 'instance'
    NODE_NAME = NODE_NAME

    def __init__(self, node_name=None, **kwargs):
        self.map_subscription = None
        self.camera_info_subscription = None
        self._pair_lock = threading.Lock()
        self._new_keyframe_state()
        super().__init__(node_name, **kwargs)

    def _new_keyframe_state(self, config=None):
        if getattr(self, 'pipeline', None) is not None:
            self.pipeline.reset_pairing()
        self.keyframe_buffer = LatestWinsBuffer(config.keyframe_buffer if config else 4)
        self.keyframe_reasons = collections.Counter()
        self.camera_info_error = ''
        self._camera_info_seen = None

    # --- subscriptions ----------------------------------------------------------------------

    @property
    def map_topic(self):
        return self.resolve_topic_name(MAP_TOPIC)

    def on_activate(self, state):
        self._new_keyframe_state(self.config)
        return super().on_activate(state)

    def _subscribe(self, config):
        image_subscription = super()._subscribe(config)
        qos = QoSProfile(
            history=QoSHistoryPolicy.KEEP_LAST, depth=max(config.qos_depth, 5),
            reliability=(QoSReliabilityPolicy.RELIABLE if config.qos_reliability == 'reliable'
                         else QoSReliabilityPolicy.BEST_EFFORT),
            durability=QoSDurabilityPolicy.VOLATILE)
        self.map_subscription = self.create_subscription(
            self.factory._cls('sensor_msgs/msg/Image'), MAP_TOPIC, self._on_map, qos)
        self.camera_info_subscription = self.create_subscription(
            self.factory._cls('sensor_msgs/msg/CameraInfo'), CAMERA_INFO_TOPIC,
            self._on_camera_info, QoSProfile(
                history=QoSHistoryPolicy.KEEP_LAST, depth=1,
                reliability=QoSReliabilityPolicy.BEST_EFFORT,
                durability=QoSDurabilityPolicy.VOLATILE))
        return image_subscription

    def _stop_inference(self):
        for name in ('map_subscription', 'camera_info_subscription'):
            subscription = getattr(self, name)
            if subscription is not None:
                self.destroy_subscription(subscription)
                setattr(self, name, None)
        super()._stop_inference()

    def _on_image(self, msg, info):
        # The base's checks (stamp, transport gaps, latency); then pair instead of queueing.
        stamp = self._receive(msg, info)
        if stamp is not None:
            self._pair('image', stamp, msg)

    def _on_map(self, msg):
        try:
            stamp = message_stamp(msg)
            if msg.encoding != '32FC1':
                raise ImageMessageError('the anomaly map must be 32FC1 (the pixel node '
                                        f'~/anomaly_map), got {msg.encoding!r}.',
                                        'malformed anomaly map')
            anomaly_map = image_to_numpy(msg, copy=True)
        except ImageMessageError as err:
            self._count_malformed(ImageMessageError(f'anomaly map: {err}',
                                                    'malformed anomaly map'))
            return
        self._pair('map', stamp, anomaly_map)

    def _pair(self, side, stamp, item):
        with self._pair_lock:
            if self.pipeline is None:
                return
            pairing = self.pipeline.pair(side, stamp, item)
        if pairing is not None and pairing.keyframe and self.rate.allow(stamp):
            self.keyframe_reasons[pairing.reason] += 1
            self.keyframe_buffer.put((pairing.image, pairing.anomaly_map, stamp,
                                      time.monotonic(), pairing.reason, pairing.probability))

    def _on_camera_info(self, msg):
        key = (tuple(msg.k), msg.width, msg.height)
        if key == self._camera_info_seen or self.pipeline is None:
            return
        self._camera_info_seen = key
        try:
            self.pipeline.set_camera_info(msg.k, msg.width, msg.height)
            self.camera_info_error = ''
        except AnomalyPerceptionError as err:
            self.camera_info_error = str(err)
            self.get_logger().warning(f'camera_info not usable, hazards not placed: {err}')

    # --- the worker -------------------------------------------------------------------------

    def take_work(self):
        return self.keyframe_buffer.take(timeout=0.2)

    def process_frame(self, msg, anomaly_map, stamp, paired, reason, probability):
        """Run UGainS on one keyframe and publish its outputs (in the worker thread)."""
        image = self.pipeline.decode(msg)
        frame = self.pipeline.keyframe(stamp, image, anomaly_map, reason, probability)
        for key, out in self.builder.outputs(msg.header, frame,
                                             **self.output_options()).items():
            self.publish(key, out)
        self.stats.frame_processed(time.monotonic() - paired)

    def output_options(self):
        # The overlay costs a full-size drawing: only while someone watches it.
        return {'overlay': self._output_publishers['overlay'].get_subscription_count() > 0}

    def describe_pipeline(self):
        if self.pipeline is None:
            return {}, ''
        backend = dict(self.pipeline.detector.backend.describe())
        return backend, (f'{self.pipeline.name} ({self.pipeline.model_dir}) driven by '
                         f'{self.pipeline.pixel_model_dir}')

    def diagnostics_snapshot(self):
        snap = super().diagnostics_snapshot()
        matcher = self.pipeline.matcher if self.pipeline is not None else StampMatcher()
        pending = matcher.pending()
        camera = ('off (place_on_floor false)' if not self.config.place_on_floor else
                  self.camera_info_error or ('received' if self._camera_info_seen
                                             else 'none yet'))
        snap['dropped'] = self.keyframe_buffer.overflow + self.keyframe_buffer.superseded
        promptable = self.pipeline.detector.promptable if self.pipeline is not None else None
        snap['extra'] = {
            'keyframe_latency_median_ms': snap['latency_median_ms'],
            'keyframes_taken': sum(self.keyframe_reasons.values()),
            'keyframes_by_reason': ', '.join(f'{k} {v}' for k, v in
                                             sorted(self.keyframe_reasons.items())) or 'none',
            'keyframe_buffer_overflow': self.keyframe_buffer.overflow,
            'keyframes_superseded': self.keyframe_buffer.superseded,
            'pairs_matched': matcher.matched,
            'unmatched_images_dropped': matcher.dropped['image'],
            'unmatched_maps_dropped': matcher.dropped['map'],
            'waiting_images': pending['image'], 'waiting_maps': pending['map'],
            'map_topic': self.map_topic,
            'camera_info': camera,
            'promptable': 'none (connected regions of the map)' if promptable is None and
                          self.pipeline is not None else 'loaded' if promptable else '-',
            'prompts_outside_image_skipped': getattr(promptable, 'outside_points', 0),
        }
        return snap


def main(args=None):
    """Run the node until SIGINT/SIGTERM (exit 0); exit 1 with one log line if it cannot start."""
    return run(InstanceAnomalyNode, args)


if __name__ == '__main__':
    sys.exit(main())
