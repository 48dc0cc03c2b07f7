"""``experiment``: the papers' comparisons, reproduced on datasets of ours."""

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

from .common import add_ae_options
from .common import add_density_options
from .common import ae_config
from .common import density_config
from .common import exposed_count
from .common import Parser
from .common import positive_int
from .train import add_pixel_training_options
from .train import add_place_learning_options
from .train import pixel_training_config
from .train import place_learning_config
from ..errors import UsageError


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
    pp = xsub.add_parser(
        'pixel-place', help='learn buildings from their normal bags, score patrols of other runs',
        description='Per --building ENV:SCENE[:WxH]: a 300 s normal patrol at 10 Hz -> train '
                    'pixel --bag; a 120 s patrol of another run with in-scene anomalies scored '
                    'by the shipped model, the place model and the peer (DRAEM, when the '
                    "'peer' extra is installed), on the same frames: pixel AuPRC, FPR95 and "
                    'per type, normal pixels flagged, frame-flag false alarms per hour. With '
                    '--real FOLDER, also learn each real place from its normal frames '
                    '(leave one out). Writes results.json, results.md, results.png, overlays '
                    'and a contact sheet.')
    pp.add_argument('--building', action='append', required=True, metavar='ENV:SCENE[:WxH]',
                    help='a synthetic building (repeatable), e.g. factory:37:640x480')
    pp.add_argument('--out', required=True)
    pp.add_argument('--real', metavar='FOLDER',
                    help='real frames named <place>_normal<n>.jpg and <place>_<hazard>.jpg')
    pp.add_argument('--no-peer', action='store_true', help='skip the peer row')
    pp.add_argument('--steps', type=positive_int, default=None,
                    help='place training steps (default: those of train pixel --bag)')
    pp.add_argument('--workers', type=positive_int, default=2)
    pp.set_defaults(run=_run_experiment_pixel_place)
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
    pa = xsub.add_parser(
        'painted', help='instances of objects no model saw, painted onto normal frames',
        description='Every other normal frame of --split gets one procedural cut-out '
                    'pasted onto its floor; each --designs entry runs as score --branch '
                    'instance does (the node thresholds): recall at IoU 0.5 of the painted '
                    'objects, false instances per unpainted frame -> painted.json, '
                    'painted.md, painted_<design>.jpg.')
    pa.add_argument('--data', required=True,
                    help='dataset whose normal frames are painted (a seed no model trained on)')
    pa.add_argument('--out', required=True)
    pa.add_argument('--pixel-model', default=None,
                    help='pixel model whose map drives the instances (default the shipped one)')
    pa.add_argument('--designs', default='components=components,'
                    'sam_small=models/instance_sam_small',
                    help='NAME=DIR,... promptable model directories, or components (no model); '
                         'default: the baseline and the shipped model')
    pa.add_argument('--split', default='test_set')
    pa.add_argument('--every', type=positive_int, default=1, help='every n-th normal frame')
    pa.add_argument('--limit', type=positive_int, help='at most N frames')
    pa.add_argument('--seed', type=int, default=0, help='the cut-outs and where they land')
    pa.add_argument('--prompt-fpr', type=float, default=None, help="default: the node's (0.05)")
    pa.add_argument('--instance-fpr', type=float, default=None,
                    help="default: the node's (0, the pixel model's own mask threshold)")
    pa.set_defaults(run=_run_experiment_painted)
    ri = xsub.add_parser(
        'real-instances', help='instances per real frame, generic and with a place learnt '
        'from its normal frames',
        description='A folder of real frames named <place>_normal<n>.jpg and '
                    '<place>_<hazard>.jpg: each place learnt from all its normal frames and '
                    'once per left-out normal frame (as experiment pixel-place --real); each '
                    '--designs entry run with the node defaults on the generic and the place '
                    'maps -> real_instances.json, real_instances.md, real_instances.jpg.')
    ri.add_argument('--frames', required=True, help='the folder of real frames')
    ri.add_argument('--out', required=True)
    ri.add_argument('--designs', default='components=components',
                    help='NAME=DIR,... promptable model directories, or components (no model, '
                         'the default)')
    ri.add_argument('--steps', type=positive_int, default=None,
                    help='learning steps per place (default 160, as pixel-place --real)')
    ri.set_defaults(run=_run_experiment_real_instances)
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
    pl = xsub.add_parser(
        'place', help='learn buildings with train place from 1 and 3 normal runs, test on '
                      'other runs: each flag and the fused one',
        description='Per --building ENV:SCENE[:WxH]: train place on one 300 s normal run and '
                    'on three 100 s runs (10 Hz), then the frame and pixel pipelines and the '
                    'hazard monitor over --test-runs other runs with anomalies (the first with '
                    'cable and foam where the building has them), with each place and with '
                    'the shipped generic models: events flagged (pooled and per type), false '
                    'alarms per hour and flag-on time of each flag, pixel AuPRC -> '
                    'results.json, results.md, results.png. Resumable: bags, places and each '
                    "run's figures are kept under --out.")
    pl.add_argument('--building', action='append', required=True, metavar='ENV:SCENE[:WxH]',
                    help='a synthetic building (repeatable), e.g. factory:37:640x480')
    pl.add_argument('--out', required=True)
    pl.add_argument('--test-runs', type=positive_int, default=5,
                    help='test runs per building (default 5)')
    pl.add_argument('--test-seconds', type=float, default=200.0,
                    help='seconds of each test run at 10 Hz (default 200)')
    pl.add_argument('--anomaly-rate', type=float, default=0.2,
                    help='share of a test run with an anomaly in view (default 0.2)')
    pl.add_argument('--one-run-seconds', type=float, default=300.0,
                    help='the single normal run to learn from (default 300)')
    pl.add_argument('--three-runs-seconds', type=float, default=100.0,
                    help='each of the three normal runs to learn from (default 100)')
    pl.add_argument('--learn-fps', type=float, default=10.0,
                    help='frame rate of the normal runs (default 10)')
    pl.add_argument('--test-fps', type=float, default=10.0,
                    help='frame rate of the test runs (default 10)')
    add_place_learning_options(pl)
    pl.add_argument('--workers', type=positive_int, default=2)
    pl.set_defaults(run=_run_experiment_place)


