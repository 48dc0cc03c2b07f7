"""``evaluate``: a frame or pixel model on a labelled dataset split, with plots."""

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

from .common import aspect
from .common import Parser
from .common import positive_int
from .common import resolve_branch


def add_evaluate(sub):
    p = sub.add_parser('evaluate', help='evaluate a model on a labelled dataset',
                       description='Evaluate models against labels, with plots.')
    esub = p.add_subparsers(dest='evaluate_command', metavar='SUBCOMMAND', required=True,
                            parser_class=Parser)
    f = esub.add_parser('frame', help='a frame model on a dataset split',
                        description='AUROC, AP, FPR95 overall and per anomaly type, ROC and PR '
                                    'curves and a score histogram (report.json, roc.png, '
                                    'pr.png, histogram.png in --out).')
    f.add_argument('--model', required=True)
    f.add_argument('--data', required=True)
    f.add_argument('--out', required=True, help='report directory')
    f.add_argument('--split', default='test_set')
    f.set_defaults(run=_run_evaluate_frame)
    px = esub.add_parser('pixel', help='a pixel model on a dataset split',
                         description='The deployed pixel pipeline on every frame of a split '
                                     '(normal and local anomaly types) at full resolution: '
                                     'mIoU, pixel AuPRC / FPR95 / AUROC overall and per type, '
                                     'F1* / sIoU / PPV of the published mask (report.json, '
                                     'pr.png, contact_sheet.jpg in --out).')
    px.add_argument('--model', default=None, help='pixel model directory (default: the '
                                                  'shipped models/pixel_erfnet)')
    px.add_argument('--data', required=True)
    px.add_argument('--out', required=True, help='report directory')
    px.add_argument('--split', default='test_set')
    px.add_argument('--backend', default='torch')
    px.add_argument('--limit', type=positive_int, help='only the first N frames')
    px.add_argument('--region-aspect', type=aspect, metavar='W:H',
                    help='score only the centred crop of this aspect (e.g. 16:9), to compare '
                         'models whose crops differ on the same pixels')
    px.set_defaults(run=_run_evaluate_pixel)


def _run_evaluate_pixel(args):
    from ..branches.pixel.evaluate import evaluate_pixel
    from ..branches.pixel.evaluate import format_pixel_report
    _, model = resolve_branch('pixel', args.model)
    report = evaluate_pixel(model, args.data, args.out, args.split, args.backend, args.limit,
                            region_aspect=args.region_aspect)
    print(format_pixel_report(report))
    print(f'written {args.out}/report.json, pr.png, contact_sheet.jpg')
    return 0


def _run_evaluate_frame(args):
    from ..branches.frame.evaluate import evaluate_frame
    from ..branches.frame.evaluate import format_report
    report = evaluate_frame(args.model, args.data, args.out, args.split)
    print(format_report(report))
    print(f'written {args.out}/report.json, roc.png, pr.png, histogram.png')
    return 0
