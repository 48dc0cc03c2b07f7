"""The synthesis pipeline's parameters, as one typed configuration (replay and YAML alike).

The synthesis branch has no ROS node: a guided edit takes seconds to
minutes on a CPU, so it runs offline on recorded bags (``replay
--pipelines synthesis``), on keyframes. Its configuration has what replay
reads of every branch (``model_dir``, ``backend``, ``device``,
``diagnostics_period_s``) and none of a camera node's transport, QoS or
lifecycle parameters; the YAML file has the nodes' format, so ``replay
--params`` reads it like theirs. ``backend`` is ``auto`` or ``torch``
(the guidance differentiates through the DDPM).
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

import dataclasses

from .detector import FEATURE_SPACES
from .detector import GUIDANCES
from .detector import REFINEMENTS
from ...config import field
from ...config import NodeParameters
from ...config import OFFLINE_PARAMETER_FILE_HEADER


@dataclasses.dataclass
class SynthesisConfig:
    """Parameters of the synthesis pipeline (see module docs).

    ``guidance`` 'default' and ``strength`` / ``steps`` 0 take the model manifest's
    defaults (``models/synthesis_ddpm``: reverse timestep matching). Only
    the keyframe period changes live; the rest is read when the model loads.
    """

    model_dir: str = field('', 'DDPM model directory; empty = the shipped synthesis_ddpm',
                           configure_time=True)
    backend: str = field('auto', 'inference backend (auto = torch: the branch runs on PyTorch '
                         'only)', choices=('auto', 'torch'), configure_time=True)
    device: str = field('cpu', 'torch device', choices=('cpu', 'cuda'), configure_time=True)
    guidance: str = field('default', "Algorithm 1's guidance; default = the model's",
                          choices=('default',) + GUIDANCES, configure_time=True)
    strength: float = field(0.0, "guidance strength lambda; 0 = the model's",
                            range=(0.0, 1e6), configure_time=True)
    steps: int = field(0, "reverse steps (fewer than the model's T respaces the schedule); "
                       "0 = the model's", range=(0, 100000),
                       configure_time=True)
    features: str = field('erfnet', 'feature space of the input-edit distance: '
                          f'{", ".join(FEATURE_SPACES)}, or the path of a feature extractor '
                          '(.pt2 torch.export or TorchScript)', configure_time=True)
    pixel_model_dir: str = field('', 'the ERFNet of the erfnet features; empty = the shipped '
                                 'pixel_erfnet', configure_time=True)
    refine: str = field('slic', 'segments the distance is averaged over',
                        choices=REFINEMENTS, configure_time=True)
    segments: int = field(200, 'SLIC superpixels per image (refine slic)', range=(4, 5000),
                          configure_time=True)
    promptable_model_dir: str = field('', 'promptable segmenter of refine promptable; empty = '
                                      'the shipped instance_sam_small', configure_time=True)
    grid: int = field(16, 'points per side of the promptable grid (refine promptable)',
                      range=(2, 64), configure_time=True)
    seed: int = field(0, "the sampler's noise seed (the same seed, the same edit)",
                      range=(0, 2 ** 31 - 1), configure_time=True)
    keyframe_period_s: float = field(10.0, 'edit one frame at least this often (stamp time, '
                                     's); the frames between are not edited',
                                     range=(0.0, 3600.0))
    diagnostics_period_s: float = field(10.0, 'stamp-time seconds between /diagnostics '
                                        'messages in the output bag', range=(0.1, 3600.0))


PARAMETERS = NodeParameters(SynthesisConfig, 'synthesis', OFFLINE_PARAMETER_FILE_HEADER)
config_from_parameters = PARAMETERS.config_from_parameters
parameter_specs = PARAMETERS.parameter_specs
parameter_file = PARAMETERS.parameter_file


def synthesis_options(config):
    """Return the :class:`~.detector.SynthesisOptions` of a :class:`SynthesisConfig`."""
    from .detector import SynthesisOptions
    return SynthesisOptions(
        guidance=None if config.guidance == 'default' else config.guidance,
        strength=config.strength or None, steps=config.steps or None, features=config.features,
        pixel_model=config.pixel_model_dir, refine=config.refine, segments=config.segments,
        promptable=config.promptable_model_dir, grid=config.grid, seed=config.seed)
