"""``synth``: the synthetic patrol world (datasets, bags, statistics, comparisons)."""

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

from .common import Parser
from .common import positive_int
from .common import resolution


def add_synth(sub):
    p = sub.add_parser(
        'synth', help='generate the synthetic patrol world (datasets, bags)',
        description="The synthetic patrol world: labelled frames of a small robot's camera "
                    'in corridors, a factory hall and tunnels, with 22 anomaly types.')
    ssub = p.add_subparsers(dest='synth_command', metavar='SUBCOMMAND', required=True,
                            parser_class=Parser)

    d = ssub.add_parser(
        'dataset', help='write a dataset in the Hazards&Robots layout',
        description='Write train/validation/test/outliers image folders, '
                    'metadata/frames_labels.csv, masks, instances, semantic maps, '
                    'manifest.json and contact_sheet.png.')
    d.add_argument('--out', required=True, help='output directory (must not exist)')
    d.add_argument('--preset', default='small', help='tiny, small or medium (default small)')
    d.add_argument('--frames', type=positive_int, help="total frames (default: the preset's)")
    d.add_argument('--image-size', type=positive_int,
                   help='square image size in pixels (default: 512; tiny: 96)')
    d.add_argument('--seed', type=int, default=0, help='dataset seed (default 0)')
    d.add_argument('--types', help='comma-separated anomaly types (default: all)')
    d.add_argument('--test-scenes', default='unseen', choices=['unseen', 'seen'],
                   help='unseen: validation and test in scenes of their own (default); '
                        "seen: new patrols of the training scenes (the RNVP+OE paper's "
                        'protocol)')
    d.add_argument('--workers', type=positive_int, default=1,
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
    b.add_argument('--resolution', type=resolution, default=(640, 360),
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
    b.add_argument('--scene-seed', type=int,
                   help='the place to patrol (default: a corridor the default datasets train '
                        'on, as a deployed robot would patrol its own building)')
    b.add_argument('--seed', type=int, default=0)
    b.add_argument('--workers', type=positive_int, default=1)
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
    from ..data.synthetic.dataset import write_dataset

    manifest = write_dataset(args.out, preset=args.preset, frames=args.frames,
                             image_size=args.image_size, seed=args.seed, types=args.types,
                             workers=args.workers, overwrite=args.overwrite,
                             progress=not args.no_progress, test_scenes=args.test_scenes)
    print(f"wrote {manifest['frames']} frames ({manifest['image_size']}px) to {args.out}")
    for split, counts in manifest['counts'].items():
        anomalous = sum(v for k, v in counts.items() if k != 'normal')
        print(f"  {split:15s} {counts.get('normal', 0):6d} normal  {anomalous:6d} anomalous")
    print(f'  contact sheet: {args.out}/contact_sheet.png')
    return 0


def _run_synth_bag(args):
    from ..data.synthetic.patrol import PatrolConfig
    from ..data.synthetic.patrol import write_patrol_bag

    config = PatrolConfig(seconds=args.seconds, fps=args.fps, resolution=args.resolution,
                          anomaly_rate=args.anomaly_rate, namespace=args.namespace,
                          storage=args.storage, seed=args.seed,
                          environment=args.environment, types=args.types,
                          distro=args.distro, scene_seed=args.scene_seed)
    summary = write_patrol_bag(args.out, config, workers=args.workers,
                               overwrite=args.overwrite, progress=not args.no_progress)
    print(f"wrote {summary['frames']} frames to {args.out} "
          f"({summary['anomalous_fraction']:.0%} anomalous, "
          f"{len(summary['events'])} anomalies)")
    print(f"  camera topic: {summary['topics']['image']}  frame_id: {summary['frame_id']}")
    return 0


def _run_synth_stats(args):
    from ..data.synthetic.stats import format_table
    from ..data.synthetic.stats import write_stats

    result = write_stats(args.dataset, args.split)
    print(format_table(result), end='')
    print(f'written {args.dataset}/stats.json and stats.md')
    return 0


def _run_synth_compare(args):
    from ..data.synthetic.compare import write_comparison

    path, pairs = write_comparison(args.reference, args.out, seed=args.seed)
    print(f'compared {pairs} reference frames; written {path}')
    return 0
