"""The instance branch in ``replay --pipelines ...,instance``: keyframes, topics, metrics.

Every frame's pixel map goes through the instance node's keyframe policy
(:class:`~.stream.InstanceStream`); on keyframes the
instance node's topics are written to the output bag (``~/overlay``
included) and UGainS's wall time is kept. The map is the pixel pipeline's
of the same replay when there is one (as the node reads the pixel node's
``~/anomaly_map``), else the pixel model run by the instance pipeline. The
bag's ``camera_info`` places the instances on the floor.

The report's ``instance`` section: keyframes (by reason), instances per
keyframe, UGainS latency per keyframe (median, p90), hazards placed; with
per-pixel labels in the bag (the synthetic world's ``/<ns>/labels/instances``)
and frame labels, over the keyframes of normal and local anomaly types:

* iAP and iAP50 of the published ``~/instance_ids`` (each id one mask; the
  Cityscapes protocol, regions under 10 px ignored);
* pixel AP and FPR95 of the driving map and of ``~/refined_map`` (UGainS's
  ensemble): before and after;
* on normal keyframes, the instances per keyframe (false alarms).

``instance_contact_sheet.jpg`` shows the keyframes with the highest
instance scores (overlay | refined map).
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

import time

import cv2
import numpy as np

from .messages import instance_overlay
from ...io.labels import CAMERA_INFO_SUFFIX
from ...io.labels import INSTANCES_SUFFIX
from ...io.labels import label_topic
from ...metrics.binary import BinaryScoreAccumulator
from ...metrics.segmentation import InstanceAPAccumulator
from ...replay.recorder import keep_top
from ...replay.recorder import Recorder
from ...replay.recorder import write_contact_sheet

SHEET_FRAMES = 8
SHEET_WIDTH = 320


def _heat(values):
    finite = np.isfinite(values)
    lo, hi = (np.percentile(values[finite], 1), np.percentile(values[finite], 99.9)) \
        if finite.any() else (0.0, 1.0)
    norm = np.clip((np.nan_to_num(values, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    return cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)


class InstanceRecorder(Recorder):
    """The instance branch's part of a replay (see module docs)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.keyframe_stamps = []
        self.reasons = {}
        self.instances_per_keyframe = []
        self.keyframe_s = []
        self.hazards = 0
        self.camera_info = None
        self.pixel_labels = None        # stamp -> uint16 ids, until matched or passed
        self.waiting = {}               # keyframe stamp -> (map, refined, ids, scores)
        self.before = BinaryScoreAccumulator()
        self.after = BinaryScoreAccumulator()
        self.instance_ap = InstanceAPAccumulator()
        self.labelled_keyframes = 0
        self.normal_keyframes = []      # instances per normal keyframe
        self.sheet = []                 # heap of (best score, stamp, thumbnail)
        self.maps_from = 'the instance pipeline'

    def side_topics(self, bag, image_topic):
        topics = {}
        info = label_topic(image_topic, CAMERA_INFO_SUFFIX)
        if info in bag.topics:
            def camera(msg):
                key = (tuple(float(v) for v in msg.k), int(msg.width), int(msg.height))
                if key != self.camera_info:
                    self.camera_info = key
                    self.stream.set_camera_info(*key)
            topics[info] = camera
        self.label_topic, self.pixel_labels, labels = self.collect_label_images(
            bag, image_topic, INSTANCES_SUFFIX)
        topics.update(labels)
        return topics

    def output_options(self):
        return {'overlay': True}

    def _maps(self, frames):
        pixel = self.peers.get('pixel')
        if pixel is not None and all(f.stamp_ns in pixel.last_results for f in frames):
            self.maps_from = 'the pixel pipeline of this replay (as the node: ~/anomaly_map)'
            return [pixel.last_results[f.stamp_ns].pixels.anomaly for f in frames]
        return None

    def process(self, frames):
        start = time.perf_counter()
        # The maps the node would get (None: the stream runs the pixel model on the batch).
        results = self.stream.process([f.stamp_ns for f in frames], [f.image for f in frames],
                                      self._maps(frames))
        seconds = [r.seconds for r in results if r.keyframe]
        self.keyframe_s.extend(seconds)
        self.write_keyframes(frames, results, seconds)
        self.infer_s += time.perf_counter() - start
        self._match(frames[-1].stamp_ns)

    def record(self, frame, result):
        r = result.instances
        self.keyframe_stamps.append(frame.stamp_ns)
        self.reasons[result.reason] = self.reasons.get(result.reason, 0) + 1
        self.instances_per_keyframe.append(len(r.scores))
        self.hazards += len(r.hazards)
        if self.pixel_labels is not None:
            self.waiting[frame.stamp_ns] = (r.anomaly, r.refined, r.ids, r.scores)
        best = float(r.scores[0]) if len(r.scores) else -np.inf

        def thumb():
            h, w = r.ids.shape
            size = (SHEET_WIDTH, int(round(h * SHEET_WIDTH / w)))
            overlay = cv2.cvtColor(instance_overlay(result.image, r), cv2.COLOR_RGB2BGR)
            tile = np.hstack([cv2.resize(overlay, size, interpolation=cv2.INTER_AREA),
                              cv2.resize(_heat(r.refined), size, interpolation=cv2.INTER_AREA)])
            seconds = (frame.stamp_ns - self.stamps[0]) / 1e9
            cv2.putText(tile, f'{seconds:.1f} s  {len(r.scores)} instances',
                        (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                        cv2.LINE_AA)
            return tile
        keep_top(self.sheet, SHEET_FRAMES, best, frame.stamp_ns, thumb)

    def _match(self, last_stamp=None):
        if self.pixel_labels is None:
            return
        for (anomaly, refined, ids, scores), truth_ids, kind in self.matched_labels(
                last_stamp):
            valid = np.isfinite(anomaly)
            truth = (truth_ids > 0).astype(np.uint8)
            truth[~valid] = 255
            self.before.update(truth, np.nan_to_num(anomaly, nan=0.0))
            self.after.update(truth, np.nan_to_num(refined, nan=0.0))
            masks = ids[None] == np.arange(1, len(scores) + 1)[:, None, None]
            self.instance_ap.update(np.where(valid, truth_ids, 0), masks, scores, ~valid)
            self.labelled_keyframes += 1
            if kind == 'normal':
                self.normal_keyframes.append(len(scores))

    def finish(self):
        self._match()

    @staticmethod
    def summary(report, part, out):
        lat = part['keyframe_latency_ms']
        reasons = ', '.join(f'{k} {v}' for k, v in sorted(part['keyframe_reasons'].items()))
        lines = [f"instance branch: {part['keyframes']} keyframes ({reasons}), "
                 f"{part['instances_per_keyframe']:.1f} instances per keyframe, "
                 f"{part['hazards_placed']} placed on the floor; UGainS "
                 f"{lat['median']:.0f} ms per keyframe (median); map from {part['maps_from']}"]
        if 'instances' in part:
            m = part['instances']
            lines.append(f"instances ({m['keyframes']} labelled keyframes): iAP {m['iap']:.3f}  "
                         f"iAP50 {m['iap50']:.3f}; pixel AP {m['pixel_ap_input']:.3f} -> "
                         f"{m['pixel_ap_refined']:.3f} after the ensemble; "
                         f"{m['instances_per_normal_keyframe']:.1f} instances per normal "
                         'keyframe')
        if 'contact_sheet' in part:
            lines.append(f"instance contact sheet: {out}/{part['contact_sheet']}")
        return lines

    def report(self):
        lat = np.asarray(self.keyframe_s, float) * 1e3
        det = self.detector
        return {
            **super().report(), 'pixel_model': self.stream.pixel_model_dir,
            'maps_from': self.maps_from,
            'keyframes': len(self.keyframe_stamps), 'keyframe_reasons': dict(self.reasons),
            'keyframe_period_s': self.config.keyframe_period_s,
            'keyframe_rise': self.config.keyframe_rise,
            'instances_per_keyframe': (float(np.mean(self.instances_per_keyframe))
                                       if self.instances_per_keyframe else float('nan')),
            'keyframe_latency_ms': {
                'median': float(np.median(lat)) if lat.size else float('nan'),
                'p90': float(np.percentile(lat, 90)) if lat.size else float('nan')},
            'hazards_placed': self.hazards,
            'camera_info': 'from the bag' if self.camera_info else 'none (no floor placement)',
            'prompt_threshold': {'raw': det.config.threshold, 'prompt_fpr': det.prompt_fpr},
            'num_points': det.config.num_points,
        }

    def metrics(self, frame_labels):
        if not self.labelled_keyframes:
            return {}
        before, after = self.before.curve(), self.after.curve()
        inst = self.instance_ap.results()
        return {'instances': {
            'label_topic': self.label_topic, 'keyframes': self.labelled_keyframes,
            'iap': inst['iAP'], 'iap50': inst['iAP50'],
            'pixel_ap_input': before.average_precision(),
            'pixel_fpr95_input': before.fpr_at_tpr(0.95),
            'pixel_ap_refined': after.average_precision(),
            'pixel_fpr95_refined': after.fpr_at_tpr(0.95),
            'normal_keyframes': len(self.normal_keyframes),
            'instances_per_normal_keyframe': (float(np.mean(self.normal_keyframes))
                                              if self.normal_keyframes else float('nan'))}}

    def artifacts(self, out, report):
        if not self.sheet:
            return
        write_contact_sheet(out / 'instance_contact_sheet.jpg', self.sheet)
        report['contact_sheet'] = 'instance_contact_sheet.jpg'
