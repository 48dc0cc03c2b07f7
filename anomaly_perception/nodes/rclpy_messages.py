"""A message factory for rclpy message classes.

The nodes' counterpart of
:class:`anomaly_perception.io.messages.RosbagsMessageFactory`.
Message modules are imported on first use, so importing this file needs no
ROS 2; creating messages does.
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

import array
import importlib

import numpy as np


class RclpyMessageFactory:
    """``new('vision_msgs/msg/Classification', header=..., results=[...])`` for rclpy."""

    def __init__(self):
        self._classes = {}

    def _cls(self, msgtype):
        cls = self._classes.get(msgtype)
        if cls is None:
            package, _, name = msgtype.split('/')
            cls = getattr(importlib.import_module(f'{package}.msg'), name)
            self._classes[msgtype] = cls
        return cls

    def new(self, msgtype, **fields):
        for key, value in list(fields.items()):
            if isinstance(value, np.ndarray):
                # rclpy stores uint8[] as array.array('B'); other numeric arrays as lists.
                fields[key] = (array.array('B', value.tobytes()) if value.dtype == np.uint8
                               else value.tolist())
        return self._cls(msgtype)(**fields)

    @staticmethod
    def byte(value):
        """Return a ROS ``byte`` field value as rclpy wants it: 1-byte ``bytes``."""
        return bytes([int(value)])

    def header(self, stamp_ns, frame_id):
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        stamp = self._cls('builtin_interfaces/msg/Time')(sec=sec, nanosec=nanosec)
        return self._cls('std_msgs/msg/Header')(stamp=stamp, frame_id=frame_id)
