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

"""The ``anomaly-perception`` command line.

Each command lives in its own function pair: ``_add_<name>(subparsers)``
declares its arguments, ``_run_<name>(args)`` does the work by calling the
package's library code. Errors the user can fix (bad file, bad argument)
end the program with one line on stderr and a non-zero exit code: 2 for
usage errors, 1 for everything else.
"""

import argparse
import json
import sys

from . import __version__
from .errors import AnomalyPerceptionError

PROG = 'anomaly-perception'


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line (usage stays behind --help)."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see {self.prog} --help)\n')


# --- inspect --------------------------------------------------------------------------------


def _add_inspect(sub):
    p = sub.add_parser(
        'inspect', help='list the topics of a ROS 2 bag',
        description='List the topics of a ROS 2 bag (sqlite3 or mcap) with their types, '
                    'message counts and rates, and describe its image topics.')
    p.add_argument('bag', help='bag directory, or a single .mcap / .db3 file')
    p.add_argument('--json', action='store_true', help='print JSON instead of a table')
    p.set_defaults(run=_run_inspect)


def _run_inspect(args):
    from .io.bags import BagReader
    from .io.bags import IMAGE_TYPES

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


# --- synth ----------------------------------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected an integer, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {value}')
    return value


def _resolution(text):
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected WIDTHxHEIGHT such as 640x360, got {text!r}') from None
    return w, h


def _add_synth(sub):
    p = sub.add_parser(
        'synth', help='generate the synthetic patrol world (datasets, bags)',
        description="The synthetic patrol world: labelled frames of a small robot's camera "
                    'in corridors, a factory hall and tunnels, with 22 anomaly types.')
    ssub = p.add_subparsers(dest='synth_command', metavar='SUBCOMMAND', required=True,
                            parser_class=_Parser)

    d = ssub.add_parser(
        'dataset', help='write a dataset in the Hazards&Robots layout',
        description='Write train/validation/test/outliers image folders, '
                    'metadata/frames_labels.csv, masks, instances, semantic maps, '
                    'manifest.json and contact_sheet.png.')
    d.add_argument('--out', required=True, help='output directory (must not exist)')
    d.add_argument('--preset', default='small', help='tiny, small or medium (default small)')
    d.add_argument('--frames', type=_positive_int, help="total frames (default: the preset's)")
    d.add_argument('--image-size', type=_positive_int,
                   help='square image size in pixels (default: 512; tiny: 96)')
    d.add_argument('--seed', type=int, default=0, help='dataset seed (default 0)')
    d.add_argument('--types', help='comma-separated anomaly types (default: all)')
    d.add_argument('--workers', type=_positive_int, default=1,
                   help='processes rendering in parallel (default 1)')
    d.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    d.add_argument('--no-progress', action='store_true', help='no progress bar')
    d.set_defaults(run=_run_synth_dataset)

    b = ssub.add_parser(
        'bag', help='write a continuous patrol as a ROS 2 bag',
        description='Write a patrol as the Robomaster driver publishes it (bgr8 Image and '
                    'CameraInfo), with label topics: frame label (vision_msgs/'
                    'Classification), instance ids (16UC1) and semantic classes (mono8).')
    b.add_argument('--out', required=True, help='output bag directory (must not exist)')
    b.add_argument('--seconds', type=float, default=60.0, help='duration (default 60)')
    b.add_argument('--fps', type=float, default=30.0, help='frame rate (default 30)')
    b.add_argument('--resolution', type=_resolution, default=(640, 360),
                   help='WIDTHxHEIGHT (default 640x360; the driver also offers 960x540, '
                        '1280x720)')
    b.add_argument('--anomaly-rate', type=float, default=0.3,
                   help='about this fraction of frames shows an anomaly (default 0.3)')
    b.add_argument('--namespace', default='robomaster', help='robot namespace')
    b.add_argument('--storage', default='mcap', choices=['mcap', 'sqlite3'])
    b.add_argument('--environment', default='corridor',
                   choices=['corridor', 'factory', 'tunnel'])
    b.add_argument('--types', help='comma-separated anomaly types (default: all that occur '
                                   'in the environment)')
    b.add_argument('--distro', default='humble', choices=['humble', 'jazzy'])
    b.add_argument('--seed', type=int, default=0)
    b.add_argument('--workers', type=_positive_int, default=1)
    b.add_argument('--overwrite', action='store_true')
    b.add_argument('--no-progress', action='store_true')
    b.set_defaults(run=_run_synth_bag)

    st = ssub.add_parser(
        'stats', help="how well trivial baselines separate a dataset's anomalies",
        description='Per-type AUROC of two trivial baselines on the test split: global '
                    'intensity statistics, and nearest-neighbour raw-pixel distance at '
                    '16x16 to the training normals. Writes stats.json and stats.md.')
    st.add_argument('dataset', help='a dataset written by synth dataset')
    st.add_argument('--split', default='test_set')
    st.set_defaults(run=_run_synth_stats)

    c = ssub.add_parser(
        'compare', help='real reference frames next to synthetic ones of the same kind',
        description='For every JPEG in --reference named <environment>_<type><n>.jpg '
                    '(e.g. corridor_cable.jpg, factory_normal1.jpg), render a synthetic '
                    'frame of the same environment and anomaly type and save the pairs '
                    'side by side. Keep the output out of the repository (default out/).')
    c.add_argument('--reference', required=True, help='folder of real frames')
    c.add_argument('--out', default='out/compare/reference_vs_synthetic.png')
    c.add_argument('--seed', type=int, default=0)
    c.set_defaults(run=_run_synth_compare)


