"""``train``: offline training, resumable from checkpoints."""

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
import sys

from .common import add_ae_options
from .common import add_density_options
from .common import ae_config
from .common import density_config
from .common import exposed_count
from .common import Parser
from .common import positive_int
from .common import shape
from .common import shape8
from ..errors import UsageError


def add_training_io_options(p, init_from=None, data_required=True):
    """Add the options every ``train`` subcommand on a dataset shares.

    ``--data``, ``--out``, ``--work`` and, with ``init_from`` (its help),
    ``--init-from PIXEL_MODEL``.
    """
    p.add_argument('--data', required=data_required, help='dataset written by synth dataset')
    p.add_argument('--out', required=True, help='model directory to write')
    p.add_argument('--work', help='checkpoints (default out/train/<name>)')
    if init_from:
        p.add_argument('--init-from', default='', metavar='PIXEL_MODEL', help=init_from)


def add_seed_and_run(p, run):
    """Add ``--seed`` and ``--overwrite`` to a ``train`` subcommand, and what runs it."""
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--overwrite', action='store_true')
    p.set_defaults(run=run)


def add_device_option(p):
    """Add ``--device`` (every ``train`` subcommand has it)."""
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'),
                   help='train on the CPU (default) or a CUDA GPU; under torchrun '
                        '--nproc_per_node N each process takes GPU LOCAL_RANK')


def _in_job(run):
    """Return ``run`` that leaves the ``torchrun`` job (if any) when it is done.

    ``--device cuda`` without a GPU fails before any data is read; the
    processes of rank > 0 show no progress bars (rank 0 shows the job's).
    """
    def run_in_job(args):
        import os

        import torch

        from ..training import finish_jobs
        from ..training import is_main_process
        if args.device == 'cuda' and not torch.cuda.is_available():
            raise UsageError('--device cuda: PyTorch sees no CUDA GPU here; train with '
                             '--device cpu.')
        if not is_main_process():
            os.environ['TQDM_DISABLE'] = '1'
        done = False
        try:
            code = run(args)
            done = True
            return code
        finally:
            finish_jobs(wait=done)
    return run_in_job


