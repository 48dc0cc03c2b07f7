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

"""``score``, ``evaluate`` and ``experiment``: models on images and datasets.

And the papers' comparisons, reproduced on our data.
"""

from .common import add_ae_options
from .common import add_density_options
from .common import ae_config
from .common import aspect
from .common import density_config
from .common import exposed_count
from .common import Parser
from .common import positive_int
from .common import resolve_branch
from .common import UsageError
from .train import add_pixel_training_options
from .train import pixel_training_config


def add_score(sub):
    p = sub.add_parser('score', help="score images with a branch's model",
                       description='Score image files (or folders of them) with a model. '
                                   'Frame branch: one row per image with the raw score (NLL, '
                                   'nats), the calibrated probability and the hazard flag. '
                                   'Pixel branch: per image the anomaly map, semantic ids and '
                                   'an overlay in --out.')
    p.add_argument('paths', nargs='+', help='image files or folders')
    p.add_argument('--model', default=None,
                   help="model directory (default: the branch's shipped model; the frame "
                        'branch: models/frame_rnvp_oe)')
    from ..perception.branches import branch_names
    p.add_argument('--branch', choices=branch_names(),
                   help="which branch's pipeline (default: the --model's, else frame)")
    p.add_argument('--csv', help='frame branch: also write the rows to this CSV file')
    p.add_argument('--out', help='pixel branch: directory for <stem>.anomaly.npy (float32 '
                                 'at the input resolution, higher = more anomalous), '
                                 '<stem>.semantic.png and <stem>.overlay.jpg')
    p.add_argument('--target-fpr', type=float, help="override the model's threshold target")
    p.add_argument('--pixel-model', default=None,
                   help='instance branch: the pixel model whose map drives the prompts '
                        '(default models/pixel_erfnet); --model is then the promptable '
                        'segmenter (default models/instance_sam_small). Writes per image '
                        '<stem>.instances.png (uint16 ids, 0 = none), <stem>.instances.json '
                        '(score and box per id), <stem>.anomaly.npy (the refined map) and '
                        '<stem>.overlay.jpg to --out')
    p.add_argument('--prompt-fpr', type=float, default=None,
                   help='instance branch: prompts where the pixel map is above its '
                        'calibrated threshold at this pixel false-positive rate (default 0.05)')
    p.add_argument('--instance-fpr', type=float, default=None,
                   help='instance branch: keep an instance only when its score is above the '
                        'pixel threshold at this false-positive rate (default 0.05, the '
                        "node's; 1 keeps every mask, UGainS as published)")
    p.add_argument('--backend', default='torch',
                   help='torch, onnxruntime, tensorrt or auto (default torch)')
    p.set_defaults(run=_run_score)


def _run_score(args):
    files = _image_files(args.paths)
    if args.branch == 'instance' or (args.branch is None and args.model is not None and
                                     _manifest_branch(args.model) == 'instance'):
        return _score_instance(files, args)
    branch, model = resolve_branch(args.branch, args.model)
    writer = SCORE_WRITERS.get(branch.name)
    if branch.name == 'synthesis':
        raise UsageError('score --branch synthesis: use anomaly-perception synthesize IMAGES '
                         '--out DIR (the edit, the map and a panel per image).')
    if writer is None:
        raise UsageError(f'score has no output for the {branch.name!r} branch yet.')
    detector = branch.detector_class.from_model_dir(model, args.backend,
                                                    target_fpr=args.target_fpr)
    return writer(detector, files, model, args)


def _manifest_branch(model):
    from ..runtime.manifest import load_manifest
    return load_manifest(model, verify=False).get('branch')


def _image_files(paths):
    from pathlib import Path

    from ..errors import AnomalyPerceptionError
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir()
                            if f.suffix.lower() in ('.jpg', '.jpeg', '.png', '.bmp'))
        elif p.is_file():
            files.append(p)
        else:
            raise AnomalyPerceptionError(f'{str(p)!r} is neither an image file nor a folder.')
    if not files:
        raise AnomalyPerceptionError('No images to score.')
    return files


def _read_image(path):
    import cv2

    from ..errors import AnomalyPerceptionError
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise AnomalyPerceptionError(f'Cannot decode image {str(path)!r}.')
    return img


