"""A tiny DDPM training, run by test_distributed.py alone or under ``torchrun``."""

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

import sys

from anomaly_perception.branches.synthesis.train import DiffusionTrainingConfig
from anomaly_perception.branches.synthesis.train import train_diffusion_model

UNET = {'block_out_channels': [8, 16], 'down_block_types': ['DownBlock2D'] * 2,
        'up_block_types': ['UpBlock2D'] * 2, 'layers_per_block': 1, 'norm_num_groups': 4}
SCHEDULER = {'num_train_timesteps': 10, 'beta_schedule': 'linear', 'beta_start': 1e-3,
             'beta_end': 0.2, 'clip_sample': True}
CONFIG = DiffusionTrainingConfig(input_shape=(16, 24), steps=4, batch_size=8, warmup_steps=2,
                                 checkpoint_every=2, sample_every=2, sample_steps=2, samples=2,
                                 val_frames=4, unet=UNET, scheduler=SCHEDULER,
                                 fp16_weights=False)

if __name__ == '__main__':
    data, out, work = sys.argv[1:4]
    train_diffusion_model(out, work, CONFIG, data=data, show_progress=False)
