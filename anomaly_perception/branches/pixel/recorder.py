"""The pixel branch in ``replay --pipelines ...,pixel``: its topics, and pixel metrics.

Writes the pixel node's topics to the output bag (``~/overlay`` included, as
if someone watched it). With a bag that carries per-pixel labels (the
synthetic world's ``/<ns>/labels/instances``, 16UC1, non-zero = anomaly)
the report's ``pixel`` section gets, over the frames of normal and local
anomaly types (global types, whose label is the whole image, are left
out):

* per pixel: AuPRC, FPR95 and AUROC of ``~/anomaly_map``; SegmentMeIfYouCan
  sIoU, PPV and mean F1* of ``~/anomaly_mask`` (the threshold the node
  publishes with);
* per event (a run of frames with the same anomaly label): ``located``,
  the share of events where, in at least one frame, the mask covers at
  least :data:`LOCATED_COVERAGE` of the anomaly's pixels;
* with a failure head (a ``train failure`` model) and the bag's semantic
  labels (``/<ns>/labels/semantic``): ``~/failure_map`` is written and the
  ``failure`` section has AP-Err, AP-Suc, AUROC and FPR95 of it against
  the errors of ``~/semantic`` (anomaly pixels are errors; void ignored),
  over the same frames;
* per frame: the branch's frame-level score (the map's 0.99 quantile,
  calibrated on normal validation frames) as a detector beside the frame
  branch: AUROC / AP / FPR95, and event recall and false alarms per hour of
  the flag ``probability >= 1 - FRAME_FPR``.

Per-pixel labels arrive in the bag beside their image, possibly after it;
each frame's map waits (at most a prefetch's worth of frames) for its label
and is dropped once counted, so memory stays flat over a long bag.
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

import numpy as np

from .messages import LABEL_INFO_TYPE
from ...data.synthetic.catalog import GLOBAL_TYPES
from ...io.labels import INSTANCES_SUFFIX
from ...io.labels import SEMANTIC_SUFFIX
from ...metrics.binary import binary_curve
from ...metrics.binary import BinaryScoreAccumulator
from ...metrics.binary import per_type_auroc
from ...metrics.events import event_metrics
from ...metrics.events import label_events
from ...metrics.segmentation import ComponentF1Accumulator
from ...metrics.segmentation import FailureDetectionAccumulator
from ...replay.recorder import Recorder

LOCATED_COVERAGE = 0.1
FRAME_FPR = 0.05
ERROR_LABEL = 254       # an anomaly pixel's target: no class the segmenter predicts


class PixelRecorder(Recorder):
    """The pixel branch's part of a replay (see module docs)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.frame_scores, self.frame_probs = [], []
        self.pixel_labels = None        # stamp -> bool anomaly mask, until matched
        self.waiting = {}               # stamp -> (map, mask, classes, failure), until labelled
        self.acc = BinaryScoreAccumulator()
        self.components = ComponentF1Accumulator()
        self.coverage = {}              # stamp -> share of anomaly pixels under the mask
        self.labelled_frames = 0
        self.semantic_labels = None     # stamp -> class ids, when the failure map is judged
        self.failure = FailureDetectionAccumulator()
        self.failure_frames = 0

    def side_topics(self, bag, image_topic):
        self.label_topic, self.pixel_labels, topics = self.collect_label_images(
            bag, image_topic, INSTANCES_SUFFIX)
        if self.pixel_labels is not None and getattr(self.detector, 'has_failure', False):
            topic, labels, side = self.collect_label_images(bag, image_topic, SEMANTIC_SUFFIX)
            if labels is not None:
                self.semantic_topic, self.semantic_labels = topic, labels
                topics.update(side)
        return topics

    def start(self, out, frame_labels):
        super().start(out, frame_labels)
        out.add_topic(self.topics['label_info'], LABEL_INFO_TYPE)
        self.label_info_written = False

    def output_options(self):
        return {'overlay': True}

    def output_keys(self):
        keys = super().output_keys()
        return keys if getattr(self.detector, 'has_failure', False) else keys - {'failure_map'}

    def record(self, frame, result):
        if not self.label_info_written:     # once, as the node's transient-local publisher
            self.out.write(self.topics['label_info'], self.builder.label_info(
                frame.header, self.detector.classes, self.detector.threshold),
                log_time_ns=frame.stamp_ns)
            self.label_info_written = True
        r = result.pixels
        self.frame_scores.append(r.frame_score)
        self.frame_probs.append(r.frame_probability)
        if self.pixel_labels is not None:
            self.waiting[frame.stamp_ns] = (r.anomaly, r.mask, r.semantic, r.failure)
            self._match()

    def _match(self, final=False):
        for stamp in [s for s in self.waiting if s in self.pixel_labels]:
            if self.semantic_labels is not None and stamp not in self.semantic_labels \
                    and not final:
                continue            # its semantic label may still come
            anomaly, mask, semantic, failure = self.waiting.pop(stamp)
            instances = self.pixel_labels.pop(stamp)
            classes = self.semantic_labels.pop(stamp, None) if self.semantic_labels is not None \
                else None
            kind = (self.frame_labels or {}).get(stamp, 'normal')
            if kind in GLOBAL_TYPES or instances.shape != anomaly.shape:
                continue
            truth = (instances > 0).astype(np.uint8)
            valid = np.isfinite(anomaly)
            truth[~valid] = 255
            self.acc.update(truth, np.nan_to_num(anomaly, nan=0.0))
            self.components.update(truth, mask, np.where(valid, instances, 0))
            self.labelled_frames += 1
            positives = truth == 1
            if positives.any():
                self.coverage[stamp] = float(mask[positives].mean())
            if failure is not None and classes is not None and classes.shape == semantic.shape:
                target = np.where(instances > 0, ERROR_LABEL, classes)
                target[~valid] = 255
                self.failure.update(np.nan_to_num(failure, nan=0.0), semantic, target)
                self.failure_frames += 1

    def finish(self):
        if self.pixel_labels is not None:
            self._match(final=True)

    @staticmethod
    def summary(report, part, out):
        lines = [f"pixel branch: {part['pipeline_frames_per_s']:.1f} frames/s through its "
                 'pipeline']
        if 'pixels' in part:
            px = part['pixels']
            lines.append(f"pixels ({px['frames']} labelled frames): AuPRC {px['auprc']:.3f}  "
                         f"FPR95 {px['fpr95']:.3f}  F1* {px['f1_star']:.3f}; "
                         f"{px['events_located']}/{px['n_local_events']} local anomalies "
                         'located by the mask')
        if 'frame' in part:
            ev = part['events']
            lines.append(f"pixel branch frame score: AUROC {part['frame']['auroc']:.3f}; "
                         f"flag {ev['detected']}/{ev['n_events']} anomalies, "
                         f"{ev['false_alarms_per_hour']:.0f} false alarms per hour")
        return lines

    def report(self):
        return {**super().report(), 'threshold': {'pixel_raw': self.detector.threshold,
                                                  'pixel_target_fpr': self.detector.target_fpr,
                                                  'frame_on_probability': 1.0 - FRAME_FPR}}

    def pooled(self):
        out = {'raw': np.asarray(self.frame_scores, np.float64)}
        if self.labelled_frames:
            out.update({f'pixels.{k}': v for k, v in self.acc.state().items()})
        return out

    def metrics(self, frame_labels):
        out = {}
        labels = np.array([0 if name == 'normal' else 1 for name in frame_labels])
        names = np.array(frame_labels)
        raw = np.asarray(self.frame_scores, float)
        usable = np.isfinite(raw)
        if usable.any() and 0 < labels[usable].sum() < usable.sum():
            curve = binary_curve(labels[usable] != 0, raw[usable])
            out['frame'] = {
                'auroc': curve.auroc(), 'ap': curve.average_precision(),
                'fpr95': curve.fpr_at_tpr(0.95),
                'per_type_auroc': per_type_auroc(labels[usable], names[usable], raw[usable])}
        flags = np.nan_to_num(np.asarray(self.frame_probs, float), nan=1.0) >= 1.0 - FRAME_FPR
        out['events'] = event_metrics(self.stamps, frame_labels, flags)
        if self.labelled_frames:
            curve = self.acc.curve()
            components = self.components.results()
            events = [ev for ev in label_events(self.stamps, frame_labels, merge_gap_s=1.0)
                      if ev.label not in GLOBAL_TYPES]
            located = [any(self.coverage.get(int(s), 0.0) >= LOCATED_COVERAGE
                           for s in self.stamps if ev.start_ns <= s <= ev.end_ns)
                       for ev in events]
            out['pixels'] = {
                'label_topic': self.label_topic, 'frames': self.labelled_frames,
                'auprc': curve.average_precision(), 'fpr95': curve.fpr_at_tpr(0.95),
                'auroc': curve.auroc(), 'f1_star': components['f1_star'],
                'mean_siou': components['mean_siou'], 'mean_ppv': components['mean_ppv'],
                'events_located': int(sum(located)), 'n_local_events': len(events),
                'located_coverage': LOCATED_COVERAGE}
        if self.failure_frames:
            res = self.failure.results()
            out['failure'] = {'label_topic': self.semantic_topic, 'frames': self.failure_frames,
                              **{k: res[k] for k in ('ap_err', 'ap_suc', 'auroc', 'fpr95',
                                                     'n_errors', 'n_correct')}}
        return out
