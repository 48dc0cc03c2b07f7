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


class UsageError(AnomalyPerceptionError):
    """Options that parse but do not go together."""


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
    d.add_argument('--test-scenes', default='unseen', choices=['unseen', 'seen'],
                   help='unseen: validation and test in scenes of their own (default); '
                        "seen: new patrols of the training scenes (the RNVP+OE paper's "
                        'protocol)')
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
    b.add_argument('--scene-seed', type=int,
                   help='the place to patrol (default: a corridor the default datasets train '
                        'on, as a deployed robot would patrol its own building)')
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
                             progress=not args.no_progress, test_scenes=args.test_scenes)
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
                          distro=args.distro, scene_seed=args.scene_seed)
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


# --- train / score / evaluate / experiment ------------------------------------------------------


def _shape(text):
    try:
        height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HEIGHTxWIDTH, got {text!r}') from None
    if height <= 0 or width <= 0 or height % 16 or width % 16:
        raise argparse.ArgumentTypeError(f'sides must be positive multiples of 16, got {text!r}')
    return [height, width]


def _exposed(text):
    if text == 'all':
        return 'all'
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or 'all', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'expected a count >= 0, got {value}')
    return value


def _add_ae_options(p, bag_defaults=False):
    g = p.add_argument_group('autoencoder')
    more = ' (--bag: 8)' if bag_defaults else ''
    g.add_argument('--width', type=_positive_int, default=None if bag_defaults else 16,
                   help=f'channels of the first convolution (default 16{more}; see '
                        'docs/RESULTS.md)')
    g.add_argument('--ae-epochs', type=_positive_int, default=None if bag_defaults else 30,
                   help='default 30' + (' (--bag: 25)' if bag_defaults else ''))
    g.add_argument('--ae-batch-size', type=_positive_int, default=64)
    g.add_argument('--no-augment', action='store_true', help='train without augmentation')


def _add_density_options(p, bag_defaults=False):
    g = p.add_argument_group('density')
    g.add_argument('--density-epochs', type=_positive_int, default=None if bag_defaults else 200,
                   help='default 200' + (' (--bag: 100)' if bag_defaults else ''))
    g.add_argument('--lambda', dest='lam', type=float, default=1.0, help='OE weight (1)')
    g.add_argument('--gamma', type=float, default=100.0, help='OE margin in nats (100)')


def _ae_config(args, width=16, epochs=30, **extra):
    from .train.frame import AutoencoderConfig
    return AutoencoderConfig(width=args.width or width, epochs=args.ae_epochs or epochs,
                             batch_size=args.ae_batch_size, augment=not args.no_augment,
                             seed=args.seed, **extra)


def _density_config(args, oe=True, epochs=200):
    from .train.frame import DensityConfig
    return DensityConfig(epochs=args.density_epochs or epochs, lam=args.lam, gamma=args.gamma,
                         oe=oe, seed=args.seed)


