"""The synthesis branch's DDPM: a ``diffusers`` UNet2DModel and its DDPMScheduler.

Epsilon prediction on RGB images scaled to [-1, 1], at the manifest's
``preprocessing.input_shape`` (height and width divisible by
``2 ** (len(block_out_channels) - 1)``). ``architecture``:

* ``unet``: UNet2DModel keyword arguments (block_out_channels,
  down_block_types, up_block_types, layers_per_block, ...); ``sample_size``,
  ``in_channels`` and ``out_channels`` are set here;
* ``scheduler``: DDPMScheduler keyword arguments (num_train_timesteps,
  beta_schedule, beta_start, beta_end, clip_sample); prediction type
  epsilon and the ``fixed_small`` variance (``beta_tilde``) are fixed.

The module (:class:`EpsilonModel`) is what guided editing calls:
``eps(x, t)`` with ``t`` an int or a tensor of timesteps. It is not
exported to ONNX: the branch runs offline, in PyTorch.
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

import copy

import numpy as np
import torch
from torch import nn

from ...models.registry import Architecture
from ...models.registry import Tensor

MODEL_FILE = 'ddpm.pt'

# The default: 3.0 M parameters (6 MB in fp16) at 64x112 (16:9 within the /8 grid); a
# training step of 16 frames takes 1.3 s on 2 CPU cores, 1.35x less than the [32, 64, 128, 128]
# variant (benchmarks/bench_diffusion.py, docs/PERFORMANCE.md).
DEFAULT_UNET = {
    'block_out_channels': [32, 64, 64, 128],
    'down_block_types': ['DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D'],
    'up_block_types': ['UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'],
    'layers_per_block': 1,
    'norm_num_groups': 8,
    'attention_head_dim': 32,
}
# Guided editing's defaults, written into a new model's manifest: lambda chosen for the
# shipped model by ``experiment synthesis-strength`` (docs/RESULTS.md); run it
# (--save-to-model) for a new model.
DEFAULT_GUIDANCE = {'guidance': 'reverse', 'strength': 0.0001, 'steps': 100}
DEFAULT_SCHEDULER = {
    'num_train_timesteps': 1000,
    'beta_schedule': 'linear',
    'beta_start': 1e-4,
    'beta_end': 0.02,
    'clip_sample': True,
}


def downsampling(arch):
    """Return the factor the UNet's input sides must be divisible by."""
    return 2 ** (len(arch['unet']['block_out_channels']) - 1)


def build_unet(arch, input_shape):
    from diffusers import UNet2DModel
    kwargs = dict(arch['unet'])
    for key in ('block_out_channels', 'down_block_types', 'up_block_types'):
        kwargs[key] = tuple(kwargs[key])
    return UNet2DModel(sample_size=tuple(int(v) for v in input_shape), in_channels=3,
                       out_channels=3, **kwargs)


def build_scheduler(arch):
    """Return the DDPMScheduler a manifest's ``architecture`` describes."""
    from diffusers import DDPMScheduler
    return DDPMScheduler(**{**DEFAULT_SCHEDULER, **arch.get('scheduler', {})},
                         prediction_type='epsilon', variance_type='fixed_small')


class EpsilonModel(nn.Module):
    """``eps(x_t, t)``: the UNet's noise prediction, in the dtype of ``x_t``."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t):
        dtype = next(self.unet.parameters()).dtype
        if not torch.is_tensor(t):
            t = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
        return self.unet(x.to(dtype), t).sample.to(x.dtype)

    def half_precision(self):
        self.unet.half()
        return self


def _build_from_manifest(arch):
    return EpsilonModel(build_unet(arch, arch['input_shape']))


ARCHITECTURE = Architecture(
    name='ddpm_unet', build=_build_from_manifest, weights_file=MODEL_FILE,
    inputs=(Tensor('sample', 'float32', (3, 'H', 'W')), Tensor('timestep', 'int64')),
    outputs=(Tensor('epsilon', 'float32', (3, 'H', 'W')),),
    to_fp16=lambda module: copy.deepcopy(module).half_precision(), exportable=False)


def to_model_range(images):
    """uint8 ``[N, H, W, 3]`` -> float ``[N, 3, H, W]`` in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_uint8(x):
    """Float ``[N, 3, H, W]`` in [-1, 1] -> uint8 ``[N, H, W, 3]``."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return x.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()