def _score_frame(detector, files, model, args):
    import csv
    import io

    from ..io.files import atomic_write_text
    rows = []
    for f in files:
        s = detector.score(_read_image(f), channel_order='bgr')
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


def _score_pixel(detector, files, model, args):
    import io
    from pathlib import Path

    import cv2
    import numpy as np

    from ..io.files import atomic_write_bytes
    from ..io.pixel_messages import overlay_image
    if not args.out:
        raise UsageError('score --branch pixel writes images: give --out DIR.')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'image':<40}  {'frame score':>11}  {'prob':>6}  {'mask %':>6}   (model {model}, "
          f'backend {detector.backend.name}, mask at pixel FPR {detector.target_fpr:g})')
    for f in files:
        bgr = _read_image(f)
        r = detector.segment(bgr, channel_order='bgr')[0]
        stem = Path(f).stem
        buf = io.BytesIO()
        np.save(buf, r.anomaly.astype(np.float32))
        atomic_write_bytes(out / f'{stem}.anomaly.npy', buf.getvalue())
        atomic_write_bytes(out / f'{stem}.semantic.png', _encode('.png', r.semantic))
        if r.failure is not None:
            buf = io.BytesIO()
            np.save(buf, r.failure.astype(np.float32))
            atomic_write_bytes(out / f'{stem}.failure.npy', buf.getvalue())
        overlay = overlay_image(bgr[..., ::-1], r)
        atomic_write_bytes(out / f'{stem}.overlay.jpg',
                           _encode('.jpg', cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)))
        print(f'{str(f):<40}  {r.frame_score:11.3f}  {r.frame_probability:6.3f}  '
              f'{100.0 * r.mask.mean():6.2f}')
    extra = ', .failure.npy' if detector.has_failure else ''
    print(f'written {out}/<stem>.anomaly.npy, .semantic.png{extra}, .overlay.jpg for '
          f'{len(files)} image(s)')
    return 0


def _score_instance(files, args):
    import io
    from pathlib import Path

    import cv2
    import numpy as np

    from ..io.files import atomic_write_bytes
    from ..io.files import atomic_write_json
    from ..io.instance_messages import instance_overlay
    from ..perception.instance import InstanceAnomalySegmenter
    from ..perception.instance_config import InstanceNodeConfig
    if not args.out:
        raise UsageError('score --branch instance writes images: give --out DIR.')
    node = InstanceNodeConfig()         # the node's defaults, so both give the same instances
    seg = InstanceAnomalySegmenter.from_model_dirs(
        args.pixel_model, args.model, backend=args.backend,
        prompt_fpr=args.prompt_fpr if args.prompt_fpr is not None else node.prompt_fpr,
        instance_fpr=args.instance_fpr if args.instance_fpr is not None else node.instance_fpr,
        num_points=node.num_points, nms_iou=node.nms_iou)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'image':<40}  {'instances':>9}  {'best score':>10}   (prompts where the pixel "
          f'map >= {seg.config.threshold:.4g}, its threshold at pixel FPR {seg.prompt_fpr:g}; '
          f'{seg.config.num_points} points)')
    for f in files:
        bgr = _read_image(f)
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        r = seg.segment(rgb)
        stem = Path(f).stem
        atomic_write_bytes(out / f'{stem}.instances.png', _encode('.png', r.ids))
        atomic_write_json(out / f'{stem}.instances.json', {
            'image': Path(f).name, 'height': int(rgb.shape[0]), 'width': int(rgb.shape[1]),
            'instances': [{'id': k + 1, 'score': float(s), 'box_xyxy': [int(v) for v in b]}
                          for k, (s, b) in enumerate(zip(r.scores, r.boxes))]}, indent=1)
        buf = io.BytesIO()
        np.save(buf, r.refined.astype(np.float32))
        atomic_write_bytes(out / f'{stem}.anomaly.npy', buf.getvalue())
        atomic_write_bytes(out / f'{stem}.overlay.jpg',
                           _encode('.jpg', cv2.cvtColor(instance_overlay(rgb, r),
                                                        cv2.COLOR_RGB2BGR)))
        best = f'{r.scores[0]:.3f}' if len(r.scores) else '-'
        print(f'{str(f):<40}  {len(r.scores):9d}  {best:>10}')
    print(f'written {out}/<stem>.instances.png, .instances.json, .anomaly.npy, .overlay.jpg '
          f'for {len(files)} image(s)')
    return 0


