"""The synthesis branch in ``replay --pipelines ...,synthesis``: keyframes, topics, metrics.

Every frame goes through :class:`~.stream.SynthesisStream`;
on keyframes (one per ``keyframe_period_s`` of stamp time) the guided edit
runs and the branch's topics (``synthesis_anomaly/anomaly_map``,
``distance_map``, ``edit``) are written to the output bag, stamped like the
frame.

The report's ``synthesis`` section: keyframes, seconds per keyframe (median,
p90), the sampler; with per-pixel labels in the bag (the synthetic world's
``/<ns>/labels/instances``), over the keyframes of normal and local anomaly
types: pixel AuPRC, AUROC and FPR95 of ``~/anomaly_map``, and, when the
replay also runs the pixel pipeline (named before ``synthesis``), of the
pixel branch's ``~/anomaly_map`` on the same keyframes and pixels (the
synthesis branch as a second opinion, side by side).

``synthesis_contact_sheet.jpg``: the keyframes whose maps peak highest,
as ``synthesize``'s panels (input | edit | distance | refined).
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

from .report import panel
from ...io.labels import INSTANCES_SUFFIX
from ...metrics.binary import BinaryScoreAccumulator
from ...replay.recorder import keep_top
from ...replay.recorder import Recorder
from ...replay.recorder import write_contact_sheet

SHEET_FRAMES = 6
SHEET_TILE_WIDTH = 200


def _peak(values):
    finite = values[np.isfinite(values)]
    return float(np.percentile(finite, 99)) if finite.size else -np.inf


class SynthesisRecorder(Recorder):
    """The synthesis branch's part of a replay (see module docs)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.keyframe_stamps = []
        self.reasons = {}
        self.keyframe_s = []
        self.pixel_labels = None        # stamp -> uint16 ids, until matched or passed
        self.label_topic = None
        self.waiting = {}               # keyframe stamp -> (synthesis map, pixel map or None)
        self.acc = BinaryScoreAccumulator()
        self.pixel_acc = BinaryScoreAccumulator()
        self.labelled = {'keyframes': 0, 'with_pixel_map': 0}
        self.sheet = []                 # heap of (peak, stamp, panel)

    def side_topics(self, bag, image_topic):
        self.label_topic, self.pixel_labels, topics = self.collect_label_images(
            bag, image_topic, INSTANCES_SUFFIX)
        return topics

    def _pixel_map(self, stamp):
        pixel = self.peers.get('pixel')
        result = pixel.last_results.get(stamp) if pixel is not None else None
        return None if result is None else result.pixels.anomaly

    def process(self, frames):
        import time
        start = time.perf_counter()
        results = self.stream.process([f.stamp_ns for f in frames], [f.image for f in frames])
        self.write_keyframes(frames, results,
                             [r.synthesis.seconds for r in results if r.keyframe])
        self.infer_s += time.perf_counter() - start
        self._match(frames[-1].stamp_ns)

    def record(self, frame, result):
        r = result.synthesis
        self.keyframe_stamps.append(frame.stamp_ns)
        self.reasons[result.reason] = self.reasons.get(result.reason, 0) + 1
        self.keyframe_s.append(r.seconds)
        if self.pixel_labels is not None:
            self.waiting[frame.stamp_ns] = (r.anomaly, self._pixel_map(frame.stamp_ns))

        def tile():
            out = panel(result.image, r, width=SHEET_TILE_WIDTH)
            seconds = (frame.stamp_ns - self.stamps[0]) / 1e9
            cv2.putText(out, f'{seconds:.1f} s', (out.shape[1] - 60, 18),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            return out
        keep_top(self.sheet, SHEET_FRAMES, _peak(r.anomaly), frame.stamp_ns, tile)

    def _match(self, last_stamp=None):
        for (anomaly, pixel_map), truth_ids, _ in self.matched_labels(last_stamp):
            valid = np.isfinite(anomaly)
            if pixel_map is not None:
                if pixel_map.shape != anomaly.shape:
                    pixel_map = None
                else:
                    valid &= np.isfinite(pixel_map)     # the same pixels for both
            truth = (truth_ids > 0).astype(np.uint8)
            truth[~valid] = 255
            self.acc.update(truth, np.nan_to_num(anomaly, nan=0.0))
            self.labelled['keyframes'] += 1
            if pixel_map is not None:
                self.pixel_acc.update(truth, np.nan_to_num(pixel_map, nan=0.0))
                self.labelled['with_pixel_map'] += 1

    def finish(self):
        self._match()

    @staticmethod
    def summary(report, part, out):
        sec = part['keyframe_seconds']
        lines = [f"synthesis branch: {part['keyframes']} keyframes (one per "
                 f"{part['keyframe_period_s']:g} s), {sec['median']:.1f} s per keyframe "
                 f"(median; {part['sampler']}; {part['features']} features, "
                 f"{part['refine']} segments)"]
        if 'pixels' in part:
            m = part['pixels']
            text = (f"synthesis pixels ({m['keyframes']} labelled keyframes): AuPRC "
                    f"{m['auprc']:.3f}  FPR95 {m['fpr95']:.3f}")
            if 'pixel_branch' in m:
                text += ('; the pixel branch on the same pixels: AuPRC '
                         f"{m['pixel_branch']['auprc']:.3f}  FPR95 "
                         f"{m['pixel_branch']['fpr95']:.3f}")
            lines.append(text)
        if 'contact_sheet' in part:
            lines.append(f"synthesis contact sheet: {out}/{part['contact_sheet']}")
        return lines

    def report(self):
        seconds = np.asarray(self.keyframe_s, float)
        return {
            **super().report(), 'sampler': self.detector.backend.describe()['sampler'],
            'features': self.detector.options.features, 'refine': self.detector.options.refine,
            'keyframes': len(self.keyframe_stamps), 'keyframe_reasons': dict(self.reasons),
            'keyframe_period_s': self.config.keyframe_period_s,
            'keyframe_seconds': {
                'median': float(np.median(seconds)) if seconds.size else float('nan'),
                'p90': float(np.percentile(seconds, 90)) if seconds.size else float('nan')},
        }

    def metrics(self, frame_labels):
        if not self.labelled['keyframes']:
            return {}
        curve = self.acc.curve()
        out = {'label_topic': self.label_topic, 'keyframes': self.labelled['keyframes'],
               'auprc': curve.average_precision(), 'auroc': curve.auroc(),
               'fpr95': curve.fpr_at_tpr(0.95)}
        if self.labelled['with_pixel_map'] == self.labelled['keyframes']:
            pixel = self.pixel_acc.curve()
            out['pixel_branch'] = {'auprc': pixel.average_precision(), 'auroc': pixel.auroc(),
                                   'fpr95': pixel.fpr_at_tpr(0.95)}
        return {'pixels': out}

    def artifacts(self, out, report):
        if not self.sheet:
            return
        write_contact_sheet(out / 'synthesis_contact_sheet.jpg', self.sheet)
        report['contact_sheet'] = 'synthesis_contact_sheet.jpg'