def _add_train(sub):
    p = sub.add_parser('train', help='train models (frame branch)',
                       description='Offline training. Every step checkpoints each epoch into '
                                   'its --out directory and resumes from there when run again.')
    tsub = p.add_subparsers(dest='train_command', metavar='SUBCOMMAND', required=True,
                            parser_class=_Parser)

    a = tsub.add_parser('autoencoder', help='the convolutional autoencoder (normal frames)',
                        description='Train the 64x64 autoencoder on train_set normals; the best '
                                    'epoch by validation reconstruction loss is kept.')
    a.add_argument('--data', required=True, help='dataset in the Hazards&Robots layout')
    a.add_argument('--out', required=True, help='output directory')
    a.add_argument('--seed', type=int, default=0)
    _add_ae_options(a)
    a.set_defaults(run=_run_train_autoencoder)

    d = tsub.add_parser('density', help='Real-NVP on embeddings, with or without outlier '
                                        'exposure',
                        description="Train Real-NVP on the autoencoder's embeddings of normal "
                                    'frames; with --oe, exposed anomalies from outliers_set are '
                                    'pushed --gamma nats above normals. Embeddings are cached '
                                    'in the autoencoder directory.')
    d.add_argument('--data', required=True)
    d.add_argument('--autoencoder', required=True, help='directory of train autoencoder')
    d.add_argument('--out', required=True)
    d.add_argument('--oe', action=argparse.BooleanOptionalAction, default=True,
                   help='outlier exposure (default on)')
    d.add_argument('--exposed', type=_exposed, default='all',
                   help="number of exposed anomalous frames, or 'all' (default)")
    d.add_argument('--seed', type=int, default=0)
    _add_density_options(d)
    d.set_defaults(run=_run_train_density)

    b = tsub.add_parser('bclass', help='binary classifier baseline on embeddings',
                        description='Train BCLASS (256-64-1 MLP) on normal vs exposed '
                                    'anomalous embeddings.')
    b.add_argument('--data', required=True)
    b.add_argument('--autoencoder', required=True)
    b.add_argument('--out', required=True)
    b.add_argument('--exposed', type=_exposed, default='all')
    b.add_argument('--epochs', type=_positive_int, default=100)
    b.add_argument('--seed', type=int, default=0)
    b.set_defaults(run=_run_train_bclass)

    f = tsub.add_parser(
        'frame', help='the whole chain into a deployable model directory',
        description='Autoencoder -> embeddings -> Real-NVP+OE -> calibration -> MODEL_DIR '
                    '(manifest.yaml + frame_model.pt). From a dataset folder (--data), or from '
                    "the robot's own bags of normal driving (--bag, repeatable): frames of the "
                    'whole camera view, held-out time blocks for validation and calibration, '
                    'and an alarm threshold for a target number of false alarms per hour.')
    src = f.add_mutually_exclusive_group(required=True)
    src.add_argument('--data', help='dataset folder (train_set/, validation_set/, outliers_set/)')
    src.add_argument('--bag', action='append', help='bag of normal driving (repeatable)')
    f.add_argument('--out', required=True, help='model directory to write')
    f.add_argument('--work', help='directory for intermediate steps (default out/train/<name>)')
    f.add_argument('--exposed', action='append',
                   help="--data: how many outliers_set frames to expose (a count or 'all', "
                        'default all). --bag: BAG:INTERVALS.yaml, frames an operator tagged as '
                        'anomalous (the format `replay --labels` reads; repeatable)')
    f.add_argument('--exposed-count', type=_exposed, default='all',
                   help="--bag: use this many of the tagged frames (default 'all')")
    f.add_argument('--topic', help='--bag: image topic (default: the only camera topic)')
    f.add_argument('--every', type=_positive_int, default=1,
                   help='--bag: keep every N-th frame (default 1)')
    f.add_argument('--input-shape', type=_shape, default=None, metavar='HxW',
                   help='--bag: model input (multiples of 16; default 64x112, the whole 16:9 '
                        'view; 64x64 sees only the centre square)')
    f.add_argument('--target-alarms-per-hour', type=float, default=2.0,
                   help='--bag: false alarms per hour of normal driving the threshold is set '
                        'for, measured on the held-out blocks (default 2)')
    f.add_argument('--target-fpr', type=float, default=0.05,
                   help='--data: false-positive rate of the default threshold on normal '
                        'frames (0.05)')
    f.add_argument('--seed', type=int, default=0)
    f.add_argument('--overwrite', action='store_true')
    _add_ae_options(f, bag_defaults=True)
    _add_density_options(f, bag_defaults=True)
    f.set_defaults(run=_run_train_frame)


def _frame_data(args, size=64):
    from .train.frame_model import load_frame_data
    return load_frame_data(args.data, size, getattr(args, 'exposed', 0), args.seed)


def _run_train_autoencoder(args):
    from .train.frame import train_autoencoder
    data = _frame_data(args)
    metrics = train_autoencoder(data.train, data.val[data.val_labels == 0], args.out,
                                _ae_config(args))
    print(f"best epoch {metrics['best_epoch']}: validation loss {metrics['best_val_loss']:.4f}; "
          f'written {args.out}/autoencoder.pt')
    return 0


