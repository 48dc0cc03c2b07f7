"""``score --branch frame``: one row per image, the raw score, its probability and the flag."""

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

import csv
import io

from .detector import FrameAnomalyDetector
from ...io.files import atomic_write_text
from ...io.images import read_image_file


def write_scores(model_dir, files, args):
    """Score ``files`` with the frame model in ``model_dir``; print a table (and ``--csv``).

    ``args``: the ``score`` command's options (``backend``, ``target_fpr``,
    ``csv``). Returns the exit code.
    """
    detector = FrameAnomalyDetector.from_model_dir(model_dir, args.backend,
                                                   target_fpr=args.target_fpr)
    rows = []
    for f in files:
        s = detector.score(read_image_file(f), channel_order='bgr')
        rows.append({'path': str(f), 'raw_score': float(s.raw[0]),
                     'probability': float(s.probability[0]), 'flag': int(s.flag[0])})
    width = max(len(r['path']) for r in rows)
    print(f"{'image':<{width}}  {'raw (nats)':>10}  {'prob':>6}  flag   "
          f'(threshold {detector.threshold:.2f} nats, model {model_dir}, backend '
          f'{detector.backend.name})')
    for r in rows:
        print(f"{r['path']:<{width}}  {r['raw_score']:10.2f}  {r['probability']:6.3f}  "
              f"{'HAZARD' if r['flag'] else '-'}")
    if args.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator='\n')
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(args.csv, buf.getvalue())
        print(f'written {args.csv}')
    return 0
