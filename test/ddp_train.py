"""Tiny trainings, run by test_distributed.py in one process or under ``torchrun``.

``python ddp_train.py DATA ROOT``: the DDPM on DATA's frames, the frame
branch's autoencoder, Real-NVP+OE and classifier on seeded random arrays
(batches that do not split evenly), ERFNet's two stages, FSNet's failure
head on that ERFNet, the mask-classification segmenter with its outlier
stage and the promptable segmenter (SAM design, one round of corrective
points), each into its own folder of ROOT.
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

from pathlib import Path
import sys

from anomaly_perception.branches.frame.train import AutoencoderConfig
from anomaly_perception.branches.frame.train import ClassifierConfig
from anomaly_perception.branches.frame.train import DensityConfig
from anomaly_perception.branches.frame.train import train_autoencoder
from anomaly_perception.branches.frame.train import train_bclass
from anomaly_perception.branches.frame.train import train_density
from anomaly_perception.branches.instance.train_maskcls import MaskClsTrainingConfig
from anomaly_perception.branches.instance.train_maskcls import train_maskcls_model
from anomaly_perception.branches.instance.train_promptable import PromptableTrainingConfig
from anomaly_perception.branches.instance.train_promptable import train_promptable_model
from anomaly_perception.branches.pixel.train import PixelTrainingConfig
from anomaly_perception.branches.pixel.train import train_pixel_model
from anomaly_perception.branches.pixel.train_failure import FailureTrainingConfig
from anomaly_perception.branches.pixel.train_failure import train_failure_model
from anomaly_perception.branches.synthesis.train import DiffusionTrainingConfig
from anomaly_perception.branches.synthesis.train import train_diffusion_model
from anomaly_perception.training import distributed
from anomaly_perception.training import finish_jobs
import numpy as np

UNET = {'block_out_channels': [8, 16], 'down_block_types': ['DownBlock2D'] * 2,
        'up_block_types': ['UpBlock2D'] * 2, 'layers_per_block': 1, 'norm_num_groups': 4}
SCHEDULER = {'num_train_timesteps': 10, 'beta_schedule': 'linear', 'beta_start': 1e-3,
             'beta_end': 0.2, 'clip_sample': True}
DIFFUSION = DiffusionTrainingConfig(input_shape=(16, 24), steps=4, batch_size=8, warmup_steps=2,
                                    checkpoint_every=2, sample_every=2, sample_steps=2,
                                    samples=2, val_frames=4, unet=UNET, scheduler=SCHEDULER,
                                    fp16_weights=False)
# 21 frames in batches of 8: the last batch of 5 splits into 3 and 2 (weights 1.2 and 0.8).
AUTOENCODER = AutoencoderConfig(width=4, embedding_dim=8, input_size=16, epochs=2, batch_size=8)
DENSITY = DensityConfig(n_couplings=2, hidden=16, epochs=2, batch_size=16, anomaly_batch=4,
                        gamma=5.0)
CLASSIFIER = ClassifierConfig(epochs=2, batch_size=10)
PIXEL = PixelTrainingConfig(input_shape=(32, 56), encoder_epochs=1, decoder_epochs=1,
                            batch_size=8)
FAILURE = FailureTrainingConfig(epochs=1, train_every=2, head={
    'inputs': ['x', 'w1', 'w2', 'w3', 'w4', 'se'], 'single_branch': False, 'width': 8,
    'resnet_width': 4})
MASKCLS = MaskClsTrainingConfig(input_shape=(32, 56), queries=4, dim=16, layers=1, heads=2,
                                ffn=32, epochs=1, batch_size=8, outlier_epochs=1)
PROMPTABLE = PromptableTrainingConfig(image_size=64, prompt_dim=16, epochs=1, batch_size=8,
                                      prompts_per_image=2, refine_rounds=1, warmup_steps=2)


def frame_arrays():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (29, 16, 16, 3), dtype=np.uint8)
    z = rng.standard_normal((45, 8)).astype(np.float32)
    return images[:21], images[21:], z[:37], z[37:] + 3.0


if __name__ == '__main__':
    data, root = sys.argv[1], Path(sys.argv[2])
    train_diffusion_model(root / 'diffusion', root / 'work_diffusion', DIFFUSION, data=data,
                          show_progress=False)
    train, val, normal, exposed = frame_arrays()
    train_autoencoder(train, val, root / 'autoencoder', AUTOENCODER, show_progress=False)
    train_density(normal, normal[:8], root / 'density', DENSITY, exposed, show_progress=False)
    train_bclass(normal, exposed, normal[:8], np.zeros(8), root / 'bclass', CLASSIFIER,
                 show_progress=False)
    train_pixel_model(data, root / 'pixel', root / 'work_pixel', PIXEL,
                      cache_dir=root / 'cache', show_progress=False)
    distributed().barrier()         # every process reads the pixel model rank 0 wrote
    train_failure_model(root / 'pixel', data, root / 'failure', root / 'work_failure', FAILURE,
                        cache_dir=root / 'cache', show_progress=False)
    train_maskcls_model(data, root / 'maskcls', root / 'work_maskcls', MASKCLS,
                        cache_dir=root / 'cache', show_progress=False)
    train_promptable_model(data, root / 'promptable', root / 'work_promptable', PROMPTABLE,
                           cache_dir=root / 'cache', show_progress=False)
    finish_jobs()
