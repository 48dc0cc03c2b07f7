"""Read ROS 2 bags (sqlite3 and mcap storage) without ROS.

Built on the ``rosbags`` library. :class:`BagReader` lists topics, iterates
deserialized messages and decoded image frames with their header stamps;
writing is :mod:`.bag_writer`.

Errors name the bag and say what is wrong: a missing or truncated file, a
corrupt database, a topic that is not there (listing the image topics that
are).
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
import dataclasses
from pathlib import Path
import sqlite3

from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_types_from_idl
from rosbags.typesys import get_types_from_msg
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores

from .images import compressed_to_numpy
from .images import image_to_numpy
from .messages import RosbagsMessageFactory
from .messages import stamp_to_ns
from .msgdefs import DEFAULT_DISTRO
from .msgdefs import DISTROS
from .msgdefs import project_typestore
from ..errors import AnomalyPerceptionError
from ..errors import BagError
from ..errors import TopicNotFoundError

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)


_LATER_DISTROS = ('iron', 'kilted', 'lyrical', 'rolling')


@dataclasses.dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag."""

    name: str
    msgtype: str
    count: int


@dataclasses.dataclass
class ImageFrame:
    """One decoded image of an image topic.

    Attributes:
        index: position of the message in its topic (0-based).
        stamp_ns: the message header stamp, integer nanoseconds.
        log_time_ns: when the bag recorded it, integer nanoseconds.
        frame_id: the header frame_id.
        encoding: the Image encoding, or the CompressedImage format string.
        image: decoded pixels (see :func:`.images.image_to_numpy`).
        header: the message's header object, to copy into outputs.

    """

    index: int
    stamp_ns: int
    log_time_ns: int
    frame_id: str
    encoding: str
    image: object
    header: object = None


@dataclasses.dataclass(frozen=True)
class SkippedMessage:
    """A message that could not be used, and why."""

    topic: str
    index: int
    log_time_ns: int
    reason: str
    kind: str = 'malformed image'


def _describe(err):
    # Library messages can span lines (YAML marks, SQL); keep ours one line.
    text = ' '.join(str(err).split()) or type(err).__name__
    return text if text.endswith('.') else text + '.'


