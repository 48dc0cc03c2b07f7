"""ROS 2 type stores with the message types the package reads and writes.

The ``rosbags`` type stores for Humble and Jazzy hold sensor_msgs, std_msgs,
visualization_msgs and diagnostic_msgs, but not vision_msgs. The vision_msgs
4.x definitions we publish (the same in Humble and Jazzy) are registered here,
so bags with those topics can be written and read on a machine without ROS.
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

import functools

from rosbags.typesys import get_types_from_msg
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores

from ..errors import BagError

#: Supported ROS 2 distributions and the rosbags store that describes each.
DISTROS = {
    'humble': Stores.ROS2_HUMBLE,
    'jazzy': Stores.ROS2_JAZZY,
}

DEFAULT_DISTRO = 'humble'

VISION_MSGS_VERSION = '4.1.1'

# The complete vision_msgs 4.1.1 message set (Humble and Jazzy), field by
# field as upstream declares them: the RIHS01 type hashes computed from these
# equal upstream's, so messages built from them interoperate with a robot's
# ros-<distro>-vision-msgs. ``tools/setup_ros.py`` builds the Python message
# package from exactly these texts where no vision_msgs package exists.
VISION_MSGS = {
    'vision_msgs/msg/BoundingBox2D': """
vision_msgs/Pose2D center
float64 size_x
float64 size_y
""",
    'vision_msgs/msg/BoundingBox2DArray': """
std_msgs/Header header
vision_msgs/BoundingBox2D[] boxes
""",
    'vision_msgs/msg/BoundingBox3D': """
geometry_msgs/Pose center
geometry_msgs/Vector3 size
""",
    'vision_msgs/msg/BoundingBox3DArray': """
std_msgs/Header header
vision_msgs/BoundingBox3D[] boxes
""",
    'vision_msgs/msg/Classification': """
std_msgs/Header header
vision_msgs/ObjectHypothesis[] results
""",
    'vision_msgs/msg/Detection2D': """
std_msgs/Header header
vision_msgs/ObjectHypothesisWithPose[] results
vision_msgs/BoundingBox2D bbox
string id
""",
    'vision_msgs/msg/Detection2DArray': """
std_msgs/Header header
vision_msgs/Detection2D[] detections
""",
    'vision_msgs/msg/Detection3D': """
std_msgs/Header header
vision_msgs/ObjectHypothesisWithPose[] results
vision_msgs/BoundingBox3D bbox
string id
""",
    'vision_msgs/msg/Detection3DArray': """
std_msgs/Header header
vision_msgs/Detection3D[] detections
""",
    'vision_msgs/msg/LabelInfo': """
std_msgs/Header header
vision_msgs/VisionClass[] class_map
float32 threshold
""",
    'vision_msgs/msg/ObjectHypothesis': """
string class_id
float64 score
""",
    'vision_msgs/msg/ObjectHypothesisWithPose': """
vision_msgs/ObjectHypothesis hypothesis
geometry_msgs/PoseWithCovariance pose
""",
    'vision_msgs/msg/Point2D': """
float64 x
float64 y
""",
    'vision_msgs/msg/Pose2D': """
vision_msgs/Point2D position
float64 theta
""",
    'vision_msgs/msg/VisionClass': """
uint16 class_id
string class_name
""",
    'vision_msgs/msg/VisionInfo': """
std_msgs/Header header
string method
string database_location
int32 database_version
""",
}


def register_vision_msgs(typestore):
    """Add the vision_msgs 4.x types to ``typestore`` (no-op for types it has)."""
    types = {}
    for name, text in VISION_MSGS.items():
        if name not in typestore.fielddefs:
            types.update(get_types_from_msg(text, name))
    if types:
        typestore.register(types)
    return typestore


@functools.lru_cache(maxsize=None)
def project_typestore(distro=DEFAULT_DISTRO):
    """Return the shared type store for ``distro`` with vision_msgs registered.

    Args:
        distro: ``'humble'`` or ``'jazzy'``.

    Raises:
        BagError: ``distro`` is not one of :data:`DISTROS`.

    """
    try:
        store = DISTROS[distro]
    except KeyError:
        raise BagError(
            f'Unknown ROS 2 distribution {distro!r}; supported: {", ".join(DISTROS)}.'
        ) from None
    return register_vision_msgs(get_typestore(store))