def _encode(ext, image):
    import cv2

    from ..errors import AnomalyPerceptionError
    ok, data = cv2.imencode(ext, image)
    if not ok:
        raise AnomalyPerceptionError(f'Cannot encode a {ext} image.')
    return data.tobytes()


# branch -> how ``score`` writes its results
SCORE_WRITERS = {'frame': _score_frame, 'pixel': _score_pixel}


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
    from ..evaluation.pixel_eval import evaluate_pixel
    from ..evaluation.pixel_eval import format_pixel_report
    _, model = resolve_branch('pixel', args.model)
    report = evaluate_pixel(model, args.data, args.out, args.split, args.backend, args.limit,
                            region_aspect=args.region_aspect)
    print(format_pixel_report(report))
    print(f'written {args.out}/report.json, pr.png, contact_sheet.jpg')
    return 0


def _run_evaluate_frame(args):
    from ..evaluation.frame_eval import evaluate_frame
    from ..evaluation.frame_eval import format_report
    report = evaluate_frame(args.model, args.data, args.out, args.split)
    print(format_report(report))
    print(f'written {args.out}/report.json, roc.png, pr.png, histogram.png')
    return 0


def add_experiment(sub):
    p = sub.add_parser('experiment', help="reproduce the papers' comparisons",
                       description='Reproduce published comparisons on a dataset of ours.')
    xsub = p.add_subparsers(dest='experiment_command', metavar='SUBCOMMAND', required=True,
                            parser_class=Parser)
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
    f.add_argument('--bclass-epochs', type=positive_int, default=100)
    add_ae_options(f)
    add_density_options(f)
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
    lp.add_argument('--workers', type=positive_int, default=2)
    lp.add_argument('--square', action='store_true',
                    help='also train on the centre square only (64x64) and compare AUROC on '
                         'anomalies off the centre')
    lp.set_defaults(run=_run_experiment_learn_place)
    px = xsub.add_parser(
        'pixel-losses', help="paper 002's Tables 1-4: each loss x each pixel score",
        description='One shared encoder stage, then one decoder stage per --losses entry on '
                    'the same schedule (model directories in OUT/models/), each scored with '
                    'MSP, MSP t=0.5/0.75/1.1, MaxLogit and MaxEntropy on the test split '
                    '(local anomaly types): pixel AuPRC, FPR95, F1*, sIoU, PPV, mIoU, per '
                    'type -> pixel_losses.json, pixel_losses.md. Resumable.')
    px.add_argument('--data', required=True, help='dataset written by synth dataset')
    px.add_argument('--out', required=True)
    px.add_argument('--losses',
                    help='comma-separated losses, in training order (default: ce, focal, '
                         'eiml+focal, logitnorm+focal, eiml, logitnorm, eiml+ce, logitnorm+ce; '
                         'void: CE with a void class trained on outliers_set, i.e. outlier '
                         'exposure)')
    add_pixel_training_options(px, loss=False)
    px.set_defaults(run=_run_experiment_pixel_losses)
    ug = xsub.add_parser(
        'ugains', help="paper 003's Tables 2, 4 and 5 (UGainS steps, samplers, points)",
        description='One pass over the test split (local types): the driving map from '
                    '--score-model, the prompts of every row through --promptable on one image '
                    'embedding per frame; pixel AP/FPR95, iAP/iAP50, point precision/recall '
                    'per row -> ugains.json, ugains.md, contact_sheet.jpg.')
    ug.add_argument('--score-model', required=True,
                    help='pixel model directory whose map drives the prompts (RbA: a '
                         'train maskcls model)')
    ug.add_argument('--promptable', required=True, help='train promptable model directory')
    ug.add_argument('--data', required=True)
    ug.add_argument('--out', required=True)
    ug.add_argument('--split', default='test_set')
    ug.add_argument('--every', type=positive_int, default=1, help='every n-th frame')
    ug.add_argument('--limit', type=positive_int, help='at most N frames')
    ug.add_argument('--threshold', type=float, default=-0.15,
                    help='prompt candidates: map >= this (default -0.15, RbA)')
    ug.add_argument('--fallback-threshold', type=float, default=-15.0,
                    help='used when no pixel reaches --threshold (default -15)')
    ug.add_argument('--prompt-fpr', type=float,
                    help='instead of --threshold: the calibrated threshold of the score model '
                         'at this pixel false-positive rate on normal validation pixels')
    ug.add_argument('--nms-iou', type=float, default=0.7)
    ug.add_argument('--instance-fpr', type=float,
                    help="add Table 2's '+ instance filter' row: keep instances scoring above "
                         "the score model's calibrated threshold at this pixel false-positive "
                         "rate (the instance node's default filter, 0.05)")
    ug.add_argument('--points', default='10,20,50,100,200',
                    help='FPS point counts of Table 5')
    ug.set_defaults(run=_run_experiment_ugains)
    fx = xsub.add_parser(
        'failure', help="paper 004's Tables III and IV (failure detection: FSNet vs baselines)",
        description='One pass over the test split (local types and normal) at the pixel '
                    "model's input: MSP, MaxLogit, entropy and MC dropout on the stage-1 pixel "
                    'model, and every failure model (train failure) given by name; AP-Err, '
                    'AP-Suc, AUROC, FPR95, risk-coverage and mIoU -> failure.json, failure.md, '
                    'risk_coverage.png.')
    fx.add_argument('--pixel-model', required=True,
                    help='the segmenter the baselines judge: the stage-1 pixel model (train '
                         'pixel), or a model with a head (the shipped default), whose head '
                         "is then the row 'full'")
    fx.add_argument('--failure-model', action='append', default=[], metavar='NAME=DIR',
                    help="a train failure model: full (FSNet), direct, or an ablation's name "
                         '(-x, -w1 .. -w4, -se, single); repeat for several')
    fx.add_argument('--data', required=True)
    fx.add_argument('--out', required=True)
    fx.add_argument('--split', default='test_set')
    fx.add_argument('--every', type=positive_int, default=1, help='every n-th frame')
    fx.add_argument('--limit', type=positive_int, help='at most N frames')
    fx.add_argument('--mc-samples', type=positive_int, default=8,
                    help='MC dropout passes (default 8)')
    fx.set_defaults(run=_run_experiment_failure)
    sx = xsub.add_parser(
        'synthesis', help="paper 001's Table I (anomalies by synthesis) on a fixed subset",
        description='A fixed subset of the split (every --every-th normal or local-anomaly '
                    'frame, at most --limit spread over the split), each edited with the '
                    'three guidances; rows: SSIM, RGB, the feature space without and with '
                    'segment refinement, the forward-matching and mismatched baselines, '
                    'and the pixel and instance branches on the same frames; AUC-PR, '
                    'AUROC, FPR95, F1* -> '
                    'synthesis.json, synthesis.md, synthesis_pr.png, contact_sheet.jpg.')
    sx.add_argument('--model', default=None, help='synthesis model (default '
                                                  'models/synthesis_ddpm)')
    sx.add_argument('--data', required=True)
    sx.add_argument('--out', required=True)
    sx.add_argument('--split', default='test_set')
    sx.add_argument('--every', type=positive_int, default=8)
    sx.add_argument('--limit', type=positive_int, default=24)
    sx.add_argument('--calib-frames', type=positive_int, default=8,
                    help='normal validation frames that set each row threshold (F1*)')
    sx.add_argument('--no-branches', action='store_true',
                    help='leave out the pixel and instance branch rows')
    from .synthesize import add_synthesis_options
    add_synthesis_options(sx)
    sx.set_defaults(run=_run_experiment_synthesis)
    sl = xsub.add_parser(
        'synthesis-strength', help='choose the guidance strength lambda on validation frames',
        description='Edit a fixed subset of the validation split (every --every-th normal or '
                    'local-anomaly frame, at most --limit spread over the split) at each '
                    '--strengths value, analysed as the branch does; the lambda with the '
                    'highest pixel AUC-PR is chosen -> strength.json, strength.png.')
    sl.add_argument('--model', default=None, help='synthesis model (default '
                                                  'models/synthesis_ddpm)')
    sl.add_argument('--data', required=True)
    sl.add_argument('--out', required=True)
    sl.add_argument('--split', default='validation_set')
    sl.add_argument('--every', type=positive_int, default=8)
    sl.add_argument('--limit', type=positive_int, default=16)
    sl.add_argument('--strengths', default='0.0001,0.0003,0.001,0.002',
                    help='comma-separated lambdas (default 0.0001,0.0003,0.001,0.002; larger '
                         'ones make the shipped model diverge at 100 steps)')
    sl.add_argument('--save-to-model', action='store_true',
                    help="write the chosen lambda and the steps into the model's manifest "
                         '(its guidance defaults, with where they came from)')
    add_synthesis_options(sl)
    sl.set_defaults(run=_run_experiment_synthesis_strength)
    fl = xsub.add_parser(
        'floor', help='hazards on the floor: projection error against the synthetic world',
        description='Renders pinhole-camera runs (corridor, tunnel), places each instance '
                    "mask's ground contact on the floor with the calibrated mounting and "
                    "compares with the renderer's geometry -> floor.json, floor.png.")
    fl.add_argument('--out', required=True)
    fl.add_argument('--runs', type=positive_int, default=60)
    fl.add_argument('--frames-per-run', type=positive_int, default=4)
    fl.add_argument('--seed', type=int, default=0)
    fl.add_argument('--width', type=positive_int, default=640)
    fl.add_argument('--height', type=positive_int, default=360)
    fl.add_argument('--no-progress', action='store_true')
    fl.set_defaults(run=_run_experiment_floor)