class BagReader:
    """Read a ROS 2 bag (a directory with ``metadata.yaml``, or one ``.mcap``/``.db3`` file).

    Use as a context manager::

        with BagReader('patrol_bag') as bag:
            print(bag.topics)
            for frame in bag.read_images('/robomaster/camera/image_color'):
                ...

    Message types are taken from the project's type store for the bag's ROS
    distribution (Humble unless the bag says otherwise, vision_msgs
    included); types the store lacks are registered from the definitions
    stored in the bag.
    """

    def __init__(self, path, *, distro=None):
        self.path = Path(path)
        self._distro = distro
        self._reader = None
        self.typestore = None
        self.skipped = []

    # -- lifecycle -----------------------------------------------------------------------

    def open(self):  # noqa: A003 - the context-manager protocol of rosbags readers
        """Open the bag (done by ``with``); return ``self``."""
        if not self.path.exists():
            raise BagError(f'Bag {str(self.path)!r} does not exist.')
        try:
            reader = Reader(self.path)
            reader.open()
        except (AnomalyPerceptionError, KeyboardInterrupt):
            raise
        except Exception as err:  # noqa: B902 - rosbags, sqlite3, yaml and struct errors alike
            raise BagError(
                f'Cannot open bag {str(self.path)!r}: {_describe(err)} '
                'The file may be truncated, corrupt, or not a ROS 2 bag.'
            ) from err
        self._reader = reader
        distro = self._distro or self._guess_distro(reader)
        self.distro = distro
        self.typestore = get_typestore(Stores.EMPTY)
        self.typestore.register(project_typestore(distro).fielddefs)
        self._register_bag_types(reader)
        self.factory = RosbagsMessageFactory(distro, typestore=self.typestore)
        return self

    def close(self):
        """Close the bag (done by ``with``)."""
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
            self._reader = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _guess_distro(reader):
        distro = (reader.ros_distro or '').lower()
        if distro in DISTROS:
            return distro
        # Iron and newer record their distro; their message types match Jazzy's.
        # Bags that do not say (Humble's, or other writers') read as Humble.
        return 'jazzy' if distro in _LATER_DISTROS else DEFAULT_DISTRO

    def _register_bag_types(self, reader):
        types = {}
        for conn in reader.connections:
            if conn.msgtype in self.typestore.fielddefs:
                continue
            msgdef = conn.msgdef
            try:
                if msgdef.format == MessageDefinitionFormat.MSG and msgdef.data:
                    types.update(get_types_from_msg(msgdef.data, conn.msgtype))
                elif msgdef.format == MessageDefinitionFormat.IDL and msgdef.data:
                    types.update(get_types_from_idl(msgdef.data))
            except Exception:  # noqa: B902 - an unparsable definition only hides that topic
                continue
        if types:
            self.typestore.register(types)

    def _require_open(self):
        if self._reader is None:
            raise BagError(f'Bag {str(self.path)!r} is not open; use it in a with-statement.')
        return self._reader

    # -- metadata ------------------------------------------------------------------------

    @property
    def storage(self):
        """``'mcap'`` or ``'sqlite3'``."""
        self._require_open()
        files = [self.path] if self.path.is_file() else sorted(self.path.iterdir())
        return 'mcap' if any(p.suffix == '.mcap' for p in files) else 'sqlite3'

    @property
    def start_ns(self):
        return self._require_open().start_time

    @property
    def end_ns(self):
        return self._require_open().end_time

    @property
    def duration_ns(self):
        return self._require_open().duration

    @property
    def message_count(self):
        return self._require_open().message_count

    @property
    def custom_data(self):
        """Return the string key/values of the bag's metadata (``{}`` if none)."""
        reader = self._require_open()
        meta = getattr(reader.storage, 'metadata', None)
        return dict(getattr(meta, 'custom', None) or {})

    @property
    def topics(self):
        """``{name: TopicSummary}`` for every topic, sorted by name."""
        reader = self._require_open()
        return {
            name: TopicSummary(name, info.msgtype or '?', info.msgcount)
            for name, info in sorted(reader.topics.items())
        }

    @property
    def image_topics(self):
        """Names of the topics holding Image or CompressedImage messages."""
        return [t.name for t in self.topics.values() if t.msgtype in IMAGE_TYPES]

    def require_topic(self, topic, msgtypes=None):
        """Return the :class:`TopicSummary` of ``topic``, or raise a helpful error.

        Raises:
            TopicNotFoundError: the topic is absent; the message lists the
                image topics the bag does have.
            BagError: the topic's type is not one of ``msgtypes``.

        """
        summary = self.topics.get(topic)
        if summary is None:
            images = self.image_topics
            have = ', '.join(images) if images else 'none'
            raise TopicNotFoundError(
                f'Bag {str(self.path)!r} has no topic {topic!r}. Image topics in it: {have}.'
            )
        if msgtypes and summary.msgtype not in msgtypes:
            raise BagError(
                f'Topic {topic!r} in bag {str(self.path)!r} holds {summary.msgtype}, '
                f'expected {" or ".join(msgtypes)}.'
            )
        return summary

    def find_image_topic(self, topic=None):
        """Return ``topic`` if given (checked), else the bag's only camera image topic.

        Image topics under a ``/labels/`` namespace (label masks) are not
        candidates.

        Raises:
            BagError: no image topic, or several and none chosen (lists them).

        """
        if topic:
            self.require_topic(topic, IMAGE_TYPES)
            return topic
        images = self.image_topics
        # Label images (masks, instance ids) are not camera streams.
        cameras = [t for t in images if '/labels/' not in t]
        if len(cameras) == 1:
            return cameras[0]
        if not images:
            listed = ', '.join(f'{t.name} ({t.msgtype})' for t in self.topics.values())
            raise BagError(
                f'Bag {str(self.path)!r} has no Image or CompressedImage topic. '
                f'Its topics: {listed or "none"}.'
            )
        raise BagError(
            f'Bag {str(self.path)!r} has several image topics: {", ".join(images)}; '
            'choose one with --topic.'
        )

    # -- messages ------------------------------------------------------------------------

    def raw_messages(self, topics=None):
        """Yield ``(topic, msgtype, log_time_ns, rawdata)`` in log-time order.

        Raises:
            BagError: the bag's storage fails while reading (truncated or
                corrupt data).

        """
        reader = self._require_open()
        wanted = set(topics) if topics is not None else None
        if wanted is not None:
            for topic in wanted:
                self.require_topic(topic)
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        expected = {}
        for conn in conns:
            expected[conn.topic] = expected.get(conn.topic, 0) + conn.msgcount
        seen = dict.fromkeys(expected, 0)
        iterator = reader.messages(connections=conns)
        while True:
            try:
                conn, log_time, raw = next(iterator)
            except StopIteration:
                self._check_counts(expected, seen)
                return
            except (AnomalyPerceptionError, KeyboardInterrupt):
                raise
            except (Exception, sqlite3.Error) as err:  # noqa: B902 - storage-level failure
                raise BagError(
                    f'Reading bag {str(self.path)!r} failed: {_describe(err)} '
                    'The bag is probably truncated or corrupt.'
                ) from err
            seen[conn.topic] += 1
            yield conn.topic, conn.msgtype, log_time, raw

    def _check_counts(self, expected, seen):
        # A damaged mcap can lose whole chunks without any read error; the
        # counts in the bag's metadata are what give it away.
        short = [f'{t}: {seen[t]} of {n}' for t, n in expected.items() if seen[t] < n]
        if short:
            raise BagError(
                f'Bag {str(self.path)!r} is truncated or corrupt: fewer messages could be '
                f'read than its metadata lists ({"; ".join(short)}).'
            )

    def deserialize(self, raw, msgtype):
        """Deserialize CDR bytes of ``msgtype`` (raises ``BagError`` on bad data)."""
        try:
            return self.typestore.deserialize_cdr(raw, msgtype)
        except KeyError:
            raise BagError(
                f'Bag {str(self.path)!r}: message type {msgtype!r} is unknown and the bag '
                'holds no definition for it.'
            ) from None
        except Exception as err:  # noqa: B902 - malformed CDR raises many kinds
            raise BagError(
                f'Bag {str(self.path)!r}: a {msgtype} message does not deserialize: '
                f'{_describe(err)}'
            ) from err

    def messages(self, topics=None):
        """Yield ``(topic, log_time_ns, message)`` deserialized, in log-time order."""
        for topic, msgtype, log_time, raw in self.raw_messages(topics):
            yield topic, log_time, self.deserialize(raw, msgtype)

    def read_images(self, topic=None, *, output='rgb', on_error='raise', decode=None,
                    side_topics=None, on_side=None):
        """Yield :class:`ImageFrame` for every message of an image topic.

        Args:
            topic: Image or CompressedImage topic; ``None`` picks the bag's
                only image topic.
            output: see :func:`.images.image_to_numpy`.
            on_error: ``'raise'`` stops at the first message that does not
                decode; ``'skip'`` records it in :attr:`skipped` (a list of
                :class:`SkippedMessage`) and goes on.
            decode: ``msg -> image`` to use instead of the plain conversion
                (a pipeline's own decoding, e.g. :meth:`FrameStream.decode`);
                it raises an AnomalyPerceptionError for a message it refuses.
            side_topics, on_side: other topics read in the same pass (a bag's
                chunks are decompressed once, not once per topic): each of
                their messages is deserialized and given to
                ``on_side(topic, msg)`` in log-time order.

        Raises:
            ImageMessageError: a malformed image and ``on_error='raise'``.
            BagError: the topic is missing, or the bag's storage fails.

        """
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        topic = self.find_image_topic(topic)
        side = set(side_topics or ()) - {topic}
        index = -1
        for name, msgtype, log_time, raw in self.raw_messages([topic, *sorted(side)]):
            if name != topic:
                on_side(name, self.deserialize(raw, msgtype))
                continue
            index += 1
            try:
                msg = self.deserialize(raw, msgtype)
                encoding = msg.format if msgtype == COMPRESSED_TYPE else msg.encoding
                if decode is not None:
                    image = decode(msg)
                elif msgtype == COMPRESSED_TYPE:
                    image = compressed_to_numpy(msg, output=output)
                else:
                    image = image_to_numpy(msg, output=output)
            except AnomalyPerceptionError as err:
                if on_error == 'raise':
                    located = type(err)(f'{topic} message {index} in {str(self.path)!r}: {err}')
                    if hasattr(err, 'kind'):
                        located.kind = err.kind
                    raise located from err
                self.skipped.append(SkippedMessage(topic, index, log_time, str(err),
                                                   getattr(err, 'kind', 'malformed image')))
                continue
            yield ImageFrame(
                index=index,
                stamp_ns=stamp_to_ns(msg.header.stamp),
                log_time_ns=log_time,
                frame_id=msg.header.frame_id,
                encoding=encoding,
                image=image,
                header=msg.header,
            )


def open_bag(path, **kwargs):
    """Open a bag for reading (see :class:`BagReader`); use in a with-statement."""
    return BagReader(path, **kwargs).open()


def prefetched(iterable, depth=64):
    """Iterate ``iterable`` in a background thread, up to ``depth`` items ahead.

    Reading a bag (chunk decompression, image decoding; both release the
    GIL) then overlaps with what the consumer does with each item. An
    exception in the reader reaches the consumer at the point it occurred;
    closing the returned generator stops the reader.
    """
    import queue
    import threading

    items = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as err:  # noqa: B902 - handed to the consumer
            items.put((done, err))
            return
        items.put((done, None))

    thread = threading.Thread(target=produce, name='bag-prefetch', daemon=True)
    thread.start()
    try:
        while True:
            item, err = items.get()
            if item is done:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)
