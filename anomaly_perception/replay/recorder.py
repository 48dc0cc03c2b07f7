"""One branch's share of a replay: :class:`Recorder`, and what recorders share.

A recorder runs its branch's stream on the replay's batches, writes the
branch node's topics to the output bag, keeps what its report needs, and
computes its metrics and plots once labels are known. A branch subclasses
:class:`Recorder` in its own folder (``recorder.py``) and names it in its
:class:`~..branches.branch.Branch` entry.
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

import heapq
import time

import cv2
import numpy as np

from ..data.synthetic.catalog import GLOBAL_TYPES
from ..io.images import image_to_numpy
from ..io.labels import label_topic
from ..stream.flow import StreamStats

TOP_FRAMES = 12


def header_stamp_ns(msg):
    """Return a message's header stamp in ns (labels are matched to frames by it)."""
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def prune_labels(labels, waiting, last_stamp):
    """Drop labels of frames up to ``last_stamp`` older than every keyframe still ``waiting``.

    Frames already replayed that were no keyframe can never match a label.
    """
    oldest = min(waiting, default=last_stamp + 1)
    for stamp in [s for s in labels if s <= last_stamp and s < oldest]:
        del labels[stamp]


def keep_top(heap, size, score, stamp, make_tile):
    """Keep the ``size`` best ``(score, stamp, tile)`` in ``heap``; draw a tile only if it enters.

    ``make_tile()`` runs only for a frame that enters the list (drawing a
    thumbnail for every frame cost a sixth of a replay's time).
    """
    if len(heap) < size:
        heapq.heappush(heap, (score, stamp, make_tile()))
    elif score > heap[0][0]:
        heapq.heapreplace(heap, (score, stamp, make_tile()))


def write_contact_sheet(path, scored_tiles):
    """Stack ``(score, stamp, tile)`` rows, highest score first, into a JPEG at ``path``."""
    from ..io.files import atomic_write_bytes
    rows = [tile for _, _, tile in sorted(scored_tiles, key=lambda t: (-t[0], t[1]))]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    atomic_write_bytes(path, cv2.imencode('.jpg', np.vstack(rows))[1].tobytes())