def add_train(sub):
    p = sub.add_parser('train', help='train models (frame and pixel branches)',
                       description='Offline training. Every step checkpoints each epoch into '
                                   'its --out directory and resumes from there when run again.')
    tsub = p.add_subparsers(dest='train_command', metavar='SUBCOMMAND', required=True,
                            parser_class=Parser)

    a = tsub.add_parser('autoencoder', help='the convolutional autoencoder (normal frames)',
                        description='Train the 64x64 autoencoder on train_set normals; the best '
                                    'epoch by validation reconstruction loss is kept.')
    a.add_argument('--data', required=True, help='dataset in the Hazards&Robots layout')
    a.add_argument('--out', required=True, help='output directory')
    a.add_argument('--seed', type=int, default=0)
    add_ae_options(a)
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
    d.add_argument('--exposed', type=exposed_count, default='all',
                   help="number of exposed anomalous frames, or 'all' (default)")
    d.add_argument('--seed', type=int, default=0)
    add_density_options(d)
    d.set_defaults(run=_run_train_density)

    b = tsub.add_parser('bclass', help='binary classifier baseline on embeddings',
                        description='Train BCLASS (256-64-1 MLP) on normal vs exposed '
                                    'anomalous embeddings.')
    b.add_argument('--data', required=True)
    b.add_argument('--autoencoder', required=True)
    b.add_argument('--out', required=True)
    b.add_argument('--exposed', type=exposed_count, default='all')
    b.add_argument('--epochs', type=positive_int, default=100)
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
    f.add_argument('--exposed-count', type=exposed_count, default='all',
                   help="--bag: use this many of the tagged frames (default 'all')")
    f.add_argument('--topic', help='--bag: image topic (default: the only camera topic)')
    f.add_argument('--every', type=positive_int, default=1,
                   help='--bag: keep every N-th frame (default 1)')
    f.add_argument('--input-shape', type=shape, default=None, metavar='HxW',
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
    add_ae_options(f, bag_defaults=True)
    add_density_options(f, bag_defaults=True)
    f.set_defaults(run=_run_train_frame)

    px = tsub.add_parser(
        'pixel', help='ERFNet anomaly segmentation into a deployable model directory',
        description='Two recipes. --data: ERFNet on the semantic labels of a synth dataset '
                    '(anomaly pixels are void, never a class): encoder stage on 1/8 labels, '
                    'then the whole network with --loss; the best epoch by validation mIoU; '
                    'the anomaly score calibrated on normal validation pixels. --bag: learn a '
                    'place from its unlabelled normal bags: the shipped model (or --init-from) '
                    "fine-tuned on the place's own frames with pasted anomaly cut-outs as the "
                    'void class and its own confident labels elsewhere, then calibrated on '
                    'held-out time blocks (per-position offset, pixel and frame thresholds). '
                    '-> MODEL_DIR (manifest.yaml + pixel_model.pt). Resumable from --work.')
    source = px.add_mutually_exclusive_group(required=True)
    source.add_argument('--data', help='dataset written by synth dataset')
    source.add_argument('--bag', action='append', metavar='BAG',
                        help='a normal bag of the place (repeatable): learn the place')
    px.add_argument('--out', required=True, help='model directory to write')
    px.add_argument('--work', help='checkpoints (default out/train/<name>)')
    place = px.add_argument_group('learning a place (--bag)')
    place.add_argument('--init-from', metavar='PIXEL_MODEL',
                       help='start from this pixel model (default the shipped pixel_erfnet); '
                            'it needs a void class')
    place.add_argument('--cutouts', metavar='FOLDER',
                       help='a folder of RGBA images (PNG with alpha) to paste as well')
    place.add_argument('--sources', default='world,procedural',
                       help='cut-out sources: world, procedural, surface (floor patches '
                            'changed in place), user (default world,procedural; --cutouts '
                            'adds user)')
    place.add_argument('--steps', type=positive_int, default=None,
                       help='optimiser steps (default 480: 5 min of 10 Hz bags in about 8 '
                            'min on 2 cores)')
    place.add_argument('--target-fpr', type=float, default=None,
                       help="share of the place's normal pixels above the mask threshold "
                            '(default 0.002)')
    place.add_argument('--topic', help="the camera topic (default: each bag's only one)")
    add_pixel_training_options(px)
    px.add_argument('--void-outliers', action='store_true',
                    help='add a void class trained on the anomaly pixels of outliers_set '
                         '(outlier exposure); the anomaly score is its probability')
    px.add_argument('--encoder-from', metavar='CHECKPOINT',
                    help='start the decoder stage from the encoder stage of this checkpoint '
                         '(checkpoint.pt of a work directory, e.g. work/encoder/checkpoint.pt '
                         'of experiment pixel-losses) instead of training the encoder again')
    px.add_argument('--overwrite', action='store_true')
    px.set_defaults(run=_run_train_pixel)

    mc = tsub.add_parser(
        'maskcls', help='the mask-classification segmenter whose RbA map drives the instance '
                        'branch',
        description='A compact Mask2Former-style segmenter (ERFNet encoder, FPN pixel decoder, '
                    'masked-attention transformer decoder, learnable queries) trained with '
                    'Hungarian matching on the semantic labels (anomaly pixels void); its '
                    'anomaly map is RbA -> MODEL_DIR, a pixel-branch model directory. '
                    'Resumable from --work.')
    add_training_io_options(
        mc, init_from="start the backbone from this ERFNet pixel model's encoder")
    mc.add_argument('--input-shape', type=shape8, default=[128, 128], metavar='HxW')
    mc.add_argument('--epochs', type=positive_int, default=12)
    mc.add_argument('--queries', type=positive_int, default=16)
    mc.add_argument('--batch-size', type=positive_int, default=8)
    mc.add_argument('--every', type=positive_int, default=1,
                    help='train on every n-th training frame (default 1: all)')
    mc.add_argument('--lr', type=float, default=3e-4)
    mc.add_argument('--score', choices=('rba', 'rba_tanh'), default='rba',
                    help='rba: -sum softmax*sigmoid (UGainS); rba_tanh: the RbA repository')
    mc.add_argument('--outlier-epochs', type=int, default=0,
                    help="then RbA's outlier fine-tuning for N epochs over outliers_set "
                         '(default 0: none); the same --work reuses a finished first stage')
    mc.add_argument('--outlier-lr', type=float, default=1e-4)
    add_seed_and_run(mc, _run_train_maskcls)

    pr = tsub.add_parser(
        'promptable', help='the small promptable segmenter (SAM kind) of the instance branch',
        description="SAM's prompt encoder and mask decoder (segment-anything) on ERFNet's "
                    'encoder, trained from single point prompts on anomaly instances and '
                    'connected class regions of train_set and outliers_set; best epoch by '
                    'validation mask IoU from one point per anomaly -> MODEL_DIR. Resumable '
                    'from --work.')
    add_training_io_options(
        pr, init_from="start the image encoder from this ERFNet pixel model's encoder",
        data_required=False)
    pr.add_argument('--bag', action='append', default=[], metavar='BAG',
                    help='crops: tune --init-promptable on a place instead of --data: normal '
                         'bags of the place, cut-outs pasted on every --every-th frame '
                         '(default 10), each one an instance (repeatable)')
    pr.add_argument('--image-size', type=positive_int, default=256,
                    help='model input: longest side, padded square (multiple of 16)')
    pr.add_argument('--design', choices=('sam', 'crops'), default='sam',
                    help="sam: SAM's prompt encoder and mask decoder on ERFNet's encoder (late "
                         'fusion, default); crops: the click as an input channel of a small '
                         'U-Net on windows of three sizes around it, the best by predicted '
                         'IoU (early fusion, full resolution)')
    pr.add_argument('--epochs', type=positive_int, default=6, help='sam: epochs (6)')
    pr.add_argument('--steps', type=positive_int, default=None,
                    help='crops: optimiser steps (6000; tuning on --bag: 600), validated every '
                         '--val-every')
    pr.add_argument('--val-every', type=positive_int, default=500,
                    help='crops: steps between validations and checkpoints (500)')
    pr.add_argument('--batch-size', type=positive_int, default=None,
                    help='sam: frames per batch (8); crops: clicks per step (32)')
    pr.add_argument('--prompts-per-image', type=positive_int, default=16)
    pr.add_argument('--init-promptable', default='', metavar='PROMPTABLE_MODEL',
                    help='start every weight from this promptable model (same spec): a further '
                         'run on a new schedule')
    pr.add_argument('--patch-size', type=int, choices=(8, 16), default=8,
                    help="image embedding grid: 1/8 (ERFNet's own, default) or 1/16 (SAM's)")
    pr.add_argument('--warmup-steps', type=int, default=250,
                    help='batches of linear learning-rate warm-up (default 250)')
    pr.add_argument('--every', type=positive_int, default=None,
                    help='train on every n-th train_set frame (sam: 1, all; crops: 4, the '
                         'frames are kept at their own resolution)')
    pr.add_argument('--lr', type=float, default=None, help='sam: 3e-4; crops: 2e-3')
    pr.add_argument('--seed', type=int, default=0)
    pr.add_argument('--overwrite', action='store_true')
    pr.add_argument('--refine-rounds', type=int, default=0,
                    help="SAM's iterative prompting: N more rounds per prompt, each adding a "
                         "point from the previous mask's error and that mask as a prompt "
                         '(default 0)')
    pr.set_defaults(run=_run_train_promptable)

    fa = tsub.add_parser(
        'failure', help="FSNet's failure head, trained jointly with a pixel model",
        description="Paper 004's second stage on a trained ERFNet pixel model: the failure "
                    'head (two ResNet-18-layout encoders on the image and four maps of the '
                    "logits, fused with ERFNet's encoder features) and the segmenter trained "
                    'together (cross-entropy + balanced failure BCE); best epoch by '
                    'validation AP-Err -> MODEL_DIR (a pixel model with a failure head). '
                    'Resumable from --work.')
    fa.add_argument('--pixel-model', required=True, help='ERFNet pixel model (train pixel)')
    add_training_io_options(fa)
    fa.add_argument('--epochs', type=int, default=0,
                    help="joint epochs (default 0: half the pixel model's, the paper's 2:1)")
    fa.add_argument('--batch-size', type=positive_int, default=8)
    fa.add_argument('--lr', type=float, default=2e-4, help='Adam, the head (default 2e-4)')
    fa.add_argument('--segmenter-lr', type=float, default=5e-5,
                    help='Adam, the segmenter (default 5e-5; 0 freezes it)')
    fa.add_argument('--every', type=positive_int, default=4,
                    help='train on every n-th train_set frame (default 4)')
    fa.add_argument('--ablation', default='full',
                    help="paper 004's Table IV: full (default), single, or -x, -w1 .. -w4, -se; "
                         'direct: the Table III baseline on the logits alone (use with '
                         '--segmenter-lr 0)')
    fa.add_argument('--resnet-width', type=positive_int, default=16,
                    help="first-stage channels of each ResNet-18 encoder (64: torchvision's)")
    fa.add_argument('--resnet18-weights', default='',
                    help='torchvision resnet18 state dict for both encoders (needs '
                         '--resnet-width 64); none: trained from scratch')
    add_seed_and_run(fa, _run_train_failure)
    pl = tsub.add_parser(
        'place', help="a whole place from the robot's normal bags: frame, pixel, fused flag",
        description='Learn one building from its normal bags: the frame branch (as train frame '
                    '--bag) and the pixel branch (as train pixel --bag) on the same bags, then '
                    "the fused hazard flag's level on their held-out blocks, paired frame by "
                    'frame, for a target of false alarms per hour -> PLACE (frame/, pixel/, '
                    'place.yaml, manifest.yaml with the sha256 of every file). All bags must '
                    'come from one camera. Resumable from --work; PLACE appears only when '
                    'complete.')
    pl.add_argument('--bag', action='append', required=True, metavar='BAG',
                    help='a normal bag of the place (repeatable: several runs)')
    pl.add_argument('--exposed', action='append', default=[], metavar='BAG:INTERVALS.yaml',
                    help='frames an operator tagged as anomalous, for the frame branch '
                         '(repeatable)')
    pl.add_argument('--out', required=True, help='place directory to write')
    pl.add_argument('--work', help='checkpoints of both branches (default out/train/<name>)')
    pl.add_argument('--topic', help="the camera topic (default: each bag's only one)")
    pl.add_argument('--every', type=positive_int, default=1,
                    help='keep every N-th frame (default 1)')
    pl.add_argument('--target-alarms-per-hour', type=float, default=2.0,
                    help='false alarms per hour of normal driving the flags are set for, '
                         'measured on the held-out blocks (default 2)')
    add_place_learning_options(pl)
    pl.add_argument('--promptable', metavar='PROMPTABLE_MODEL',
                    help='a --design crops promptable model to tune on the same bags with '
                         'pasted objects, into PLACE/instance (default none: the instance '
                         'node runs its baseline)')
    pl.add_argument('--promptable-steps', type=positive_int, default=None,
                    help="the promptable tuning's optimiser steps (default 600)")
    pl.add_argument('--overwrite', action='store_true')
    pl.set_defaults(run=_run_train_whole_place)

    df = tsub.add_parser(
        'diffusion', help="the synthesis branch's DDPM of normal frames (paper 001)",
        description='An unconditional DDPM (diffusers UNet2DModel, epsilon prediction) of '
                    "normal frames: a dataset's normal train_set frames (--data) or every "
                    'frame of bags of a normal patrol (--bag). EMA weights, progress with '
                    'rate and ETA, a sample grid every --sample-every steps, resumable from '
                    '--work -> MODEL_DIR (branch synthesis).')
    source = df.add_mutually_exclusive_group(required=True)
    source.add_argument('--data', help='dataset written by synth dataset')
    source.add_argument('--bag', action='append', default=[],
                        help='a bag of normal frames; repeat for several')
    df.add_argument('--topic', help='image topic of the bags (default: their only one)')
    df.add_argument('--out', required=True, help='model directory to write')
    df.add_argument('--work', help='checkpoints and sample grids (default out/train/<name>)')
    df.add_argument('--input-shape', type=shape8, default=(64, 112),
                    help='HxW, sides multiples of 8 (default 64x112)')
    df.add_argument('--steps', type=positive_int, default=5000,
                    help='optimiser steps (default 5000: about 1 h 45 min on 2 CPU cores)')
    df.add_argument('--batch-size', type=positive_int, default=16)
    df.add_argument('--lr', type=float, default=2e-4, help='AdamW (default 2e-4)')
    df.add_argument('--ema-decay', type=float, default=0.995)
    df.add_argument('--every', type=positive_int, default=1, help='every n-th frame')
    df.add_argument('--checkpoint-every', type=positive_int, default=250)
    df.add_argument('--sample-every', type=positive_int, default=1000)
    df.add_argument('--fp32-weights', action='store_true',
                    help='ship fp32 weights (default fp16: half the size)')
    add_seed_and_run(df, _run_train_diffusion)
    for command in tsub.choices.values():
        add_device_option(command)
        command.set_defaults(run=_in_job(command.get_default('run')))


def _frame_data(args, size=64):
    from ..branches.frame.train_model import load_frame_data
    return load_frame_data(args.data, size, getattr(args, 'exposed', 0), args.seed)


def _run_train_autoencoder(args):
    from ..branches.frame.train import train_autoencoder
    from ..training import is_main_process
    data = _frame_data(args)
    metrics = train_autoencoder(data.train, data.val[data.val_labels == 0], args.out,
                                ae_config(args), device=args.device)
    if not is_main_process():
        return 0
    print(f"best epoch {metrics['best_epoch']}: validation loss {metrics['best_val_loss']:.4f}; "
          f'written {args.out}/autoencoder.pt')
    return 0


def _run_train_density(args):
    from ..training import is_main_process
    from ..branches.frame.train import auroc_summary
    from ..branches.frame.train import cached_embeddings
    from ..branches.frame.train import density_scores
    from ..branches.frame.train import load_density
    from ..branches.frame.train import train_density
    if not args.oe:
        args.exposed = 0
    data = _frame_data(args)
    z_train = cached_embeddings(args.autoencoder, data.train, 'train')
    z_val = cached_embeddings(args.autoencoder, data.val, 'val')
    z_exp = None
    if len(data.exposed):
        z_exp = cached_embeddings(args.autoencoder, data.exposed, 'exposed')
    metrics = train_density(z_train, z_val[data.val_labels == 0], args.out,
                            density_config(args, args.oe), z_exp, device=args.device)
    if not is_main_process():
        return 0
    print(f"best epoch {metrics['best_epoch']}: validation NLL {metrics['best_val_nll']:.2f}")
    if (data.val_labels != 0).any():
        scores = density_scores(*load_density(args.out), z_val)
        s = auroc_summary(data.val_labels, scores)
        print(f"validation AUROC {s['auroc']:.3f}  AP {s['ap']:.3f}  FPR95 {s['fpr95']:.3f}")
    return 0


def _run_train_bclass(args):
    from ..training import is_main_process
    from ..branches.frame.train import cached_embeddings
    from ..branches.frame.train import ClassifierConfig
    from ..branches.frame.train import train_bclass
    data = _frame_data(args)
    z_train = cached_embeddings(args.autoencoder, data.train, 'train')
    z_val = cached_embeddings(args.autoencoder, data.val, 'val')
    z_exp = None
    if len(data.exposed):
        z_exp = cached_embeddings(args.autoencoder, data.exposed, 'exposed')
    metrics = train_bclass(z_train, z_exp, z_val, data.val_labels != 0, args.out,
                           ClassifierConfig(epochs=args.epochs, seed=args.seed),
                           device=args.device)
    if not is_main_process():
        return 0
    print(f"best epoch {metrics['best_epoch']}: validation BCE {metrics['best_val_bce']:.4f}")
    return 0


def _run_train_frame(args):
    from pathlib import Path

    work = args.work or str(Path('out') / 'train' / Path(args.out).name)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    if args.bag:
        return _run_train_frame_bags(args, work, command)
    from ..branches.frame.train_model import FrameTrainingConfig
    from ..branches.frame.train_model import train_frame_model
    exposed = args.exposed or ['all']
    if len(exposed) > 1:
        raise UsageError('--data takes one --exposed (a count or all).')
    try:
        exposed = exposed_count(exposed[0])
    except argparse.ArgumentTypeError as err:
        raise UsageError(f'--exposed with --data: {err}') from None
    config = FrameTrainingConfig(autoencoder=ae_config(args), density=density_config(args),
                                 exposed=exposed, target_fpr=args.target_fpr,
                                 seed=args.seed)
    manifest = train_frame_model(args.data, args.out, work, config, overwrite=args.overwrite,
                                 command=command, device=args.device)
    if manifest is None:            # another process of a torchrun job: rank 0 reports
        return 0
    v = manifest['validation']
    print(f'written {args.out} (work files in {work})')
    if 'auroc' in v:
        print(f"validation: AUROC {v['auroc']:.3f}  AP {v['ap']:.3f}  FPR95 {v['fpr95']:.3f} "
              f"({v['n_normal']} normal, {v['n_anomalous']} anomalous frames)")
    return 0


def _run_train_frame_bags(args, work, command):
    from ..branches.frame.train_bags import BAG_INPUT_SHAPE
    from ..branches.frame.train_bags import BagTrainingConfig
    from ..branches.frame.train_bags import ExposedSource
    from ..branches.frame.train_bags import train_frame_from_bags
    try:
        exposed = [ExposedSource.parse(text) for text in args.exposed or []]
    except ValueError as err:
        raise UsageError(f'--exposed with --bag: {err}') from None
    if args.target_alarms_per_hour <= 0:
        raise UsageError('--target-alarms-per-hour must be > 0.')
    config = BagTrainingConfig(
        autoencoder=ae_config(args, width=8, epochs=25,
                              input_size=args.input_shape or list(BAG_INPUT_SHAPE)),
        density=density_config(args, epochs=100), topic=args.topic, every=args.every,
        exposed_count=args.exposed_count,
        target_false_alarms_per_hour=args.target_alarms_per_hour, seed=args.seed)
    manifest = train_frame_from_bags(args.bag, args.out, work, config, exposed=exposed,
                                     overwrite=args.overwrite, command=command,
                                     device=args.device)
    if manifest is None:
        return 0
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


def add_pixel_training_options(p, loss=True):
    """Options of the pixel training recipe (train pixel, experiment pixel-losses)."""
    if loss:
        p.add_argument('--loss', default='ce',
                       help='ce, focal, eiml, logitnorm, or a sum such as eiml+focal (default ce)')
    p.add_argument('--loss-weight', action='append', default=[], metavar='TERM=W',
                   help='weight of a loss term, e.g. eiml=0.5 (repeatable; default 1 each)')
    p.add_argument('--gamma', type=float, default=2.0, help='focal loss gamma (2)')
    p.add_argument('--tau', type=float, default=1.0, help='LogitNorm temperature (1)')
    p.add_argument('--score', default='maxlogit',
                   help='the anomaly score the model publishes (default maxlogit)')
    p.add_argument('--input-shape', type=shape8, default=[128, 128], metavar='HxW',
                   help='training and model input (multiples of 8; default 128x128)')
    p.add_argument('--encoder-epochs', type=positive_int, default=10)
    p.add_argument('--decoder-epochs', type=positive_int, default=10)
    p.add_argument('--batch-size', type=positive_int, default=8)
    p.add_argument('--every', type=positive_int, default=1,
                   help='train on every n-th training frame (default 1: all)')
    p.add_argument('--lr', type=float, default=None,
                   help='learning rate (default 5e-4 with --data, 1e-4 with --bag)')
    p.add_argument('--seed', type=int, default=0)


def pixel_training_config(args, loss=None):
    """Build the :class:`PixelTrainingConfig` of parsed pixel training options."""
    from ..branches.pixel.losses import PixelLoss
    from ..branches.pixel.train import PixelTrainingConfig
    from ..scoring.pixel import PIXEL_SCORES
    weights = {}
    for item in args.loss_weight:
        term, _, value = item.partition('=')
        try:
            weights[term.strip()] = float(value)
        except ValueError:
            raise UsageError(f'--loss-weight {item!r}: expected TERM=WEIGHT.') from None
    void = getattr(args, 'void_outliers', False)
    score = 'void' if void else args.score
    if score not in PIXEL_SCORES or (score == 'void') != void:
        raise UsageError(f'--score {args.score!r}: choose from '
                         f'{", ".join(s for s in PIXEL_SCORES if s != "void")} (void: with '
                         '--void-outliers).')
    config = PixelTrainingConfig(
        input_shape=tuple(args.input_shape), loss=loss or args.loss, loss_weights=weights,
        gamma=args.gamma, tau=args.tau, score=score, encoder_epochs=args.encoder_epochs,
        decoder_epochs=args.decoder_epochs, batch_size=args.batch_size,
        lr=args.lr if args.lr is not None else 5e-4,
        train_every=args.every, void_outliers=void, seed=args.seed)
    try:
        PixelLoss(config.loss, config.loss_weights)
    except ValueError as err:
        raise UsageError(f'--loss: {err}') from None
    return config


def _run_train_place(args, work, command):
    import dataclasses

    from ..branches.pixel.place import PlaceTrainingConfig
    from ..branches.pixel.place import train_pixel_from_bags
    sources = tuple(s.strip() for s in args.sources.split(',') if s.strip())
    config = PlaceTrainingConfig(sources=sources, batch_size=args.batch_size, every=args.every,
                                 topic=args.topic, seed=args.seed)
    for name in ('steps', 'lr', 'target_fpr'):
        if getattr(args, name) is not None:
            config = dataclasses.replace(config, **{name: getattr(args, name)})
    if not 0 < config.target_fpr < 0.5:
        raise UsageError(f'--target-fpr must be in (0, 0.5), got {config.target_fpr}.')
    manifest = train_pixel_from_bags(args.bag, args.out, work, config, init_from=args.init_from,
                                     cutouts=args.cutouts, overwrite=args.overwrite,
                                     command=command, device=args.device)
    if manifest is None:
        return 0
    check = manifest['metrics']['held_out']
    prov = manifest['provenance']
    print(f"written {args.out}: learnt from {prov['frames']['train']} frames "
          f"({prov['driving_s']:.0f} s of driving), calibrated on "
          f"{prov['frames']['calibration']} held-out frames; pasted cut-outs on held-out "
          f"frames: AuPRC {check['pasted_auprc']:.3f}, FPR95 {check['pasted_fpr95']:.3f}; "
          f"{prov['wall_s']:.0f} s")
    return 0


def _run_train_pixel(args):
    from pathlib import Path

    from ..branches.pixel.train import train_pixel_model
    work = args.work or str(Path('out') / 'train' / Path(args.out).name)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    if args.bag:
        return _run_train_place(args, work, command)
    place = [o for o in ('init_from', 'cutouts', 'steps', 'target_fpr', 'topic')
             if getattr(args, o) is not None]
    if place:
        raise UsageError(f"--{place[0].replace('_', '-')} is an option of learning a place "
                         '(--bag), not of --data.')
    config = pixel_training_config(args)
    if args.encoder_from and not Path(args.encoder_from).is_file():
        raise UsageError(f'--encoder-from {args.encoder_from!r}: no such checkpoint file.')
    manifest = train_pixel_model(args.data, args.out, work, config, overwrite=args.overwrite,
                                 command=command, encoder_from=args.encoder_from,
                                 device=args.device)
    if manifest is None:
        return 0
    v = manifest['metrics']['validation']
    line = f"validation mIoU {v['miou']:.3f}"
    if 'pixel_auprc' in v:
        line += (f", pixel AuPRC {v['pixel_auprc']:.3f}, FPR95 {v['pixel_fpr95']:.3f} "
                 f'({config.score})')
    print(f'written {args.out}: {line}')
    return 0


def _run_train_maskcls(args):
    from pathlib import Path

    from ..branches.instance.train_maskcls import MaskClsTrainingConfig
    from ..branches.instance.train_maskcls import train_maskcls_model
    if args.init_from and not (Path(args.init_from) / 'manifest.yaml').is_file():
        raise UsageError(f'--init-from {args.init_from!r}: not a model directory.')
    config = MaskClsTrainingConfig(
        input_shape=tuple(args.input_shape), queries=args.queries, epochs=args.epochs,
        batch_size=args.batch_size, train_every=args.every, lr=args.lr, score=args.score,
        init_from=args.init_from, seed=args.seed, outlier_epochs=args.outlier_epochs,
        outlier_lr=args.outlier_lr)
    work = args.work or str(Path('out') / 'train' / Path(args.out).name)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    manifest = train_maskcls_model(args.data, args.out, work, config, overwrite=args.overwrite,
                                   command=command, device=args.device)
    if manifest is None:
        return 0
    v = manifest['metrics']['validation']
    line = f"validation mIoU {v['miou']:.3f}"
    if 'pixel_auprc' in v:
        line += f", pixel AuPRC {v['pixel_auprc']:.3f}, FPR95 {v['pixel_fpr95']:.3f} (RbA)"
    print(f'written {args.out}: {line}')
    return 0


def _run_train_failure(args):
    from pathlib import Path

    from ..branches.pixel.fsnet import FailureHeadSpec
    from ..branches.pixel.train_failure import FailureTrainingConfig
    from ..branches.pixel.train_failure import train_failure_model
    if args.epochs < 0:
        raise UsageError(f'--epochs must be >= 0, got {args.epochs}.')
    try:
        spec = FailureHeadSpec(resnet_width=args.resnet_width).ablation(args.ablation)
    except ValueError as err:
        raise UsageError(f'--ablation: {err}') from None
    if args.resnet18_weights and not Path(args.resnet18_weights).is_file():
        raise UsageError(f'--resnet18-weights {args.resnet18_weights!r}: no such file.')
    if args.resnet18_weights and args.resnet_width != 64:
        raise UsageError('--resnet18-weights loads a torchvision resnet18, whose layout needs '
                         f'--resnet-width 64 (got {args.resnet_width}).')
    config = FailureTrainingConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        segmenter_lr=args.segmenter_lr, train_every=args.every, head=spec.as_dict(),
        resnet18_weights=args.resnet18_weights, seed=args.seed)
    work = args.work or str(Path('out') / 'train' / Path(args.out).name)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    manifest = train_failure_model(args.pixel_model, args.data, args.out, work, config,
                                   overwrite=args.overwrite, command=command,
                                   device=args.device)
    if manifest is None:
        return 0
    m = manifest['metrics']
    print(f"written {args.out}: validation AP-Err {m['best_ap_err']:.3f} (epoch "
          f"{m['best_epoch']}), mIoU {m['validation']['miou']:.3f} (before "
          f"{m['miou_before']:.3f})")
    return 0


