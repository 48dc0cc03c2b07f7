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

"""``anomaly-perception replay``: a recorded bag through the pipelines, offline.

Every frame of the image topic goes through the object the node runs, the
branch's pipeline found by name (for the frame branch,
:class:`~..perception.frame_stream.FrameStream`: the same decoding,
scoring, calibration and hazard filter, configured by ``FrameNodeConfig``),
in batches, and its outputs through the node's message builder. The output
directory gets:

* ``outputs/``: a ROS 2 bag (mcap) with exactly the topics and types the
  node publishes, each message stamped like its input frame (so
  ``ros2 bag play`` of both bags, or Foxglove, shows them together);
* with labels (the bag's label topic, or an intervals file):
  ``report.json`` (AUROC, AP, FPR95 overall and per type, event recall,
  false alarms per hour, detection delay, malformed frames) and plots:
  ``roc.png``, ``pr.png``, ``timeline.png``, ``top_frames.png``;
* without labels: ``report.json`` with counts and timing only.

The directory appears only once complete; an interrupted replay leaves
nothing behind.
"""

import dataclasses
import heapq
from pathlib import Path
import time

import cv2
import numpy as np

from .events import event_metrics
from .events import flag_episodes
from .events import labels_from_intervals
from .events import read_intervals
from .metrics import binary_curve
from .metrics import per_type_auroc
from .plots import pr_plot
from .plots import roc_plot
from ..errors import AnomalyPerceptionError
from ..io.bags import BagReader
from ..io.bags import BagWriter
from ..io.bags import prefetched
from ..io.files import atomic_directory
from ..io.files import atomic_write_json
from ..perception.branches import get_branch
from ..perception.stream import StreamStats

LABEL_TOPIC_SUFFIX = '/labels/frame'
TOP_FRAMES = 12


def infer_namespace(image_topic):
    """``/robomaster/camera/image_color`` -> ``robomaster``; ``/image`` -> ``''``."""
    parts = [p for p in image_topic.split('/') if p]
    return parts[0] if len(parts) >= 3 else ''


def _label_topic(bag, image_topic):
    """Return the bag's frame-label topic for ``image_topic`` (None if it has none)."""
    ns = infer_namespace(image_topic)
    candidates = [t for t in bag.topics if t.endswith(LABEL_TOPIC_SUFFIX)
                  and bag.topics[t].msgtype == 'vision_msgs/msg/Classification']
    preferred = f'/{ns}{LABEL_TOPIC_SUFFIX}' if ns else LABEL_TOPIC_SUFFIX
    return preferred if preferred in candidates else (candidates[0] if candidates else None)


def header_stamp_ns(msg):
    """Return a message's header stamp in ns (labels are matched to frames by it)."""
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _collect_label(labels, msg):
    labels[header_stamp_ns(msg)] = msg.results[0].class_id if msg.results else 'normal'


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


# Branch -> its recorder (``module:class``): what replay keeps of its results and reports.
RECORDERS = {
    'frame': 'anomaly_perception.evaluation.replay:FrameRecorder',
    'pixel': 'anomaly_perception.evaluation.pixel_replay:PixelRecorder',
    'instance': 'anomaly_perception.evaluation.instance_replay:InstanceRecorder',
    'synthesis': 'anomaly_perception.evaluation.synthesis_replay:SynthesisRecorder',
}
EVALUATED_BRANCHES = tuple(RECORDERS)


def _recorder_class(name):
    import importlib
    module, _, attr = RECORDERS[name].partition(':')
    return getattr(importlib.import_module(module), attr)


