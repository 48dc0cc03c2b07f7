"""The replay engine: a recorded bag through the branches' pipelines, offline.

Every frame of the image topic goes through the object the node runs, each
branch's stream (for the frame branch the same decoding, scoring,
calibration and hazard filter, configured by its ``FrameNodeConfig``), in
batches, and its outputs through the node's message builder. The engine
knows no branch: it is given :class:`~..branches.branch.Branch` entries
(the CLI looks them up by name in the registry) and asks each for its
config, stream, messages and replay recorder. The output directory gets:

* ``outputs/``: a ROS 2 bag (mcap) with exactly the topics and types the
  nodes publish, each message stamped like its input frame (so
  ``ros2 bag play`` of both bags, or Foxglove, shows them together);
* ``report.json``: what every branch shares at the top level (the bag,
  frames, malformed frames, timing, the labels' source) and each branch's
  results under ``report['branches'][name]``: with labels (the bag's label
  topic, or an intervals file) its metrics, plus its plots beside the
  report; without labels counts and timing only.

The directory appears only once complete; an interrupted replay leaves
nothing behind.
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
from pathlib import Path
import time

import numpy as np

from .monitor import MonitorRecorder
from .recorder import header_stamp_ns
from ..errors import AnomalyPerceptionError
from ..io.bag_writer import BagWriter
from ..io.bags import BagReader
from ..io.bags import prefetched
from ..io.files import atomic_directory
from ..io.files import atomic_write_json
from ..io.labels import FRAME_LABELS_SUFFIX
from ..io.labels import infer_namespace
from ..io.labels import label_topic
from ..io.labels import labels_from_intervals
from ..io.labels import read_intervals


def _label_topic(bag, image_topic):
    """Return the bag's frame-label topic for ``image_topic`` (None if it has none)."""
    candidates = [t for t in bag.topics if t.endswith(FRAME_LABELS_SUFFIX)
                  and bag.topics[t].msgtype == 'vision_msgs/msg/Classification']
    preferred = label_topic(image_topic, FRAME_LABELS_SUFFIX)
    return preferred if preferred in candidates else (candidates[0] if candidates else None)


def _collect_label(labels, msg):
    labels[header_stamp_ns(msg)] = msg.results[0].class_id if msg.results else 'normal'


#: Per-frame arrays of a replay that a fleet evaluation pools (numpy .npz, no pickles).
POOLED_FILE = 'pooled.npz'


def _with_pixel_model(cfg, pixel_dir):
    """Give a branch that reads the pixel map the pixel pipeline's model, as launched.

    The launch files give the instance node ``pixel_model_dir`` = the pixel
    node's model (its threshold and calibration must be those of the map it
    receives); a replay does the same unless the branch's parameters name one.
    """
    if pixel_dir and getattr(cfg, 'pixel_model_dir', None) == '':
        return dataclasses.replace(cfg, pixel_model_dir=str(pixel_dir))
    return cfg