def _run_synth_dataset(args):
    from .data.synthetic.dataset import write_dataset

    manifest = write_dataset(args.out, preset=args.preset, frames=args.frames,
                             image_size=args.image_size, seed=args.seed, types=args.types,
                             workers=args.workers, overwrite=args.overwrite,
                             progress=not args.no_progress)
    print(f"wrote {manifest['frames']} frames ({manifest['image_size']}px) to {args.out}")
    for split, counts in manifest['counts'].items():
        anomalous = sum(v for k, v in counts.items() if k != 'normal')
        print(f"  {split:15s} {counts.get('normal', 0):6d} normal  {anomalous:6d} anomalous")
    print(f'  contact sheet: {args.out}/contact_sheet.png')
    return 0


def _run_synth_bag(args):
    from .data.synthetic.patrol import PatrolConfig
    from .data.synthetic.patrol import write_patrol_bag

    config = PatrolConfig(seconds=args.seconds, fps=args.fps, resolution=args.resolution,
                          anomaly_rate=args.anomaly_rate, namespace=args.namespace,
                          storage=args.storage, seed=args.seed,
                          environment=args.environment, types=args.types,
                          distro=args.distro)
    summary = write_patrol_bag(args.out, config, workers=args.workers,
                               overwrite=args.overwrite, progress=not args.no_progress)
    print(f"wrote {summary['frames']} frames to {args.out} "
          f"({summary['anomalous_fraction']:.0%} anomalous, "
          f"{len(summary['events'])} anomalies)")
    print(f"  camera topic: {summary['topics']['image']}  frame_id: {summary['frame_id']}")
    return 0


def _run_synth_stats(args):
    from .data.synthetic.stats import format_table
    from .data.synthetic.stats import write_stats

    result = write_stats(args.dataset, args.split)
    print(format_table(result), end='')
    print(f'written {args.dataset}/stats.json and stats.md')
    return 0


def _run_synth_compare(args):
    from .data.synthetic.compare import write_comparison

    path, pairs = write_comparison(args.reference, args.out, seed=args.seed)
    print(f'compared {pairs} reference frames; written {path}')
    return 0


# --- demo -----------------------------------------------------------------------------------


def _add_demo(sub):
    p = sub.add_parser(
        'demo', help='the main job on the embedded default data',
        description='Generate a short synthetic patrol bag and a small labelled dataset, '
                    'and print where they are.')
    p.add_argument('--out', default='out/demo', help='output folder (default out/demo)')
    p.add_argument('--seconds', type=float, default=30.0, help='patrol length (default 30)')
    p.add_argument('--workers', type=_positive_int, default=2)
    p.set_defaults(run=_run_demo)


def _run_demo(args):
    from pathlib import Path

    from .data.synthetic.dataset import write_dataset
    from .data.synthetic.patrol import PatrolConfig
    from .data.synthetic.patrol import write_patrol_bag
    from .io.bags import BagReader

    out = Path(args.out)
    bag_path, data_path = out / 'patrol_bag', out / 'dataset'
    print(f'[1/2] synthetic patrol bag ({args.seconds:g} s, 640x360 at 30 fps)')
    summary = write_patrol_bag(bag_path, PatrolConfig(seconds=args.seconds, anomaly_rate=0.5),
                               workers=args.workers, overwrite=True)
    print('[2/2] small labelled dataset (tiny preset, 256 px)')
    manifest = write_dataset(data_path, preset='tiny', image_size=256, workers=args.workers,
                             overwrite=True)
    with BagReader(bag_path) as bag:
        topics = bag.topics
    print()
    events = ', '.join(e['type_name'] for e in summary['events']) or 'none'
    print(f'patrol bag:    {bag_path}  ({summary["frames"]} frames, '
          f'{summary["anomalous_fraction"]:.0%} anomalous; anomalies: {events})')
    for name, t in topics.items():
        print(f'    {name:40s} {t.count:6d}  {t.msgtype}')
    print(f"dataset:       {data_path}  ({manifest['frames']} frames)")
    print(f'contact sheet: {data_path / "contact_sheet.png"}')
    print('The detectors are not built yet: this demo shows the data they will run on.')
    return 0


# --- entry point ----------------------------------------------------------------------------

COMMANDS = [_add_inspect, _add_synth, _add_demo]


def build_parser():
    parser = _Parser(
        prog=PROG,
        description='Anomaly perception for mobile robots: data, training, evaluation '
                    'and replay without ROS 2; the ROS 2 nodes are started with ros2 run/launch.')
    parser.add_argument('--version', action='version', version=f'{PROG} {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND', required=True,
                                parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None):
    """Run the CLI; returns the exit code (also used as the console script)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except AnomalyPerceptionError as err:
        one_line = ' '.join(line.strip() for line in str(err).splitlines())
        print(f'{PROG}: error: {one_line}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f'{PROG}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
