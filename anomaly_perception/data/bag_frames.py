"""Training frames from a robot's own bags, split by time blocks.

:func:`extract_bag_frames` reads the camera topic of one or more bags
(Image or CompressedImage, auto-detected or named), keeps every ``every``-th
frame, decodes it exactly as the node does and resizes it to the model's
input shape. :func:`time_block_split` holds out whole stretches of the
route for validation and calibration: neighbouring frames of a patrol are
near-duplicates, so a random split would validate on frames the model
trained on and set a threshold that is far too tight for unseen stretches.

:func:`interval_frames` picks the frames an operator tagged in an intervals
file (the format ``replay --labels`` reads) for few-shot outlier exposure.
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

import dataclasses
import hashlib
import io
import json
from pathlib import Path
import time

import numpy as np

from ..errors import AnomalyPerceptionError
from ..io.bags import BagReader
from ..io.bags import prefetched
from ..io.files import atomic_write_bytes
from ..io.images import decode_frame
from ..io.images import message_stamp
from ..runtime.preprocess import as_shape
from ..runtime.preprocess import LETTERBOX
from ..runtime.preprocess import model_input

#: The shortest normal driving, over all bags, that ``train frame --bag`` accepts.
MIN_PATROL_S = 60.0


class BagFramesError(AnomalyPerceptionError, ValueError):
    """Bags that cannot give training frames (too short, no images, changing size...)."""


@dataclasses.dataclass
class BagFrames:
    """Frames of one or more bags, resized to a model's input.

    Attributes:
        images: ``uint8 [N, h, w, 3]`` RGB.
        stamps: ``int64 [N]`` header stamps (ns).
        bag_index: ``int [N]``: which of ``sources`` each frame comes from.
        sources: one dict per bag: path, topic, resolution, frames, span.

    """

    images: np.ndarray
    stamps: np.ndarray
    bag_index: np.ndarray
    sources: list

    def __len__(self):
        return len(self.images)

    def subset(self, index):
        index = np.asarray(index, np.int64)
        return BagFrames(self.images[index], self.stamps[index], self.bag_index[index],
                         self.sources)

    @property
    def duration_s(self):
        return float(sum(s['span_s'] for s in self.sources))


def extract_bag_frames(bags, size, *, topic=None, every=1, keep=None, show_progress=True,
                       crop=LETTERBOX):
    """Read, decode and resize the camera frames of ``bags``.

    Args:
        bags: bag paths (directories or single files).
        size: model input, a side or ``(h, w)``.
        topic: image topic (default: each bag's only camera topic).
        every: keep every ``every``-th frame of each bag.
        keep: optional ``(bag_number, stamp_ns) -> bool`` to select frames.

    Raises:
        BagFramesError: a bag whose image size changes mid-way (named, with
            the frame), or ``every`` < 1.
        BagError: a bag without an image topic (its topics listed), or a
            corrupt bag (named).

    """
    if every < 1:
        raise BagFramesError(f'--every must be at least 1, got {every}.')
    height, width = as_shape(size)
    images, stamps, owners, sources = [], [], [], []
    bar = None
    if show_progress:
        from tqdm import tqdm
        bar = tqdm(desc='frames from bags', unit='frame', dynamic_ncols=True)
    try:
        for number, path in enumerate(bags):
            with BagReader(path) as bag:
                name = bag.find_image_topic(topic)
                resolution, kept, first, last = None, 0, None, None
                frames = prefetched(bag.read_images(name, decode=_decode))
                for frame in frames:
                    if resolution is None:
                        resolution = frame.image.shape[:2]
                    elif frame.image.shape[:2] != resolution:
                        frames.close()
                        raise BagFramesError(
                            f'{str(path)!r}: the images on {name} change size at message '
                            f'{frame.index} ({resolution[1]}x{resolution[0]} -> '
                            f'{frame.image.shape[1]}x{frame.image.shape[0]}); one model sees '
                            'one camera: split the bag or give one topic of one camera.')
                    first = frame.stamp_ns if first is None else first
                    last = frame.stamp_ns
                    if frame.index % every or (keep is not None
                                               and not keep(number, frame.stamp_ns)):
                        continue
                    images.append(model_input(frame.image, (height, width), crop))
                    stamps.append(frame.stamp_ns)
                    owners.append(number)
                    kept += 1
                    if bar is not None:
                        bar.update(1)
                sources.append({
                    'bag': str(path), 'topic': name, 'frames': kept,
                    'resolution': [int(resolution[1]), int(resolution[0])] if resolution
                    else None,
                    'start_ns': first, 'end_ns': last,
                    'span_s': (last - first) / 1e9 if first is not None else 0.0})
    finally:
        if bar is not None:
            bar.close()
    out = np.stack(images) if images else np.zeros((0, height, width, 3), np.uint8)
    return BagFrames(out, np.asarray(stamps, np.int64), np.asarray(owners, np.int64), sources)


def _fingerprint(paths, extra):
    """Return a key that changes when the bags (size, mtime) or the extraction options change."""
    parts = [json.dumps(extra, sort_keys=True, default=str)]
    for path in paths:
        path = Path(path)
        files = sorted(path.rglob('*')) if path.is_dir() else [path]
        for f in files:
            if f.is_file():
                st = f.stat()
                parts.append(f'{f.resolve()}:{st.st_size}:{st.st_mtime_ns}')
    return hashlib.sha256('\n'.join(parts).encode()).hexdigest()[:16]


def _save_npz(path, **arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def cached_bag_frames(bags, shape, work, *, topic=None, every=1, show_progress=True):
    """:func:`extract_bag_frames` (letterboxed), cached in ``work`` (keyed by bags and options).

    Returns ``(frames, seconds spent extracting)`` (0 when read from the cache).
    """
    key = _fingerprint(bags, {'shape': list(shape), 'topic': topic, 'every': every,
                              'crop': LETTERBOX})
    path = Path(work) / f'frames_{key}.npz'
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            sources = json.loads(str(saved['sources']))
            return BagFrames(saved['images'], saved['stamps'], saved['bag_index'], sources), 0.0
    start = time.perf_counter()
    frames = extract_bag_frames(bags, shape, topic=topic, every=every,
                                show_progress=show_progress)
    seconds = time.perf_counter() - start
    _save_npz(path, images=frames.images, stamps=frames.stamps, bag_index=frames.bag_index,
              sources=np.array(json.dumps(frames.sources)))
    return frames, seconds


def _decode(msg):
    message_stamp(msg)
    return decode_frame(msg)


def check_patrol_length(frames, minimum_s=MIN_PATROL_S):
    """Refuse bags with less normal driving than a model needs (the message says the minimum).

    Raises:
        BagFramesError: less than ``minimum_s`` seconds of frames in all.

    """
    if frames.duration_s < minimum_s or len(frames) < 50:
        spans = ', '.join(f"{Path(s['bag']).name}: {s['span_s']:.1f} s, {s['frames']} frames"
                          for s in frames.sources)
        raise BagFramesError(
            f'Too little normal driving to learn a place from: {frames.duration_s:.1f} s '
            f'({spans}); give at least {minimum_s:.0f} s and 50 frames in all (a few minutes '
            'of patrol along the whole route work best).')


def time_block_split(frames, block_s=10.0, val_every=5, guard_s=1.0):
    """Split frames into training and held-out time blocks.

    Each bag is cut into consecutive ``block_s`` blocks; every
    ``val_every``-th block (the middle one of each group, so validation
    spreads along the route) is held out. Training frames within ``guard_s``
    of a held-out block are dropped, so no training frame is a near-copy of a
    validation frame.

    Returns:
        ``(train_index, val_index, val_blocks)``: index arrays into
        ``frames`` and one index array per held-out block (in time order),
        for sequence-level statistics such as alarms per hour.

    """
    train, val, blocks = [], [], []
    guard = int(guard_s * 1e9)
    block_ns = int(block_s * 1e9)
    for number in np.unique(frames.bag_index):
        sel = np.flatnonzero(frames.bag_index == number)
        sel = sel[np.argsort(frames.stamps[sel], kind='stable')]
        t = frames.stamps[sel] - frames.stamps[sel[0]]
        block = t // block_ns
        held = (block % val_every) == (val_every // 2)
        if not held.any() and len(sel) > 1:
            # A bag shorter than a group of blocks: hold out its middle block.
            held = block == block[len(block) // 2]
        starts = [b * block_ns for b in np.unique(block[held])]
        for b in np.unique(block[held]):
            blocks.append(sel[block == b])
        near = np.zeros(len(sel), bool)
        for start in starts:
            near |= (t >= start - guard) & (t < start + block_ns + guard)
        val.extend(sel[held])
        train.extend(sel[~near])
    return np.asarray(train, np.int64), np.asarray(val, np.int64), blocks


def image_stamps(bag, topic=None):
    """Return ``(topic, stamps_ns)`` of ``bag``'s camera topic (``topic`` or the only one).

    Raises:
        BagFramesError: the topic holds no frames.
        BagError: no image topic, or a corrupt bag (named).

    """
    with BagReader(bag) as reader:
        name = reader.find_image_topic(topic)
        stamps = [message_stamp(m) for _, _, m in reader.messages([name])]
    if not stamps:
        raise BagFramesError(f'{str(bag)!r} has no frames on {name}.')
    return name, stamps


def untagged_frames(bag, intervals_path, size, *, topic=None, every=1, guard_s=1.0,
                    show_progress=False):
    """Frames of ``bag`` more than ``guard_s`` from every interval of ``intervals_path``.

    Frames inside intervals labelled ``normal`` (an operator's "false alarm")
    are kept too. These are the tagged patrol's normal driving.
    """
    from ..io.labels import read_intervals
    name, stamps = image_stamps(bag, topic)
    guard = int(guard_s * 1e9)
    intervals = read_intervals(intervals_path, min(stamps), max(stamps))
    tagged = [(a - guard, b + guard) for a, b, label in intervals if label != 'normal']
    normal = [(a, b) for a, b, label in intervals if label == 'normal']

    def keep(_, stamp):
        return (any(a <= stamp <= b for a, b in normal)
                or not any(a <= stamp <= b for a, b in tagged))

    return extract_bag_frames([bag], size, topic=name, every=every, keep=keep,
                              show_progress=show_progress)


def interval_frames(bag, intervals_path, size, *, topic=None, every=1, show_progress=False):
    """Frames of ``bag`` inside the anomalous intervals of ``intervals_path``.

    Intervals labelled ``normal`` are ignored. Returns ``(BagFrames, labels)``.

    Raises:
        LabelsError: unreadable intervals, or intervals outside the bag.
        BagFramesError: no frame falls inside any anomalous interval.

    """
    from ..io.labels import read_intervals
    name, stamps = image_stamps(bag, topic)
    intervals = [iv for iv in read_intervals(intervals_path, min(stamps), max(stamps))
                 if iv[2] != 'normal']

    def inside(_, stamp):
        return any(start <= stamp <= end for start, end, _ in intervals)

    frames = extract_bag_frames([bag], size, topic=name, every=every, keep=inside,
                                show_progress=show_progress)
    if not len(frames):
        raise BagFramesError(f'No frame of {str(bag)!r} falls inside an anomalous interval of '
                             f'{str(intervals_path)!r}: nothing to expose.')
    labels = [next(label for start, end, label in intervals if start <= s <= end)
              for s in frames.stamps]
    return frames, labels