def _run_experiment_floor(args):
    from ..evaluation.floor_eval import measure_floor_errors
    from ..evaluation.floor_eval import write_floor_report
    from ..train.common import progress
    bar = progress(args.runs, 'floor runs', enabled=not args.no_progress)
    bar.unit = 'run'

    def step(done, _total):
        bar.update(done - bar.n)
    errors = measure_floor_errors(args.runs, args.frames_per_run, args.seed, args.width,
                                  args.height, progress=step)
    bar.close()
    summary = write_floor_report(args.out, errors, {k: getattr(args, k) for k in (
        'runs', 'frames_per_run', 'seed', 'width', 'height')})
    if not errors:
        raise UsageError('No instance was 1-5 m ahead in these runs; use more --runs.')
    print(f"{summary['n']} instances 1-5 m ahead: median distance error "
          f"{summary['median_relative_error']:.1%} of the true distance "
          f"({summary['median_abs_error_m']:.3f} m), p90 {summary['p90_relative_error']:.1%}")
    for band, row in summary['per_distance'].items():
        print(f"  {band}: {row['n']} instances, median {row['median_relative_error']:.1%}")
    print(f'written {args.out}/floor.json, floor.png')
    return 0


def _run_experiment_synthesis(args):
    from .synthesize import synthesis_options
    from ..evaluation.synthesis_experiments import format_synthesis_report
    from ..evaluation.synthesis_experiments import run_synthesis_experiment
    options = synthesis_options(args)
    refinements = (options.refine, *[r for r in ('slic', 'promptable') if r != options.refine])
    refinements = tuple(r for r in refinements if r != 'none') or ('slic',)
    report = run_synthesis_experiment(args.model, args.data, args.out, options=options,
                                      split=args.split, every=args.every, limit=args.limit,
                                      calib_frames=args.calib_frames,
                                      branches=not args.no_branches, refinements=refinements)
    print(format_synthesis_report(report))
    print(f'written {args.out}/synthesis.json, synthesis.md, synthesis_pr.png')
    return 0


