"""``evaluate``: a model on a labelled dataset split; ``evaluate bags``: a fleet of bags."""

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
    add_evaluate_bags(esub)


def add_evaluate_bags(esub):
    from ..branches.registry import branch_names
    b = esub.add_parser(
        'bags', help='replay many bags on Ray and pool their metrics (a fleet)',
        description='Replay every bag through the same pipelines as `replay` (one Ray task per '
                    'bag, --workers at a time, on a local Ray instance or the cluster at '
                    '--address), then pool them into OUT/fleet_report.json and OUT/fleet.png: '
                    'a row per bag; frame AUROC / AP / FPR95 over every labelled frame, pixel '
                    'AuPRC over every labelled pixel, events, false alarms per hour and flag '
                    'on-time over all normal driving. Resumable (a bag replayed before is not '
                    'replayed again); a bag that fails or has no labels is reported with its '
                    'cause and the others finish (exit code 1). See docs/REPLAY.md.')
    b.add_argument('bags', nargs='*', metavar='BAG', help='bag directories or files')
    b.add_argument('--list', metavar='FILE', help='a file of bags, one per line (# comments)')
    b.add_argument('--out', required=True, help='fleet directory (created; reused to resume)')
    b.add_argument('--pipelines', default='frame',
                   help=f'comma-separated branches, of {", ".join(branch_names())} (default '
                        'frame)')
    b.add_argument('--model', action='append', default=[], metavar='[BRANCH=]DIR',
                   help='model directory, as for replay (repeatable)')
    b.add_argument('--params', action='append', default=[], metavar='[BRANCH=]FILE',
                   help='node parameter file, as for replay (repeatable)')
    b.add_argument('--place', metavar='PLACE', help='a place directory, as for replay')
    b.add_argument('--labels', help='one intervals file for every bag (default: each '
                                    "bag's label topic)")
    b.add_argument('--topic', help='image topic (default: the only camera topic of each bag)')
    b.add_argument('--backend', default='auto', help='torch, onnxruntime, tensorrt, auto')
    b.add_argument('--batch', type=positive_int, default=32)
    b.add_argument('--workers', type=positive_int, default=2,
                   help='bags replayed at once (one CPU each; default 2)')
    b.add_argument('--address', help='a Ray cluster (ray://HOST:10001 or auto); default: a '
                                     'local Ray instance of --workers CPUs')
    b.add_argument('--no-progress', action='store_true')
    b.set_defaults(run=_run_evaluate_bags)


def _run_evaluate_bags(args):
    from ..errors import UsageError
    from ..fleet.evaluate import evaluate_bags
    from ..fleet.evaluate import format_fleet
    from ..fleet.evaluate import read_bag_list
    from ..fleet.job import ReplayJob
    bags = list(args.bags) + (read_bag_list(args.list) if args.list else [])
    if not bags:
        raise UsageError('evaluate bags: give bags, or --list FILE.')
    job = ReplayJob(pipelines=args.pipelines, models=tuple(args.model),
                    params=tuple(args.params), place=args.place, backend=args.backend,
                    topic=args.topic, labels=args.labels, batch=args.batch)
    fleet = evaluate_bags(bags, args.out, job, workers=args.workers, address=args.address,
                          show_progress=not args.no_progress)
    print('\n'.join(format_fleet(fleet, args.out)))
    return 1 if fleet['failed'] else 0


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
