"""The instance branch's output messages, built the same way live and in replay.

Topics, relative to the node (``instance_anomaly``), every message stamped
with the keyframe image's header, images at its resolution:

* ``~/instances`` (vision_msgs/Detection2DArray): per instance its box
  (centre and size in pixels), ``id`` (the value in ``~/instance_ids``) and
  one hypothesis ``anomaly`` with the instance's score;
* ``~/instance_ids`` (sensor_msgs/Image, 16UC1): 0 = none, ``k`` = the
  ``k``-th instance, highest score first;
* ``~/refined_map`` (32FC1): UGainS's ensemble (instance score + the pixel
  map where an instance covers the pixel, -1 + map elsewhere; NaN where the
  pixel model did not look);
* ``~/overlay`` (rgb8): instances tinted, boxed and labelled; built only when
  asked for;
* ``~/hazards`` (geometry_msgs/PoseArray): the floor contact of each placed
  instance, in the image's frame (the camera's optical frame), in the order
  of ``~/instances`` minus those that could not be placed;
* ``~/markers`` (visualization_msgs/MarkerArray): a DELETEALL, then per
  placed instance a flat cylinder at its floor contact as wide as the
  instance, and its id and score as text; every marker has a lifetime so
  nothing stale lingers in rviz when keyframes stop.
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

import cv2
import numpy as np

from ...io.diagnostics import diagnostics_message
from ...io.diagnostics import DIAGNOSTICS_TOPIC
from ...io.diagnostics import DIAGNOSTICS_TYPE  # noqa: F401 - a messages module names it
from ...io.images import numpy_to_image

NODE_NAME = 'instance_anomaly'
OUTPUT_TYPES = {
    'instances': 'vision_msgs/msg/Detection2DArray',
    'instance_ids': 'sensor_msgs/msg/Image',
    'refined_map': 'sensor_msgs/msg/Image',
    'overlay': 'sensor_msgs/msg/Image',
    'hazards': 'geometry_msgs/msg/PoseArray',
    'markers': 'visualization_msgs/msg/MarkerArray',
}
MARKER_ADD, MARKER_DELETEALL = 0, 3
MARKER_CYLINDER, MARKER_TEXT = 3, 9


def output_topics(namespace=''):
    """Full topic names of the node's outputs in ``namespace`` ('' = root)."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    topics = {k: f'{ns}/{NODE_NAME}/{k}' for k in OUTPUT_TYPES}
    topics['diagnostics'] = DIAGNOSTICS_TOPIC
    return topics


