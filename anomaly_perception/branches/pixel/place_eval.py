"""Scoring a labelled patrol bag with any pixel scorer, and overlays (``experiment pixel-place``).

:func:`evaluate_bag` reads a synthetic patrol's frames with their instance
masks and frame labels and scores them with any ``score_batch`` (the pixel
branch's detector through :func:`segmenter_scorer`, or a peer's), so every
row of the experiment is measured on the same frames by the same code.
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

from ...io.bags import BagReader
from ...io.files import atomic_write_bytes
from ...io.images import decode_frame
from ...io.images import image_to_numpy
from ...io.labels import FRAME_LABELS_SUFFIX
from ...io.labels import INSTANCES_SUFFIX
from ...io.labels import label_topic
from ...metrics.binary import BinaryScoreAccumulator
from ...metrics.events import event_metrics


def labelled_frames(bag, every=1):
    """Yield ``(stamp, rgb, instance ids, frame label)`` of a synthetic patrol, in order."""
    with BagReader(bag) as reader:
        image_topic = reader.find_image_topic()
        ids_topic = label_topic(image_topic, INSTANCES_SUFFIX)
        frame_topic = label_topic(image_topic, FRAME_LABELS_SUFFIX)
        pending, count = {}, 0
        for topic, _, msg in reader.messages([image_topic, ids_topic, frame_topic]):
            stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            item = pending.setdefault(stamp, {})
            if topic == image_topic:
                item['image'] = msg
            elif topic == ids_topic:
                item['ids'] = msg
            else:
                item['label'] = msg.results[0].class_id if msg.results else 'normal'
            if len(item) == 3:
                del pending[stamp]
                count += 1
                if (count - 1) % every:
                    continue
                ids = np.asarray(image_to_numpy(item['ids'], output='passthrough'))
                yield stamp, decode_frame(item['image']), ids.reshape(ids.shape[:2]), \
                    item['label']


def labelled_batches(bag, batch, every=1):
    """Yield :func:`labelled_frames` in lists of ``batch`` (the last one may be shorter)."""
    items = []
    for item in labelled_frames(bag, every):
        items.append(item)
        if len(items) == batch:
            yield items
            items = []
    if items:
        yield items


def evaluate_bag(bag, score_batch, *, every=1, batch=16, keep_examples=()):
    """Score a labelled patrol with ``score_batch(stamps, images) -> [(map, mask, flag)]``.

    ``flag``: the hazard flag after the frame, in time order; ``mask`` and
    ``flag`` may be None (a peer without a threshold).
    Returns the metrics dict and ``{stamp: (rgb, map, mask)}`` for the
    stamps in ``keep_examples``.
    """
    from ...data.synthetic.catalog import GLOBAL_TYPES
    overall = BinaryScoreAccumulator()
    per_type = {}
    stamps, labels, flags = [], [], []
    normal_share, examples = [], {}
    started, frames = time.perf_counter(), 0

    def flush(items):
        nonlocal frames
        results = score_batch([stamp for stamp, _, _, _ in items],
                              [rgb for _, rgb, _, _ in items])
        frames += len(items)
        for (stamp, rgb, ids, label), (amap, mask, flag) in zip(items, results):
            stamps.append(stamp)
            labels.append(label)
            flags.append(flag)
            if stamp in keep_examples:
                examples[stamp] = (rgb, amap, mask)
            if label in GLOBAL_TYPES:
                continue
            truth = (ids > 0).astype(np.uint8)
            overall.update(truth, amap)
            if label == 'normal':
                if mask is not None:
                    normal_share.append(float(mask.mean()))
            else:
                per_type.setdefault(label, BinaryScoreAccumulator()).update(truth, amap)

    for items in labelled_batches(bag, batch, every):
        flush(items)
    seconds = time.perf_counter() - started
    curve = overall.curve()
    out = {'frames': frames, 'auprc': curve.average_precision(),
           'fpr95': curve.fpr_at_tpr(0.95), 'auroc': curve.auroc(),
           'per_type': {k: _ap_fpr95(v.curve()) for k, v in sorted(per_type.items())},
           'frames_per_s': frames / seconds if seconds else float('nan')}
    if normal_share:
        out['normal_pixels_flagged'] = float(np.mean(normal_share))
        out['normal_pixels_flagged_p95'] = float(np.quantile(normal_share, 0.95))
    if any(f is not None for f in flags):
        ev = event_metrics(np.asarray(stamps), labels, np.asarray([bool(f) for f in flags]))
        out['events'] = {k: ev[k] for k in ('n_events', 'detected', 'false_alarms',
                                            'false_alarms_per_hour', 'alarm_time_fraction')}
    return out, examples


def _ap_fpr95(curve):
    return {'auprc': curve.average_precision(), 'fpr95': curve.fpr_at_tpr(0.95)}


def stream_scorer(stream):
    """``score_batch`` of a :class:`~.stream.PixelStream`: the node's pipeline, hazard flag too."""
    def score(stamps, images):
        return [(r.pixels.anomaly, r.pixels.mask, None if r.state is None else r.state.flag)
                for r in stream.process(stamps, images)]
    return score


def _overlay(rgb, amap, mask, lo, hi):
    heat = np.clip((amap - lo) / max(hi - lo, 1e-6), 0, 1)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
    out = (0.55 * rgb + 0.45 * colour).astype(np.uint8)
    if mask is not None:
        edge = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3)))
        out[edge > 0] = (0, 255, 0)
    return out


def write_overlays(path, rows, width=320):
    """Write a JPEG: per example frame, the image, then one overlay per model (mask edge green)."""
    tiles = []
    for rgb, maps in rows:
        h = int(round(rgb.shape[0] * width / rgb.shape[1]))
        row = [cv2.resize(rgb, (width, h), interpolation=cv2.INTER_AREA)]
        for amap, mask, (lo, hi) in maps:
            over = _overlay(rgb, amap, mask, lo, hi)
            row.append(cv2.resize(over, (width, h), interpolation=cv2.INTER_AREA))
        tiles.append(np.concatenate(row, 1))
    if not tiles:
        return
    width_all = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 2), (0, width_all - t.shape[1]), (0, 0))) for t in tiles]
    ok, data = cv2.imencode('.jpg', cv2.cvtColor(np.concatenate(tiles), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 85])
    if ok:
        atomic_write_bytes(path, data.tobytes())