def _run_train_diffusion(args):
    from pathlib import Path

    from ..branches.synthesis.train import DiffusionTrainingConfig
    from ..branches.synthesis.train import train_diffusion_model
    for bag in args.bag:
        if not Path(bag).exists():
            raise UsageError(f'--bag {bag!r}: no such file or directory.')
    config = DiffusionTrainingConfig(
        input_shape=tuple(args.input_shape), steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, ema_decay=args.ema_decay, every=args.every,
        checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
        fp16_weights=not args.fp32_weights, seed=args.seed)
    work = args.work or str(Path('out') / 'train' / Path(args.out).name)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    manifest = train_diffusion_model(args.out, work, config, data=args.data, bags=args.bag,
                                     topic=args.topic, overwrite=args.overwrite,
                                     command=command, device=args.device)
    if manifest is None:            # another process of a torchrun job: rank 0 reports
        return 0
    history = manifest['metrics']['history']
    last = history[-1] if history else {}
    print(f"written {args.out}: {manifest['metrics']['parameters'] / 1e6:.1f} M parameters, "
          f"loss {last.get('loss', float('nan')):.4f}, held-out loss "
          f"{last.get('val_loss') or float('nan'):.4f}, {manifest['metrics']['train_s']:.0f} s "
          f'of training; samples in {work}/samples')
    return 0