def _run_experiment_place(args):
    import sys

    from ..branches.pixel.place_experiment import Building
    from ..branches.place.experiment import format_place_experiment
    from ..branches.place.experiment import PlaceExperimentConfig
    from ..branches.place.experiment import run_place_experiment
    from ..branches.registry import get_branches
    try:
        buildings = [Building.parse(b) for b in args.building]
    except ValueError as err:
        raise UsageError(f'--building {err}') from None
    for name in ('test_seconds', 'one_run_seconds', 'three_runs_seconds', 'learn_fps',
                 'test_fps'):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0.")
    if not 0 < args.anomaly_rate <= 1:
        raise UsageError('--anomaly-rate must be in (0, 1].')
    config = PlaceExperimentConfig(
        one_run_s=args.one_run_seconds, three_runs_s=args.three_runs_seconds,
        learn_fps=args.learn_fps, test_runs=args.test_runs, test_seconds=args.test_seconds,
        test_fps=args.test_fps, anomaly_rate=args.anomaly_rate,
        place=place_learning_config(args), init_from=args.init_from, workers=args.workers)
    command = 'anomaly-perception ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else None
    results = run_place_experiment(buildings, args.out, get_branches('frame,pixel'), config,
                                   command=command)
    print(format_place_experiment(results))
    print(f'written {args.out}/results.json, results.md, results.png')
    return 0


