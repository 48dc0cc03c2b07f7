"""The pixel node's output messages, built the same way live and in replay.

Topics, relative to the node (``pixel_anomaly``), every message stamped with
the input image's header, maps at the input image's resolution:

* ``~/anomaly_map`` (sensor_msgs/Image, 32FC1): the raw per-pixel anomaly
  score (higher = more anomalous), every pixel of the image scored;
* ``~/anomaly_mask`` (mono8): 255 where the score is above the threshold
  (a target pixel false-positive rate on normal pixels), else 0;
* ``~/semantic`` (mono8): class ids (see ``~/label_info``), 255 void;
* ``~/failure_map`` (32FC1), only from a model with a failure head (``train
  failure``, FSNet): the probability that ``~/semantic`` is wrong at each
  pixel;
* ``~/overlay`` (rgb8): the image with the mask tinted red and the map's
  calibrated probability as intensity; built only when asked for (the node
  builds it only while someone subscribes);
* ``~/score`` (vision_msgs/Classification): ``anomaly`` with the calibrated
  frame-level probability and ``raw_score`` with the frame-level score (the
  map's 0.99 quantile), or ``unscorable``;
* ``~/hazard`` (vision_msgs/Classification): ``hazard`` or ``clear`` with
  the smoothed frame-level probability, after hysteresis (the frame node's
  filter; a place model sets its level for a false-alarm rate); not
  published by a model without a frame calibration;
* ``~/label_info`` (vision_msgs/LabelInfo, transient local): the class names;
* ``/diagnostics``: as every perception node.
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


import numpy as np

from ...io.diagnostics import diagnostics_message
from ...io.diagnostics import DIAGNOSTICS_TOPIC
from ...io.diagnostics import DIAGNOSTICS_TYPE  # noqa: F401 - a messages module names it
from ...io.images import numpy_to_image
from ...io.messages import hazard_classification
from ...io.messages import score_classification

NODE_NAME = 'pixel_anomaly'
OUTPUT_TYPES = {
    'anomaly_map': 'sensor_msgs/msg/Image',
    'anomaly_mask': 'sensor_msgs/msg/Image',
    'semantic': 'sensor_msgs/msg/Image',
    'failure_map': 'sensor_msgs/msg/Image',
    'overlay': 'sensor_msgs/msg/Image',
    'score': 'vision_msgs/msg/Classification',
    'hazard': 'vision_msgs/msg/Classification',
}
LABEL_INFO_TYPE = 'vision_msgs/msg/LabelInfo'


def output_topics(namespace=''):
    """Full topic names of the node's outputs in ``namespace`` ('' = root)."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    topics = {k: f'{ns}/{NODE_NAME}/{k}' for k in (*OUTPUT_TYPES, 'label_info')}
    topics['diagnostics'] = DIAGNOSTICS_TOPIC
    return topics


def overlay_image(image, result, alpha=0.5):
    """RGB ``uint8`` image with the anomaly mask tinted red by the calibrated probability."""
    prob = np.nan_to_num(result.probability, nan=0.0)
    weight = (alpha * result.mask * prob)[..., None]
    red = np.zeros_like(image)
    red[..., 0] = 255
    return (image * (1.0 - weight) + red * weight).astype(np.uint8)


class PixelMessageBuilder:
    """Build the pixel node's messages with a message factory (rosbags or rclpy)."""

    def __init__(self, factory, overlay_alpha=0.5):
        self.f = factory
        self.overlay_alpha = overlay_alpha

    @classmethod
    def from_config(cls, factory, config):
        """Build with the settings of a :class:`~.config.PixelNodeConfig`."""
        return cls(factory, config.overlay_alpha)

    def reconfigure(self, config):
        """Take live parameter changes (the overlay's opacity)."""
        self.overlay_alpha = config.overlay_alpha

    def score(self, header, probability, raw):
        """``~/score``: the frame-level calibrated probability and raw score."""
        return score_classification(self.f, header, probability, raw)

    def label_info(self, header, classes, threshold=0.0):
        """``~/label_info``: class id -> name of ``~/semantic``."""
        f = self.f
        classmap = [f.new('vision_msgs/msg/VisionClass', class_id=i, class_name=name)
                    for i, name in enumerate(classes)]
        return f.new(LABEL_INFO_TYPE, header=header, class_map=classmap,
                     threshold=float(threshold))

    def outputs(self, header, result, overlay=False):
        """Build the per-frame messages for one :class:`~.stream.PixelFrame`.

        ``overlay`` adds ``~/overlay`` (drawn on the frame's image).
        """
        r = result.pixels
        out = {
            'anomaly_map': numpy_to_image(r.anomaly.astype(np.float32), '32FC1', header, self.f),
            'anomaly_mask': numpy_to_image(r.mask.astype(np.uint8) * 255, 'mono8', header,
                                           self.f),
            'semantic': numpy_to_image(r.semantic, 'mono8', header, self.f),
            'score': self.score(header, r.frame_probability, r.frame_score),
        }
        if result.state is not None:
            out['hazard'] = hazard_classification(self.f, header, result.state)
        if r.failure is not None:
            out['failure_map'] = numpy_to_image(r.failure.astype(np.float32), '32FC1', header,
                                                self.f)
        if overlay:
            out['overlay'] = numpy_to_image(overlay_image(result.image, r, self.overlay_alpha),
                                            'rgb8', header, self.f)
        return out

    def diagnostics(self, header, snapshot, backend, model_name, model_ok=True):
        """``/diagnostics``: see :func:`~...io.diagnostics.diagnostics_message`."""
        return diagnostics_message(self.f, NODE_NAME, header, snapshot, backend, model_name,
                                   model_ok)
