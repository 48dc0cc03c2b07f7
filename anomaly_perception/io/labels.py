"""A bag's labels: the topics a labelled bag carries, and hand-written intervals.

A labelled patrol bag (what ``synth bag`` writes) has, beside the camera's
``/<ns>/camera/image_color``, the topics named by the suffixes below in the
same namespace ``<ns>`` (:func:`label_topic`): a frame's label
(vision_msgs/Classification), its anomaly instance ids (16UC1) and
semantic class ids (mono8), and the camera's calibration.

Labels can come from a bag's label topic or from an intervals file a
person writes (YAML)::

    # seconds from the first image of the bag; or start_ns/end_ns (absolute)
    intervals:
      - {start: 12.0, end: 18.5, label: cable}
      - {start: 40.2, end: 44.0, label: darkness}

Frames inside an interval take its label, all others are ``normal``.
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

from pathlib import Path

import yaml

from ..errors import AnomalyPerceptionError

FRAME_LABELS_SUFFIX = '/labels/frame'
INSTANCES_SUFFIX = '/labels/instances'
SEMANTIC_SUFFIX = '/labels/semantic'
CAMERA_INFO_SUFFIX = '/camera/camera_info'


def infer_namespace(image_topic):
    """``/robomaster/camera/image_color`` -> ``robomaster``; ``/image`` -> ``''``."""
    parts = [p for p in image_topic.split('/') if p]
    return parts[0] if len(parts) >= 3 else ''


def label_topic(image_topic, suffix):
    """Return the topic of ``suffix`` in the namespace of ``image_topic`` (``/<ns><suffix>``)."""
    ns = infer_namespace(image_topic)
    return f'/{ns}{suffix}' if ns else suffix


class LabelsError(AnomalyPerceptionError, ValueError):
    """A labels file is unreadable or does not fit the bag."""


def read_intervals(path, first_ns, last_ns):
    """Read an intervals file; return ``[(start_ns, end_ns, label)]`` checked against the bag.

    Raises:
        LabelsError: unreadable file, bad entries, or an interval outside the
            bag's time span (``first_ns``-``last_ns``); the message says which.

    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise LabelsError(f'Cannot read labels {str(path)!r}: {err.strerror}.') from None
    except yaml.YAMLError as err:
        raise LabelsError(f'{str(path)!r} is not valid YAML: {err}') from None
    entries = data.get('intervals') if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise LabelsError(f'{str(path)!r} needs a list under "intervals".')
    span = (last_ns - first_ns) / 1e9
    out = []
    for i, entry in enumerate(entries):
        where = f'{str(path)!r} interval {i + 1}'
        if not isinstance(entry, dict) or 'label' not in entry:
            raise LabelsError(f'{where}: expected a mapping with start, end and label.')
        try:
            if 'start_ns' in entry:
                start, end = int(entry['start_ns']), int(entry['end_ns'])
            else:
                start = first_ns + int(round(float(entry['start']) * 1e9))
                end = first_ns + int(round(float(entry['end']) * 1e9))
        except (KeyError, TypeError, ValueError):
            raise LabelsError(f'{where}: start and end must be numbers (seconds from the '
                              'first image) or start_ns/end_ns.') from None
        if end <= start:
            raise LabelsError(f'{where}: end must be after start.')
        if start < first_ns - 1e6 or end > last_ns + 1e6:
            raise LabelsError(
                f'{where} ({(start - first_ns) / 1e9:.2f}-{(end - first_ns) / 1e9:.2f} s) falls '
                f'outside the bag, which spans 0-{span:.2f} s from its first image.')
        out.append((start, end, str(entry['label'])))
    return out


def labels_from_intervals(stamps_ns, intervals):
    """Per-frame labels from ``[(start_ns, end_ns, label)]`` ('normal' outside)."""
    labels = ['normal'] * len(stamps_ns)
    for i, stamp in enumerate(stamps_ns):
        for start, end, label in intervals:
            if start <= stamp <= end:
                labels[i] = label
                break
    return labels
