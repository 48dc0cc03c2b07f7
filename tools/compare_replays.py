"""Compare two replay output directories: every reported value and every message.

    python tools/compare_replays.py BEFORE_DIR AFTER_DIR

For checking that a change of code leaves ``anomaly-perception replay``'s
results as they were. ``report.json``: every value is compared exactly
(NaN equals NaN), leaving out wall time, speeds, latencies, backends and
paths; a report written before every branch moved under
``report["branches"]`` (the first pipeline's results at the top level, the
others under their names) is read as if it had been written after. The
output bags: every message of every topic but ``/diagnostics`` (rates and
latencies), field by field, with its log time. Exits 1 when anything
differs.
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

import argparse
import json
from pathlib import Path
import sys

from anomaly_perception.io.bags import BagReader
import numpy as np

SHARED = {'bag', 'image_topic', 'frames_in_topic', 'frames_scored', 'malformed', 'encodings',
          'duration_s', 'wall_s', 'frames_per_s', 'realtime_factor', 'first_stamp_ns',
          'pipelines', 'labels'}
NOT_COMPARED = {'wall_s', 'frames_per_s', 'realtime_factor', 'pipeline_s',
                'pipeline_frames_per_s', 'keyframe_latency_ms', 'keyframe_seconds', 'backend',
                'bag', 'model', 'contact_sheet'}


def read_report(path):
    """Load a replay report; one of the earlier shape is moved into ``branches``."""
    report = json.loads(Path(path).read_text())
    if 'branches' in report:
        return report
    names = report['pipelines']
    out = {k: v for k, v in report.items() if k in SHARED}
    out['branches'] = {names[0]: {k: v for k, v in report.items()
                                  if k not in SHARED and k not in names[1:]},
                       **{name: report[name] for name in names[1:]}}
    return out


def differences(a, b, path=''):
    """Yield ``(path, a, b)`` for every compared value that differs."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in NOT_COMPARED:
                continue
            if key not in a or key not in b:
                yield f'{path}/{key}', a.get(key, '<missing>'), b.get(key, '<missing>')
            else:
                yield from differences(a[key], b[key], f'{path}/{key}')
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, f'{path}[{i}]')
    elif a != b and not (isinstance(a, float) and isinstance(b, float) and a != a and b != b):
        yield path, a, b


def count(value):
    """Return how many values of ``value`` are compared."""
    if isinstance(value, dict):
        return sum(count(v) for k, v in value.items() if k not in NOT_COMPARED)
    if isinstance(value, list):
        return sum(count(v) for v in value)
    return 1


def _plain(msg):
    if hasattr(msg, '__dataclass_fields__'):
        return {k: _plain(getattr(msg, k)) for k in msg.__dataclass_fields__}
    if isinstance(msg, np.ndarray):
        return (msg.dtype.str, msg.shape, msg.tobytes())
    if isinstance(msg, (list, tuple)):
        return [_plain(v) for v in msg]
    return msg


def compare_bags(a, b):
    """Return ``(lines, topics that differ)`` for the output bags ``a`` and ``b``."""
    lines, differ = [], 0
    with BagReader(a) as ra, BagReader(b) as rb:
        topics = sorted((set(ra.topics) | set(rb.topics)) - {'/diagnostics'})
        for topic in topics:
            if topic not in ra.topics or topic not in rb.topics:
                where = 'the second' if topic in rb.topics else 'the first'
                lines.append(f'{topic}: only in {where}')
                differ += 1
                continue
            ma = [(log, _plain(m)) for _, log, m in ra.messages([topic])]
            mb = [(log, _plain(m)) for _, log, m in rb.messages([topic])]
            same = ma == mb
            differ += not same
            lines.append(f'{topic}: {len(ma)} and {len(mb)} messages, '
                         f'{"identical" if same else "DIFFERENT"}')
    return lines, differ


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('first', type=Path)
    parser.add_argument('second', type=Path)
    args = parser.parse_args(argv)
    a, b = read_report(args.first / 'report.json'), read_report(args.second / 'report.json')
    diffs = list(differences(a, b))
    print(f'report.json: {count(a)} values compared, {len(diffs)} differ')
    for path, x, y in diffs[:50]:
        print(f'  {path}: {x!r} -> {y!r}')
    lines, differ = compare_bags(args.first / 'outputs', args.second / 'outputs')
    print('\n'.join(lines))
    print(f'outputs: {len(lines)} topics compared, {differ} differ')
    return 1 if diffs or differ else 0


if __name__ == '__main__':
    sys.exit(main())