def replay(bag_path, out_dir, pipelines, *, topic=None, model_dir=None, backend='auto',
           labels=None, namespace=None, config=None, batch=32, overwrite=False,
           show_progress=True, model_dirs=None, configs=None, monitor=None):
    """Replay ``bag_path`` through ``pipelines`` (:class:`Branch` entries) into ``out_dir``.

    Returns the report (see module docs). Every pipeline sees the same
    decoded frames, in the same batches; ``model_dirs`` / ``configs`` map a
    branch name to its model directory / node config (``model_dir`` /
    ``config``: the same for a single pipeline); otherwise a branch runs its
    config's defaults and its shipped model. ``monitor``: a
    :class:`~.monitor.MonitorSpec` (from a place) adds the hazard monitor,
    fusing the pipelines it names into ``<ns>/hazard_monitor/hazard``.

    Raises:
        AnomalyPerceptionError: no pipeline, a pipeline named twice, or
            ``model_dir``/``config`` with several.

    """
    branches = list(pipelines)
    names = [b.name for b in branches]
    if not branches or len(set(names)) != len(names):
        raise AnomalyPerceptionError(f'replay pipelines {names}: name each branch once.')
    model_dirs, configs = dict(model_dirs or {}), dict(configs or {})
    if len(branches) == 1:
        if model_dir:
            model_dirs.setdefault(names[0], model_dir)
        if config is not None:
            configs.setdefault(names[0], config)
    elif model_dir or config is not None:
        raise AnomalyPerceptionError('With several pipelines give model_dirs and configs per '
                                     'branch name.')
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp, BagReader(bag_path) as bag:
        image_topic = bag.find_image_topic(topic)
        ns = infer_namespace(image_topic) if namespace is None else namespace
        recorders = []
        for branch in branches:
            cfg = configs.get(branch.name) or branch.config()
            md = model_dirs.get(branch.name) or cfg.model_dir or branch.shipped_model_dir()
            cfg = dataclasses.replace(cfg, backend=backend, model_dir=str(md))
            cfg = _with_pixel_model(cfg, model_dirs.get('pixel'))
            stream = branch.stream.from_config(cfg)
            recorders.append(branch.recorder(branch, stream, cfg, ns, str(md)))
        peers = {r.branch.name: r for r in recorders}
        for r in recorders:
            r.peers = peers
        fused = MonitorRecorder(monitor, ns, peers) if monitor is not None else None
        labels_topic = None if labels else _label_topic(bag, image_topic)
        bag_labels = {} if labels_topic else None
        # Several recorders may read the same topic (the per-pixel labels): every one gets it.
        side = {labels_topic: [lambda msg: _collect_label(bag_labels, msg)]} if labels_topic \
            else {}
        for r in recorders:
            for name, callback in r.side_topics(bag, image_topic).items():
                side.setdefault(name, []).append(callback)
        progress = _Progress(bag.topics[image_topic].count, show_progress)
        with BagWriter(tmp / 'outputs', storage='mcap', compression='zstd') as out:
            for r in recorders:
                r.start(out, bag_labels)
            if fused is not None:
                fused.start(out)
            pending = []
            frames = prefetched(bag.read_images(
                image_topic, on_error='skip', decode=recorders[0].stream.decode,
                side_topics=sorted(side) or None,
                on_side=lambda name, msg: [callback(msg) for callback in side[name]]))
            for frame in frames:
                pending.append(frame)
                if len(pending) == batch:
                    progress.process(recorders, pending, fused)
                    pending = []
            if pending:
                progress.process(recorders, pending, fused)
            progress.finish()
            for r in recorders:
                r.finish()
        skipped = [{'index': s.index, 'log_time_ns': s.log_time_ns, 'kind': s.kind,
                    'reason': s.reason} for s in bag.skipped]
        stamps = np.array(progress.stamps, np.int64)
        if labels:
            if not len(stamps):
                raise AnomalyPerceptionError(f'{str(bag_path)!r}: no frame could be scored.')
            frame_labels = labels_from_intervals(stamps, read_intervals(labels, stamps[0],
                                                                        stamps[-1]))
            label_source = str(labels)
        elif bag_labels is not None:
            frame_labels = [bag_labels.get(int(s), 'normal') for s in stamps]
            label_source = f'bag topic {labels_topic}'
        else:
            frame_labels, label_source = None, None
        report = progress.report(str(bag_path), image_topic, skipped)
        report['pipelines'] = names
        if frame_labels is not None:
            report['labels'] = label_source
        report['branches'] = {}
        for r in recorders:
            part = r.report()
            r.artifacts(tmp, part)
            if frame_labels is not None:
                part.update(r.metrics(frame_labels))
                r.plots(tmp, frame_labels, part)
            report['branches'][r.branch.name] = part
        if fused is not None:
            report['monitor'] = fused.report()
            if frame_labels is not None:
                report['monitor'].update(fused.metrics(stamps, frame_labels))
        _write_pooled(tmp / POOLED_FILE, stamps, frame_labels, recorders)
        atomic_write_json(tmp / 'report.json', report)
    return report


def _write_pooled(path, stamps, frame_labels, recorders):
    """Write what a fleet pools over bags: stamps, labels, each branch's per-frame arrays."""
    arrays = {'stamps': stamps}
    if frame_labels is not None:
        arrays['labels'] = np.array(frame_labels, dtype=str)
    for r in recorders:
        arrays.update({f'{r.branch.name}.{k}': v for k, v in r.pooled().items()})
    with open(path, 'wb') as f:
        np.savez(f, **arrays)


class _Progress:
    """What every pipeline of a replay shares: the frames, the progress bar, wall time."""

    def __init__(self, total, show_progress):
        from tqdm import tqdm
        self.total = total
        self.stamps = []
        self.encodings = set()
        self.started = time.perf_counter()
        self.elapsed = 0.0
        self.bar = tqdm(total=total, unit='frame', desc='replay', disable=not show_progress,
                        dynamic_ncols=True)

    def process(self, recorders, frames, monitor=None):
        for r in recorders:
            r.process(frames)
        if monitor is not None:
            monitor.process(frames)     # reads the recorders' results of this batch
        self.stamps.extend(f.stamp_ns for f in frames)
        self.encodings.update(f.encoding for f in frames)
        self.bar.update(len(frames))
        elapsed = time.perf_counter() - self.started
        if len(self.stamps) > 1 and elapsed > 0:
            span = (self.stamps[-1] - self.stamps[0]) / 1e9
            self.bar.set_postfix(fps=f'{len(self.stamps) / elapsed:.0f}',
                                 realtime=f'{span / elapsed:.1f}x')

    def finish(self):
        self.bar.close()
        self.elapsed = time.perf_counter() - self.started

    def report(self, bag_path, image_topic, skipped):
        span = (self.stamps[-1] - self.stamps[0]) / 1e9 if len(self.stamps) > 1 else 0.0
        return {
            'bag': bag_path, 'image_topic': image_topic,
            'frames_in_topic': self.total, 'frames_scored': len(self.stamps),
            'malformed': {'count': len(skipped), 'frames': skipped[:20]},
            'encodings': sorted(self.encodings), 'duration_s': span, 'wall_s': self.elapsed,
            'frames_per_s': len(self.stamps) / self.elapsed if self.elapsed else float('nan'),
            'realtime_factor': span / self.elapsed if self.elapsed else float('nan'),
            'first_stamp_ns': int(self.stamps[0]) if self.stamps else None,
        }
