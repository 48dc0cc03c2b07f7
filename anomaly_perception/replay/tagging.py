"""``tag``: an intervals file from a replay's alarms, for an operator to confirm.

The loop "the robot raised an alarm, I confirmed it, retrain" is::

    anomaly-perception replay PATROL_BAG --out out/replay
    anomaly-perception tag PATROL_BAG --from-report out/replay --out tags.yaml
    # edit tags.yaml: name each confirmed hazard, mark false alarms `normal`
    anomaly-perception train frame --bag NORMAL_BAG --exposed PATROL_BAG:tags.yaml --out m

Each alarm episode becomes one interval, widened by half a frame period on
both sides and written in milliseconds from the bag's first image, so that
exactly the frames the flag was on for fall inside it (``replay --labels``
and ``--exposed`` read it back to those frames).
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

import json
import math
from pathlib import Path

import numpy as np

from ..io.files import atomic_write_text
from ..io.labels import LabelsError

#: Label written for every alarm; the operator replaces it with what it is.
FLAGGED = 'flagged'


def read_replay_report(replay_dir):
    """Load ``replay_dir/report.json`` (or a report file) with its alarm episodes.

    Raises:
        LabelsError: no report, unreadable JSON, or a report without alarm
            episodes (written by an older version).

    """
    path = Path(replay_dir)
    if path.is_dir():
        path = path / 'report.json'
    try:
        report = json.loads(path.read_text())
    except OSError as err:
        raise LabelsError(f'Cannot read the replay report {str(path)!r}: {err.strerror}.') \
            from None
    except ValueError as err:
        raise LabelsError(f'{str(path)!r} is not valid JSON: {err}') from None
    frame = (report.get('branches') or {}).get('frame') if isinstance(report, dict) else None
    if not isinstance(frame, dict) or 'alarm_episodes' not in frame \
            or 'first_stamp_ns' not in report:
        raise LabelsError(f'{str(path)!r} has no alarm episodes of the frame branch: replay '
                          'the bag again (with the frame pipeline) with this version of '
                          'anomaly-perception.')
    return report, path


def alarm_intervals(report, stamps_ns, label=FLAGGED):
    """Intervals ``[(start_s, end_s, label, note)]`` around the report's alarm episodes.

    ``stamps_ns`` are the bag's image stamps (to check that the report is of
    this bag and to measure the frame period).

    Raises:
        LabelsError: the report is of another bag (first stamps differ) or an
            episode falls outside the bag.

    """
    stamps = np.sort(np.asarray(stamps_ns, np.int64))
    if not stamps.size:
        raise LabelsError('The bag has no image frames.')
    first, last = int(stamps[0]), int(stamps[-1])
    if int(report['first_stamp_ns']) != first:
        raise LabelsError(
            f"The replay report is of another bag ({report.get('bag')!r}): its first frame is "
            f"stamped {report['first_stamp_ns']}, this bag's {first}.")
    period = float(np.median(np.diff(stamps))) if stamps.size > 1 else 1e8
    pad = period / 2
    span_ms = (last - first) / 1e6
    out = []
    for ep in report['branches']['frame']['alarm_episodes']:
        start, end = int(ep['start_ns']), int(ep['end_ns'])
        if start < first or end > last:
            raise LabelsError(f"Alarm at {ep['start_s']:.2f}-{ep['end_s']:.2f} s falls outside "
                              'the bag.')
        start_ms = max(0.0, math.floor((start - first - pad) / 1e6 + 1e-9) + 1)
        end_ms = min(span_ms, math.ceil((end - first + pad) / 1e6 - 1e-9) - 1)
        note = f"peak probability {ep['peak_probability']:.4f}, {ep['frames']} frames"
        out.append((start_ms / 1e3, end_ms / 1e3, label, note))
    return out


def write_intervals(path, intervals, header_lines):
    """Write ``intervals`` (from :func:`alarm_intervals`) as the YAML ``replay --labels`` reads."""
    lines = [f'# {line}' if line else '#' for line in header_lines]
    lines.append('intervals:' if intervals else 'intervals: []')
    for start, end, label, note in intervals:
        lines.append(f'  - {{start: {start:.3f}, end: {end:.3f}, label: {label}}}  # {note}')
    atomic_write_text(Path(path), '\n'.join(lines) + '\n')
