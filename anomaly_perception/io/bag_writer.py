"""Write ROS 2 bags (sqlite3 and mcap storage) without ROS: :class:`BagWriter`.

Any message type of the project's type stores (vision_msgs included), for
Humble (bag version 8) or Jazzy (version 9); the bag appears at its path
only when complete. Reading is :mod:`.bags`.
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

import contextlib
from pathlib import Path

from rosbags.interfaces import Qos
from rosbags.interfaces import QosDurability
from rosbags.interfaces import QosHistory
from rosbags.interfaces import QosLiveliness
from rosbags.interfaces import QosReliability
from rosbags.interfaces import QosTime
from rosbags.rosbag2 import CompressionFormat
from rosbags.rosbag2 import CompressionMode
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer

from .files import atomic_directory
from .messages import RosbagsMessageFactory
from .messages import stamp_to_ns
from .msgdefs import DEFAULT_DISTRO
from .msgdefs import project_typestore
from ..errors import BagError


STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
DEFAULT_STORAGE = 'mcap'

# rosbag2 metadata versions: Humble's rosbag2 reads up to 5 but rosbags writes
# 8 or 9; version 8 keeps the QoS profiles in the string form older
# rosbag2 releases parse. Jazzy writes 9 itself.
_BAG_VERSION = {'humble': 8, 'jazzy': 9}

_INFINITE = QosTime(2147483647, 4294967295)


def default_qos(depth=10, reliable=True):
    """Return the QoS profile recorded for the topics we write: keep-last, volatile."""
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.VOLATILE,
        deadline=_INFINITE,
        lifespan=_INFINITE,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=_INFINITE,
        avoid_ros_namespace_conventions=False,
    )


class BagWriter:
    """Write a ROS 2 bag that appears at ``path`` only once it is complete.

    Example::

        with BagWriter('out_bag', storage='mcap') as bag:
            bag.add_topic('/score', 'vision_msgs/msg/Classification')
            bag.write('/score', msg)           # log time = msg.header.stamp

    Messages are built with :attr:`factory` (a :class:`RosbagsMessageFactory`
    for the chosen distribution). Leaving the ``with`` block through an
    exception removes the partial bag.

    Args:
        path: the bag directory to create.
        storage: ``'mcap'`` (default) or ``'sqlite3'``.
        distro: ``'humble'`` (default) or ``'jazzy'``: the type store and
            metadata version used.
        overwrite: replace an existing bag at ``path``.
        compression: ``'zstd'`` compresses inside the storage file; None
            (default) writes uncompressed.
        custom_data: string key/values stored in the bag's metadata.

    """

    def __init__(self, path, *, storage=DEFAULT_STORAGE, distro=DEFAULT_DISTRO, overwrite=False,
                 compression=None, custom_data=None):
        if storage not in STORAGES:
            raise BagError(
                f'Unknown bag storage {storage!r}; supported: {", ".join(STORAGES)}.'
            )
        if compression not in (None, 'zstd'):
            raise BagError(f"Unknown bag compression {compression!r}; use 'zstd' or none.")
        self.compression = compression
        self.custom_data = dict(custom_data or {})
        self.path = Path(path)
        self.storage = storage
        self.distro = distro
        self.typestore = project_typestore(distro)
        self.factory = RosbagsMessageFactory(distro)
        self.overwrite = overwrite
        self._stack = None
        self._writer = None
        self._connections = {}
        self.counts = {}

    def __enter__(self):
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(
                atomic_directory(self.path, overwrite=self.overwrite, create=False))
            writer = Writer(tmp, version=_BAG_VERSION[self.distro],
                            storage_plugin=STORAGES[self.storage])
            if self.compression == 'zstd':
                # mcap compresses its chunks; sqlite3 bags compress each message
                # (rosbag2's 'message' mode). ros2 bag reads both as they are.
                mode = CompressionMode.STORAGE if self.storage == 'mcap' else (
                    CompressionMode.MESSAGE)
                writer.set_compression(mode, CompressionFormat.ZSTD)
            for key, value in self.custom_data.items():
                writer.set_custom_data(key, value)
            writer.open()
        except BaseException:
            stack.close()
            raise
        self._stack, self._writer = stack, writer
        return self

    def __exit__(self, exc_type, exc, tb):
        writer, self._writer = self._writer, None
        stack, self._stack = self._stack, None
        try:
            if exc_type is None:
                writer.close()
            else:
                with contextlib.suppress(Exception):
                    writer.abort()
        finally:
            # Renames the finished bag into place, or removes the partial one.
            stack.__exit__(exc_type, exc, tb)
        return False

    def has_topic(self, topic):
        """Return whether ``topic`` was added."""
        return topic in self._connections

    def add_topic(self, topic, msgtype, *, qos=None):
        """Declare ``topic`` with message type ``msgtype`` (e.g. ``'sensor_msgs/msg/Image'``)."""
        if self._writer is None:
            raise BagError('BagWriter is not open; use it in a with-statement.')
        if topic in self._connections:
            raise BagError(f'Topic {topic!r} was already added to {str(self.path)!r}.')
        if msgtype not in self.typestore.fielddefs:
            raise BagError(f'Unknown message type {msgtype!r} for topic {topic!r}.')
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self.typestore,
            offered_qos_profiles=[qos or default_qos()])
        self.counts[topic] = 0

    def write(self, topic, msg, log_time_ns=None):
        """Serialize and write ``msg`` on ``topic``.

        ``log_time_ns`` defaults to the message header stamp, which is what
        ``ros2 bag play`` replays on, so outputs line up with their inputs.
        """
        conn = self._connections.get(topic)
        if conn is None:
            raise BagError(f'Topic {topic!r} was not added; call add_topic first.')
        if log_time_ns is None:
            header = getattr(msg, 'header', None)
            if header is None:
                raise BagError(f'{conn.msgtype} has no header; pass log_time_ns.')
            log_time_ns = stamp_to_ns(header.stamp)
        raw = self.typestore.serialize_cdr(msg, conn.msgtype)
        self._writer.write(conn, int(log_time_ns), raw)
        self.counts[topic] += 1
