"""Benchmark the instance branch's keyframe latency: image in -> instances out.

In one run, on the same 640x360 keyframe, shipped models by default:

* the whole keyframe (``InstanceAnomalySegmenter.segment``: the pixel model,
  calibration, farthest-point prompts, the image embedding, the prompts
  through the mask decoder, mask scores, NMS, ensemble, ids and boxes) with
  50 prompts batched through the decoder vs one prompt at a time (the
  reference; the ratio is the figure);
* its parts: the pixel map, the image embedding, the 50 prompts (batched /
  one at a time);
* with ``--train-step``: one training step of the promptable model as
  ``train promptable`` takes it (the shipped recipe: 16 frames of 144x256,
  16 prompts each, encoder and decoder), and the decoder alone on
  embeddings computed beforehand (64 prompts), as prompts per hour: what a
  CPU session can spend on training it;
* with ``--cuda`` (a GPU machine): a full-size SAM ViT-B layout (random
  weights, 1024x1024 input) in fp16, one image embedding plus 50 batched
  prompts;
* with ``--designs NAME=DIR,...``: the whole keyframe with each
  promptable design on the same frame, pixel model and 50 prompts, with
  its ratio to the shipped promptable model measured in the same run
  (``components``: none, the map's connected regions; ``mobile_sam``:
  MobileSAM's full-size layout, 1024 input, random weights: its speed,
  not its masks).

The keyframe is a synthetic patrol frame with an anomaly in view; the
prompt threshold is lowered until 50 candidate pixels exist, so every run
decodes exactly 50 prompts.

Run: ``python benchmarks/bench_instance.py``.
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

import argparse
from pathlib import Path
import sys

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402, I100
from common import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _ms(stats):
    return {k[:-2]: v * 1e3 for k, v in stats.items() if k.endswith('_s')}


def keyframe(width=640, height=360):
    """Render a patrol frame with boxes about 2 m ahead (RGB uint8)."""
    from anomaly_perception.data.synthetic.world import Sequence
    from anomaly_perception.data.synthetic.world import SequenceSpec
    seq = Sequence(SequenceSpec(seed=5, environment='corridor', scene_seed=1, anomaly='boxes',
                                duration_s=30.0))
    _, z, _ = seq.sites[0]
    return seq.frame(float((z - 2.0 - seq.start_z) / seq.speed), width, height).image


def cpu_speeds(pixel_dir, promptable_dir, points, seconds, backend):
    """Keyframe latency with batched prompts vs one at a time, and the parts."""
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    rgb = keyframe()
    seg = InstanceAnomalySegmenter.from_model_dirs(pixel_dir, promptable_dir, backend=backend,
                                                   num_points=points)
    prob = seg.pixel.segment(rgb)[0].probability
    finite = np.sort(prob[np.isfinite(prob)])[::-1]
    fpr = max(1e-6, 1.0 - float(finite[min(len(finite) - 1, 4 * points)]))
    seg = InstanceAnomalySegmenter(seg.pixel, seg.promptable, prompt_fpr=min(fpr, 0.999),
                                   num_points=points)
    result = seg.segment(rgb)
    out = {'prompts': int(len(result.points)), 'instances': int(len(result.scores)),
           'prompt_threshold': seg.config.threshold}
    timings = {}
    for name, batch in (('batched', 64), ('one_at_a_time', 1)):
        seg.promptable.prompt_batch = batch
        timings[name] = measure(lambda: seg.segment(rgb), seconds=seconds, warmup=1)
    out['keyframe_batched_ms'] = _ms(timings['batched'])
    out['keyframe_one_at_a_time_ms'] = _ms(timings['one_at_a_time'])
    out['ratio_one_at_a_time_over_batched'] = (timings['one_at_a_time']['median_s'] /
                                               timings['batched']['median_s'])
    seg.promptable.prompt_batch = 64
    out['part_pixel_map_ms'] = _ms(measure(lambda: seg.pixel.segment(rgb), seconds=seconds))
    out['part_image_embedding_ms'] = _ms(measure(lambda: seg.promptable.set_image(rgb),
                                                 seconds=seconds))
    pts = torch.as_tensor(result.points)
    for name, batch in (('batched', 64), ('one_at_a_time', 1)):
        seg.promptable.prompt_batch = batch
        out[f'part_prompts_{name}_ms'] = _ms(measure(
            lambda: seg.promptable.masks_for_points(pts), seconds=seconds))
    seg.promptable.prompt_batch = 64
    return out


def design_speeds(pixel_dir, promptable_dir, designs, points, seconds, backend):
    """Keyframe latency of each promptable design, and its ratio to the shipped model's."""
    from anomaly_perception.branches.instance.detector import InstanceAnomalySegmenter
    from anomaly_perception.branches.instance.promptable import build_sam
    from anomaly_perception.branches.instance.promptable import load_promptable
    from anomaly_perception.branches.instance.promptable import PromptableSegmenter
    from anomaly_perception.branches.instance.promptable import sam_spec
    rgb = keyframe()
    ref = InstanceAnomalySegmenter.from_model_dirs(pixel_dir, promptable_dir, backend=backend)
    prob = ref.pixel.segment(rgb)[0].probability
    finite = np.sort(prob[np.isfinite(prob)])[::-1]
    fpr = min(0.999, max(1e-6, 1.0 - float(finite[min(len(finite) - 1, 4 * points)])))
    rows = {}
    for name, where in [('shipped', promptable_dir)] + list(designs):
        if where == 'components':
            promptable = None
        elif where == 'mobile_sam':
            promptable = PromptableSegmenter(build_sam(sam_spec('vit_t')), prompt_batch=64)
        else:
            promptable = load_promptable(where)[0]
        seg = InstanceAnomalySegmenter(ref.pixel, promptable, prompt_fpr=fpr, num_points=points)
        result = seg.segment(rgb)
        rows[name] = {'model': str(where), 'prompts': int(len(result.points)),
                      'instances': int(len(result.scores)),
                      'keyframe_ms': _ms(measure(lambda: seg.segment(rgb), seconds=seconds,
                                                 warmup=1))}
    base = rows['shipped']['keyframe_ms']['median']
    for row in rows.values():
        row['ratio_to_shipped'] = row['keyframe_ms']['median'] / base
    return rows


