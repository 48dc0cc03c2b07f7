"""``inspect``, ``replay`` and ``tag``: the commands that read bags.

What is in a bag, a bag through the pipelines, and intervals to label
from a replay.
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

from .common import positive_int
from .common import PROG


def add_inspect(sub):
    p = sub.add_parser(
        'inspect', help='list the topics of a ROS 2 bag',
        description='List the topics of a ROS 2 bag (sqlite3 or mcap) with their types, '
                    'message counts and rates, and describe its image topics.')
    p.add_argument('bag', help='bag directory, or a single .mcap / .db3 file')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')
    p.set_defaults(run=_run_inspect)


def _run_inspect(args):
    from ..io.bags import BagReader
    from ..io.bags import IMAGE_TYPES

    with BagReader(args.bag) as bag:
        seconds = bag.duration_ns / 1e9 if bag.message_count else 0.0
        topics = []
        for t in bag.topics.values():
            topics.append({
                'name': t.name, 'type': t.msgtype, 'count': t.count,
                # Mean rate over the whole bag; exact for a topic that spans it.
                'rate_hz': round((t.count - 1) / seconds, 2) if seconds > 0 and t.count > 1
                else None,
            })
        images = {}
        for name in bag.image_topics:
            for topic, _, msg in bag.messages([name]):
                fields = {'frame_id': msg.header.frame_id}
                if bag.topics[topic].msgtype == IMAGE_TYPES[0]:
                    fields.update(width=int(msg.width), height=int(msg.height),
                                  encoding=msg.encoding)
                else:
                    fields.update(format=msg.format)
                images[name] = fields
                break
        info = {
            'path': str(bag.path), 'storage': bag.storage, 'distro': bag.distro,
            'messages': bag.message_count, 'duration_s': round(seconds, 3),
            'start_ns': bag.start_ns if bag.message_count else None,
            'topics': topics, 'image_topics': images,
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}  ({info['storage']}, {info['messages']} messages, "
          f"{info['duration_s']:.3f} s)")
    width = max([len(t['name']) for t in topics] + [5])
    for t in topics:
        rate = f"{t['rate_hz']:8.2f} Hz" if t['rate_hz'] is not None else '       - Hz'
        print(f"  {t['name']:<{width}}  {t['count']:>7}  {rate}  {t['type']}")
    for name, fields in images.items():
        desc = ', '.join(f'{k}={v}' for k, v in fields.items())
        print(f'  image topic {name}: {desc}')
    return 0


def add_replay(sub):
    p = sub.add_parser(
        'replay', help='run a recorded ROS 2 bag through the pipelines, with metrics',
        description="Run every frame of the bag's image topic through the pipeline the node "
                    "runs; write OUT/outputs (a bag with the node's topics, stamped like the "
                    "input) and, with labels (the bag's label topic or --labels), "
                    'report.json, roc.png, pr.png, timeline.png and top_frames.png. '
                    'See docs/REPLAY.md.')
    p.add_argument('bag', help='bag directory, or a single .mcap / .db3 file')
    p.add_argument('--out', required=True, help='output directory (must not exist)')
    p.add_argument('--topic', help='image topic (default: the only camera image topic)')
    from ..branches.registry import branch_names
    p.add_argument('--pipelines', default='frame',
                   help='comma-separated branches to run on the same frames, of '
                        f'{", ".join(branch_names())} (default frame; '
                        'frame,pixel,instance runs all three: instances on keyframes; '
                        'pixel,synthesis adds the DDPM edits on keyframes, offline)')
    p.add_argument('--model', action='append', default=[], metavar='[BRANCH=]DIR',
                   help="model directory (default: the branch's shipped one; instance: "
                        'components, no promptable model); with several pipelines '
                        'BRANCH=DIR, repeatable')
    p.add_argument('--place', metavar='PLACE',
                   help='a place directory (train place): run its frame and pixel models, '
                        'plus any other --pipelines (instance: its tuned promptable model if it '
                        'has one), and the hazard monitor that fuses them into '
                        '<ns>/hazard_monitor/hazard')
    p.add_argument('--backend', default='auto', help='torch, onnxruntime, tensorrt, auto')
    p.add_argument('--labels', help="intervals file (YAML) instead of the bag's labels")
    p.add_argument('--params', action='append', default=[], metavar='[BRANCH=]FILE',
                   help="the branch node's parameter file (e.g. config/frame_anomaly.yaml); "
                        'with several pipelines BRANCH=FILE, repeatable')
    p.add_argument('--namespace', help='robot namespace of the output topics (default: from '
                                       'the image topic)')
    p.add_argument('--batch', type=positive_int, default=32)
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--no-progress', action='store_true')
    p.set_defaults(run=_run_replay)


def _run_replay(args):
    from ..fleet.job import ReplayJob
    job = ReplayJob(pipelines=args.pipelines, models=tuple(args.model),
                    params=tuple(args.params), place=args.place, backend=args.backend,
                    topic=args.topic, labels=args.labels, namespace=args.namespace,
                    batch=args.batch)
    report = job.run(args.bag, args.out, overwrite=args.overwrite,
                     show_progress=not args.no_progress)
    print(format_replay(report, args.out))
    return 0


def format_replay(report, out):
    """Summary lines of a replay report: what every branch shares, then each branch's own."""
    from ..branches.registry import get_branch
    parts = report['branches']
    backends = {name: part['backend']['backend'] for name, part in parts.items()}
    backend = (f'backend {next(iter(backends.values()))}' if len(set(backends.values())) == 1
               else 'backends ' + ', '.join(f'{n} {b}' for n, b in backends.items()))
    lines = [f"{report['frames_scored']} frames of {report['image_topic']} scored "
             f"({report['frames_per_s']:.0f} frames/s, {report['realtime_factor']:.1f}x real "
             f"time, {backend}); {report['malformed']['count']} malformed skipped"]
    if 'labels' in report:
        lines.append(f"labels: {report['labels']}")
    topics = []
    for name, part in parts.items():
        lines += get_branch(name).recorder.summary(report, part, out)
        topics += [t for t in part['output_topics'].values() if t not in topics]
    if 'monitor' in report:
        mon = report['monitor']
        line = (f"hazard monitor ({mon['rule']} of {', '.join(mon['branches'])}, place "
                f"{mon['place']}): {len(mon['alarm_episodes'])} alarm(s)")
        if 'events' in mon:
            ev = mon['events']
            line += (f"; {ev['detected']}/{ev['n_events']} anomalies detected, "
                     f"{ev['false_alarms']} false alarm(s), "
                     f"{ev['false_alarms_per_hour']:.0f} per hour of normal driving; flag on "
                     f"for {100 * ev['alarm_time_fraction']:.1f}% of normal driving")
        lines.append(line)
        topics += list(mon['output_topics'].values())
    lines.append(f'output bag: {out}/outputs  ({", ".join(topics)})')
    return '\n'.join(lines)