def _run_train_promptable(args):
    from pathlib import Path

    from ..branches.instance.train_promptable import PromptableTrainingConfig
    from ..branches.instance.train_promptable import train_promptable_model
    if args.design == 'crops':
        return _run_train_clickcrops(args)
    if args.bag:
        raise UsageError('--bag tunes a --design crops model on a place; --design sam trains '
                         'on --data.')
    if not args.data:
        raise UsageError('train promptable needs --data (or, --design crops, --bag).')
    if args.image_size % 16:
        raise UsageError(f'--image-size must be a multiple of 16, got {args.image_size}.')
    if args.init_from and not (Path(args.init_from) / 'manifest.yaml').is_file():
        raise UsageError(f'--init-from {args.init_from!r}: not a model directory.')
    config = PromptableTrainingConfig(
        image_size=args.image_size, epochs=args.epochs, batch_size=args.batch_size or 8,
        prompts_per_image=args.prompts_per_image, train_every=args.every or 1,
        lr=args.lr or 3e-4, warmup_steps=args.warmup_steps, patch_size=args.patch_size,
        init_promptable=args.init_promptable, init_from=args.init_from, seed=args.seed,
        refine_rounds=args.refine_rounds)
    work = args.work or str(Path('out') / 'train' / Path(args.out).name)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    manifest = train_promptable_model(args.data, args.out, work, config,
                                      overwrite=args.overwrite, command=command,
                                      device=args.device)
    if manifest is None:
        return 0
    m = manifest['metrics']
    print(f'written {args.out}: validation mask IoU from one point per anomaly '
          f"{m['validation_anomaly_iou']:.3f} (epoch {m['best_epoch']})")
    return 0


