"""Build ROS messages without caring whose message classes they are.

Code that builds output messages (image conversion, replay, the nodes) asks a
*message factory* for a message type by its full name and gives only the
fields it cares about; every other field gets the ROS default (zero, empty
string, empty sequence, default sub-message), as rclpy's constructors do.

:class:`RosbagsMessageFactory` builds the dataclasses of a ``rosbags`` type
store (used offline: bags, tests, replay). The rclpy factory lives with the
nodes, which are the only place rclpy is imported.
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
import math

import numpy as np
from rosbags.interfaces import Nodetype

from .msgdefs import DEFAULT_DISTRO
from .msgdefs import project_typestore

_NUMPY_TYPES = {
    'bool': np.bool_,
    'byte': np.uint8,
    'char': np.uint8,
    'int8': np.int8,
    'uint8': np.uint8,
    'int16': np.int16,
    'uint16': np.uint16,
    'int32': np.int32,
    'uint32': np.uint32,
    'int64': np.int64,
    'uint64': np.uint64,
    'float32': np.float32,
    'float64': np.float64,
}

# Non-zero defaults declared in the ROS 2 .msg files; rosbags' field
# definitions do not carry default values.
_DECLARED_DEFAULTS = {
    'geometry_msgs/msg/Quaternion': {'w': 1.0},
}


def hypothesis(f, class_id, score):
    """Build a vision_msgs/ObjectHypothesis with the message factory ``f``."""
    return f.new('vision_msgs/msg/ObjectHypothesis', class_id=class_id, score=float(score))


def score_classification(f, header, probability, raw):
    """Build a frame's ``~/score`` (vision_msgs/Classification), as frame and pixel nodes do.

    ``anomaly`` with the calibrated probability and ``raw_score`` with the raw
    score, or ``unscorable`` alone when the raw score is missing or not finite.
    """
    if raw is None or not math.isfinite(raw):
        results = [hypothesis(f, 'unscorable', 1.0)]
    else:
        prob = probability if math.isfinite(probability) else float('nan')
        results = [hypothesis(f, 'anomaly', prob), hypothesis(f, 'raw_score', raw)]
    return f.new('vision_msgs/msg/Classification', header=header, results=results)


def hazard_classification(f, header, state):
    """Build a ``~/hazard`` (vision_msgs/Classification), as frame and pixel nodes do.

    ``hazard`` or ``clear`` with the smoothed probability, after hysteresis
    (``state``: a :class:`~anomaly_perception.stream.hazard.HazardState`).
    """
    return f.new('vision_msgs/msg/Classification', header=header,
                 results=[hypothesis(f, 'hazard' if state.flag else 'clear', state.smoothed)])


def stamp_to_ns(stamp):
    """Convert a ``builtin_interfaces/Time`` (fields ``sec``, ``nanosec``) to integer ns."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_sec_nanosec(stamp_ns):
    """Split integer nanoseconds into ``(sec, nanosec)`` with ``0 <= nanosec < 1e9``."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return sec, nanosec


class RosbagsMessageFactory:
    """Create messages of a ``rosbags`` type store with ROS default values.

    Example::

        factory = RosbagsMessageFactory('humble')
        header = factory.header(stamp_ns=1_700_000_000_000_000_000, frame_id='camera')
        msg = factory.new('vision_msgs/msg/Classification', header=header)

    """

    def __init__(self, distro=DEFAULT_DISTRO, typestore=None):
        self.distro = distro
        self.typestore = typestore if typestore is not None else project_typestore(distro)
        self._plans = {}

    def new(self, msgtype, **fields):
        """Return a ``msgtype`` message with ``fields`` set and all others defaulted.

        Sequences of numbers may be given as lists, ``bytes``, ``array.array``
        or numpy arrays; they are stored as numpy arrays, as rosbags expects.

        Raises:
            KeyError: ``msgtype`` is not in the type store.
            TypeError: a field name is not a field of ``msgtype``.

        """
        cls, plan = self._plan(msgtype)
        unknown = set(fields) - set(plan)
        if unknown:
            raise TypeError(
                f'{msgtype} has no field(s) {sorted(unknown)}; fields are {list(plan)}.'
            )
        declared = _DECLARED_DEFAULTS.get(msgtype, {})
        values = {}
        for name, (kind, detail) in plan.items():
            if name in fields:
                values[name] = self._coerce(kind, detail, fields[name])
            elif name in declared:
                values[name] = declared[name]
            else:
                values[name] = self._default(kind, detail)
        return cls(**values)

    @staticmethod
    def byte(value):
        """Return a ROS ``byte`` field value (rosbags: int; rclpy wants a 1-byte ``bytes``)."""
        return int(value)

    def header(self, stamp_ns, frame_id):
        """Return a ``std_msgs/msg/Header`` for integer nanoseconds ``stamp_ns``."""
        sec, nanosec = ns_to_sec_nanosec(stamp_ns)
        stamp = self.new('builtin_interfaces/msg/Time', sec=sec, nanosec=nanosec)
        return self.new('std_msgs/msg/Header', stamp=stamp, frame_id=frame_id)

    def _plan(self, msgtype):
        plan = self._plans.get(msgtype)
        if plan is None:
            cls = self.typestore.types[msgtype]
            _, fielddefs = self.typestore.fielddefs[msgtype]
            plan = (cls, dict(fielddefs))
            self._plans[msgtype] = plan
        return plan

    def _default(self, kind, detail):
        if kind == Nodetype.BASE:
            typename = detail[0]
            if typename == 'string':
                return ''
            if typename == 'bool':
                return False
            return _NUMPY_TYPES[typename](0).item()
        if kind == Nodetype.NAME:
            return self.new(detail)
        (subkind, subdetail), length = detail
        if kind == Nodetype.ARRAY:
            if subkind == Nodetype.BASE and subdetail[0] in _NUMPY_TYPES:
                return np.zeros(length, dtype=_NUMPY_TYPES[subdetail[0]])
            return [self._default(subkind, subdetail) for _ in range(length)]
        if subkind == Nodetype.BASE and subdetail[0] in _NUMPY_TYPES:
            return np.zeros(0, dtype=_NUMPY_TYPES[subdetail[0]])
        return []

    def _coerce(self, kind, detail, value):
        if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            (subkind, subdetail), _ = detail
            if subkind == Nodetype.BASE and subdetail[0] in _NUMPY_TYPES:
                dtype = _NUMPY_TYPES[subdetail[0]]
                if isinstance(value, (bytes, bytearray, memoryview, array.array)):
                    return np.frombuffer(value, dtype=np.uint8).view(dtype)
                return np.asarray(value, dtype=dtype).reshape(-1)
            return list(value)
        return value