def replay(bag_path, out_dir, *, topic=None, model_dir=None, backend='auto', labels=None,
           namespace=None, config=None, batch=32, overwrite=False, show_progress=True,
           pipelines=('frame',), model_dirs=None, configs=None):
    """Replay ``bag_path`` through the ``pipelines`` (branch names) into ``out_dir``.

    Returns the report. Each branch is looked up by name
    (:mod:`..perception.branches`): its pipeline, config and message
    builder are the node's. Every pipeline sees the same decoded frames, in
    the same batches; ``model_dirs`` / ``configs`` map a branch name to its
    model directory / node config (``model_dir`` / ``config``: the same for
    a single pipeline). The first pipeline's results fill the report's top
    level (the frame branch's keys, as before); every other branch's go
    under its name (``report['pixel']``).

    Raises:
        UnknownBranchError: a pipeline name that is not a branch.
        AnomalyPerceptionError: a branch replay cannot evaluate yet, a
            pipeline named twice, or ``model_dir``/``config`` with several.

    """
    branches = [get_branch(name) for name in pipelines]
    names = [b.name for b in branches]
    for branch in branches:
        if branch.name not in EVALUATED_BRANCHES:
            raise AnomalyPerceptionError(f'replay cannot evaluate the {branch.name!r} branch '
                                         f'yet (it can: {", ".join(EVALUATED_BRANCHES)}).')
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
            cfg = configs.get(branch.name) or branch.config_class()
            md = model_dirs.get(branch.name) or cfg.model_dir or branch.shipped_model_dir()
            cfg = dataclasses.replace(cfg, backend=backend, model_dir=str(md))
            stream = branch.pipeline_class.from_config(cfg)
            recorders.append(_recorder_class(branch.name)(branch, stream, cfg, ns, str(md)))
        peers = {r.branch.name: r for r in recorders}
        for r in recorders:
            r.peers = peers
        label_topic = None if labels else _label_topic(bag, image_topic)
        bag_labels = {} if label_topic else None
        # Several recorders may read the same topic (the per-pixel labels): every one gets it.
        side = {label_topic: [lambda msg: _collect_label(bag_labels, msg)]} if label_topic \
            else {}
        for r in recorders:
            for name, callback in r.side_topics(bag, image_topic).items():
                side.setdefault(name, []).append(callback)
        progress = _Progress(bag.topics[image_topic].count, show_progress)
        with BagWriter(tmp / 'outputs', storage='mcap', compression='zstd') as out:
            for r in recorders:
                r.start(out, bag_labels)
            pending = []
            frames = prefetched(bag.read_images(
                image_topic, on_error='skip', decode=recorders[0].stream.decode,
                side_topics=sorted(side) or None,
                on_side=lambda name, msg: [callback(msg) for callback in side[name]]))
            for frame in frames:
                pending.append(frame)
                if len(pending) == batch:
                    progress.process(recorders, pending)
                    pending = []
            if pending:
                progress.process(recorders, pending)
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
            label_source = f'bag topic {label_topic}'
        else:
            frame_labels, label_source = None, None
        report = progress.report(str(bag_path), image_topic, skipped)
        report['pipelines'] = names
        for i, r in enumerate(recorders):
            part = r.report()
            r.artifacts(tmp, part)
            if frame_labels is not None:
                part.update(r.metrics(frame_labels))
                r.plots(tmp, frame_labels, part)
            if i == 0:
                report.update(part)
            else:
                report[r.branch.name] = part
        if frame_labels is not None:
            report['labels'] = label_source
        atomic_write_json(tmp / 'report.json', report)
    return report


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

    def process(self, recorders, frames):
        for r in recorders:
            r.process(frames)
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


class Recorder:
    """One pipeline in a replay: runs it, writes its node's topics, keeps what it reports.

    A branch's recorder overrides :meth:`record` (per frame), :meth:`report`,
    and, for labelled bags, :meth:`metrics` and :meth:`plots`.
    """

    def __init__(self, branch, stream, config, namespace, model_dir):
        self.branch = branch
        self.messages = branch.messages_module
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

    def start(self, out, frame_labels):
        self.out = out
        self.frame_labels = frame_labels
        self.builder = self.branch.builder_class.from_config(out.factory, self.config)
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

    def plots(self, out, frame_labels, report):
        """Write the branch's plots into ``out`` (default none)."""

    def artifacts(self, out, report):
        """Write files that need no labels into ``out`` (default none)."""


class FrameRecorder(Recorder):
    """The frame branch: scores, hazard flag, alarm episodes, frame and event metrics."""

    def __init__(self, *args):
        super().__init__(*args)
        self.hazard = self.stream.hazard
        self.raw, self.prob, self.smoothed, self.flags = [], [], [], []
        self.top = []

    def record(self, frame, result):
        prob, raw, state = result.probability, result.raw, result.state
        self.raw.append(raw)
        self.prob.append(prob)
        self.smoothed.append(state.smoothed)
        self.flags.append(state.flag)
        keep_top(self.top, TOP_FRAMES, prob if np.isfinite(prob) else 1.0, frame.stamp_ns,
                 lambda: cv2.resize(frame.image, (160, 160), interpolation=cv2.INTER_AREA))

    def report(self):
        first = int(self.stamps[0]) if self.stamps else None
        index = {int(stamp): i for i, stamp in enumerate(self.stamps)}
        alarms = []
        for start, end in flag_episodes(self.stamps, self.flags):
            probs = self.prob[index[int(start)]:index[int(end)] + 1]
            alarms.append({'start_s': (start - first) / 1e9, 'end_s': (end - first) / 1e9,
                           'start_ns': int(start), 'end_ns': int(end),
                           'frames': len(probs),
                           'peak_probability': float(np.nanmax(probs)) if
                           np.isfinite(probs).any() else float('nan')})
        hazard = self.hazard.config
        threshold = {'on_probability': hazard.on_probability, 'raw': self.detector.threshold}
        if self.stream.alarm_details is not None:
            threshold['target_false_alarms_per_hour'] = \
                self.stream.alarm_details['target_false_alarms_per_hour']
        return {
            **super().report(),
            'unscorable': int(np.sum(~np.isfinite(np.asarray(self.raw, float)))),
            'alarm_episodes': alarms, 'threshold': threshold,
            'hazard': {'on_probability': hazard.on_probability,
                       'off_probability': hazard.off_probability,
                       'smoothing': hazard.smoothing, 'min_on_s': hazard.min_on_s,
                       'min_off_s': hazard.min_off_s},
        }

    def metrics(self, frame_labels):
        return _metrics(self, frame_labels)

    def plots(self, out, frame_labels, report):
        _plots(out, self, frame_labels, report)