def _run_train_clickcrops(args):
    from pathlib import Path

    from ..branches.instance.train_clickcrops import ClickCropsTrainingConfig
    from ..branches.instance.train_clickcrops import train_clickcrops_model
    if args.init_from or args.refine_rounds:
        raise UsageError('--design crops trains on single clicks: --init-from and '
                         '--refine-rounds are for --design sam.')
    work = args.work or str(Path('out') / 'train' / Path(args.out).name)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    if args.bag:
        return _run_tune_clickcrops(args, work, command)
    if args.init_promptable or not args.data:
        raise UsageError('--design crops: --data trains from scratch; --bag with '
                         '--init-promptable tunes a crops model on a place.')
    config = ClickCropsTrainingConfig(
        steps=args.steps or 6000, val_every=args.val_every,
        batch_size=args.batch_size or 32, train_every=args.every or 4, lr=args.lr or 2e-3,
        seed=args.seed)
    manifest = train_clickcrops_model(args.data, args.out, work, config,
                                      overwrite=args.overwrite, command=command,
                                      device=args.device)
    if manifest is None:
        return 0
    m = manifest['metrics']
    print(f'written {args.out}: validation mask IoU from one point per anomaly '
          f"{m['validation_anomaly_iou']:.3f} (step {m['best_step']})")
    return 0