def _run_experiment_floor(args):
    from ..branches.instance.floor_experiment import measure_floor_errors
    from ..branches.instance.floor_experiment import write_floor_report
    from ..training import progress
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
    from ..branches.synthesis.experiments import format_synthesis_report
    from ..branches.synthesis.experiments import run_synthesis_experiment
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
    from ..branches.synthesis.experiments import run_strength_sweep
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
        from ..branches.registry import get_branch
        from ..runtime.manifest import add_files
        model = args.model or get_branch('synthesis').shipped_model_dir()
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
    from ..branches.pixel.failure_experiments import format_failure_report
    from ..branches.pixel.failure_experiments import run_failure_experiment
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
    from ..branches.instance.experiments import format_ugains_report
    from ..branches.instance.experiments import run_ugains_experiment
    from ..branches.instance.ugains import UGainSConfig
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


def _designs(text):
    from ..runtime.manifest import shipped_model_dir
    designs = {}
    for item in text.split(','):
        name, sep, path = item.strip().partition('=')
        if not sep or not name or not path:
            raise UsageError(f'--designs {item!r}: expected NAME=DIR.')
        if name in designs:
            raise UsageError(f'--designs: {name!r} given twice.')
        if path == 'models/instance_sam_small':
            path = str(shipped_model_dir('instance_sam_small'))
        designs[name] = path
    return designs


def _run_experiment_real_instances(args):
    from ..branches.instance.real import format_real_instances
    from ..branches.instance.real import run_real_instances
    report = run_real_instances(args.frames, args.out, _designs(args.designs),
                                steps=args.steps)
    print(format_real_instances(report))
    print(f'written {args.out}/real_instances.json, real_instances.md, real_instances.jpg')
    return 0


def _run_experiment_painted(args):
    from ..branches.instance.painted import format_painted_report
    from ..branches.instance.painted import run_painted_experiment
    designs = _designs(args.designs)
    report = run_painted_experiment(args.pixel_model, designs, args.data, args.out,
                                    split=args.split, every=args.every, limit=args.limit,
                                    seed=args.seed, prompt_fpr=args.prompt_fpr,
                                    instance_fpr=args.instance_fpr)
    print(format_painted_report(report))
    print(f'written {args.out}/painted.json, painted.md')
    return 0


def _run_experiment_pixel_losses(args):
    import sys

    from ..branches.pixel.experiments import format_loss_table
    from ..branches.pixel.experiments import LOSS_STUDY
    from ..branches.pixel.experiments import run_pixel_losses
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
    from ..branches.frame.learn_place import format_learn_place
    from ..branches.frame.learn_place import run_learn_place
    from ..branches.registry import get_branch
    results = run_learn_place(get_branch('frame'),
                              [int(v) for v in args.scene_seeds.split(',')], args.out,
                              [int(v) for v in args.exposures.split(',')], args.workers,
                              square=args.square)
    print(format_learn_place(results))
    print(f'written {args.out}/results.json, results.md, results.png')
    return 0


def _run_experiment_pixel_place(args):
    import dataclasses

    from ..branches.pixel.place import PlaceTrainingConfig
    from ..branches.pixel.place_experiment import Building
    from ..branches.pixel.place_experiment import format_pixel_place
    from ..branches.pixel.place_experiment import run_pixel_place
    try:
        buildings = [Building.parse(b) for b in args.building]
    except ValueError as err:
        raise UsageError(f'--building {err}') from None
    config = PlaceTrainingConfig()
    if args.steps:
        config = dataclasses.replace(config, steps=args.steps)
    results = run_pixel_place(buildings, args.out, config=config, peer=not args.no_peer,
                              workers=args.workers, real_frames=args.real)
    print(format_pixel_place(results))
    print(f'written {args.out}/results.json, results.md, results.png')
    return 0


def _run_experiment_frame(args):
    from ..branches.frame.experiments import format_fig7
    from ..branches.frame.experiments import format_protocols
    from ..branches.frame.experiments import format_table2
    from ..branches.frame.experiments import run_protocols
    from ..branches.frame.train import ClassifierConfig
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
