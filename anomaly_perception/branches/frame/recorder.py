"""The frame branch in a replay: scores, the hazard flag, its alarms, frame and event metrics.

With labels the report gains AUROC, AP and FPR95 overall and per type,
the flag's frame rates and its events (recall, detection delay, false
alarms per hour of normal driving), and ``roc.png``, ``pr.png``,
``timeline.png`` and ``top_frames.png``.
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

import cv2
import numpy as np

from ...metrics.binary import binary_curve
from ...metrics.binary import per_type_auroc
from ...metrics.events import event_metrics
from ...metrics.events import flag_episodes
from ...metrics.plots import pr_plot
from ...metrics.plots import roc_plot
from ...replay.recorder import keep_top
from ...replay.recorder import Recorder
from ...replay.recorder import TOP_FRAMES


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

    def pooled(self):
        return {'raw': np.asarray(self.raw, np.float64)}

    @staticmethod
    def summary(report, part, out):
        lines = []
        if 'auroc' in part:
            ev = part['events']
            lines.append(f"frame branch: {part['n_normal']} normal, {part['n_anomalous']} "
                         'anomalous frames')
            lines.append(f"frame AUROC {part['auroc']:.3f}  AP {part['ap']:.3f}  "
                         f"FPR95 {part['fpr95']:.3f}")
            lines.append(f"hazard flag: {ev['detected']}/{ev['n_events']} anomalies detected, "
                         f"median delay {ev['detection_delay_s']['median']:.2f} s; "
                         f"{ev['false_alarms']} false alarm(s), "
                         f"{ev['false_alarms_per_hour']:.0f} per hour of normal driving; flag "
                         f"on for {100 * ev['alarm_time_fraction']:.1f}% of normal driving")
            lines.append(f'report and plots: {out}/report.json, roc.png, pr.png, timeline.png, '
                         'top_frames.png')
        n_alarms = len(part.get('alarm_episodes', []))
        lines.append(f'{n_alarms} alarm(s) raised (flag on at probability '
                     f"{part['hazard']['on_probability']:.10g}); to confirm and retrain: "
                     f"anomaly-perception tag {report['bag']} --from-report {out} --out "
                     'tags.yaml')
        return lines

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
    from ...metrics.events import label_events
    from ...metrics.plots import _figure
    from ...metrics.plots import _save
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
    from ...io.files import atomic_write_bytes
    atomic_write_bytes(path, cv2.imencode('.png', grid)[1].tobytes())
