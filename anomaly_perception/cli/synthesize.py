"""``anomaly-perception synthesize``: the synthesis branch on images or a bag, offline."""

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

from pathlib import Path

from .common import positive_int
from ..errors import UsageError


def add_synthesize(sub):
    p = sub.add_parser(
        'synthesize', help='anomalies by synthesis (paper 001) on images or a bag, offline',
        description='Edit each image towards the normal world with the DDPM and guided '
                    'sampling, and map what had to change. Writes per image to --out '
                    '<stem>.edit.png, <stem>.anomaly.npy (float32 at the input resolution, '
                    'NaN outside the model crop) and <stem>.panel.png (input | edit | '
                    'distance | refined, the label outline when the image is in a dataset '
                    'with masks/), and synthesis.json (options, seconds per image).')
    p.add_argument('paths', nargs='+', help='image files, folders, or a bag')
    p.add_argument('--out', required=True)
    p.add_argument('--model', default=None, help='a synthesis model (default '
                                                 'models/synthesis_ddpm)')
    add_synthesis_options(p)
    p.add_argument('--every', type=positive_int, default=30,
                   help='bags: every n-th frame (default 30: 1 s at 30 Hz)')
    p.add_argument('--limit', type=positive_int, help='at most N images')
    p.add_argument('--topic', help="bags: the image topic (default: the bag's only one)")
    p.set_defaults(run=_run_synthesize)


def add_synthesis_options(p):
    """Declare the guidance and analysis options (``synthesize``, ``experiment synthesis``)."""
    p.add_argument('--guidance', choices=('reverse', 'forward', 'mismatched', 'none'),
                   help="Algorithm 1's guidance (default: the model's, reverse)")
    p.add_argument('--strength', type=float, help="lambda (default: the model's)")
    p.add_argument('--steps', type=int,
                   help="reverse steps; fewer than the model's T respaces the schedule "
                        "(default: the model's)")
    p.add_argument('--features', default='erfnet',
                   help='erfnet (default), rgb, ssim, or a .pt2/TorchScript feature extractor')
    p.add_argument('--pixel-model', default='', help='ERFNet of --features erfnet (default '
                                                     'models/pixel_erfnet)')
    p.add_argument('--refine', choices=('slic', 'promptable', 'none'), default='slic')
    p.add_argument('--segments', type=positive_int, default=200, help='SLIC superpixels')
    p.add_argument('--promptable', default='', help='--refine promptable: the model '
                                                    '(default models/instance_sam_small)')
    p.add_argument('--seed', type=int, default=0)


def synthesis_options(args):
    from ..branches.synthesis.detector import SynthesisOptions
    if args.steps is not None and args.steps < 0:
        raise UsageError(f'--steps must be >= 0, got {args.steps}.')
    if args.features not in ('erfnet', 'rgb', 'ssim') and not Path(args.features).is_file():
        raise UsageError(f'--features {args.features!r}: erfnet, rgb, ssim or a file.')
    return SynthesisOptions(guidance=args.guidance, strength=args.strength, steps=args.steps,
                            features=args.features, pixel_model=args.pixel_model,
                            refine=args.refine, segments=args.segments,
                            promptable=args.promptable, seed=args.seed)


def _is_bag(path):
    return path.suffix in ('.mcap', '.db3') or (path.is_dir() and (path / 'metadata.yaml')
                                                .is_file())


def _inputs(args):
    """Yield ``(stem, rgb, label or None)`` for the images or bag frames."""
    import cv2

    from ..branches.synthesis.report import label_mask_for
    from ..io.files import image_files
    paths = [Path(p) for p in args.paths]
    bags = [p for p in paths if _is_bag(p)]
    if bags and len(bags) != len(paths):
        raise UsageError('give images or bags, not both.')
    if bags:
        from ..data.bag_frames import _decode
        from ..io.bags import BagReader
        for path in bags:
            with BagReader(path) as bag:
                name = bag.find_image_topic(args.topic)
                for frame in bag.read_images(name, decode=_decode):
                    if frame.index % args.every == 0:
                        yield f'{path.stem}_{frame.stamp_ns}', frame.image, None
        return
    for f in image_files(args.paths):
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise UsageError(f'Cannot decode image {str(f)!r}.')
        yield f.stem, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), label_mask_for(f)


def _run_synthesize(args):
    import itertools
    import json

    from tqdm import tqdm

    from ..branches.synthesis.detector import AnomalySynthesizer
    from ..branches.synthesis.report import write_outputs
    from ..io.files import atomic_write_text
    synth = AnomalySynthesizer.from_model_dir(args.model, options=synthesis_options(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    items = _inputs(args)
    if args.limit:
        items = itertools.islice(items, args.limit)
    bar = tqdm(desc='synthesize', unit='img', dynamic_ncols=True)
    for stem, rgb, label in items:
        if min(rgb.shape[:2]) < min(synth.input_shape):
            print(f'note: {stem} ({rgb.shape[1]}x{rgb.shape[0]}) is smaller than the model '
                  f'input ({synth.input_shape[1]}x{synth.input_shape[0]}); it is upsampled.')
        result = synth.process(rgb)
        files = write_outputs(out, stem, rgb, result, label)
        rows.append({'stem': stem, 'seconds': result.seconds, 'files': files})
        bar.update(1)
        bar.set_postfix(s_per_img=f'{result.seconds:.1f}')
    bar.close()
    if not rows:
        raise UsageError('no images to synthesize.')
    g = synth.guidance
    report = {'model': str(args.model or 'models/synthesis_ddpm'),
              'guidance': {'guidance': g.guidance, 'strength': g.strength,
                           'steps': g.steps or synth.scheduler.config.num_train_timesteps},
              'features': synth.options.features, 'refine': synth.options.refine,
              'analysis_shape': list(synth.analysis_shape), 'images': rows}
    atomic_write_text(out / 'synthesis.json', json.dumps(report, indent=2))
    seconds = sorted(r['seconds'] for r in rows)
    print(f'{len(rows)} image(s) -> {out} (median {seconds[len(seconds) // 2]:.1f} s per '
          'image)')
    return 0