def _run_train_density(args):
    from .train.frame import auroc_summary
    from .train.frame import cached_embeddings
    from .train.frame import density_scores
    from .train.frame import load_density
    from .train.frame import train_density
    if not args.oe:
        args.exposed = 0
    data = _frame_data(args)
    z_train = cached_embeddings(args.autoencoder, data.train, 'train')
    z_val = cached_embeddings(args.autoencoder, data.val, 'val')
    z_exp = None
    if len(data.exposed):
        z_exp = cached_embeddings(args.autoencoder, data.exposed, 'exposed')
    metrics = train_density(z_train, z_val[data.val_labels == 0], args.out,
                            _density_config(args, args.oe), z_exp)
    print(f"best epoch {metrics['best_epoch']}: validation NLL {metrics['best_val_nll']:.2f}")
    if (data.val_labels != 0).any():
        scores = density_scores(*load_density(args.out), z_val)
        s = auroc_summary(data.val_labels, scores)
        print(f"validation AUROC {s['auroc']:.3f}  AP {s['ap']:.3f}  FPR95 {s['fpr95']:.3f}")
    return 0


def _run_train_bclass(args):
    from .train.frame import cached_embeddings
    from .train.frame import ClassifierConfig
    from .train.frame import train_bclass
    data = _frame_data(args)
    z_train = cached_embeddings(args.autoencoder, data.train, 'train')
    z_val = cached_embeddings(args.autoencoder, data.val, 'val')
    z_exp = None
    if len(data.exposed):
        z_exp = cached_embeddings(args.autoencoder, data.exposed, 'exposed')
    metrics = train_bclass(z_train, z_exp, z_val, data.val_labels != 0, args.out,
                           ClassifierConfig(epochs=args.epochs, seed=args.seed))
    print(f"best epoch {metrics['best_epoch']}: validation BCE {metrics['best_val_bce']:.4f}")
    return 0


def _run_train_frame(args):
    from pathlib import Path

    work = args.work or str(Path('out') / 'train' / Path(args.out).name)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    if args.bag:
        return _run_train_frame_bags(args, work, command)
    from .train.frame_model import FrameTrainingConfig
    from .train.frame_model import train_frame_model
    exposed = args.exposed or ['all']
    if len(exposed) > 1:
        raise UsageError('--data takes one --exposed (a count or all).')
    try:
        exposed = _exposed(exposed[0])
    except argparse.ArgumentTypeError as err:
        raise UsageError(f'--exposed with --data: {err}') from None
    config = FrameTrainingConfig(autoencoder=_ae_config(args), density=_density_config(args),
                                 exposed=exposed, target_fpr=args.target_fpr,
                                 seed=args.seed)
    manifest = train_frame_model(args.data, args.out, work, config, overwrite=args.overwrite,
                                 command=command)
    v = manifest['validation']
    print(f'written {args.out} (work files in {work})')
    if 'auroc' in v:
        print(f"validation: AUROC {v['auroc']:.3f}  AP {v['ap']:.3f}  FPR95 {v['fpr95']:.3f} "
              f"({v['n_normal']} normal, {v['n_anomalous']} anomalous frames)")
    return 0


def _run_train_frame_bags(args, work, command):
    from .train.frame_bags import BAG_INPUT_SHAPE
    from .train.frame_bags import BagTrainingConfig
    from .train.frame_bags import ExposedSource
    from .train.frame_bags import train_frame_from_bags
    try:
        exposed = [ExposedSource.parse(text) for text in args.exposed or []]
    except ValueError as err:
        raise UsageError(f'--exposed with --bag: {err}') from None
    if args.target_alarms_per_hour <= 0:
        raise UsageError('--target-alarms-per-hour must be > 0.')
    config = BagTrainingConfig(
        autoencoder=_ae_config(args, width=8, epochs=25,
                               input_size=args.input_shape or list(BAG_INPUT_SHAPE)),
        density=_density_config(args, epochs=100), topic=args.topic, every=args.every,
        exposed_count=args.exposed_count,
        target_false_alarms_per_hour=args.target_alarms_per_hour, seed=args.seed)
    manifest = train_frame_from_bags(args.bag, args.out, work, config, exposed=exposed,
                                     overwrite=args.overwrite, command=command)
    data, alarms = manifest['provenance']['data'], manifest['alarms']
    t = manifest['provenance']['training']
    print(f"written {args.out} (work files in {work}); {t['wall_s']:.0f} s")
    print(f"learnt from {data['frames']} frames ({data['span_s']:.0f} s) of "
          f"{len(data['bags'])} bag(s) on {data['topic']}: {data['n_train']} training, "
          f"{data['n_heldout']} held-out ({manifest['validation']['n_heldout_blocks']} blocks)"
          + (f"; {data['exposed']['n_frames']} exposed anomalous frames"
             if data['exposed']['n_frames'] else ''))
    print(f"alarm threshold: on probability {alarms['on_probability']:.10g} (raw "
          f"{alarms['raw']:.1f} nats) for {alarms['target_false_alarms_per_hour']:g} false "
          'alarms per hour of normal driving')
    return 0