def _metrics(run, frame_labels):
    labels = np.array([0 if name == 'normal' else 1 for name in frame_labels])
    raw = np.asarray(run.raw, float)
    usable = np.isfinite(raw)
    curve = binary_curve(labels[usable] != 0, raw[usable])
    names = np.array(frame_labels)
    return {
        'n_normal': int((labels == 0).sum()), 'n_anomalous': int((labels != 0).sum()),
        'auroc': curve.auroc(), 'ap': curve.average_precision(),
        'fpr95': curve.fpr_at_tpr(0.95),
        'per_type_auroc': per_type_auroc(labels[usable], names[usable], raw[usable]),
        'flag': {'frame_tpr': float(np.mean(np.asarray(run.flags)[labels != 0]))
                 if (labels != 0).any() else float('nan'),
                 'frame_fpr': float(np.mean(np.asarray(run.flags)[labels == 0]))
                 if (labels == 0).any() else float('nan')},
        'events': event_metrics(run.stamps, frame_labels, run.flags),
    }


def _plots(out, run, frame_labels, report):
    labels = np.array([0 if n == 'normal' else 1 for n in frame_labels])
    raw = np.asarray(run.raw, float)
    usable = np.isfinite(raw)
    name = run.detector.name
    roc_plot(out / 'roc.png', {name: (labels[usable], raw[usable])}, title='Replay: frames')
    pr_plot(out / 'pr.png', {name: (labels[usable], raw[usable])})
    _timeline(out / 'timeline.png', run, frame_labels)
    _top_frames(out / 'top_frames.png', run, dict(zip(run.stamps, frame_labels)))


def _timeline(path, run, frame_labels):
    from .events import label_events
    from .plots import _figure
    from .plots import _save
    plt, fig, ax = _figure(10, 3.6)
    t0 = run.stamps[0]
    t = (np.asarray(run.stamps) - t0) / 1e9
    for ev in label_events(run.stamps, frame_labels, merge_gap_s=1.0):
        ax.axvspan((ev.start_ns - t0) / 1e9, (ev.end_ns - t0) / 1e9, color='orange', alpha=0.25)
        ax.text((ev.start_ns - t0) / 1e9, 1.02, ev.label, fontsize=7, rotation=30,
                va='bottom')
    ax.plot(t, run.prob, lw=0.6, color='0.6', label='probability')
    ax.plot(t, run.smoothed, lw=1.2, color='C0', label='smoothed')
    ax.fill_between(t, 0, np.asarray(run.flags, float) * 0.08, step='post', color='red',
                    alpha=0.8, label='hazard flag')
    ax.axhline(run.hazard.config.on_probability, color='k', lw=0.6, ls='--')
    ax.set_ylim(0, 1.15)
    ax.set_xlabel('time (s)')
    ax.set_ylabel('anomaly probability')
    ax.legend(loc='lower right', fontsize=7, ncol=3)
    return _save(plt, fig, path)


def _top_frames(path, run, labels):
    top = sorted(run.top, reverse=True)
    tiles = []
    for prob, stamp, image in top:
        tile = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        text = f'{prob:.3f} {labels.get(stamp, "")}'
        cv2.rectangle(tile, (0, 0), (160, 16), (0, 0, 0), -1)
        cv2.putText(tile, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % 4 or not tiles:
        tiles.append(np.zeros((160, 160, 3), np.uint8))
    grid = np.vstack([np.hstack(tiles[i:i + 4]) for i in range(0, len(tiles), 4)])
    from ..io.files import atomic_write_bytes
    atomic_write_bytes(path, cv2.imencode('.png', grid)[1].tobytes())