def add_tag(sub):
    p = sub.add_parser(
        'tag', help="an intervals file from a replay's alarms, to confirm and retrain on",
        description='Write an intervals file (the format `replay --labels` and `train frame '
                    '--exposed BAG:FILE` read) with one interval per alarm a replay of BAG '
                    "raised, labelled 'flagged'. Edit it: name each confirmed hazard, mark "
                    'false alarms normal, delete or move bounds; then retrain with '
                    '`train frame --bag NORMAL_BAG --exposed BAG:FILE`.')
    p.add_argument('bag', help='the bag that was replayed')
    p.add_argument('--from-report', required=True, metavar='REPLAY_DIR',
                   help="replay's output directory (or its report.json)")
    p.add_argument('--out', required=True, help='intervals file to write (YAML)')
    p.add_argument('--topic', help="image topic (default: the replay's)")
    p.add_argument('--label', default='flagged', help="label of every interval ('flagged')")
    p.add_argument('--overwrite', action='store_true')
    p.set_defaults(run=_run_tag)


def _run_tag(args):
    from pathlib import Path

    from ..data.bag_frames import image_stamps
    from ..errors import AnomalyPerceptionError
    from ..replay.tagging import alarm_intervals
    from ..replay.tagging import read_replay_report
    from ..replay.tagging import write_intervals
    if Path(args.out).exists() and not args.overwrite:
        raise AnomalyPerceptionError(f'{args.out!r} exists; pass --overwrite to replace it.')
    report, report_path = read_replay_report(args.from_report)
    topic, stamps = image_stamps(args.bag, args.topic or report.get('image_topic'))
    intervals = alarm_intervals(report, stamps, args.label)
    header = [f'Alarms of the frame model ({Path(str(report.get("model"))).name}) in a replay of '
              f'{Path(args.bag).name} ({topic}), from {report_path.name}.',
              "Seconds from the bag's first image. For each interval: set the label to what it "
              'is (cable, water, ...),',
              'or `normal` for a false alarm; move its bounds or delete it. Then retrain:',
              f'  {PROG} train frame --bag NORMAL_BAG --exposed {args.bag}:{args.out} --out '
              'MODEL_DIR']
    write_intervals(args.out, intervals, header)
    print(f'{len(intervals)} interval(s) written to {args.out}; edit them, then retrain with '
          f'--exposed {args.bag}:{args.out}')
    return 0