class Recorder:
    """One pipeline in a replay: runs it, writes its node's topics, keeps what it reports.

    A branch's recorder overrides :meth:`record` (per frame), :meth:`report`,
    and, for labelled bags, :meth:`metrics` and :meth:`plots`.
    """

    def __init__(self, branch, stream, config, namespace, model_dir):
        self.branch = branch
        self.messages = branch.messages
        self.stream = stream
        self.detector = stream.detector
        self.config = config
        self.model_dir = model_dir
        self.topics = self.messages.output_topics(namespace)
        self.stamps = []
        self.infer_s = 0.0
        self.bag_clock = [0.0]
        self.stats = StreamStats(window_s=5.0, clock=lambda: self.bag_clock[0])
        self.next_diag_ns = None
        self.peers = {}             # branch name -> the replay's recorders (set by replay)
        self.last_results = {}      # stamp -> result, of the last batch

    def side_topics(self, bag, image_topic):
        """``{topic: callback(msg)}`` of other bag topics this recorder reads (default none)."""
        return {}

    @staticmethod
    def collect_label_images(bag, image_topic, suffix):
        """Collect the bag's label images of ``suffix`` (``/<ns><suffix>``) by stamp.

        Returns ``(topic, {stamp: array}, {topic: callback})``: the topic and
        the dict its callback fills, for :meth:`side_topics`; ``(None, None,
        {})`` when the bag has no such topic.
        """
        topic = label_topic(image_topic, suffix)
        if topic not in bag.topics:
            return None, None, {}
        labels = {}

        def keep(msg):
            labels[header_stamp_ns(msg)] = image_to_numpy(msg, copy=True)
        return topic, labels, {topic: keep}

    def matched_labels(self, last_stamp=None):
        """Yield ``(waiting item, instance ids, frame label)`` of keyframes whose labels came.

        For recorders that keep keyframes in ``self.waiting`` (stamp -> item)
        and label images in ``self.pixel_labels``; frames of a whole-image
        anomaly type, or whose label differs in size, are skipped. Labels of
        frames that can no longer match are dropped after the last one.
        """
        if self.pixel_labels is None:
            return
        for stamp in [s for s in self.waiting if s in self.pixel_labels]:
            item, ids = self.waiting.pop(stamp), self.pixel_labels.pop(stamp)
            kind = (self.frame_labels or {}).get(stamp, 'normal')
            if kind not in GLOBAL_TYPES and ids.shape == item[0].shape:
                yield item, ids, kind
        if last_stamp is not None:
            prune_labels(self.pixel_labels, self.waiting, last_stamp)

    def start(self, out, frame_labels):
        self.out = out
        self.frame_labels = frame_labels
        self.builder = self.branch.builder.from_config(out.factory, self.config)
        for key, msgtype in self.messages.OUTPUT_TYPES.items():
            if key in self.output_keys():
                out.add_topic(self.topics[key], msgtype)
        if not out.has_topic(self.topics['diagnostics']):      # shared by every node
            out.add_topic(self.topics['diagnostics'], self.messages.DIAGNOSTICS_TYPE)

    def output_options(self):
        """Keyword options of the builder's ``outputs`` (default: none)."""
        return {}

    def output_keys(self):
        """Return the outputs this pipeline writes to the bag (default: all the node's)."""
        return set(self.messages.OUTPUT_TYPES)

    def process(self, frames):
        start = time.perf_counter()
        results = self.stream.process([f.stamp_ns for f in frames], [f.image for f in frames])
        per_frame = (time.perf_counter() - start) / len(frames)
        self.last_results = {f.stamp_ns: r for f, r in zip(frames, results)}
        options = self.output_options()
        for frame, result in zip(frames, results):
            self.bag_clock[0] = frame.stamp_ns / 1e9
            self.stats.frame_received()
            for key, msg in self.builder.outputs(frame.header, result, **options).items():
                self.out.write(self.topics[key], msg, log_time_ns=frame.stamp_ns)
            self.stats.frame_processed(per_frame)
            self._diagnostics(frame.stamp_ns)
            self.stamps.append(frame.stamp_ns)
            self.record(frame, result)
        self.infer_s += time.perf_counter() - start

    def write_keyframes(self, frames, results, seconds):
        """Write the outputs of a batch's keyframes only (branches that run on keyframes).

        ``seconds`` holds each keyframe's processing time, in order; every
        frame counts as received, and only keyframes as processed.
        """
        self.last_results = {f.stamp_ns: r for f, r in zip(frames, results)}
        seconds = iter(seconds)
        for frame, result in zip(frames, results):
            self.bag_clock[0] = frame.stamp_ns / 1e9
            self.stats.frame_received()
            self.stamps.append(frame.stamp_ns)
            if result.keyframe:
                for key, msg in self.builder.outputs(frame.header, result,
                                                     **self.output_options()).items():
                    self.out.write(self.topics[key], msg, log_time_ns=frame.stamp_ns)
                self.stats.frame_processed(next(seconds))
                self.record(frame, result)
            self._diagnostics(frame.stamp_ns)

    def record(self, frame, result):
        """Keep what the report needs of one frame's result."""

    def _diagnostics(self, stamp_ns):
        if self.next_diag_ns is not None and stamp_ns < self.next_diag_ns:
            return
        self.next_diag_ns = stamp_ns + int(self.config.diagnostics_period_s * 1e9)
        header = self.out.factory.header(stamp_ns, '')
        snap = self.stats.snapshot()
        self.out.write(self.topics['diagnostics'], self.builder.diagnostics(
            header, snap, self.detector.backend.describe(), self.detector.name))

    def finish(self):
        """Finish after the last frame (match what waits for labels, say)."""

    def report(self):
        return {'model': self.model_dir, 'backend': self.detector.backend.describe(),
                'output_topics': self.topics, 'pipeline_s': self.infer_s,
                'pipeline_frames_per_s': (len(self.stamps) / self.infer_s if self.infer_s
                                          else float('nan'))}

    def metrics(self, frame_labels):
        return {}

    def pooled(self):
        """Return ``{name: array}`` a fleet pools over bags (default none), one row per frame.

        Written to the replay's ``pooled.npz`` as ``<branch>.<name>``, beside
        the frames' stamps and labels; see :mod:`~...fleet.pool`.
        """
        return {}

    def plots(self, out, frame_labels, report):
        """Write the branch's plots into ``out`` (default none)."""

    def artifacts(self, out, report):
        """Write files that need no labels into ``out`` (default none)."""

    @staticmethod
    def summary(report, part, out):
        """Return this branch's lines for the summary replay prints; none by default.

        ``report`` is the whole replay report, ``out`` its directory.
        """
        return []