def _run_experiment_synthesis_strength(args):
    from .synthesize import synthesis_options
    from ..evaluation.synthesis_experiments import run_strength_sweep
    try:
        strengths = [float(v) for v in args.strengths.split(',') if v.strip()]
    except ValueError:
        raise UsageError(f'--strengths {args.strengths!r}: comma-separated numbers.') from None
    if args.strength is not None:
        raise UsageError('experiment synthesis-strength sweeps --strengths; leave out '
                         '--strength.')
    report = run_strength_sweep(args.model, args.data, args.out, strengths,
                                options=synthesis_options(args), split=args.split,
                                every=args.every, limit=args.limit)
    print(f"{report['frames']} frames of {report['split']} ({report['anomalous_frames']} with "
          f"local anomalies), {report['guidance']} guidance, {report['steps']} steps:")
    for row in report['rows']:
        print(f"  lambda {row['strength']:g}: AUC-PR {100 * row['auprc']:.2f}  AUROC "
              f"{100 * row['auroc']:.2f}  FPR95 {100 * row['fpr95']:.2f}")
    print(f"chosen lambda {report['chosen']:g}; written {args.out}/strength.json, strength.png")
    if args.save_to_model:
        from ..runtime.manifest import add_files
        from ..runtime.manifest import shipped_model_dir
        model = args.model or shipped_model_dir('synthesis_ddpm')
        add_files(model, {}, updates={
            'guidance': {'guidance': report['guidance'], 'strength': report['chosen'],
                         'steps': report['steps']},
            'guidance_chosen_by': {
                'command': 'experiment synthesis-strength', 'split': report['split'],
                'frames': report['frames'], 'every': report['every'],
                'auprc': {f"{r['strength']:g}": round(r['auprc'], 4) for r in report['rows']}}})
        print(f"{model}: guidance defaults set to {report['guidance']}, lambda "
              f"{report['chosen']:g}, {report['steps']} steps")
    return 0


