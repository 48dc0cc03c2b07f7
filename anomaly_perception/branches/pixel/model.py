"""The deployed pixel-branch graph: uint8 images -> anomaly map and class ids.

:class:`PixelSegmenterModel` chains what a resized frame goes through:
channels-first float in [0, 1] (ERFNet's reference recipe uses no other
normalisation), ERFNet, the model's per-pixel anomaly score (one of
:data:`~anomaly_perception.scoring.pixel.PIXEL_SCORES`) and the arg-max
class. Keeping score and arg-max inside the module means the exported graph
gives the node exactly what it publishes.
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

import torch
from torch import nn

from ...models.erfnet import ERFNet
from ...models.registry import Architecture
from ...models.registry import Tensor
from ...scoring.pixel import pixel_score

MODEL_FILE = 'pixel_model.pt'   # the weights of a pixel model directory


class PixelSegmenterModel(nn.Module):
    """uint8 ``[N, H, W, 3]`` RGB -> (anomaly ``[N, H, W]`` float32, classes ``[N, H, W]`` uint8).

    Args:
        network: an :class:`ERFNet` (its logits: normal classes, then void
            when ``void_index`` is given).
        score: the anomaly score's name.
        void_index: the void class's channel, for the ``void`` score; the
            arg-max is taken over the other classes.

    """

    def __init__(self, network, score='maxlogit', void_index=None):
        super().__init__()
        self.network = network
        self.score = score
        self.void_index = void_index

    def logits(self, images):
        dtype = next(self.network.parameters()).dtype
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return self.network(x.to(dtype)).to(torch.float32)

    def half_precision(self):
        """Put ERFNet in fp16 (in place); scores and arg-max run on float32 logits."""
        self.network.half()
        return self

    def outputs(self, logits):
        """Return the graph's ``(anomaly, classes)`` from float32 logits ``[N, C, H, W]``."""
        anomaly = pixel_score(self.score, logits, self.void_index)
        classes = logits
        if self.void_index is not None:
            keep = [c for c in range(logits.shape[1]) if c != self.void_index]
            classes = logits[:, keep]
        return anomaly.to(torch.float32), classes.argmax(dim=1).to(torch.uint8)

    def forward(self, images):
        return self.outputs(self.logits(images))


def _build_from_manifest(arch):
    network = ERFNet(arch['num_classes'], head=arch.get('head', 'linear'))
    return PixelSegmenterModel(network, arch.get('score', 'maxlogit'), arch.get('void_index'))


ARCHITECTURE = Architecture(
    name='erfnet_pixel', build=_build_from_manifest, weights_file=MODEL_FILE,
    inputs=(Tensor('images', 'uint8', ('H', 'W', 3)),),
    outputs=(Tensor('anomaly', 'float32', ('H', 'W')), Tensor('classes', 'uint8', ('H', 'W'))),
    to_fp16=lambda module: copy.deepcopy(module).half_precision())
