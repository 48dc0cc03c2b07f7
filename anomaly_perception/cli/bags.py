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

"""``inspect``, ``replay`` and ``tag``: the commands that read bags.

What is in a bag, a bag through the pipelines, and intervals to label
from a replay.
"""

import json

from .common import positive_int
from .common import PROG
from .common import UsageError


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
    p.add_argument('--pipelines', default='frame',
                   help='comma-separated branches to run on the same frames (default frame; '
                        'frame,pixel,instance runs all three: instances on keyframes; '
                        'pixel,synthesis adds the DDPM edits on keyframes, offline)')
    p.add_argument('--model', action='append', default=[], metavar='[BRANCH=]DIR',
                   help="model directory (default: the branch's shipped one); with several "
                        'pipelines BRANCH=DIR, repeatable')
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


def _per_branch(values, names, option):
    """``{branch: value}`` of ``[BRANCH=]VALUE`` options (a bare value: the only pipeline)."""
    out = {}
    for item in values:
        name, sep, value = item.partition('=')
        if not (sep and name in names):
            if len(names) != 1:
                raise UsageError(f'{option} {item!r}: with --pipelines {",".join(names)} give '
                                 'BRANCH=VALUE for one of them.')
            name, value = names[0], item
        if name in out:
            raise UsageError(f'{option}: {name} given twice.')
        out[name] = value
    return out


def _run_replay(args):
    from ..config import load_config
    from ..evaluation.replay import replay
    from ..perception.branches import get_branch
    names = [n.strip() for n in args.pipelines.split(',') if n.strip()]
    branches = {n: get_branch(n) for n in names}
    if not names or len(branches) != len(names):
        raise UsageError(f'--pipelines {args.pipelines!r}: name each branch once.')
    model_dirs = _per_branch(args.model, names, '--model')
    configs = {n: load_config(branches[n].config_class, path)
               for n, path in _per_branch(args.params, names, '--params').items()}
    report = replay(args.bag, args.out, topic=args.topic, model_dirs=model_dirs,
                    backend=args.backend, labels=args.labels, namespace=args.namespace,
                    configs=configs, batch=args.batch, overwrite=args.overwrite,
                    show_progress=not args.no_progress, pipelines=names)
    print(format_replay(report, args.out))
    return 0


def format_replay(report, out):
    """Summary lines of a replay report."""
    lines = [f"{report['frames_scored']} frames of {report['image_topic']} scored "
             f"({report['frames_per_s']:.0f} frames/s, {report['realtime_factor']:.1f}x real "
             f"time, backend {report['backend']['backend']}); "
             f"{report['malformed']['count']} malformed skipped"]
    if 'auroc' in report:
        ev = report['events']
        lines.append(f"labels ({report['labels']}): {report['n_normal']} normal, "
                     f"{report['n_anomalous']} anomalous frames")
        lines.append(f"frame AUROC {report['auroc']:.3f}  AP {report['ap']:.3f}  "
                     f"FPR95 {report['fpr95']:.3f}")
        lines.append(f"hazard flag: {ev['detected']}/{ev['n_events']} anomalies detected, "
                     f"median delay {ev['detection_delay_s']['median']:.2f} s; "
                     f"{ev['false_alarms']} false alarm(s), "
                     f"{ev['false_alarms_per_hour']:.0f} per hour of normal driving; flag on "
                     f"for {100 * ev['alarm_time_fraction']:.1f}% of normal driving")
        lines.append(f'report and plots: {out}/report.json, roc.png, pr.png, timeline.png, '
                     'top_frames.png')
    if 'hazard' in report:
        n_alarms = len(report.get('alarm_episodes', []))
        lines.append(f'{n_alarms} alarm(s) raised (flag on at probability '
                     f"{report['hazard']['on_probability']:.10g}); to confirm and retrain: "
                     f"{PROG} tag {report['bag']} --from-report {out} --out tags.yaml")
    pipelines = report.get('pipelines', ['frame'])
    pixel = report if pipelines[0] == 'pixel' else report.get('pixel')
    if pixel is not None:
        lines.append(f"pixel branch: {pixel['pipeline_frames_per_s']:.1f} frames/s through its "
                     'pipeline')
        if 'pixels' in pixel:
            px = pixel['pixels']
            lines.append(f"pixels ({px['frames']} labelled frames): AuPRC {px['auprc']:.3f}  "
                         f"FPR95 {px['fpr95']:.3f}  F1* {px['f1_star']:.3f}; "
                         f"{px['events_located']}/{px['n_local_events']} local anomalies "
                         'located by the mask')
        if 'frame' in pixel:
            ev = pixel['events']
            lines.append(f"pixel branch frame score: AUROC {pixel['frame']['auroc']:.3f}; "
                         f"flag {ev['detected']}/{ev['n_events']} anomalies, "
                         f"{ev['false_alarms_per_hour']:.0f} false alarms per hour")
    inst = report if pipelines[0] == 'instance' else report.get('instance')
    if inst is not None:
        lat = inst['keyframe_latency_ms']
        reasons = ', '.join(f'{k} {v}' for k, v in sorted(inst['keyframe_reasons'].items()))
        lines.append(f"instance branch: {inst['keyframes']} keyframes ({reasons}), "
                     f"{inst['instances_per_keyframe']:.1f} instances per keyframe, "
                     f"{inst['hazards_placed']} placed on the floor; UGainS "
                     f"{lat['median']:.0f} ms per keyframe (median); map from "
                     f"{inst['maps_from']}")
        if 'instances' in inst:
            m = inst['instances']
            lines.append(f"instances ({m['keyframes']} labelled keyframes): iAP {m['iap']:.3f}  "
                         f"iAP50 {m['iap50']:.3f}; pixel AP {m['pixel_ap_input']:.3f} -> "
                         f"{m['pixel_ap_refined']:.3f} after the ensemble; "
                         f"{m['instances_per_normal_keyframe']:.1f} instances per normal "
                         'keyframe')
        if 'contact_sheet' in inst:
            lines.append(f"instance contact sheet: {out}/{inst['contact_sheet']}")
    syn = report if pipelines[0] == 'synthesis' else report.get('synthesis')
    if syn is not None:
        sec = syn['keyframe_seconds']
        lines.append(f"synthesis branch: {syn['keyframes']} keyframes (one per "
                     f"{syn['keyframe_period_s']:g} s), {sec['median']:.1f} s per keyframe "
                     f"(median; {syn['sampler']}; {syn['features']} features, "
                     f"{syn['refine']} segments)")
        if 'pixels' in syn:
            m = syn['pixels']
            text = (f"synthesis pixels ({m['keyframes']} labelled keyframes): AuPRC "
                    f"{m['auprc']:.3f}  FPR95 {m['fpr95']:.3f}")
            if 'pixel_branch' in m:
                text += ('; the pixel branch on the same pixels: AuPRC '
                         f"{m['pixel_branch']['auprc']:.3f}  FPR95 "
                         f"{m['pixel_branch']['fpr95']:.3f}")
            lines.append(text)
        if 'contact_sheet' in syn:
            lines.append(f"synthesis contact sheet: {out}/{syn['contact_sheet']}")
    topics = list(report['output_topics'].values())
    for name in pipelines[1:]:
        topics += [t for t in report[name]['output_topics'].values() if t not in topics]
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
    from ..evaluation.tagging import alarm_intervals
    from ..evaluation.tagging import read_replay_report
    from ..evaluation.tagging import write_intervals
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