def _run_tune_clickcrops(args, work, command):
    from ..branches.instance.place_clickcrops import PLACE_STEPS
    from ..branches.instance.place_clickcrops import tune_clickcrops_on_bags
    from ..branches.instance.train_clickcrops import ClickCropsTrainingConfig
    if not args.init_promptable:
        raise UsageError('--bag tunes a model: give --init-promptable, a --design crops model '
                         'directory.')
    if args.data:
        raise UsageError('give --data (train from scratch) or --bag (tune on a place), not '
                         'both.')
    steps = args.steps or PLACE_STEPS
    config = ClickCropsTrainingConfig(
        steps=steps, val_every=min(args.val_every, steps), batch_size=args.batch_size or 32,
        lr=args.lr or 5e-4, warmup_steps=min(50, steps // 4), seed=args.seed)
    manifest = tune_clickcrops_on_bags(args.bag, args.init_promptable, args.out, work, config,
                                       every=args.every or 10, overwrite=args.overwrite,
                                       command=command, device=args.device)
    if manifest is None:
        return 0
    m = manifest['metrics']
    print(f'written {args.out}: held-out pasted objects, mask IoU from one point '
          f"{m['held_out_iou_before']:.3f} before -> {m['validation_anomaly_iou']:.3f} "
          f"(step {m['best_step']})")
    return 0


def add_place_learning_options(p):
    """Add ``train place``'s learning options (also ``experiment place``'s)."""
    p.add_argument('--init-from', metavar='PIXEL_MODEL',
                   help='the pixel model to start from (default the shipped pixel_erfnet)')
    p.add_argument('--pixel-steps', type=positive_int, default=None,
                   help="the pixel branch's optimiser steps (default 480)")
    p.add_argument('--frame-epochs', type=positive_int, default=None,
                   help="the frame branch's autoencoder epochs (default 25)")
    p.add_argument('--density-epochs', type=positive_int, default=None,
                   help="the frame branch's Real-NVP epochs (default 100)")
    p.add_argument('--seed', type=int, default=0)


def place_learning_config(args, rate=2.0, topic=None, every=1):
    """Return the ``PlaceConfig`` of :func:`add_place_learning_options`' options."""
    import dataclasses

    from ..branches.frame.train_bags import BagTrainingConfig
    from ..branches.pixel.place import PlaceTrainingConfig
    from ..branches.place.place import PlaceConfig
    frame = BagTrainingConfig(topic=topic, every=every, target_false_alarms_per_hour=rate,
                              seed=args.seed)
    if args.frame_epochs:
        frame = dataclasses.replace(frame, autoencoder=dataclasses.replace(
            frame.autoencoder, epochs=args.frame_epochs))
    if args.density_epochs:
        frame = dataclasses.replace(frame, density=dataclasses.replace(
            frame.density, epochs=args.density_epochs))
    pixel = PlaceTrainingConfig(topic=topic, every=every, target_false_alarms_per_hour=rate,
                                seed=args.seed)
    if args.pixel_steps:
        pixel = dataclasses.replace(pixel, steps=args.pixel_steps)
    return PlaceConfig(frame=frame, pixel=pixel, target_false_alarms_per_hour=rate)


def _run_train_whole_place(args):
    import dataclasses
    from pathlib import Path

    from ..branches.frame.train_bags import ExposedSource
    from ..branches.place.place import train_place_from_bags
    if args.target_alarms_per_hour <= 0:
        raise UsageError('--target-alarms-per-hour must be > 0.')
    try:
        exposed = [ExposedSource.parse(text) for text in args.exposed]
    except ValueError as err:
        raise UsageError(f'--exposed: {err}') from None
    config = place_learning_config(args, args.target_alarms_per_hour, args.topic, args.every)
    if args.promptable_steps and not args.promptable:
        raise UsageError('--promptable-steps: name the model to tune with --promptable.')
    if args.promptable_steps:
        config = dataclasses.replace(config, promptable=dataclasses.replace(
            config.promptable, steps=args.promptable_steps))
    work = args.work or str(Path('out') / 'train' / Path(args.out).name)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    place = train_place_from_bags(args.bag, args.out, work, config, exposed=exposed,
                                  pixel_init_from=args.init_from,
                                  promptable_from=args.promptable, overwrite=args.overwrite,
                                  command=command, device=args.device)
    if place is None:
        return 0
    fusion, wall = place['fusion'], place['provenance']['wall_s']
    w, h = place['camera']['resolution']
    tuned = f", promptable model {wall['instance']:.0f} s" if 'instance' in wall else ''
    print(f'written {args.out} (work files in {work}): a {w}x{h} camera on '
          f"{place['camera']['topic']}; frame branch {wall['frame']:.0f} s, pixel branch "
          f"{wall['pixel']:.0f} s{tuned}, {wall['total']:.0f} s in all")
    print(f"fused flag: on probability {fusion['on_probability']:.10g} for "
          f"{fusion['target_false_alarms_per_hour']:g} false alarms per hour, fitted on "
          f"{fusion['heldout_frames']} held-out frames")
    return 0
