"""Benchmark the synthesis branch's DDPM: a training step and a forward pass, per UNet size.

For the default UNet (``branches/synthesis/ddpm.py``) and two alternatives, in one run:
one AdamW step on a batch of random frames (what ``train diffusion`` does
per step, without data loading), and one noise prediction of one frame
(guided editing calls 2-3 per reverse step). Median seconds; the default's
row is the reference of the ratios.

Run: ``python benchmarks/bench_diffusion.py``.
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure  # noqa: E402, I100
from common import write_report  # noqa: E402


def variants():
    from anomaly_perception.branches.synthesis import ddpm
    wide = dict(ddpm.DEFAULT_UNET, block_out_channels=[32, 64, 128, 128])
    return [('default', ddpm.DEFAULT_UNET, (64, 112)), ('wider', wide, (64, 112)),
            ('wider, 48x80', wide, (48, 80))]


def speeds(unet, shape, batch, seconds):
    """Return ``(parameters, train step s, forward s)`` of one UNet at ``shape``."""
    from anomaly_perception.branches.synthesis import ddpm
    torch.manual_seed(0)
    arch = {'unet': unet, 'scheduler': ddpm.DEFAULT_SCHEDULER, 'input_shape': list(shape)}
    model = ddpm._build_from_manifest(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, *shape)
    t = torch.randint(0, 1000, (batch,))

    def step():
        loss = model(x, t).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad():
            model(x[:1], 5)
    train = measure(step, seconds=seconds, warmup=1)['median_s']
    fwd = measure(forward, seconds=seconds, warmup=2)['median_s']
    return sum(p.numel() for p in model.parameters()), train, fwd


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--threads', type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name, unet, shape in variants():
        params, train, fwd = speeds(unet, shape, args.batch, args.seconds)
        rows.append({'name': name, 'shape': list(shape),
                     'block_out_channels': unet['block_out_channels'], 'parameters': params,
                     'train_step_s': train, 'forward_s': fwd})
    ref = rows[0]
    for r in rows:
        r['train_vs_default'] = r['train_step_s'] / ref['train_step_s']
        print(f"{r['name']:<14} {r['shape'][0]}x{r['shape'][1]} {r['block_out_channels']} "
              f"{r['parameters'] / 1e6:.1f} M: train step ({args.batch} frames) "
              f"{r['train_step_s']:.2f} s ({r['train_vs_default']:.2f}x the default), "
              f"forward of 1 frame {1e3 * r['forward_s']:.0f} ms")
    print(f'written {write_report("diffusion", {"batch": args.batch, "rows": rows})}')


if __name__ == '__main__':
    main()