def _add_score(sub):
    p = sub.add_parser('score', help='score images with a frame model',
                       description='Score image files (or folders of them) with a frame model: '
                                   'one row per image with the raw score (NLL, nats), the '
                                   'calibrated probability and the hazard flag.')
    p.add_argument('paths', nargs='+', help='image files or folders')
    p.add_argument('--model', default=None,
                   help='model directory (default: the shipped models/frame_rnvp_oe)')
    p.add_argument('--csv', help='also write the rows to this CSV file')
    p.add_argument('--target-fpr', type=float, help="override the model's threshold target")
    p.add_argument('--backend', default='torch',
                   help='torch, onnxruntime, tensorrt or auto (default torch)')
    p.set_defaults(run=_run_score)


def _default_frame_model():
    from .runtime.manifest import shipped_model_dir
    return shipped_model_dir('frame_rnvp_oe')


def _run_score(args):
    import csv
    import io
    from pathlib import Path

    import cv2

    from .io.files import atomic_write_text
    from .perception.frame import FrameAnomalyDetector
    from .errors import AnomalyPerceptionError

    model = args.model or _default_frame_model()
    detector = FrameAnomalyDetector.from_model_dir(model, args.backend,
                                                   target_fpr=args.target_fpr)
    files = []
    for p in map(Path, args.paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir()
                            if f.suffix.lower() in ('.jpg', '.jpeg', '.png', '.bmp'))
        elif p.is_file():
            files.append(p)
        else:
            raise AnomalyPerceptionError(f'{str(p)!r} is neither an image file nor a folder.')
    if not files:
        raise AnomalyPerceptionError('No images to score.')
    rows = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise AnomalyPerceptionError(f'Cannot decode image {str(f)!r}.')
        s = detector.score(img, channel_order='bgr')
        rows.append({'path': str(f), 'raw_score': float(s.raw[0]),
                     'probability': float(s.probability[0]), 'flag': int(s.flag[0])})
    width = max(len(r['path']) for r in rows)
    print(f"{'image':<{width}}  {'raw (nats)':>10}  {'prob':>6}  flag   "
          f'(threshold {detector.threshold:.2f} nats, model {model}, backend '
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


def _add_evaluate(sub):
    p = sub.add_parser('evaluate', help='evaluate a model on a labelled dataset',
                       description='Evaluate models against labels, with plots.')
    esub = p.add_subparsers(dest='evaluate_command', metavar='SUBCOMMAND', required=True,
                            parser_class=_Parser)
    f = esub.add_parser('frame', help='a frame model on a dataset split',
                        description='AUROC, AP, FPR95 overall and per anomaly type, ROC and PR '
                                    'curves and a score histogram (report.json, roc.png, '
                                    'pr.png, histogram.png in --out).')
    f.add_argument('--model', required=True)
    f.add_argument('--data', required=True)
    f.add_argument('--out', required=True, help='report directory')
    f.add_argument('--split', default='test_set')
    f.set_defaults(run=_run_evaluate_frame)


def _run_evaluate_frame(args):
    from .evaluation.frame_eval import evaluate_frame
    from .evaluation.frame_eval import format_report
    report = evaluate_frame(args.model, args.data, args.out, args.split)
    print(format_report(report))
    print(f'written {args.out}/report.json, roc.png, pr.png, histogram.png')
    return 0


def _add_experiment(sub):
    p = sub.add_parser('experiment', help="reproduce the papers' comparisons",
                       description='Reproduce published comparisons on a dataset of ours.')
    xsub = p.add_subparsers(dest='experiment_command', metavar='SUBCOMMAND', required=True,
                            parser_class=_Parser)
    f = xsub.add_parser('frame-baselines', help='RNVP+OE Table II and Fig. 7',
                        description='Train AE-MAE, AE-MSE, RNVP, BCLASS and RNVP+OE for each '
                                    'seed, and the exposure sweep of Fig. 7; write results.json, '
                                    'table2.md, fig7.md, fig7.png and a ROC plot. With one '
                                    '--data per protocol (synth dataset --test-scenes unseen '
                                    'and seen), run each into OUT/<protocol>/ and compare them '
                                    'in protocols.md, table2_protocols.png and '
                                    'fig7_protocols.png.')
    f.add_argument('--data', required=True, action='append',
                   help='dataset; repeat with one dataset per protocol to compare them')
    f.add_argument('--out', required=True)
    f.add_argument('--seeds', default='0,1,2', help='comma-separated seeds (default 0,1,2)')
    f.add_argument('--exposures', default='0,2,8,64,512,all',
                   help='exposed anomaly counts for Fig. 7')
    f.add_argument('--bclass-epochs', type=_positive_int, default=100)
    _add_ae_options(f)
    _add_density_options(f)
    f.set_defaults(run=_run_experiment_frame)
    lp = xsub.add_parser(
        'learn-place', help='learn a building from one normal patrol bag, test on another',
        description='Per scene seed: a 300 s normal patrol at 10 Hz -> train frame --bag '
                    '(no exposure, then --exposures tagged frames of a third patrol) -> replay '
                    'of a 120 s patrol with anomalies at 30 Hz, and the shipped model on it; '
                    'write results.json, results.md, results.png.')
    lp.add_argument('--scene-seeds', default='8101,8102,8103')
    lp.add_argument('--out', required=True)
    lp.add_argument('--exposures', default='0,2,8,32',
                    help='tagged anomalous frames to expose (default 0,2,8,32)')
    lp.add_argument('--workers', type=_positive_int, default=2)
    lp.add_argument('--square', action='store_true',
                    help='also train on the centre square only (64x64) and compare AUROC on '
                         'anomalies off the centre')
    lp.set_defaults(run=_run_experiment_learn_place)


def _run_experiment_learn_place(args):
    from .evaluation.learn_place import format_learn_place
    from .evaluation.learn_place import run_learn_place
    results = run_learn_place([int(v) for v in args.scene_seeds.split(',')], args.out,
                              [int(v) for v in args.exposures.split(',')], args.workers,
                              square=args.square)
    print(format_learn_place(results))
    print(f'written {args.out}/results.json, results.md, results.png')
    return 0


def _run_experiment_frame(args):
    from .evaluation.frame_experiments import format_fig7
    from .evaluation.frame_experiments import format_protocols
    from .evaluation.frame_experiments import format_table2
    from .evaluation.frame_experiments import run_protocols
    from .train.frame import ClassifierConfig
    seeds = [int(s) for s in args.seeds.split(',')]
    exposures = [_exposed(e) for e in args.exposures.split(',')]
    args.seed = seeds[0]
    everything = run_protocols(args.data, args.out, seeds, _ae_config(args),
                               _density_config(args),
                               ClassifierConfig(epochs=args.bclass_epochs), exposures)
    if len(everything) == 1:
        results = next(iter(everything.values()))
        print(format_table2(results))
        print(format_fig7(results))
        print(f'written {args.out}/results.json, table2.md, fig7.md, fig7.png')
    else:
        print(format_protocols(everything))
        print(f'written {args.out}/<protocol>/ and {args.out}/protocols.json, protocols.md, '
              'table2_protocols.png, fig7_protocols.png')
    return 0


# --- replay ---------------------------------------------------------------------------------


def _add_replay(sub):
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
    p.add_argument('--pipelines', default='frame', help="pipelines to run (now: 'frame')")
    p.add_argument('--model', help='frame model directory (default: the shipped one)')
    p.add_argument('--backend', default='auto', help='torch, onnxruntime, tensorrt, auto')
    p.add_argument('--labels', help="intervals file (YAML) instead of the bag's labels")
    p.add_argument('--params', help='a frame node parameter file (config/frame_anomaly.yaml)')
    p.add_argument('--namespace', help='robot namespace of the output topics (default: from '
                                       'the image topic)')
    p.add_argument('--batch', type=_positive_int, default=32)
    p.add_argument('--overwrite', action='store_true')
    p.add_argument('--no-progress', action='store_true')
    p.set_defaults(run=_run_replay)


def _run_replay(args):
    from .config import load_config
    from .evaluation.replay import replay
    from .errors import AnomalyPerceptionError
    from .perception.frame_config import FrameNodeConfig
    if args.pipelines.strip() != 'frame':
        raise AnomalyPerceptionError(
            f"--pipelines {args.pipelines!r}: only 'frame' is available so far.")
    config = load_config(FrameNodeConfig, args.params) if args.params else FrameNodeConfig()
    report = replay(args.bag, args.out, topic=args.topic, model_dir=args.model,
                    backend=args.backend, labels=args.labels, namespace=args.namespace,
                    config=config, batch=args.batch, overwrite=args.overwrite,
                    show_progress=not args.no_progress)
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
    n_alarms = len(report.get('alarm_episodes', []))
    lines.append(f'{n_alarms} alarm(s) raised (flag on at probability '
                 f"{report['hazard']['on_probability']:.10g}); to confirm and retrain: "
                 f"{PROG} tag {report['bag']} --from-report {out} --out tags.yaml")
    lines.append(f'output bag: {out}/outputs  ({", ".join(report["output_topics"].values())})')
    return '\n'.join(lines)


def _add_tag(sub):
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

    from .data.bag_frames import image_stamps
    from .errors import AnomalyPerceptionError
    from .evaluation.tagging import alarm_intervals
    from .evaluation.tagging import read_replay_report
    from .evaluation.tagging import write_intervals
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


# --- export / bench -----------------------------------------------------------------------------


def _add_export(sub):
    p = sub.add_parser('export', help='export a model to ONNX (recorded in its manifest)',
                       description="Write the model's ONNX graph into its directory "
                                   '(model.onnx, or model_fp16.onnx) and record file, sha256, '
                                   'opset and input/output names and shapes in the manifest. '
                                   "The frame graph takes uint8 images at the model's input "
                                   'size (batch dynamic) and returns the raw score.')
    p.add_argument('--model', required=True, help='model directory')
    p.add_argument('--opset', type=_positive_int, default=17, help='ONNX opset (17)')
    p.add_argument('--fp16', action='store_true', help='fp16 weights and convolutions')
    p.set_defaults(run=_run_export)


def _run_export(args):
    from .runtime.export import export_model
    entry = export_model(args.model, opset=args.opset, fp16=args.fp16)
    shape = 'x'.join(str(v) for v in entry['inputs'][0]['shape'])
    print(f"written {args.model}/{entry['file']} (opset {entry['opset']}, {entry['precision']}, "
          f"input {entry['inputs'][0]['name']} {entry['inputs'][0]['dtype']} [{shape}], "
          f"sha256 {entry['sha256'][:12]}...)")
    return 0


def _add_bench(sub):
    p = sub.add_parser('bench', help='measure the frame path on each backend',
                       description='Warm up, then time the whole frame path (640x360 bgr8 '
                                   'frames -> scores) and the model alone for each backend '
                                   'and batch size: median/p90/p99 latency, throughput, '
                                   'memory, and the ratio to PyTorch eager on the same device.')
    p.add_argument('--model', help='model directory (default: the shipped frame model)')
    p.add_argument('--backend', default='torch,onnxruntime,tensorrt,auto',
                   help='comma-separated backends (default: all four)')
    p.add_argument('--batch', default='1,8,32', help='comma-separated batch sizes')
    p.add_argument('--seconds', type=float, default=3.0, help='timing per case (3)')
    p.add_argument('--device', default='cpu', help="torch device: 'cpu' or 'cuda'")
    p.add_argument('--precision', default='fp32', choices=['fp32', 'fp16'])
    p.add_argument('--json', help='write the results here too (default out/bench/)')
    p.set_defaults(run=_run_bench)


def _run_bench(args):
    from pathlib import Path

    from .runtime.bench import format_table
    from .runtime.bench import run_bench
    from .io.files import atomic_write_json
    model = args.model or _default_frame_model()
    backends = [b.strip() for b in args.backend.split(',') if b.strip()]
    batches = [int(b) for b in args.batch.split(',')]
    results = run_bench(model, backends, batches, args.seconds, device=args.device,
                        precision=args.precision)
    print(format_table(results))
    out = Path(args.json or Path('out') / 'bench' / f'bench_{Path(model).name}.json')
    atomic_write_json(out, results)
    print(f'written {out}')
    return 0


# --- demo -----------------------------------------------------------------------------------


def _add_demo(sub):
    p = sub.add_parser(
        'demo', help='the main job on the embedded default data',
        description='Learn a place and watch it: a normal patrol of one synthetic building -> '
                    '`train frame --bag` -> replay of a different patrol of the same building '
                    'with anomalies, with the learnt model and with the shipped generic model; '
                    'print both reports and where the plots and output bags are.')
    p.add_argument('--out', default='out/demo', help='output folder (default out/demo)')
    p.add_argument('--normal-seconds', type=float, default=120.0,
                   help='normal patrol to learn from, at 10 Hz (default 120)')
    p.add_argument('--seconds', type=float, default=60.0,
                   help='patrol with anomalies to replay, at 30 Hz (default 60)')
    p.add_argument('--workers', type=_positive_int, default=2)
    p.set_defaults(run=_run_demo)


def _run_demo(args):
    from pathlib import Path
    import time

    from .data.synthetic.patrol import patrol_scene_seed
    from .data.synthetic.patrol import PatrolConfig
    from .data.synthetic.patrol import write_patrol_bag
    from .evaluation.replay import replay
    from .train.frame_bags import train_frame_from_bags

    out = Path(args.out)
    normal_bag, patrol_bag = out / 'normal_patrol', out / 'patrol_bag'
    model_dir = out / 'learnt_model'
    started = time.perf_counter()
    building = patrol_scene_seed(PatrolConfig(seed=101))
    print(f'[1/4] normal patrol of building {building}: {args.normal_seconds:g} s at 10 Hz, '
          '640x360, no anomalies')
    write_patrol_bag(normal_bag, PatrolConfig(seconds=args.normal_seconds, fps=10.0,
                                              anomaly_rate=0.0, seed=101, scene_seed=building),
                     workers=args.workers, overwrite=True)
    print(f'[2/4] train frame --bag {normal_bag}  (the whole 16:9 view, held-out time blocks, '
          'threshold for 2 false alarms per hour)')
    manifest = train_frame_from_bags([normal_bag], model_dir, out / 'train_work',
                                     overwrite=True, command='anomaly-perception demo')
    print(f'[3/4] another patrol of the same building with anomalies: {args.seconds:g} s at '
          '30 Hz, as the Robomaster driver records it, with label topics')
    summary = write_patrol_bag(patrol_bag, PatrolConfig(seconds=args.seconds, anomaly_rate=0.4,
                                                        seed=31337, scene_seed=building),
                               workers=args.workers, overwrite=True)
    print('[4/4] replaying it with the learnt model, then with the shipped generic model')
    learnt = replay(patrol_bag, out / 'replay', model_dir=model_dir, backend='auto',
                    overwrite=True)
    generic = replay(patrol_bag, out / 'replay_shipped', backend='auto', overwrite=True)
    print()
    t = manifest['provenance']['training']
    print(f"learnt model:  {model_dir}  ({t['wall_s']:.0f} s to train on "
          f"{manifest['provenance']['data']['frames']} frames)")
    events = ', '.join(e['type_name'] for e in summary['events']) or 'none'
    print(f'patrol bag:    {patrol_bag}  ({summary["frames"]} frames; anomalies on the way: '
          f'{events})')
    print(format_replay(learnt, out / 'replay'))
    print()
    print('on the same patrol, learnt vs shipped generic model:')
    for name, report in (('learnt', learnt), ('shipped', generic)):
        print(f'  {name:8s} {_one_line(report)}')
    print(f'demo took {time.perf_counter() - started:.0f} s. To look at it in rviz2 or Foxglove: '
          f'ros2 bag play {patrol_bag} and {out / "replay"}/outputs; see docs/REPLAY.md.')
    return 0


def _one_line(report):
    ev = report['events']
    return (f"AUROC {report['auroc']:.3f}, {ev['detected']}/{ev['n_events']} anomalies "
            f"flagged, {ev['false_alarms']} false alarm(s) ({ev['false_alarms_per_hour']:.0f}"
            f"/h), flag on {100 * ev['alarm_time_fraction']:.1f}% of normal driving")


# --- entry point ----------------------------------------------------------------------------

COMMANDS = [_add_inspect, _add_synth, _add_train, _add_score, _add_evaluate, _add_experiment,
            _add_replay, _add_tag, _add_export, _add_bench, _add_demo]


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