def train_step_speeds(promptable_dir, seconds):
    """Seconds per training step of the promptable model, whole and decoder-only."""
    from anomaly_perception.branches.instance.promptable import load_promptable
    from anomaly_perception.branches.instance.train_promptable import decode_prompts
    from anomaly_perception.branches.instance.train_promptable import promptable_loss
    from anomaly_perception.branches.instance.train_promptable import PromptableTrainingConfig
    seg, manifest = load_promptable(promptable_dir)
    sam = seg.sam.train()
    config = PromptableTrainingConfig()
    size = int(manifest['architecture']['spec']['image_size'])
    low = 4 * size // int(manifest['architecture']['spec']['encoder']['patch_size'])
    gen = torch.Generator().manual_seed(0)
    frames, per_frame = 16, 16
    images = torch.rand(frames, 3, size * 9 // 16, size, generator=gen) * 255
    opt = torch.optim.AdamW(sam.parameters(), lr=1e-6)

    def step(embeddings, prompts):
        owner = torch.randint(0, len(embeddings), (prompts,), generator=gen)
        xy = torch.rand(prompts, 2, generator=gen) * torch.tensor([size, size * 9 / 16])
        targets = (torch.rand(prompts, 1, low, low, generator=gen) > 0.9).float()
        masks, iou = decode_prompts(sam, embeddings, owner, xy)
        loss = promptable_loss(masks, iou, targets, config)
        opt.zero_grad()
        loss.backward()
        opt.step()

    whole = measure(lambda: step(sam.image_encoder(sam.preprocess(images)), frames * per_frame),
                    seconds=seconds, warmup=1)
    with torch.no_grad():
        cached = sam.image_encoder(sam.preprocess(images))
    decoder = measure(lambda: step(cached, 64), seconds=seconds, warmup=1)
    return {'whole_step_ms': _ms(whole), 'whole_step_prompts': frames * per_frame,
            'whole_prompts_per_hour': frames * per_frame * 3600 / whole['median_s'],
            'decoder_step_ms': _ms(decoder), 'decoder_step_prompts': 64,
            'decoder_prompts_per_hour': 64 * 3600 / decoder['median_s']}


def cuda_speeds(points, seconds):
    """Full-size SAM ViT-B (random weights), fp16: embedding + ``points`` batched prompts."""
    from anomaly_perception.branches.instance.promptable import build_sam
    from anomaly_perception.branches.instance.promptable import PromptableSegmenter
    from anomaly_perception.branches.instance.promptable import sam_spec
    sam = build_sam(sam_spec('vit_b')).cuda().half()
    seg = PromptableSegmenter(sam, device='cuda', prompt_batch=points)
    rgb = keyframe()
    xy = torch.as_tensor(np.random.default_rng(0).uniform([0, 0], [640, 360], (points, 2)),
                         dtype=torch.float32)

    def timed(fn):
        def run():
            with torch.autocast('cuda', dtype=torch.float16):
                fn()
            torch.cuda.synchronize()
        return _ms(measure(run, seconds=seconds, warmup=5))

    out = {'device': torch.cuda.get_device_name(), 'prompts': points}
    out['keyframe_ms'] = timed(lambda: (seg.set_image(rgb), seg.masks_for_points(xy)))
    out['part_image_embedding_ms'] = timed(lambda: seg.set_image(rgb))
    out['part_prompts_batched_ms'] = timed(lambda: seg.masks_for_points(xy))
    seg.prompt_batch = 1
    out['part_prompts_one_at_a_time_ms'] = timed(lambda: seg.masks_for_points(xy))
    out['keyframe_one_at_a_time_ms'] = timed(lambda: (seg.set_image(rgb),
                                                      seg.masks_for_points(xy)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--pixel-model', default=str(ROOT / 'models' / 'pixel_erfnet'))
    parser.add_argument('--promptable', default=str(ROOT / 'models' / 'instance_sam_small'))
    parser.add_argument('--backend', default='auto', help='pixel model backend (auto)')
    parser.add_argument('--points', type=int, default=50)
    parser.add_argument('--seconds', type=float, default=5.0)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--train-step', action='store_true',
                        help='also a training step of the promptable model')
    parser.add_argument('--cuda', action='store_true', help='also SAM ViT-B fp16 on GPU')
    parser.add_argument('--cuda-only', action='store_true', help='only the GPU measurement')
    parser.add_argument('--designs', default='',
                        help='NAME=DIR,... promptable designs to time beside the shipped '
                             'one (DIR may be components or mobile_sam)')
    args = parser.parse_args()
    args.cuda = args.cuda or args.cuda_only
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {'torch_threads': torch.get_num_threads()}
    if not args.cuda_only:
        results['cpu'] = c = cpu_speeds(args.pixel_model, args.promptable, args.points,
                                        args.seconds, args.backend)
        print(f"keyframe 640x360, {c['prompts']} prompts ({c['instances']} instances): "
              f"batched {c['keyframe_batched_ms']['median']:.0f} ms, one at a time "
              f"{c['keyframe_one_at_a_time_ms']['median']:.0f} ms "
              f"({c['ratio_one_at_a_time_over_batched']:.2f}x)")
        print(f"  parts: pixel map {c['part_pixel_map_ms']['median']:.0f} ms, image embedding "
              f"{c['part_image_embedding_ms']['median']:.0f} ms, prompts batched "
              f"{c['part_prompts_batched_ms']['median']:.0f} ms / one at a time "
              f"{c['part_prompts_one_at_a_time_ms']['median']:.0f} ms")
    if args.designs:
        designs = [item.split('=', 1) for item in args.designs.split(',') if item]
        results['cpu_designs'] = d = design_speeds(args.pixel_model, args.promptable, designs,
                                                   args.points, args.seconds, args.backend)
        for name, row in d.items():
            print(f"{name} ({row['model']}): keyframe {row['keyframe_ms']['median']:.0f} ms "
                  f"with {row['prompts']} prompts, {row['instances']} instances "
                  f"({row['ratio_to_shipped']:.2f}x the shipped model)")
    if args.train_step:
        results['cpu_train_step'] = t = train_step_speeds(args.promptable, args.seconds)
        print(f"training step, {t['whole_step_prompts']} prompts on 16 frames, encoder and "
              f"decoder: {t['whole_step_ms']['median']:.0f} ms "
              f"({t['whole_prompts_per_hour']:,.0f} prompts/h); decoder alone, 64 prompts: "
              f"{t['decoder_step_ms']['median']:.0f} ms "
              f"({t['decoder_prompts_per_hour']:,.0f} prompts/h)")
    if args.cuda:
        results['cuda_sam_vit_b_fp16'] = g = cuda_speeds(args.points, args.seconds)
        print(f"{g['device']}: SAM ViT-B fp16, embedding + {args.points} prompts: batched "
              f"{g['keyframe_ms']['median']:.1f} ms (embedding "
              f"{g['part_image_embedding_ms']['median']:.1f} ms, prompts "
              f"{g['part_prompts_batched_ms']['median']:.1f} ms), one prompt at a time "
              f"{g['keyframe_one_at_a_time_ms']['median']:.1f} ms")
    print('written', write_report('instance', results))


if __name__ == '__main__':
    main()