def instance_overlay(rgb, result, alpha=0.5):
    """RGB ``uint8`` image with each instance tinted in its own colour, its box and its score."""
    out = rgb.copy()
    colours = np.random.default_rng(0).integers(60, 256, (max(1, len(result.scores)), 3))
    for k, (score, box) in enumerate(zip(result.scores, result.boxes)):
        mask = result.ids == k + 1
        colour = colours[k]
        out[mask] = (out[mask] * (1 - alpha) + colour * alpha).astype(np.uint8)
        x0, y0, x1, y1 = (int(v) for v in box)
        c = tuple(int(v) for v in colour)
        cv2.rectangle(out, (x0, y0), (x1, y1), c, 1)
        cv2.putText(out, f'{k + 1}:{score:.2f}', (x0, max(10, y0 - 2)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, c, 1, cv2.LINE_AA)
    return out


class InstanceMessageBuilder:
    """Build the instance node's messages with a message factory (rosbags or rclpy).

    Args:
        factory: a message factory (``new``, ``header``).
        marker_lifetime_s: how long rviz keeps a hazard marker.
        overlay_alpha: the overlay's tint opacity.

    """

    def __init__(self, factory, marker_lifetime_s=2.0, overlay_alpha=0.5):
        self.f = factory
        self.marker_lifetime_s = float(marker_lifetime_s)
        self.overlay_alpha = float(overlay_alpha)

    @classmethod
    def from_config(cls, factory, config):
        """Build with the settings of an ``InstanceNodeConfig``."""
        return cls(factory, config.marker_lifetime_s, config.overlay_alpha)

    def reconfigure(self, config):
        """Take live parameter changes (marker lifetime, overlay opacity)."""
        self.marker_lifetime_s = float(config.marker_lifetime_s)
        self.overlay_alpha = float(config.overlay_alpha)

    def _point(self, x, y, z):
        return self.f.new('geometry_msgs/msg/Point', x=float(x), y=float(y), z=float(z))

    def _pose(self, position):
        return self.f.new('geometry_msgs/msg/Pose', position=self._point(*position),
                          orientation=self.f.new('geometry_msgs/msg/Quaternion', w=1.0))

    def detections(self, header, result):
        """``~/instances``: a Detection2D per instance (box, id, score)."""
        f = self.f
        dets = []
        for k, (score, (x0, y0, x1, y1)) in enumerate(zip(result.scores, result.boxes)):
            bbox = f.new('vision_msgs/msg/BoundingBox2D', center=f.new(
                'vision_msgs/msg/Pose2D', position=f.new(
                    'vision_msgs/msg/Point2D', x=(x0 + x1) / 2.0, y=(y0 + y1) / 2.0),
                theta=0.0), size_x=float(x1 - x0 + 1), size_y=float(y1 - y0 + 1))
            hyp = f.new('vision_msgs/msg/ObjectHypothesisWithPose', hypothesis=f.new(
                'vision_msgs/msg/ObjectHypothesis', class_id='anomaly', score=float(score)))
            dets.append(f.new('vision_msgs/msg/Detection2D', header=header, results=[hyp],
                              bbox=bbox, id=str(k + 1)))
        return f.new('vision_msgs/msg/Detection2DArray', header=header, detections=dets)

    def hazards(self, header, result):
        """``~/hazards``: the placed instances' floor contacts (camera optical frame)."""
        return self.f.new('geometry_msgs/msg/PoseArray', header=header,
                          poses=[self._pose(h.position) for h in result.hazards])

    def markers(self, header, result):
        """``~/markers``: DELETEALL, then a disc and a label per placed instance."""
        f = self.f
        sec = int(self.marker_lifetime_s)
        lifetime = f.new('builtin_interfaces/msg/Duration', sec=sec,
                         nanosec=int(round((self.marker_lifetime_s - sec) * 1e9)))
        out = [f.new('visualization_msgs/msg/Marker', header=header, ns=NODE_NAME,
                     action=MARKER_DELETEALL)]
        for h in result.hazards:
            score = float(result.scores[h.instance - 1])
            red = f.new('std_msgs/msg/ColorRGBA', r=1.0, g=0.2, b=0.1, a=0.8)
            width = max(h.width, 0.05)
            out.append(f.new(
                'visualization_msgs/msg/Marker', header=header, ns=NODE_NAME,
                id=2 * h.instance, type=MARKER_CYLINDER, action=MARKER_ADD,
                # A flat disc on the floor: the optical frame's y axis points down,
                # so the cylinder's axis (its z) is turned onto y.
                pose=f.new('geometry_msgs/msg/Pose', position=self._point(*h.position),
                           orientation=f.new('geometry_msgs/msg/Quaternion', x=0.7071068,
                                             w=0.7071068)),
                scale=f.new('geometry_msgs/msg/Vector3', x=width, y=width, z=0.02),
                color=red, lifetime=lifetime))
            x, y, z = h.position
            out.append(f.new(
                'visualization_msgs/msg/Marker', header=header, ns=NODE_NAME,
                id=2 * h.instance + 1, type=MARKER_TEXT, action=MARKER_ADD,
                pose=self._pose((x, y - 0.15, z)),
                scale=f.new('geometry_msgs/msg/Vector3', z=0.1), color=red,
                lifetime=lifetime, text=f'#{h.instance} {score:.2f} at {h.distance:.1f} m'))
        return f.new('visualization_msgs/msg/MarkerArray', markers=out)

    def outputs(self, header, result, image=None, overlay=False):
        """Build one keyframe's messages.

        ``result`` is an :class:`~.detector.InstanceFrameResult`, or
        a keyframe's ``InstanceFrame`` (its instances and image). ``overlay``
        adds ``~/overlay`` (drawn on ``image``, RGB).
        """
        if hasattr(result, 'instances'):
            if result.instances is None:
                raise ValueError('not a keyframe: it has no instances to publish')
            result, image = result.instances, image if image is not None else result.image
        out = {
            'instances': self.detections(header, result),
            'instance_ids': numpy_to_image(result.ids.astype(np.uint16), '16UC1', header,
                                           self.f),
            'refined_map': numpy_to_image(result.refined.astype(np.float32), '32FC1', header,
                                          self.f),
            'hazards': self.hazards(header, result),
            'markers': self.markers(header, result),
        }
        if overlay and image is not None:
            out['overlay'] = numpy_to_image(instance_overlay(image, result, self.overlay_alpha),
                                            'rgb8', header, self.f)
        return out

    def diagnostics(self, header, snapshot, backend, model_name, model_ok=True):
        """``/diagnostics``: see :func:`~...io.diagnostics.diagnostics_message`."""
        return diagnostics_message(self.f, NODE_NAME, header, snapshot, backend, model_name,
                                   model_ok)