def _run_experiment_failure(args):
    from ..evaluation.failure_experiments import format_failure_report
    from ..evaluation.failure_experiments import run_failure_experiment
    models = {}
    for item in args.failure_model:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise UsageError(f'--failure-model {item!r}: expected NAME=DIR.')
        if name in models:
            raise UsageError(f'--failure-model: {name!r} given twice.')
        models[name] = path
    report = run_failure_experiment(args.pixel_model, models, args.data, args.out,
                                    split=args.split, every=args.every, limit=args.limit,
                                    mc_samples=args.mc_samples)
    print(format_failure_report(report))
    print(f'written {args.out}/failure.json, failure.md, risk_coverage.png')
    return 0


def _run_experiment_ugains(args):
    from ..evaluation.ugains_experiments import format_ugains_report
    from ..evaluation.ugains_experiments import run_ugains_experiment
    from ..instance.ugains import UGainSConfig
    try:
        points = tuple(int(v) for v in args.points.split(','))
        config = UGainSConfig(threshold=args.threshold,
                              fallback_threshold=args.fallback_threshold,
                              nms_iou=args.nms_iou)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if 50 not in points:
        raise UsageError('--points must include 50 (the Table 2 and 4 rows).')
    report = run_ugains_experiment(args.score_model, args.promptable, args.data, args.out,
                                   config=config, split=args.split, every=args.every,
                                   limit=args.limit, points=points, prompt_fpr=args.prompt_fpr,
                                   instance_fpr=args.instance_fpr)
    print(format_ugains_report(report))
    print(f'written {args.out}/ugains.json, ugains.md')
    return 0


def _run_experiment_pixel_losses(args):
    import sys

    from ..evaluation.pixel_experiments import format_loss_table
    from ..evaluation.pixel_experiments import LOSS_STUDY
    from ..evaluation.pixel_experiments import run_pixel_losses
    names = [n.strip() for n in (args.losses or ','.join(LOSS_STUDY)).split(',') if n.strip()]
    for name in names:
        if name != 'void':
            pixel_training_config(args, loss=name)      # each name checked before training
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:])
    results = run_pixel_losses(args.data, args.out, pixel_training_config(args, loss='ce'),
                               names, command=command)
    print(format_loss_table(results))
    print(f'written {args.out}/pixel_losses.json, pixel_losses.md, models/')
    return 0


def _run_experiment_learn_place(args):
    from ..evaluation.learn_place import format_learn_place
    from ..evaluation.learn_place import run_learn_place
    results = run_learn_place([int(v) for v in args.scene_seeds.split(',')], args.out,
                              [int(v) for v in args.exposures.split(',')], args.workers,
                              square=args.square)
    print(format_learn_place(results))
    print(f'written {args.out}/results.json, results.md, results.png')
    return 0


def _run_experiment_frame(args):
    from ..evaluation.frame_experiments import format_fig7
    from ..evaluation.frame_experiments import format_protocols
    from ..evaluation.frame_experiments import format_table2
    from ..evaluation.frame_experiments import run_protocols
    from ..train.frame import ClassifierConfig
    seeds = [int(s) for s in args.seeds.split(',')]
    exposures = [exposed_count(e) for e in args.exposures.split(',')]
    args.seed = seeds[0]
    everything = run_protocols(args.data, args.out, seeds, ae_config(args),
                               density_config(args),
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
